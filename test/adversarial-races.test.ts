/**
 * Adversarial pass: races, late answers, bounded state and hangs. The classes hunted: an older
 * asynchronous answer landing after a newer one and overwriting it (key-set refreshes,
 * verifications racing a key removal, revocation answers); per-request state that grows without
 * bound or multiplies work under hostile traffic; awaits on the network or on user code that a
 * hostile peer can hold open. Guards assert exact statuses, reasons and counts; `it.fails` marks
 * an attack that succeeds today (a bug), written as the library should behave.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type * as NodeCrypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { JWK } from 'jose';
import { AuthError, createVerifier } from 'resource-guard';
import type { AuthInfo, Verifier, VerifierOptions } from 'resource-guard';
import { nodeCrypto } from '../src/node-crypto.ts';
import { MemoryReplayStore } from '../src/replay-store.ts';
import { clock, outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { counted } from './helpers/map-steps.ts';

const JWKS_URL = 'https://issuer.test/jwks';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** A JWKS endpoint behind the verifier's `fetch` option: what it serves, and how often it was asked. */
function issuerFetch(keys: () => JWK[]) {
  const world = { fetches: 0, answer: undefined as (() => Promise<Response>) | undefined };
  const fetch = (async () => {
    world.fetches++;
    if (world.answer !== undefined) return world.answer();
    await sleep(20);
    return Response.json({ keys: keys() });
  }) as typeof globalThis.fetch;
  return { world, fetch };
}

function verifierOn(fetch: typeof globalThis.fetch, options: Partial<VerifierOptions> = {}) {
  return createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: JWKS_URL,
    fetch,
    ...options,
  });
}

/** Tokens signed by `key` under kids the JWKS does not list (a random-kid flood). */
const randomKids = (key: TestKey, n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => mint(key, m2mClaims(), { kid: `flood-${i}` })));

/**
 * Sends `tokens` as pipelined HTTP/1.1 requests on ONE connection (one write: node parses them
 * in one turn of the event loop) and returns each answer's status.
 */
async function pipelined(verifier: Verifier, tokens: readonly string[]): Promise<number[]> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    verifier.authenticate(req).then(
      () => res.end('ok'),
      (error: unknown) => res.writeHead(error instanceof AuthError ? error.status : 500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const raw = tokens
      .map((t) => `GET /products HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${t}\r\n\r\n`)
      .join('');
    const text = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = connect(port, '127.0.0.1', () => socket.write(raw));
      const done = () => {
        socket.destroy();
        resolve(received);
      };
      const timer = setTimeout(done, 3000);
      socket.on('data', (chunk) => {
        received += chunk.toString();
        if ((received.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= tokens.length) {
          clearTimeout(timer);
          done();
        }
      });
      socket.on('error', reject);
    });
    return (text.match(/HTTP\/1\.1 (\d{3})/g) ?? []).map((line) => Number(line.slice(9)));
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('class 2: a flood of random kids costs the issuer one fetch per cooldown', () => {
  it('shared key set: 40 pipelined requests with 40 unknown kids, one fetch, 40 × 401 (guard)', async () => {
    const key = await makeKey('ES256');
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch);
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    const time = clock();
    time.advance(31); // past the cooldown: the flood may cost one fetch
    const before = world.fetches;
    const statuses = await pipelined(verifier, await randomKids(key, 40));
    expect(statuses).toEqual(Array.from({ length: 40 }, () => 401));
    expect(world.fetches - before).toBe(1);
  });

  // Was a bug, now fixed: request-scoped key sets (src/key-set.ts #refreshForUnknownKid and
  // #refreshInRequest) read #lastFetchAt/#fetchingSince for the cooldown and "another request is
  // refreshing" checks, but set them only after `await this.#awaitOtherRefresh()`. Every request
  // that reached the check in the same turn of the event loop (pipelined HTTP/1.1 on one
  // connection, HTTP/2 streams, a batch of verify() calls) passed it before any of them claimed
  // the refresh: 40 pipelined requests with 40 random kids made 40 JWKS fetches instead of 1.
  // The check and the claim are now one synchronous step.
  it('request-scoped key set: the same flood also costs one fetch', async () => {
    const key = await makeKey('ES256');
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch, { requestScoped: true });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    const time = clock();
    time.advance(31);
    const before = world.fetches;
    const statuses = await pipelined(verifier, await randomKids(key, 40));
    expect(statuses).toEqual(Array.from({ length: 40 }, () => 401));
    expect(world.fetches - before).toBe(1); // 40 before the fix
  });

  // Was a bug, now fixed: the same gap at a cold start (and whenever the keys are stale): N
  // concurrent first requests in one turn each fetched the JWKS, though the option promises that
  // "others wait on their own timer" while one request refreshes.
  it('request-scoped key set: 30 concurrent first requests share one fetch', async () => {
    const key = await makeKey('ES256');
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    const verifier = verifierOn(fetch, { requestScoped: true });
    const tokens = await Promise.all(Array.from({ length: 30 }, () => mint(key)));
    const answers = await Promise.all(tokens.map((t) => outcome(verifier.verify(t))));
    expect(answers).toEqual(Array.from({ length: 30 }, () => 'ok'));
    expect(world.fetches).toBe(1); // 30 before the fix
  });
});

