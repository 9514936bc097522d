/**
 * Adversarial pass, session 29: a hostile black-box tester (README, STANDARDS.md, CONFORMANCE.md
 * first, then src/ to aim). Every probe is a plain `it`: a `// FIXED` probe failed on the code it
 * probed (helper-69) and passes since the fix named; a `// SOUND:` probe pins what held.
 *
 * Classes: the time window judged against a cold jose verification (fractional NumericDates),
 * RFC 9728 metadata location, entry-point parity over every example server (raw bytes on a
 * socket), header and claim edge shapes, the testing helpers.
 */
import 'reflect-metadata';
import { connect } from 'node:net';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier, VerifierOptions } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { targets } from './contract/targets.ts';
import type { Running } from './contract/targets.ts';

let key: TestKey;
let v: Verifier;
let good: string;

beforeAll(async () => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  key = await makeKey('ES256');
  v = createVerifier(base());
  good = await mint(key, m2mClaims());
});
afterAll(() => vi.restoreAllMocks());
afterEach(() => vi.useRealTimers());

function base(extra: Partial<VerifierOptions> = {}): VerifierOptions {
  return { issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] }, ...extra };
}

/** A cold, by-the-book jose verification (RFC 9068 profile), as the brief defines "refused". */
async function cold(
  token: string,
  options: { maxTokenAge?: number } = {},
  jwks: JWK[] = [key.jwk],
): Promise<'ok' | string> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: jwks }), {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      clockTolerance: 5,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
      ...(options.maxTokenAge === undefined ? {} : { maxTokenAge: options.maxTokenAge }),
    });
    return 'ok';
  } catch (error) {
    return `refused: ${(error as Error).message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Time window: fractional NumericDates (RFC 7519 §2 allows them) against a cold jose verification
// ---------------------------------------------------------------------------------------------

describe('time window with fractional NumericDates, against cold jose', () => {
  /** A wall clock at T + 0.9 s, T a whole second. */
  const at = (fraction: number) => {
    const T = Math.floor(Date.now() / 1000);
    vi.useFakeTimers({ toFake: ['Date'], now: T * 1000 + fraction * 1000 });
    return T;
  };

  // FIXED (7df7868), was FAULT: nbf was judged against the fractional clock (src/claims.ts checkLifetime), jose against
  // the whole second: a token whose nbf is 5.5 s ahead at T+0.9 is accepted, jose refuses it.
  it('F1: an nbf jose refuses (not yet valid) is not accepted', async () => {
    const T = at(0.9);
    const token = await mint(key, m2mClaims({ iat: T, nbf: T + 5.5, exp: T + 3600 }));
    expect(await cold(token)).toMatch(/^refused: "nbf" claim timestamp check failed/);
    expect(await outcome(createVerifier(base()).verify(token))).not.toBe('ok');
  });

  // FIXED (7df7868), was FAULT: same class with maxTokenAge: jose refuses an iat 5.5 s in the future at T+0.9 (its
  // clock is whole seconds); the library's future-iat rule uses the fractional clock.
  it('F2: an iat jose refuses (in the future, with maxTokenAge) is not accepted', async () => {
    const T = at(0.9);
    const token = await mint(key, m2mClaims({ iat: T + 5.5, exp: T + 3600 }));
    expect(await cold(token, { maxTokenAge: 600 })).toMatch(/^refused: "iat" claim timestamp/);
    expect(await outcome(createVerifier(base({ maxTokenAge: 600 })).verify(token))).not.toBe('ok');
  });

  // SOUND: exp and maxTokenAge are judged at least as strictly as jose's whole-second clock.
  it('S1: exp and token age are never looser than jose', async () => {
    const T = at(0.9);
    const cases = [
      m2mClaims({ iat: T - 10, exp: T - 5 }),
      m2mClaims({ iat: T - 10, exp: T - 4.5 }),
      m2mClaims({ iat: T - 10, exp: T - 5.5 }),
      m2mClaims({ iat: T - 605.5, exp: T + 60 }),
      m2mClaims({ iat: T - 605, exp: T + 60 }),
    ];
    const verifier = createVerifier(base({ maxTokenAge: 600 }));
    for (const claims of cases) {
      const token = await mint(key, claims);
      const mine = await outcome(verifier.verify(token));
      if ((await cold(token, { maxTokenAge: 600 })) !== 'ok') expect(mine).not.toBe('ok');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 9728 §3.1: where the metadata lives
// ---------------------------------------------------------------------------------------------

describe('RFC 9728 metadata location', () => {
  // FIXED (2b0126d), was FAULT: RFC 9728 §3.1 removes only a terminating slash that follows the HOST; a resource
  // `https://shopping.api/v1/` keeps its path `/v1/`. src/resource-metadata.ts strips the path's
  // own trailing slash, so a client forming the URL from the resource identifier (as §3.1 tells
  // it to) asks /.well-known/oauth-protected-resource/v1/ and gets no document.
  it('F3: a resource with a trailing path slash is served where §3.1 puts it', () => {
    const verifier = createVerifier(
      base({ resourceMetadata: { resource: 'https://shopping.api/v1/' } }),
    );
    expect(verifier.resourceMetadata?.path).toBe('/.well-known/oauth-protected-resource/v1/');
  });

  // SOUND: a bare origin (`https://shopping.api/`) gets no path suffix, and the document's
  // `resource` is the identifier exactly as configured (§3.3).
  it('S2: the host-only resource and the resource member', () => {
    const verifier = createVerifier(
      base({ resourceMetadata: { resource: 'https://shopping.api/' } }),
    );
    expect(verifier.resourceMetadata?.path).toBe('/.well-known/oauth-protected-resource');
    expect(verifier.resourceMetadata?.document.resource).toBe('https://shopping.api/');
  });
});

