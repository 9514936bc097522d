/**
 * DPoP (RFC 9449) regression guards from an adversarial review: proof shapes, htu forms, the
 * verified-token cache against the scheme, replay across verifiers sharing a store, nonces of a
 * future step, the Redis store's command and replies, and the options that keep DPoP strict.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createVerifier, MemoryReplayStore } from 'resource-guard';
import { redisReplayStore } from 'resource-guard/redis';
import {
  ath,
  dpopFixture,
  dpopRequest,
  fx,
  key,
  ORIGIN,
  other,
  proof,
  useDpopFixture,
} from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, signRaw } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

const URL_ = `${ORIGIN}/products`;

useDpopFixture();

const present = async (token: string, dpop: string, init?: Parameters<typeof dpopRequest>[2]) =>
  outcome(fx.verifier.authenticate(dpopRequest(token, dpop, init)));

describe('proof shapes', () => {
  it.each<[string, Record<string, unknown>]>([
    ['jti a number', { jti: 12345678901234 }],
    ['jti of 257 characters', { jti: 'j'.repeat(257) }],
    ['jti empty', { jti: '' }],
    ['htm a number', { htm: 1 }],
    ['htu an object', { htu: { href: URL_ } }],
    ['iat null', { iat: null }],
    ['no htm', { htm: undefined }],
    ['no htu', { htu: undefined }],
    ['no iat', { iat: undefined }],
  ])('%s: dpop_proof_invalid', async (_name, payload) => {
    const token = await fx.bound(key);
    expect(await present(token, await proof(key, 'GET', URL_, token, { payload }))).toBe(
      '401 dpop_proof_invalid',
    );
  });

  it('iat that JSON reads as Infinity (1e309): refused', async () => {
    const token = await fx.bound(key);
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk };
    const payload = `{"jti":"${randomUUID()}","htm":"GET","htu":"${URL_}","iat":1e309,"ath":"${ath(token)}"}`;
    expect(await present(token, await signRaw(key, header, payload))).toBe(
      '401 dpop_proof_invalid',
    );
  });

  it('a symmetric jwk (kty oct, no k) under an allowed asymmetric alg: refused', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, token, {
      header: { jwk: { kty: 'oct', alg: 'ES256' } },
    });
    expect(await present(token, p)).toBe('401 dpop_proof_invalid');
  });

  it('kid, jku, x5u and x5c naming another key are never used: the embedded jwk verifies', async () => {
    const token = await fx.bound(key);
    // Signed by `other`, embedding `key` (the bound one) and pointing everywhere else at `other`.
    const p = await proof(other, 'GET', URL_, token, {
      header: {
        jwk: key.publicJwk,
        kid: other.jkt,
        jku: 'https://attacker.example/jwks',
        x5u: 'https://attacker.example/cert',
      },
    });
    expect(await present(token, p)).toBe('401 dpop_proof_signature');
  });

  it('a header remembered from a good proof does not vouch for a later proof signed by another key', async () => {
    const token = await fx.bound(key);
    const good = await proof(key, 'GET', URL_, token);
    expect(await present(token, good)).toBe('ok');
    const forged = await proof(other, 'GET', URL_, token, { header: { jwk: key.publicJwk } });
    expect(forged.split('.')[0]).toBe(good.split('.')[0]); // the very header segment remembered
    expect(await present(token, forged)).toBe('401 dpop_proof_signature');
  });
});

describe('htu forms', () => {
  it.each([
    ['a trailing slash', `${ORIGIN}/products/`],
    ['another port', 'https://api.shop.example:8443/products'],
    ['a path prefix', `${ORIGIN}/api/products`],
    ['a subdomain', 'https://evil.api.shop.example/products'],
    ['a trailing-dot host', 'https://api.shop.example./products'],
    ['userinfo', 'https://api.shop.example@evil.example/products'],
    ['a relative URL', '/products'],
    ['another scheme', 'wss://api.shop.example/products'],
  ])('%s: dpop_htu_mismatch', async (_name, htu) => {
    const token = await fx.bound(key);
    expect(await present(token, await proof(key, 'GET', htu, token))).toBe('401 dpop_htu_mismatch');
  });

  it.each([
    ['host and scheme case', 'HTTPS://API.Shop.Example/products'],
    ['the default port', 'https://api.shop.example:443/products'],
    ['a query and fragment', `${URL_}?a=1#b`],
  ])('%s: normalised as RFC 3986 §6.2.2–6.2.3 allow', async (_name, htu) => {
    const token = await fx.bound(key);
    expect(await present(token, await proof(key, 'GET', htu, token))).toBe('ok');
  });

  it('the Host header is not consulted by default (trustHost off)', async () => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', 'https://evil.example/products', token);
    expect(await present(token, p, { host: 'evil.example' })).toBe('401 dpop_htu_mismatch');
  });
});

describe('the verified-token cache never crosses schemes', () => {
  it('a bound token accepted (and cached) via DPoP is then refused as Bearer', async () => {
    const token = await fx.bound(key);
    expect(await present(token, await proof(key, 'GET', URL_, token))).toBe('ok');
    expect(
      await outcome(fx.verifier.authenticate(dpopRequest(token, [], { scheme: 'Bearer' }))),
    ).toBe('401 dpop_bound_token');
    expect(await outcome(fx.verifier.verify(token))).toBe('401 dpop_bound_token');
  });

  it('a plain token accepted (and cached) as Bearer is then refused via DPoP', async () => {
    const token = await fx.plain();
    expect(
      await outcome(fx.verifier.authenticate(dpopRequest(token, [], { scheme: 'Bearer' }))),
    ).toBe('ok');
    expect(await present(token, await proof(key, 'GET', URL_, token))).toBe(
      '401 dpop_unbound_token',
    );
  });
});

describe('replay across verifiers sharing one store', () => {
  it('concurrent presentations of one proof to two instances: exactly one accepted', async () => {
    const store = new MemoryReplayStore();
    const a = await dpopFixture({ dpop: { origin: ORIGIN, replay: store } }, fx.issuerKey);
    const b = await dpopFixture({ dpop: { origin: ORIGIN, replay: store } }, fx.issuerKey);
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', URL_, token);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        outcome((i % 2 === 0 ? a : b).verifier.authenticate(dpopRequest(token, p))),
      ),
    );
    expect(answers.filter((answer) => answer === 'ok')).toHaveLength(1);
    expect(answers.filter((answer) => answer === '401 dpop_replayed')).toHaveLength(9);
  });
});

describe('server nonces', () => {
  const secret = 'a shared secret of thirty-two bytes or more';
  const nonceFor = (step: number) =>
    `${step}.${createHmac('sha256', secret)
      .update(`resource-guard dpop nonce ${step}`)
      .digest()
      .subarray(0, 16)
      .toString('base64url')}`;

  it('a correctly MACed nonce of the previous step is accepted; of the next step, refused', async () => {
    const { verifier } = await dpopFixture(
      { dpop: { origin: ORIGIN, nonce: { secret, step: 300 } } },
      fx.issuerKey,
    );
    const token = await fx.bound(key);
    const step = Math.floor(Date.now() / 1000 / 300);
    const withNonce = async (nonce: string) =>
      outcome(
        verifier.authenticate(
          dpopRequest(token, await proof(key, 'GET', URL_, token, { payload: { nonce } })),
        ),
      );
    expect(await withNonce(nonceFor(step - 1))).toBe('ok');
    expect(await withNonce(nonceFor(step + 1))).toBe('401 dpop_nonce_required');
    expect(await withNonce(nonceFor(step - 2))).toBe('401 dpop_nonce_required');
    expect(await withNonce(` ${nonceFor(step)}`)).toBe('401 dpop_nonce_required');
  });
});

describe('resource-guard/redis: the command and its replies', () => {
  const storeAnswering = (reply: unknown) => {
    const commands: string[][] = [];
    const store = redisReplayStore({
      sendCommand: (args: string[]) => (commands.push(args), Promise.resolve(reply)),
    });
    return { store, commands };
  };

  it('one SET NX PX under the prefix; OK is a first use, null a replay', async () => {
    const { store, commands } = storeAnswering('OK');
    expect(await store.insertIfAbsent('k', 70_000.4)).toBe(true);
    expect(commands).toEqual([['SET', 'rg:dpop:k', '1', 'NX', 'PX', '70001']]);
    expect(await storeAnswering(null).store.insertIfAbsent('k', 1)).toBe(false);
  });

  it.each([['QUEUED'], [1], [0], [''], [undefined], [Buffer.from('OK')]])(
    'any other reply (%j) throws, and the verifier answers 503',
    async (reply) => {
      const { store } = storeAnswering(reply);
      await expect(store.insertIfAbsent('k', 1)).rejects.toThrow();
      const { verifier } = await dpopFixture(
        { dpop: { origin: ORIGIN, replay: store } },
        fx.issuerKey,
      );
      const token = await fx.bound(key);
      expect(
        await outcome(
          verifier.authenticate(dpopRequest(token, await proof(key, 'GET', URL_, token))),
        ),
      ).toBe('503 dpop_replay_unavailable');
    },
  );
});

describe('options that keep DPoP strict', () => {
  const base = { issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [] } };

  it.each([
    ['an origin with a path', { origin: 'https://api.shop.example/v1' }],
    ['an origin with a query', { origin: 'https://api.shop.example?x' }],
    ['an origin with userinfo', { origin: 'https://u:p@api.shop.example' }],
    ['no origin and no trustHost', {}],
    ['HS256 among the algorithms', { origin: ORIGIN, algorithms: ['HS256'] }],
    ['none among the algorithms', { origin: ORIGIN, algorithms: ['none'] }],
    ['a nonce secret under 32 bytes', { origin: ORIGIN, nonce: { secret: 'x'.repeat(31) } }],
    ['a replay store without insertIfAbsent', { origin: ORIGIN, replay: {} }],
  ])('%s: a TypeError at creation', (_name, dpop) => {
    expect(() => createVerifier({ ...base, dpop } as never)).toThrow(TypeError);
  });
});
