// Shared by the wire differential's apps (test/runtimes/wire.ts): the verifiers, built once from
// the BUILT package (installed from the packed tarball), and the listening line. The parent passes
// the issuer, audience, JWKS URL (its own loopback server) and DPoP origin in WIRE_CONFIG.
//
// Two routes in every app: GET /products (Bearer, scopes read:products) and GET /dpop (DPoP
// required, scopes read:products, `trustHost` so that the request's Host / absolute-form target
// is read on this runtime). Every answer the app itself writes carries `x-wire-app`, so the parent
// can tell a refusal by the runtime's HTTP layer (no marker) from one by resource-guard.
import process from 'node:process';
import { createVerifier } from 'resource-guard';

const config = JSON.parse(process.env.WIRE_CONFIG ?? '{}');

/** Server-side rejections (5xx) go to stderr with their cause: the parent fails on them. */
const onRejected = (event) => {
  if (event.status < 500) return;
  const cause = event.cause instanceof Error ? `${event.cause.name}: ${event.cause.message}` : '';
  console.error(`[wire] ${event.status} ${event.reason} ${cause}`);
};

const base = {
  issuer: config.issuer,
  audience: config.audience,
  jwksUri: config.jwksUri,
  onRejected,
};

export const verifier = createVerifier(base);
export const dpopVerifier = createVerifier({
  ...base,
  dpop: { mode: 'required', origin: config.dpopOrigin, trustHost: true },
});

export const SCOPES = ['read:products'];
export const MARKER = 'x-wire-app';

/** Prints `listening <port>` once a node:http server listens on 127.0.0.1, a free port. */
export function listen(server) {
  server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
}