describe('class 1: an older key-set answer never overwrites a newer one', () => {
  // Was a bug, now fixed: request-scoped key sets ordered successes (#applied) but not
  // failures: #fail() recorded an older refresh's failure even when a newer refresh had already
  // succeeded (src/key-set.ts #refreshInRequest's catch → #fail). The key set then reported a
  // failure that was no longer true (health: lastError, retryInSeconds) and, for the cooldown,
  // answered a new kid with 503 keys_unavailable ("a new kid while the key set cannot be
  // fetched") instead of 401. Now an older refresh's failure gets the newer keys instead.
  // Reproduced without any same-turn race: refresh A's JWKS request hangs until the 1.4 s
  // timeout; the clock then jumps 3 s (a suspended isolate, a stalled event loop), so A's latest
  // request looks older than the `timeout + 1` s others wait for, refresh B starts and succeeds,
  // and A's timeout lands after it. (By the clock alone a live refresh is never taken over: each
  // of its requests, the metadata's and the JWKS's, restarts the wait; session 29.)
  it('request-scoped: a refresh that started first and failed last does not mark the keys failing', async () => {
    const key = await makeKey('ES256');
    let jwksCalls = 0;
    let metadataCalls = 0;
    const metadata = { issuer: ISSUER, jwks_uri: JWKS_URL };
    const fetch = (async (input: URL | RequestInfo, init?: RequestInit) => {
      const url = String(input);
      if (url.includes('/.well-known/')) {
        metadataCalls++;
        return Response.json(metadata);
      }
      if (++jwksCalls === 1) {
        // A: accepted, never answered (until the fetch timeout aborts it)
        return new Promise<Response>((_, reject) =>
          init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      }
      return Response.json({ keys: [key.jwk] });
    }) as typeof globalThis.fetch;
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      fetch,
      requestScoped: true,
      keys: { timeout: 1.4 },
    });
    const token = await mint(key);
    const first = outcome(verifier.verify(token)); // refresh A
    await sleep(50);
    expect(jwksCalls).toBe(1); // A's JWKS request is under way
    const realNow = Date.now.bind(Date);
    const jump = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3000);
    try {
      const second = outcome(verifier.verify(token)); // A presumed cut off: refresh B
      expect(await second).toBe('ok');
      expect(await first).toBe('ok'); // A failed, and fell back on B's keys
      expect(jwksCalls).toBe(2);
      expect(metadataCalls).toBe(2);
      // The newest refresh succeeded: nothing is failing.
      expect(verifier.health()[0]).toMatchObject({
        state: 'fresh',
        lastError: null,
        retryInSeconds: null,
      });
      // A kid the issuer does not list is the token's fault (401), not an outage (503).
      expect(await outcome(verifier.verify(await mint(key, m2mClaims(), { kid: 'x' })))).toBe(
        '401 unknown_kid',
      );
    } finally {
      jump.mockRestore(); // the clock stays jumped while the verifier is asked
    }
  });

  it('a pool verification that started before its key was removed and lands after: refused, never cached (guard)', async () => {
    const [key, next] = await Promise.all([makeKey('ES384'), makeKey('ES384')]);
    let published = [key.jwk];
    const { fetch } = issuerFetch(() => published);
    const verifier = verifierOn(fetch, { keys: { cooldown: 0 } });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok'); // keys fetched
    const token = await mint(key);
    const input = token.slice(0, token.lastIndexOf('.'));
    // Hold this token's thread-pool verification (P-384 always goes to the pool) until released.
    const held: (() => void)[] = [];
    const crypto = nodeCrypto as typeof NodeCrypto;
    const verify = crypto.verify.bind(crypto) as (...args: unknown[]) => boolean;
    vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
      const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
      if (typeof callback !== 'function') return verify(...args);
      const run = () => callback(null, verify(...args.slice(0, 4)));
      if (Buffer.from(args[1] as Uint8Array).toString('latin1') === input) held.push(run);
      else setImmediate(run);
      return undefined;
    }) as typeof crypto.verify);
    const first = outcome(verifier.verify(token));
    for (let i = 0; i < 100 && held.length === 0; i++) await sleep(2);
    expect(held).toHaveLength(1);
    // The key is removed (rotation without grace) and the set refreshed, while it verifies.
    published = [next.jwk];
    expect(await outcome(verifier.verify(await mint(next)))).toBe('ok');
    const joined = outcome(verifier.verify(token)); // a repeat joins the pending verification
    held.shift()?.(); // the signature is good: it lands, after the key left the set
    expect(await first).toBe('401 unknown_kid');
    expect(await joined).toBe('401 unknown_kid');
    vi.restoreAllMocks();
    expect(await outcome(verifier.verify(token))).toBe('401 unknown_kid'); // nothing was cached
  });

  it('a late, hung first fetch: every waiting request gets 503 at the timeout, one fetch, health never fresh (guard)', async () => {
    const key = await makeKey('ES256');
    const { world, fetch } = issuerFetch(() => [key.jwk]);
    world.answer = () => new Promise<Response>(() => undefined); // accepts, never answers
    const verifier = verifierOn(fetch, { keys: { timeout: 0.3 } });
    const tokens = [
      ...(await Promise.all(Array.from({ length: 20 }, () => mint(key)))),
      ...(await randomKids(key, 20)),
    ];
    const started = performance.now();
    const pending = tokens.map((t) => outcome(verifier.verify(t)));
    expect(verifier.health()[0]?.state).toBe('empty');
    const answers = await Promise.all(pending);
    const elapsed = performance.now() - started;
    expect(answers).toEqual(Array.from({ length: 40 }, () => '503 keys_unavailable'));
    expect(world.fetches).toBe(1);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1500);
    expect(verifier.health()[0]).toMatchObject({ state: 'unavailable', keys: 0 });
    // Not stuck on the dead promise: after the back-off, a request asks again and succeeds.
    world.answer = undefined;
    await sleep(1050);
    expect(await outcome(verifier.verify(tokens[0] as string))).toBe('ok');
    expect(world.fetches).toBe(2);
    expect(verifier.health()[0]).toMatchObject({ state: 'fresh', lastError: null });
  });
});

