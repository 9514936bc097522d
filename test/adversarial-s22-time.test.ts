/**
 * Adversarial pass, session 22: TIME. Every clock the library reads is `Date.now()` (wall time:
 * claims, the token cache's window, the key set's age, cooldown and back-off, the revocation
 * memo, DPoP `iat`, nonces and the in-memory replay store); `performance.now()` only measures
 * durations, and timers only bound waits. So faking `Date` (real timers keep the loopback JWKS
 * server answering) reaches every decision, and a wall clock stepped back or forward (an NTP
 * step, a VM resumed) is a `vi.setSystemTime`.
 *
 * The invariants: at any wall time the library is never looser than a cold verifier (fresh, empty
 * caches) at that same wall time; after any jump it recovers within its documented intervals
 * (cooldown 30 s, back-off capped at the cooldown, `maxAge`), with no refresh storm; a DPoP proof
 * is never accepted twice while its `iat` is acceptable (RFC 9449 §11.1). Guards assert exact
 * outcomes. What the pass found (a `Was a bug` note each) was fixed in the same session: the key
 * set's intervals and the revocation memo end when the clock steps back before they began, the
 * cache's bounds sit 1 ms inside the fresh check's, and a DPoP proof is judged too old by the
 * latest time a proof was accepted as well as by the clock.
 */
import fc from 'fast-check';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, MemoryReplayStore } from 'resource-guard';
import type { ReplayStore, Verifier, VerifierOptions } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import type { JwksServer } from './helpers/jwks-server.ts';
import { dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { untilFresh } from './helpers/fresh.ts';

/** A wall time on a whole second (2027-01-15): `T / 1000` is exact. */
const T = 1_800_000_000_000;
const TS = T / 1000;
const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
const URL_PRODUCTS = `${ORIGIN}/products`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Only `Date` is faked: real timers keep servers and fetch timeouts running. */
const at = (ms: number) => vi.setSystemTime(ms);

let es: TestKey;
let other: TestKey;
let client: ProofKey;

beforeAll(async () => {
  [es, other, client] = await Promise.all([makeKey('ES256'), makeKey('ES256'), makeProofKey()]);
});

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: T });
  // Many verifiers are created on purpose (one cold verifier per comparison): silence the
  // "verifier per request" hint, which is not what is tested here.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** The AuthError a verification fails with (or `undefined` when it passes). */
async function failure(promise: Promise<unknown>): Promise<AuthError | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    if (error instanceof AuthError) return error;
    throw error;
  }
}

/** Logto-shaped claims with the given time claims (seconds, any number). */
function claims(time: { iat?: number; exp: number; nbf?: number }): Record<string, unknown> {
  return {
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    sub: 'app-1',
    client_id: 'app-1',
    scope: 'read:products',
    iss: ISSUER,
    aud: AUDIENCE,
    ...time,
  };
}

const staticOptions = (extra: Partial<VerifierOptions> = {}): VerifierOptions => ({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwks: { keys: [es.jwk] },
  ...extra,
});

/** What a verifier created right now (nothing cached) answers for `token` at this wall time. */
const cold = (token: string, extra: Partial<VerifierOptions> = {}) =>
  outcome(createVerifier(staticOptions(extra)).verify(token));

function nextUp(x: number): number {
  const buffer = new Float64Array([x]);
  const bits = new BigInt64Array(buffer.buffer);
  bits[0] = (bits[0] as bigint) + 1n;
  return buffer[0] as number;
}

// ---------------------------------------------------------------------------------------------
// 1. Claims and the verified-token cache: the cached answer vs a cold verifier, any wall time
// ---------------------------------------------------------------------------------------------

