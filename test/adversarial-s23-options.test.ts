/**
 * Adversarial pass, session 23: options that the checks ACCEPT although they make the verifier
 * silently wrong. The class of the trailing-CR issuer (fixed): a value that passes the check (the
 * URL parser normalises it) but is used as written elsewhere, so every token is a silent 401.
 *
 * Tried on every option: issuer-, audience-, endpoint-, origin- and metadata-URL spellings the URL
 * parser normalises (backslash, dot segments, default port, case, invisible format characters,
 * CR, credentials), claim and organization names, numbers at the edges, lists with holes, option
 * objects with non-enumerable, inherited or changing (getter) members, through createVerifier,
 * logto(), guard(), the kit and the Hono adapter.
 *
 * What held is asserted as is. What did not hold is an `it.fails` with a `BUG:` note.
 */
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier, logto } from 'resource-guard';
import type { LogtoOptions, Requirements, Verifier, VerifierOptions } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome } from 'resource-guard/kit';
import { requireAuth } from 'resource-guard/hono';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';

let key: TestKey; // the issuer's (ES256)
let v: Verifier; // a default verifier over its static key set
let good: string; // a valid M2M token with read:products write:products

beforeAll(async () => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  key = await makeKey('ES256');
  v = createVerifier(base());
  good = await mint(key, m2mClaims());
});

afterAll(() => vi.restoreAllMocks());

function base(): VerifierOptions {
  return { issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } };
}
const bearerReq = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** What createVerifier does with `options`: `'TypeError'`, or the outcome of `good`. */
async function verdict(options: VerifierOptions, token = good): Promise<string> {
  let verifier: Verifier;
  try {
    verifier = createVerifier(options);
  } catch (error) {
    if (error instanceof TypeError) return 'TypeError';
    throw error;
  }
  return outcome(verifier.verify(token));
}

/** `target` with `name` defined as an own, non-enumerable data property. */
function hidden<T extends object>(target: T, name: string, value: unknown): T {
  Object.defineProperty(target, name, { value, enumerable: false });
  return target;
}

// A Logto tenant on the test key: logto()'s options, the JWKS URL swapped for the static key set.
const ENDPOINT = 'https://t.logto.test';
function fromLogto(options: LogtoOptions): Verifier {
  const { jwksUri: _jwksUri, ...rest } = logto(options);
  return createVerifier({ ...rest, jwks: { keys: [key.jwk] } });
}
const logtoToken = (claims: Record<string, unknown> = {}) =>
  mint(key, m2mClaims({ iss: `${ENDPOINT}/oidc`, ...claims }));

