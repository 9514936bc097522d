import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTHeaderParameters, JWTPayload } from 'jose';

export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** The public JWK as a JWKS would publish it (kid = RFC 7638 thumbprint). */
  readonly jwk: JWK;
}

export async function makeKey(alg = 'ES384', kid?: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const exported = await exportJWK(publicKey);
  const id = kid ?? (await calculateJwkThumbprint(exported));
  return { alg, kid: id, privateKey, jwk: { ...exported, kid: id, alg, use: 'sig' } };
}

export const ISSUER = 'https://tenant.example.test/oidc';
export const AUDIENCE = 'https://shopping.api';

/** Logto's M2M token claims, valid for an hour from now. */
export function m2mClaims(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    sub: 'app-123',
    client_id: 'app-123',
    iat: now,
    exp: now + 3600,
    scope: 'read:products write:products',
    iss: ISSUER,
    aud: AUDIENCE,
    ...overrides,
  };
}

/**
 * Signs a token. `claims` is the payload as is (use {@link m2mClaims}); header fields override
 * `{ alg, typ: 'at+jwt', kid }`; a header value of `undefined` removes the field.
 */
export async function mint(
  key: TestKey,
  claims: JWTPayload = m2mClaims(),
  header: Partial<Record<keyof JWTHeaderParameters | string, unknown>> = {},
): Promise<string> {
  const protectedHeader: Record<string, unknown> = { alg: key.alg, typ: 'at+jwt', kid: key.kid };
  for (const [name, value] of Object.entries(header)) {
    if (value === undefined) delete protectedHeader[name];
    else protectedHeader[name] = value;
  }
  return new SignJWT(claims)
    .setProtectedHeader(protectedHeader as JWTHeaderParameters)
    .sign(key.privateKey);
}

export const b64url = (value: string | Uint8Array) => Buffer.from(value).toString('base64url');

/** Builds a compact JWS from raw parts, without any checks (for alg=none and friends). */
export function rawToken(header: unknown, payload: unknown, signature = ''): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${signature}`;
}

/**
 * Signs arbitrary header and payload JSON with an ECDSA key, with no checks at all (jose refuses
 * to sign some of the hostile shapes the tests need, such as an unknown `crit`). A string header
 * or payload is used as is (for JSON that `JSON.stringify` cannot produce, like `1e309`).
 */
export async function signRaw(key: TestKey, header: unknown, payload: unknown): Promise<string> {
  const hash = { ES256: 'SHA-256', ES384: 'SHA-384', ES512: 'SHA-512' }[key.alg];
  if (hash === undefined) throw new Error(`signRaw supports ECDSA keys, not ${key.alg}`);
  const json = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));
  const input = `${b64url(json(header))}.${b64url(json(payload))}`;
  const signature = await crypto.subtle.sign(
    { name: 'ECDSA', hash },
    key.privateKey,
    new TextEncoder().encode(input),
  );
  return `${input}.${b64url(new Uint8Array(signature))}`;
}
