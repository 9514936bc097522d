/**
 * Session 24: a DPoP `htu` is read as a client writes a URL, not as the URL parser would repair
 * one; the Redis replay store's TTL stays within what Redis takes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeHtu } from '../src/dpop-request.ts';
import { redisReplayStore } from '../adapters/redis/index.ts';
import { dpopRequest, fx, key, ORIGIN, proof, useDpopFixture } from './helpers/dpop.ts';
import { outcome } from './helpers/outcome.ts';

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