describe('class 1: revocation answers count from when they were asked (re-check of the fix)', () => {
  it('a slow "not revoked" is remembered until askedAt + memo, not answeredAt + memo (guard)', async () => {
    const key = await makeKey('ES256');
    const { fetch } = issuerFetch(() => [key.jwk]);
    const time = clock();
    let release: (value: boolean) => void = () => undefined;
    let calls = 0;
    const isRevoked = (() => {
      calls++;
      return calls === 1 ? new Promise<boolean>((resolve) => (release = resolve)) : false;
    }) as (auth: AuthInfo) => boolean;
    const verifier = verifierOn(fetch, { isRevoked, revocationMemo: 5, revocationTimeout: 10 });
    const token = await mint(key);
    const first = outcome(verifier.verify(token));
    for (let i = 0; i < 100 && calls === 0; i++) await sleep(2);
    expect(calls).toBe(1);
    time.advance(4); // the answer takes 4 s of a 5 s memo
    release(false);
    expect(await first).toBe('ok');
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(calls).toBe(1); // remembered
    time.advance(1.5); // askedAt + 5.5 s: forgotten, though answered only 1.5 s ago
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(calls).toBe(2);
  });

  it('a slow "not revoked" for one token while another is revoked is answered but not remembered (guard)', async () => {
    const key = await makeKey('ES256');
    const { fetch } = issuerFetch(() => [key.jwk]);
    const denied = new Set<string>(['j-b']);
    let releaseA: (value: boolean) => void = () => undefined;
    const asked: string[] = [];
    const isRevoked = ((auth: AuthInfo) => {
      const jti = auth.claims.jti as string;
      asked.push(jti);
      if (jti === 'j-a' && asked.length === 1) {
        return new Promise<boolean>((resolve) => (releaseA = resolve));
      }
      return denied.has(jti);
    }) as (auth: AuthInfo) => boolean;
    const verifier = verifierOn(fetch, { isRevoked, revocationMemo: 60, revocationTimeout: 5 });
    const [a, b] = await Promise.all([
      mint(key, m2mClaims({ jti: 'j-a' })),
      mint(key, m2mClaims({ jti: 'j-b' })),
    ]);
    const first = outcome(verifier.verify(a));
    for (let i = 0; i < 100 && asked.length === 0; i++) await sleep(2);
    expect(await outcome(verifier.verify(b))).toBe('401 revoked');
    denied.add('j-a'); // revoked at the source while its old answer is on the way
    releaseA(false);
    expect(await first).toBe('ok'); // true when it was asked
    expect(await outcome(verifier.verify(a))).toBe('401 revoked'); // asked again, at once
    expect(asked).toEqual(['j-a', 'j-b', 'j-a']);
  });
});

