/**
 * The DPoP review's findings, each a test that failed before its fix: a target the URL parser
 * rewrites, the replay window's last millisecond, a token error's challenge, a proof's clock skew,
 * a thief's key refused before import, oversized RSA proof keys, and the replay store reached only
 * by a request the route admits.
 */
import { request as httpRequest, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryReplayStore } from 'resource-guard';
import type { AuthError, RequestLike, Requirements } from 'resource-guard';
import { dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { outcome } from './helpers/outcome.ts';

const URL_ = `${ORIGIN}/products`;

afterEach(() => {
  vi.useRealTimers();
});

describe('DPoP review fixes', () => {
  it.each([
    '/admin/%2e%2e/products',
    '/admin/../products',
    '/admin/%2E./products',
    '/admin\\..\\products',
  ])(
    'a proof for GET /products does not open %s (a target the parser would rewrite)',
    async (path) => {
      const fx = await dpopFixture();
      const key = await makeProofKey();
      const { default: express } = await import('express');
      const { requireAuth } = await import('resource-guard/express');
      const app = express();
      app.get(
        '/admin/{*rest}',
        requireAuth(fx.verifier),
        (_req, res) => void res.json({ admin: true }),
      );
      const server = createServer(app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const token = await fx.bound(key);
      const dpop = await proof(key, 'GET', URL_, token);
      const status = await new Promise<number>((resolve, reject) => {
        httpRequest(
          { port, host: '127.0.0.1', path, headers: { authorization: `DPoP ${token}`, dpop } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
          .on('error', reject)
          .end();
      });
      server.close();
      expect([400, 401, 404]).toContain(status);
    },
  );

  it('a proof is refused as a replay up to the last millisecond its iat is acceptable', async () => {
    const fx = await dpopFixture({ dpop: { origin: ORIGIN, replay: new MemoryReplayStore() } });
    const key = await makeProofKey();
    const t0 = 1_900_000_000_000;
    vi.useFakeTimers({ toFake: ['Date'], now: t0 });
    const token = await fx.bound(key, { iat: t0 / 1000, exp: t0 / 1000 + 3600 });
    const p = await proof(key, 'GET', URL_, token, { payload: { iat: t0 / 1000 + 5 } });
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
    for (const later of [69_999, 70_000, 70_999]) {
      vi.setSystemTime(t0 + later);
      expect(['401 dpop_replayed', '401 dpop_proof_stale']).toContain(
        await outcome(fx.verifier.authenticate(dpopRequest(token, p))),
      );
    }
  });

  it('a token error on a DPoP request is answered on the DPoP challenge', async () => {
    const fx = await dpopFixture();
    const key = await makeProofKey();
    const error = (await fx.verifier
      .authenticate(dpopRequest('a.b.c', await proof(key, 'GET', URL_, 'a.b.c')))
      .catch((e: unknown) => e)) as AuthError;
    expect(error.status).toBe(401);
    expect(error.headers['www-authenticate']).toMatch(/DPoP [^]*error="invalid_token"/);
    expect(error.headers['www-authenticate']).not.toMatch(/^Bearer [^,]*,\s*error=/);
  });

  it('a description that names a scheme names the one the request used, or the only one accepted', async () => {
    const fx = await dpopFixture();
    const error = async (request: RequestLike, requirements?: Requirements) =>
      (await fx.verifier.authenticate(request, requirements).catch((e: unknown) => e)) as AuthError;
    // A malformed DPoP field, on a route taking both: the DPoP wording, on the DPoP challenge.
    const malformed = await error(dpopRequest('a b', undefined));
    expect(malformed.reason).toBe('malformed_header');
    expect(malformed.body.error_description).toMatch(/expected DPoP followed/);
    expect(malformed.headers['www-authenticate']).toMatch(/DPoP [^]*expected DPoP followed/);
    // A malformed Bearer field keeps the Bearer wording.
    const bearer = await error({ headers: { authorization: 'Bearer a b' } });
    expect(bearer.reason).toBe('malformed_header');
    expect(bearer.body.error_description).toMatch(/expected Bearer followed/);
    // No token on a DPoP-only route: send it as DPoP; on a route taking both, as Bearer.
    const none = { headers: { host: 'api.shop.example' } };
    expect((await error(none, { dpop: 'required' })).body.error_description).toMatch(
      /Authorization: DPoP$/,
    );
    expect((await error(none)).body.error_description).toMatch(/Authorization: Bearer$/);
  });

  it("a proof's iat may be at most a minute off, whatever the token's clockTolerance", async () => {
    const fx = await dpopFixture({ clockTolerance: 900 });
    const key = await makeProofKey();
    const token = await fx.bound(key);
    const now = Math.floor(Date.now() / 1000);
    const ahead = await proof(key, 'GET', URL_, token, { payload: { iat: now + 600 } });
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, ahead)))).toBe(
      '401 dpop_proof_stale',
    );
    const skewed = await proof(key, 'GET', URL_, token, { payload: { iat: now + 30 } });
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, skewed)))).toBe('ok');
  });

  it("a thief's own key is refused on the binding, before it is imported or its signature checked", async () => {
    const fx = await dpopFixture();
    const owner = await makeProofKey();
    const thief = await makeProofKey();
    const token = await fx.bound(owner);
    // The owner's request first: the token and the issuer's key are then known and imported.
    const own = await proof(owner, 'GET', URL_, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, own)))).toBe('ok');
    const stolen = await proof(thief, 'GET', URL_, token);
    const { subtle } = globalThis.crypto;
    const importKey = vi.spyOn(subtle, 'importKey');
    const verify = vi.spyOn(subtle, 'verify');
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, stolen)))).toBe(
      '401 dpop_key_mismatch',
    );
    expect(importKey).not.toHaveBeenCalled();
    expect(verify).not.toHaveBeenCalled();
  });

  it.each([
    ['a 16384-bit modulus', { n: 'A'.repeat(2731), e: 'AQAB' }],
    ['a 1024-bit modulus', { n: 'A'.repeat(171), e: 'AQAB' }],
    ['a huge exponent', { n: 'A'.repeat(342), e: 'A'.repeat(512) }],
  ])('an RSA proof key with %s is refused before anything else', async (_name, members) => {
    const fx = await dpopFixture();
    const key = await makeProofKey();
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, token, {
      header: { alg: 'RS256', jwk: { kty: 'RSA', ...members } },
    });
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe(
      '401 dpop_proof_invalid',
    );
  });

  it('a token the route refuses never reaches the replay store', async () => {
    const inserts: string[] = [];
    const store = new MemoryReplayStore();
    const fx = await dpopFixture({
      dpop: {
        origin: ORIGIN,
        replay: {
          insertIfAbsent: (key, ttl) => (inserts.push(key), store.insertIfAbsent(key, ttl)),
        },
      },
    });
    const key = await makeProofKey();
    const token = await fx.bound(key, { scope: 'read:products' });
    const admin = fx.verifier.guard({ scopes: ['admin'] });
    const p = await proof(key, 'GET', URL_, token);
    expect(await outcome(admin(dpopRequest(token, p)))).toBe('403 insufficient_scope');
    expect(inserts).toEqual([]);
    // The same proof is still good once, where the route admits the token.
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
    expect(inserts).toHaveLength(1);
  });
});
