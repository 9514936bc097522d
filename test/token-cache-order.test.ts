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
          const cache = new TokenCache<string>({
            maxEntries: max,
            maxBytes: Number.MAX_SAFE_INTEGER,
          });
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
});