describe('the token cache vs a cold verifier, at any wall time (static keys)', () => {
  it('property: for any time claims and any clock jumps (ms to years, both ways), warm === cold', async () => {
    const offset = fc.oneof(
      fc.integer({ min: -7200, max: 7200 }),
      fc.double({ min: -7200, max: 7200, noNaN: true }),
      fc.constantFrom(-5, 5, 0, 0.5, -0.5, 3600, 30, 35),
    );
    const jump = fc.oneof(
      fc.integer({ min: -6000, max: 6000 }),
      fc.integer({ min: -2 * HOUR, max: 2 * HOUR }),
      fc.constantFrom(-YEAR, YEAR, -10 * YEAR, 10 * YEAR, 5000, -5000, 35_000, 30_000, 1),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          iat: fc.option(offset, { nil: undefined }),
          exp: offset,
          nbf: fc.option(offset, { nil: undefined }),
          tolerance: fc.constantFrom(0, 5, 0.25, 60),
          maxTokenAge: fc.constantFrom(undefined, 0, 30, 3600),
          jumps: fc.array(jump, { minLength: 1, maxLength: 8 }),
        }),
        async ({ iat, exp, nbf, tolerance, maxTokenAge, jumps }) => {
          at(T);
          const time = {
            exp: TS + exp,
            ...(iat === undefined ? {} : { iat: TS + iat }),
            ...(nbf === undefined ? {} : { nbf: TS + nbf }),
          };
          const token = await mint(es, claims(time));
          const extra: Partial<VerifierOptions> = {
            clockTolerance: tolerance,
            strict: false, // iat may be absent
            ...(maxTokenAge === undefined ? {} : { maxTokenAge }),
          };
          const warm = createVerifier(staticOptions(extra));
          expect(await outcome(warm.verify(token))).toBe(await cold(token, extra));
          let now = T;
          for (const step of jumps) {
            now += step;
            at(now);
            expect(await outcome(warm.verify(token))).toBe(await cold(token, extra));
          }
        },
      ),
      { numRuns: 120, seed: 220_001 },
    );
  }, 40_000);

  it('a cached token is refused at exactly exp + clockTolerance, as a cold verifier refuses it', async () => {
    const token = await mint(es, claims({ iat: TS - 60, exp: TS + 0.5 }));
    const warm = createVerifier(staticOptions());
    expect(await outcome(warm.verify(token))).toBe('ok'); // cached until exp
    at(T + 5499); // exp + 5 s - 1 ms: still inside the leeway
    expect(await outcome(warm.verify(token))).toBe('ok');
    expect(await cold(token)).toBe('ok');
    at(T + 5500); // exp <= now - clockTolerance
    expect(await outcome(warm.verify(token))).toBe('401 expired');
    expect(await cold(token)).toBe('401 expired');
    at(T + 1000); // stepped back inside the leeway again: both accept it again
    expect(await outcome(warm.verify(token))).toBe('ok');
    expect(await cold(token)).toBe('ok');
  });

  it('a cached token whose iat the stepped-back clock puts in the future is refused as cold does', async () => {
    const token = await mint(es, claims({ iat: TS, exp: TS + 3600 }));
    const warm = createVerifier(staticOptions());
    at(T + 60_000);
    expect(await outcome(warm.verify(token))).toBe('ok'); // cached
    at(T - 5000); // iat == now + clockTolerance: still accepted
    expect(await outcome(warm.verify(token))).toBe('ok');
    expect(await cold(token)).toBe('ok');
    at(T - 5001); // iat one millisecond beyond the tolerance
    expect(await outcome(warm.verify(token))).toBe('401 issued_in_future');
    expect(await cold(token)).toBe('401 issued_in_future');
    at(T - YEAR); // a clock a year behind
    expect(await outcome(warm.verify(token))).toBe('401 issued_in_future');
  });

  it('maxTokenAge: a cached token stops at iat + maxTokenAge + clockTolerance, like a cold check', async () => {
    const token = await mint(es, claims({ iat: TS, exp: TS + 3600 }));
    const extra = { maxTokenAge: 30 };
    const warm = createVerifier(staticOptions(extra));
    expect(await outcome(warm.verify(token))).toBe('ok');
    at(T + 35_000);
    expect(await outcome(warm.verify(token))).toBe('ok');
    expect(await cold(token, extra)).toBe('ok');
    at(T + 35_001);
    expect(await outcome(warm.verify(token))).toBe('401 token_too_old');
    expect(await cold(token, extra)).toBe('401 token_too_old');
    at(T + 10 * YEAR);
    expect(await outcome(warm.verify(token))).toBe('401 expired');
  });

  it('extreme exp values are judged the same warm and cold, before and after year-long jumps', async () => {
    const header = { alg: 'ES256', typ: 'at+jwt', kid: es.kid };
    const payload = (exp: string) =>
      `{"jti":"j","sub":"app-1","client_id":"app-1","iss":"${ISSUER}","aud":"${AUDIENCE}","iat":${TS - 10},"exp":${exp}}`;
    const cases: [string, string][] = [
      ['1e21', 'ok'],
      ['9007199254740992', 'ok'], // 2^53
      ['1e308', 'ok'],
      ['-0', '401 expired'],
      ['0', '401 expired'],
      ['1e-7', '401 expired'],
      ['-1e21', '401 expired'],
      [`${TS - 5}`, '401 expired'], // exactly clockTolerance ago
      [`${TS - 4.999}`, 'ok'],
      ['1e309', '401 invalid_claim'], // Infinity once parsed
      ['"1e21"', '401 invalid_claim'],
    ];
    for (const [exp, expected] of cases) {
      at(T);
      const token = await signRaw(es, header, payload(exp));
      const warm = createVerifier(staticOptions());
      expect([exp, await outcome(warm.verify(token))]).toEqual([exp, expected]);
      expect([exp, await cold(token)]).toEqual([exp, expected]);
      for (const jump of [YEAR, -YEAR, 100 * YEAR, -40 * YEAR]) {
        at(T + jump);
        expect([exp, jump, await outcome(warm.verify(token))]).toEqual([
          exp,
          jump,
          await cold(token),
        ]);
      }
    }
  });

  it('a huge clockTolerance (2^53 - 1 s) is honoured the same warm and cold, a cache entry never past exp', async () => {
    const extra = { clockTolerance: Number.MAX_SAFE_INTEGER };
    const token = await mint(es, claims({ iat: TS + 1e9, exp: TS - 1e9 }));
    const warm = createVerifier(staticOptions(extra));
    // The operator chose an unbounded leeway: both accept; nothing is cached past exp.
    expect(await outcome(warm.verify(token))).toBe('ok');
    expect(await cold(token, extra)).toBe('ok');
    at(T + 100 * YEAR);
    expect(await outcome(warm.verify(token))).toBe(await cold(token, extra));
  });

  // Was a bug (informational, a 1-ulp window), fixed in session 22: the cache's lower bound is computed in milliseconds,
  // `validFrom = (max(nbf, iat) - clockTolerance) * 1000` (src/token-cache.ts:67-69), while a
  // cold check compares seconds, `iat > Date.now() / 1000 + clockTolerance` (src/claims.ts:143).
  // The two roundings disagree for some fractional `iat`: with the DEFAULT tolerance (5 s) a
  // token whose iat is one ulp past `n / 1000 + 5` is refused cold at wall time `n` (ms) but
  // answered from the cache after a clock stepped back to exactly `n`. Reproduction: find `n`
  // with `(nextUp(n/1000 + 5) - 5) * 1000 <= n`; mint iat = nextUp(n/1000 + 5); verify at n + 10 s
  // (cached); setSystemTime(n): cached `ok`, cold `401 issued_in_future`. The same holds for
  // `nbf`. Fix: let TokenCache.find judge the lower bound with the very expression checkClaims
  // uses (keep `notBefore` and the tolerance in seconds and compare `now / 1000 + tolerance`).
  it('a cached token is never accepted where a cold check refuses its iat (fractional iat, 1 ulp)', async () => {
    let n = T + 1;
    let iat = nextUp(n / 1000 + 5);
    for (let i = 0; i < 100_000 && !((iat - 5) * 1000 <= n && iat > n / 1000 + 5); i++) {
      n++;
      iat = nextUp(n / 1000 + 5);
    }
    expect((iat - 5) * 1000 <= n && iat > n / 1000 + 5).toBe(true); // such an n exists
    const token = await mint(es, claims({ iat, exp: TS + 3600 }));
    const warm = createVerifier(staticOptions());
    at(n + 10_000);
    expect(await outcome(warm.verify(token))).toBe('ok'); // cached
    at(n); // the clock steps back to exactly this millisecond
    expect(await cold(token)).toBe('401 issued_in_future');
    expect(await outcome(warm.verify(token))).toBe('401 issued_in_future');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The key set: age, cooldown, back-off and discovery across wall-clock steps
// ---------------------------------------------------------------------------------------------

describe('the key set across clock steps (a real JWKS server on loopback)', () => {
  let server: JwksServer;
  beforeEach(async () => {
    server = await startJwksServer([es.jwk]);
  });
  afterEach(async () => {
    await server.close();
  });

  const remote = (extra: Partial<VerifierOptions> = {}): Verifier =>
    createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: server.url, ...extra });
  /** What a verifier created now, fetching the JWKS as it is now, answers. */
  const coldRemote = (token: string) => outcome(remote().verify(token));
  /** A token valid across every step below (issued two years before T, for forty years). */
  const longLived = (key: TestKey) =>
    mint(key, claims({ iat: TS - 2 * 365 * 86400, exp: TS + 40 * 365 * 86400 }));
  /** Waits (real time, bounded) until the JWKS was fetched `hits` times. */
  async function hits(count: number): Promise<void> {
    for (let i = 0; i < 200 && server.hits < count; i++) await sleep(5);
  }

  it('a forward jump within maxStale: the stale set serves, ONE background refresh, no storm', async () => {
    const verifier = remote();
    const token = await longLived(es);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(server.hits).toBe(1);
    at(T + HOUR); // a VM resumed an hour later
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => outcome(verifier.verify(token))),
    );
    expect(new Set(answers)).toEqual(new Set(['ok']));
    await hits(2);
    await untilFresh(verifier);
    for (let i = 0; i < 30; i++) expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(server.hits).toBe(2);
    expect(verifier.health()[0]).toMatchObject({ state: 'fresh', ageSeconds: 0 });
  });

  it('a forward jump of ten years (past maxAge + maxStale): one shared fetch, then fresh', async () => {
    const verifier = remote();
    const token = await longLived(es);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    at(T + 10 * YEAR);
    expect(verifier.health()[0]).toMatchObject({ state: 'unavailable', keys: 1 });
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => outcome(verifier.verify(token))),
    );
    expect(new Set(answers)).toEqual(new Set(['ok']));
    await sleep(30);
    expect(server.hits).toBe(2); // health()'s background refresh and the requests shared one
    expect(verifier.health()[0]).toMatchObject({ state: 'fresh', ageSeconds: 0 });
  });

  it('a forward jump past maxAge + maxStale with the JWKS down: 503 with a bounded Retry-After, then recovery', async () => {
    const verifier = remote();
    const token = await longLived(es);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    server.behave((_req, res) => void res.writeHead(503).end());
    at(T + 2 * YEAR);
    const errors = await Promise.all(
      Array.from({ length: 20 }, () => failure(verifier.verify(token))),
    );
    for (const error of errors) {
      expect(error?.reason).toBe('keys_unavailable');
      expect(Number(error?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(error?.headers['retry-after'])).toBeLessThanOrEqual(30);
    }
    expect(server.hits).toBe(2); // one fetch for twenty requests, then backing off
    server.behave(undefined);
    at(T + 2 * YEAR + 1000); // the 1 s back-off has passed
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(server.hits).toBe(3);
  });

  it('health(): ages stay finite and never negative, whichever way the clock steps', async () => {
    const verifier = remote();
    await verifier.warm();
    for (const jump of [-YEAR, -HOUR, -1, 0, 1, HOUR, 100 * YEAR, -100 * YEAR]) {
      at(T + jump);
      const [entry] = verifier.health();
      expect(Number.isFinite(entry?.ageSeconds)).toBe(true);
      expect(entry?.ageSeconds).toBeGreaterThanOrEqual(0);
      await sleep(20); // let a background refresh (forward jumps) land
      at(T); // back to where the set was fetched, for the next step
    }
  });

  // Was a bug (medium, availability), fixed in session 22: a wall clock stepped BACK freezes the key set's cooldown. The
  // unknown-kid refetch is gated on `now - #lastFetchAt < cooldown * 1000`
  // (src/key-set.ts:350), which stays true while the difference is negative: after a step back
  // of H, a rotated-in kid is refused 401 unknown_kid for H + 30 s instead of at most 30 s
  // (README "Key rotation": "within 30 s of the rotation at worst"), while a cold verifier
  // accepts it. Reproduction: fetch keys at T; setSystemTime(T - 1 h); the JWKS now serves a new
  // key only (self-hosted Logto, no grace); setSystemTime(T - 1 h + 31 s); verify a token under
  // the new kid: 401 unknown_kid, no fetch. Fix: measure cooldown, back-off and key age on a
  // monotonic clock (performance.now()), or treat a negative elapsed time as elapsed
  // (`elapsed < 0 || elapsed >= cooldown`).
  it('a new kid after a backwards clock step is fetched once the cooldown has passed (cold: ok)', async () => {
    const verifier = remote();
    expect(await outcome(verifier.verify(await longLived(es)))).toBe('ok');
    at(T - HOUR); // NTP steps the clock back an hour
    server.keys = [other.jwk]; // the issuer rotates, with no grace period
    at(T - HOUR + 31_000); // past the 30 s cooldown
    const token = await longLived(other);
    expect(await coldRemote(token)).toBe('ok');
    expect(await outcome(verifier.verify(token))).toBe('ok');
  });

  // Was a bug (medium, trust), fixed in session 22: the same step back keeps the key set "fresh" for H + maxAge:
  // `#freshUntil = fetchedAt + maxAge` (src/key-set.ts:445) and `vouches()` answers
  // `now < #freshUntil` (src/key-set.ts:240), so no refresh starts and a key the issuer removed
  // keeps verifying tokens (and vouching for cached ones) for H + 10 min, where README promises
  // "at most keys.maxAge seconds plus one fetch after the last refresh" and a cold verifier
  // already refuses them (401 unknown_kid). Reproduction: fetch at T; setSystemTime(T - 1 h);
  // the JWKS drops the key; setSystemTime(T - 1 h + 601 s); two requests: both `ok`, the JWKS
  // never asked. Fix: as above (monotonic age), or `vouches()` fresh only while
  // `fetchedAt <= now < freshUntil`.
  it('a removed key stops verifying maxAge after the last fetch even if the clock stepped back (cold: 401)', async () => {
    const verifier = remote();
    const token = await longLived(es);
    expect(await outcome(verifier.verify(token))).toBe('ok'); // fetched and cached
    at(T - HOUR);
    server.keys = [other.jwk]; // the issuer removes the key
    at(T - HOUR + 601_000); // maxAge (600 s) has passed in real time
    expect(await coldRemote(token)).toBe('401 unknown_kid');
    await outcome(verifier.verify(token)); // may still answer from the old set, starts the refresh
    await hits(3); // the cold verifier's fetch, then this verifier's refresh
    await sleep(20);
    expect(await outcome(verifier.verify(token))).toBe('401 unknown_kid');
  });

  // Was a bug (high, availability), fixed in session 22: a failed fetch sets `#retryAt = Date.now() + backoff`
  // (src/key-set.ts:468) and `#refresh()` refuses while `now < #retryAt` (src/key-set.ts:384;
  // :415 request-scoped), so a clock stepped back by H after a failure turns the 1 s back-off
  // into H + 1 s: every request is a 503 with `Retry-After: H` (and health() reports
  // `retryInSeconds` of H), even once the JWKS is back, and health() does not retry either (it
  // also waits for `#retryAt`).
  // README: back-off "1 s, 2 s, 4 s … up to the cooldown". A cold verifier answers 200.
  // Reproduction: JWKS answers 503; verify at T (503, back-off 1 s); setSystemTime(T - 1 h); the
  // JWKS recovers; setSystemTime(T - 1 h + 2 s); verify: 503 `Retry-After: 3599`. Fix: a
  // monotonic clock for `#retryAt`, or clamp: refuse only while `0 < retryAt - now <= backoff`.
  it('a backwards clock step after a failed fetch does not stretch the back-off past the cooldown', async () => {
    server.behave((_req, res) => void res.writeHead(503).end());
    const verifier = remote();
    const token = await longLived(es);
    expect(await outcome(verifier.verify(token))).toBe('503 keys_unavailable');
    at(T - HOUR);
    server.behave(undefined); // the issuer is back
    at(T - HOUR + 2000); // past the 1 s back-off
    expect(await coldRemote(token)).toBe('ok');
    const error = await failure(verifier.verify(token));
    expect(error?.headers['retry-after']).toBeUndefined();
    expect(error).toBeUndefined();
  });

  // Was a bug (same root cause as above, src/key-set.ts:206-219 and :468), fixed in session 22: health() after that step
  // back reports `retryInSeconds` of the whole hour and, since `now < #retryAt`, starts no
  // refresh: a readiness probe keeps the instance out of rotation for the hour. Reproduction as
  // above, then at T - 1 h `verifier.health()[0].retryInSeconds` = 3601. Fix: as above.
  it('health() after a backwards clock step reports a retry within the cooldown', async () => {
    server.behave((_req, res) => void res.writeHead(503).end());
    const verifier = remote();
    expect(await outcome(verifier.verify(await longLived(es)))).toBe('503 keys_unavailable');
    at(T - HOUR);
    const [entry] = verifier.health();
    expect(entry?.state).toBe('unavailable');
    expect(entry?.retryInSeconds ?? 0).toBeLessThanOrEqual(30);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. The revocation memo
// ---------------------------------------------------------------------------------------------

describe('the revocation memo across clock steps', () => {
  const token = () => mint(es, claims({ iat: TS - 7200, exp: TS + 7200 }));

  it('a forward jump past revocationMemo asks the hook again', async () => {
    let revoked = false;
    let asked = 0;
    const isRevoked = () => (asked++, revoked);
    const verifier = createVerifier(staticOptions({ revocationMemo: 5, isRevoked }));
    const t = await token();
    expect(await outcome(verifier.verify(t))).toBe('ok');
    revoked = true;
    at(T + 4999);
    expect(await outcome(verifier.verify(t))).toBe('ok'); // the documented memo
    at(T + 5000);
    expect(await outcome(verifier.verify(t))).toBe('401 revoked');
    expect(asked).toBe(2);
  });

  // Was a bug (medium, trust), fixed in session 22: the memo keeps `until = askedAt + revocationMemo` in wall time and is
  // reused while `Date.now() < until` (src/revocation.ts:39), so after a clock stepped back by H
  // a "not revoked" answer is reused for H + revocationMemo: a token revoked in the denylist keeps
  // passing for an hour where the option promises 5 s and a cold verifier (which asks the hook)
  // refuses it. Reproduction: revocationMemo: 5; verify at T (hook: false); setSystemTime(T - 1 h);
  // the hook now says true; setSystemTime(T - 1 h + 6 s); verify: `ok`, hook not asked. Fix: a
  // monotonic clock for the memo, or also drop an entry when `now < askedAt`.
  it('a backwards clock step does not stretch a "not revoked" memo past revocationMemo', async () => {
    let revoked = false;
    const options = staticOptions({ revocationMemo: 5, isRevoked: () => revoked });
    const verifier = createVerifier(options);
    const t = await token();
    expect(await outcome(verifier.verify(t))).toBe('ok');
    at(T - HOUR);
    revoked = true;
    at(T - HOUR + 6000);
    expect(await outcome(createVerifier(options).verify(t))).toBe('401 revoked');
    expect(await outcome(verifier.verify(t))).toBe('401 revoked');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. DPoP: the iat window, the replay window and nonces across clock steps
// ---------------------------------------------------------------------------------------------

describe('DPoP and time', () => {
  /** Each with a replay store of its own (a test's clock steps never reach another test's). */
  const dpopVerifier = (dpop: Record<string, unknown> = {}, extra: Partial<VerifierOptions> = {}) =>
    createVerifier(
      staticOptions({
        dpop: { origin: ORIGIN, replay: new MemoryReplayStore(), ...dpop },
        ...extra,
      }),
    );
  /** A token bound to the client key, valid across every step below. */
  const bound = () =>
    mint(es, {
      ...claims({ iat: TS - 2 * 365 * 86400, exp: TS + 40 * 365 * 86400 }),
      cnf: { jkt: client.jkt },
    });
  const send = (verifier: Verifier, token: string, p: string) =>
    outcome(verifier.authenticate(dpopRequest(token, p)));
  const proofAt = (token: string, payload: Record<string, unknown>) =>
    proof(client, 'GET', URL_PRODUCTS, token, { payload });

  it('iat at the window edges, fractional, huge, negative, -0 (maxAge 60, tolerance 5)', async () => {
    const verifier = dpopVerifier();
    const token = await bound();
    const cases: [unknown, string][] = [
      [TS + 5, 'ok'],
      [TS + 5.001, '401 dpop_proof_stale'],
      [TS - 65, 'ok'],
      [TS - 65.001, '401 dpop_proof_stale'],
      [TS - 0.5, 'ok'],
      [TS + 4.999, 'ok'],
      [1e21, '401 dpop_proof_stale'],
      [2 ** 53, '401 dpop_proof_stale'],
      [-TS, '401 dpop_proof_stale'],
      [-0, '401 dpop_proof_stale'],
      [1e-7, '401 dpop_proof_stale'],
      [`${TS}`, '401 dpop_proof_invalid'],
      [null, '401 dpop_proof_invalid'],
    ];
    for (const [iat, expected] of cases) {
      expect([iat, await send(verifier, token, await proofAt(token, { iat }))]).toEqual([
        iat,
        expected,
      ]);
    }
  });

  it('a proof tolerance is clockTolerance capped at 60 s, whatever the token leeway', async () => {
    const verifier = dpopVerifier({}, { clockTolerance: 600 });
    const token = await bound();
    expect(await send(verifier, token, await proofAt(token, { iat: TS + 60 }))).toBe('ok');
    expect(await send(verifier, token, await proofAt(token, { iat: TS + 60.001 }))).toBe(
      '401 dpop_proof_stale',
    );
    expect(await send(verifier, token, await proofAt(token, { iat: TS - 120 }))).toBe('ok');
    expect(await send(verifier, token, await proofAt(token, { iat: TS - 120.001 }))).toBe(
      '401 dpop_proof_stale',
    );
  });

  it('property: the replay TTL covers the whole iat window (maxAge, any clockTolerance)', () => {
    return fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3600 }),
        fc.oneof(fc.double({ min: 0, max: 1e9, noNaN: true }), fc.constantFrom(0, 5, 60, 61)),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (maxAge, tolerance, where) => {
          at(T);
          const ttls: number[] = [];
          const replay: ReplayStore = { insertIfAbsent: (_key, ttl) => (ttls.push(ttl), true) };
          const verifier = dpopVerifier({ maxAge, replay }, { clockTolerance: tolerance });
          const skew = Math.min(tolerance, 60);
          const token = await bound();
          // An iat anywhere in the window, the newest possible included.
          const iat = TS + skew - where * (maxAge + 2 * skew);
          expect(await send(verifier, token, await proofAt(token, { iat }))).toBe('ok');
          // The proof stays acceptable until iat + maxAge + skew: the store must hold it so long.
          const lastAcceptable = (iat + maxAge + skew) * 1000;
          expect(ttls).toHaveLength(1);
          expect(T + (ttls[0] as number)).toBeGreaterThan(lastAcceptable);
        },
      ),
      { numRuns: 60, seed: 220_004 },
    );
  });

  it('after a backwards step, proofs are refused as too old until the clock is back near the latest acceptance; the used one always', async () => {
    const verifier = dpopVerifier();
    const token = await bound();
    const p = await proofAt(token, { iat: TS });
    expect(await send(verifier, token, p)).toBe('ok');
    at(T - HOUR);
    expect(await send(verifier, token, p)).toBe('401 dpop_proof_stale'); // iat an hour ahead
    // The stepped-back clock catches up: a proof made now is too old for the acceptance at T
    // until now >= T - (maxAge 60 + tolerance 5) s; the used proof is never accepted again.
    for (let now = T - 120_000; now <= T + 70_000; now += 5000) {
      at(now);
      const iat = Math.floor(now / 1000);
      const fresh = await send(verifier, token, await proofAt(token, { iat }));
      expect([now - T, fresh]).toEqual([now - T, iat >= TS - 65 ? 'ok' : '401 dpop_proof_stale']);
      expect(['401 dpop_replayed', '401 dpop_proof_stale']).toContain(
        await send(verifier, token, p),
      );
    }
  }, 20_000);

  // Was a bug (medium, RFC 9449 §11.1), fixed in session 22: the replay store keeps a proof for the iat window plus ONE
  // second (`maxAge + 2 × tolerance + 1`, src/dpop.ts:286), measured on the wall clock (the
  // in-memory store's `now + ttl`, src/replay-store.ts:97-118; Redis `PX` counts real time), while
  // the iat window is judged afresh on each request's wall clock (src/dpop.ts:211-223). Once the
  // entry has expired, a clock stepped back re-opens the proof's window: a captured proof (with
  // its token) is accepted a second time. A step back of 6 s suffices for a proof made at the
  // server's `now`, of 1 s for one whose iat was at the +5 s edge. Reproduction: accept a proof
  // with iat = T at T; at T + 71 s another proof is accepted (its insert sweeps the first);
  // setSystemTime(T + 61 s) (NTP steps back 10 s); the first proof again: `ok`. README's
  // "Clocks" note asks for NTP, and NTP is what steps the clock. Fix: judge "too old" against a
  // high-water mark of the clock (`max(now, latest seen)`) so a window once closed never opens
  // again, and/or hold entries for a step allowance beyond the window.
  it('a proof accepted once is never accepted again after a backwards step re-enters its iat window', async () => {
    const verifier = dpopVerifier();
    const token = await bound();
    const p = await proofAt(token, { iat: TS });
    expect(await send(verifier, token, p)).toBe('ok');
    at(T + 71_000);
    expect(await send(verifier, token, await proofAt(token, { iat: TS + 71 }))).toBe('ok');
    at(T + 61_000); // the clock steps back 10 s: iat T is acceptable again (>= now - 65 s)
    // Refused: its iat is too old for the latest acceptance (T + 71 s), whatever the clock says.
    expect(await send(verifier, token, p)).toBe('401 dpop_proof_stale');
  });

  it('property: whatever the clock does, a proof is accepted once, and a new one exactly while its iat is in the window of the clock and of the latest acceptance', async () => {
    const event = fc.oneof(
      fc.record({
        kind: fc.constant('new' as const),
        move: fc.integer({ min: -3 * HOUR, max: 3 * HOUR }),
        age: fc.integer({ min: -5000, max: 65_000 }),
      }),
      fc.record({
        kind: fc.constant('replay' as const),
        move: fc.oneof(fc.integer({ min: -80_000, max: 80_000 }), fc.constant(0)),
        which: fc.nat(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 2, maxLength: 14 }), async (events) => {
        at(T);
        // A store of its own (dpopVerifier): the latest acceptance is this run's alone.
        const verifier = dpopVerifier();
        const token = await bound();
        const accepted: string[] = [];
        let latest = -Infinity;
        let now = T;
        for (const e of events) {
          now += e.move;
          at(now);
          if (e.kind === 'new') {
            const iat = (now - e.age) / 1000;
            const p = await proofAt(token, { iat });
            const inWindow = iat <= now / 1000 + 5 && iat >= Math.max(now / 1000, latest) - 65;
            const answer = await send(verifier, token, p);
            expect(answer).toBe(inWindow ? 'ok' : '401 dpop_proof_stale');
            if (answer === 'ok') {
              accepted.push(p);
              latest = Math.max(latest, now / 1000);
            }
          } else if (accepted.length > 0) {
            const p = accepted[e.which % accepted.length]!;
            expect(['401 dpop_replayed', '401 dpop_proof_stale']).toContain(
              await send(verifier, token, p),
            );
          }
        }
      }),
      { numRuns: 80, seed: 220_005 },
    );
  }, 40_000);

  it('server nonces after a clock step forward (an hour, a year): one use_dpop_nonce, then ok; back behind the latest acceptance: too old', async () => {
    const verifier = dpopVerifier({ nonce: { secret: 'x'.repeat(32) } });
    const token = await bound();
    const first = await failure(
      verifier.authenticate(dpopRequest(token, await proofAt(token, {}))),
    );
    expect(first?.reason).toBe('dpop_nonce_required');
    const nonce = first?.headers['dpop-nonce'] as string;
    expect(await send(verifier, token, await proofAt(token, { nonce }))).toBe('ok');
    let last = nonce;
    for (const jump of [HOUR, YEAR]) {
      at(T + jump);
      const refused = await failure(
        verifier.authenticate(dpopRequest(token, await proofAt(token, { nonce: last }))),
      );
      expect(refused?.reason).toBe('dpop_nonce_required');
      const fresh = refused?.headers['dpop-nonce'] as string;
      expect(fresh).not.toBe(last);
      expect(await send(verifier, token, await proofAt(token, { nonce: fresh }))).toBe('ok');
      last = fresh;
    }
    // Back a year (and an hour): a proof made now is older than the latest acceptance allows.
    at(T);
    expect(await send(verifier, token, await proofAt(token, { nonce: last }))).toBe(
      '401 dpop_proof_stale',
    );
  });
});