describe('options the checks read but an intermediate layer drops (looser than meant)', () => {
  it('createVerifier and guard() honour a non-enumerable option (the documented contract)', async () => {
    const options = hidden(base(), 'requiredClaims', ['tenant_id']);
    expect(await verdict(options)).toBe('401 missing_claim');
    const requirements = hidden({}, 'scopes', ['admin']) as Requirements;
    expect(await outcome(v.guard(requirements)(bearerReq(good)))).toBe('403 insufficient_scope');
  });

  // Was a bug (fixed in session 23): the kit (every adapter: requireAuth of Express, Koa, Fastify, Hapi, Hono, NestJS) drops a
  // non-enumerable route option. routeGuard() splits the options with `{ errors, organization,
  // ...requirements } = options`; an object rest copies enumerable members only, so a
  // non-enumerable `scopes` (or `machine`, `claimEquals`, `checks`...) never reaches
  // verifier.guard(): the route lets every valid token in. verifier.guard() itself reads
  // non-enumerable options (option-checks.ts: "a misspelling hidden by defineProperty is still a
  // misspelling"), so the same object is enforced by guard() and ignored by requireAuth().
  //   routeGuard(verifier, Object.defineProperty({}, 'scopes', { value: ['admin'] }))
  //   → a token without `admin` passes. Expected: 403 insufficient_scope (or a TypeError).
  it('the kit enforces a non-enumerable route requirement (scopes)', async () => {
    const options = hidden({}, 'scopes', ['admin']);
    const guard = routeGuard(v, options);
    const seen: Outcome<Promise<string>> = {
      pass: () => Promise.resolve('pass'),
      respond: (error) => Promise.resolve(`respond ${error.status}`),
      fail: () => Promise.resolve('fail'),
    };
    expect(await guard.run({}, bearerReq(good), seen)).toBe('respond 403');
  });

  // Was a bug (fixed in session 23): Hono's requireAuth() with a `mountPath` copies the options with an object rest before the
  // kit sees them: a non-plain options object (whose `scopes` is inherited) is then turned into a
  // plain one without its requirements, where without `mountPath` the kit refuses it (TypeError).
  //   const options = Object.create({ scopes: ['admin'] }); options.mountPath = '/api';
  //   requireAuth(verifier, options) → every valid token passes. Expected: a TypeError (as without
  //   mountPath) or the scope enforced.
  it('hono requireAuth with mountPath does not drop inherited requirements', async () => {
    const make = (withMount: boolean) => {
      const options = Object.create({ scopes: ['admin'] }) as Record<string, unknown>;
      if (withMount) options.mountPath = '/api';
      return () => requireAuth(v, options as Parameters<typeof requireAuth>[1]);
    };
    expect(make(false)).toThrow(TypeError); // holds: the kit refuses a non-plain object
    let status: number;
    try {
      const app = new Hono();
      app.use('/p', make(true)());
      app.get('/p', (c) => c.text('in'));
      status = (await app.request('/p', bearerReq(good))).status;
    } catch (error) {
      status = error instanceof TypeError ? 0 : -1;
    }
    expect([0, 403]).toContain(status); // before the fix: 200
  });

  // Was a bug (fixed in session 23): logto() checks every option (resolveLevel reads own members, enumerable or not, each
  // getter once) but passes them on with `Object.entries(options)`: enumerable members only, and
  // every getter read a second time (a value of `undefined` is dropped). A non-enumerable
  // `requiredClaims`, `maxTokenAge` or `isRevoked` (or a getter that answers differently on the
  // second read) is checked and then never reaches createVerifier: a looser verifier.
  //   logto(Object.defineProperty({ endpoint, audience }, 'requiredClaims', { value: ['tenant_id'] }))
  //   → tokens without tenant_id pass. Expected: 401 missing_claim, as createVerifier does.
  it('logto() passes on a non-enumerable requiredClaims', async () => {
    const options = hidden({ endpoint: ENDPOINT, audience: AUDIENCE }, 'requiredClaims', [
      'tenant_id',
    ]) as LogtoOptions;
    expect(await outcome(fromLogto(options).verify(await logtoToken()))).toBe('401 missing_claim');
  });

  it('logto() reads each option once (an isRevoked getter)', async () => {
    let reads = 0;
    const options = {
      endpoint: ENDPOINT,
      audience: AUDIENCE,
      get isRevoked() {
        reads += 1;
        return reads === 1 ? () => true : undefined;
      },
    } as LogtoOptions;
    const verifier = fromLogto(options);
    // now: 'ok' (the second read answered undefined, so createVerifier never got the hook)
    expect(await outcome(verifier.verify(await logtoToken()))).toBe('401 revoked');
    expect(reads).toBe(1); // before the fix: 2
  });

  it('createVerifier and guard() read each getter once', () => {
    let reads = 0;
    const options = {
      ...base(),
      get requiredClaims() {
        reads += 1;
        return ['sub'];
      },
    };
    createVerifier(options);
    expect(reads).toBe(1);
    let scopeReads = 0;
    v.guard({
      get scopes() {
        scopeReads += 1;
        return ['read:products'];
      },
    });
    expect(scopeReads).toBe(1);
  });
});

