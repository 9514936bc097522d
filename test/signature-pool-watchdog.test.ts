/**
 * The thread pool must never hang a request. On a runtime whose `crypto.verify` callback never
 * comes (a partial node:crypto), a pool verification falls back to jose once its watchdog fires,
 * and every later verification runs inline; a pool that calls back late is heard once only.
 * Each test loads src/signature.ts afresh: whether the pool has proven itself is per process.
 */
import crypto, { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type * as SignatureModule from '../src/signature.ts';

type Signature = typeof SignatureModule;

function jws(privateKey: KeyObject, alg: string, hash: string, n: number): string {
  const header = Buffer.from(JSON.stringify({ alg })).toString('base64url');
  const input = `${header}.${Buffer.from(`payload ${n}`).toString('base64url')}`;
  const signature = sign(hash, Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }); // always the pool's
const good = jws(p384.privateKey, 'ES384', 'sha384', 1);
const bad = `${good.slice(0, -6)}AAAAAA`;
const realVerify = crypto.verify;

/** crypto.verify whose callback form calls back after `delayMs`, or never (`undefined`). */
async function load(
  delayMs: number | undefined,
): Promise<{ module: Signature; late: () => number }> {
  vi.resetModules();
  let lateCalls = 0;
  vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
    const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
    if (typeof callback !== 'function') {
      return (realVerify as (...a: unknown[]) => boolean)(...args);
    }
    const ok = (realVerify as (...a: unknown[]) => boolean)(...args.slice(0, 4));
    if (delayMs !== undefined) {
      setTimeout(() => {
        lateCalls++;
        callback(null, ok);
      }, delayMs);
    }
    return undefined;
  }) as typeof crypto.verify);
  const module = await import('../src/signature.ts');
  module.signatureRoute.poolProofMs = 50;
  return { module, late: () => lateCalls };
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

describe('a pool that never calls back', () => {
  it('answers every waiting verification (by jose) and then verifies inline', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => void warnings.push(`${warning.code}`);
    process.on('warning', onWarning);
    try {
      const { module } = await load(undefined);
      const started = Date.now();
      const answers = await Promise.all([
        module.verifySignature(good, p384.publicKey, 'ES384'),
        module.verifySignature(bad, p384.publicKey, 'ES384'),
        module.verifySignature(good, p384.publicKey, 'ES384'),
      ]);
      expect(answers).toEqual([true, false, true]);
      expect(Date.now() - started).toBeLessThan(2000);
      // From now on inline: a boolean at once, right either way.
      expect(module.verifySignature(good, p384.publicKey, 'ES384')).toBe(true);
      expect(module.verifySignature(bad, p384.publicKey, 'ES384')).toBe(false);
      await new Promise((r) => setImmediate(r));
      expect(warnings).toEqual(['RESOURCE_GUARD_CRYPTO_POOL']);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('a pool that calls back', () => {
  it('late, after the watchdog: each verification is answered once, by the fallback', async () => {
    const { module, late } = await load(120);
    const answers = await Promise.all([
      module.verifySignature(good, p384.publicKey, 'ES384'),
      module.verifySignature(bad, p384.publicKey, 'ES384'),
    ]);
    expect(answers).toEqual([true, false]);
    await new Promise((r) => setTimeout(r, 200));
    expect(late()).toBe(2); // heard, and ignored: no second answer, no negative pool count
    expect(module.verifySignature(good, p384.publicKey, 'ES384')).toBe(true); // inline now
  });

  it('in time: proven once, the pool is used without a watchdog from then on', async () => {
    const { module } = await load(5);
    expect(await module.verifySignature(good, p384.publicKey, 'ES384')).toBe(true);
    module.signatureRoute.poolProofMs = 1; // would fire at once if a watchdog were still set
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        module.verifySignature(i % 2 ? bad : good, p384.publicKey, 'ES384'),
      ),
    );
    expect(answers).toEqual([true, false, true, false, true, false]);
    const pending = module.verifySignature(good, p384.publicKey, 'ES384');
    expect(pending).toBeInstanceOf(Promise); // still the pool's: never marked broken
    expect(await pending).toBe(true);
  });
});
