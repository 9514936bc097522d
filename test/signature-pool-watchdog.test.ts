/**
 * The thread pool must never hang a request. On a runtime whose `crypto.verify` callback never
 * comes (a partial node:crypto), a pool verification falls back to jose once its watchdog fires,
 * and later verifications run inline until it calls back; a pool that calls back late is heard
 * once only, and used again.
 * Each test loads src/signature.ts afresh: whether the pool has proven itself is per process.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { es384, loadSignature, p384 } from './helpers/pool-probe.ts';

const good = es384(1);
const bad = es384(1, false);

/** crypto.verify whose callback form calls back after `delayMs`, or never (`undefined`). */
async function load(delayMs: number | undefined) {
  const probe = await loadSignature(() => delayMs ?? 'never');
  return { module: probe.module, late: probe.callbacks };
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

describe('a pool that never calls back', () => {
  it('answers every waiting verification (inline) and then verifies inline', async () => {
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
    // It called back: busy, not broken. The pool is used again (no watchdog: it is proven).
    const again = module.verifySignature(good, p384.publicKey, 'ES384');
    expect(again).toBeInstanceOf(Promise);
    expect(await again).toBe(true);
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
