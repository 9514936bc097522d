/** Tokens signed with the embedded issuer's real private key, for hostile and edge cases. */
import { importJWK, SignJWT } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import type { Issuer } from '../../examples/issuer.ts';

/** The reader app's M2M claims, as the issuer would issue them, valid for an hour. */
export function readerClaims(issuer: Issuer, overrides: Record<string, unknown> = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    jti: 'test',
    sub: 'shopping-reader',
    client_id: 'shopping-reader',
    iat: now,
    exp: now + 3600,
    scope: 'read:products',
    iss: issuer.issuer,
    aud: 'https://shopping.api',
    ...overrides,
  };
}

/** `claims` signed with `issuer`'s current signing key; header fields override the defaults. */
export async function signedBy(
  issuer: Issuer,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const jwk = issuer.signingKeys[0] as JWK;
  return new SignJWT(claims)
    .setProtectedHeader({
      alg: jwk.alg as string,
      typ: 'at+jwt',
      kid: jwk.kid as string,
      ...header,
    })
    .sign(await importJWK(jwk, jwk.alg));
}
