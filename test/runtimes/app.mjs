// The app each runtime serves, written as a user would write it for Workers, Bun or Deno: the
// verifiers built once at module scope, a Web-standard route (`verifier.authenticate(request)` and
// `authErrorResponse`) and a Hono route (`resource-guard/hono`). It imports the BUILT package
// (installed from the packed tarball). config.mjs, next to it, is written by smoke.ts: for each
// route, the issuer, the JWKS URL and short key-cache durations; for the differential's routes
// (`/decide`, `/decide/dpop`, see differential.ts), a static key set.
import { Hono } from 'hono';
import { AuthError, authErrorResponse, createVerifier } from 'resource-guard';
import { requireAuth } from 'resource-guard/hono';
import { options } from './config.mjs';

/** Server-side rejections (5xx) go to the log with their cause, for the smoke test's output. */
const logServerFaults = (route) => (event) => {
  if (event.status < 500) return;
  const cause = event.cause instanceof Error ? `${event.cause.name}: ${event.cause.message}` : '';
  console.error(
    `[${route}] ${event.status} ${event.reason} ${JSON.stringify(event.details)} ${cause}`,
  );
};

const verifier = createVerifier({ ...options.web, onRejected: logServerFaults('web') });

const hono = new Hono();
const honoVerifier = createVerifier({ ...options.hono, onRejected: logServerFaults('hono') });
hono.get('/hono', requireAuth(honoVerifier, { scopes: ['read:products'] }), (c) =>
  c.json({ client: c.get('auth').clientId }),
);

// DPoP (RFC 9449) required, with server nonces: proof checks, nonces and replay on this runtime's
// crypto (WebCrypto where node:crypto is absent).
const dpopVerifier = createVerifier({ ...options.dpop, onRejected: logServerFaults('dpop') });

async function dpop(request) {
  try {
    const auth = await dpopVerifier.authenticate(request, { scopes: ['read:products'] });
    return Response.json({ client: auth.clientId, jkt: auth.claims.cnf?.jkt ?? null });
  } catch (error) {
    if (error instanceof AuthError) return authErrorResponse(error);
    throw error;
  }
}

// The runtime differential (differential.ts): a static key set, so that each decision depends on
// the request alone. The same app, with the same package, on plain Node is the oracle; every
// runtime must answer each request exactly as Node did. `x-decision-reason` (the AuthError's reason, for the report
// only) and the granted scopes make a divergence easier to explain.
const decideVerifier =
  options.decide && createVerifier({ ...options.decide, onRejected: logServerFaults('decide') });
const decideDpopVerifier =
  options.decideDpop &&
  createVerifier({ ...options.decideDpop, onRejected: logServerFaults('decide/dpop') });

async function decide(of, request) {
  if (of === undefined) return new Response('not configured', { status: 404 });
  try {
    const auth = await of.authenticate(request, { scopes: ['read:products'] });
    return Response.json(
      { client: auth.clientId ?? null, subject: auth.subject ?? null, scopes: auth.scopes },
      { headers: { 'x-decision-reason': 'accepted' } },
    );
  } catch (error) {
    if (error instanceof AuthError) {
      const response = authErrorResponse(error);
      response.headers.set('x-decision-reason', error.reason);
      return response;
    }
    // A throw that is not an AuthError is a bug: answered the same way on every runtime.
    const name = error instanceof Error ? error.name : typeof error;
    return Response.json(
      { error: 'exception', name },
      { status: 500, headers: { 'x-decision-reason': `exception ${name}` } },
    );
  }
}

async function web(request) {
  try {
    const auth = await verifier.authenticate(request, { scopes: ['read:products'] });
    return Response.json({ client: auth.clientId });
  } catch (error) {
    if (error instanceof AuthError) return authErrorResponse(error);
    throw error; // the runtime answers 500: the smoke test counts it as a failure
  }
}

/** `verifier.health()`: 200 while the keys can verify, 503 when not. */
function health(of) {
  const issuers = of.health();
  const ok = issuers.every(({ state }) => state === 'fresh' || state === 'stale');
  return Response.json(issuers, { status: ok ? 200 : 503 });
}

/** What the runtime looks like from inside (for the smoke test's log). */
function runtime() {
  return Response.json({
    userAgent: globalThis.navigator?.userAgent ?? null,
    process: typeof globalThis.process?.getBuiltinModule === 'function',
  });
}

export default {
  fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/web') return web(request);
    if (pathname === '/dpop') return dpop(request);
    if (pathname === '/web/health') return health(verifier);
    if (pathname === '/hono/health') return health(honoVerifier);
    if (pathname === '/hono') return hono.fetch(request);
    if (pathname === '/runtime') return runtime();
    if (pathname === '/decide') return decide(decideVerifier, request);
    if (pathname === '/decide/dpop') return decide(decideDpopVerifier, request);
    return new Response('not found', { status: 404 });
  },
};
