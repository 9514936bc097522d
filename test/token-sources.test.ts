/** Where the token comes from: the Authorization header, and opt-in cookie / custom extractor. */
import { describe, expect, it } from 'vitest';
import type { RequestLike } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { fixtureVerifier, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { mint } from './helpers/keys.ts';

useKeySetFixture();

describe('token sources', () => {
  it('a cookie is read only when the verifier opts in', async () => {
    const token = await mint(key);
    const request = { headers: { cookie: `theme=dark; at=${token}; lang=en` } };
    const plain = () => fixtureVerifier().verifier;
    const withCookie = () => fixtureVerifier({ cookie: 'at' }).verifier;
    expect(await outcome(plain().authenticate(request))).toBe('401 missing_token');
    expect(await outcome(withCookie().authenticate(request))).toBe('ok');
    const raw = { headers: {}, rawHeaders: ['Cookie', 'theme=dark', 'Cookie', `at=${token}`] };
    expect(await outcome(withCookie().authenticate(raw))).toBe('ok');
    const web = { headers: new Headers({ cookie: `at=${token}` }) };
    expect(await outcome(withCookie().authenticate(web))).toBe('ok');
  });

  it('a custom extractor (here a header of its own)', async () => {
    const token = await mint(key);
    const getToken = (request: RequestLike) =>
      (request.headers as Record<string, string | undefined>)['x-api-token'];
    const { verifier } = fixtureVerifier({ getToken });
    expect(await outcome(verifier.authenticate({ headers: { 'x-api-token': token } }))).toBe('ok');
    expect(await outcome(verifier.authenticate({ headers: {} }))).toBe('401 missing_token');
  });

  it('a token offered two ways in one request is a 400 (RFC 6750 §2)', async () => {
    const token = await mint(key);
    const { verifier } = fixtureVerifier({ cookie: 'at', getToken: () => undefined });
    const both = { headers: { authorization: `Bearer ${token}`, cookie: `at=${token}` } };
    expect(await outcome(verifier.authenticate(both))).toBe('400 multiple_credentials');
    const twice = { headers: { cookie: `at=${token}; at=${token}` } };
    expect(await outcome(verifier.authenticate(twice))).toBe('400 multiple_credentials');
    const { verifier: custom } = fixtureVerifier({ cookie: 'at', getToken: () => token });
    expect(await outcome(custom.authenticate({ headers: { cookie: `at=${token}` } }))).toBe(
      '400 multiple_credentials',
    );
  });

  it('a token from a cookie obeys the same syntax and size rules as the header', async () => {
    const { verifier } = fixtureVerifier({ cookie: 'at', maxTokenLength: 100 });
    expect(await outcome(verifier.authenticate({ headers: { cookie: 'at=a"b' } }))).toBe(
      '400 malformed_header',
    );
    expect(
      await outcome(verifier.authenticate({ headers: { cookie: `at=${'a'.repeat(101)}` } })),
    ).toBe('401 token_too_large');
    expect(await outcome(verifier.authenticate({ headers: { cookie: 'at=' } }))).toBe(
      '401 missing_token',
    );
  });

  it('option shapes: a cookie name is an RFC 6265 token; getToken a function', () => {
    expect(() => fixtureVerifier({ cookie: 'a b' })).toThrow(/`cookie` must be a cookie name/);
    expect(() => fixtureVerifier({ getToken: 'x' as never })).toThrow(
      /`getToken` must be a function/,
    );
  });
});
