/**
 * Session 26, second review: every change to src/ and adapters/ since 5fc1d38, attacked for its
 * class, for regressions and for consistency. Mostly the slow-key queue of src/signature.ts
 * (3f4d7d2/b362201: at most 2 x UV_THREADPOOL_SIZE P-384/P-521 verifications on libuv's pool, the
 * rest waiting in JS, first in, first out; the watchdog judged a turn late; a late callback
 * clearing `poolBroken`): can a waiting verification be held forever, is the bound kept, is the
 * order kept, does a synchronous throw leak a slot. Then the DPoP proof jwk metadata rule
 * (de09196) against the jwk a browser's WebCrypto really exports, and the URL-credentials rule
 * of `quote()` (src/option-checks.ts) for the spellings a TypeError still shows.
 *
 * Each signature test loads src/signature.ts afresh (whether the pool has proven itself is per
 * process), with `crypto.verify`'s callback form replaced (as test/signature-pool-watchdog.test.ts
 * does): answers and their order are asserted, and time only as a bound on a hang.
 * A test marked `FIXED` failed on the code it reviewed (3f4d7d2, reverted, and de09196) and passes
 * on the fix.
 */
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, SignJWT } from 'jose';
import type { JWK } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import { ath, dpopRequest, ORIGIN } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';
import { answers, es384, loadSignature, p384, SLOW_ON_POOL } from './helpers/pool-probe.ts';
import type { PoolProbe } from './helpers/pool-probe.ts';

afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

/** Token n: even ones good, odd ones with a broken signature. */
const token = (n: number) => es384(n, n % 2 === 0);
const expected = (n: number) => n % 2 === 0;
/** As the review had it: a delay for every callback (or none), the first `throwFirst` throw. */
const load = (delayMs: number | undefined, throwFirst = 0) =>
  loadSignature((call) => (call <= throwFirst ? 'throw' : (delayMs ?? 'never')));
const lateCallsOf = (probe: PoolProbe) => probe.callbacks();

