/**
 * Operators' view: the diagnostics_channel events (decisions, key-set fetches and states), the
 * verifier's health report and warm-up, and the diagnostics a developer can act on (root causes
 * and URLs in the rejection details, issuer and duration hints, the verifier-per-request warning).
 * All against a real JWKS server on loopback.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CHANNELS, createVerifier, WarmUpError } from 'resource-guard';
import type {
  AuthError,
  CacheEvictEvent,
  DecisionEvent,
  KeysFetchEvent,
  KeysStateEvent,
} from 'resource-guard';
import { fixtureVerifier, jwks, key, next, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { AUDIENCE, ISSUER, m2mClaims, mint } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

useKeySetFixture();

/** Collects every event published on `name` until the test ends. */
function collect<T>(name: string): T[] {
  const events: T[] = [];
  const listener = (message: unknown) => events.push(message as T);
  subscribe(name, listener);
  cleanups.push(() => unsubscribe(name, listener));
  return events;
}
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('resource-guard:decision', () => {
  it('publishes each outcome with its reason, status, cache use and duration', async () => {
    const decisions = collect<DecisionEvent>(CHANNELS.decision);
    const { verifier } = fixtureVerifier();
    const read = verifier.guard({ scopes: ['read:products'] });
    const admin = verifier.guard({ scopes: ['admin'] });
    const optional = verifier.guard({ optional: true });
    const token = await mint(key);
    const expired = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) - 600 }));
    const bearer = (value: string) => ({ headers: { authorization: `Bearer ${value}` } });

    await read(bearer(token));
    await read(bearer(token));
    expect(await outcome(admin(bearer(token)))).toBe('403 insufficient_scope');
    expect(await outcome(read(bearer(expired)))).toBe('401 expired');
    expect(await outcome(read({ headers: { authorization: 'Bearer a b' } }))).toBe(
      '400 malformed_header',
    );
    expect(await optional({ headers: {} })).toBeUndefined();

    expect(decisions.map(({ duration: _duration, ...rest }) => rest)).toEqual([
      { outcome: 'accepted', cached: false, issuer: ISSUER },
      { outcome: 'accepted', cached: true, issuer: ISSUER },
      { outcome: 'refused', cached: true, reason: 'insufficient_scope', status: 403 },
      { outcome: 'refused', cached: false, reason: 'expired', status: 401 },
      { outcome: 'refused', cached: false, reason: 'malformed_header', status: 400 },
      { outcome: 'anonymous', cached: false },
    ]);
    for (const { duration } of decisions) expect(duration).toBeGreaterThanOrEqual(0);
    // Never the token, the subject or the client id.
    const text = JSON.stringify(decisions);
    for (const secret of [token, expired, 'app-123', token.split('.')[2] as string]) {
      expect(text).not.toContain(secret);
    }
  });

  it('publishes verify() calls too, and nothing once the subscriber leaves', async () => {
    const decisions = collect<DecisionEvent>(CHANNELS.decision);
    const { verifier } = fixtureVerifier();
    await verifier.verify(await mint(key));
    expect(decisions).toHaveLength(1);
    for (const cleanup of cleanups.splice(0)) cleanup();
    await verifier.verify(await mint(key));
    expect(decisions).toHaveLength(1);
  });

  it('a 503 during an outage is published as refused keys_unavailable', async () => {
    const decisions = collect<DecisionEvent>(CHANNELS.decision);
    jwks.behave((_req, res) => res.writeHead(500).end());
    const { verifier } = fixtureVerifier();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect(decisions).toMatchObject([
      { outcome: 'refused', reason: 'keys_unavailable', status: 503, cached: false },
    ]);
  });
});