// ---------------------------------------------------------------------------------------------
// Every example server, the same hostile bytes on a raw socket
// ---------------------------------------------------------------------------------------------

/** One raw HTTP/1.1 request (bytes as given, latin1), bounded. */
function raw(url: string, head: string, timeoutMs = 6000) {
  const { hostname, port } = new URL(url);
  return new Promise<{ status: number; head: string; body: string }>((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timeout: ${head.split('\r\n')[0]}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const [h = '', ...rest] = text.split('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(h)?.[1] ?? 0),
        head: h,
        body: rest.join('\r\n\r\n'),
      });
    });
    socket.write(Buffer.from(`${head}Connection: close\r\n\r\n`, 'latin1'));
  });
}

const wwwAuth = (head: string) =>
  head
    .split('\r\n')
    .filter((l) => /^www-authenticate:/i.test(l))
    .map((l) => l.slice(l.indexOf(':') + 1).trim())
    .join(', ');

describe('entry-point parity over every example server', () => {
  const running: { name: string; run: Running }[] = [];
  let bound: string;
  let noScope: string;
  let expired: string;
  beforeAll(async () => {
    bound = await mint(key, m2mClaims({ cnf: { jkt: 'x'.repeat(43) } }));
    noScope = await mint(key, m2mClaims({ scope: 'write:products' }));
    expired = await mint(key, m2mClaims({ iat: 1000, exp: 2000 }));
    for (const target of targets) {
      running.push({ name: target.name, run: await target.start(createVerifier(base())) });
    }
  }, 60_000);
  afterAll(async () => {
    for (const { run } of running) await run.close();
  });

  const cases = (): [string, string, number, RegExp | null, string | null][] => [
    // [name, request head, status, WWW-Authenticate, body error]
    [
      'good',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\r\n`,
      200,
      null,
      null,
    ],
    [
      'scheme in odd case',
      `GET /products HTTP/1.1\r\nHost: x\r\nauthorization: bEaReR ${good}\r\n`,
      200,
      null,
      null,
    ],
    [
      'several spaces',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer    ${good}\r\n`,
      200,
      null,
      null,
    ],
    [
      'cnf-bound as Bearer',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bound}\r\n`,
      401,
      /error="invalid_token"/,
      'invalid_token',
    ],
    [
      'no scope',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${noScope}\r\n`,
      403,
      /error="insufficient_scope".*scope="read:products"/,
      'insufficient_scope',
    ],
    [
      'expired',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${expired}\r\n`,
      401,
      /error="invalid_token"/,
      'invalid_token',
    ],
    [
      'tab after scheme',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\t${good}\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'NBSP after token',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\xa0\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'two fields',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\r\nAuthorization: Basic eDp5\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'empty field first',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization:\r\nAuthorization: Bearer ${good}\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'query token only',
      `GET /products?access_token=${good} HTTP/1.1\r\nHost: x\r\n`,
      401,
      /^Bearer realm="[^"]*"$/,
      'missing_token',
    ],
    [
      'DPoP scheme, no dpop option',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: DPoP ${good}\r\n`,
      401,
      /^Bearer realm="[^"]*"$/,
      'missing_token',
    ],
    [
      'cookie only',
      `GET /products HTTP/1.1\r\nHost: x\r\nCookie: access_token=${good}\r\n`,
      401,
      /^Bearer realm="[^"]*"$/,
      'missing_token',
    ],
    [
      'Bearer alone',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'comma after token',
      `GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good},\r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
    [
      'optional + bad token',
      `GET /products/featured HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${expired}\r\n`,
      401,
      /error="invalid_token"/,
      'invalid_token',
    ],
    [
      'optional + Bearer alone',
      `GET /products/featured HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n`,
      400,
      /error="invalid_request"/,
      'invalid_request',
    ],
  ];

  // SOUND (or FAULT, per row): the same bytes get the same status, challenge and body error on
  // every adapter, never a 500, never the token echoed.
  it('P1: every hostile header form, every server', async () => {
    const mismatches: string[] = [];
    for (const { name, run } of running) {
      for (const [label, head, status, challenge, error] of cases()) {
        const answer = await raw(run.url, head);
        const problems: string[] = [];
        if (answer.status !== status) problems.push(`status ${answer.status}`);
        const www = wwwAuth(answer.head);
        if (challenge !== null && !challenge.test(www)) problems.push(`www-authenticate ${www}`);
        if (error !== null && !answer.body.includes(`"error":"${error}"`)) {
          problems.push(`body ${answer.body.slice(0, 120)}`);
        }
        for (const t of [good, bound, expired, noScope]) {
          if (answer.head.includes(t.slice(-20)) || answer.body.includes(t.slice(-20))) {
            problems.push('token echoed');
          }
        }
        if (problems.length > 0) mismatches.push(`${name} / ${label}: ${problems.join('; ')}`);
      }
    }
    expect(mismatches).toEqual([]);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Header and claim shapes that name keys or organizations, and other token sources
// ---------------------------------------------------------------------------------------------

describe('key-naming headers, organizations, other sources', () => {
  // SOUND: an x5c (not in the refused list) is ignored, never trusted: a token signed by the
  // attacker's own key, carrying its certificate chain and the real kid, is a bad signature.
  it('S3: x5c / x5t headers never vouch for a key', async () => {
    const attacker = await makeKey('ES256');
    const forged = await signRaw(
      attacker,
      { alg: 'ES256', typ: 'at+jwt', kid: key.kid, x5c: ['MIIB'], 'x5t#S256': 'AAAA' },
      m2mClaims(),
    );
    expect(await outcome(v.verify(forged))).toBe('401 bad_signature');
    expect(await cold(forged)).not.toBe('ok');
  });

  // SOUND: a token naming two organizations (organization_id and an organization audience that
  // differ) is refused whatever the route, and an organization-level token never opens a global
  // route, on verify, authenticate and guard alike.
  it('S4: organization shapes through every core entry point', async () => {
    const ov = createVerifier(base({ organizations: true }));
    const two = await mint(
      key,
      m2mClaims({ aud: [AUDIENCE, 'urn:logto:organization:b'], organization_id: 'a' }),
    );
    const orgLevel = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const orgToken = await mint(key, m2mClaims({ aud: 'urn:logto:organization:acme' }));
    const req = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    const g = ov.guard({ scopes: ['read:products'] });
    for (const run of [
      (t: string) => ov.verify(t, { scopes: ['read:products'] }),
      (t: string) => ov.authenticate(req(t), { scopes: ['read:products'] }),
      (t: string) => g(req(t)),
    ]) {
      expect(await outcome(run(two))).toBe('401 invalid_claim');
      expect(await outcome(run(orgLevel))).toBe('403 organization_token');
      expect(await outcome(run(orgToken))).toBe('401 audience_mismatch');
    }
    expect(await outcome(ov.verify(orgToken, { organization: 'acme' }))).toBe('ok');
    expect(await outcome(ov.verify(orgToken, { organization: 'acm' }))).toBe(
      '403 organization_mismatch',
    );
    expect(await outcome(ov.verify(orgLevel, { organization: 'ACME' }))).toBe(
      '403 organization_mismatch',
    );
  });

  // SOUND: a key-bound token is refused from a cookie and from getToken too (RFC 9449 §7.2), and
  // a cookie plus a header is two credentials.
  it('S5: cookie and getToken obey the Bearer rules', async () => {
    const bound = await mint(key, m2mClaims({ cnf: { jkt: 'y'.repeat(43) } }));
    const cv = createVerifier(base({ cookie: 'access_token' }));
    const gv = createVerifier(
      base({ getToken: (r) => (r.headers as Record<string, string>)['x-token'] }),
    );
    expect(await outcome(cv.authenticate({ headers: { cookie: `access_token=${bound}` } }))).toBe(
      '401 dpop_bound_token',
    );
    expect(await outcome(gv.authenticate({ headers: { 'x-token': bound } }))).toBe(
      '401 dpop_bound_token',
    );
    expect(
      await outcome(
        cv.authenticate({
          headers: { cookie: `access_token=${good}`, authorization: `Bearer ${good}` },
        }),
      ),
    ).toBe('400 multiple_credentials');
    expect(await outcome(cv.authenticate({ headers: { cookie: `access_token="${good} "` } }))).toBe(
      '400 malformed_header',
    );
    expect(await outcome(gv.authenticate({ headers: { 'x-token': ` ${good}` } }))).toBe(
      '400 malformed_header',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// resource-guard/testing misused in production
// ---------------------------------------------------------------------------------------------

describe('resource-guard/testing in production', () => {
  // FIXED (session 29), was FAULT: createTestIssuer() refused NODE_ENV === 'production' exactly (src/testing.ts, the
  // first lines of createTestIssuer). Windows' `set NODE_ENV=production && node app` gives
  // 'production ' (trailing space), and 'Production' is common: both mint trusted tokens.
  it('F4: NODE_ENV spelled with a trailing space or another case still refuses', async () => {
    const { createTestIssuer } = await import('resource-guard/testing');
    const saved = process.env.NODE_ENV;
    const refused: string[] = [];
    try {
      for (const value of ['production', 'production ', 'Production', 'PRODUCTION']) {
        process.env.NODE_ENV = value;
        try {
          const issuer = await createTestIssuer();
          await issuer.close();
        } catch {
          refused.push(value);
        }
      }
    } finally {
      process.env.NODE_ENV = saved;
    }
    expect(refused).toEqual(['production', 'production ', 'Production', 'PRODUCTION']);
  });
});

describe('challenge quoting and raw JSON shapes', () => {
  // SOUND: per-call scopes taken from a request (a quote, CR LF, a backslash) match no token and
  // never reach the challenge: 403 with a well-formed header, no scope parameter.
  it('S6: hostile per-call scopes never break WWW-Authenticate', async () => {
    for (const scope of ['a"b', 'c\r\nd', 'e\\f', 'read:products\u00a0']) {
      const error = await v.verify(good, { scopes: [scope] }).catch((e: unknown) => e);
      const { status, reason, headers } = error as {
        status: number;
        reason: string;
        headers: Record<string, string>;
      };
      expect(`${status} ${reason}`).toBe('403 insufficient_scope');
      expect(headers['www-authenticate']).toMatch(/^[\x20-\x7e]*$/);
      expect(headers['www-authenticate']).not.toMatch(/scope="/);
    }
  });

  // SOUND: raw JSON shapes signed with the real key: whenever a cold jose verification refuses,
  // the library refuses too (never looser).
  it('S7: raw payload shapes are never accepted where cold jose refuses', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = JSON.stringify(m2mClaims()).slice(1, -1);
    const H = { alg: 'ES256', typ: 'at+jwt', kid: key.kid };
    const payloads = [
      `{${claims},"iss":"https:\\/\\/tenant.example.test\\/oidc"}`,
      `{${claims},"aud":["${AUDIENCE}","${AUDIENCE}",""]}`,
      `{${claims},"exp":1e400}`,
      `{${claims},"exp":-0}`,
      `{${claims},"exp":"${now + 60}"}`,
      `{${claims},"nbf":${now + 60}}`,
      `{${claims},"iat":${now + 60}}`,
      `{${claims},"aud":[]}`,
      `{${claims},"iss":"${ISSUER}/"}`,
      `{${claims},"aud":"${AUDIENCE}/"}`,
      `{${claims},"sub":null}`,
      `{${claims},"jti":null}`,
      `{${claims},"client_id":null}`,
      `{"__proto__":{"exp":${now + 60}},${claims.replace(/"exp":\d+,?/, '')}}`,
    ];
    const looser: string[] = [];
    for (const payload of payloads) {
      const token = await signRaw(key, H, payload);
      const mine = await outcome(v.verify(token));
      if ((await cold(token)) !== 'ok' && mine === 'ok') looser.push(payload.slice(-60));
    }
    expect(looser).toEqual([]);
  });
});
