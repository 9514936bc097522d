import type { ServerResponse } from 'node:http';
import { http, HttpResponse, delay } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { KeySourceError } from 'resource-guard';
import type { VerifierOptions, AuthError } from 'resource-guard';
import { clock, outcome } from './helpers/outcome.ts';
import { fixtureVerifier, jwks, key, next, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { untilFresh } from './helpers/fresh.ts';

useKeySetFixture();

const setup = (keys: VerifierOptions['keys'] = {}, extra: Partial<VerifierOptions> = {}) =>
  fixtureVerifier({
    keys: { cooldown: 30, ...keys },
    cache: false, // these tests are about the key set; token-cache.test.ts covers the cache
    ...extra,
  });

describe('caching', () => {
  it('fetches once for many requests, and concurrent misses share one fetch', async () => {
    const { verifier } = setup();
    const token = await mint(key);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => outcome(verifier.verify(token))),
    );
    expect(results.every((r) => r === 'ok')).toBe(true);
    for (let i = 0; i < 20; i++) await verifier.verify(token);
    expect(jwks.hits).toBe(1);
  });

  it('refreshes after maxAge, serving the cached keys meanwhile', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 600 });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    await verifier.verify(token);
    time.advance(599);
    await verifier.verify(token);
    expect(jwks.hits).toBe(1);
    time.advance(2);
    await verifier.verify(token); // served from the stale set; refresh starts in the background
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
  });
});

describe('unknown kids', () => {
  it('a flood of random kids costs at most one fetch per cooldown', async () => {
    const time = clock();
    const { verifier } = setup({ cooldown: 30 });
    await verifier.verify(await mint(key));
    const attacker = await makeKey('ES384');
    const flood = await Promise.all(
      Array.from({ length: 200 }, (_, i) => mint({ ...attacker, kid: `random-${i}` })),
    );
    const results = await Promise.all(flood.map((t) => outcome(verifier.verify(t))));
    expect(new Set(results)).toEqual(new Set(['401 unknown_kid']));
    expect(jwks.hits).toBe(1); // the first fetch was less than a cooldown ago
    time.advance(31);
    const later = await Promise.all(flood.map((t) => outcome(verifier.verify(t))));
    expect(new Set(later)).toEqual(new Set(['401 unknown_kid']));
    expect(jwks.hits).toBe(2);
  });

  it('rotation without a grace period: a token under the new kid works once the cooldown allows a refetch', async () => {
    const time = clock();
    const { verifier } = setup({ cooldown: 30 });
    await verifier.verify(await mint(key));
    jwks.keys = [next.jwk]; // self-hosted Logto: the old key leaves at once
    const fresh = await mint(next);
    expect(await outcome(verifier.verify(fresh))).toBe('401 unknown_kid');
    time.advance(31);
    expect(await outcome(verifier.verify(fresh))).toBe('ok');
    expect(jwks.hits).toBe(2);
  });

  it('rotation with the new key published ahead: picked up on the first token that uses it', async () => {
    const time = clock();
    const { verifier } = setup({ cooldown: 30 });
    await verifier.verify(await mint(key));
    time.advance(31);
    jwks.keys = [next.jwk, key.jwk];
    expect(await outcome(verifier.verify(await mint(next)))).toBe('ok');
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
  });
});

