/**
 * Session 24: a DPoP `htu` is read as a client writes a URL, not as the URL parser would repair
 * one; the Redis replay store's TTL stays within what Redis takes; a token that expires while an
 * awaited step runs (isRevoked, checks, the DPoP replay insert) is refused when the answer comes.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthInfo, VerifierOptions } from 'resource-guard';
import { normalizeHtu } from '../src/dpop-request.ts';
import { redisReplayStore } from '../adapters/redis/index.ts';
import {
  dpopFixture,
  dpopRequest,
  fx,
  key,
  ORIGIN,
  proof,
  useDpopFixture,
} from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';

useDpopFixture();

describe('a DPoP htu the URL parser would have to repair', () => {
  const refused: Record<string, string> = {
    'a leading space': ` ${ORIGIN}/products`,
    'a trailing space': `${ORIGIN}/products `,
    'a trailing line feed': `${ORIGIN}/products\n`,
    'a tab in the path': `${ORIGIN}/pro\tducts`,
    'a line break in the host': 'https://api.shop.\r\nexample/products',
    'a backslash for a slash': `${ORIGIN}\\products`,
    'backslashes for the slashes after the scheme': 'https:\\\\api.shop.example/products',
    'no slashes after the scheme': 'https:api.shop.example/products',
    'three slashes after the scheme': 'https:///api.shop.example/products',
    'a full-width letter in the host': 'https://\uff41pi.shop.example/products',
    'a Unicode dot in the host': 'https://api\u3002shop.example/products',
    'a soft hyphen in the host': 'https://api.sh\u00adop.example/products',
    'an escaped dot in the host': 'https://api%2Eshop.example/products',
    'a decimal IPv4 shorthand for a host': 'https://2130706433/products',
    'a raw non-ASCII letter in the path': `${ORIGIN}/pr\u00f6ducts`,
    'a zero-width space in the path': `${ORIGIN}/pro\u200bducts`,
    'a NUL in the query': `${ORIGIN}/products?a=\u0000`,
    'a space in the query': `${ORIGIN}/products?a b`,
  };
  const accepted: Record<string, string> = {
    'as written': `${ORIGIN}/products`,
    'upper-case scheme and host': 'HTTPS://API.SHOP.EXAMPLE/products',
    'the default port': 'https://api.shop.example:443/products',
    'an escaped unreserved character': `${ORIGIN}/%70roducts`,
    'a query a URL serialiser leaves as is (| \\ ^ `)': `${ORIGIN}/products?a=|\\^\``,
    'a fragment': `${ORIGIN}/products#top`,
  };

  it.each(Object.entries(refused))('%s: 401 dpop_htu_mismatch', async (_name, htu) => {
    // The URL parser alone takes every one of them (that was the leniency).
    expect(URL.canParse(htu)).toBe(true);
    expect(normalizeHtu(htu)).toBeUndefined();
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', htu, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe(
      '401 dpop_htu_mismatch',
    );
  });

  it.each(Object.entries(accepted))('%s: accepted (RFC 3986 §6.2.2, §6.2.3)', async (_n, htu) => {
    const token = await fx.bound(key);
    const p = await proof(key, 'GET', htu, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
  });

  it("property: what new URL(x).href writes for an http(s) URL is read as that URL's own", () => {
    const segment = fc.stringMatching(/^[\w\-.~!$&'()*+,;=:@%|^[\]{}`"<> \u00e9\u4e2d]{0,12}$/);
    fc.assert(
      fc.property(
        fc.constantFrom('http', 'https'),
        fc.domain(),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.array(segment, { maxLength: 4 }),
        fc.option(segment, { nil: undefined }),
        (scheme, host, port, segments, query) => {
          const written = `${scheme}://${host}${port === undefined ? '' : `:${port}`}/${segments.join('/')}${query === undefined ? '' : `?${query}`}`;
          if (!URL.canParse(written)) return;
          const url = new URL(written);
          if (/%(?![0-9A-Fa-f]{2})/.test(url.pathname)) return; // a stray % is no URI path
          const href = url.href;
          const normalised = normalizeHtu(href);
          expect(normalised).toBeDefined();
          // Idempotent, and the origin is the parser's.
          expect(normalizeHtu(normalised!)).toBe(normalised);
          expect(normalised!.startsWith(url.origin)).toBe(true);
        },
      ),
      { seed: 2424, numRuns: 400 },
    );
  });

  it('property: anything with a character outside printable ASCII before the query is refused', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 8 }),
        fc.constantFrom(...' \t\n\r\u0000\u007f\u0085\u00a0\u200b\u2028\ufeff\uff0f\u00e9\\'),
        fc.string({ maxLength: 8 }),
        (before, odd, after) => {
          const htu = `${ORIGIN}/${before.replace(/[?#]/g, '')}${odd}${after}`;
          expect(normalizeHtu(htu)).toBeUndefined();
        },
      ),
      { seed: 2425, numRuns: 300 },
    );
  });
});

describe('the Redis replay store', () => {
  it('never asks Redis for a PX it cannot take (a huge clockTolerance): capped, still an integer', async () => {
    const sent: string[][] = [];
    const store = redisReplayStore({
      sendCommand: (args) => {
        sent.push(args);
        return Promise.resolve('OK');
      },
    });
    for (const ttl of [0.2, 1500.5, 1.8e19, 1e21, Number.MAX_VALUE, Infinity]) {
      expect(await store.insertIfAbsent('k', ttl)).toBe(true);
    }
    const px = sent.map((args) => args[args.indexOf('PX') + 1]!);
    expect(px.slice(0, 2)).toEqual(['1', '1501']);
    for (const value of px) {
      expect(value).toMatch(/^[1-9]\d*$/);
      // Redis adds the time now (ms) and refuses a sum past 2^63 - 1.
      expect(BigInt(value) + BigInt(Date.now()) * 2n).toBeLessThan(2n ** 63n - 1n);
    }
  });
});

describe('a token that expires while an awaited step runs', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** The time moves on by `seconds` while the step runs, then the step says yes. */
  const slowYes = (time: ReturnType<typeof clock>, seconds: number) => async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    time.advance(seconds);
    return true;
  };

  async function bearer(
    issuerKey: TestKey,
    claims: Record<string, unknown>,
    options: Partial<VerifierOptions>,
    requirements: Record<string, unknown> = {},
  ): Promise<string> {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      clockTolerance: 0,
      ...options,
    });
    const token = await mint(issuerKey, m2mClaims(claims));
    return outcome(
      verifier.authenticate({ headers: { authorization: `Bearer ${token}` } }, requirements),
    );
  }

  // Each: the token has 2 s left when it is verified; the step takes `step` seconds.
  const cases = (step: number) => {
    const now = Math.floor(Date.now() / 1000);
    return { now, claims: { iat: now - 10, exp: now + 2 }, step };
  };

  for (const [step, expected] of [
    [1, 'ok'],
    [3, '401 expired'],
  ] as const) {
    it(`isRevoked taking ${step} s: ${expected}`, async () => {
      const issuerKey = await makeKey('ES256');
      const { now, claims } = cases(step);
      const time = clock(now * 1000);
      const isRevoked = async () => !(await slowYes(time, step)());
      expect(await bearer(issuerKey, claims, { isRevoked })).toBe(expected);
    });

    it(`a check taking ${step} s: ${expected}`, async () => {
      const issuerKey = await makeKey('ES256');
      const { now, claims } = cases(step);
      const time = clock(now * 1000);
      expect(await bearer(issuerKey, claims, {}, { checks: { slow: slowYes(time, step) } })).toBe(
        expected,
      );
    });

    it(`maxTokenAge passed while isRevoked took ${step} s: ${expected === 'ok' ? 'ok' : '401 token_too_old'}`, async () => {
      const issuerKey = await makeKey('ES256');
      const now = Math.floor(Date.now() / 1000);
      const time = clock(now * 1000);
      const isRevoked = async () => !(await slowYes(time, step)());
      expect(
        await bearer(issuerKey, { iat: now - 58, exp: now + 3600 }, { isRevoked, maxTokenAge: 60 }),
      ).toBe(expected === 'ok' ? 'ok' : '401 token_too_old');
    });
  }

  it('a cached token too: the second request, whose isRevoked outlives exp, is refused', async () => {
    const issuerKey = await makeKey('ES256');
    const now = Math.floor(Date.now() / 1000);
    const time = clock(now * 1000);
    let step = 0;
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      clockTolerance: 0,
      isRevoked: async (_auth: AuthInfo) => !(await slowYes(time, step)()),
    });
    const token = await mint(issuerKey, m2mClaims({ iat: now, exp: now + 2 }));
    const request = () => verifier.authenticate({ headers: { authorization: `Bearer ${token}` } });
    expect(await outcome(request())).toBe('ok');
    step = 3;
    expect(await outcome(request())).toBe('401 expired');
  });

  it('DPoP: a replay store that answers after exp: 401 expired (the proof consumed, nothing accepted)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const time = clock(now * 1000);
    let step = 0;
    const inserted = new Set<string>();
    const dpx = await dpopFixture({
      clockTolerance: 0,
      dpop: {
        origin: ORIGIN,
        replay: {
          async insertIfAbsent(k: string) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            time.advance(step);
            if (inserted.has(k)) return false;
            inserted.add(k);
            return true;
          },
        },
      },
    });
    const token = await dpx.bound(key, { iat: now, exp: now + 2 });
    const send = async () =>
      outcome(
        dpx.verifier.authenticate(
          dpopRequest(token, await proof(key, 'GET', `${ORIGIN}/products`, token)),
        ),
      );
    expect(await send()).toBe('ok');
    step = 3;
    expect(await send()).toBe('401 expired');
    expect(inserted.size).toBe(2);
  });
});
