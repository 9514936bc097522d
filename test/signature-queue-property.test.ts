/**
 * The slow-key queue of src/signature.ts, as a property: at most SLOW_ON_POOL P-384/P-521
 * verifications on libuv's thread pool at once, the rest waiting in JS. Whatever the pool does
 * (answers soon, late after the watchdog, never, or throws at once), in whatever waves the
 * verifications come:
 * - every verification is answered, right, within a bound (never a hang: a request would hang);
 * - on a pool that answers, the bound is kept and the waiters start first in, first out;
 * - once it is all over, nothing is left counted: a fast key alone in its turn verifies inline
 *   again, and a fresh burst puts exactly SLOW_ON_POOL on the pool (or none, while the pool is
 *   declared broken and every key verifies inline).
 * Session 26's slow-key queue hung for good when a waiter started while the pool was declared
 * broken; each case here found it, with fewer shrunk steps than the hand-written tests.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  answers,
  es256,
  es384,
  loadSignature,
  p256,
  p384,
  SLOW_ON_POOL,
} from './helpers/pool-probe.ts';
import type { PoolFate } from './helpers/pool-probe.ts';

beforeEach(() => {
  // The watchdog warns once per load: fast-check loads the module dozens of times.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nextTurn = () => new Promise((r) => setImmediate(r));

/** Waves of verifications: how many at once, then how long until the next wave. */
const waves = fc.array(
  fc.record({ count: fc.integer({ min: 1, max: 3 * SLOW_ON_POOL }), gapMs: fc.nat(12) }),
  { minLength: 1, maxLength: 4 },
);
/** Which tokens are good (cycled over the verifications). */
const goodness = fc.array(fc.boolean(), { minLength: 1, maxLength: 7 });

interface Sent {
  readonly promises: (boolean | Promise<boolean>)[];
  readonly expected: boolean[];
}

/** Sends the waves; token n is verification n (from 1), good as `good` says. */
async function send(
  verify: (token: string) => boolean | Promise<boolean>,
  plan: readonly { count: number; gapMs: number }[],
  good: readonly boolean[],
): Promise<Sent> {
  const sent: Sent = { promises: [], expected: [] };
  for (const { count, gapMs } of plan) {
    for (let i = 0; i < count; i++) {
      const n = sent.promises.length + 1;
      const ok = good[n % good.length] as boolean;
      sent.expected.push(ok);
      sent.promises.push(verify(es384(n, ok)));
    }
    await sleep(gapMs);
  }
  return sent;
}

/** What is left once the pool has gone quiet: must be as a fresh process would be. */
async function nothingLeftCounted(
  probe: Awaited<ReturnType<typeof loadSignature>>,
  setFate: (fate: PoolFate) => void,
): Promise<void> {
  const { module } = probe;
  for (let i = 0; i < 100 && probe.scheduled() > 0; i++) await sleep(10);
  expect(probe.scheduled()).toBe(0);
  await nextTurn();
  // A fast key alone in its turn: inline, a boolean at once (no verification counted pooled).
  expect(module.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
  await nextTurn();
  setFate(1);
  const before = probe.started.length;
  const burst = Array.from({ length: SLOW_ON_POOL + 1 }, (_, i) =>
    module.verifySignature(es384(10_000 + i, i % 2 === 0), p384.publicKey, 'ES384'),
  );
  const onPool = probe.started.length - before;
  if (burst.every((answer) => typeof answer === 'boolean'))
    expect(onPool).toBe(0); // broken
  else expect(onPool).toBe(SLOW_ON_POOL);
  expect(await answers(burst, 3000)).toEqual(burst.map((_, i) => i % 2 === 0));
}

describe('the slow-key queue (property)', () => {
  it('a pool that answers (soon, or throws at once): bound kept, first in first out, all answered', async () => {
    await fc.assert(
      fc.asyncProperty(
        waves,
        goodness,
        fc.array(fc.oneof(fc.nat(15), fc.constant<'throw'>('throw')), {
          minLength: 1,
          maxLength: 9,
        }),
        async (plan, good, fates) => {
          let override: PoolFate | undefined;
          const probe = await loadSignature(
            (call) => override ?? (fates[call % fates.length] as PoolFate),
            60_000, // no watchdog fires: this pool always answers
          );
          const { module } = probe;
          const sent = await send(
            (token) => module.verifySignature(token, p384.publicKey, 'ES384'),
            plan,
            good,
          );
          expect(await answers(sent.promises, 5000)).toEqual(sent.expected);
          expect(probe.maxOutstanding()).toBeLessThanOrEqual(SLOW_ON_POOL);
          if (!fates.includes('throw')) {
            // First in, first out (a throw frees its slot at once, and the caller's next
            // verification, made in the same turn, may take it before the waiter's microtask).
            expect(probe.started).toEqual([...probe.started].sort((a, b) => a - b));
          }
          await nothingLeftCounted(probe, (fate) => (override = fate));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a hostile pool (never, late past the watchdog, throws): every verification answered, nothing left counted', async () => {
    await fc.assert(
      fc.asyncProperty(
        waves,
        goodness,
        // A pool that never calls back is a runtime's (a partial node:crypto): all or nothing. A
        // real pool always calls back at last: once it has, the watchdog stands down.
        fc.oneof(
          fc.constant<PoolFate[]>(['never']),
          fc.array(
            fc.oneof(
              fc.nat(15),
              fc.integer({ min: 70, max: 160 }), // after the 30 ms watchdog (judged a turn late)
              fc.constant<'throw'>('throw'),
            ),
            { minLength: 1, maxLength: 9 },
          ),
        ),
        async (plan, good, fates) => {
          let override: PoolFate | undefined;
          const probe = await loadSignature(
            (call) => override ?? (fates[call % fates.length] as PoolFate),
            30,
          );
          const { module } = probe;
          const sent = await send(
            (token) => module.verifySignature(token, p384.publicKey, 'ES384'),
            plan,
            good,
          );
          expect(await answers(sent.promises, 3000)).toEqual(sent.expected);
          await nothingLeftCounted(probe, (fate) => (override = fate));
        },
      ),
      { numRuns: 25 },
    );
  });
});
