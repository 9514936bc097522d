import { describe, expect, it } from 'vitest';
import { createVerifier, AuthError } from 'resource-guard';
import type { RequestLike } from 'resource-guard';

// Header parsing needs no keys: every case here is decided before a token is looked at.
const verifier = createVerifier({
  issuer: 'https://tenant.example.test/oidc',
  audience: 'https://shopping.api',
  jwksUri: 'http://127.0.0.1:9/jwks',
  maxTokenLength: 100,
});

async function answer(request: RequestLike) {
  const error = (await verifier.authenticate(request).catch((e: unknown) => e)) as AuthError;
  expect(error).toBeInstanceOf(AuthError);
  return {
    status: error.status,
    reason: error.reason,
    challenge: error.headers['www-authenticate'],
  };
}

const headers = (authorization: string | string[] | undefined) => ({ headers: { authorization } });

describe('reading Authorization: Bearer (RFC 6750 §2.1)', () => {
  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['a scheme that only starts with Bearer', 'Bearerx abc'],
    ['DPoP scheme', 'DPoP abc.def.ghi'],
  ])('%s → 401 with a bare challenge, no error code', async (_name, value) => {
    expect(await answer(headers(value))).toEqual({
      status: 401,
      reason: 'missing_token',
      challenge: 'Bearer realm="https://shopping.api"',
    });
  });

  it.each([
    ['Bearer with no token', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['two tokens', 'Bearer abc def'],
    ['bad characters', 'Bearer ab"c'],
    ['unicode', 'Bearer tökén'],
    ['= in the middle', 'Bearer ab=c'],
  ])('%s → 400 invalid_request', async (_name, value) => {
    const result = await answer(headers(value));
    expect(result.status).toBe(400);
    expect(result.reason).toBe('malformed_header');
    expect(result.challenge).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", error="invalid_request", error_description="[^"]+"$/,
    );
  });

  it.each([
    ['TAB after the scheme', 'Bearer\tabc'],
    ['NBSP after the scheme', 'Bearer\u00a0abc'],
    ['NBSP after the token', 'Bearer abc\u00a0'],
    ['NBSP before the token', 'Bearer \u00a0abc'],
    ['a line feed inside', 'Bearer ab\ncd'],
    ['ideographic space after the scheme', 'Bearer\u3000abc'],
    ['a comma-joined duplicate', 'Bearer abc, Bearer def'],
  ])('RFC 6750 grammar ("Bearer" 1*SP b64token), exactly: %s → 400', async (_name, value) => {
    const result = await answer(headers(value));
    expect(result.status).toBe(400);
  });

  it('only SP and HTAB around the whole field are optional whitespace', async () => {
    for (const value of ['Bearer abc', '  Bearer abc', 'Bearer abc \t', 'BEARER   abc']) {
      // `abc` is no JWT: reaching the token's own check proves the header was read as valid.
      expect((await answer(headers(value))).reason).toBe('opaque_token');
    }
  });

  it('two credentials merged into one field (Web Headers joins them with ", ") → 400', async () => {
    const merged = new Headers();
    merged.append('authorization', 'Basic YTpi');
    merged.append('authorization', 'Bearer abc');
    expect(merged.get('authorization')).toBe('Basic YTpi, Bearer abc');
    const web = await answer({ headers: merged });
    expect(web).toMatchObject({ status: 400, reason: 'multiple_credentials' });
    const request = new Request('http://127.0.0.1/', { headers: merged });
    expect(await answer(request)).toMatchObject({ status: 400, reason: 'multiple_credentials' });
    expect((await answer(headers('Bearer abc, Basic YTpi'))).reason).toBe('multiple_credentials');
    // One credential with auth-params (commas inside) is still one credential: not Bearer → 401.
    expect((await answer(headers('Digest username="a", realm="b", nonce="c"'))).reason).toBe(
      'missing_token',
    );
  });

  it('a challenge always carries an auth-param (RFC 6750 §3): realm defaults to the audience', async () => {
    const result = await answer({ headers: {} });
    expect(result).toEqual({
      status: 401,
      reason: 'missing_token',
      challenge: 'Bearer realm="https://shopping.api"',
    });
    const custom = createVerifier({
      issuer: 'https://tenant.example.test/oidc',
      audience: 'https://shopping.api',
      jwksUri: 'http://127.0.0.1:9/jwks',
      realm: 'shop',
    });
    const error: unknown = await custom.authenticate({ headers: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).headers['www-authenticate']).toBe('Bearer realm="shop"');
  });

  it('a plain headers object with authorization in two cases is two headers → 400', async () => {
    const request = { headers: { authorization: 'Bearer abc', Authorization: 'Bearer def' } };
    expect((await answer(request)).reason).toBe('multiple_credentials');
  });

  it('a huge comma-separated header is answered, and still as two credentials', async () => {
    const value = `Bearer abc, ${'a,'.repeat(500_000)}`;
    expect((await answer({ headers: new Headers({ authorization: value }) })).status).toBe(400);
  });

  it('two Authorization headers (node rawHeaders, or an array) → 400', async () => {
    const raw = {
      headers: { authorization: 'Bearer abc' },
      rawHeaders: ['Authorization', 'Bearer abc', 'authorization', 'Bearer def'],
    };
    expect((await answer(raw)).reason).toBe('multiple_credentials');
    expect((await answer(headers(['Bearer a', 'Bearer b']))).reason).toBe('multiple_credentials');
  });

  it('node rawHeaders: the name in any case; names that only look alike are other headers', async () => {
    const raw = (...pairs: string[]) => ({ headers: {}, rawHeaders: pairs });
    expect((await answer(raw('AUTHORIZATION', 'bEaReR opaque'))).reason).toBe('opaque_token');
    expect(
      (await answer(raw('aUtHoRiZaTiOn', 'Bearer abc', 'AUTHORIZATION', 'Bearer def'))).reason,
    ).toBe('multiple_credentials');
    // One character off, a longer name, or a scheme one letter off: no Bearer credentials here.
    for (const name of ['Authorizatiom', 'Authorization2', 'Xuthorization', 'Authorizatio\u00ee']) {
      expect((await answer(raw(name, 'Bearer abc'))).reason).toBe('missing_token');
    }
    for (const scheme of ['Bearar', 'Baerer', 'Bearer\u00a0']) {
      expect((await answer(raw('Authorization', `${scheme} abc`))).status).not.toBe(200);
    }
  });

  it('a header set by code (absent from node rawHeaders) is still read', async () => {
    const request = { headers: { authorization: 'Bearer opaque' }, rawHeaders: ['Host', 'x'] };
    expect((await answer(request)).reason).toBe('opaque_token');
  });

  it('the scheme is case-insensitive, and the token reaches verification', async () => {
    for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
      expect((await answer(headers(`${scheme} opaque-token`))).reason).toBe('opaque_token');
    }
  });

  it('reads a Web Request, a Headers object and a plain object with any header case', async () => {
    const request = new Request('http://localhost/', {
      headers: { Authorization: 'Bearer opaque' },
    });
    expect((await answer(request)).reason).toBe('opaque_token');
    expect(
      (await answer({ headers: new Headers({ authorization: 'Bearer opaque' }) })).reason,
    ).toBe('opaque_token');
    expect((await answer({ headers: { AUTHORIZATION: 'Bearer opaque' } })).reason).toBe(
      'opaque_token',
    );
  });

  it('never reads a token from the query string or the body', async () => {
    const request = new Request('http://localhost/products?access_token=abc.def.ghi', {
      method: 'POST',
      body: 'access_token=abc.def.ghi',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect((await answer(request)).reason).toBe('missing_token');
  });

  it('a token longer than maxTokenLength → 401 token_too_large, before any parsing', async () => {
    expect((await answer(headers(`Bearer ${'a'.repeat(101)}`))).reason).toBe('token_too_large');
    expect(await verifier.verify('a'.repeat(101)).catch((e: AuthError) => e.reason)).toBe(
      'token_too_large',
    );
  });
});
