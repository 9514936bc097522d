import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthError } from 'resource-guard';
import type { RejectionEvent } from 'resource-guard';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

type Route = (path: string) => { status: number; body: unknown } | undefined;

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

/** An issuer at `<origin>/oidc` whose metadata routes the test decides. */
async function issuerServer(route: (origin: string) => Route) {
  const hits: string[] = [];
  let router: Route = () => undefined;
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const answer = router(req.url ?? '');
    if (answer === undefined) return res.writeHead(404).end();
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  router = route(origin);
  return { origin, issuer: `${origin}/oidc`, hits };
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
 * for good. Now the metadata is read again once older than `keys.maxAge`, as the keys are.
 */
describe('discovery is read again after keys.maxAge', () => {
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
      keys: { maxAge: 60, cooldown: 0 },
      cache: false,
    });
    const tokenOf = (key: typeof oldKey) => mint(key, m2mClaims({ iss: server.issuer }));
    const discoveries = () =>
      server.hits.filter((hit) => hit === '/oidc/.well-known/openid-configuration').length;
    return { ...server, state, verifier, oldKey, newKey, tokenOf, discoveries };
  }

  it('an issuer that moves its JWKS is followed once maxAge has passed; the stale copy is not', async () => {
    const issuer = await movingIssuer();
    const time = clock();
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    issuer.state.current = 'v2';
    // Within maxAge: the keys and the URL they came from are still fresh (as a cold verifier
    // started a minute ago would have them), and an unknown kid refetches the same URL.
    time.advance(30);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe(
      '401 unknown_kid',
    );
    expect(issuer.discoveries()).toBe(1);
    time.advance(31);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe('ok');
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe(
      '401 unknown_kid',
    );
    expect(issuer.discoveries()).toBe(2);
    expect(issuer.hits).toContain('/keys-v2');
  });

  it('a failed re-read keeps the URL it has: the keys stay available, asked again after maxAge', async () => {
    const issuer = await movingIssuer();
    const time = clock();
    const token = await issuer.tokenOf(issuer.oldKey);
    expect(await outcome(issuer.verifier.verify(token))).toBe('ok');
    issuer.state.metadataUp = false;
    time.advance(61);
    // Stale keys answer at once; the refresh (metadata, then the JWKS) runs in the background.
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    await vi.waitFor(() => expect(issuer.hits.filter((hit) => hit === '/keys-v1')).toHaveLength(2));
    expect(issuer.discoveries()).toBe(2);
    // Not asked again on every JWKS fetch while it is down: once per maxAge.
    time.advance(30);
    await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)));
    expect(issuer.discoveries()).toBe(2);
    issuer.state.metadataUp = true;
    issuer.state.current = 'v2';
    time.advance(31);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe('ok');
    expect(issuer.discoveries()).toBe(3);
  });

  it('concurrent refreshes share one discovery request', async () => {
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