describe('outages (real local server)', () => {
  it('keeps serving the last good keys when refreshes fail, with back-off, up to maxStale', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 60, maxStale: 3600, cooldown: 30 });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 86_400 }));
    await verifier.verify(token);
    jwks.behave((_req, res) => res.writeHead(500).end());
    // Past maxAge: each request is still answered from the stale set.
    const hitsAtOutage = jwks.hits;
    for (let second = 0; second < 120; second++) {
      time.advance(1);
      if (second > 60) expect(await outcome(verifier.verify(token))).toBe('ok');
      await new Promise((r) => setTimeout(r, 1));
    }
    await vi.waitFor(() => expect(jwks.hits).toBeGreaterThan(hitsAtOutage));
    // Back-off: far fewer fetches than requests (1 s, 2 s, 4 s, ... capped at the cooldown).
    const failedFetches = jwks.hits - hitsAtOutage;
    expect(failedFetches).toBeGreaterThanOrEqual(3);
    expect(failedFetches).toBeLessThanOrEqual(8);
    // Past maxAge + maxStale, with the issuer still down: 503, not 401.
    time.advance(3600);
    const answer = await outcome(verifier.verify(token));
    expect(answer).toBe('503 keys_unavailable');
    // Recovery.
    jwks.behave(undefined);
    time.advance(60);
    expect(await outcome(verifier.verify(token))).toBe('ok');
  });

  it('a new kid during an outage is a 503, not a 401, even within the cooldown', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 60, cooldown: 30 });
    const longLived = m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 });
    await verifier.verify(await mint(key, longLived));
    jwks.behave((_req, res) => res.writeHead(503).end());
    time.advance(61);
    expect(await outcome(verifier.verify(await mint(key, longLived)))).toBe('ok'); // stale keys serve
    await vi.waitFor(() => expect(jwks.hits).toBe(2)); // the background refresh failed
    jwks.keys = [next.jwk, key.jwk]; // the issuer rotated meanwhile
    time.advance(5); // within the cooldown of that failed attempt
    expect(await outcome(verifier.verify(await mint(next)))).toBe('503 keys_unavailable');
    jwks.behave(undefined);
    time.advance(31);
    expect(await outcome(verifier.verify(await mint(next)))).toBe('ok');
  });

  it('answers 503 with Retry-After (never 401) when there are no keys yet', async () => {
    jwks.behave((_req, res) => res.writeHead(500).end());
    const { verifier, events } = setup();
    const error = (await verifier.verify(await mint(key)).catch((e: unknown) => e)) as AuthError;
    expect(error.status).toBe(503);
    expect(error.code).toBe('temporarily_unavailable');
    expect(Number(error.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(error.headers['www-authenticate']).toBeUndefined();
    expect(events[0]?.cause).toBeInstanceOf(KeySourceError);
    expect((events[0]?.cause as KeySourceError).code).toBe('http_status');
  });

  it('a hang is cut off by the timeout, and the abort reaches the server', async () => {
    let closed = 0;
    jwks.behave((req) => req.socket.on('close', () => closed++)); // never answers
    const { verifier, events } = setup({ timeout: 0.3 });
    const started = performance.now();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect(performance.now() - started).toBeLessThan(3000);
    expect((events[0]?.cause as KeySourceError).code).toBe('timeout');
    await vi.waitFor(() => expect(closed).toBe(1));
  });

  it('a slow-drip body is cut off by the same timeout', async () => {
    jwks.behave((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
      const drip = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(drip));
    });
    const { verifier, events } = setup({ timeout: 0.4 });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect((events[0]?.cause as KeySourceError).code).toBe('timeout');
  });

  it.each([
    [
      'an oversized body',
      (res: ServerResponse) => res.end(`{"keys":[],"pad":"${'x'.repeat(300_000)}"}`),
      'too_large',
    ],
    [
      'garbage instead of JSON',
      (res: ServerResponse) => res.end('<html>oops</html>'),
      'invalid_json',
    ],
    [
      'JSON that is not a key set',
      (res: ServerResponse) => res.end('{"keys":"nope"}'),
      'invalid_document',
    ],
    [
      'more than 100 keys',
      (res: ServerResponse) =>
        res.end(JSON.stringify({ keys: Array.from({ length: 101 }, () => key.jwk) })),
      'invalid_document',
    ],
    [
      'a redirect',
      (res: ServerResponse) => res.writeHead(302, { location: 'http://127.0.0.1:1/jwks' }).end(),
      'http_status',
    ],
  ])('%s → 503, the cause says why', async (_name, answer, code) => {
    jwks.behave((_req, res) => answer(res));
    const { verifier, events } = setup();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect((events[0]?.cause as KeySourceError).code).toBe(code);
  });

  it('a set with no usable key is a failed fetch: the last good keys keep serving', async () => {
    const time = clock();
    const { verifier, events } = setup({ maxAge: 60, cooldown: 0 });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    expect(await outcome(verifier.verify(token))).toBe('ok');
    jwks.keys = [];
    time.advance(61);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
    await new Promise((r) => setTimeout(r, 5));
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(events).toHaveLength(0);
  });

  it('ignores RSA keys under 2048 bits in the set (RFC 7518 §3.3): their tokens are refused', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: 'weak', alg: 'RS256' };
    // jose will not even sign with it: sign by hand.
    const { sign } = await import('node:crypto');
    const encode = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${encode({ alg: 'RS256', typ: 'at+jwt', kid: 'weak' })}.${encode(m2mClaims())}`;
    const token = `${input}.${sign('sha256', Buffer.from(input), pair.privateKey).toString('base64url')}`;
    const { verifier, events } = setup();
    jwks.keys = [jwk, key.jwk]; // the weak key is ignored, the set itself is fine
    expect(await outcome(verifier.verify(token))).toBe('401 unknown_kid');
    expect(events[0]?.reason).toBe('unknown_kid');
  });

  it('ignores private, symmetric, encryption and unsupported keys in the set', async () => {
    const { exportJWK, generateKeyPair } = await import('jose');
    const pair = await generateKeyPair('ES384', { extractable: true });
    const privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'leaked', alg: 'ES384' };
    jwks.keys = [
      privateJwk,
      { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac', alg: 'HS256' },
      { ...next.jwk, kid: 'enc', use: 'enc' },
      { kty: 'EC', crv: 'secp256k1', x: 'AA', y: 'AA', kid: 'k1' },
      key.jwk,
    ];
    const { verifier } = setup();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    const signedWithLeaked = await mint({
      alg: 'ES384',
      kid: 'leaked',
      privateKey: pair.privateKey,
      jwk: privateJwk,
    });
    expect(await outcome(verifier.verify(signedWithLeaked))).toBe('401 unknown_kid');
    expect(await outcome(verifier.verify(await mint({ ...next, kid: 'enc' })))).toBe(
      '401 unknown_kid',
    );
  });

  it('duplicate kids: the key that fits the algorithm is used', async () => {
    const rsa = await makeKey('RS256', key.kid);
    jwks.keys = [rsa.jwk, key.jwk];
    const { verifier } = setup();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    expect(await outcome(verifier.verify(await mint(rsa)))).toBe('ok');
  });

  it('duplicate kids of one type: each key listed under the kid is tried, and the diagnostic is true', async () => {
    const [one, two, stranger] = await Promise.all([
      makeKey('ES384', 'dup'),
      makeKey('ES384', 'dup'),
      makeKey('ES384', 'dup'),
    ]);
    jwks.keys = [one.jwk, two.jwk];
    const { verifier, events } = setup();
    const cold = setup({}, { cache: false }).verifier;
    for (const v of [verifier, cold]) {
      expect(await outcome(v.verify(await mint(one)))).toBe('ok');
      expect(await outcome(v.verify(await mint(two)))).toBe('ok');
      expect(await outcome(v.verify(await mint(stranger)))).toBe('401 bad_signature');
    }
    const refused = events.find((e) => e.reason === 'bad_signature');
    expect(refused?.details).toMatchObject({ kid: 'dup', keysTried: 2 });
    expect(JSON.stringify(events)).not.toMatch(/names no kid/);
  });

  it('a token without a kid is tried against each fitting key; past 8 it must name its kid', async () => {
    const keys = await Promise.all(Array.from({ length: 9 }, () => makeKey('ES384')));
    jwks.keys = keys.slice(0, 3).map((k) => k.jwk);
    const { verifier, events } = setup();
    const token = await mint(keys[2] as TestKey, undefined, { kid: undefined });
    expect(await outcome(verifier.verify(token))).toBe('ok');
    const many = setup();
    jwks.keys = keys.map((k) => k.jwk);
    expect(await outcome(many.verifier.verify(token))).toBe('401 key_mismatch');
    expect(many.events[0]?.details.problem).toMatch(/more than 8 keys fit/);
    expect(events).toEqual([]);
  });

  it('a key removed from the set stops working once the set refreshes', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 60 });
    const token = await mint(key);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    jwks.keys = [next.jwk];
    time.advance(61);
    // The stale set starts a background refresh; this answer is 'ok' or, if the refresh lands
    // before the signature check completes, already 'unknown_kid'.
    expect(['ok', '401 unknown_kid']).toContain(await outcome(verifier.verify(token)));
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
    await untilFresh(verifier);
    time.advance(31); // past the cooldown: the unknown kid may refetch, and is still unknown
    expect(await outcome(verifier.verify(token))).toBe('401 unknown_kid');
  });
});

describe('faults injected with msw', () => {
  const MSW_JWKS = 'https://keys.msw.test/oidc/jwks';
  const server = setupServer();
  beforeAll(() => server.listen({ onUnhandledRequest: 'bypass' }));
  afterEach(() => server.resetHandlers());
  afterAll(() => server.close());

  const withMsw = (keys: VerifierOptions['keys'] = {}) => setup(keys, { jwksUri: MSW_JWKS });

  it('a network error → 503 and back-off, then recovery', async () => {
    let calls = 0;
    server.use(
      http.get(MSW_JWKS, () => {
        calls++;
        return HttpResponse.error();
      }),
    );
    const { verifier, events } = withMsw();
    const token = await mint(key);
    expect(await outcome(verifier.verify(token))).toBe('503 keys_unavailable');
    expect((events[0]?.cause as KeySourceError).code).toBe('network');
    // Within the back-off window a second request does not hit the issuer again.
    expect(await outcome(verifier.verify(token))).toBe('503 keys_unavailable');
    expect(calls).toBe(1);
    server.use(http.get(MSW_JWKS, () => HttpResponse.json({ keys: [key.jwk] })));
    await new Promise((r) => setTimeout(r, 1100));
    expect(await outcome(verifier.verify(token))).toBe('ok');
  });

  it('an endless response is cut off by the timeout', async () => {
    server.use(
      http.get(MSW_JWKS, async () => {
        await delay('infinite');
        return HttpResponse.json({ keys: [] });
      }),
    );
    const { verifier } = withMsw({ timeout: 0.2 });
    const started = performance.now();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('concurrent requests during an outage share one failing fetch', async () => {
    let calls = 0;
    server.use(
      http.get(MSW_JWKS, async () => {
        calls++;
        await delay(100);
        return new HttpResponse(null, { status: 502 });
      }),
    );
    const { verifier } = withMsw();
    const token = await mint(key);
    const results = await Promise.all(
      Array.from({ length: 30 }, () => outcome(verifier.verify(token))),
    );
    expect(new Set(results)).toEqual(new Set(['503 keys_unavailable']));
    expect(calls).toBe(1);
  });
});
