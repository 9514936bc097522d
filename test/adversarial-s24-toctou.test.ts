/**
 * Session 24, time of check / time of use: a decision taken from a check made before an await
 * (the isRevoked hook, an async `checks` rule, the DPoP replay insert, a nonce computation) must
 * not be looser, when it is answered, than a verification started at that moment. The faults this
 * pass found are fixed: each test under a `FIXED (was a fault)` comment failed on the code before.
 */
import { createHmac } from 'node:crypto';
import type { JWK } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier, MemoryReplayStore } from 'resource-guard';
import type { AuthInfo, ReplayStore, VerifierOptions } from 'resource-guard';
import { dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';
import { onStaticKey } from './helpers/static-verifier.ts';
import { Revocation } from '../src/revocation.ts';

const JWKS_URL = 'https://issuer.test/jwks';
const SECRET = 'session 24 toctou: a nonce secret of at least 32 bytes';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A JWKS the test rewrites at will, served by a `fetch` of its own (no network). */
function mutableJwks(initial: JWK[]) {
  const world = { keys: initial, fetches: 0, fail: false };
  const fetch = (async () => {
    world.fetches++;
    await sleep(1);
    if (world.fail) throw new Error('issuer down');
    return Response.json({ keys: world.keys });
  }) as typeof globalThis.fetch;
  return { world, fetch };
}

/** Shorthand for a Bearer request. */
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

interface Rig {
  readonly key: TestKey;
  readonly next: TestKey;
  readonly world: ReturnType<typeof mutableJwks>['world'];
  /** Options for a verifier on the mutable JWKS (unknown kids refetch at once). */
  options(extra?: Partial<VerifierOptions>): VerifierOptions;
  /**
   * The issuer rotates `key` out with no grace (only `next` listed) and the verifier learns it:
   * another request arrives with a token signed by `next` (an unknown kid: refetch).
   */
  rotateOut(verifier: { verify(token: string): Promise<unknown> }): Promise<void>;
  /**
   * An `isRevoked` hook that says "not revoked"; once `arm`ed, its next call first rotates the key
   * out (the rotating request asks the hook too: it disarms first).
   */
  rotatingHook(): {
    isRevoked: () => Promise<boolean>;
    arm(verifier: { verify(token: string): Promise<unknown> }): void;
  };
}

async function rig(): Promise<Rig> {
  const [key, next] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
  const { world, fetch } = mutableJwks([key.jwk]);
  const nextToken = await mint(next);
  const self: Rig = {
    key,
    next,
    world,
    options: (extra = {}) => ({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: JWKS_URL,
      fetch,
      keys: { cooldown: 0 },
      ...extra,
    }),
    async rotateOut(verifier) {
      world.keys = [next.jwk];
      expect(await outcome(verifier.verify(nextToken))).toBe('ok');
    },
    rotatingHook() {
      let armed: { verify(token: string): Promise<unknown> } | undefined;
      return {
        isRevoked: async () => {
          const verifier = armed;
          armed = undefined;
          if (verifier !== undefined) await self.rotateOut(verifier);
          return false;
        },
        arm: (verifier) => void (armed = verifier),
      };
    },
  };
  return self;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('the signing key leaves the key set while an awaited step runs', () => {
  // FIXED (was a fault): stillAlive() (src/verifier.ts) re-judges exp/maxTokenAge after isRevoked answers, not
  // the key: a token whose key was removed (rotation without grace, refreshed by another request)
  // while the hook ran is accepted; a verification started then answers 401 unknown_kid. Bounded
  // by revocationTimeout (2 s default).
  it('isRevoked on a first sighting: 401 unknown_kid once the hook answers', async () => {
    const r = await rig();
    const hook = r.rotatingHook();
    const verifier = createVerifier(r.options({ isRevoked: hook.isRevoked }));
    await verifier.warm();
    const token = await mint(r.key);
    hook.arm(verifier);
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 unknown_kid');
  });

  it('isRevoked: the cold verification started right after the answer says 401 unknown_kid (held)', async () => {
    const r = await rig();
    const hook = r.rotatingHook();
    const verifier = createVerifier(r.options({ isRevoked: hook.isRevoked }));
    const token = await mint(r.key);
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('ok'); // cached
    hook.arm(verifier);
    await outcome(verifier.authenticate(bearer(token)));
    // The cache entry is bound to the key: dropped, never answered again.
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 unknown_kid');
  });

  // FIXED (was a fault): same gap on a cache hit: the entry's key vouched when it was found, an async `checks`
  // rule then runs (checkTimeout, 2 s default) while the key leaves the set; the hit is accepted.
  it('an async checks rule on a cache hit: 401 unknown_kid once the rule answers', async () => {
    const r = await rig();
    let rotate = false;
    const verifier = createVerifier(r.options());
    const token = await mint(r.key);
    const checks = {
      slow: async (_auth: AuthInfo) => {
        if (rotate) await r.rotateOut(verifier);
        return true;
      },
    };
    expect(await outcome(verifier.authenticate(bearer(token), { checks }))).toBe('ok'); // cached
    rotate = true;
    expect(await outcome(verifier.authenticate(bearer(token), { checks }))).toBe('401 unknown_kid');
  });

  // FIXED (was a fault): the DPoP path: the hook runs inside Dpop.check (admitted()), the answer is then only
  // re-judged by lifetime. A key removed meanwhile: accepted.
  it('DPoP, isRevoked: 401 unknown_kid once the hook answers', async () => {
    const r = await rig();
    const holder = await makeProofKey();
    const hook = r.rotatingHook();
    const verifier = createVerifier(
      r.options({
        dpop: { origin: ORIGIN, replay: new MemoryReplayStore() },
        isRevoked: hook.isRevoked,
      }),
    );
    await verifier.warm();
    const token = await mint(r.key, m2mClaims({ cnf: { jkt: holder.jkt } }));
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    hook.arm(verifier);
    expect(await outcome(verifier.authenticate(dpopRequest(token, p)))).toBe('401 unknown_kid');
  });

  // FIXED (was a fault): the DPoP replay insert (replayTimeout, 1 s default; a remote store) is the last await:
  // a key removed while the store answers is not noticed.
  it('DPoP, a slow replay store: 401 unknown_kid once the store answers', async () => {
    const r = await rig();
    const holder = await makeProofKey();
    let rotate = false;
    const memory = new MemoryReplayStore();
    const verifier = createVerifier(
      r.options({
        dpop: {
          origin: ORIGIN,
          replay: {
            insertIfAbsent: async (k: string, ttl: number) => {
              if (rotate) await r.rotateOut(verifier);
              return memory.insertIfAbsent(k, ttl);
            },
          } as ReplayStore,
        },
      }),
    );
    await verifier.warm();
    const token = await mint(r.key, m2mClaims({ cnf: { jkt: holder.jkt } }));
    rotate = true;
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(verifier.authenticate(dpopRequest(token, p)))).toBe('401 unknown_kid');
  });

  // FIXED (was a fault, lower): the key set outlives maxAge + maxStale while the hook runs and the issuer is
  // down: a verification started then gets 503 keys_unavailable (no keys may vouch); the slow
  // request is accepted on keys it may no longer use.
  it('isRevoked while the key set goes past maxStale with the issuer down: 503', async () => {
    const r = await rig();
    const now = Date.now();
    const time = clock(now);
    let age = false;
    const verifier = createVerifier(
      r.options({
        keys: { maxAge: 1, maxStale: 1, cooldown: 0 },
        isRevoked: async () => {
          if (age) {
            r.world.fail = true;
            time.advance(5);
            await sleep(5);
          }
          return false;
        },
      }),
    );
    await verifier.warm();
    const token = await mint(r.key);
    age = true;
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('503 keys_unavailable');
  });

  it('with no awaited step the cache hit sees the rotation at once (held)', async () => {
    const r = await rig();
    const verifier = createVerifier(r.options());
    const token = await mint(r.key);
    const route = verifier.guard({ scopes: ['read:products'] });
    expect(await outcome(route(bearer(token)))).toBe('ok');
    expect(await outcome(route(bearer(token)))).toBe('ok'); // remembered route pass
    await r.rotateOut(verifier);
    // The remembered pass lives on the entry, which the key's removal ends.
    expect(await outcome(route(bearer(token)))).toBe('401 unknown_kid');
  });
});

describe('a DPoP server nonce that expires while an awaited step runs', () => {
  const STEP = 10;
  const nonceOf = (step: number) =>
    `${step}.${createHmac('sha256', SECRET).update(`resource-guard dpop nonce ${step}`).digest().subarray(0, 16).toString('base64url')}`;

  async function setup(isRevoked: (auth: AuthInfo) => Promise<boolean>) {
    const issuerKey = await makeKey('ES256');
    const holder: ProofKey = await makeProofKey();
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      dpop: {
        origin: ORIGIN,
        nonce: { secret: SECRET, step: STEP },
        replay: new MemoryReplayStore(),
      },
      isRevoked,
    });
    const token = await mint(issuerKey, m2mClaims({ cnf: { jkt: holder.jkt } }));
    return { verifier, holder, token };
  }

  // FIXED (was a fault): the nonce is judged at the clock reading taken before the route's rules and the
  // replay insert; a nonce that expired meanwhile (its step and the next are over) is accepted,
  // where a verification started when the answer comes gives 401 use_dpop_nonce. Bounded by
  // revocationTimeout + checkTimeout + replayTimeout; the nonce's own life is 1 to 2 steps.
  it('the nonce rotates out while isRevoked runs: 401 use_dpop_nonce', async () => {
    const now = Math.floor(Date.now() / 1000 / STEP) * STEP * 1000 + 500;
    const time = clock(now);
    const { verifier, holder, token } = await setup(async () => {
      await sleep(5);
      time.advance(2 * STEP);
      return false;
    });
    const step = Math.floor(now / 1000 / STEP);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token, {
      payload: { nonce: nonceOf(step) },
    });
    expect(await outcome(verifier.authenticate(dpopRequest(token, p)))).toBe(
      '401 dpop_nonce_required',
    );
  });

  it('the same nonce inside its window when the hook answers: ok (held, no false refusal)', async () => {
    const now = Math.floor(Date.now() / 1000 / STEP) * STEP * 1000 + 500;
    const time = clock(now);
    const { verifier, holder, token } = await setup(async () => {
      await sleep(5);
      time.advance(STEP); // the next step: the previous step's nonce is still good
      return false;
    });
    const step = Math.floor(now / 1000 / STEP);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token, {
      payload: { nonce: nonceOf(step) },
    });
    expect(await outcome(verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
  });

  it('a nonce already expired at the check: 401 dpop_nonce_required (held)', async () => {
    const now = Math.floor(Date.now() / 1000 / STEP) * STEP * 1000 + 500;
    clock(now);
    const { verifier, holder, token } = await setup(() => Promise.resolve(false));
    const step = Math.floor(now / 1000 / STEP);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token, {
      payload: { nonce: nonceOf(step - 2) },
    });
    expect(await outcome(verifier.authenticate(dpopRequest(token, p)))).toBe(
      '401 dpop_nonce_required',
    );
  });
});

