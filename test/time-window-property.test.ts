/**
 * The time window (`exp`, `nbf`, `iat`, `maxTokenAge`, `clockTolerance`) against a cold jose
 * verification at the same instant, over fractional clocks and fractional NumericDates (RFC 7519
 * §2 allows both). jose reads its clock in whole seconds; the library must never accept what jose
 * refuses (session 29: a fractional `nbf` or future `iat` was judged against the fractional clock,
 * up to a second looser than jose), and must accept a token jose accepts with a second to spare on
 * either side (strict, not broken). The same token seen again after the clock stepped back or on
 * (a cache hit, when cached) is judged as a cold verification at that instant.
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
  /** Where the clock is when the token comes again (stepped back or on): a cache hit, or not. */
  readonly laterMs?: number;
}

const T = 1_900_000_000; // a whole second, well in the future of any test run

const offset = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ min, max }),
    fc.double({ min, max, noNaN: true }),
    // Near a whole second either side of the boundaries the rules draw.
    fc.integer({ min, max }).chain((n) => fc.constantFrom(n - 0.001, n + 0.001, n + 0.5)),
  );

const cases: fc.Arbitrary<Case> = fc
  .record({
    nowMs: fc.integer({ min: 0, max: 999 }).map((ms) => T * 1000 + ms),
    claims: fc.record(
      { iat: offset(-40, 15), exp: offset(-15, 40), nbf: offset(-15, 15) },
      { requiredKeys: ['iat', 'exp'] },
    ),
    clockTolerance: fc.oneof(
      fc.integer({ min: 0, max: 10 }),
      // Exact binary fractions and not: 0.7 s rounds whole + 0.7 up to an iat of T + 0.7.
      fc.constantFrom(0.5, 2.25, 0.1, 0.7, 9.9),
      fc.double({ min: 0, max: 10, noNaN: true }),
    ),
    maxTokenAge: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  })
  .chain((c) => {
    // Later: anywhere near now, or near the first instant the token's start allows.
    const start = Math.max(c.claims.nbf ?? -Infinity, c.claims.iat) - c.clockTolerance;
    return fc
      .oneof(
        fc.integer({ min: -4000, max: 4000 }).map((d) => c.nowMs + d),
        fc.integer({ min: -1200, max: 1200 }).map((d) => Math.round((T + start) * 1000) + d),
      )
      .map((laterMs) => ({ ...c, laterMs }));
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

/** The verdict at `nowMs`, the token seen twice there; and at `laterMs`, seen once more. */
async function mine(token: string, c: Case): Promise<string> {
  return (await both(token, c))[0];
}

async function both(token: string, c: Case): Promise<[now: string, later: string]> {
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
    vi.setSystemTime(c.laterMs ?? c.nowMs);
    return [first, await outcome(verifier.verify(token))];
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
        const [verdict, later] = await both(token, c);
        if (!(await cold(token, c))) expect(verdict).not.toBe('ok');
        // The clock stepped (back or on) after the token was cached: a hit is judged as a cold
        // verification at that instant would be.
        if (!(await cold(token, c, c.laterMs))) expect(later).not.toBe('ok');
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

  it('example: cached at T + 0.2 s, the clock stepped back to T - 0.3 s, an nbf of T - 0.5 s is not yet valid (jose reads T - 1)', async () => {
    const c: Case = {
      nowMs: T * 1000 + 200,
      laterMs: T * 1000 - 300,
      claims: { iat: -10, nbf: -0.5, exp: 60 },
      clockTolerance: 0,
      maxTokenAge: undefined,
    };
    const token = await mint(key, m2mClaims({ iat: T - 10, nbf: T - 0.5, exp: T + 60 }));
    expect([await cold(token, c), await cold(token, c, c.laterMs)]).toEqual([true, false]);
    expect(await both(token, c)).toEqual(['ok', '401 not_yet_valid']);
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
