/**
 * Logto-first features against the real oidc-provider issuer (Logto-shaped): the preset,
 * organization tokens and organization-level API resources, machine-only routes, several issuers,
 * the M2M client example, and the operator diagnostics.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, logto } from 'resource-guard';
import type { RejectionEvent, Verifier, AuthError } from 'resource-guard';
import { requireAuth } from 'resource-guard/express';
import { readerClaims, signedBy } from './helpers/issuer-tokens.ts';
import { outcome } from './helpers/outcome.ts';
import { createM2MClient } from '../examples/m2m-client.ts';
import { createApp } from '../examples/express.ts';
import { startIssuer } from '../examples/issuer.ts';
import type { Issuer } from '../examples/issuer.ts';

let issuer: Issuer;
let other: Issuer;

beforeAll(async () => {
  [issuer, other] = await Promise.all([startIssuer(), startIssuer({ alg: 'RS256' })]);
});
afterAll(async () => {
  await Promise.all([issuer.close(), other.close()]);
});

const signed = signedBy;
const claims = (overrides?: Record<string, unknown>) => readerClaims(issuer, overrides);

describe('the logto() preset', () => {
  it('derives issuer and JWKS from the endpoint and verifies the tenant’s tokens', async () => {
    const options = logto({ endpoint: `${issuer.endpoint}/`, audience: 'https://shopping.api' });
    expect(options.issuer).toEqual([issuer.issuer]);
    expect(options.jwksUri).toBe(`${issuer.endpoint}/oidc/jwks`);
    expect(options.strict).toBe(true);
    const verifier = createVerifier(options);
    const token = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    const auth = await verifier.verify(token, { scopes: ['read:products'] });
    expect(auth).toMatchObject({
      clientId: 'shopping-reader',
      isMachine: true,
      issuer: issuer.issuer,
    });
  });

  it('accepts the custom-domain issuer as well, and refuses an endpoint given with /oidc', () => {
    const options = logto({
      endpoint: 'https://tenant.logto.app',
      customDomains: ['auth.example.com'],
      audience: 'https://shopping.api',
    });
    expect(options.issuer).toEqual([
      'https://tenant.logto.app/oidc',
      'https://auth.example.com/oidc',
    ]);
    expect(() => logto({ endpoint: 'https://tenant.logto.app/oidc', audience: 'x' })).toThrow(
      /oidc/,
    );
  });
});

describe('organizations', () => {
  let verifier: Verifier;
  beforeAll(() => {
    verifier = createVerifier({
      issuer: issuer.issuer,
      audience: 'https://shopping.api',
      organizations: true,
    });
  });

  it('an organization token opens its own organization’s routes, with organization permissions', async () => {
    const token = await issuer.token(issuer.apps.reader, {
      resource: 'urn:logto:organization:acme',
      scope: 'read:orders',
    });
    const auth = await verifier.verify(token, { organization: 'acme', scopes: ['read:orders'] });
    expect(auth.organizationId).toBe('acme');
    expect(auth.scopes).toEqual(['read:orders']);
    expect(await outcome(verifier.verify(token, { organization: 'globex' }))).toBe(
      '403 organization_mismatch',
    );
    // A route that names no organization is not opened by an organization token.
    expect(await outcome(verifier.verify(token))).toBe('401 audience_mismatch');
  });

  it('is refused by a verifier without organizations: true', async () => {
    const strict = createVerifier({ issuer: issuer.issuer, audience: 'https://shopping.api' });
    const token = await issuer.token(issuer.apps.reader, {
      resource: 'urn:logto:organization:acme',
    });
    expect(await outcome(strict.verify(token, { organization: 'acme' }))).toBe(
      '401 audience_mismatch',
    );
  });

  it('an organization-level API resource token must carry the request’s organization_id', async () => {
    const token = await issuer.token(issuer.apps.reader, {
      scope: 'read:products',
      organization: 'acme',
    });
    const auth = await verifier.verify(token, { organization: 'acme', scopes: ['read:products'] });
    expect(auth.organizationId).toBe('acme');
    expect(auth.claims.organization_id).toBe('acme');
    expect(await outcome(verifier.verify(token, { organization: 'globex' }))).toBe(
      '403 organization_mismatch',
    );
    // A token for the API as a whole carries no organization: refused on an organization route.
    const global = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    expect(await outcome(verifier.verify(global, { organization: 'acme' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('an organization-scoped token opens a route that names no organization only with anyOrganization', async () => {
    const scoped = await issuer.token(issuer.apps.reader, {
      scope: 'read:products',
      organization: 'acme',
    });
    // Its scopes come from the app's role IN acme: a global route must not take them.
    expect(await outcome(verifier.verify(scoped, { scopes: ['read:products'] }))).toBe(
      '403 organization_token',
    );
    const auth = await verifier.verify(scoped, {
      scopes: ['read:products'],
      anyOrganization: true,
    });
    expect(auth.organizationId).toBe('acme');
    // An organization token (organization audience) likewise, only with anyOrganization.
    const orgToken = await issuer.token(issuer.apps.reader, {
      resource: 'urn:logto:organization:acme',
      scope: 'read:orders',
    });
    expect(await outcome(verifier.verify(orgToken))).toBe('401 audience_mismatch');
    expect((await verifier.verify(orgToken, { anyOrganization: true })).organizationId).toBe(
      'acme',
    );
    // A global token is unaffected either way.
    const global = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    expect(await outcome(verifier.verify(global, { anyOrganization: true }))).toBe('ok');
  });

  it('an empty organization matches nothing: neither a route naming "" nor a token claiming ""', async () => {
    const guard = verifier.guard({ scopes: ['read:products'] });
    const headers = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const scoped = await issuer.token(issuer.apps.reader, {
      scope: 'read:products',
      organization: 'acme',
    });
    // The route's organization comes from the request, which names none (or "").
    expect(await outcome(guard(headers(scoped), { organization: '' }))).toBe(
      '403 organization_mismatch',
    );
    expect(await outcome(guard(headers(scoped), { organization: undefined }))).toBe(
      '403 organization_mismatch',
    );
    const empty = signedBy(issuer, readerClaims(issuer, { organization_id: '' }));
    expect(await outcome(guard(headers(await empty), { organization: '' }))).toBe(
      '403 organization_mismatch',
    );
    expect(await outcome(verifier.verify(await empty, { anyOrganization: true }))).toBe(
      '403 organization_token',
    );
    expect(await outcome(verifier.verify(await empty))).toBe('403 organization_token');
  });

  it('an organization that is not a string (a query array, a number) matches nothing', async () => {
    const guard = verifier.guard();
    const orgToken = await signedBy(
      issuer,
      readerClaims(issuer, { aud: 'urn:logto:organization:42' }),
    );
    const request = { headers: { authorization: `Bearer ${orgToken}` } };
    for (const organization of [42, ['42'], { toString: () => '42' }]) {
      const context = { organization } as unknown as { organization: string };
      expect(await outcome(guard(request, context))).toBe('403 organization_mismatch');
    }
    expect(await outcome(guard(request, { organization: '42' }))).toBe('ok');
  });

  it('a token naming two organizations is refused, whatever the route', async () => {
    const twoUrns = await signedBy(
      issuer,
      readerClaims(issuer, {
        aud: ['urn:logto:organization:x', 'urn:logto:organization:y'],
      }),
    );
    const urnAndId = await signedBy(
      issuer,
      readerClaims(issuer, { aud: ['urn:logto:organization:x'], organization_id: 'y' }),
    );
    for (const token of [twoUrns, urnAndId]) {
      for (const requirements of [{ organization: 'x' }, { organization: 'y' }, {}]) {
        expect(await outcome(verifier.verify(token, requirements))).toBe('401 invalid_claim');
      }
    }
  });

  it('through the Express adapter, the organization comes from the route', async () => {
    const app = express();
    app.get(
      '/orgs/:orgId/orders',
      requireAuth(verifier, {
        scopes: ['read:orders'],
        organization: (req) => req.params.orgId as string,
      }),
      (req, res) => {
        res.json({ organization: req.auth?.organizationId });
      },
    );
    const server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const token = await issuer.token(issuer.apps.reader, {
        resource: 'urn:logto:organization:acme',
        scope: 'read:orders',
      });
      const headers = { authorization: `Bearer ${token}` };
      const mine = await fetch(`${base}/orgs/acme/orders`, { headers });
      expect(mine.status).toBe(200);
      expect(await mine.json()).toEqual({ organization: 'acme' });
      const theirs = await fetch(`${base}/orgs/globex/orders`, { headers });
      expect(theirs.status).toBe(403);
      expect(theirs.headers.get('www-authenticate')).toMatch(/error="organization_mismatch"/);
      expect(await theirs.json()).toMatchObject({ error: 'organization_mismatch' });
    } finally {
      server.close();
    }
  });
});

describe('machine and user tokens', () => {
  it('auth.isMachine, and machine: true refuses a user token', async () => {
    const verifier = createVerifier({ issuer: issuer.issuer, audience: 'https://shopping.api' });
    const m2m = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    expect((await verifier.verify(m2m, { machine: true })).isMachine).toBe(true);
    const user = await signed(issuer, claims({ sub: 'user-42' }));
    expect((await verifier.verify(user)).isMachine).toBe(false);
    expect(await outcome(verifier.verify(user, { machine: true }))).toBe('403 machine_required');
  });
});

describe('several issuers', () => {
  it('each has its own key set; a key is trusted only for the issuer whose JWKS it came from', async () => {
    const verifier = createVerifier({
      issuer: [issuer.issuer, other.issuer],
      audience: 'https://shopping.api',
      keys: { cooldown: 0 },
    });
    const fromA = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    const fromB = await other.token(other.apps.reader, { scope: 'read:products' });
    expect((await verifier.verify(fromA)).issuer).toBe(issuer.issuer);
    expect((await verifier.verify(fromB)).issuer).toBe(other.issuer);
    // Claims issuer A, signed with issuer B's real key and kid: B's key is no key of A's.
    const crossed = await signed(other, claims({ iss: issuer.issuer }));
    expect(await outcome(verifier.verify(crossed))).toBe('401 unknown_kid');
  });

  it('never contacts an issuer that is not configured', async () => {
    let contacted = 0;
    const stranger = createServer((_req, res) => {
      contacted++;
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => stranger.listen(0, '127.0.0.1', r));
    const strangerIssuer = `http://127.0.0.1:${(stranger.address() as AddressInfo).port}/oidc`;
    try {
      const verifier = createVerifier({
        issuer: [issuer.issuer, other.issuer],
        audience: 'https://shopping.api',
      });
      const token = await signed(issuer, claims({ iss: strangerIssuer }));
      expect(await outcome(verifier.verify(token))).toBe('401 issuer_mismatch');
      expect(contacted).toBe(0);
    } finally {
      stranger.close();
    }
  });
});

describe('the M2M client example', () => {
  it('gets a token as the Logto guide does, caches it, and calls the API', async () => {
    const verifier = createVerifier({ issuer: issuer.issuer, audience: 'https://shopping.api' });
    const server = createServer(createApp(verifier));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const client = createM2MClient({
        tokenEndpoint: issuer.tokenEndpoint,
        appId: issuer.apps.reader.id,
        appSecret: issuer.apps.reader.secret,
        resource: 'https://shopping.api',
        scope: 'read:products',
      });
      const [a, b] = await Promise.all([
        client.fetch(`${api}/products`),
        client.fetch(`${api}/products/p-1`),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect((await a.json()).client).toBe('shopping-reader');
      await client.fetch(`${api}/products`);
      expect(client.tokenRequests).toBe(1);
    } finally {
      server.close();
    }
  });

  it('retries exactly once, with a fresh token, on a 401', async () => {
    const seen: string[] = [];
    let refuse = 1;
    const api = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.writeHead(refuse-- > 0 ? 401 : 200).end('{}');
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}/`;
    try {
      const client = createM2MClient({
        tokenEndpoint: issuer.tokenEndpoint,
        appId: issuer.apps.reader.id,
        appSecret: issuer.apps.reader.secret,
        resource: 'https://shopping.api',
      });
      expect((await client.fetch(url)).status).toBe(200);
      expect(client.tokenRequests).toBe(2);
      expect(seen[0]).not.toBe(seen[1]);
      refuse = 5;
      expect((await client.fetch(url)).status).toBe(401); // one retry, then the 401 is the answer
      expect(seen).toHaveLength(4);
    } finally {
      api.close();
    }
  });
});

describe('diagnostics: exactly why, for the operator only', () => {
  it('names the reason and the facts, while the client sees a short fixed description', async () => {
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: issuer.issuer,
      audience: 'https://shopping.api',
      keys: { cooldown: 0 },
      onRejected: (event) => events.push(event),
    });
    const opaque = await issuer.token(issuer.apps.reader, { resource: null });
    const cases: [string, () => Promise<string>][] = [
      ['opaque', async () => opaque],
      ['no /oidc', () => signed(issuer, claims({ iss: issuer.endpoint }))],
      ['trailing slash', () => signed(issuer, claims({ iss: `${issuer.issuer}/` }))],
      ['audience', () => signed(issuer, claims({ aud: 'https://billing.api' }))],
      [
        'expired',
        () =>
          signed(issuer, claims({ iat: 1_700_000_000, exp: Math.floor(Date.now() / 1000) - 90 })),
      ],
      ['kid', () => signed(issuer, claims(), { kid: 'retired-key' })],
    ];
    const answers = [];
    for (const [, make] of cases) {
      const error = (await verifier.verify(await make()).catch((e: unknown) => e)) as AuthError;
      answers.push(error.body.error_description);
    }
    expect(events.map((e) => e.reason)).toEqual([
      'opaque_token',
      'issuer_mismatch',
      'issuer_mismatch',
      'audience_mismatch',
      'expired',
      'unknown_kid',
    ]);
    expect(events[0]?.details.hint).toMatch(/resource/);
    expect(events[1]?.details).toMatchObject({
      actual: issuer.endpoint,
      hint: expect.stringMatching(/\/oidc/),
    });
    expect(events[2]?.details.hint).toMatch(/trailing slash/);
    expect(events[3]?.details).toEqual({
      expected: ['https://shopping.api'],
      actual: ['https://billing.api'],
    });
    expect(events[4]?.details.expiredSecondsAgo).toBeGreaterThanOrEqual(90);
    expect(events[5]?.details).toMatchObject({ kid: 'retired-key' });
    // The client's descriptions hold none of those facts.
    for (const description of answers) {
      expect(description).not.toMatch(/127\.0\.0\.1|billing|retired|oidc|\d{2,}/);
    }
  });
});
