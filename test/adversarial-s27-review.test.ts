/**
 * Session 27, review of 4dea240 (src/signature.ts: the slow-key queue, startWaiting, the
 * watchdog) by a helper. Tests named `F<n>` reproduce a finding: each FAILED on 4dea240 and passes
 * on the fix (FIXED below). Tests named `S<n>` probe what was found sound. A second review, of
 * that fix (8ab0838): `R<n>` failed on it, and its own `S<n>` probes.
 * Answers and their order are asserted; time only as a bound on a hang, or (F2b) against the
 * busy pool's own time measured in the same run.
 */
import crypto, { pbkdf2 } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  answers,
  burstAnsweredThenInline,
  es256,
  es384,
  loadSignature,
  p256,
  p384,
  SLOW_ON_POOL,
} from './helpers/pool-probe.ts';
import type { Signature } from './helpers/pool-probe.ts';

beforeEach(() => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const turn = () => new Promise((r) => setImmediate(r));
const TOKENS = Array.from({ length: 16 }, (_, i) => es384(i, i % 2 === 0));
const tok = (i: number) => TOKENS[i % 16] as string;
const ok = (i: number) => i % 2 === 0;
const realVerify = crypto.verify;

/** src/signature.ts afresh over a callback form that does what `impl` says. */
async function loadCustom(
  impl: (
    args: unknown[],
    callback: (e: Error | null, ok: unknown) => void,
    call: number,
  ) => unknown,
  poolProofMs = 50,
): Promise<Signature> {
  vi.resetModules();
  let calls = 0;
  vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
    const callback = args[4] as ((e: Error | null, ok: unknown) => void) | undefined;
    if (typeof callback !== 'function')
      return (realVerify as (...a: unknown[]) => boolean)(...args);
    return impl(args, callback, ++calls);
  }) as typeof crypto.verify);
  const module = await import('../src/signature.ts');
  module.signatureRoute.poolProofMs = poolProofMs;
  return module;
}
const truth = (args: unknown[]) =>
  (realVerify as (...a: unknown[]) => boolean)(...args.slice(0, 4));