describe('the revocation memo and a revocation mid-flight (held)', () => {
  it('a slow "not revoked" asked before a "revoked" that came first: refused, not remembered', async () => {
    const revoked = new Set<string>();
    let slowRelease: (() => void) | undefined;
    let calls = 0;
    const { issuerKey, verifier } = await onStaticKey(() => ({
      revocationMemo: 60,
      isRevoked: async (auth) => {
        calls++;
        const answer = revoked.has(auth.claims.jti as string); // read when asked
        if (calls === 1) await new Promise<void>((resolve) => (slowRelease = resolve));
        return answer;
      },
    }));
    const token = await mint(issuerKey, m2mClaims({ jti: 'j-1' }));
    const slow = outcome(verifier.authenticate(bearer(token)));
    for (let i = 0; i < 100 && slowRelease === undefined; i++) await sleep(1);
    revoked.add('j-1');
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 revoked');
    slowRelease?.();
    expect(await slow).toBe('401 revoked');
    // The memo holds the revocation: a third request is refused without asking.
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 revoked');
    expect(calls).toBe(2);
  });

  it('a slow "not revoked" for token A while token B was revoked: A passes, not remembered', async () => {
    let hold = true;
    let release: (() => void) | undefined;
    let calls = 0;
    const { issuerKey, verifier } = await onStaticKey(() => ({
      revocationMemo: 60,
      isRevoked: async (auth) => {
        calls++;
        if (auth.claims.jti === 'a' && hold) {
          hold = false;
          await new Promise<void>((resolve) => (release = resolve));
        }
        return auth.claims.jti === 'b';
      },
    }));
    const [a, b] = await Promise.all([
      mint(issuerKey, m2mClaims({ jti: 'a' })),
      mint(issuerKey, m2mClaims({ jti: 'b' })),
    ]);
    const slow = outcome(verifier.authenticate(bearer(a)));
    for (let i = 0; i < 100 && release === undefined; i++) await sleep(1);
    expect(await outcome(verifier.authenticate(bearer(b)))).toBe('401 revoked');
    release?.();
    expect(await slow).toBe('ok');
    expect(await outcome(verifier.authenticate(bearer(a)))).toBe('ok');
    expect(calls).toBe(3); // A asked again: the stale "no" was not remembered
  });
});

