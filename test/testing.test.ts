import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import express from 'express';
import type { Express } from 'express';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { requireAuth } from 'resource-guard/express';
import { createTestIssuer } from 'resource-guard/testing';
import type { MintOptions, TestAlgorithm, TestIssuerOptions } from 'resource-guard/testing';
import { outcome } from './helpers/outcome.ts';

/** "Your app": built around the verifier it is given, so a test can hand it one. */
function createApp(verifier: Verifier): Express {
  const app = express();
  const read = requireAuth(verifier, { scopes: ['read:products'] });
  app.get('/products', read, (req, res) => void res.json({ client: req.auth?.clientId }));
  const org = requireAuth(verifier, {
    scopes: ['read:products'],
    organization: (r) => String(r.params.org),
  });
  app.get('/orgs/:org/products', org, (req, res) => void res.json(req.auth?.organizationId));
  return app;
}

/** Starts `app` on a free loopback port; `get(path, token)` answers `{ status, body, challenge }`. */
async function serve(app: Express) {
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  running.push(server);
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return async (path: string, token?: string) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const response = await fetch(base + path, { headers });
    const challenge = response.headers.get('www-authenticate');
    return { status: response.status, body: (await response.json()) as unknown, challenge };
  };
}
const running: Server[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('resource-guard/testing with a guarded Express route', () => {
  it('is five lines: issuer, app, token, request, assertion', async () => {
    const issuer = await createTestIssuer();
    const get = await serve(createApp(createVerifier({ ...issuer.verifierOptions })));
    const token = await issuer.mint({ scopes: ['read:products'] });
    const response = await get('/products', token);
    expect(response).toMatchObject({ status: 200, body: { client: 'test-app' } });
  });

  it('answers 401 / 403 as the route would in production', async () => {
    const issuer = await createTestIssuer();
    const get = await serve(createApp(createVerifier({ ...issuer.verifierOptions })));
    expect((await get('/products')).status).toBe(401);
    const noScope = await get('/products', await issuer.mint());
    expect(noScope.status).toBe(403);
    expect(noScope.challenge).toMatch(/error="insufficient_scope", .*scope="read:products"/);
    const expired = await get(
      '/products',
      await issuer.mint({ scopes: ['read:products'], expiresIn: -60 }),
    );
    expect(expired.status).toBe(401);
    expect(expired.challenge).toMatch(/error="invalid_token"/);
  });

  it('mints organization-level tokens for the route’s organization only', async () => {
    const issuer = await createTestIssuer();
    const get = await serve(createApp(createVerifier({ ...issuer.verifierOptions })));
    const token = await issuer.mint({ scopes: ['read:products'], organizationId: 'acme' });
    expect(await get('/orgs/acme/products', token)).toMatchObject({ status: 200, body: 'acme' });
    expect((await get('/orgs/other/products', token)).status).toBe(403);
    expect((await get('/products', token)).status).toBe(403); // a global route refuses it
  });

  it('serve: true puts the JWKS on real loopback HTTP, for an API started separately', async () => {
    const issuer = await createTestIssuer({ serve: true });
    try {
      expect(issuer.jwksUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/oidc\/jwks$/);
      expect(issuer.verifierOptions).not.toHaveProperty('fetch');
      const jwks = await (await fetch(issuer.jwksUri)).json();
      expect(jwks).toEqual(issuer.jwks);
      const get = await serve(createApp(createVerifier({ ...issuer.verifierOptions })));
      const token = await issuer.mint({ scopes: ['read:products'] });
      expect((await get('/products', token)).status).toBe(200);
      expect((await fetch(new URL('/other', issuer.jwksUri))).status).toBe(404);
    } finally {
      await issuer.close();
    }
    await issuer.close(); // idempotent
    await expect(fetch(issuer.jwksUri)).rejects.toThrow();
  });
});

describe('mint()', () => {
  it('makes a Logto-shaped M2M token that a default, strict verifier accepts', async () => {
    const issuer = await createTestIssuer();
    const token = await issuer.mint({ scopes: ['read:products', 'write:products'] });
    const header = decodeProtectedHeader(token);
    const [jwk] = issuer.jwks.keys;
    expect(header).toEqual({
      alg: 'ES384',
      typ: 'at+jwt',
      kid: await calculateJwkThumbprint(jwk!),
    });
    expect(jwk).toMatchObject({
      kty: 'EC',
      crv: 'P-384',
      alg: 'ES384',
      use: 'sig',
      kid: header.kid,
    });
    expect(jwk).not.toHaveProperty('d');
    const claims = decodeJwt(token);
    expect(Object.keys(claims).sort()).toEqual(
      ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub'].sort(),
    );
    expect(claims).toMatchObject({
      sub: 'test-app',
      client_id: 'test-app',
      scope: 'read:products write:products',
      iss: 'https://issuer.test/oidc',
      aud: 'https://api.test',
    });
    expect(claims.exp! - claims.iat!).toBe(3600);
    const auth = await createVerifier({ ...issuer.verifierOptions }).verify(token, {
      scopes: ['write:products'],
    });
    expect(auth).toMatchObject({ isMachine: true, scopes: ['read:products', 'write:products'] });
  });

  it('leaves scope out when no scopes are granted, as Logto does', async () => {
    const issuer = await createTestIssuer();
    expect(decodeJwt(await issuer.mint())).not.toHaveProperty('scope');
    expect(decodeJwt(await issuer.mint({ scopes: [] }))).not.toHaveProperty('scope');
  });

  it('sets sub, client_id, organization_id, audience and custom claims', async () => {
    const issuer = await createTestIssuer({ audience: 'https://shopping.api' });
    const verifier = createVerifier({ ...issuer.verifierOptions, organizations: true });
    const user = await issuer.mint({
      sub: 'user-1',
      clientId: 'spa',
      claims: { roles: ['admin'] },
    });
    expect(await verifier.verify(user)).toMatchObject({
      subject: 'user-1',
      clientId: 'spa',
      isMachine: false,
      claims: { roles: ['admin'], aud: 'https://shopping.api' },
    });
    const orgLevel = await issuer.mint({ organizationId: 'acme' });
    expect(decodeJwt(orgLevel).organization_id).toBe('acme');
    expect(await outcome(verifier.verify(orgLevel, { organization: 'acme' }))).toBe('ok');
    const orgToken = await issuer.mint({ audience: 'urn:logto:organization:acme', scopes: ['x'] });
    expect((await verifier.verify(orgToken, { organization: 'acme' })).organizationId).toBe('acme');
  });

  it('lets claims override or remove any claim, and header override typ, kid and alg', async () => {
    const issuer = await createTestIssuer();
    const verifier = createVerifier({ ...issuer.verifierOptions });
    const cases: [MintOptions, string][] = [
      [{ claims: { iss: 'https://evil.test/oidc' } }, '401 issuer_mismatch'],
      [{ claims: { aud: ['https://other.test', 'https://api.test'] } }, 'ok'],
      [{ claims: { jti: undefined } }, '401 missing_claim'],
      [{ header: { typ: 'JWT' } }, '401 typ_mismatch'],
      [{ header: { typ: undefined } }, '401 typ_mismatch'],
      [{ header: { kid: 'nope' } }, '401 unknown_kid'],
      [{ header: { alg: 'ES256' } }, '401 key_mismatch'],
      [{ expiresIn: -60 }, '401 expired'],
      [{ expiresIn: -1 }, 'ok'], // within the verifier's clockTolerance (5 s)
    ];
    for (const [options, expected] of cases) {
      expect([options, await outcome(verifier.verify(await issuer.mint(options)))]).toEqual([
        options,
        expected,
      ]);
    }
    expect(decodeProtectedHeader(await issuer.mint({ header: { kid: undefined } }))).toEqual({
      alg: 'ES384',
      typ: 'at+jwt',
    });
  });

  it('makes an expired token look like one that was issued an hour before it expired', async () => {
    const issuer = await createTestIssuer();
    const claims = decodeJwt(await issuer.mint({ expiresIn: -60 }));
    const now = Math.floor(Date.now() / 1000);
    expect(claims.exp).toBeLessThanOrEqual(now - 60);
    expect(claims.exp! - claims.iat!).toBe(3600);
  });

  it.each<TestAlgorithm>(['ES384', 'ES256', 'ES512', 'RS256', 'PS256', 'EdDSA'])(
    'signs with %s',
    async (algorithm) => {
      const issuer = await createTestIssuer({ algorithm });
      const token = await issuer.mint({ scopes: ['read:products'] });
      expect(decodeProtectedHeader(token).alg).toBe(algorithm);
      expect(issuer.jwks.keys[0]?.alg).toBe(algorithm);
      await expect(
        createVerifier({ ...issuer.verifierOptions }).verify(token),
      ).resolves.toBeTruthy();
    },
  );
});

describe('rotate()', () => {
  it('keeps the previous key in the JWKS, unless dropPrevious', async () => {
    const issuer = await createTestIssuer();
    const old = await issuer.mint();
    const first = issuer.jwks.keys[0]!;
    const jwks = issuer.jwks;
    const next = await issuer.rotate();
    expect(issuer.jwks.keys).toEqual([next, first]);
    expect(jwks.keys).toEqual([first]); // what was handed out does not change
    const fresh = await issuer.mint();
    expect(decodeProtectedHeader(fresh).kid).toBe(next.kid);
    expect(decodeProtectedHeader(fresh).kid).not.toBe(first.kid);
    const verifier = createVerifier({ ...issuer.verifierOptions, cache: false });
    expect([await outcome(verifier.verify(old)), await outcome(verifier.verify(fresh))]).toEqual([
      'ok',
      'ok',
    ]);

    const latest = await issuer.rotate({ dropPrevious: true });
    expect(issuer.jwks.keys).toEqual([latest]);
    const later = createVerifier({ ...issuer.verifierOptions, cache: false });
    expect(await outcome(later.verify(fresh))).toBe('401 unknown_kid');
    expect(await outcome(later.verify(await issuer.mint()))).toBe('ok');
  });

  it('reaches a verifier that already holds the keys once its cooldown allows', async () => {
    const issuer = await createTestIssuer();
    const verifier = createVerifier({ ...issuer.verifierOptions, keys: { cooldown: 0 } });
    expect(await outcome(verifier.verify(await issuer.mint()))).toBe('ok');
    await issuer.rotate({ dropPrevious: true });
    expect(await outcome(verifier.verify(await issuer.mint()))).toBe('ok');
  });
});

describe('verifierOptions without serve', () => {
  it('never touches the network: the JWKS comes from memory through the fetch option', async () => {
    const connect = vi.spyOn(Socket.prototype, 'connect');
    const globalFetch = vi.spyOn(globalThis, 'fetch');
    const issuer = await createTestIssuer();
    const fetchOption = vi.fn(issuer.verifierOptions.fetch!);
    const verifier = createVerifier({ ...issuer.verifierOptions, fetch: fetchOption });
    expect(await outcome(verifier.verify(await issuer.mint()))).toBe('ok');
    expect(fetchOption).toHaveBeenCalledTimes(1);
    expect(String(fetchOption.mock.calls[0]?.[0])).toBe('https://issuer.test/oidc/jwks');
    expect(connect).not.toHaveBeenCalled();
    expect(globalFetch).not.toHaveBeenCalled();
  });

  it('refuses any URL but its JWKS, and a verifier that would discover is told why', async () => {
    const issuer = await createTestIssuer();
    await expect(issuer.verifierOptions.fetch!('https://example.com/')).rejects.toThrow(
      /no network in tests/,
    );
    const { jwksUri: _, ...withoutJwksUri } = issuer.verifierOptions;
    const discovering = createVerifier(withoutJwksUri);
    expect(await outcome(discovering.verify(await issuer.mint()))).toBe('503 keys_unavailable');
  });

  it('is frozen, as is the issuer, and JWKS answers carry Cache-Control: no-cache', async () => {
    const issuer = await createTestIssuer();
    expect(Object.isFrozen(issuer)).toBe(true);
    expect(Object.isFrozen(issuer.verifierOptions)).toBe(true);
    expect(Object.isFrozen(issuer.jwks.keys)).toBe(true);
    const response = await issuer.verifierOptions.fetch!(issuer.jwksUri);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(await response.json()).toEqual(issuer.jwks);
    await issuer.close(); // a no-op without serve
  });
});

describe('createTestIssuer() options', () => {
  it('refuses to run with NODE_ENV=production', async () => {
    vi.stubEnv('NODE_ENV', 'production');
    await expect(createTestIssuer()).rejects.toThrow(/NODE_ENV=production/);
  });

  it.each<[unknown, RegExp]>([
    [{ issuer: 'issuer.test' }, /`issuer` must be an absolute http\(s\) URL/],
    [{ audience: '' }, /`audience` must be a non-empty string/],
    [{ algorithm: 'HS256' }, /`algorithm` must be one of ES384, ES256/],
    [{ serve: 'yes' }, /`serve` must be true or false/],
    [{ algorithms: ['ES384'] }, /`algorithms` is not a createTestIssuer\(\) option.*`algorithm`/],
    [{ port: 0 }, /`port` is not a createTestIssuer\(\) option/],
    ['https://issuer.test', /must be a plain object/],
  ])('refuses %j with a TypeError naming it', async (options, message) => {
    const attempt = createTestIssuer(options as TestIssuerOptions);
    await expect(attempt).rejects.toThrow(TypeError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('checks mint() and rotate() options too, without mutating them', async () => {
    const issuer = await createTestIssuer();
    const bad: [unknown, RegExp][] = [
      [{ scope: 'read' }, /`mint.scope` is not a mint\(\) option.*`mint.scopes`/],
      [{ scopes: 'read' }, /`mint.scopes` must be an array of scope tokens/],
      [{ scopes: ['a b'] }, /`mint.scopes` must be an array of scope tokens/],
      [{ expiresIn: '1h' }, /`mint.expiresIn` must be a finite number of seconds/],
      [{ claims: [] }, /`mint.claims` must be a plain object/],
      [{ header: { crit: ['x'] } }, /`mint.header.crit` is not typ, kid or alg/],
      [{ organizationId: '' }, /`mint.organizationId` must be a non-empty string/],
    ];
    for (const [options, message] of bad) {
      await expect(issuer.mint(options as MintOptions)).rejects.toThrow(message);
    }
    await expect(issuer.rotate({ drop: true } as never)).rejects.toThrow(/`rotate.drop`/);
    const options = Object.freeze({
      scopes: Object.freeze(['a']),
      claims: Object.freeze({ x: 1 }),
    });
    expect(decodeJwt(await issuer.mint(options))).toMatchObject({ scope: 'a', x: 1 });
  });
});
