/**
 * src/signature.ts loaded afresh (whether the thread pool has proven itself is per process) over a
 * `crypto.verify` whose callback form (the thread pool's) behaves as a test says: calls back after
 * a delay, never, or throws synchronously. The answer it gives is the real one, so a test asserts
 * decisions and order, and time only as a bound on a hang. Callers restore the mock
 * (`vi.restoreAllMocks()`) and reset modules after each test.
 */
import crypto, { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { expect, vi } from 'vitest';
import type * as SignatureModule from '../../src/signature.ts';

export type Signature = typeof SignatureModule;

/** What one callback-form call does: call back after `ms`, never, or throw at once. */
export type PoolFate = number | 'never' | 'throw';

/** A P-384 key: always the pool's route. */
export const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });

/** A P-256 key: the adaptive route (inline when alone in its turn). */
export const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** A compact ES256 JWS over `{"n":<n>}`, good. */
export function es256(n = 1): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256' })).toString('base64url');
  const input = `${header}.${Buffer.from(`{"n":${n}}`).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: p256.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

/** A compact ES384 JWS over `payload <n>`; `good: false` breaks its signature. */
export function es384(n: number, good = true, privateKey: KeyObject = p384.privateKey): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES384' })).toString('base64url');
  const input = `${header}.${Buffer.from(`payload ${n}`).toString('base64url')}`;
  const signature = sign('sha384', Buffer.from(input), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  const jws = `${input}.${signature.toString('base64url')}`;
  return good ? jws : `${jws.slice(0, -6)}AAAAAA`;
}

/** The n of an {@link es384} token, from the signing input the pool is handed. */
const numberOf = (input: Buffer) =>
  Number(
    Buffer.from(input.toString('latin1').split('.')[1] ?? '', 'base64url')
      .toString()
      .slice(8),
  );

export interface PoolProbe {
  readonly module: Signature;
  /** The token numbers, in the order the callback form took them (a throw took none). */
  readonly started: number[];
  /** Callback-form calls whose callback has not come yet (nor will, for 'never'). */
  readonly outstanding: () => number;
  /** The most {@link outstanding} at once. */
  readonly maxOutstanding: () => number;
  /** Callbacks made so far. */
  readonly callbacks: () => number;
  /** Callbacks still scheduled (a test waits for none before it checks what is left counted). */
  readonly scheduled: () => number;
}

const realVerify = crypto.verify;

/**
 * Loads src/signature.ts afresh over the mock; `fate(call)` decides call number `call` (from 1).
 * The watchdog's deadline is `poolProofMs`.
 */
export async function loadSignature(
  fate: (call: number) => PoolFate,
  poolProofMs = 50,
): Promise<PoolProbe> {
  vi.resetModules();
  const started: number[] = [];
  let outstanding = 0;
  let max = 0;
  let callbacks = 0;
  let scheduled = 0;
  let calls = 0;
  vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
    const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
    if (typeof callback !== 'function') {
      return (realVerify as (...a: unknown[]) => boolean)(...args);
    }
    calls++;
    const what = fate(calls);
    if (what === 'throw') throw new Error('a runtime that throws for its own reasons');
    started.push(numberOf(args[1] as Buffer));
    const ok = (realVerify as (...a: unknown[]) => boolean)(...args.slice(0, 4));
    outstanding++;
    max = Math.max(max, outstanding);
    if (what !== 'never') {
      scheduled++;
      setTimeout(() => {
        outstanding--;
        scheduled--;
        callbacks++;
        callback(null, ok);
      }, what);
    }
    return undefined;
  }) as typeof crypto.verify);
  const module = await import('../../src/signature.ts');
  module.signatureRoute.poolProofMs = poolProofMs;
  return {
    module,
    started,
    outstanding: () => outstanding,
    maxOutstanding: () => max,
    callbacks: () => callbacks,
    scheduled: () => scheduled,
  };
}

/** Each answer, or 'pending' for one not settled within `ms` (a hang, bounded). */
export async function answers(
  promises: readonly (boolean | Promise<boolean>)[],
  ms: number,
): Promise<(boolean | 'pending' | 'threw')[]> {
  const got: (boolean | 'pending' | 'threw')[] = promises.map(() => 'pending');
  const all = Promise.all(
    promises.map(async (p, i) => {
      try {
        got[i] = await p;
      } catch {
        got[i] = 'threw';
      }
    }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([all, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
  return got;
}

/** The slow-key bound as src/signature.ts computes it at import: twice libuv's thread count. */
export const SLOW_ON_POOL = (() => {
  const size = Number(process.env.UV_THREADPOOL_SIZE);
  return 2 * (Number.isInteger(size) && size >= 1 ? Math.min(size, 1024) : 4);
})();

/**
 * Sends `n` P-384 verifications at once (token i good when i is even); expects every answer right
 * within `ms`, then a fast key alone in its turn inline (nothing left counted on the pool).
 */
export async function burstAnsweredThenInline(
  module: Signature,
  n: number,
  ms: number,
): Promise<void> {
  const pending = Array.from({ length: n }, (_, i) =>
    module.verifySignature(es384(i, i % 2 === 0), p384.publicKey, 'ES384'),
  );
  expect(await answers(pending, ms)).toEqual(Array.from({ length: n }, (_, i) => i % 2 === 0));
  await new Promise((r) => setImmediate(r));
  expect(module.verifySignature(es256(), p256.publicKey, 'ES256')).toBe(true);
}