describe('the revocation memo forgets a revocation while an older "no" is pending', () => {
  /** A hook whose answer for `slowToken`'s first ask is read when asked and held until released. */
  function slowHook(slowToken: string) {
    const revoked = new Set<string>();
    const state = { calls: 0, release: undefined as (() => void) | undefined };
    const hook = (auth: AuthInfo): boolean | Promise<boolean> => {
      state.calls++;
      const answer = revoked.has(auth.token);
      if (auth.token !== slowToken || state.release !== undefined) return answer;
      return new Promise((resolve) => (state.release = () => resolve(answer)));
    };
    return { hook, revoked, state };
  }
  const authOf = (token: string) => ({ token, claims: { jti: token } }) as unknown as AuthInfo;
  const answer = async (ask: () => Promise<void> | undefined) => {
    try {
      await ask();
      return 'ok';
    } catch (error) {
      return (error as { reason?: string }).reason ?? 'error';
    }
  };

  it("B refused during A's wait, B's memo expired (not yet swept) when A's \"no\" lands: A refused (held)", async () => {
    const time = clock(Date.now());
    const { hook, revoked, state } = slowHook('A');
    const revocation = new Revocation(hook, 1, 2);
    const a = answer(() => revocation.check(authOf('A')));
    revoked.add('A');
    expect(await answer(() => revocation.check(authOf('A')))).toBe('revoked'); // B
    time.advance(1.5);
    state.release?.();
    expect(await a).toBe('revoked');
  });

  // FIXED (was a fault): request A asks isRevoked (slow; its answer, read before the revocation, is "no");
  // request B asks after the revocation and is refused (revoked, remembered). B's memo entry is
  // then evicted by 10,000 other tokens (or expired and swept by a third request whose own ask is
  // still pending) before A's stale "no" lands: A is accepted, though this verifier saw this very
  // token revoked while A waited (the counter of revocations says so: A's "no" is not remembered,
  // but is still answered). A verification started then asks again and is refused. Low: a
  // stale hook answer, and a flood inside revocationTimeout (2 s).
  it("B refused during A's wait, B's memo evicted by a flood before A's \"no\": A refused", async () => {
    const { hook, revoked, state } = slowHook('A');
    const revocation = new Revocation(hook, 60, 2);
    const a = answer(() => revocation.check(authOf('A')));
    revoked.add('A');
    expect(await answer(() => revocation.check(authOf('A')))).toBe('revoked'); // B
    for (let i = 0; i < 10_000; i++) revocation.check(authOf(`flood-${i}`));
    state.release?.();
    expect(await a).toBe('revoked');
    // A verification started now: asks the hook again (the memo lost the revocation) and refuses.
    expect(await answer(() => revocation.check(authOf('A')))).toBe('revoked');
  });
});