describe('findings', () => {
  // FIXED (was a fault, medium): once the pool is declared broken, startWaiting() hands EVERY waiter a microtask
  // (src/signature.ts:262-268) and each verifies inline (start(), :384-391): a backlog of N
  // P-384 verifications runs in one microtask checkpoint, N x ~0.7 ms with no I/O, no timer, no
  // late callback heard. Before the queue existed those N were on the pool and went to jose, async.
  it('F1: a declared-broken pool does not run the whole slow backlog inline in one macrotask', async () => {
    const probe = await loadSignature(() => 'never', 50);
    const n = SLOW_ON_POOL + 400;
    let ticks = 0;
    let stop = false;
    const tick = () => {
      ticks++;
      if (!stop) setImmediate(tick);
    };
    setImmediate(tick);
    const answeredAt: number[] = [];
    const pending = Array.from({ length: n }, (_, i) =>
      Promise.resolve(probe.module.verifySignature(tok(i), p384.publicKey, 'ES384')).then((v) => {
        answeredAt.push(ticks);
        return v;
      }),
    );
    const got = await answers(pending, 15_000);
    stop = true;
    expect(got).toEqual(Array.from({ length: n }, (_, i) => ok(i)));
    const perTick = new Map<number, number>();
    for (const t of answeredAt) perTick.set(t, (perTick.get(t) ?? 0) + 1);
    const most = Math.max(...perTick.values());
    expect(most).toBeLessThanOrEqual(2 * SLOW_ON_POOL);
  });

  // FIXED (was a fault, low): the watchdog settles with `fallback()` = jose (src/signature.ts:407), whose
  // crypto.subtle.verify is, on Node, a job on the same libuv pool the watchdog just judged
  // broken. Where that pool is dead, the "no hang" guarantee rests on a second pool call.
  it('F2a: a pool dead for WebCrypto too: the watchdog still answers (inline, as the probe proved)', async () => {
    const probe = await loadSignature(() => 'never', 50);
    vi.spyOn(globalThis.crypto.subtle, 'verify').mockImplementation(() => new Promise(() => {}));
    const pending = [0, 1, 2].map((i) =>
      probe.module.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(pending, 1500)).toEqual([true, false, true]);
  });

  // FIXED (was a fault, low): the same on a real pool that is only busy (the case the late callback exists
  // for): the abandoned verification's jose job queues behind the same busy pool, so the watchdog
  // saves nothing (answer ~ when the pool frees) and does each verification twice on the pool.
  it('F2b: real libuv pool busy at start-up: the watchdog answers at about poolProofMs', async () => {
    vi.resetModules();
    const module = await import('../src/signature.ts');
    module.signatureRoute.poolProofMs = 50;
    const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    // Calibrate: pbkdf2 iterations for ~600 ms of one core.
    let t0 = performance.now();
    crypto.pbkdf2Sync('a', 'b', 20_000, 32, 'sha256');
    const perIter = (performance.now() - t0) / 20_000;
    const iterations = Math.max(10_000, Math.round(600 / perIter));
    const busy = Array.from(
      { length: threads },
      () => new Promise((r) => pbkdf2('a', 'b', iterations, 32, 'sha256', r)),
    );
    t0 = performance.now();
    const answer = module.verifySignature(tok(0), p384.publicKey, 'ES384');
    expect(answer).toBeInstanceOf(Promise);
    expect(await answer).toBe(true);
    const tookMs = performance.now() - t0;
    await Promise.all(busy);
    const poolFreeMs = performance.now() - t0;
    expect(tookMs).toBeLessThan(poolFreeMs / 2);
  });

  // FIXED (was a fault, low): a watchdog's settle() uncounts a verification that is still on libuv's pool
  // (src/signature.ts:371-381 via :400). Once a late callback un-breaks the pool (:415-416), a new
  // burst gets SLOW_ON_POOL fresh slots while the abandoned ones still run: up to 2 x the bound.
  it('F3: after a misfire and a late callback, slow verifications on the pool stay within SLOW_ON_POOL', async () => {
    const probe = await loadSignature((call) => (call <= SLOW_ON_POOL ? 100 + 40 * call : 5), 30);
    const first = Array.from({ length: SLOW_ON_POOL }, (_, i) =>
      probe.module.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    for (let i = 0; i < 200 && probe.callbacks() === 0; i++) await sleep(2);
    expect(probe.callbacks()).toBe(1); // the first late callback: proven, unbroken
    const burst = Array.from({ length: 2 * SLOW_ON_POOL }, (_, i) =>
      probe.module.verifySignature(tok(100 + i), p384.publicKey, 'ES384'),
    );
    const got = await answers([...first, ...burst], 5000);
    expect(got).toEqual([
      ...Array.from({ length: SLOW_ON_POOL }, (_, i) => ok(i)),
      ...Array.from({ length: 2 * SLOW_ON_POOL }, (_, i) => ok(100 + i)),
    ]);
    expect(probe.maxOutstanding()).toBeLessThanOrEqual(SLOW_ON_POOL);
  });

  // FIXED (was a fault, low, hardening): the callback form is never probed (only the synchronous form is,
  // nodeRouteWorks), yet its `ok` is resolved as is (:421); src/dpop.ts:160 tests it for truth.
  it('F4: a callback form that answers a non-boolean is not believed', async () => {
    const module = await loadCustom((_args, cb) => setTimeout(() => cb(null, 'yes'), 1));
    expect(await module.verifySignature(tok(1), p384.publicKey, 'ES384')).toBe(false);
  });
});

describe('sound (pass on 4dea240)', () => {
  it('S1: a callback form that calls back synchronously: 3 x bound answered, fast key inline after', async () => {
    let outstanding = 0;
    let max = 0;
    const module = await loadCustom((args, cb) => {
      outstanding++;
      max = Math.max(max, outstanding);
      outstanding--;
      cb(null, truth(args));
    });
    await burstAnsweredThenInline(module, 3 * SLOW_ON_POOL, 2000);
  });

  it('S2: broken -> late callback -> unbroken -> bursts: bound kept for new calls, FIFO, nothing left counted', async () => {
    let late = true;
    const probe = await loadSignature((call) => (late && call <= 3 ? 120 : 3), 30);
    const a = [0, 1, 2].map((i) => probe.module.verifySignature(tok(i), p384.publicKey, 'ES384'));
    for (let i = 0; i < 500 && vi.mocked(process.emitWarning).mock.calls.length === 0; i++) {
      await sleep(2); // until the watchdog declares the pool broken
    }
    expect(probe.module.verifySignature(tok(3), p384.publicKey, 'ES384')).toBe(false); // inline
    for (let i = 0; i < 500 && probe.callbacks() < 3; i++) await sleep(2); // late: unbroken
    late = false;
    const before = probe.started.length;
    const n = 3 * SLOW_ON_POOL;
    const b = Array.from({ length: n }, (_, i) =>
      probe.module.verifySignature(es384(1000 + i, i % 2 === 0), p384.publicKey, 'ES384'),
    );
    expect(probe.started.length - before).toBe(SLOW_ON_POOL);
    expect(await answers([...a, ...b], 3000)).toEqual([
      true,
      false,
      true,
      ...Array.from({ length: n }, (_, i) => i % 2 === 0),
    ]);
    const order = probe.started.slice(before);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    await turn();
    expect(probe.module.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
  });

  it('S3: every callback-form call throws or errors: each answer is jose\'s, never "bad" for a good one', async () => {
    const module = await loadCustom((_args, cb, call) => {
      if (call % 2) throw new Error('runtime');
      setTimeout(() => cb(new Error('runtime'), false), 1);
    });
    await burstAnsweredThenInline(module, 3 * SLOW_ON_POOL, 3000);
  });

  it('S4: watchdogs of several pending verifications, adaptive ones among them: one warning, counters back', async () => {
    const probe = await loadSignature(() => 'never', 30);
    const m = probe.module;
    m.signatureRoute.force = 'pool'; // adaptive keys on the pool too (bench)
    const p = [
      ...Array.from({ length: 2 * SLOW_ON_POOL }, (_, i) =>
        m.verifySignature(tok(i), p384.publicKey, 'ES384'),
      ),
      m.verifySignature(es256(), p256.publicKey, 'ES256'),
    ];
    m.signatureRoute.force = undefined;
    expect(await answers(p, 3000)).toEqual([
      ...Array.from({ length: 2 * SLOW_ON_POOL }, (_, i) => ok(i)),
      true,
    ]);
    expect(process.emitWarning).toHaveBeenCalledTimes(1);
    await turn();
    expect(m.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
  });

  it('S5: a forged-ES384 backlog on a working pool: a fast key alone in its turn stays inline, the pool holds <= bound', async () => {
    const probe = await loadSignature(() => 20, 60_000);
    const m = probe.module;
    const flood = Array.from({ length: 5 * SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(2 * i + 1), p384.publicKey, 'ES384'),
    );
    await turn();
    expect(m.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true); // inline: pooledSlow > 0
    expect(await answers(flood, 3000)).toEqual(flood.map(() => false));
    expect(probe.maxOutstanding()).toBeLessThanOrEqual(SLOW_ON_POOL);
  });
});

describe('second review (of 8ab0838): findings', () => {
  // FIXED (was a fault, low; a runtime that drops callbacks, not libuv): calls abandoned by their watchdog stay counted until their
  // callback (8ab0838, src/signature.ts:389-398, 416, 422). If those callbacks never come but the
  // pool is then proven by another call (late), pooledSlow stays at SLOW_ON_POOL for good: every
  // later P-384 verification waits in slowWaiting forever, on a pool that now answers in 5 ms.
  it('R1: start-up calls lost, pool proven later: later ES384 verifications are still answered', async () => {
    // calls 1..8: the ES384 ones, lost; every later call (ES256 on the pool, new ES384) answers.
    const probe = await loadSignature(
      (call) => (call <= SLOW_ON_POOL ? 'never' : call < 40 ? 100 : 5),
      30,
    );
    const m = probe.module;
    const first = Array.from({ length: SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    // A burst of ES256 in the same turn: past the inline budget, some go to the pool (100 ms).
    const fast = Array.from({ length: 30 }, (_, i) =>
      m.verifySignature(es256(i), p256.publicKey, 'ES256'),
    );
    expect(await answers([...first, ...fast], 3000)).toEqual([
      ...Array.from({ length: SLOW_ON_POOL }, (_, i) => ok(i)),
      ...fast.map(() => true),
    ]);
    for (let i = 0; i < 200 && probe.scheduled() > 0; i++) await sleep(5); // proven, unbroken
    expect(probe.callbacks()).toBeGreaterThan(0);
    const later = Array.from({ length: 4 }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(later, 2000)).toEqual([true, false, true, false]);
  });

  // FIXED (was a fault, low): the watchdogs of a burst of adaptive verifications sent to the pool all fire in one
  // timers phase; 8ab0838 answers each inline (src/signature.ts:418-430), all in one check phase,
  // past INLINE_BUDGET_MS: the event loop is held for the whole burst (jose before: async).
  it('R2: watchdogs of a burst of adaptive verifications answer it over several turns, not one', async () => {
    const probe = await loadSignature(() => 'never', 30);
    const m = probe.module;
    const n = 2000;
    const tokens = Array.from({ length: n }, (_, i) => es256(i));
    let ticks = 0;
    let stop = false;
    const tick = () => {
      ticks++;
      if (!stop) setImmediate(tick);
    };
    const answeredAt: number[] = [];
    const p = tokens.map((t) =>
      Promise.resolve(m.verifySignature(t, p256.publicKey, 'ES256')).then((v) => {
        answeredAt.push(ticks);
        return v;
      }),
    );
    await turn();
    setImmediate(tick);
    const got = await answers(p, 10_000);
    stop = true;
    expect(got.every((v) => v === true)).toBe(true);
    const perTick = new Map<number, number>();
    for (const t of answeredAt) perTick.set(t, (perTick.get(t) ?? 0) + 1);
    // Before: all 2,000 in one check phase (about 125 ms here). Now 10 ms of them a turn.
    expect(Math.max(...perTick.values())).toBeLessThan(n / 2);
  });
});

describe('second review: sound', () => {
  it('S1: a callback form that ignores the callback and returns a boolean: answered, then inline', async () => {
    const m = await loadCustom((args) => truth(args), 30);
    const p = Array.from({ length: 3 * SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(p, 3000)).toEqual(p.map((_, i) => ok(i)));
    expect(m.verifySignature(tok(0), p384.publicKey, 'ES384')).toBe(true); // broken: inline
  });

  it('S2: Deno-style callback form (sync compute, callback in setTimeout): all answered, bound kept', async () => {
    let out = 0;
    let max = 0;
    const m = await loadCustom((args, cb) => {
      const r = truth(args);
      out++;
      max = Math.max(max, out);
      setTimeout(() => {
        out--;
        cb(null, r);
      });
    }, 30);
    const p = Array.from({ length: 5 * SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(p, 3000)).toEqual(p.map((_, i) => ok(i)));
    expect(max).toBeLessThanOrEqual(SLOW_ON_POOL);
    await turn();
    expect(m.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
  });

  it('S3: callback then a synchronous throw in the same call: answered once, counters back', async () => {
    const m = await loadCustom((args, cb) => {
      cb(null, truth(args));
      throw new Error('after');
    }, 30);
    await burstAnsweredThenInline(m, 3 * SLOW_ON_POOL, 3000);
  });

  it('S4: callback twice (answer, then the opposite): the first answer stands', async () => {
    const m = await loadCustom((args, cb) => {
      const r = truth(args);
      setTimeout(() => {
        cb(null, r);
        cb(null, !r);
      }, 2);
    }, 30);
    await burstAnsweredThenInline(m, 3 * SLOW_ON_POOL, 3000);
  });

  it('S5: broken with a 200-deep backlog, then a late callback mid-drain: all answered, FIFO on the pool, counters back', async () => {
    const probe = await loadSignature((call) => (call <= SLOW_ON_POOL ? 45 : 3), 20);
    const m = probe.module;
    const n = 200;
    const distinct = Array.from({ length: n }, (_, i) => es384(i, ok(i)));
    const p = distinct.map((t) => m.verifySignature(t, p384.publicKey, 'ES384'));
    expect(await answers(p, 5000)).toEqual(p.map((_, i) => ok(i)));
    for (let i = 0; i < 200 && probe.scheduled() > 0; i++) await sleep(5);
    const order = probe.started.slice(SLOW_ON_POOL);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    await turn();
    expect(m.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
    const q = Array.from({ length: 3 * SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(q, 3000)).toEqual(q.map((_, i) => ok(i)));
    expect(probe.maxOutstanding()).toBeLessThanOrEqual(SLOW_ON_POOL);
  });

  it('S6: force=inline / force=pool flips with a backlog: all answered', async () => {
    const probe = await loadSignature(() => 5, 60_000);
    const m = probe.module;
    const a = Array.from({ length: 4 * SLOW_ON_POOL }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    m.signatureRoute.force = 'inline';
    const b = Array.from({ length: 4 }, (_, i) =>
      m.verifySignature(tok(i), p384.publicKey, 'ES384'),
    );
    m.signatureRoute.force = 'pool';
    const c = Array.from({ length: 4 }, (_, i) =>
      m.verifySignature(es256(i), p256.publicKey, 'ES256'),
    );
    m.signatureRoute.force = undefined;
    expect(await answers([...a, ...b, ...c], 3000)).toEqual([
      ...a.map((_, i) => ok(i)),
      true,
      false,
      true,
      false,
      true,
      true,
      true,
      true,
    ]);
    await turn();
    expect(m.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
  });
});
