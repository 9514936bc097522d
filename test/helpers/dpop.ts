/**
 * DPoP test material: a proof key, proofs signed with no checks at all (so that hostile shapes
 * can be built), and a verifier over a static key set with DPoP on.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { beforeAll } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier, VerifierOptions } from 'resource-guard';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './keys.ts';
import type { TestKey } from './keys.ts';

export const ORIGIN = 'https://api.shop.example';

/** A client's proof key (ES256), its public JWK and thumbprint. */
export interface ProofKey extends TestKey {
  readonly publicJwk: JWK;
  readonly jkt: string;
}

export async function makeProofKey(): Promise<ProofKey> {
  const key = await makeKey('ES256');
  const { kid: jkt, alg: _alg, use: _use, ...publicJwk } = key.jwk;
  return { ...key, publicJwk, jkt: jkt as string };
}

export const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

export interface ProofParts {
  readonly header?: Record<string, unknown>;
  readonly payload?: Record<string, unknown>;
}

/**
 * A proof for `method url` carrying `token`'s hash, signed by `key`; `header`/`payload` members
 * override (a value of `undefined` removes one).
 */
export function proof(
  key: ProofKey,
  method: string,
  url: string,
  token: string | undefined,
  parts: ProofParts = {},
): Promise<string> {
  const header = strip({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk, ...parts.header });
  const payload = strip({ ...proofClaims(method, url, token), ...parts.payload });
  return signRaw(key, header, payload);
}

/** A fresh proof's claims for `method url`, with `token`'s hash when there is one. */
export function proofClaims(
  method: string,
  url: string,
  token: string | undefined,
): Record<string, unknown> {
  return {
    jti: randomUUID(),
    htm: method,
    htu: url,
    iat: Math.floor(Date.now() / 1000),
    ...(token === undefined ? {} : { ath: ath(token) }),
  };
}

function strip(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

/** The issuer's key, a verifier with DPoP on it, and tokens bound (or not) to a proof key. */
export interface DpopFixture {
  readonly issuerKey: TestKey;
  readonly verifier: Verifier;
  /** A token bound to `proofKey` (`cnf.jkt`). */
  bound(proofKey: ProofKey, claims?: Record<string, unknown>): Promise<string>;
  /** A plain (Bearer) token. */
  plain(claims?: Record<string, unknown>): Promise<string>;
}

/** A DPoP verifier's options over `key`'s static JWKS (`dpop.origin` = ORIGIN); `extra` overrides. */
export const dpopOptions = (
  key: TestKey,
  extra: Partial<VerifierOptions> = {},
): VerifierOptions => ({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwks: { keys: [key.jwk] },
  dpop: { origin: ORIGIN },
  ...extra,
});

export async function dpopFixture(
  options: Partial<VerifierOptions> = {},
  issuerKey?: TestKey,
): Promise<DpopFixture> {
  const key = issuerKey ?? (await makeKey('ES256'));
  const verifier = createVerifier(dpopOptions(key, options));
  return {
    issuerKey: key,
    verifier,
    bound: (proofKey, claims = {}) =>
      mint(key, m2mClaims({ cnf: { jkt: proofKey.jkt }, ...claims })),
    plain: (claims = {}) => mint(key, m2mClaims(claims)),
  };
}

/** A request as `authenticate()` takes it: node's shape, method and target included. */
export function dpopRequest(
  token: string,
  proofs: string | readonly string[] | undefined,
  { method = 'GET', url = '/products', scheme = 'DPoP', host = 'api.shop.example' } = {},
) {
  const rawHeaders = ['Host', host, 'Authorization', `${scheme} ${token}`];
  for (const value of typeof proofs === 'string' ? [proofs] : (proofs ?? [])) {
    rawHeaders.push('DPoP', value);
  }
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    headers[name] =
      headers[name] === undefined ? rawHeaders[i + 1]! : `${headers[name]}, ${rawHeaders[i + 1]}`;
  }
  return { method, url, headers, rawHeaders };
}

/** Two proof keys and a default fixture, shared by a test file: call `useDpopFixture()` once. */
export let key: ProofKey;
export let other: ProofKey;
export let fx: DpopFixture;

export function useDpopFixture(): void {
  beforeAll(async () => {
    [key, other] = await Promise.all([makeProofKey(), makeProofKey()]);
    fx = await dpopFixture();
  });
}
