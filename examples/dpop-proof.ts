/**
 * The client side of DPoP (RFC 9449), in a few lines of jose: a key pair held by the client, and a
 * fresh proof JWT for every request (and for the token request). The M2M client example and the
 * embedded issuer's `token()` use it; so can your client.
 */
import { randomUUID } from 'node:crypto';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { createHash } from 'node:crypto';

/** A client's DPoP key pair: the private key signs proofs, the public JWK travels in them. */
export interface ProofKey {
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  /** RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key. */
  readonly jkt: string;
}

export async function generateProofKey(alg = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const publicJwk = await exportJWK(publicKey);
  return { alg, privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

export interface ProofClaims {
  /** The request's method: `htm`. */
  readonly method: string;
  /** The request's URL; its query and fragment are left out of `htu`. */
  readonly url: string | URL;
  /** The access token the request carries: its hash is `ath`. */
  readonly accessToken?: string;
  /** The server's last `DPoP-Nonce`. */
  readonly nonce?: string;
}

/** A proof for one request (a new `jti` each time: a proof is accepted once). */
export function createProof(key: ProofKey, claims: ProofClaims): Promise<string> {
  const htu = new URL(claims.url);
  htu.search = '';
  htu.hash = '';
  return new SignJWT({
    jti: randomUUID(),
    htm: claims.method,
    htu: htu.href,
    ...(claims.accessToken === undefined
      ? {}
      : { ath: base64url.encode(createHash('sha256').update(claims.accessToken).digest()) }),
    ...(claims.nonce === undefined ? {} : { nonce: claims.nonce }),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}
