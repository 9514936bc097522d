/**
 * Where a key set's document comes from, and which of its keys may ever be trusted: a JWKS
 * fetched from a URL (fixed, or found by discovery) or a static set (JWKs or PEM public keys),
 * and the filter every set goes through (public signature keys of a supported type only).
 */
import { calculateJwkThumbprint } from 'jose';
import type { JWK } from 'jose';
import { nodeCrypto } from './node-crypto.ts';
import { KeySourceError } from './errors.ts';
import { fetchJson } from './fetch-json.ts';
import { configError } from './option-checks.ts';
import { rsaModulusBits, weakKeyProblem, withCanonicalMembers } from './public-key.ts';

/**
 * Loads a JWKS document: `url` names where it came from (for diagnostics). `request`, when given,
 * is called as each HTTP request of the load starts (the issuer's metadata, then the JWKS): each
 * has its own timeout, so a load that just started another is alive however long it has run.
 */
export type KeySource = (
  request?: () => void,
) => Promise<{ readonly url: string; readonly document: unknown }>;

/** A key source that fetches the JWKS from a URL (fixed, or resolved by discovery). */
export function fetchedKeys(
  url: (request?: () => void) => Promise<URL>,
  options: { readonly timeout: number; readonly fetch: typeof globalThis.fetch },
): KeySource {
  return async (request) => {
    const resolved = await url(request);
    request?.();
    const document = await fetchJson(resolved, {
      timeout: options.timeout,
      maxBytes: MAX_JWKS_BYTES,
      fetch: options.fetch,
    });
    return { url: resolved.href, document };
  };
}

/** Largest JWKS body accepted. Real sets are a few KiB. */
export const MAX_JWKS_BYTES = 256 * 1024;
/** Largest number of keys accepted in one set. */
export const MAX_JWKS_KEYS = 100;

const ASYMMETRIC_CURVES: Readonly<Record<string, readonly string[]>> = {
  EC: ['P-256', 'P-384', 'P-521'],
  OKP: ['Ed25519'],
};

/**
 * Keeps only public signature keys of a supported type. Private keys, symmetric keys and keys for
 * encryption are ignored: a key set may never make an HMAC secret or a private key trusted.
 */
export function usableKeys(document: unknown, url: string): JWK[] {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (typeof document !== 'object' || document === null || !Array.isArray(keys)) {
    throw new KeySourceError('invalid_document', 'not a JSON Web Key Set', url);
  }
  if (keys.length > MAX_JWKS_KEYS) {
    throw new KeySourceError('invalid_document', `more than ${MAX_JWKS_KEYS} keys`, url);
  }
  // A member that is not a JSON object is no JWK at all (RFC 7517 §5): the set is malformed, as
  // jose's key sets find it, not a set with a key to skip.
  const notKey = keys.findIndex(
    (key) => typeof key !== 'object' || key === null || Array.isArray(key),
  );
  if (notKey !== -1) {
    throw new KeySourceError('invalid_document', `keys[${notKey}] is not a JSON object`, url);
  }
  return keys
    .filter((key): key is JWK => {
      const jwk = key as Record<string, unknown>;
      if ('d' in jwk || 'k' in jwk) return false;
      if (jwk.use !== undefined && jwk.use !== 'sig') return false;
      if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return false;
      // A key anyone can forge signatures for (an RSA exponent of 1, a small-order Ed25519 key)
      // is never trusted, on any runtime.
      if (weakKeyProblem(jwk) !== undefined) return false;
      // RSA under 2048 bits is never trusted (RFC 7518 §3.3), counted from the modulus's value:
      // an `n` padded with zero octets to 256 is the small key it is.
      if (jwk.kty === 'RSA') return typeof jwk.e === 'string' && rsaModulusBits(jwk.n) >= 2048;
      const curves = typeof jwk.kty === 'string' ? ASYMMETRIC_CURVES[jwk.kty] : undefined;
      return curves !== undefined && curves.includes(jwk.crv as string);
    })
    .map(withCanonicalMembers); // one spelling, so every runtime imports the same key
}

/**
 * A static key set (the `jwks` option): public JWKs, or PEM (SPKI) public keys turned into JWKs.
 * Checked when the verifier is created: a set with no usable public signing key is a TypeError.
 */
export function staticKeys(jwks: { readonly keys: readonly unknown[] }): KeySource {
  const keys = jwks.keys.map((key, i) => {
    if (typeof key !== 'string') return structuredClone(key);
    if (nodeCrypto === undefined) configError('jwks.keys', `item ${i}: PEM keys need node:crypto`);
    try {
      const jwk = nodeCrypto.createPublicKey(key).export({ format: 'jwk' });
      return jwk;
    } catch (cause) {
      return configError('jwks.keys', `item ${i} is not a PEM public key`, { cause });
    }
  });
  const document = { keys };
  if (usableKeys(document, 'the jwks option').length === 0) {
    configError(
      'jwks',
      'holds no usable public signing key (private, symmetric and `enc` keys are ignored)',
    );
  }
  // A PEM key has no kid: it gets its RFC 7638 thumbprint, which is what Logto uses as the kid.
  // Computed on first use and kept as a value (never a promise shared between requests).
  let withKids: { readonly keys: readonly unknown[] } | undefined;
  return async () => {
    withKids ??= {
      keys: await Promise.all(
        keys.map(async (key, i) =>
          typeof jwks.keys[i] === 'string'
            ? { ...(key as JWK), kid: await calculateJwkThumbprint(key as JWK) }
            : key,
        ),
      ),
    };
    return { url: 'the jwks option', document: withKids };
  };
}
