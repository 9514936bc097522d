/**
 * Boundaries the other suites pass by at a distance: exact time edges, units of every duration,
 * both body limits, Retry-After, discovery over https. Each test was written against a mutant of
 * the core that the rest of the suite let through.
 */
import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { RejectionEvent, VerifierOptions, KeySourceError, AuthError } from 'resource-guard';
import { clock, outcome } from './helpers/outcome.ts';
import { fixtureVerifier, jwks, key, next, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { AUDIENCE, ISSUER, m2mClaims, mint } from './helpers/keys.ts';

useKeySetFixture();

const setup = (keys: VerifierOptions['keys'] = {}, extra: Partial<VerifierOptions> = {}) =>
  fixtureVerifier({ keys: { cooldown: 30, ...keys }, ...extra });
const T = 1_800_000_000; // a fixed "now", in seconds

describe('time boundaries on a fixed clock', () => {
  it('exp exactly clockTolerance ago is expired; one second later is not', async () => {
    clock(T * 1000);
    const { verifier } = setup({}, { clockTolerance: 5 });
    expect(
      await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T - 60, exp: T - 5 })))),
    ).toBe('401 expired');
    expect(
      await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T - 60, exp: T - 4 })))),
    ).toBe('ok');
  });
  it('nbf within clockTolerance is accepted, beyond it is not', async () => {
    clock(T * 1000);
    const { verifier } = setup({}, { clockTolerance: 5 });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T, nbf: T + 5 }))))).toBe(
      'ok',
    );
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T, nbf: T + 6 }))))).toBe(
      '401 not_yet_valid',
    );
  });
  it('maxTokenAge needs iat even with strict: false', async () => {
    const { verifier, events } = setup({}, { strict: false, maxTokenAge: 60 });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iat: undefined }))))).toBe(
      '401 missing_claim',
    );
    expect(events[0]?.details).toEqual({ claim: 'iat' });
  });
  it('maxTokenAge allows exactly clockTolerance of extra age', async () => {
    clock(T * 1000);
    const { verifier } = setup({}, { maxTokenAge: 60, clockTolerance: 5 });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T - 65 }))))).toBe('ok');
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iat: T - 66 }))))).toBe(
      '401 token_too_old',
    );
  });
  it('scope is split on spaces only', async () => {
    const { verifier } = setup();
    const token = await mint(key, m2mClaims({ scope: 'read:products,write:products' }));
    expect((await verifier.verify(token)).scopes).toEqual(['read:products,write:products']);
    expect(await outcome(verifier.verify(token, { scopes: ['read:products'] }))).toBe(
      '403 insufficient_scope',
    );
  });
  it.each([
    ['client_id', 123],
    ['organization_id', 42],
  ])('P48 %s must be a string', async (claim, value) => {
    const { verifier } = setup();
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ [claim]: value }))))).toBe(
      '401 invalid_claim',
    );
  });
});

describe('request', () => {
  it('a token of exactly maxTokenLength is read', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'http://127.0.0.1:9/jwks',
      maxTokenLength: 100,
    });
    const reason = await verifier
      .authenticate({ headers: { authorization: `Bearer ${'a'.repeat(100)}` } })
      .catch((e: AuthError) => e.reason);
    expect(reason).toBe('opaque_token');
  });
});

describe('challenges', () => {
  it('the scope parameter lists every required scope, space-separated', async () => {
    const { verifier } = setup();
    const error = (await verifier
      .verify(await mint(key, m2mClaims({ scope: 'read:products' })), {
        scopes: ['read:products', 'admin'],
      })
      .catch((e: unknown) => e)) as AuthError;
    expect(error.headers['www-authenticate']).toMatch(/, scope="read:products admin"$/);
  });
});

describe('key set', () => {
  it('an unknown kid one second after a fetch does not refetch (cooldown is in seconds)', async () => {
    const time = clock();
    const { verifier } = setup({ cooldown: 30 });
    await verifier.verify(await mint(key));
    time.advance(1);
    expect(await outcome(verifier.verify(await mint({ ...next, kid: 'random' })))).toBe(
      '401 unknown_kid',
    );
    time.advance(28);
    expect(await outcome(verifier.verify(await mint({ ...next, kid: 'random' })))).toBe(
      '401 unknown_kid',
    );
    expect(jwks.hits).toBe(1);
  });

  it('a token with a new kid waits for the background refresh already in flight', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 60, cooldown: 30 });
    await verifier.verify(await mint(key));
    jwks.keys = [key.jwk, next.jwk];
    time.advance(61); // stale: this request starts a background refresh, which has the new key
    expect(await outcome(verifier.verify(await mint(next)))).toBe('ok');
    expect(jwks.hits).toBe(2);
  });

  it('stale keys serve for maxStale past maxAge, even when maxStale < maxAge', async () => {
    const time = clock();
    const { verifier } = setup({ maxAge: 600, maxStale: 60 });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    await verifier.verify(token);
    jwks.behave((_req, res) => res.writeHead(500).end());
    time.advance(630);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    time.advance(40); // 670 s > maxAge + maxStale
    await new Promise((r) => setTimeout(r, 20));
    time.advance(30);
    expect(await outcome(verifier.verify(token))).toBe('503 keys_unavailable');
  });

  it('Retry-After is the back-off, which restarts at 1 s after a recovery, and for an unknown kid of a fresh set the cooldown', async () => {
    const time = clock();
    jwks.behave((_req, res) => res.writeHead(500).end());
    const { verifier, events } = setup({ cooldown: 30 });
    const first = (await verifier.verify(await mint(key)).catch((e: unknown) => e)) as AuthError;
    expect(first.headers['retry-after']).toBe('1');
    time.advance(2);
    jwks.behave(undefined);
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    jwks.behave((_req, res) => res.writeHead(500).end());
    time.advance(31); // past the cooldown: an unknown kid refetches, and that fetch fails
    const again = (await verifier.verify(await mint(next)).catch((e: unknown) => e)) as AuthError;
    expect(again.status).toBe(503);
    // The back-off restarts at 1 s, but a fresh set refetches an unknown kid once per cooldown:
    // the first fetch possible is 30 s away (session 30; this said 1 s, and a retry then met
    // another 503).
    expect(again.headers['retry-after']).toBe('30');
    expect(events.at(-1)?.details).toMatchObject({ failures: 1 });
  });

  it('an unknown kid whose refetch fails: Retry-After ends when the set turns stale, if before the cooldown', async () => {
    const time = clock();
    const { verifier } = setup({ cooldown: 30, maxAge: 40 });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    jwks.behave((_req, res) => res.writeHead(500).end());
    time.advance(31); // past the cooldown; the set is fresh for 9 s more (then refreshed in the background)
    const refused = (await verifier.verify(await mint(next)).catch((e: unknown) => e)) as AuthError;
    expect([refused.status, refused.headers['retry-after']]).toEqual([503, '9']);
  });
});

