/** Where the token comes from: the Authorization header, and opt-in cookie / custom extractor. */
import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { RequestLike, VerifierOptions } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { jwks, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { AUDIENCE, ISSUER, mint } from './helpers/keys.ts';

useKeySetFixture();

const setup = (options: Partial<VerifierOptions> = {}) =>
  createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url, ...options });

describe('token sources', () => {
  it('a cookie is read only when the verifier opts in', async () => {
    const token = await mint(key);
    const request = { headers: { cookie: `theme=dark; at=${token}; lang=en` } };
    expect(await outcome(setup().authenticate(request))).toBe('401 missing_token');
    expect(await outcome(setup({ cookie: 'at' }).authenticate(request))).toBe('ok');
    const raw = { headers: {}, rawHeaders: ['Cookie', 'theme=dark', 'Cookie', `at=${token}`] };
    expect(await outcome(setup({ cookie: 'at' }).authenticate(raw))).toBe('ok');
    const web = { headers: new Headers({ cookie: `at=${token}` }) };
    expect(await outcome(setup({ cookie: 'at' }).authenticate(web))).toBe('ok');
  });

  it('a custom extractor (here a header of its own)', async () => {
    const token = await mint(key);
    const getToken = (request: RequestLike) =>
      (request.headers as Record<string, string | undefined>)['x-api-token'];
    const verifier = setup({ getToken });
    expect(await outcome(verifier.authenticate({ headers: { 'x-api-token': token } }))).toBe('ok');
    expect(await outcome(verifier.authenticate({ headers: {} }))).toBe('401 missing_token');
  });

  it('a token offered two ways in one request is a 400 (RFC 6750 §2)', async () => {
    const token = await mint(key);
    const verifier = setup({ cookie: 'at', getToken: () => undefined });
    const both = { headers: { authorization: `Bearer ${token}`, cookie: `at=${token}` } };
    expect(await outcome(verifier.authenticate(both))).toBe('400 multiple_credentials');
    const twice = { headers: { cookie: `at=${token}; at=${token}` } };
    expect(await outcome(verifier.authenticate(twice))).toBe('400 multiple_credentials');
    const custom = setup({ cookie: 'at', getToken: () => token });
    expect(await outcome(custom.authenticate({ headers: { cookie: `at=${token}` } }))).toBe(
      '400 multiple_credentials',
    );
  });

  it('a token from a cookie obeys the same syntax and size rules as the header', async () => {
    const verifier = setup({ cookie: 'at', maxTokenLength: 100 });
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
    expect(() => setup({ cookie: 'a b' })).toThrow(/`cookie` must be a cookie name/);
    expect(() => setup({ getToken: 'x' as never })).toThrow(/`getToken` must be a function/);
  });
});
