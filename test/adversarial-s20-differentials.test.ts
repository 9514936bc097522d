/**
 * Adversarial review, session 20: PARSER DIFFERENTIALS — a value read one way where it is checked
 * and another way where it is used. Hunted: the Authorization field (list syntax vs scheme read,
 * rawHeaders vs headers vs Web Headers), the cookie and DPoP header readers vs the Authorization
 * reader (name comparison, whitespace), the real adapters over the wire.
 *
 * `it.fails` marks a confirmed bug (`// Was a bug:` gives a minimal reproduction); normal tests assert
 * what held, and each of them can fail.
 */
import { connect } from 'node:net';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { RequestLike, Verifier } from 'resource-guard';
import { createApp as expressApp } from '../examples/express.ts';
import { listen } from './contract/targets.ts';
import type { Running } from './contract/targets.ts';
import { dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

let key: TestKey;
let good: string;
/** Same kid, another key: a forged token (a bad signature), never acceptable. */
let forged: string;

const make = (extra: Record<string, unknown> = {}): Verifier =>
  createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] }, ...extra });

beforeAll(async () => {
  key = await makeKey('ES256');
  good = await mint(key);
  forged = await mint(await makeKey('ES256', key.kid));
});

/** `'anonymous'`, `'ok'` or `'<status> <reason>'` for an optional route. */
async function optional(verifier: Verifier, request: unknown): Promise<string> {
  const result = await outcome(
    verifier.authenticate(request as RequestLike, { optional: true }).then((auth) => {
      if (auth === undefined) throw new Anonymous();
      return auth;
    }),
  ).catch((error: unknown) => {
    if (error instanceof Anonymous) return 'anonymous';
    throw error;
  });
  return result;
}
class Anonymous extends Error {}

/** One raw HTTP/1.1 request (headers as written, duplicates kept); the status and body. */
function send(
  port: number,
  path: string,
  headers: readonly (readonly [string, string])[],
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [name, value] of headers) lines.push(`${name}: ${value}`);
    socket.end(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  });
}

// ---------------------------------------------------------------------------------------------
// 1. The Authorization field: list syntax (multiple_credentials) vs the scheme read
// ---------------------------------------------------------------------------------------------