describe('issuer-like strings the URL parser normalises but iss/aud compare as written', () => {
  // Was a bug (fixed in session 23): `issuer` is checked by parsing it (URL), and compared with `iss` as written. The trailing
  // CR case is fixed (and whitespace or a backslash anywhere), but other spellings the parser
  // rewrites still pass: dot segments, and invisible format characters (U+200B ZERO WIDTH SPACE,
  // U+200E LRM, U+00AD SOFT HYPHEN: category Cf, neither \s nor \p{Cc}, so UNTRIMMED misses them;
  // pasted from a web page or a chat). In the host, IDNA even deletes a soft hyphen, so discovery
  // and the JWKS reach the right server.
  //   createVerifier({ issuer: 'https://tenant.example.test/oidc\u200b', audience, jwks })
  //   → accepted; every real token is a 401 issuer_mismatch (the message shows two identical-looking
  //     URLs), health() says fresh. Expected: a TypeError naming `issuer`, e.g. by refusing an
  //     issuer whose `new URL(issuer).href` differs from it (beyond a bare origin's `/`).
  it('createVerifier refuses an issuer with a backslash, dot segments or a format character', async () => {
    for (const issuer of [
      'https://tenant.example.test/x/../oidc',
      'https://tenant.example.test/./oidc',
      `${ISSUER}\u200b`,
      `${ISSUER}\u200e`,
      `${ISSUER}\u00ad`,
      'https://tenant\u00ad.example.test/oidc',
    ]) {
      expect(await verdict({ ...base(), issuer }), JSON.stringify(issuer)).toBe('TypeError');
    }
  });

  it('what holds: whitespace anywhere and a backslash are refused in issuer and endpoint', async () => {
    for (const issuer of [
      'https://tenant.example.test\\oidc',
      'https://tenant.example.test/o idc',
    ]) {
      expect(await verdict({ ...base(), issuer }), issuer).toBe('TypeError');
    }
    expect(() => logto({ endpoint: `${ENDPOINT}\\oidc`, audience: AUDIENCE })).toThrow(
      /`endpoint`/,
    );
  });

  // Was a bug (fixed in session 23; lower): an issuer that differs from its canonical form only in case or a default port
  // is accepted and compared as written. A real issuer never writes `HTTPS://` nor `:443`
  // (Logto writes `url.origin`), and discovery would fetch the canonical URL and then fail on the
  // `issuer` member; with `jwksUri` or `jwks` it is silent: every token a 401.
  //   createVerifier({ issuer: 'https://tenant.example.test:443/oidc', audience, jwks })
  it('createVerifier refuses an issuer not in canonical form (case, default port)', async () => {
    for (const issuer of [
      'https://tenant.example.test:443/oidc',
      'HTTPS://tenant.example.test/oidc',
      'https://Tenant.Example.Test/oidc',
    ]) {
      expect(await verdict({ ...base(), issuer }), issuer).toBe('TypeError');
    }
  });

  // Was a bug (fixed in session 23): `audience` misses invisible format characters (category Cf) the same way: a value pasted
  // with a trailing U+200B is accepted and every token is a 401 audience_mismatch.
  //   createVerifier({ issuer, audience: 'https://shopping.api\u200b', jwks })
  it('an audience with an invisible format character is refused', async () => {
    for (const audience of [`${AUDIENCE}\u200b`, `${AUDIENCE}\u2060`]) {
      expect(await verdict({ ...base(), audience }), JSON.stringify(audience)).toBe('TypeError');
    }
  });

  // Was a bug (fixed in session 23): logto()'s `endpoint` is checked for a trailing `/oidc` on the raw string, but the issuer is
  // built from the parsed URL. `https://t.logto.app/oidc/.` and `https://t.logto.app/oidc/x/..`
  // pass the check and are parsed to the path `/oidc`: the issuer is then
  // `https://t.logto.app/oidc/oidc` and the JWKS URL `.../oidc/oidc/jwks` (a 404): every token a
  // 401. An endpoint ending in U+200B is accepted too (issuer `.../oidc%E2%80%8B/oidc`).
  // Expected: the TypeError "is the Logto endpoint without `/oidc`" / naming `endpoint`.
  it('logto() refuses an endpoint whose parsed path is /oidc', () => {
    for (const endpoint of [`${ENDPOINT}/oidc/.`, `${ENDPOINT}/oidc/x/..`, `${ENDPOINT}\u200b`]) {
      expect(() => logto({ endpoint, audience: AUDIENCE }), endpoint).toThrow(/`endpoint`/);
    }
  });

  it('logto() builds the issuer from the parsed endpoint and custom domains (normalised)', () => {
    const options = logto({
      endpoint: 'https://T.Logto.Test:443/',
      audience: AUDIENCE,
      customDomains: [
        'Auth.Example.com:443\r',
        'https://auth2.example.com/',
        '\tauth3.example.com',
      ],
    });
    expect(options.issuer).toEqual([
      `${ENDPOINT}/oidc`,
      'https://auth.example.com/oidc',
      'https://auth2.example.com/oidc',
      'https://auth3.example.com/oidc',
    ]);
    expect(options.jwksUri).toBe(`${ENDPOINT}/oidc/jwks`);
    for (const domain of ['auth example.com', 'auth.example.com/oidc', 'u:p@auth.example.com']) {
      expect(
        () => logto({ endpoint: ENDPOINT, audience: AUDIENCE, customDomains: [domain] }),
        domain,
      ).toThrow(/`customDomains`/);
    }
  });

  it('jwksUri is used parsed: a trailing CR or space is harmless', async () => {
    const fetched: string[] = [];
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: `${ISSUER}/jwks\r `,
      fetch: (input) => {
        fetched.push(input instanceof URL ? input.href : String(input));
        return Promise.resolve(Response.json({ keys: [key.jwk] }));
      },
    });
    expect(await outcome(verifier.verify(good))).toBe('ok');
    expect(fetched).toEqual([`${ISSUER}/jwks`]);
    expect(() =>
      createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: 'https://u:p@x.test/jwks' }),
    ).toThrow(/`jwksUri`/);
  });

  it('dpop.origin is normalised: case, default port, trailing slash, CR all match htu', async () => {
    const proofKey = await makeProofKey();
    for (const origin of [
      'https://API.shop.example',
      'https://api.shop.example:443',
      'https://api.shop.example/',
      `${ORIGIN}\r`,
      ` ${ORIGIN} `,
    ]) {
      const verifier = createVerifier({ ...base(), dpop: { origin } });
      const token = await mint(key, m2mClaims({ cnf: { jkt: proofKey.jkt } }));
      const p = await proof(proofKey, 'GET', `${ORIGIN}/products`, token);
      expect(await outcome(verifier.authenticate(dpopRequest(token, p))), origin).toBe('ok');
    }
    for (const origin of [
      'https://api.shop.example/x',
      'https://u:p@api.shop.example',
      `${ORIGIN}?`,
    ]) {
      expect(() => createVerifier({ ...base(), dpop: { origin } }), origin).toThrow(
        /`dpop\.origin`/,
      );
    }
  });
});

