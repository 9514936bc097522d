import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthError } from 'resource-guard';
import type { RejectionEvent } from 'resource-guard';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';

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