describe('class 2: the DPoP memory replay store under a flood while full', () => {
  /** Counts Map iterator steps while `run` runs (the store's sweep walks its Map). */
  const mapSteps = (run: () => void): number => counted(run).steps;

  it('not full: an insert looks at O(1) entries (guard)', () => {
    const store = new MemoryReplayStore({ maxEntries: 5000 });
    for (let i = 0; i < 4000; i++) store.insertIfAbsent(`live-${i}`, 60_000);
    const steps = mapSteps(() => {
      for (let i = 0; i < 100; i++) expect(store.insertIfAbsent(`new-${i}`, 60_000)).toBe(true);
    });
    expect(steps).toBeLessThanOrEqual(100 * 2);
  });

  // Was a bug, now fixed: src/replay-store.ts insertIfAbsent: when the store was full of live
  // proofs, every further insert ran #sweep(now, true), a walk over ALL entries, before
  // refusing with the 503 it would give anyway, so a client flooding valid proofs at a full
  // store (the default holds 100,000) cost the event loop a full walk per request (~0.5 ms at
  // 100,000 entries here, ~2,000x a normal insert), on every route of the instance. Now entries
  // are held in lanes by TTL, each in expiry order: a refusal looks at each lane's front only.
  it('full of live proofs: each refused insert still looks at O(1) entries', () => {
    const store = new MemoryReplayStore({ maxEntries: 5000 });
    for (let i = 0; i < 5000; i++) store.insertIfAbsent(`live-${i}`, 60_000);
    let refused = 0;
    const steps = mapSteps(() => {
      for (let i = 0; i < 100; i++) {
        try {
          store.insertIfAbsent(`new-${i}`, 60_000);
        } catch {
          refused++;
        }
      }
    });
    expect(refused).toBe(100); // a full store refuses (503): that part holds
    expect(steps).toBeLessThanOrEqual(100 * 2); // 100 × 5,001 before the fix
  });
});