describe('the slow-key queue while the pool has not proven itself', () => {
  // FIXED (was a fault, high): more than twice SLOW_ON_POOL P-384 verifications at once before the pool ever
  // called back, on a pool that never does (a partial node:crypto, the case the watchdog exists
  // for): the SLOW_ON_POOL on the pool each fire their watchdog, and each `settle()` starts ONE
  // waiter (src/signature.ts:356-360); that waiter sees `poolBroken` and verifies inline
  // (src/signature.ts:367-375) without starting the next one, and no verification is ever put on
  // the pool again (runsInline: poolBroken). Every waiter past the first SLOW_ON_POOL is held
  // forever: the requests hang (no 401, no 503, no timeout). Fixed: startWaiting() starts every
  // waiter the pool has room for, or all of them once it is declared broken.
  it('a pool that never calls back: every one of 3 x SLOW_ON_POOL verifications is answered', async () => {
    const { module } = await load(undefined);
    const n = 3 * SLOW_ON_POOL;
    const pending = Array.from({ length: n }, (_, i) =>
      module.verifySignature(token(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(pending, 2000)).toEqual(Array.from({ length: n }, (_, i) => expected(i)));
  });

  // FIXED (was a fault, high): the same burst on a pool that is only busy at start-up (the app's bcrypt, zlib,
  // fs: the case b362201 was about). The late callbacks clear `poolBroken`, but `settle()` has
  // already run for each (the watchdog's), so none starts a waiter (src/signature.ts:393-396); the
  // waiters stay queued with nothing on the pool, and from then on every new P-384/P-521
  // verification is pushed behind them (`slowWaiting.length > 0`, src/signature.ts:406): every
  // slow-key token hangs for the life of the process. An attacker needs only a burst of forged
  // ES384 tokens while the pool is busy at start-up. Fixed: a late callback starts the waiters.
  it('a pool busy at start-up: after its late callbacks, the waiters and a new verification are answered', async () => {
    const probe = await load(150);
    const n = 3 * SLOW_ON_POOL;
    const burst = Array.from({ length: n }, (_, i) =>
      probe.module.verifySignature(token(i), p384.publicKey, 'ES384'),
    );
    // Past the watchdog (50 ms, a turn late) and the late callbacks (150 ms).
    await new Promise((r) => setTimeout(r, 400));
    expect(lateCallsOf(probe)).toBeGreaterThanOrEqual(SLOW_ON_POOL);
    const later = [0, 1].map((i) =>
      probe.module.verifySignature(token(1000 + i), p384.publicKey, 'ES384'),
    );
    expect(await answers([...burst, ...later], 1500)).toEqual([
      ...Array.from({ length: n }, (_, i) => expected(i)),
      true,
      false,
    ]);
  });

  it('(control) a burst of at most 2 x SLOW_ON_POOL on a never-calling pool is answered, then inline', async () => {
    const { module } = await load(undefined);
    const n = 2 * SLOW_ON_POOL;
    const pending = Array.from({ length: n }, (_, i) =>
      module.verifySignature(token(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(pending, 2000)).toEqual(Array.from({ length: n }, (_, i) => expected(i)));
    expect(module.verifySignature(token(2), p384.publicKey, 'ES384')).toBe(true);
    expect(module.verifySignature(token(3), p384.publicKey, 'ES384')).toBe(false);
  });
});

describe('the slow-key queue on a working pool (holds)', () => {
  it('never more than SLOW_ON_POOL on the pool, started first in first out, each answered right', async () => {
    const probe = await load(3);
    // Prove the pool first (no watchdog from then on).
    expect(await probe.module.verifySignature(token(0), p384.publicKey, 'ES384')).toBe(true);
    probe.started.length = 0;
    const n = 5 * SLOW_ON_POOL + 3;
    const pending = Array.from({ length: n }, (_, i) =>
      probe.module.verifySignature(token(i + 1), p384.publicKey, 'ES384'),
    );
    expect(await answers(pending, 5000)).toEqual(
      Array.from({ length: n }, (_, i) => expected(i + 1)),
    );
    expect(probe.maxOutstanding()).toBe(SLOW_ON_POOL);
    expect(probe.started).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // Nothing left counted: a fresh burst again fills exactly SLOW_ON_POOL slots, in order.
    probe.started.length = 0;
    const again = Array.from({ length: SLOW_ON_POOL + 1 }, (_, i) =>
      probe.module.verifySignature(token(100 + i), p384.publicKey, 'ES384'),
    );
    expect(probe.started).toEqual(Array.from({ length: SLOW_ON_POOL }, (_, i) => 100 + i));
    expect(await answers(again, 2000)).toEqual(
      Array.from({ length: SLOW_ON_POOL + 1 }, (_, i) => expected(100 + i)),
    );
  });

  it('a callback form that throws synchronously frees its slot: jose answers, the queue drains', async () => {
    const probe = await load(3, 2 * SLOW_ON_POOL);
    const n = 3 * SLOW_ON_POOL;
    const pending = Array.from({ length: n }, (_, i) =>
      probe.module.verifySignature(token(i), p384.publicKey, 'ES384'),
    );
    expect(await answers(pending, 5000)).toEqual(Array.from({ length: n }, (_, i) => expected(i)));
    // The throws (decided by jose) took no slot for good: the rest went to the pool, bounded.
    expect(probe.started.length).toBe(n - 2 * SLOW_ON_POOL);
    expect(probe.maxOutstanding()).toBeLessThanOrEqual(SLOW_ON_POOL);
  });
});

// ---------------------------------------------------------------------------------------------
// DPoP (de09196): the jwk a real client sends
// ---------------------------------------------------------------------------------------------

describe("a DPoP proof whose jwk is WebCrypto's own export (holds)", () => {
  // A browser client that exports its public key with crypto.subtle.exportKey('jwk') sends
  // key_ops ["verify"] and ext true, and for RSASSA-PKCS1-v1_5 also alg "RS256", PS256 for
  // RSA-PSS: all must stay accepted under the use/alg/key_ops rule.
  const cases = [
    { alg: 'ES256', params: { name: 'ECDSA', namedCurve: 'P-256' } },
    {
      alg: 'RS256',
      params: {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
    },
    {
      alg: 'PS256',
      params: {
        name: 'RSA-PSS',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
    },
  ] as const;

  it('ES256, RS256 and PS256 keys as exportKey writes them are accepted; the jwk carries key_ops', async () => {
    const issuerKey = await makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      dpop: { origin: ORIGIN, algorithms: ['ES256', 'RS256', 'PS256'] },
    });
    const got: Record<string, string> = {};
    for (const { alg, params } of cases) {
      const pair = (await globalThis.crypto.subtle.generateKey(params, false, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const jwk = (await globalThis.crypto.subtle.exportKey('jwk', pair.publicKey)) as JWK;
      expect(jwk.key_ops).toEqual(['verify']);
      if (alg !== 'ES256') expect(jwk.alg).toBe(alg);
      const jkt = await calculateJwkThumbprint(jwk);
      const access = await mint(issuerKey, m2mClaims({ cnf: { jkt } }));
      const p = await new SignJWT({
        jti: randomUUID(),
        htm: 'GET',
        htu: `${ORIGIN}/products`,
        iat: Math.floor(Date.now() / 1000),
        ath: ath(access),
      })
        .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk })
        .sign(pair.privateKey);
      got[alg] = await outcome(verifier.authenticate(dpopRequest(access, p)));
    }
    expect(got).toEqual({ ES256: 'ok', RS256: 'ok', PS256: 'ok' });
  });
});

// ---------------------------------------------------------------------------------------------
// quote() and credentials (de09196's USERINFO, src/option-checks.ts)
// ---------------------------------------------------------------------------------------------

describe("credentials in an option's TypeError", () => {
  const messageFor = (issuer: string): string => {
    try {
      createVerifier({ issuer, audience: AUDIENCE, jwks: { keys: [] } });
    } catch (error) {
      return (error as Error).message;
    }
    return '(accepted)';
  };

  it('(holds) the spellings a URL parser reads as credentials are never shown', () => {
    for (const issuer of [
      'https://admin:s3cret@tenant.example/oidc',
      'https://admin:s3/cr?et@tenant.example/oidc',
      ' https:\\\\admin:s3cret@tenant.example/oidc',
      'admin:s3cret@tenant.example/oidc',
    ]) {
      expect(messageFor(issuer)).not.toContain('s3');
    }
  });

  // FIXED (was a fault, low): USERINFO (src/option-checks.ts:428) needs a scheme at the very start, so a value
  // that is not one yet holds `user:password@` is quoted with its password in the TypeError, which
  // lands in a start-up log: a protocol-relative URL, the common typo `https//`, and an
  // environment value whose quotes were kept (`docker run --env-file` keeps them: ISSUER="..."). A
  // password needs a `:` before the `@`: hiding every value with both, in that order, covers the
  // class. Fixed: USERINFO is now `/:[^@]*@/u`.
  it('a password in a value that is not (yet) a URL is not shown either', () => {
    const shown: string[] = [];
    for (const issuer of [
      '//admin:s3cret@tenant.example/oidc',
      'https//admin:s3cret@tenant.example/oidc',
      '"https://admin:s3cret@tenant.example/oidc"',
    ]) {
      if (messageFor(issuer).includes('s3cret')) shown.push(issuer);
    }
    expect(shown).toEqual([]);
  });
});
