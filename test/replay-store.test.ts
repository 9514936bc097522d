/**
 * The DPoP memory replay store (src/replay-store.ts) against a model: a Map of every proof
 * accepted and when it expires. For any inserts, TTLs and passage of time, a live proof is always
 * a replay and a store is never over its bound; with a few TTLs (the verifier uses one) it answers
 * exactly what the model says, a full store of live proofs refusing. And the entries it looks at
 * stay O(1) per insert (plus each entry dropped once), full or not: a flood of proofs at a full
 * store once walked every entry per refused proof.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryReplayStore } from 'resource-guard';
import { counted } from './helpers/map-steps.ts';
import { clock } from './helpers/outcome.ts';

afterEach(() => {
  vi.useRealTimers();
});

type Answer = 'accepted' | 'replay' | 'refused';
type Op =
  | { readonly insert: number; readonly ttl: number } // a proof from a small pool: repeats
  | { readonly flood: number; readonly ttl: number } // that many new proofs
  | { readonly advance: number }; // milliseconds

/** The store and the model, run through `ops`; `exact`: at most a few TTLs, so no slack. */
function exercise(max: number, ops: readonly Op[], exact: boolean) {
  clock();
  const store = new MemoryReplayStore({ maxEntries: max });
  const model = new Map<string, number>(); // proof → expiry
  let inserts = 0;
  let accepted = 0;
  let steps = 0;
  let fresh = 0;
  const insert = (key: string, ttl: number) => {
    const now = Date.now();
    const live = [...model.values()].filter((until) => until > now).length;
    const expected: Answer =
      (model.get(key) ?? 0) > now ? 'replay' : live >= max ? 'refused' : 'accepted';
    const { result, steps: looked } = counted((): Answer => {
      try {
        return store.insertIfAbsent(key, ttl) ? 'accepted' : 'replay';
      } catch {
        return 'refused';
      }
    });
    inserts++;
    steps += looked;
    if (exact) expect(result).toBe(expected);
    // Else a proof may be held past its expiry, so a store may refuse while the model has room.
    else {
      expect(result === 'replay').toBe(expected === 'replay');
      if (expected === 'refused') expect(result).toBe('refused');
    }
    if (result === 'accepted') {
      model.set(key, now + ttl);
      accepted++;
    }
    expect(store.size).toBeLessThanOrEqual(max);
  };
  for (const op of ops) {
    if ('advance' in op) vi.setSystemTime(Date.now() + op.advance);
    else if ('insert' in op) insert(`proof-${op.insert}`, op.ttl);
    else for (let i = 0; i < op.flood; i++) insert(`flood-${fresh++}`, op.ttl);
  }
  return { inserts, accepted, steps };
}

const ops = (ttl: fc.Arbitrary<number>, back = 0) =>
  fc.array(
    fc.oneof(
      fc.record({ insert: fc.integer({ min: 0, max: 39 }), ttl }),
      fc.record({ flood: fc.integer({ min: 1, max: 60 }), ttl }),
      fc.record({ advance: fc.integer({ min: -back, max: 4000 }) }),
    ),
    { maxLength: 60 },
  );

describe('the memory replay store (model-based)', () => {
  it('a few TTLs: answers exactly what the model says, and looks at O(1) entries per insert', () => {
    const ttls = [1000, 2500, 7000];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        ops(fc.constantFrom(...ttls)),
        (max, sequence) => {
          const { inserts, accepted, steps } = exercise(max, sequence, true);
          // Each lane's front once per insert, and each entry dropped at most once.
          expect(steps).toBeLessThanOrEqual(ttls.length * inserts + accepted);
        },
      ),
      { numRuns: 300, seed: 9449 },
    );
  });

  it('any number of TTLs: a live proof is always a replay, and the work per insert stays bounded', () => {
    const ttl = fc.integer({ min: 1, max: 8000 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), ops(ttl), (max, sequence) => {
        const { inserts, accepted, steps } = exercise(max, sequence, false);
        expect(steps).toBeLessThanOrEqual(9 * inserts + accepted); // at most 8 lanes
      }),
      { numRuns: 300, seed: 9068 },
    );
  });

  it('the clock stepping back and forth: a live proof is always a replay, and a full store of expired proofs has room again within a second', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        ops(fc.constantFrom(1000, 70_000), 90_000),
        (max, sequence) => {
          exercise(max, sequence, false);
          // Proofs made after a step back queue behind an older, later-expiring one: once they have
          // expired the store has room again (it once refused until the older one expired too).
          const store = new MemoryReplayStore({ maxEntries: max + 1 });
          clock();
          expect(store.insertIfAbsent('before', 70_000)).toBe(true);
          vi.setSystemTime(Date.now() - 3_600_000);
          for (let i = 0; i < max; i++) expect(store.insertIfAbsent(`x-${i}`, 70_000)).toBe(true);
          expect(() => store.insertIfAbsent('y', 70_000)).toThrow(/unexpired/);
          expect(store.insertIfAbsent('before', 70_000)).toBe(false); // still live: a replay
          vi.setSystemTime(Date.now() + 71_000); // the x-* expired, 'before' has not
          expect(store.insertIfAbsent('z', 70_000)).toBe(true);
          expect(store.insertIfAbsent('before', 70_000)).toBe(false);
        },
      ),
      { numRuns: 200, seed: 7515 },
    );
  });

  it('full of live proofs of three TTLs: a flood is refused looking at each lane once, replays stay replays, and expiry frees exactly the expired', () => {
    const time = clock();
    const store = new MemoryReplayStore({ maxEntries: 3000 });
    const ttls = [10_000, 20_000, 30_000];
    for (let i = 0; i < 3000; i++) store.insertIfAbsent(`live-${i}`, ttls[i % 3] as number);
    const flood = counted(() => {
      let refused = 0;
      for (let i = 0; i < 1000; i++) {
        try {
          store.insertIfAbsent(`new-${i}`, 10_000);
        } catch {
          refused++;
        }
      }
      return refused;
    });
    expect(flood.result).toBe(1000);
    expect(flood.steps).toBeLessThanOrEqual(1000 * ttls.length); // a full walk: 3,000 each
    time.advance(5);
    for (let i = 0; i < 3000; i += 7) expect(store.insertIfAbsent(`live-${i}`, 10_000)).toBe(false);
    time.advance(6); // the 10 s proofs (1,000) have expired, the others have not
    let admitted = 0;
    for (let i = 0; i < 1500; i++) {
      try {
        if (store.insertIfAbsent(`later-${i}`, 10_000)) admitted++;
      } catch {
        // full again
      }
    }
    expect(admitted).toBe(1000);
    expect(store.insertIfAbsent('live-1', 10_000)).toBe(false); // a 20 s proof, still live
  });
});