describe('fetch limits', () => {
  it('a chunked body (no Content-Length) over 256 KiB is cut off', async () => {
    jwks.behave((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"keys":[],"pad":"`);
      res.write('x'.repeat(300_000));
      res.end('"}');
    });
    const { verifier, events } = setup();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect((events[0]?.cause as KeySourceError).code).toBe('too_large');
  });
  it('a declared Content-Length over the limit is refused before the body arrives', async () => {
    jwks.behave((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '10000000' });
      res.write('{'); // ...and then nothing
    });
    const { verifier, events } = setup({ timeout: 2 });
    const started = performance.now();
    expect(await outcome(verifier.verify(await mint(key)))).toBe('503 keys_unavailable');
    expect((events[0]?.cause as KeySourceError).code).toBe('too_large');
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('discovery over https (injected fetch)', () => {
  const HTTPS_ISSUER = 'https://tenant.example.test/oidc';
  function discoveryFetch(routes: Record<string, () => Response>) {
    const requested: string[] = [];
    const fetch = (async (input: string | URL | Request) => {
      const url = String(input instanceof Request ? input.url : input);
      requested.push(url);
      const route = routes[url];
      return route ? route() : new Response('not found', { status: 404 });
    }) as typeof globalThis.fetch;
    return { fetch, requested };
  }
  const openid = `${HTTPS_ISSUER}/.well-known/openid-configuration`;

  it('metadata issuer must equal the issuer exactly (no trailing-slash leniency)', async () => {
    const { fetch } = discoveryFetch({
      [openid]: () =>
        Response.json({ issuer: `${HTTPS_ISSUER}/`, jwks_uri: `${HTTPS_ISSUER}/jwks` }),
      [`${HTTPS_ISSUER}/jwks`]: () => Response.json({ keys: [key.jwk] }),
    });
    const verifier = createVerifier({ issuer: HTTPS_ISSUER, audience: AUDIENCE, fetch });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iss: HTTPS_ISSUER }))))).toBe(
      '503 keys_unavailable',
    );
  });

  it('an https issuer may not send an http jwks_uri, and it is never fetched', async () => {
    const { fetch, requested } = discoveryFetch({
      [openid]: () =>
        Response.json({ issuer: HTTPS_ISSUER, jwks_uri: 'http://tenant.example.test/oidc/jwks' }),
      'http://tenant.example.test/oidc/jwks': () => Response.json({ keys: [key.jwk] }),
    });
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: HTTPS_ISSUER,
      audience: AUDIENCE,
      fetch,
      onRejected: (e) => events.push(e),
    });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iss: HTTPS_ISSUER }))))).toBe(
      '503 keys_unavailable',
    );
    expect(String((events[0]?.cause as Error).message)).toMatch(/https/);
    expect(requested.some((u) => u.startsWith('http:'))).toBe(false);
  });

  it('only an HTTP error status falls back to RFC 8414; a broken document does not', async () => {
    const { fetch, requested } = discoveryFetch({
      [openid]: () => new Response('<html>oops</html>', { status: 200 }),
      'https://tenant.example.test/.well-known/oauth-authorization-server/oidc': () =>
        Response.json({ issuer: HTTPS_ISSUER, jwks_uri: `${HTTPS_ISSUER}/jwks` }),
      [`${HTTPS_ISSUER}/jwks`]: () => Response.json({ keys: [key.jwk] }),
    });
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: HTTPS_ISSUER,
      audience: AUDIENCE,
      fetch,
      onRejected: (e) => events.push(e),
    });
    expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iss: HTTPS_ISSUER }))))).toBe(
      '503 keys_unavailable',
    );
    expect((events[0]?.cause as KeySourceError).code).toBe('invalid_json');
    expect(requested).toEqual([openid]);
  });
});
