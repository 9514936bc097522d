/**
 * The cache's bookkeeping against a naive model (an array in insertion order), for any sequence of
 * inserts, re-inserts, lookups, expiries and revoked keys, with sizes that make it compact its
 * order many times over: the same tokens answered, never more than maxEntries.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenCache } from '../src/token-cache.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

interface Voucher {
  trusted: boolean;
  vouches(now: number): boolean;
}
const voucher = (): Voucher => ({
  trusted: true,
  vouches() {
    return this.trusted;
  },
});

describe('TokenCache order and eviction', () => {
  it('matches a naive FIFO model', () => {
    const tokenArb = fc.integer({ min: 0, max: 3000 }).map((n) => `tok-${n}`.padEnd(40, '.') + n);
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        token: tokenArb,
        ttl: fc.integer({ min: 1, max: 50 }),
      }),
      fc.record({ kind: fc.constant('get' as const), token: tokenArb }),
      fc.record({ kind: fc.constant('tick' as const), by: fc.integer({ min: 1, max: 20 }) }),
      fc.record({ kind: fc.constant('revoke' as const), token: tokenArb }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.array(op, { minLength: 500, maxLength: 4000 }),
        (max, ops) => {
          // Admission of every verified token (the policy while the cache hits): FIFO exactly.
          const cache = new TokenCache<string>(
            { maxEntries: max, maxBytes: Number.MAX_SAFE_INTEGER },
            Infinity,
          );
          const model: { token: string; until: number; key: Voucher }[] = [];
          let now = 0;
          for (const o of ops) {
            if (o.kind === 'tick') now += o.by;
            else if (o.kind === 'set') {
              const key = voucher();
              cache.set(o.token, o.token, 0, now + o.ttl, key);
              const at = model.findIndex((e) => e.token === o.token);
              if (at !== -1) model.splice(at, 1);
              model.push({ token: o.token, until: now + o.ttl, key });
              while (model.length > max) model.shift();
            } else if (o.kind === 'revoke') {
              const entry = model.find((e) => e.token === o.token);
              if (entry) entry.key.trusted = false;
            } else {
              const at = model.findIndex((e) => e.token === o.token);
              const entry = model[at];
              const live = entry !== undefined && now < entry.until && entry.key.trusted;
              if (entry !== undefined && !live) model.splice(at, 1);
              expect(cache.get(o.token, now)).toBe(live ? o.token : undefined);
            }
            expect(cache.size).toBeLessThanOrEqual(max);
          }
        },
      ),
      { numRuns: RUNS, seed: 15 },
    );
  });

  it('keeps its eviction queue bounded when full: 10 × maxEntries inserts', () => {
    const cache = new TokenCache<string>({ maxEntries: 1000, maxBytes: Number.MAX_SAFE_INTEGER });
    const key = voucher();
    for (let i = 0; i < 10_000; i++) {
      cache.set(`${'x'.repeat(30)}${String(i).padStart(16, '0')}`, 'v', 0, 1e15, key);
    }
    expect(cache.size).toBe(1000);
    expect(cache.queued).toBeLessThanOrEqual(2 * 1000 + 1);
  });

  it('with admission by second sighting in play, answers only stored, unexpired tokens', () => {
    const tokenArb = fc.integer({ min: 0, max: 200 }).map((n) => `tok-${n}`.padEnd(40, '.') + n);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), token: tokenArb }),
      fc.record({ kind: fc.constant('get' as const), token: tokenArb }),
      fc.record({ kind: fc.constant('tick' as const), by: fc.integer({ min: 1, max: 20 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 20 }),
        fc.array(op, { minLength: 100, maxLength: 2000 }),
        (max, admitAfter, ops) => {
          const cache = new TokenCache<string>(
            { maxEntries: max, maxBytes: Number.MAX_SAFE_INTEGER },
            admitAfter,
          );
          // The latest expiry each token was ever stored with: admission may keep a token out (or
          // keep its earlier entry), never let a token in that was not stored, or past its expiry.
          const stored = new Map<string, number>();
          let now = 0;
          for (const o of ops) {
            if (o.kind === 'tick') now += o.by;
            else if (o.kind === 'set') {
              cache.set(o.token, o.token, 0, now + 100, voucher());
              stored.set(o.token, now + 100);
            } else {
              const got = cache.get(o.token, now);
              if (got !== undefined) {
                expect(got).toBe(o.token);
                expect(now).toBeLessThan(stored.get(o.token) ?? -Infinity);
              }
            }
            expect(cache.size).toBeLessThanOrEqual(max);
          }
        },
      ),
      { numRuns: RUNS, seed: 15 },
    );
  });

  it('admits every token while lookups hit; on its second sighting once they have all missed', () => {
    const cache = new TokenCache<string>({ maxEntries: 4, maxBytes: Number.MAX_SAFE_INTEGER }, 8);
    const key = voucher();
    const token = (n: number) => `${'x'.repeat(30)}${String(n).padStart(16, '0')}`;
    // Cold: the first sighting is stored, so a repeat token is a hit from its second request.
    expect(cache.get(token(0), 0)).toBeUndefined();
    cache.set(token(0), 'v0', 0, 1e15, key);
    expect(cache.get(token(0), 0)).toBe('v0');
    // Eight misses in a row (a flood of distinct tokens): a first sighting is no longer stored...
    for (let n = 1; n <= 8; n++) expect(cache.get(token(n), 0)).toBeUndefined();
    cache.set(token(100), 'v100', 0, 1e15, key);
    expect(cache.get(token(100), 0)).toBeUndefined();
    // ...its second is.
    cache.set(token(100), 'v100', 0, 1e15, key);
    expect(cache.get(token(100), 0)).toBe('v100');
    // A hit: back to storing first sightings.
    cache.set(token(101), 'v101', 0, 1e15, key);
    expect(cache.get(token(101), 0)).toBe('v101');
  });

  it('by default turns to second sightings after maxEntries misses in a row (at least 1,024)', () => {
    for (const maxEntries of [10, 5000]) {
      const cache = new TokenCache<string>({ maxEntries, maxBytes: Number.MAX_SAFE_INTEGER });
      const key = voucher();
      const threshold = Math.max(maxEntries, 1024);
      for (let n = 0; n < threshold - 1; n++) cache.get(`miss-${n}`.padEnd(40, '-'), 0);
      cache.set('a'.repeat(40), 'a', 0, 1e15, key);
      expect(cache.get('a'.repeat(40), 0)).toBe('a');
      for (let n = 0; n < threshold; n++) cache.get(`miss-${n}`.padEnd(40, '-'), 0);
      cache.set('b'.repeat(40), 'b', 0, 1e15, key);
      expect(cache.get('b'.repeat(40), 0)).toBeUndefined();
    }
  });
});