describe('Authorization: an empty list element before the credential', () => {
  // BUG (contract: README "Optional authentication": "A request that sends a token is verified as
  // always: a bad, expired or malformed one is refused, never downgraded to anonymous"):
  //   verifier.authenticate({ headers: { authorization: `, Bearer ${forged}` } }, { optional: true })
  //   resolves to undefined (anonymous). RFC 9110 §5.6.1: an empty list element is ignored, so the
  //   field holds one credential, `Bearer <forged>`; src/request.ts `hasTwoCredentials` counts it
  //   as a credential, but `bearerToken` then looks for the scheme at the first non-OWS character
  //   (the comma), finds none, and answers missing_token → anonymous. Same for `x=y, Bearer …`.
  it('optional route: ", Bearer <forged>" is refused, never anonymous', async () => {
    const verifier = make();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(',', ' ', '\t', ' ,', ', '), { minLength: 1, maxLength: 4 }),
        fc.constantFrom('record', 'raw', 'web'),
        async (parts, shape) => {
          const prefix = parts.join('');
          fc.pre(prefix.includes(','));
          const value = `${prefix}Bearer ${forged}`;
          const request =
            shape === 'record'
              ? { headers: { authorization: value } }
              : shape === 'raw'
                ? { headers: {}, rawHeaders: ['Authorization', value] }
                : { headers: new Headers({ authorization: value }) };
          expect(await optional(verifier, request)).not.toBe('anonymous');
        },
      ),
      { numRuns: 40 },
    );
  });

  // BUG (a differential between node and Web requests, same bytes on the wire): two Authorization
  // fields, the first empty, then `Bearer <forged>`. Node's rawHeaders shows two fields: 400
  // multiple_credentials. A Web `Headers` joins them as `, Bearer <forged>`: anonymous.
  //   const h = new Headers(); h.append('authorization', ''); h.append('authorization', `Bearer ${forged}`);
  //   verifier.authenticate({ headers: h }, { optional: true }) → undefined
  it('Web Headers: an empty field then a Bearer field answers as node rawHeaders do (400)', async () => {
    const verifier = make();
    const raw = {
      headers: {},
      rawHeaders: ['Authorization', '', 'Authorization', `Bearer ${forged}`],
    };
    expect(await optional(verifier, raw)).toBe('400 multiple_credentials');
    const web = new Headers();
    web.append('authorization', '');
    web.append('authorization', `Bearer ${forged}`);
    expect(await optional(verifier, { headers: web })).toBe('400 multiple_credentials');
  });

  // Changed in session 30: a value of empty elements alone is how `Headers` joins two blank
  // fields, which node's raw list counts as two (README: two headers, an empty one too, 400), so
  // it is multiple_credentials on every path; it was 'no credentials' (anonymous) here.
  it('a value of empty elements alone is multiple_credentials, on a Bearer and on a DPoP-allowed route', async () => {
    const verifier = make();
    for (const value of [',', ' , ,', ',\t,']) {
      expect(await optional(verifier, { headers: { authorization: value } })).toBe(
        '400 multiple_credentials',
      );
    }
    const dpop = make({ dpop: { mode: 'allowed', origin: 'https://api.test' } });
    const request = { method: 'GET', url: '/x', headers: { authorization: ' , ,' } };
    expect(await optional(dpop, request)).toBe('400 multiple_credentials');
  });

  it('control (holds): without the empty element, the forged token is refused on an optional route', async () => {
    const verifier = make();
    for (const value of [`Bearer ${forged}`, ` \tBearer ${forged}`, `bEaReR   ${forged}`]) {
      expect(await optional(verifier, { headers: { authorization: value } })).toBe(
        '401 bad_signature',
      );
      expect(await optional(verifier, { headers: new Headers({ authorization: value }) })).toBe(
        '401 bad_signature',
      );
    }
    expect(await optional(verifier, { headers: { authorization: `Bearer ${good}` } })).toBe('ok');
  });

  it('holds: any list with two credential-shaped elements is 400 multiple_credentials, in every request shape', async () => {
    const verifier = make();
    const scheme = fc.constantFrom('Bearer', 'bearer', 'Basic', 'DPoP', 'Digest', 'x');
    await fc.assert(
      fc.asyncProperty(
        scheme,
        scheme,
        fc.constantFrom(',', ', ', ' ,', ',\t', ', ,'),
        fc.constantFrom('record', 'raw', 'web'),
        async (a, b, sep, shape) => {
          fc.pre(a.toLowerCase() === 'bearer' || b.toLowerCase() === 'bearer');
          const value = `${a} ${forged}${sep}${b} ${forged}`;
          const request =
            shape === 'record'
              ? { headers: { authorization: value } }
              : shape === 'raw'
                ? { headers: {}, rawHeaders: ['Authorization', value] }
                : { headers: new Headers({ authorization: value }) };
          expect(await optional(verifier, request)).toBe('400 multiple_credentials');
        },
      ),
      { numRuns: 60 },
    );
  });

  describe('over the wire (Express example app, GET /products/featured: optional)', () => {
    let running: Running;
    beforeAll(async () => {
      running = await listen(createServer(expressApp(make())) as Server);
    });
    afterAll(() => running.close());
    const port = () => Number(new URL(running.url).port);

    it('control (holds): two Authorization fields (the first empty) are 400; a forged token alone 401', async () => {
      const two = await send(port(), '/products/featured', [
        ['Authorization', ''],
        ['Authorization', `Bearer ${forged}`],
      ]);
      expect(two.status).toBe(400);
      const alone = await send(port(), '/products/featured', [
        ['Authorization', `Bearer ${forged}`],
      ]);
      expect(alone.status).toBe(401);
    });

    // Was a bug: `Authorization: , Bearer <forged>` gets 200 {"personalized":false}: the forged token
    // is ignored and the request served anonymously, where `Authorization: Bearer <forged>` is 401.
    it('"Authorization: , Bearer <forged>" is refused (401 or 400), never served anonymously', async () => {
      const answer = await send(port(), '/products/featured', [
        ['Authorization', `, Bearer ${forged}`],
      ]);
      expect(answer.status).not.toBe(200);
    });
  });

  describe('over the wire (Hono on @hono/node-server, GET /products/featured: optional)', () => {
    let running: Running;
    beforeAll(async () => {
      const { createAdaptorServer } = await import('@hono/node-server');
      const { createApp } = await import('../examples/hono.ts');
      running = await listen(createAdaptorServer({ fetch: createApp(make()).fetch }) as Server);
    });
    afterAll(() => running.close());
    const port = () => Number(new URL(running.url).port);

    it('control (holds): a forged token alone is 401', async () => {
      const alone = await send(port(), '/products/featured', [
        ['Authorization', `Bearer ${forged}`],
      ]);
      expect(alone.status).toBe(401);
    });

    // Was a bug: the same bytes Express answers 400 (two Authorization fields, the first empty) reach
    // the guard as one Web field `, Bearer <forged>`: 200 {"personalized":false}, anonymous.
    it('two Authorization fields (the first empty, then Bearer <forged>) are refused, as on Express', async () => {
      const two = await send(port(), '/products/featured', [
        ['Authorization', ''],
        ['Authorization', `Bearer ${forged}`],
      ]);
      expect(two.status).not.toBe(200);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Header names and values: the cookie / DPoP readers vs the Authorization reader
// ---------------------------------------------------------------------------------------------

describe('cookie and DPoP readers vs the Authorization reader', () => {
  it('control (holds): Authorization names are compared in ASCII only (Kelvin sign K is another header)', async () => {
    const verifier = make();
    // `Authorization` has no k; a name that only lower-cases to it by Unicode is not it.
    for (const name of ['AUTHORİZATION', 'Authorization', 'AUTHORIZATION']) {
      const request = { headers: {}, rawHeaders: [name, `Bearer ${good}`] };
      const expected =
        name.toLowerCase() === 'authorization' && [...name].every((c) => c.charCodeAt(0) < 0x80)
          ? 'ok'
          : '401 missing_token';
      expect(await outcome(verifier.authenticate(request))).toBe(expected);
    }
  });

  // BUG (wording/low: a header-name differential, only reachable with a hand-built RequestLike, as
  // node and Web Headers refuse non-ASCII names): src/request.ts `readHeader` compares names with
  // Unicode `toLowerCase()`, so `Coo\u212Aie` (KELVIN SIGN) is read as the Cookie header, while
  // `isAuthorization` compares ASCII only.
  //   make({ cookie: 'at' }).authenticate({ headers: {}, rawHeaders: ['Coo\u212Aie', `at=${good}`] }) → ok
  it('a header named with a KELVIN SIGN is not the Cookie header', async () => {
    const verifier = make({ cookie: 'at' });
    const request = { headers: {}, rawHeaders: ['Coo\u212Aie', `at=${good}`] };
    expect(await outcome(verifier.authenticate(request))).toBe('401 missing_token');
  });

  // BUG (wording/low): the cookie reader trims with String#trim (every Unicode space), so
  // `Cookie: at=\u00a0<token>` passes where `Authorization: Bearer \u00a0<token>` is 400
  // malformed_header — token-sources.test.ts promises "a token from a cookie obeys the same syntax
  // rules as the header"; RFC 6265 cookie-octet has no NBSP. The cookie *name* is trimmed the same
  // way (`\u00a0at=` is cookie `at`).
  //   make({ cookie: 'at' }).authenticate({ headers: { cookie: `at=\u00a0${good}` } }) → ok
  it('NBSP (or any non-SP/HTAB space) around a cookie token is malformed, as in Authorization', async () => {
    const verifier = make({ cookie: 'at' });
    expect(
      await outcome(verifier.authenticate({ headers: { authorization: `Bearer \u00a0${good}` } })),
    ).toBe('400 malformed_header');
    for (const space of ['\u00a0', '\u2003', '\ufeff', '\u3000']) {
      expect(
        await outcome(verifier.authenticate({ headers: { cookie: `at=${space}${good}` } })),
      ).toBe('400 malformed_header');
    }
  });

  it('control (holds): SP and HTAB around a cookie pair are ignored; quotes are stripped once', async () => {
    const verifier = make({ cookie: 'at' });
    for (const cookie of [`at=${good}`, ` at=${good} `, `x=1;\tat=${good}`, `at="${good}"`]) {
      expect(await outcome(verifier.authenticate({ headers: { cookie } }))).toBe('ok');
    }
    expect(await outcome(verifier.authenticate({ headers: { cookie: `at=""${good}""` } }))).toBe(
      '400 malformed_header',
    );
  });

  // BUG (availability/low): a plain headers record is read case-insensitively for Authorization
  // (README: "a plain object with any header case"), but the cookie reader looks up `cookie` only:
  //   make({ cookie: 'at' }).authenticate({ headers: { Cookie: `at=${good}` } }) → 401 missing_token
  it('a plain headers record: `Cookie` in any case is read, as `Authorization` is', async () => {
    const verifier = make({ cookie: 'at' });
    expect(
      await outcome(verifier.authenticate({ headers: { Authorization: `Bearer ${good}` } })),
    ).toBe('ok');
    expect(await outcome(verifier.authenticate({ headers: { Cookie: `at=${good}` } }))).toBe('ok');
  });

  it('holds: a cookie token and a header token in one request are 400, whatever the spelling of either', async () => {
    const verifier = make({ cookie: 'at' });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('Bearer', 'BEARER', 'bearer'),
        fc.constantFrom(' ', '  '),
        fc.constantFrom('', ' ', '\t'),
        fc.constantFrom('record', 'raw', 'web'),
        async (scheme, sp, ows, shape) => {
          const authorization = `${ows}${scheme}${sp}${forged}${ows}`;
          const cookie = `a=b; at=${good}`;
          const request =
            shape === 'record'
              ? { headers: { authorization, cookie } }
              : shape === 'raw'
                ? { headers: {}, rawHeaders: ['authorization', authorization, 'Cookie', cookie] }
                : { headers: new Headers({ authorization, cookie }) };
          expect(await outcome(verifier.authenticate(request))).toBe('400 multiple_credentials');
        },
      ),
      { numRuns: 30 },
    );
  });

  it('holds: a token cached from the header is not answered for a spelling the header would refuse (cookie whitespace aside)', async () => {
    const verifier = make({ cookie: 'at' });
    expect(
      await outcome(verifier.authenticate({ headers: { authorization: `Bearer ${good}` } })),
    ).toBe('ok');
    // Now cached: spellings around it must still go through the syntax check.
    for (const value of [`${good}\u00a0`, `${good}=x`, `${good},`, `"${good}"x`, `${good}.`]) {
      expect(
        await outcome(verifier.authenticate({ headers: { authorization: `Bearer ${value}` } })),
      ).toMatch(/^40[01] /);
      if (!value.includes('\u00a0')) {
        expect(
          await outcome(verifier.authenticate({ headers: { cookie: `at=${value}` } })),
        ).toMatch(/^40[01] /);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. DPoP: the proof header reader and the Authorization: DPoP reader
// ---------------------------------------------------------------------------------------------

describe('DPoP readers', () => {
  // BUG (wording/low): the DPoP header value is trimmed with String#trim (src/dpop-request.ts
  // readOneHeader), so a proof wrapped in NBSP is accepted while the Authorization field refuses
  // an NBSP. node delivers a 0xA0 byte in a field value as U+00A0 (latin1).
  //   rawHeaders ['Authorization', `DPoP ${token}`, 'DPoP', `\u00a0${proof}`] → ok
  it('a DPoP proof wrapped in NBSP is refused, as an NBSP in Authorization is', async () => {
    const fx = await dpopFixture();
    const holder = await makeProofKey();
    const token = await fx.bound(holder);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = dpopRequest(token, `\u00a0${p}`);
    expect(await outcome(fx.verifier.authenticate(request))).toMatch(/^40[01] /);
  });

  it('control (holds): the same proof, unwrapped, is accepted once; SP around it is ignored', async () => {
    const fx = await dpopFixture();
    const holder = await makeProofKey();
    const token = await fx.bound(holder);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, ` ${p} `)))).toBe('ok');
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe(
      '401 dpop_replayed',
    );
  });

  // Same root cause as section 1, on the DPoP scheme: `, DPoP <token>` reads as no credentials.
  // Was a bug: on an optional route with dpop allowed, `Authorization: , DPoP <bound token>` (with a
  // proof) is anonymous; `Authorization: DPoP <bound token>` with the same bad proof is 401.
  it('optional route: ", DPoP <token>" with a bad proof is refused, never anonymous', async () => {
    const fx = await dpopFixture();
    const holder = await makeProofKey();
    const thief = await makeProofKey();
    const token = await fx.bound(holder);
    const p = await proof(thief, 'GET', `${ORIGIN}/products`, token);
    const plain = dpopRequest(token, p);
    expect(await optional(fx.verifier, plain)).toBe('401 dpop_key_mismatch');
    const comma = dpopRequest(token, p, { scheme: ', DPoP' });
    expect(await optional(fx.verifier, comma)).not.toBe('anonymous');
  });

  it('holds: a DPoP-shaped header never reaches the Bearer path as a token, whatever its spelling', async () => {
    const fx = await dpopFixture();
    const holder = await makeProofKey();
    const token = await fx.bound(holder);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('DPoP', 'dpop', 'DPOP', 'dPoP'),
        fc.constantFrom(' ', '  ', '\t', '\u00a0'),
        async (scheme, sp) => {
          const request = dpopRequest(token, undefined, { scheme: `${scheme}${sp.slice(0, -1)}` });
          // (dpopRequest puts one SP after the scheme; a TAB/NBSP replaces it below)
          if (sp === '\t' || sp === '\u00a0') {
            request.rawHeaders[3] = `${scheme}${sp}${token}`;
          }
          const got = await outcome(fx.verifier.authenticate(request));
          // Never accepted (no proof), never read as Bearer (which would say dpop_bound_token).
          expect(got).not.toBe('ok');
          expect(got).not.toMatch(/dpop_bound_token/);
        },
      ),
      { numRuns: 20 },
    );
  });
});
