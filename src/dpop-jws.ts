/**
 * The DPoP proof as a JWS (RFC 9449 §4.2, §4.3 steps 1–7): its compact form, its header rules,
 * its embedded public key imported and thumbprinted. Nothing here knows the request or the token.
 */
import { calculateJwkThumbprint, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { Rejection } from './errors.ts';
import { hasCanonicalMembers, rsaModulus, rsaModulusBits, weakKeyProblem } from './public-key.ts';

/** Members of a private JWK (RFC 7518 §6): a proof's `jwk` must carry none (RFC 9449 §4.3). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

/** A malformed proof (`dpop_proof_invalid`), `problem` saying how. */
export const proofRejection = (problem: string, details?: Record<string, unknown>) =>
  new Rejection('dpop_proof_invalid', { problem, ...details });

/** A proof header once checked: its algorithm, its key imported, the key's thumbprint. */
export interface ProofHeader {
  readonly alg: string;
  readonly key: CryptoKey;
  readonly jkt: string;
  /** An RSA key's modulus (a signature must be below it), `undefined` for other keys. */
  readonly modulus: Uint8Array | undefined;
}

/** Three base64url segments: header, payload, signature (empty only for `alg: none`). */
export const COMPACT_JWS = /^([\w-]+)\.([\w-]+)\.([\w-]*)$/;
/** RFC 9449 §4.3 steps 4–7 on the header; returns the algorithm. */
export function checkProofHeader(
  header: Record<string, unknown>,
  algorithms: ReadonlySet<string>,
): string {
  const { typ, alg, jwk } = header;
  if (
    typeof typ !== 'string' ||
    !['dpop+jwt', 'application/dpop+jwt'].includes(typ.toLowerCase())
  ) {
    throw proofRejection('typ is not dpop+jwt', { typ: typeof typ === 'string' ? typ : null });
  }
  if (typeof alg !== 'string' || !algorithms.has(alg)) {
    throw new Rejection('dpop_proof_alg', {
      actual: typeof alg === 'string' ? alg : null,
      allowed: [...algorithms],
    });
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    throw proofRejection('no jwk header');
  }
  const secret = PRIVATE_MEMBERS.filter((name) => name in jwk);
  if (secret.length > 0) throw proofRejection('jwk holds a private key', { members: secret });
  // The key's own metadata, as jose's EmbeddedJWK and WebCrypto read it (a key imported with empty
  // key_ops verifies nothing there): a key published for another use or algorithm, or one whose
  // key_ops do not allow verifying, verifies no proof, whichever route checks its signature.
  const { use, alg: keyAlg, key_ops: ops } = jwk as Record<string, unknown>;
  if (
    (use !== undefined && use !== 'sig') ||
    (keyAlg !== undefined && keyAlg !== alg) ||
    (ops !== undefined && !(Array.isArray(ops) && ops.length === 1 && ops[0] === 'verify'))
  ) {
    throw proofRejection('jwk is not a key for verifying this algorithm (use, alg or key_ops)');
  }
  const { kty, n, e } = jwk as { kty?: unknown; n?: unknown; e?: unknown };
  // RSA from 2048 to 8192 bits, with a small public exponent: a client's key costs the server one
  // bounded import and verification, never a 16384-bit or huge-exponent one. The size is the
  // modulus's value (an `n` padded with zero octets is the small key it is), read only once its
  // length is bounded.
  if (
    kty === 'RSA' &&
    (typeof n !== 'string' ||
      n.length > MAX_RSA_N ||
      !inRange(rsaModulusBits(n), 2048, 8192) ||
      typeof e !== 'string' ||
      e.length > MAX_RSA_E)
  ) {
    throw proofRejection('jwk is an RSA key outside 2048 to 8192 bits, or with a large exponent');
  }
  // One spelling, one thumbprint, the same answer on every runtime (Node imports `+/` and `=`,
  // Bun and Deno refuse them).
  if (!hasCanonicalMembers(jwk as Record<string, unknown>)) {
    throw proofRejection('jwk members are not unpadded base64url');
  }
  // A key anyone can sign for (see public-key.ts) would make the bound token a bearer token.
  const weak = weakKeyProblem(jwk as Record<string, unknown>);
  if (weak !== undefined) throw proofRejection(`jwk is a weak key: ${weak}`);
  if ('crit' in header) throw proofRejection('unsupported crit header');
  return alg;
}

/** base64url lengths: 8192 bits (1024 octets) and one leading zero octet; an exponent of 6. */
const MAX_RSA_N = 1367;
const MAX_RSA_E = 8;
const inRange = (value: number, min: number, max: number) => value >= min && value <= max;

/** The RFC 7638 thumbprint of a proof's `jwk`, before any import (a refusal costs no more). */
export async function proofKeyThumbprint(jwk: JWK): Promise<string> {
  try {
    return await calculateJwkThumbprint(jwk, 'sha256');
  } catch (cause) {
    throw new Rejection('dpop_proof_invalid', { problem: 'jwk is not a usable public key' }, cause);
  }
}

export async function importProofKey(jwk: JWK, alg: string): Promise<ProofHeader> {
  let key: CryptoKey | Uint8Array;
  let jkt: string;
  try {
    key = await importJWK({ ...jwk, ext: true }, alg);
    jkt = await calculateJwkThumbprint(jwk, 'sha256');
  } catch (cause) {
    throw new Rejection('dpop_proof_invalid', { problem: 'jwk is not a usable public key' }, cause);
  }
  if (key instanceof Uint8Array || key.type !== 'public') {
    throw proofRejection('jwk is not a public key');
  }
  return { alg, key, jkt, modulus: jwk.kty === 'RSA' ? rsaModulus(jwk.n) : undefined };
}
