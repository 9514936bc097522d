/**
 * The DPoP proof as a JWS (RFC 9449 §4.2, §4.3 steps 1–7): its compact form, its header rules,
 * its embedded public key imported and thumbprinted. Nothing here knows the request or the token.
 */
import { calculateJwkThumbprint, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { Rejection } from './errors.ts';

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
}

/** Three base64url segments: header, payload, signature (empty only for `alg: none`). */
export const COMPACT_JWS = /^([\w-]+)\.([\w-]+)\.([\w-]*)$/;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Unpadded base64url whose unused trailing bits are zero (RFC 4648 §3.5). */
export function isCanonicalBase64url(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = B64URL.indexOf(segment[segment.length - 1] as string);
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

/** A base64url segment's JSON object, or `undefined`. */
export function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const padded = segment.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(padded + '='.repeat((4 - (padded.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

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
  const { kty, n, e } = jwk as { kty?: unknown; n?: unknown; e?: unknown };
  // RSA from 2048 to 8192 bits, with a small public exponent: a client's key costs the server one
  // bounded import and verification, never a 16384-bit or huge-exponent one.
  if (
    kty === 'RSA' &&
    (typeof n !== 'string' ||
      n.length < MIN_RSA_N ||
      n.length > MAX_RSA_N ||
      typeof e !== 'string' ||
      e.length > MAX_RSA_E)
  ) {
    throw proofRejection('jwk is an RSA key outside 2048 to 8192 bits, or with a large exponent');
  }
  if ('crit' in header) throw proofRejection('unsupported crit header');
  return alg;
}

/** base64url lengths: 2048 bits (256 bytes), 8192 bits (1024 bytes), an exponent of 6 bytes. */
const MIN_RSA_N = 342;
const MAX_RSA_N = 1366;
const MAX_RSA_E = 8;

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
  return { alg, key, jkt };
}