describe('the clock stepped back while an awaited step runs', () => {
  // FIXED (was a fault): stillAlive() re-judges the end of the token's life only (exp, maxTokenAge), not its
  // start: a wall clock stepped back (an NTP correction) past clockTolerance while the hook runs
  // leaves `iat` (or `nbf`) in the future; a verification started then is refused (401
  // issued_in_future / not_yet_valid), the slow request is accepted. The cache already refuses
  // such a hit (its validFrom). Low: a step back larger than clockTolerance (5 s) inside a 2 s hook.
  it('isRevoked while the clock steps back 10 s: 401 issued_in_future', async () => {
    let step = false;
    const { issuerKey, now, verifier } = await onStaticKey((time) => ({
      clockTolerance: 1,
      isRevoked: async () => {
        await sleep(2);
        if (step) time.advance(-10);
        return false;
      },
    }));
    const token = await mint(issuerKey, m2mClaims({ iat: now - 1, exp: now + 3600 }));
    step = true;
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 issued_in_future');
  });

  it('the same step back with no awaited step, on a cache hit: 401 issued_in_future (held)', async () => {
    const { issuerKey, now, time, verifier } = await onStaticKey(() => ({ clockTolerance: 1 }));
    const token = await mint(issuerKey, m2mClaims({ iat: now - 1, exp: now + 3600 }));
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('ok'); // cached
    time.advance(-10);
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 issued_in_future');
  });
});

describe('exp and the remembered route pass (held)', () => {
  it('a remembered pass ends with the token: 401 expired after exp, synchronously', async () => {
    const { issuerKey, now, time, verifier } = await onStaticKey(() => ({ clockTolerance: 0 }));
    const token = await mint(issuerKey, m2mClaims({ iat: now - 10, exp: now + 2 }));
    const route = verifier.guard({ scopes: ['read:products'] });
    expect(await outcome(route(bearer(token)))).toBe('ok');
    expect(await outcome(route(bearer(token)))).toBe('ok');
    time.advance(3);
    expect(await outcome(route(bearer(token)))).toBe('401 expired');
  });

  it('concurrent first sightings share one verification; a repeat after rotation is refused', async () => {
    const r = await rig();
    const verifier = createVerifier(r.options());
    await verifier.warm();
    const token = await mint(r.key);
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => outcome(verifier.authenticate(bearer(token)))),
    );
    expect(answers).toEqual(Array.from({ length: 5 }, () => 'ok'));
    await r.rotateOut(verifier);
    expect(await outcome(verifier.authenticate(bearer(token)))).toBe('401 unknown_kid');
  });
});
