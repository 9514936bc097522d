/**
 * RFC 8017 §8.2.2 (and §8.1.2), steps 1 and 2.a: an RSA signature is exactly k octets (the
 * modulus's length) and, as an integer, below the modulus n. Session 28 (helper-67's runtime
 * differential): Deno, through node:crypto and WebCrypto alike, accepted an RSASSA-PSS signature
 * `s + n` (k octets when it fits): a second spelling of a valid token, which Node and Bun refuse.
 * A denylist, replay store or cache keyed by the token's bytes then sees another token. The range
 * is now checked before any runtime's crypto; here a node:crypto that reduces the signature mod n,
 * as Deno's does, stands in for that runtime.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { JWK } from 'jose';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, b64url, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

afterEach(() => vi.restoreAllMocks());

const toBigInt = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
const toBytes = (value: bigint, length: number) =>
  Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');
const modulusOf = (jwk: JWK) => Buffer.from(jwk.n as string, 'base64url');

/** The token with its signature replaced by `f(s, n)`, written in `length` octets. */
function respell(token: string, jwk: JWK, f: (s: bigint, n: bigint) => bigint, length?: number) {
  const dot = token.lastIndexOf('.');
  const n = modulusOf(jwk);
  const s = toBigInt(Buffer.from(token.slice(dot + 1), 'base64url'));
  return `${token.slice(0, dot + 1)}${b64url(toBytes(f(s, toBigInt(n)), length ?? n.length))}`;
}

/** node:crypto as Deno's behaves: an RSA signature at or above n is reduced mod n first. */
function reducingRuntime() {
  const nodeCrypto = process.getBuiltinModule('node:crypto');
  const real = nodeCrypto.verify.bind(nodeCrypto) as (...args: unknown[]) => unknown;
  return vi.spyOn(nodeCrypto, 'verify').mockImplementation(((...args: unknown[]) => {
    const [, , key, signature] = args as [unknown, unknown, { key?: unknown }, Uint8Array];
    const keyObject = key?.key as
      { asymmetricKeyType?: string; export(o: { format: 'jwk' }): JWK } | undefined;
    if (keyObject?.asymmetricKeyType === 'rsa' || keyObject?.asymmetricKeyType === 'rsa-pss') {
      const nBytes = modulusOf(keyObject.export({ format: 'jwk' }));
      const n = toBigInt(nBytes);
      const s = toBigInt(signature);
      if (s >= n) args[3] = toBytes(s % n, nBytes.length);
    }
    return real(...args);
  }) as never);
}

const ALGS = ['RS256', 'PS256', 'RS384', 'PS512'] as const;

describe('an RSA signature outside [0, n) or not k octets is refused, on any runtime', () => {
  let keys: TestKey[];
  const verifierFor = (key: TestKey) =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      algorithms: [...ALGS],
      cache: false,
    });

  it('s + n (in k + 1 octets, and in k when it fits), n, and lengths k - 1 and k + 1: 401 bad_signature; the token: ok', async () => {
    keys = await Promise.all(ALGS.map((alg) => makeKey(alg)));
    for (const key of keys) {
      const verifier = verifierFor(key);
      const token = await mint(key);
      const jwk = key.jwk as JWK;
      const k = modulusOf(jwk).length;
      expect(await outcome(verifier.verify(token)), key.alg).toBe('ok');
      const spellings = [
        respell(token, jwk, (s, n) => s + n, k + 1), // one octet longer
        respell(token, jwk, (_, n) => n),
        respell(token, jwk, (s) => s, k + 1), // a leading zero octet
      ];
      // s + n in k octets, when it fits (about half the time for a modulus's top bits).
      const fits = (s: bigint, n: bigint) => s + n < 1n << BigInt(8 * k);
      const dot = token.lastIndexOf('.');
      const s = toBigInt(Buffer.from(token.slice(dot + 1), 'base64url'));
      if (fits(s, toBigInt(modulusOf(jwk)))) spellings.push(respell(token, jwk, (v, n) => v + n));
      const short = Buffer.from(token.slice(dot + 1), 'base64url').subarray(1);
      spellings.push(`${token.slice(0, dot + 1)}${b64url(short)}`);
      for (const spelling of spellings) {
        expect(await outcome(verifier.verify(spelling)), key.alg).toBe('401 bad_signature');
      }
    }
  });

  it('on a runtime that reduces the signature mod n (as Deno does), s + n is still refused', async () => {
    keys ??= await Promise.all(ALGS.map((alg) => makeKey(alg)));
    const reducing = reducingRuntime();
    let tried = 0;
    for (const key of keys) {
      const verifier = verifierFor(key);
      const jwk = key.jwk as JWK;
      const n = toBigInt(modulusOf(jwk));
      const k = modulusOf(jwk).length;
      // Tokens until one whose s + n fits in k octets (the spelling Deno accepted).
      for (let i = 0; i < 40; i++) {
        const token = await mint(key);
        const dot = token.lastIndexOf('.');
        const s = toBigInt(Buffer.from(token.slice(dot + 1), 'base64url'));
        if (s + n >= 1n << BigInt(8 * k)) continue;
        expect(await outcome(verifier.verify(token)), key.alg).toBe('ok');
        expect(await outcome(verifier.verify(respell(token, jwk, (v, m) => v + m))), key.alg).toBe(
          '401 bad_signature',
        );
        tried++;
        break;
      }
    }
    expect(tried).toBeGreaterThan(0);
    expect(reducing).toHaveBeenCalled();
  });
});
