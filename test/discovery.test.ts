import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthError } from 'resource-guard';
import type { RejectionEvent } from 'resource-guard';
import { jsonServer } from './helpers/http.ts';
import type { JsonRoute } from './helpers/http.ts';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** An issuer at `<origin>/oidc` whose metadata routes the test decides; closed after each test. */
async function issuerServer(route: (origin: string) => JsonRoute) {
  const server = await jsonServer(route);
  closers.push(server.close);
  return server;
}

describe('discovery (no jwksUri)', () => {
  it('reads jwks_uri from <issuer>/.well-known/openid-configuration, once', async () => {
    const key = await makeKey();
    const { issuer, hits } = await issuerServer((origin) => (path) => {
      if (path === '/oidc/.well-known/openid-configuration') {
        return { status: 200, body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/oidc/jwks` } };
      }
      if (path === '/oidc/jwks') return { status: 200, body: { keys: [key.jwk] } };
      return undefined;
    });
    const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
    const token = await mint(key, m2mClaims({ iss: issuer }));
    await Promise.all([verifier.verify(token), verifier.verify(token)]);
    await verifier.verify(token);
    expect(hits).toEqual(['/oidc/.well-known/openid-configuration', '/oidc/jwks']);
  });

  it('falls back to RFC 8414 /.well-known/oauth-authorization-server/<path>', async () => {
    const key = await makeKey();
    const { issuer, hits } = await issuerServer((origin) => (path) => {
      if (path === '/.well-known/oauth-authorization-server/oidc') {
        return { status: 200, body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/keys` } };
      }
      if (path === '/keys') return { status: 200, body: { keys: [key.jwk] } };
      return undefined;
    });
    const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
    await verifier.verify(await mint(key, m2mClaims({ iss: issuer })));
    expect(hits).toEqual([
      '/oidc/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server/oidc',
      '/keys',
    ]);
  });

  it('refuses metadata for another issuer (503), and does not cache the failure', async () => {
    const key = await makeKey();
    let honest = false;
    const { issuer } = await issuerServer((origin) => (path) => {
      if (path === '/oidc/.well-known/openid-configuration') {
        const claimed = honest ? `${origin}/oidc` : 'https://evil.example/oidc';
        return { status: 200, body: { issuer: claimed, jwks_uri: `${origin}/oidc/jwks` } };
      }
      if (path === '/oidc/jwks') return { status: 200, body: { keys: [key.jwk] } };
      return undefined;
    });
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer,
      audience: 'https://shopping.api',
      onRejected: (e) => events.push(e),
    });
    const token = await mint(key, m2mClaims({ iss: issuer }));
    const error = (await verifier.verify(token).catch((e: unknown) => e)) as AuthError;
    expect(error.status).toBe(503);
    expect(String((events[0]?.cause as Error).message)).toMatch(/issuer/);
    honest = true;
    await new Promise((r) => setTimeout(r, 1100)); // first back-off step
    await expect(verifier.verify(token)).resolves.toBeDefined();
  });
});

/**
 * Session 28 (helper-63's F2): a discovered `jwks_uri` was kept for the life of the verifier. An
 * issuer that rotated its keys and moved them to a new URL, leaving the old set behind (a stale
 * CDN copy), was never followed: the removed key kept verifying, the new one was `unknown_kid`,
 * for good. A first fix re-read the metadata after `maxAge` and kept the old URL when that failed;
 * helper-66 found that a failing re-read then kept the old URL's keys fresh for good (past
 * `maxStale`, and unreported), and that an unknown kid refetched the old URL while the answer was
 * younger than `maxAge`. Now every JWKS fetch reads the metadata first, as a cold verifier does.
 */
describe('discovery is read for every JWKS fetch', () => {
  afterEach(() => void vi.useRealTimers());

  /** An issuer whose metadata names `/keys-v1` or `/keys-v2`, both still served. */
  async function movingIssuer() {
    const [oldKey, newKey] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
    const state = { current: 'v1', metadataUp: true };
    const server = await issuerServer((origin) => (path) => {
      if (path === '/oidc/.well-known/openid-configuration') {
        if (!state.metadataUp) return { status: 503, body: {} };
        return {
          status: 200,
          body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/keys-${state.current}` },
        };
      }
      if (path === '/keys-v1') return { status: 200, body: { keys: [oldKey.jwk] } };
      if (path === '/keys-v2') return { status: 200, body: { keys: [newKey.jwk] } };
      return undefined;
    });
    const verifier = createVerifier({
      issuer: server.issuer,
      audience: 'https://shopping.api',
      keys: { maxAge: 60, maxStale: 60, cooldown: 0 },
      cache: false,
    });
    const tokenOf = (key: typeof oldKey) => mint(key, m2mClaims({ iss: server.issuer }));
    const discoveries = () =>
      server.hits.filter((hit) => hit === '/oidc/.well-known/openid-configuration').length;
    return { ...server, state, verifier, oldKey, newKey, tokenOf, discoveries };
  }

  it('an issuer that moves its JWKS is followed by the next fetch; the stale copy is not read', async () => {
    const issuer = await movingIssuer();
    clock().advance(0);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    issuer.state.current = 'v2';
    // The new kid refetches: the metadata first, then the URL it names now.
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe('ok');
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe(
      '401 unknown_kid',
    );
    // Three JWKS fetches (the old kid is unknown now too, cooldown 0), three metadata reads.
    expect(issuer.discoveries()).toBe(3);
    expect(issuer.hits.filter((hit) => hit === '/keys-v1')).toHaveLength(1);
    expect(issuer.verifier.health()[0]?.jwksUri).toMatch(/\/keys-v2$/);
  });

  it('metadata down is a key outage: stale keys serve within maxStale, reported, then 503', async () => {
    const issuer = await movingIssuer();
    const time = clock();
    const token = await issuer.tokenOf(issuer.oldKey);
    expect(await outcome(issuer.verifier.verify(token))).toBe('ok');
    issuer.state.metadataUp = false;
    time.advance(61);
    // Stale keys answer at once; the refresh (metadata first) fails in the background.
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    await vi.waitFor(() => expect(issuer.verifier.health()[0]?.lastError).toMatch(/503/));
    expect(issuer.hits.filter((hit) => hit === '/keys-v1')).toHaveLength(1);
    // Past maxAge + maxStale without metadata, the old URL's keys are not trusted any more.
    time.advance(60);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe(
      '503 keys_unavailable',
    );
    issuer.state.metadataUp = true;
    issuer.state.current = 'v2';
    await vi.waitFor(
      async () =>
        expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe(
          'ok',
        ),
      { timeout: 10_000, interval: 200 },
    );
  });

  it('concurrent fetches share one discovery request', async () => {
    const issuer = await movingIssuer();
    const time = clock();
    await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
    issuer.state.current = 'v2';
    time.advance(61);
    const tokens = await Promise.all(
      Array.from({ length: 8 }, () => issuer.tokenOf(issuer.newKey)),
    );
    const answers = await Promise.all(tokens.map((t) => outcome(issuer.verifier.verify(t))));
    expect(answers.every((a) => a === 'ok')).toBe(true);
    expect(issuer.discoveries()).toBe(2);
  });
});
