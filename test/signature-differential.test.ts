/**
 * The node:crypto signature path against jose, the reference: thousands of valid, mutated and
 * hostile tokens must get identical accept/reject decisions — at the signature step, and through
 * the whole verifier against jose's jwtVerify.
 */
import fc from 'fast-check';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { JWK, JWTHeaderParameters } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import { verifySignature } from '../src/signature.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import type { JwksServer } from './helpers/jwks-server.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

const ALGS = ['RS256', 'RS384', 'PS256', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

let keys: TestKey[];
let tokens: string[];
let select: ReturnType<typeof createLocalJWKSet>;
let jwks: JwksServer;

beforeAll(async () => {
  keys = await Promise.all(ALGS.map((alg) => makeKey(alg)));
  // An RSA 4096 key: verified on the thread pool rather than inline.
  const big = await (async () => {
    const { generateKeyPair, exportJWK, calculateJwkThumbprint } = await import('jose');
    const pair = await generateKeyPair('RS256', { modulusLength: 4096, extractable: true });
    const jwk = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    return {
      alg: 'RS256',
      kid,
      privateKey: pair.privateKey,
      jwk: { ...jwk, kid, alg: 'RS256' },
    } as TestKey;
  })();
  keys.push(big);
  select = createLocalJWKSet({ keys: keys.map((k) => k.jwk) as JWK[] });
  tokens = [];
  for (const key of keys) {
    for (let i = 0; i < 3; i++) tokens.push(await mint(key, m2mClaims({ jti: `d-${i}` })));
  }
  jwks = await startJwksServer(keys.map((k) => k.jwk));
});
afterAll(() => jwks.close());

type Mutation =
  | { kind: 'none' }
  | { kind: 'char'; segment: 0 | 1 | 2; position: number; char: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'swapSignature'; other: number }
  | { kind: 'swapHeader'; other: number }
  | { kind: 'realg'; alg: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.record({
    kind: fc.constant('char' as const),
    segment: fc.constantFrom(0 as const, 1 as const, 2 as const),
    position: fc.nat(),
    char: fc.nat({ max: 63 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('swapSignature' as const), other: fc.nat() }),
  fc.record({ kind: fc.constant('swapHeader' as const), other: fc.nat() }),
  fc.record({
    kind: fc.constant('realg' as const),
    alg: fc.constantFrom(...ALGS, 'ES256K', 'RS1'),
  }),
);

function mutate(token: string, m: Mutation): string {
  const parts = token.split('.') as [string, string, string];
  const pick = (n: number) => tokens[n % tokens.length] as string;
  switch (m.kind) {
    case 'none':
      return token;
    case 'char': {
      const segment = parts[m.segment];
      const at = m.position % Math.max(1, segment.length);
      parts[m.segment] = segment.slice(0, at) + B64URL[m.char] + segment.slice(at + 1);
      return parts.join('.');
    }
    case 'truncate':
      parts[2] = parts[2].slice(0, m.keep % parts[2].length);
      return parts.join('.');
    case 'swapSignature':
      parts[2] = pick(m.other).split('.')[2] as string;
      return parts.join('.');
    case 'swapHeader':
      parts[0] = pick(m.other).split('.')[0] as string;
      return parts.join('.');
    case 'realg': {
      const header = JSON.parse(
        Buffer.from(parts[0], 'base64url').toString(),
      ) as JWTHeaderParameters;
      parts[0] = Buffer.from(JSON.stringify({ ...header, alg: m.alg })).toString('base64url');
      return parts.join('.');
    }
  }
}

function canonicalSignature(token: string): boolean {
  const signature = token.slice(token.lastIndexOf('.') + 1);
  const respelled = Buffer.from(signature, 'base64url').toString('base64url');
  return respelled === signature;
}

const decide = (promise: Promise<unknown>) =>
  promise.then(
    () => true,
    () => false,
  );

describe('node:crypto signatures decide exactly as jose does', () => {
  it('at the signature step, for 3000 valid and mutated tokens', async () => {
    let accepted = 0;
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(), mutation, async (index, m) => {
        const token = mutate(tokens[index % tokens.length] as string, m);
        let header: JWTHeaderParameters;
        let key: Awaited<ReturnType<typeof select>>;
        try {
          header = decodeProtectedHeader(token) as JWTHeaderParameters;
          key = await select(header);
        } catch {
          return; // no key is selected: both pipelines reject before the signature step
        }
        const ours = await verifySignature(token, key, header.alg);
        const reference = await decide(compactVerify(token, key, { algorithms: ALGS }));
        compared++;
        if (ours) accepted++;
        expect(ours).toBe(reference);
      }),
      { numRuns: 3000, seed: 9068 },
    );
    expect(compared).toBeGreaterThan(1500);
    expect(accepted).toBeGreaterThan(200); // the valid side is exercised too
  });

  it('through the whole verifier, against jose jwtVerify, for 1500 tokens', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: jwks.url,
      cache: false,
    });
    const reference = (token: string) =>
      decide(
        jwtVerify(token, select, {
          issuer: ISSUER,
          audience: AUDIENCE,
          typ: 'at+jwt',
          algorithms: ALGS,
          clockTolerance: 5,
          requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
        }),
      );
    const claimVariant = fc.constantFrom<Record<string, unknown>>(
      {},
      {},
      {},
      { exp: Math.floor(Date.now() / 1000) - 60 },
      { aud: 'https://other.api' },
      { aud: [AUDIENCE, 'x'] },
      { iss: `${ISSUER}/` },
      { nbf: Math.floor(Date.now() / 1000) + 600 },
      { jti: undefined },
      { client_id: undefined },
    );
    const typVariant = fc.constantFrom('at+jwt', 'at+jwt', 'application/at+jwt', 'JWT', undefined);
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        claimVariant,
        typVariant,
        fc.oneof(fc.constant({ kind: 'none' as const }), mutation),
        async (k, claims, typ, m) => {
          const key = keys[k % keys.length] as TestKey;
          const token = mutate(
            await new SignJWT(m2mClaims(claims))
              .setProtectedHeader({ alg: key.alg, kid: key.kid, ...(typ ? { typ } : {}) })
              .sign(key.privateKey),
            m,
          );
          const ours = await decide(verifier.verify(token));
          if (ours) accepted++;
          // One deliberate difference: a signature spelled with unused trailing bits set is
          // refused (jose accepts it), so that a token has exactly one spelling.
          const expected = canonicalSignature(token) ? await reference(token) : false;
          expect(ours).toBe(expected);
        },
      ),
      { numRuns: 1500, seed: 8725 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});