describe('resource-guard:keys:fetch and keys:state', () => {
  it('publishes a fetch with its URL, key count and duration, and the state fresh', async () => {
    const fetches = collect<KeysFetchEvent>(CHANNELS.keysFetch);
    const states = collect<KeysStateEvent>(CHANNELS.keysState);
    const { verifier } = fixtureVerifier();
    await verifier.verify(await mint(key));
    expect(fetches).toEqual([
      {
        issuers: [ISSUER],
        url: jwks.url,
        outcome: 'ok',
        keys: 1,
        startTime: expect.any(Number) as number,
        duration: expect.any(Number) as number,
      },
    ]);
    expect(states).toEqual([{ issuers: [ISSUER], from: 'empty', to: 'fresh' }]);
  });

  it.each([
    ['an HTTP error', (url: string) => url, 'HTTP 500', 500],
    [
      'a refused connection',
      (_url: string, port: number) => `http://127.0.0.1:${port}/jwks`,
      'ECONNREFUSED',
      undefined,
    ],
  ])('names the root cause of %s', async (_name, target, error, status) => {
    jwks.behave((_req, res) => res.writeHead(500).end());
    const port = await closedPort();
    const jwksUri = target(jwks.url, port);
    const fetches = collect<KeysFetchEvent>(CHANNELS.keysFetch);
    const states = collect<KeysStateEvent>(CHANNELS.keysState);
    const { verifier, events } = fixtureVerifier({ jwksUri });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect(fetches).toMatchObject([{ outcome: 'error', url: jwksUri, error }]);
    expect(fetches[0]?.status).toBe(status);
    expect(states).toEqual([
      {
        issuers: [ISSUER],
        from: 'empty',
        to: 'unavailable',
        lastError: `${error} fetching ${jwksUri}`,
      },
    ]);
    // The same facts in the rejection's details, not only deep in its cause.
    expect(events[0]?.details).toMatchObject({ url: jwksUri, error });
  });

  it('names a timeout', async () => {
    jwks.behave(() => undefined); // never answers
    const fetches = collect<KeysFetchEvent>(CHANNELS.keysFetch);
    const { verifier, events } = fixtureVerifier({ keys: { timeout: 0.2 } });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect(fetches[0]?.error).toMatch(/^timeout/);
    expect(events[0]?.details).toMatchObject({
      url: jwks.url,
      error: expect.stringMatching(/^timeout/) as string,
    });
  });

  it('moves fresh → stale → unavailable through an outage, and back to fresh', async () => {
    const time = clock();
    const states = collect<KeysStateEvent>(CHANNELS.keysState);
    const { verifier } = fixtureVerifier({ keys: { maxAge: 60, maxStale: 120, cooldown: 1 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 3600 }));
    await verifier.verify(token);
    jwks.behave((_req, res) => res.writeHead(502).end());
    time.advance(61);
    expect(await outcome(verifier.verify(token))).toBe('ok'); // stale keys serve
    await vi.waitFor(() =>
      expect(verifier.health()[0]?.lastError).toBe(`HTTP 502 fetching ${jwks.url}`),
    );
    expect(verifier.health()[0]?.state).toBe('stale');
    time.advance(121);
    expect(verifier.health()[0]?.state).toBe('unavailable');
    expect(await outcome(verifier.verify(token))).toBe('503 keys_unavailable');
    jwks.behave(undefined);
    time.advance(2); // past the back-off
    // The readiness probe itself brings the keys back, without token traffic.
    verifier.health();
    await vi.waitFor(() => expect(verifier.health()[0]?.state).toBe('fresh'));
    expect(states.map(({ from, to }) => `${from}→${to}`)).toEqual([
      'empty→fresh',
      'fresh→stale',
      'stale→unavailable',
      'unavailable→fresh',
    ]);
  });
});

describe('resource-guard:cache:evict', () => {
  it('publishes tokens dropped for capacity, and for a key that left the set', async () => {
    const evictions = collect<CacheEvictEvent>(CHANNELS.cacheEvict);
    const time = clock();
    const { verifier } = fixtureVerifier({ cache: { maxEntries: 2 }, keys: { maxAge: 60 } });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => mint(key, m2mClaims({ exp }))));
    for (const token of tokens) await verifier.verify(token);
    expect(evictions).toEqual([
      { reason: 'capacity', count: 1 },
      { reason: 'capacity', count: 1 },
      { reason: 'capacity', count: 1 },
    ]);
    jwks.keys = [next.jwk]; // the key of the two cached tokens leaves the set
    time.advance(61);
    await outcome(verifier.verify(tokens[4] as string)); // stale: answers, refreshes in the background
    await vi.waitFor(() => expect(verifier.health()[0]?.state).toBe('fresh'));
    expect(await outcome(verifier.verify(tokens[3] as string))).toBe('401 unknown_kid');
    expect(evictions.slice(3)).toEqual([{ reason: 'revoked', count: 1 }]);
  });
});

