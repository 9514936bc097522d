/**
 * The time window (`exp`, `nbf`, `iat`, `maxTokenAge`, `clockTolerance`) against a cold jose
 * verification at the same instant, over fractional clocks and fractional NumericDates (RFC 7519
 * §2 allows both). jose reads its clock in whole seconds; the library must never accept what jose
 * refuses (session 29: a fractional `nbf` or future `iat` was judged against the fractional clock,
 * up to a second looser than jose), and must accept a token jose accepts with a second to spare on
 * either side (strict, not broken).
 */
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

let key: TestKey;
beforeAll(async () => {
  key = await makeKey('ES256');
});
afterEach(() => vi.useRealTimers());

interface Case {
  /** The wall clock, in milliseconds (any fraction of a second). */
  readonly nowMs: number;
  readonly claims: { iat: number; exp: number; nbf?: number };
  readonly clockTolerance: number;
  readonly maxTokenAge: number | undefined;
}

const T = 1_900_000_000; // a whole second, well in the future of any test run

const offset = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ min, max }),
    fc.double({ min, max, noNaN: true }),
    // Near a whole second either side of the boundaries the rules draw.
    fc.integer({ min, max }).chain((n) => fc.constantFrom(n - 0.001, n + 0.001, n + 0.5)),
  );

const cases: fc.Arbitrary<Case> = fc.record({
  nowMs: fc.integer({ min: 0, max: 999 }).map((ms) => T * 1000 + ms),
  claims: fc.record(
    { iat: offset(-40, 15), exp: offset(-15, 40), nbf: offset(-15, 15) },
    { requiredKeys: ['iat', 'exp'] },
  ),
  clockTolerance: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.constantFrom(0.5, 2.25)),
  maxTokenAge: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
});

/** jose at `nowMs` (its own whole-second reading of it). */
async function cold(token: string, c: Case, nowMs = c.nowMs): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: [key.jwk] }), {
      issuer: ISSUER,
      audience: AUDIENCE,
      clockTolerance: c.clockTolerance,
      currentDate: new Date(nowMs),
      ...(c.maxTokenAge === undefined ? {} : { maxTokenAge: c.maxTokenAge }),
    });
    return true;
  } catch {
    return false;
  }
}

async function mine(token: string, c: Case): Promise<string> {
  vi.useFakeTimers({ toFake: ['Date'], now: c.nowMs });
  try {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      clockTolerance: c.clockTolerance,
      ...(c.maxTokenAge === undefined ? {} : { maxTokenAge: c.maxTokenAge }),
    });
    // Cold, then warm (a cache hit is judged again at its own instant).
    const first = await outcome(verifier.verify(token));
    const second = await outcome(verifier.verify(token));
    expect(second).toBe(first);
    return first;
  } finally {
    vi.useRealTimers();
  }
}

describe('time window: never looser than a cold jose verification at the same instant', () => {
  it('property: fractional clocks and NumericDates', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const { iat, exp, nbf } = c.claims;
        const claims = m2mClaims({
          iat: T + iat,
          exp: T + exp,
          ...(nbf === undefined ? {} : { nbf: T + nbf }),
        });
        const token = await mint(key, claims);
        const verdict = await mine(token, c);
        if (!(await cold(token, c))) expect(verdict).not.toBe('ok');
        // Strict, not broken: accepted when jose accepts a second before and a second after, and
        // the token was not issued in the future (jose checks that only with maxTokenAge).
        const roomy =
          (await cold(token, c, c.nowMs - 1000)) &&
          (await cold(token, c, c.nowMs + 1000)) &&
          iat <= 0;
        if (roomy) expect(verdict).toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it('examples at T + 0.9 s with a 5 s tolerance: nbf and iat 5.5 s ahead are refused, as jose does', async () => {
    const at = { nowMs: T * 1000 + 900, clockTolerance: 5 };
    const notYet = await mint(key, m2mClaims({ iat: T, nbf: T + 5.5, exp: T + 60 }));
    expect(await cold(notYet, { ...at, claims: { iat: 0, exp: 60 }, maxTokenAge: undefined })).toBe(
      false,
    );
    expect(await mine(notYet, { ...at, claims: { iat: 0, exp: 60 }, maxTokenAge: undefined })).toBe(
      '401 not_yet_valid',
    );
    const ahead = await mint(key, m2mClaims({ iat: T + 5.5, exp: T + 60 }));
    expect(await cold(ahead, { ...at, claims: { iat: 5.5, exp: 60 }, maxTokenAge: 600 })).toBe(
      false,
    );
    expect(await mine(ahead, { ...at, claims: { iat: 5.5, exp: 60 }, maxTokenAge: 600 })).toBe(
      '401 issued_in_future',
    );
  });
});
