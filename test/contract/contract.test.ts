/**
 * ONE contract, every adapter: the same requests get the same answers from Express, Koa, Fastify,
 * plain node:http and a Web Request handler. Tokens come from a real oidc-provider issuer
 * (Logto-shaped) through its token endpoint; hostile tokens are signed with its real keys.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { createHmac } from 'node:crypto';
import type { JWK, JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, MemoryReplayStore } from 'resource-guard';
import type { RejectionEvent, Verifier } from 'resource-guard';
import { createProof, generateProofKey } from '../../examples/dpop-proof.ts';
import type { ProofKey } from '../../examples/dpop-proof.ts';
import { bearer } from '../helpers/http.ts';
import { issuer, readerToken, useIssuerFixture, writerToken } from '../helpers/issuer-fixture.ts';
import { readerClaims, signedBy } from '../helpers/issuer-tokens.ts';
import { b64url, rawToken } from '../helpers/keys.ts';
import { targets } from './targets.ts';
import type { Running } from './targets.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Record<string, unknown> | undefined;
}

/** A raw HTTP request, so that headers reach the server exactly as written (duplicates too). */
function send(
  url: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string | string[]>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end(body);
  });
}

/** RFC 9728: every challenge points at the metadata. */
const RM = 'resource_metadata="https://shopping.api/.well-known/oauth-protected-resource"';

useIssuerFixture();

let signingKey: JWK;
/** DPoP: the client's key, tokens bound to it by the issuer (read, and read + write). */
let proofKey: ProofKey;
let boundReader: string;
let boundWriter: string;
beforeAll(async () => {
  signingKey = issuer.signingKeys[0] as JWK;
  proofKey = await generateProofKey();
  [boundReader, boundWriter] = await Promise.all([
    issuer.token(issuer.apps.reader, { scope: 'read:products', dpop: proofKey }),
    issuer.token(issuer.apps.writer, { scope: 'write:products', dpop: proofKey }),
  ]);
});

/** The API's public origin as DPoP clients call it (behind a proxy: not the loopback address). */
const PUBLIC = 'https://shopping.example';
/** The server nonces' secret, shared by the DPoP API of every target. */
const NONCE_SECRET = 'the contract suite shares this nonce secret';

const signed = (claims: JWTPayload, header?: Record<string, unknown>) =>
  signedBy(issuer, claims, header);
const claims = (overrides?: Record<string, unknown>) => readerClaims(issuer, overrides);

const hostileTokens: Record<string, () => Promise<string>> = {
  'alg none': async () => rawToken({ alg: 'none', typ: 'at+jwt', kid: signingKey.kid }, claims()),
  'HS256 keyed with the public key': async () => {
    const { d: _d, ...publicJwk } = signingKey;
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: signingKey.kid }));
    const payload = b64url(JSON.stringify(claims()));
    const mac = createHmac('sha256', JSON.stringify(publicJwk)).update(`${header}.${payload}`);
    return `${header}.${payload}.${mac.digest('base64url')}`;
  },
  'tampered payload': async () => {
    const [header, , signature] = readerToken.split('.');
    return `${header}.${b64url(JSON.stringify(claims({ scope: 'read:products write:products' })))}.${signature}`;
  },
  expired: async () => signed(claims({ iat: 1_600_000_000, exp: 1_600_003_600 })),
  'nbf in the future': async () => signed(claims({ nbf: Math.floor(Date.now() / 1000) + 3600 })),
  'wrong issuer (no /oidc)': async () => signed(claims({ iss: issuer.endpoint })),
  'wrong audience': async () => signed(claims({ aud: 'https://billing.api' })),
  'an ID token (typ JWT)': async () => signed(claims({ aud: 'shopping-reader' }), { typ: 'JWT' }),
  'jku header': async () => signed(claims(), { jku: `${issuer.endpoint}/evil` }),
  'unknown kid': async () => signed(claims(), { kid: 'not-a-kid-of-this-issuer' }),
  'opaque token': async () => 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA',
  'missing exp': async () => signed(claims({ exp: undefined })),
};