describe('verifier.health()', () => {
  it('reports empty before the first fetch, then starts one', async () => {
    const { verifier } = fixtureVerifier();
    expect(verifier.health()).toEqual([
      {
        issuer: ISSUER,
        state: 'empty',
        ageSeconds: null,
        lastError: null,
        retryInSeconds: null,
        jwksUri: null,
        keys: 0,
      },
    ]);
    await vi.waitFor(() => expect(verifier.health()[0]?.state).toBe('fresh'));
    const [report] = verifier.health();
    expect(report).toMatchObject({ jwksUri: jwks.url, keys: 1, lastError: null });
    expect(report?.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(report?.ageSeconds).toBeLessThan(5);
  });

  it('reports unavailable with the root cause and the back-off while the first fetch fails', async () => {
    jwks.behave((_req, res) => res.writeHead(404).end());
    const { verifier } = fixtureVerifier();
    await outcome(verifier.verify(await mint(key)));
    const [report] = verifier.health();
    expect(report).toMatchObject({
      state: 'unavailable',
      lastError: `HTTP 404 fetching ${jwks.url}`,
      jwksUri: jwks.url,
      keys: 0,
    });
    expect(report?.retryInSeconds).toBeGreaterThan(0);
    expect(report?.retryInSeconds).toBeLessThanOrEqual(1);
    expect(jwks.hits).toBe(1); // asking for health during the back-off fetches nothing
  });

  it('reports every issuer, and a static key set as always fresh', async () => {
    const second = 'https://other.example.test/oidc';
    const { verifier } = fixtureVerifier({ issuer: [ISSUER, second] });
    await verifier.warm();
    expect(verifier.health().map((r) => [r.issuer, r.state])).toEqual([
      [ISSUER, 'fresh'],
      [second, 'fresh'],
    ]);
    const fixed = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
    await fixed.warm();
    expect(fixed.health()).toMatchObject([{ state: 'fresh', jwksUri: 'the jwks option', keys: 1 }]);
  });
});

describe('what diagnostics show of a URL, and who may change them', () => {
  it("never a JWKS URL's query or credentials: not in health, events or rejection details", async () => {
    const fetches = collect<KeysFetchEvent>(CHANNELS.keysFetch);
    const jwksUri = `${jwks.url}?api_key=SECRET123`; // the test server answers 404 to a query
    const { verifier, events } = fixtureVerifier({ jwksUri });
    await outcome(verifier.verify(await mint(key)));
    const shown = `${jwks.url}?…`;
    expect(verifier.health()[0]).toMatchObject({
      jwksUri: shown,
      lastError: `HTTP 404 fetching ${shown}`,
    });
    expect(events[0]?.details).toMatchObject({ url: shown });
    expect(fetches[0]?.url).toBe(shown);
    expect(
      JSON.stringify([verifier.health(), events.map((e) => e.details), fetches]),
    ).not.toContain('SECRET123');
    expect(() =>
      fixtureVerifier({ jwksUri: 'https://user:pass@tenant.example.test/jwks' }),
    ).toThrow(/jwksUri.*must not carry credentials/);
  });

  it('a subscriber that changes an event cannot change what health() says', async () => {
    subscribe(CHANNELS.keysState, mutate);
    cleanups.push(() => unsubscribe(CHANNELS.keysState, mutate));
    function mutate(message: unknown) {
      try {
        (message as { issuers: string[] }).issuers.length = 0;
      } catch {
        // frozen: as it should be
      }
    }
    jwks.behave((_req, res) => res.writeHead(503).end());
    const { verifier } = fixtureVerifier();
    await verifier.warm().catch(() => undefined);
    expect(verifier.health()).toMatchObject([{ issuer: ISSUER, state: 'unavailable' }]);
  });

  it('tells observers of a new key set only once the keys that left it stopped vouching', async () => {
    const time = clock();
    const { verifier } = fixtureVerifier({ keys: { maxAge: 60 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 3600 }));
    await verifier.verify(token);
    jwks.keys = [next.jwk]; // key rotated out
    const seen: string[] = [];
    const listener = (message: unknown) => {
      if ((message as KeysStateEvent).to === 'fresh') {
        seen.push('fresh');
        void outcome(verifier.verify(token)).then((answer) => seen.push(answer));
      }
    };
    subscribe(CHANNELS.keysState, listener);
    cleanups.push(() => unsubscribe(CHANNELS.keysState, listener));
    time.advance(61);
    await outcome(verifier.verify(token)); // stale: serves, and refreshes in the background
    await vi.waitFor(() => expect(seen).toHaveLength(2));
    expect(seen).toEqual(['fresh', '401 unknown_kid']);
  });
});

describe('verifier.warm()', () => {
  it('loads the keys before the first request', async () => {
    const { verifier } = fixtureVerifier();
    const report = await verifier.warm();
    expect(report).toMatchObject([{ issuer: ISSUER, state: 'fresh', keys: 1 }]);
    expect(jwks.hits).toBe(1);
    await verifier.verify(await mint(key));
    expect(jwks.hits).toBe(1);
  });

  it('fails at boot with the issuer, the root cause and the URL', async () => {
    const port = await closedPort();
    const issuer = `http://127.0.0.1:${port}/oidc`;
    const verifier = createVerifier({ issuer, audience: AUDIENCE });
    const error = (await verifier.warm().catch((e: unknown) => e)) as WarmUpError;
    expect(error).toBeInstanceOf(WarmUpError);
    expect(error.failures).toEqual([
      `${issuer}: ECONNREFUSED fetching ${issuer}/.well-known/openid-configuration`,
    ]);
    expect(error.message).toContain('ECONNREFUSED');
  });
});

describe('hints a developer can act on', () => {
  it.each([
    [
      'http://tenant.example.test/oidc',
      'https://tenant.example.test/oidc',
      /scheme \(http in the token, https configured\)/,
    ],
    [
      'http://localhost:3001/oidc',
      'http://127.0.0.1:3001/oidc',
      /loopback name \(localhost in the token, 127\.0\.0\.1 configured\)/,
    ],
    ['http://127.0.0.1:3002/oidc', 'http://127.0.0.1:3001/oidc', /only in the port/],
  ])('an iss of %s against %s', async (actual, configured, hint) => {
    const { verifier, events } = fixtureVerifier({ issuer: configured });
    const error = (await verifier
      .verify(await mint(key, m2mClaims({ iss: actual })))
      .catch((e: unknown) => e)) as AuthError;
    expect(error.reason).toBe('issuer_mismatch');
    expect(String(events[0]?.details.hint)).toMatch(hint);
    expect(JSON.stringify(error.body)).not.toContain('hint'); // for operators, not clients
  });

  it('a duration that looks like milliseconds: a TypeError or a warning, each saying so', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    expect(() => fixtureVerifier({ keys: { timeout: 5000 } })).toThrow(
      /keys\.timeout.*durations are in seconds, not milliseconds: did you mean 5\?/,
    );
    fixtureVerifier({ clockTolerance: 5000 });
    fixtureVerifier({ clockTolerance: 5000 }); // once
    fixtureVerifier({ keys: { maxAge: 600_000 } });
    fixtureVerifier({ keys: { maxAge: 3600 }, clockTolerance: 60 }); // plausible: silent
    expect(warn.mock.calls.map(([message]) => String(message))).toEqual([
      expect.stringMatching(/clockTolerance is 5000 seconds \(1\.4 hours\).*did you mean 5\?/),
      expect.stringMatching(/keys\.maxAge is 600000 seconds \(6\.9 days\).*did you mean 600\?/),
    ]);
  });

  it('warns once when verifiers are created per request', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const issuer = 'https://per-request.example.test/oidc';
    for (let i = 0; i < 100; i++) createVerifier({ issuer, audience: AUDIENCE });
    expect(warn).not.toHaveBeenCalled();
    for (let i = 0; i < 200; i++) createVerifier({ issuer, audience: AUDIENCE });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(
      /more than 100 verifiers were created for https:\/\/per-request\.example\.test\/oidc/,
    );
    expect(warn.mock.calls[0]?.[1]).toEqual({ code: 'RESOURCE_GUARD_VERIFIER_PER_REQUEST' });
  });
});