describe('resourceMetadata: published as written', () => {
  const metadata = (resourceMetadata: NonNullable<VerifierOptions['resourceMetadata']>) =>
    createVerifier({ ...base(), resourceMetadata }).resourceMetadata?.document;

  // Was a bug (fixed in session 23): `resourceMetadata.resource`, `authorizationServers` and `resourceDocumentation` are checked
  // as http(s) URLs by parsing them, then published as written. A trailing CR / space (a .env
  // value) is published in `resource`, which RFC 9728 §3.3 requires clients to compare with the URL
  // they derived the metadata URL from: every client refuses the metadata. Credentials in
  // `authorization_servers`, `resource` or `resource_documentation` (`https://u:p@...`) are refused
  // for `issuer` and `jwksUri` but here are published to anyone who GETs the well-known URL; a
  // query or a fragment in an authorization server is not an issuer identifier (RFC 8414 §2).
  //   createVerifier({ ..., resourceMetadata: { resource: 'https://shopping.api\r' } })
  //   → document.resource === 'https://shopping.api\r', served at /.well-known/...
  //   createVerifier({ ..., resourceMetadata: { authorizationServers: ['https://admin:pw@idp.test'] } })
  //   → published. Expected: a TypeError naming the option.
  it('resourceMetadata refuses URLs it would publish with CR, whitespace or credentials', () => {
    for (const resourceMetadata of [
      { resource: `${AUDIENCE}\r` },
      { resource: ` ${AUDIENCE}` },
      { resource: 'https://u:p@shopping.api' },
      { authorizationServers: [`${ISSUER}\r`] },
      { authorizationServers: ['https://admin:pw@tenant.example.test/oidc'] },
      { authorizationServers: [`${ISSUER}#f`] },
      { resourceDocumentation: 'https://u:p@docs.example.test' },
    ]) {
      expect(() => metadata(resourceMetadata), JSON.stringify(resourceMetadata)).toThrow(
        /`resourceMetadata\./,
      );
    }
  });
});

describe('claim and organization names', () => {
  // Was a bug (fixed in session 23; a): `requiredClaims` takes any non-empty string: a name with surrounding whitespace or a
  // control character (`'tenant_id\r'`, `' tenant_id'`) is accepted and no token carries it: every
  // request a 401 missing_claim. `audience` already refuses such strings.
  //   createVerifier({ ..., requiredClaims: ['tenant_id\r'] })
  it('requiredClaims refuses names with surrounding whitespace or control characters', async () => {
    for (const name of ['sub\r', ' sub', 'sub\t', 'sub\u0000']) {
      expect(await verdict({ ...base(), requiredClaims: [name] }), JSON.stringify(name)).toBe(
        'TypeError',
      );
    }
  });

  // Was a bug (fixed in session 23; a): route claim names (`claimEquals`, `claimIncludes`) and a declared `organization` take
  // any non-empty string; `' role'`, `'role\r'` or `'org_1\r'` can never match: every request a 403.
  //   verifier.guard({ claimEquals: { 'role\r': 'admin' } })
  it('route claim names and organization refuse surrounding whitespace', () => {
    for (const requirements of [
      { claimEquals: { 'role\r': 'admin' } },
      { claimEquals: { ' role': 'admin' } },
      { claimIncludes: { 'roles ': ['admin'] } },
      { organization: 'org_1\r' },
      { organization: ' org_1' },
    ]) {
      expect(() => v.guard(requirements), JSON.stringify(requirements)).toThrow(TypeError);
    }
  });

  it('what holds: scopes, empty names, cookie names, algorithms, holes', async () => {
    for (const scopes of [[' read'], ['read\r'], ['a b'], [''], ['read', undefined]]) {
      expect(() => v.guard({ scopes: scopes as string[] }), JSON.stringify(scopes)).toThrow(
        /`scopes`/,
      );
    }
    expect(() => v.guard({ claimEquals: { '': 'x' } })).toThrow(/`claimEquals`/);
    expect(() => v.guard({ claimIncludes: { roles: [] } })).toThrow(/`claimIncludes/);
    expect(() => v.guard({ organization: '' })).toThrow(/`organization`/);
    // eslint-disable-next-line no-sparse-arrays
    const holes = [, 'tenant_id'] as unknown as string[];
    for (const options of [
      { requiredClaims: [''] },
      { requiredClaims: holes },
      { cookie: 'token ' },
      { cookie: 'tok\ren' },
      { cookie: '' },
      { algorithms: ['es256'] },
      { algorithms: ['none'] },
      { algorithms: ['HS256'] },
      { algorithms: [] },
    ] as Partial<VerifierOptions>[]) {
      expect(await verdict({ ...base(), ...options }), JSON.stringify(options)).toBe('TypeError');
    }
    // Duplicates are harmless.
    expect(await verdict({ ...base(), algorithms: ['ES256', 'ES256'] })).toBe('ok');
    expect(await verdict({ ...base(), audience: [AUDIENCE, AUDIENCE] })).toBe('ok');
  });
});

describe('numbers', () => {
  it('durations: strings, NaN, Infinity, negatives and absurd values are refused', async () => {
    const bad: unknown[] = ['5', NaN, Infinity, -Infinity, -1, 1e21, null, true, 5n];
    const paths: [string, (x: unknown) => Partial<VerifierOptions>][] = [
      ['clockTolerance', (x) => ({ clockTolerance: x as number })],
      ['maxTokenAge', (x) => ({ maxTokenAge: x as number })],
      ['revocationMemo', (x) => ({ revocationMemo: x as number })],
      ['keys.maxAge', (x) => ({ keys: { maxAge: x as number } })],
      ['keys.timeout', (x) => ({ keys: { timeout: x as number } })],
      ['dpop.maxAge', (x) => ({ dpop: { origin: ORIGIN, maxAge: x as number } })],
    ];
    for (const [path, make] of paths) {
      for (const value of bad) {
        expect(
          () => createVerifier({ ...base(), ...make(value) }),
          `${path} ${String(value)}`,
        ).toThrow(TypeError);
      }
    }
  });

  it('-0, fractions and zero where allowed behave as their value', async () => {
    expect(await verdict({ ...base(), clockTolerance: -0 })).toBe('ok');
    expect(await verdict({ ...base(), maxTokenAge: 0.5, clockTolerance: 5 })).toBe('ok');
    const old = await mint(key, m2mClaims({ iat: Math.floor(Date.now() / 1000) - 60 }));
    expect(await verdict({ ...base(), maxTokenAge: -0, clockTolerance: 0 }, old)).toBe(
      '401 token_too_old',
    );
    // cache.maxEntries 0: no cache, verification still works (twice).
    const noCache = createVerifier({ ...base(), cache: { maxEntries: 0 } });
    expect(await outcome(noCache.verify(good))).toBe('ok');
    expect(await outcome(noCache.verify(good))).toBe('ok');
    for (const cache of [
      { maxEntries: 1.5 },
      { maxEntries: -1 },
      { maxEntries: '10' },
      { maxBytes: NaN },
    ]) {
      expect(
        () => createVerifier({ ...base(), cache: cache as never }),
        JSON.stringify(cache),
      ).toThrow(/`cache\./);
    }
    for (const maxTokenLength of [0, 1.5, '8192', 2 ** 21]) {
      expect(
        () => createVerifier({ ...base(), maxTokenLength: maxTokenLength as number }),
        String(maxTokenLength),
      ).toThrow(/`maxTokenLength`/);
    }
  });

  it('frozen and proxied option objects are read like plain ones', async () => {
    expect(await verdict(Object.freeze({ ...base(), requiredClaims: ['tenant_id'] }))).toBe(
      '401 missing_claim',
    );
    const proxied = new Proxy({ ...base(), requiredClaims: ['tenant_id'] }, {});
    expect(await verdict(proxied)).toBe('401 missing_claim');
    const hostile = new Proxy(base(), {
      ownKeys: () => {
        throw new Error('no');
      },
    });
    expect(() => createVerifier(hostile)).toThrow(/`options` could not be read/);
  });
});