describe.each(targets)('adapter contract: $name', (target) => {
  let api: Running;
  let down: Running;
  /** The same API with the opt-in token cookie and a revocation hook. */
  let extra: Running;
  /** The same API with DPoP allowed, server nonces on, and a replay store a test can stop. */
  let dpopApi: Running;
  let replayDown = false;
  let nonce: string;
  let verifier: Verifier;
  const events: RejectionEvent[] = [];

  beforeAll(async () => {
    verifier = createVerifier({
      issuer: issuer.issuer, // keys found through discovery, like a real Logto tenant
      audience: 'https://shopping.api',
      keys: { cooldown: 0 },
      resourceMetadata: { resourceName: 'Shopping API', scopesSupported: ['read:products'] },
      onRejected: (event) => events.push(event),
    });
    api = await target.start(verifier);
    // The same API whose issuer's JWKS is unreachable: a key outage.
    down = await target.start(
      createVerifier({
        issuer: issuer.issuer,
        audience: 'https://shopping.api',
        jwksUri: 'http://127.0.0.1:9/jwks',
      }),
    );
    extra = await target.start(
      createVerifier({
        issuer: issuer.issuer,
        audience: 'https://shopping.api',
        cookie: 'at',
        isRevoked: (auth) => {
          if (auth.claims.jti === 'hook-fails') throw new Error('denylist unreachable');
          return auth.claims.jti === 'revoked';
        },
      }),
    );
  });
  beforeAll(async () => {
    const memory = new MemoryReplayStore();
    dpopApi = await target.start(
      createVerifier({
        issuer: issuer.issuer,
        audience: 'https://shopping.api',
        dpop: {
          origin: PUBLIC,
          nonce: { secret: NONCE_SECRET },
          replay: {
            insertIfAbsent: (key, ttlMs) =>
              replayDown
                ? Promise.reject(new Error('replay store down'))
                : memory.insertIfAbsent(key, ttlMs),
          },
        },
      }),
    );
  });
  afterAll(async () => {
    await api.close();
    await down.close();
    await extra.close();
    await dpopApi.close();
  });

  /** `Authorization: DPoP` and a fresh proof for `method PUBLIC+path` (with the server nonce). */
  const dpopHeaders = async (
    token: string,
    method: string,
    path: string,
    withNonce = true,
  ): Promise<Record<string, string>> => ({
    authorization: `DPoP ${token}`,
    dpop: await createProof(proofKey, {
      method,
      url: `${PUBLIC}${path}`,
      accessToken: token,
      ...(withNonce ? { nonce } : {}),
    }),
  });

  it('DPoP: a proof without the server nonce gets use_dpop_nonce and a DPoP-Nonce header', async () => {
    const answer = await send(`${dpopApi.url}/products`, {
      headers: await dpopHeaders(boundReader, 'GET', '/products', false),
    });
    expect(answer.status).toBe(401);
    expect(answer.body?.error).toBe('use_dpop_nonce');
    expect(answer.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", DPoP realm="https:\/\/shopping\.api", error="use_dpop_nonce", error_description="[^"]+", algs="[^"]+"$/,
    );
    nonce = answer.headers['dpop-nonce'] as string;
    expect(nonce).toMatch(/^\d+\.[\w-]{22}$/);
  });

  it('DPoP: a bound token with a proof for this method and URL is accepted, once', async () => {
    const headers = await dpopHeaders(boundReader, 'GET', '/products');
    const answer = await send(`${dpopApi.url}/products`, { headers });
    expect(answer.status).toBe(200);
    expect(answer.body?.client).toBe('shopping-reader');
    const replay = await send(`${dpopApi.url}/products`, { headers });
    expect(replay.status).toBe(401);
    expect(replay.body?.error).toBe('invalid_dpop_proof');
    // The query is not part of htu; the path is, as the framework routed it.
    const query = await send(`${dpopApi.url}/products?page=2`, {
      headers: await dpopHeaders(boundReader, 'GET', '/products'),
    });
    expect(query.status).toBe(200);
    const one = await send(`${dpopApi.url}/products/p-1`, {
      headers: await dpopHeaders(boundReader, 'GET', '/products/p-1'),
    });
    expect(one.status).toBe(200);
    expect(one.body?.id).toBe('p-1');
  });

  it('DPoP: a proof with the previous step’s nonce is accepted, and the answer carries the current one', async () => {
    // The nonce of a time step, as the verifier makes it (src/dpop-nonce.ts, 300 s steps).
    const nonceOf = (step: number) =>
      `${step}.${createHmac('sha256', NONCE_SECRET).update(`resource-guard dpop nonce ${step}`).digest().subarray(0, 16).toString('base64url')}`;
    for (let attempt = 0; ; attempt++) {
      const step = Math.floor(Date.now() / 1000 / 300);
      const headers = {
        authorization: `DPoP ${boundReader}`,
        dpop: await createProof(proofKey, {
          method: 'GET',
          url: `${PUBLIC}/products`,
          accessToken: boundReader,
          nonce: nonceOf(step - 1),
        }),
      };
      const answer = await send(`${dpopApi.url}/products`, { headers });
      if (Math.floor(Date.now() / 1000 / 300) !== step && attempt === 0) continue; // a step began
      expect(answer.status).toBe(200);
      expect(answer.headers['dpop-nonce']).toBe(nonceOf(step));
      break;
    }
    // With the current nonce: nothing newer to send.
    const current = await send(`${dpopApi.url}/products`, {
      headers: await dpopHeaders(boundReader, 'GET', '/products'),
    });
    expect(current.status).toBe(200);
    expect(current.headers['dpop-nonce']).toBeUndefined();
  });

  it('DPoP: a proof for another path or method is refused; a POST needs a POST proof', async () => {
    const path = await send(`${dpopApi.url}/products/p-1`, {
      headers: await dpopHeaders(boundReader, 'GET', '/products'),
    });
    expect(path.status).toBe(401);
    expect(path.body?.error).toBe('invalid_dpop_proof');
    const body = JSON.stringify({ name: 'Kettle', price: 20 });
    const method = await send(`${dpopApi.url}/products`, {
      method: 'POST',
      headers: {
        ...(await dpopHeaders(boundWriter, 'GET', '/products')),
        'content-type': 'application/json',
      },
      body,
    });
    expect(method.status).toBe(401);
    const created = await send(`${dpopApi.url}/products`, {
      method: 'POST',
      headers: {
        ...(await dpopHeaders(boundWriter, 'POST', '/products')),
        'content-type': 'application/json',
      },
      body,
    });
    expect(created.status).toBe(201);
  });

  it('DPoP: a bound token as Bearer, a plain token as DPoP, two proofs: refused', async () => {
    const asBearer = await send(`${dpopApi.url}/products`, { headers: bearer(boundReader) });
    expect(asBearer.status).toBe(401);
    expect(asBearer.body?.error).toBe('invalid_token');
    expect(asBearer.headers['www-authenticate']).toMatch(
      /^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+", DPoP realm="[^"]+", algs="[^"]+"$/,
    );
    // Without DPoP on the verifier, a bound token is refused as Bearer too.
    expect((await send(`${api.url}/products`, { headers: bearer(boundReader) })).status).toBe(401);
    const plain = await send(`${dpopApi.url}/products`, {
      headers: await dpopHeaders(readerToken, 'GET', '/products'),
    });
    expect(plain.status).toBe(401);
    expect(plain.body?.error).toBe('invalid_token');
    const first = await dpopHeaders(boundReader, 'GET', '/products');
    const second = await dpopHeaders(boundReader, 'GET', '/products');
    const two = await send(`${dpopApi.url}/products`, {
      headers: { ...first, dpop: [first.dpop as string, second.dpop as string] },
    });
    expect(two.status).toBe(400);
    expect(two.body?.error).toBe('invalid_request');
    // A plain token as Bearer still works where DPoP is only allowed.
    expect((await send(`${dpopApi.url}/products`, { headers: bearer(readerToken) })).status).toBe(
      200,
    );
  });

  it('DPoP: no credentials → both challenges; a replay store outage → 503, never a 2xx', async () => {
    const none = await send(`${dpopApi.url}/products`);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", DPoP realm="https:\/\/shopping\.api", algs="[^"]+"$/,
    );
    replayDown = true;
    try {
      const outage = await send(`${dpopApi.url}/products`, {
        headers: await dpopHeaders(boundReader, 'GET', '/products'),
      });
      expect(outage.status).toBe(503);
      expect(Number(outage.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(outage.text).not.toContain('replay store down');
    } finally {
      replayDown = false;
    }
  });

  it('GET /products/featured: optional authentication, never a downgrade', async () => {
    const anonymous = await send(`${api.url}/products/featured`);
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toMatchObject({ personalized: false });
    expect((anonymous.body?.products as unknown[]).length).toBe(2);
    const known = await send(`${api.url}/products/featured`, { headers: bearer(readerToken) });
    expect(known.status).toBe(200);
    expect(known.body).toMatchObject({ personalized: true });
    const bad = await send(`${api.url}/products/featured`, { headers: bearer('not.a.jwt') });
    expect(bad.status).toBe(401);
    expect(bad.body?.error).toBe('invalid_token');
    const expired = await signed(claims({ exp: Math.floor(Date.now() / 1000) - 60 }));
    expect((await send(`${api.url}/products/featured`, { headers: bearer(expired) })).status).toBe(
      401,
    );
    const malformed = await send(`${api.url}/products/featured`, {
      headers: { authorization: 'Bearer' },
    });
    expect(malformed.status).toBe(400);
  });

  it('a token cookie works only where the verifier opts in; header and cookie together is a 400', async () => {
    const cookie = { cookie: `theme=dark; at=${readerToken}` };
    expect((await send(`${extra.url}/products`, { headers: cookie })).status).toBe(200);
    const off = await send(`${api.url}/products`, { headers: cookie });
    expect(off.status).toBe(401);
    expect(off.body?.error).toBe('missing_token');
    const both = await send(`${extra.url}/products`, {
      headers: { ...cookie, ...bearer(readerToken) },
    });
    expect(both.status).toBe(400);
    expect(both.body?.error).toBe('invalid_request');
  });

  it('a revoked token is a 401; a revocation hook that fails is a 503, never a 2xx', async () => {
    const revoked = await signed(claims({ jti: 'revoked' }));
    const refused = await send(`${extra.url}/products`, { headers: bearer(revoked) });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    const failing = await signed(claims({ jti: 'hook-fails' }));
    const outage = await send(`${extra.url}/products`, { headers: bearer(failing) });
    expect(outage.status).toBe(503);
    expect(Number(outage.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(outage.text).not.toContain('denylist unreachable');
    expect((await send(`${extra.url}/products`, { headers: bearer(readerToken) })).status).toBe(
      200,
    );
  });

  it('serves RFC 9728 protected resource metadata', async () => {
    const answer = await send(`${api.url}/.well-known/oauth-protected-resource`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.body).toEqual({
      resource: 'https://shopping.api',
      authorization_servers: [issuer.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['read:products'],
      resource_name: 'Shopping API',
    });
  });

  it('serves RFC 9728 metadata for a resource with a path and a trailing slash where §3.1 puts it, and only there', async () => {
    const v1 = await target.start(
      createVerifier({
        issuer: issuer.issuer,
        audience: 'https://shopping.api/v1/',
        resourceMetadata: {},
      }),
    );
    try {
      const answer = await send(`${v1.url}/.well-known/oauth-protected-resource/v1/`);
      expect(answer.status).toBe(200);
      expect(answer.body?.resource).toBe('https://shopping.api/v1/');
      for (const other of ['/v1', '', '/v1//', '/V1/']) {
        const miss = await send(`${v1.url}/.well-known/oauth-protected-resource${other}`);
        expect([other, miss.status]).not.toEqual([other, 200]);
      }
    } finally {
      await v1.close();
    }
  });

  it('serves the public route without a token', async () => {
    const answer = await send(`${api.url}/health`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ status: 'ok' });
  });

  it('lets a genuine reader token read, and passes the verified auth to the handler', async () => {
    const list = await send(`${api.url}/products`, { headers: bearer(readerToken) });
    expect(list.status).toBe(200);
    expect(list.body?.client).toBe('shopping-reader');
    expect((list.body?.products as unknown[]).length).toBeGreaterThanOrEqual(3);
    const one = await send(`${api.url}/products/p-1`, { headers: bearer(readerToken) });
    expect(one.status).toBe(200);
    expect(one.body?.id).toBe('p-1');
    expect((await send(`${api.url}/products/p-999`, { headers: bearer(readerToken) })).status).toBe(
      404,
    );
  });

  it('the reader app cannot write: 403 insufficient_scope naming the scope', async () => {
    const answer = await send(`${api.url}/products`, {
      method: 'POST',
      headers: { ...bearer(readerToken), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Tamper', price: 1 }),
    });
    expect(answer.status).toBe(403);
    expect(answer.headers['www-authenticate']).toBe(
      `Bearer realm="https://shopping.api", error="insufficient_scope", error_description="The access token lacks the required scope", scope="write:products", ${RM}`,
    );
    expect(answer.body).toEqual({
      error: 'insufficient_scope',
      error_description: 'The access token lacks the required scope',
    });
  });

  it('an organization-level API token (organization_id) does not open a route that names no organization', async () => {
    const token = await issuer.token(issuer.apps.reader, {
      scope: 'read:products write:products',
      organization: 'acme',
    });
    const answer = await send(`${api.url}/products`, { headers: bearer(token) });
    expect(answer.status).toBe(403);
    expect(answer.body?.error).toBe('organization_mismatch');
    expect(answer.headers['www-authenticate']).toMatch(/error="organization_mismatch"/);
  });

  it('the writer app writes; its bad input is a 400', async () => {
    const headers = { ...bearer(writerToken), 'content-type': 'application/json' };
    const created = await send(`${api.url}/products`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'Milk frother', price: 35 }),
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Milk frother', price: 35 });
    const invalid = await send(`${api.url}/products`, {
      method: 'POST',
      headers,
      body: '{"name":""}',
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body?.error).toBe('invalid_product');
    const garbage = await send(`${api.url}/products`, {
      method: 'POST',
      headers,
      body: '{not json',
    });
    expect(garbage.status).toBe(400);
    expect(garbage.text).not.toMatch(/at .*\.(ts|js):\d+/);
  });

  it('authenticates before reading the body: no token + bad JSON is a 401', async () => {
    const answer = await send(`${api.url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(answer.status).toBe(401);
  });

  it.each([
    ['no Authorization header', {}],
    ['another scheme (Basic)', { authorization: 'Basic c2hvcHBpbmc6c2VjcmV0' }],
  ])('%s → 401 with a bare Bearer challenge', async (_name, headers) => {
    const answer = await send(`${api.url}/products`, { headers });
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe(`Bearer realm="https://shopping.api", ${RM}`);
    expect(answer.body?.error).toBe('missing_token');
  });

  it.each([
    ['Bearer without a token', { authorization: 'Bearer' }],
    ['two tokens', { authorization: 'Bearer abc def' }],
    ['bad characters', { authorization: 'Bearer abc{}' }],
    ['two Authorization headers', { authorization: ['Bearer abc.def.ghi', 'Bearer jkl.mno.pqr'] }],
  ])('%s → 400 invalid_request', async (_name, headers) => {
    const answer = await send(`${api.url}/products`, { headers });
    expect(answer.status).toBe(400);
    expect(answer.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", error="invalid_request", error_description="[^"]+", resource_metadata="[^"]+"$/,
    );
    expect(answer.body?.error).toBe('invalid_request');
  });

  it('a hostile request line or an oversized body gets a 4xx, and the server lives on', async () => {
    const { port } = new URL(api.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.end('GET http://[ HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 4\d\d /);
    const huge = await send(`${api.url}/products`, {
      method: 'POST',
      headers: { ...bearer(writerToken), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(100_000), price: 1 }),
    });
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);
    expect((await send(`${api.url}/health`)).status).toBe(200);
  });

  it('accepts the scheme in any case', async () => {
    const answer = await send(`${api.url}/products`, {
      headers: { authorization: `bEaReR ${readerToken}` },
    });
    expect(answer.status).toBe(200);
  });

  it('ignores a token in the query string', async () => {
    const answer = await send(`${api.url}/products?access_token=${readerToken}`);
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe(`Bearer realm="https://shopping.api", ${RM}`);
  });

  it.each(Object.keys(hostileTokens))(
    'hostile token: %s → 401 invalid_token, nothing leaked',
    async (name) => {
      const token = await (hostileTokens[name] as () => Promise<string>)();
      const answer = await send(`${api.url}/products`, { headers: bearer(token) });
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toMatch(
        /^Bearer realm="https:\/\/shopping\.api", error="invalid_token", error_description="[ -~]+", resource_metadata="[^"]+"$/,
      );
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(Object.keys(answer.body ?? {}).sort()).toEqual(['error', 'error_description']);
      expect(answer.body?.error).toBe('invalid_token');
      const everything = answer.text + JSON.stringify(answer.headers);
      for (const part of token.split('.').filter((p) => p.length > 8)) {
        expect(everything).not.toContain(part);
      }
      expect(everything).not.toMatch(/JWS|JWT[A-Z]|jose|ERR_|\.ts:\d|\.js:\d/);
    },
  );

  it('a key outage is a 503 with Retry-After, never a 401 or a 2xx', async () => {
    const answer = await send(`${down.url}/products`, { headers: bearer(readerToken) });
    expect(answer.status).toBe(503);
    expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(answer.body?.error).toBe('temporarily_unavailable');
  });

  it('GET /health/keys: 200 with the keys state when they can verify, 503 with the cause when not', async () => {
    await send(`${api.url}/products`, { headers: bearer(readerToken) });
    const ready = await send(`${api.url}/health/keys`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ok',
      issuers: [{ issuer: issuer.issuer, state: 'fresh', keys: expect.any(Number) as number }],
    });
    // The probe itself starts the fetch of a set never fetched; it fails, and the probe says why.
    let notReady = await send(`${down.url}/health/keys`);
    for (let i = 0; i < 50 && notReady.body?.status === 'unavailable'; i++) {
      const [entry] = notReady.body.issuers as { state: string }[];
      if (entry?.state === 'unavailable') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
      notReady = await send(`${down.url}/health/keys`);
    }
    expect(notReady.status).toBe(503);
    expect(notReady.body).toMatchObject({
      status: 'unavailable',
      issuers: [
        {
          issuer: issuer.issuer,
          state: 'unavailable',
          // Port 9 is one the fetch standard refuses ("bad port"): the root cause, not "fetch failed".
          lastError: expect.stringMatching(
            /^(bad port|E[A-Z]+) fetching http:\/\/127\.0\.0\.1:9\/jwks$/,
          ) as string,
          jwksUri: 'http://127.0.0.1:9/jwks',
        },
      ],
    });
  });

  it('picks up a rotated key', async () => {
    await issuer.rotate({ grace: true });
    const fresh = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
    expect(fresh.split('.')[0]).not.toBe(readerToken.split('.')[0]); // a new kid
    expect((await send(`${api.url}/products`, { headers: bearer(fresh) })).status).toBe(200);
    expect((await send(`${api.url}/products`, { headers: bearer(readerToken) })).status).toBe(200);
  });

  it('reported every rejection to onRejected without the token', () => {
    expect(events.length).toBeGreaterThan(10);
    for (const event of events) {
      const text = JSON.stringify(event.details);
      expect(text).not.toContain(readerToken);
      expect(text).not.toContain(writerToken);
    }
  });
});
