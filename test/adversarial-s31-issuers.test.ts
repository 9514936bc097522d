/**
 * Adversarial pass, session 31 (issuers, logto(), token sources, cache interplay).
 *
 * The rule: never looser than a COLD verification of the same token with the same options (jose's
 * `jwtVerify` over the key set of the issuer the token names, fetched now, plus the documented
 * rules: organization, machine-only, claim rules, token sources), and hostile input a clear
 * 400/401/403, never a 500, hang or echo of the token.
 *
 * Areas (less covered by sessions 18-30):
 * 1. Several issuers: kid collisions across two issuers' key sets (the same kid with other key
 *    material, the same kid AND material in both), keys moving from one issuer's set to the
 *    other's between requests, cached tokens of the first after its key appears under the second,
 *    `iss` spellings (case, slash, default port, percent-encoding, confusables, array, number).
 * 2. `logto()`: the derived issuers (endpoint and custom domains, as written in any spelling) and
 *    JWKS URL; organization tokens against per-call and route `organization` values of every
 *    shape (blank, case, URN, array, number, Promise, boxed String, throwing getter/function).
 * 3. Token sources: `cookie` and `getToken` beside the Authorization header, on optional routes,
 *    with generated Cookie headers (duplicates, quotes, several fields, case, blanks).
 * 4. Cache interplay: one token through two verifiers of different options and through routes
 *    of increasing strictness, in random order, against a cache-less verifier and jose.
 *
 * `F<n>` tests are findings, each FIXED in session 31 and failing on the code before:
 * F1 (low) a non-string `iss` was reported as `missing_claim`; F2 (low) logto() handed createVerifier
 * options it refused (a static `jwks`; an http endpoint beside an https custom domain), blaming
 * `jwksUri`; F3 (medium: a 500 any client could trigger, never looser) per-call `{ organization,
 * anyOrganization: true }` threw a TypeError once the request named an organization.
 * The `sound` blocks hold probes that held, each able to fail: no token was accepted that the cold
 * verification refuses. Properties are seeded (S31_SEED / S31_RUNS override, for hunting).
 */
import fc from 'fast-check';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, logto } from 'resource-guard';
import type {
  AuthInfo,
  RejectionEvent,
  RequestLike,
  Requirements,
  Verifier,
  VerifierOptions,
} from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome } from 'resource-guard/kit';
import { AUDIENCE, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { clock } from './helpers/outcome.ts';

const SEED = 0x5e31;
const A = 'https://a.tenant.test/oidc';
const B = 'https://b.tenant.test/oidc';
const STRICT_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'];

beforeEach(() => {
  // Many verifiers are made on purpose: silence the "verifier per request" hints.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** `'ok'`, `'anonymous'` or `'<status> <reason>'`; anything but an AuthError is rethrown. */
async function verdict(run: () => unknown): Promise<string> {
  try {
    return (await run()) === undefined ? 'anonymous' : 'ok';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    throw error;
  }
}

/**
 * Two tenants' discovery documents and JWKS, served by a fetch stub (no network): `sets[tenant]`
 * is the live JWKS, by kid, mutable between requests. `hits` counts JWKS fetches per tenant.
 */
function tenants() {
  const sets: Record<'a' | 'b', Map<string, JWK>> = { a: new Map(), b: new Map() };
  const hits = { a: 0, b: 0 };
  const fetch = (input: URL | RequestInfo): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const tenant = url.hostname.split('.')[0] as 'a' | 'b';
    if (!(tenant in sets)) return Promise.resolve(new Response('{}', { status: 404 }));
    if (url.pathname === '/oidc/.well-known/openid-configuration') {
      return Promise.resolve(
        Response.json({
          issuer: `https://${url.host}/oidc`,
          jwks_uri: `https://${url.host}/oidc/jwks`,
        }),
      );
    }
    if (url.pathname === '/oidc/jwks') {
      hits[tenant]++;
      return Promise.resolve(Response.json({ keys: [...sets[tenant].values()] }));
    }
    return Promise.resolve(new Response('{}', { status: 404 }));
  };
  return { sets, hits, fetch: fetch as typeof globalThis.fetch };
}

/** The JWKS a cold verification uses: that of the issuer the token names (none for another). */
function coldSet(sets: Record<'a' | 'b', Map<string, JWK>>, token: string): JWK[] {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return [];
  }
  if (iss === A) return [...sets.a.values()];
  if (iss === B) return [...sets.b.values()];
  return [];
}

/**
 * The cold verdict, `'ok'` or `'refused'`: jose's `jwtVerify` with each key of `jwks` listed under
 * the token's kid (every key, for a token without one), alone; `ok` when one verifies. (jose's own
 * key sets refuse a token that several keys fit, JWKSMultipleMatchingKeys; trying each is the
 * library's documented rule, CONFORMANCE.md RFC 7638.)
 */
async function cold(
  token: string,
  jwks: JWK[],
  options: { issuer: string[]; audience: string | string[]; nowMs?: number },
): Promise<string> {
  let kid: unknown;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch {
    return 'refused';
  }
  for (const jwk of jwks) {
    if (kid !== undefined && jwk.kid !== kid) continue;
    if ((await coldOne(token, jwk, options)) === 'ok') return 'ok';
  }
  return 'refused';
}

async function coldOne(
  token: string,
  jwk: JWK,
  options: { issuer: string[]; audience: string | string[]; nowMs?: number },
): Promise<string> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: [jwk] }), {
      issuer: options.issuer,
      audience: options.audience,
      typ: 'at+jwt',
      algorithms: ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'],
      clockTolerance: 5,
      requiredClaims: STRICT_CLAIMS,
      ...(options.nowMs === undefined ? {} : { currentDate: new Date(options.nowMs) }),
    });
    return 'ok';
  } catch {
    return 'refused';
  }
}

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

describe('findings', () => {
  let key: TestKey;
  beforeAll(async () => {
    key = await makeKey('ES256');
  });

  it('F1: an `iss` that is there but not a string (number, array, object, true) is invalid_claim, not missing_claim', async () => {
    const v = createVerifier({ issuer: A, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
    const reasons: string[] = [];
    for (const iss of [42, [A], { href: A }, true]) {
      reasons.push(await verdict(async () => v.verify(await mint(key, m2mClaims({ iss })))));
    }
    // `aud: 42` and `sub: 42` are invalid_claim; the troubleshooting table says missing_claim is
    // a claim that is not there, invalid_claim one of the wrong type.
    expect(reasons).toEqual(Array(4).fill('401 invalid_claim'));
  });

  it('F2: logto() hands createVerifier only options it takes: static `jwks` replace the tenant JWKS; an http endpoint beside an https custom domain is refused by logto(), naming `endpoint`, not `jwksUri`', async () => {
    // Each is refused (or works) in logto() itself, naming what the caller gave; not a TypeError
    // from createVerifier about an option the caller never set.
    const attempts = [
      () =>
        logto({
          endpoint: 'https://t.logto.test',
          audience: AUDIENCE,
          jwks: { keys: [key.jwk] },
        }),
      () =>
        logto({
          endpoint: 'http://logto.internal.test:3001',
          customDomains: ['auth.example.test'],
          audience: AUDIENCE,
        }),
    ];
    for (const attempt of attempts) {
      let message = '';
      try {
        createVerifier(attempt());
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toMatch(/jwksUri/);
    }
    // Static keys replace the tenant's JWKS: nothing fetched, the tenant's tokens verified.
    const fetch = vi.fn<typeof globalThis.fetch>();
    const local = createVerifier(attempts[0]!());
    const token = await mint(key, m2mClaims({ iss: 'https://t.logto.test/oidc' }));
    expect(await verdict(() => local.verify(token))).toBe('ok');
    expect(fetch).not.toHaveBeenCalled();
    // The http endpoint beside an https custom domain is refused by logto(), naming `endpoint`;
    // on loopback it is allowed, as createVerifier allows an http jwksUri there.
    expect(attempts[1]!).toThrow(/`endpoint` must use https when a custom domain does/);
    expect(() =>
      createVerifier(
        logto({
          endpoint: 'http://localhost:3001',
          customDomains: ['auth.example.test'],
          audience: AUDIENCE,
        }),
      ),
    ).not.toThrow();
  });

  it('F3: per call, a request-supplied organization beside anyOrganization: true is the organization required, never a TypeError (a 500 any client could trigger), as guard(req, { organization }) on an anyOrganization route decides', async () => {
    // `{ organization: req.headers['x-org'], anyOrganization: true }` is the documented way to say
    // "this request's organization, or any when it names none" (undefined → any: s19 tests pin it).
    // A client that sends the header (any value, even a blank or a repeated one) makes it throw.
    const v = createVerifier({
      issuer: A,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      organizations: true,
    });
    const acme = await mint(key, m2mClaims({ iss: A, organization_id: 'acme' }));
    const global = await mint(key, m2mClaims({ iss: A }));
    const answers: string[] = [];
    for (const [token, organization] of [
      [acme, 'acme'],
      [acme, 'evil'],
      [global, 'acme'],
      [acme, ''],
      [acme, ['acme', 'evil']],
      [acme, null],
    ] as const) {
      const requirements = { organization, anyOrganization: true } as unknown as Requirements;
      answers.push(await verdict(() => v.verify(token, requirements)));
      answers.push(
        await verdict(() =>
          v.authenticate({ headers: { authorization: `Bearer ${token}` } }, requirements),
        ),
      );
    }
    // As guard({ anyOrganization: true })(req, { organization }) answers: the organization named.
    expect(answers).toEqual(['ok', 'ok', ...Array(10).fill('403 organization_mismatch')]);
  });
});

// ---------------------------------------------------------------------------------------------
// Sound
// ---------------------------------------------------------------------------------------------

describe('sound: several issuers', () => {
  /** A key-set mutation: key `k` under its own kid in one set (replacing that kid), or a kid dropped. */
  const putStep = fc.record({
    kind: fc.constant('put' as const),
    tenant: fc.constantFrom<'a' | 'b'>('a', 'b'),
    k: fc.nat({ max: 4 }),
  });
  const dropStep = fc.record({
    kind: fc.constant('drop' as const),
    tenant: fc.constantFrom<'a' | 'b'>('a', 'b'),
    kid: fc.constantFrom('shared', 'k1', 'k2'),
  });
  /** Five keys: two under kid `shared` (different material), one under `k1`, one under `k2`. */
  let pool: TestKey[];
  beforeAll(async () => {
    pool = await Promise.all([
      makeKey('ES256', 'shared'),
      makeKey('ES256', 'shared'),
      makeKey('ES256', 'k1'),
      makeKey('ES256', 'k2'),
      makeKey('ES384', 'k1'),
    ]);
  });

  it.each([false, true])(
    'two issuers whose sets mutate between requests (keys moving, kids colliding): every answer, cached or not, is the cold one (requestScoped: %s)',
    async (requestScoped) => {
      const ISS_SPELLINGS = [
        A,
        B,
        `${A}/`,
        A.toUpperCase(),
        A.replace('.test/', '.test:443/'),
        A.replace('/oidc', '/%6Fidc'),
        A.replace('a.tenant', '\u0430.tenant'), // Cyrillic a
        [A] as unknown as string,
        42 as unknown as string,
      ];
      const step = fc.oneof(
        putStep,
        dropStep,
        // A batch of concurrent presentations.
        fc.record({
          kind: fc.constant('present' as const),
          tokens: fc.array(
            fc.record({
              signer: fc.nat({ max: 4 }),
              kid: fc.oneof(
                { weight: 3, arbitrary: fc.constant('own') },
                fc.constantFrom<string | undefined>(undefined, 'shared', 'k1', 'k2'),
              ),
              iss: fc.oneof(
                { weight: 4, arbitrary: fc.constantFrom(0, 1) },
                fc.nat({ max: ISS_SPELLINGS.length - 1 }),
              ),
              how: fc.constantFrom('verify', 'guard', 'request'),
            }),
            { minLength: 1, maxLength: 5 },
          ),
        }),
      );
      const T0 = Date.UTC(2030, 0, 1);
      const stats: Record<string, number> = {};
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
          const time = clock(T0);
          const { sets, fetch } = tenants();
          // Start with each tenant's own keys: A has pool[0] (shared) and pool[2] (k1), B pool[1] (shared).
          sets.a.set('shared', pool[0]!.jwk).set('k1', pool[2]!.jwk);
          sets.b.set('shared', pool[1]!.jwk);
          // Keys older than 10 s are never used (maxStale 0): after each mutation the clock moves
          // 11 s, so the next answer must come from a fetch of the set as it is then.
          const v = createVerifier({
            issuer: [A, B],
            audience: AUDIENCE,
            fetch,
            keys: { maxAge: 10, maxStale: 0, cooldown: 0 },
            requestScoped,
          });
          const guard = v.guard({ scopes: ['read:products'] });
          const minted = new Map<string, string>();
          const token = async (signer: number, kid: string | undefined, iss: number) => {
            const id = `${signer} ${kid} ${iss}`;
            let t = minted.get(id);
            if (t === undefined) {
              const claims = m2mClaims({ iss: ISS_SPELLINGS[iss], exp: T0 / 1000 + 86_400 });
              t = await mint(pool[signer]!, { ...claims, iat: T0 / 1000 }, { kid });
              minted.set(id, t);
            }
            return t;
          };
          for (const s of steps) {
            if (s.kind === 'put') {
              sets[s.tenant].set(pool[s.k]!.kid, pool[s.k]!.jwk);
              time.advance(11);
              continue;
            }
            if (s.kind === 'drop') {
              if (sets[s.tenant].size > 1) sets[s.tenant].delete(s.kid);
              time.advance(11);
              continue;
            }
            const batch = await Promise.all(
              s.tokens.map(async (p) => ({
                p,
                t: await token(p.signer, p.kid === 'own' ? pool[p.signer]!.kid : p.kid, p.iss),
              })),
            );
            const mine = await Promise.all(
              batch.map(({ p, t }) =>
                verdict(() =>
                  p.how === 'verify'
                    ? v.verify(t)
                    : p.how === 'guard'
                      ? guard({ headers: { authorization: `Bearer ${t}` } })
                      : v.authenticate(
                          new Request('https://api.test/', {
                            headers: { authorization: `Bearer ${t}` },
                          }),
                        ),
                ),
              ),
            );
            for (let i = 0; i < batch.length; i++) {
              const { t } = batch[i]!;
              const expected = await cold(t, coldSet(sets, t), {
                issuer: [A, B],
                audience: AUDIENCE,
                nowMs: Date.now(),
              });
              const got = mine[i]!;
              stats[`${got === 'ok' ? 'ok' : 'refused'} ${batch[i]!.p.kid ?? '-'}`] =
                (stats[`${got === 'ok' ? 'ok' : 'refused'} ${batch[i]!.p.kid ?? '-'}`] ?? 0) + 1;
              if ((got === 'ok') !== (expected === 'ok')) {
                throw new Error(`${JSON.stringify(batch[i]!.p)}: library ${got}, cold ${expected}`);
              }
            }
          }
        }),
        { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 60) },
      );
      // Both outcomes were met, over tokens with and without a kid.
      expect(Object.keys(stats).filter((k) => k.startsWith('ok')).length).toBeGreaterThan(1);
      expect(Object.keys(stats).filter((k) => k.startsWith('refused')).length).toBeGreaterThan(1);
    },
  );

  it('a warm verifier (keys kept, refetched only for an unknown kid) answers as a cold verification over the set it fetched last, per issuer, cached token or not', async () => {
    const step = fc.oneof(
      putStep,
      dropStep,
      fc.record({
        kind: fc.constant('present' as const),
        signer: fc.nat({ max: 4 }),
        kid: fc.oneof(
          { weight: 3, arbitrary: fc.constant('own') },
          fc.constantFrom<string | undefined>(undefined, 'shared', 'k1', 'k2', 'k9'),
        ),
        iss: fc.constantFrom(A, B),
        how: fc.constantFrom('verify', 'guard'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), async (steps) => {
        const { sets, fetch } = tenants();
        sets.a.set('shared', pool[0]!.jwk).set('k1', pool[2]!.jwk);
        sets.b.set('shared', pool[1]!.jwk);
        /** What each tenant's JWKS answered last: the keys the verifier holds. */
        const served: Record<'a' | 'b', JWK[]> = { a: [], b: [] };
        const recording = (async (input: URL | RequestInfo) => {
          const response = await fetch(input);
          const url = String(input instanceof Request ? input.url : input);
          if (url.endsWith('/oidc/jwks')) {
            const tenant = new URL(url).hostname.split('.')[0] as 'a' | 'b';
            served[tenant] = [...sets[tenant].values()];
          }
          return response;
        }) as typeof globalThis.fetch;
        const v = createVerifier({
          issuer: [A, B],
          audience: AUDIENCE,
          fetch: recording,
          keys: { cooldown: 0 },
        });
        const guard = v.guard({ scopes: ['read:products'] });
        const minted = new Map<string, string>();
        for (const s of steps) {
          if (s.kind === 'put') {
            sets[s.tenant].set(pool[s.k]!.kid, pool[s.k]!.jwk);
            continue;
          }
          if (s.kind === 'drop') {
            if (sets[s.tenant].size > 1) sets[s.tenant].delete(s.kid);
            continue;
          }
          const kid = s.kid === 'own' ? pool[s.signer]!.kid : s.kid;
          const id = `${s.signer} ${kid} ${s.iss}`;
          let t = minted.get(id);
          if (t === undefined) {
            t = await mint(pool[s.signer]!, m2mClaims({ iss: s.iss }), { kid });
            minted.set(id, t);
          }
          const token = t;
          const got = await verdict(() =>
            s.how === 'verify'
              ? v.verify(token)
              : guard({ headers: { authorization: `Bearer ${token}` } }),
          );
          const expected = await cold(token, served[s.iss === A ? 'a' : 'b'], {
            issuer: [A, B],
            audience: AUDIENCE,
          });
          if ((got === 'ok') !== (expected === 'ok')) {
            throw new Error(
              `${JSON.stringify(s)}: library ${got}, cold over the last set ${expected}`,
            );
          }
        }
      }),
      { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 60) },
    );
  });
});

describe('sound: several issuers, step by step', () => {
  it('A’s cached token stops when A’s set drops its key, though B lists the same key under the same kid; a key moved to B verifies B’s tokens only once B lists it', async () => {
    const k = await makeKey('ES256', 'shared');
    const other = await makeKey('ES256', 'k1');
    const { sets, hits, fetch } = tenants();
    sets.a.set('shared', k.jwk);
    sets.b.set('shared', k.jwk);
    const v = createVerifier({ issuer: [A, B], audience: AUDIENCE, fetch, keys: { cooldown: 0 } });
    const forA = await mint(k, m2mClaims({ iss: A }));
    const forB = await mint(k, m2mClaims({ iss: B }));
    const otherForB = await mint(other, m2mClaims({ iss: B }));
    expect([await verdict(() => v.verify(forA)), await verdict(() => v.verify(forB))]).toEqual([
      'ok',
      'ok',
    ]);
    expect(await verdict(() => v.verify(forA))).toBe('ok'); // from the cache
    // A rotates the key away; B keeps it. A token naming a new kid makes A refetch (cooldown 0).
    sets.a.clear();
    sets.a.set('k1', other.jwk);
    expect(await verdict(async () => v.verify(await mint(other, m2mClaims({ iss: A }))))).toBe(
      'ok',
    );
    expect(await verdict(() => v.verify(forA))).toBe('401 unknown_kid');
    expect(await cold(forA, [...sets.a.values()], { issuer: [A, B], audience: AUDIENCE })).toBe(
      'refused',
    );
    expect(await verdict(() => v.verify(forB))).toBe('ok'); // B's copy is B's own
    // A's new key is not B's: refused for B until B lists it, then accepted.
    const before = { ...hits };
    expect(await verdict(() => v.verify(otherForB))).toBe('401 unknown_kid');
    sets.b.set('k1', other.jwk);
    expect(await verdict(() => v.verify(otherForB))).toBe('ok'); // the failure was not cached
    // Only B's JWKS was asked for B's tokens.
    expect([hits.a - before.a, hits.b - before.b]).toEqual([0, 2]);
  });

  it('a token whose iss is another configured issuer’s, signed with the first issuer’s key under a kid both sets use, is refused (bad_signature), warm and cold', async () => {
    const ka = await makeKey('ES256', 'shared');
    const kb = await makeKey('ES256', 'shared');
    const { sets, fetch } = tenants();
    sets.a.set('shared', ka.jwk);
    sets.b.set('shared', kb.jwk);
    const v = createVerifier({ issuer: [A, B], audience: AUDIENCE, fetch });
    const own = await mint(ka, m2mClaims({ iss: A }));
    const forged = await mint(ka, m2mClaims({ iss: B }));
    for (let i = 0; i < 3; i++) {
      expect(await verdict(() => v.verify(own))).toBe('ok');
      expect(await verdict(() => v.verify(forged))).toBe('401 bad_signature');
    }
  });
});

describe('sound: logto()', () => {
  let key: TestKey;
  beforeAll(async () => {
    key = await makeKey('ES384');
  });

  /** A host name in mixed case, as a user may type it. */
  const mixedCase = (host: string, mask: number) =>
    [...host].map((c, i) => ((mask >> (i % 31)) & 1 ? c.toUpperCase() : c)).join('');

  it('the derived issuers are exactly `<endpoint>/oidc` and `https://<domain>/oidc` as Logto writes them, whatever the spelling given; one JWKS (the endpoint’s) serves all; no other issuer is accepted or contacted', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          scheme: fc.constantFrom('https', 'http'),
          host: fc.constantFrom('tenant.logto.test', 'auth.internal.test', '127.0.0.1'),
          mask: fc.nat(),
          defaultPort: fc.boolean(),
          port: fc.constantFrom('', ':3001'),
          path: fc.constantFrom('', '/t', '/t/v1'),
          slashes: fc.nat({ max: 2 }),
          domains: fc.array(
            fc.record({
              host: fc.constantFrom('auth.example.test', 'login.shop.test'),
              mask: fc.nat(),
              scheme: fc.constantFrom('', 'https://', 'HTTPS://'),
              defaultPort: fc.boolean(),
              slash: fc.boolean(),
            }),
            { maxLength: 2 },
          ),
        }),
        async (g) => {
          const port =
            g.port !== '' ? g.port : g.defaultPort ? (g.scheme === 'https' ? ':443' : ':80') : '';
          const endpoint = `${g.scheme}://${mixedCase(g.host, g.mask)}${port}${g.path}${'/'.repeat(g.slashes)}`;
          const base = `${g.scheme}://${g.host}${g.port}${g.path}`;
          const customDomains = g.domains.map(
            (d) =>
              `${d.scheme}${mixedCase(d.host, d.mask)}${d.defaultPort ? ':443' : ''}${d.slash ? '/' : ''}`,
          );
          const expectedIssuers = [
            `${base}/oidc`,
            ...g.domains.map((d) => `https://${d.host}/oidc`),
          ];
          const contacted: string[] = [];
          const fetch = ((input: URL | RequestInfo) => {
            const url = String(input instanceof Request ? input.url : input);
            contacted.push(url);
            return Promise.resolve(
              url === `${base}/oidc/jwks`
                ? Response.json({ keys: [key.jwk] })
                : new Response('{}', { status: 404 }),
            );
          }) as typeof globalThis.fetch;
          const make = () => logto({ endpoint, customDomains, audience: AUDIENCE, fetch });
          if (g.scheme === 'http' && g.host !== '127.0.0.1' && g.domains.length > 0) {
            // Keys over plain http for an https (custom-domain) issuer: refused by logto(), naming
            // the option given (F2).
            expect(make).toThrow(/`endpoint` must use https/);
            return;
          }
          const options = make();
          expect(new Set(options.issuer)).toEqual(new Set(expectedIssuers));
          expect(options.jwksUri).toBe(`${base}/oidc/jwks`);
          const v = createVerifier(options);
          for (const iss of expectedIssuers) {
            expect(await verdict(async () => v.verify(await mint(key, m2mClaims({ iss }))))).toBe(
              'ok',
            );
          }
          // Near misses of each issuer: refused before any key is fetched.
          const before = contacted.length;
          for (const iss of expectedIssuers) {
            const u = new URL(iss);
            for (const miss of [
              `${iss}/`,
              iss.replace('/oidc', '/OIDC'),
              iss.replace(u.host, u.host.toUpperCase()),
              iss.replace(u.host, `${u.host}${u.protocol === 'https:' ? ':443' : ':80'}`),
              iss.replace('/oidc', ''),
              iss.replace(`${u.protocol}//`, u.protocol === 'https:' ? 'http://' : 'https://'),
              iss.replace('/oidc', '/%6fidc'),
            ]) {
              if (expectedIssuers.includes(miss)) continue;
              const got = await verdict(async () =>
                v.verify(await mint(key, m2mClaims({ iss: miss }))),
              );
              expect(got, miss).toBe('401 issuer_mismatch');
            }
          }
          expect(contacted.length).toBe(before);
          expect(new Set(contacted)).toEqual(new Set([`${base}/oidc/jwks`]));
        },
      ),
      { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 40) },
    );
  });
});

describe('sound: organizations against per-call, context and route values of every shape', () => {
  const ORG = 'urn:logto:organization:';
  let key: TestKey;
  beforeAll(async () => {
    key = await makeKey('ES256');
  });

  /** The request-supplied organization values: strings near `acme`, and what is no string. */
  const VALUES: readonly (() => unknown)[] = [
    () => 'acme',
    () => 'ACME',
    () => ' acme',
    () => 'acme ',
    () => '',
    () => ' ',
    () => `${ORG}acme`,
    () => 'evil',
    () => ['acme'],
    () => 42,
    () => null,
    () => undefined,
    () => Promise.resolve('acme'),
    () => new String('acme'),
    () => ({ toString: () => 'acme' }),
  ];

  /** Token shapes: audience(s) and organization_id (absent when `undefined`). */
  const SHAPES: readonly { aud: string | string[]; organization_id?: unknown }[] = [
    { aud: AUDIENCE },
    { aud: AUDIENCE, organization_id: 'acme' },
    { aud: AUDIENCE, organization_id: 'ACME' },
    { aud: AUDIENCE, organization_id: '' },
    { aud: AUDIENCE, organization_id: `${ORG}acme` },
    { aud: `${ORG}acme` },
    { aud: `${ORG}ACME` },
    { aud: `${ORG}${ORG}acme` },
    { aud: [AUDIENCE, `${ORG}acme`] },
    { aud: [AUDIENCE, `${ORG}acme`], organization_id: 'acme' },
    { aud: [`${ORG}acme`, `${ORG}evil`] },
    { aud: `${ORG}` },
  ];

  /**
   * The documented rule, written out: the organization a route or request names (`undefined`: none),
   * against the token. `organizations: true` on the verifier.
   */
  function expected(
    shape: (typeof SHAPES)[number],
    named: string | undefined,
    anyOrganization: boolean,
  ): boolean {
    const aud = typeof shape.aud === 'string' ? [shape.aud] : shape.aud;
    const isOrgAud = (a: string) => a.startsWith(ORG) && a.length > ORG.length;
    if (!aud.some((a) => a === AUDIENCE || isOrgAud(a))) return false;
    const fromAud = [...new Set(aud.filter(isOrgAud).map((a) => a.slice(ORG.length)))];
    if (fromAud.length > 1) return false;
    const id = shape.organization_id;
    if (typeof id === 'string' && fromAud.length === 1 && fromAud[0] !== id) return false;
    const tokenOrg = typeof id === 'string' ? id : fromAud[0];
    const forApi = aud.includes(AUDIENCE);
    if (named === undefined) {
      if (tokenOrg === undefined) return forApi;
      return anyOrganization && tokenOrg !== '';
    }
    if (named === '') return false;
    return forApi ? id === named : aud.includes(`${ORG}${named}`);
  }

  it('verify(), authenticate(), guard(req, context) and the kit’s organization function decide by the rule, warm or cold, and never throw', async () => {
    const tokens = await Promise.all(SHAPES.map((shape) => mint(key, m2mClaims(shape))));
    const options: VerifierOptions = {
      issuer: 'https://tenant.example.test/oidc',
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      organizations: true,
    };
    const warm = createVerifier(options);
    const orgRoute = warm.guard({ organization: 'placeholder' });
    const anyRoute = warm.guard({ anyOrganization: true });
    const plain = warm.guard();
    type Req = { readonly pick: () => unknown };
    const kit = routeGuard<Req>(warm, { organization: (req) => req.pick() as string });
    const KIT: Outcome<Promise<string> | string, AuthInfo | undefined, Req> = {
      pass: () => 'ok',
      respond: (error) => `${error.status} ${error.reason}`,
      fail: (error) => `fail ${String(error)}`,
    };
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: SHAPES.length - 1 }),
        fc.nat({ max: VALUES.length - 1 }),
        fc.constantFrom('verify', 'authenticate', 'context', 'any-context', 'plain', 'kit'),
        fc.boolean(),
        async (s, val, how, cacheless) => {
          const token = tokens[s]!;
          const v = cacheless ? createVerifier({ ...options, cache: false }) : warm;
          const value = VALUES[val]!();
          const request = { headers: { authorization: `Bearer ${token}` } };
          let got: string;
          let want: boolean;
          const asNamed = typeof value === 'string' ? value : '';
          switch (how) {
            case 'verify':
            case 'authenticate': {
              const req = { organization: value } as unknown as Requirements;
              got = await verdict(() =>
                how === 'verify' ? v.verify(token, req) : v.authenticate(request, req),
              );
              want = expected(SHAPES[s]!, asNamed, false);
              break;
            }
            case 'context':
              got = await verdict(() =>
                (cacheless ? v.guard({ organization: 'placeholder' }) : orgRoute)(request, {
                  organization: value as string,
                }),
              );
              want = expected(SHAPES[s]!, asNamed, false);
              break;
            case 'any-context':
              // A route for any organization given a request's organization: that one only.
              got = await verdict(() =>
                (cacheless ? v.guard({ anyOrganization: true }) : anyRoute)(request, {
                  organization: value as string,
                }),
              );
              want = expected(SHAPES[s]!, asNamed, true);
              break;
            case 'plain':
              got = await verdict(() => (cacheless ? v.guard() : plain)(request));
              want = expected(SHAPES[s]!, undefined, false);
              break;
            default:
              got = await (
                cacheless
                  ? routeGuard<Req>(v, { organization: (req) => req.pick() as string })
                  : kit
              ).run({ pick: () => value }, request, KIT);
              want = expected(SHAPES[s]!, asNamed, false);
          }
          expect(got === 'ok', `${how} ${JSON.stringify(SHAPES[s])} ${String(value)}: ${got}`).toBe(
            want,
          );
          if (got !== 'ok') expect(got).toMatch(/^40[13] [a-z_]+$/);
        },
      ),
      { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 400) },
    );
  });

  it('a route’s organization function that throws reaches fail (the framework’s 500 for an app bug), never pass or a 2xx', async () => {
    const v = createVerifier({
      issuer: 'https://tenant.example.test/oidc',
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      organizations: true,
    });
    const token = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const kit = routeGuard<object>(v, {
      organization: () => {
        throw new Error('no params');
      },
    });
    const calls: string[] = [];
    await kit.run(
      {},
      { headers: { authorization: `Bearer ${token}` } },
      {
        pass: () => calls.push('pass'),
        respond: () => calls.push('respond'),
        fail: (error) => calls.push(`fail ${(error as Error).message}`),
      },
    );
    expect(calls).toEqual(['fail no params']);
  });
});

describe('sound: token sources', () => {
  let key: TestKey;
  let t1: string;
  let t2: string;
  beforeAll(async () => {
    key = await makeKey('ES256');
    [t1, t2] = await Promise.all([mint(key), mint(key, m2mClaims({ sub: 'user-9' }))]);
  });

  it('header, cookie and getToken together, in any shape and on optional routes: a token is used only when exactly one source offers it, else 400 / 401 / anonymous as the rules say', async () => {
    const AUTH = ['none', 'bearer1', 'bearer2', 'basic', 'bare', 'dpop', 'lower'] as const;
    const NAMES = ['at', ' at', 'at ', 'At', 'xat', 'a t'] as const;
    const VALS = ['t1', 't2', 'empty', 'quoted1', 'garbage', 'pct', 'half-quoted'] as const;
    const GET = ['undefined', 'null', 'empty', 't1', 't2', 'number', 'spaced', 'promise'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...AUTH),
        fc.array(
          fc.array(fc.record({ name: fc.constantFrom(...NAMES), val: fc.constantFrom(...VALS) }), {
            maxLength: 3,
          }),
          { maxLength: 3 },
        ),
        fc.constantFrom(...GET),
        fc.constantFrom('raw', 'record', 'web'),
        fc.boolean(),
        fc.boolean(),
        async (auth, fields, get, shape, optional, withGetToken) => {
          const tok = (v: 't1' | 't2') => (v === 't1' ? t1 : t2);
          const value = (v: (typeof VALS)[number]) =>
            v === 't1' || v === 't2'
              ? tok(v)
              : v === 'empty'
                ? ''
                : v === 'quoted1'
                  ? `"${t1}"`
                  : v === 'garbage'
                    ? 'not!a@token'
                    : v === 'pct'
                      ? t1.replace('.', '%2E')
                      : `"${t1}`;
          const authorization = {
            none: undefined,
            bearer1: `Bearer ${t1}`,
            bearer2: `Bearer ${t2}`,
            basic: 'Basic dXNlcjpwYXNz',
            bare: 'Bearer',
            dpop: `DPoP ${t1}`,
            lower: `bearer ${t2}`,
          }[auth];
          const cookies = fields.map((pairs) =>
            pairs.map((p) => `${p.name}=${value(p.val)}`).join('; '),
          );
          const got =
            get === 'undefined'
              ? undefined
              : get === 'null'
                ? null
                : get === 'empty'
                  ? ''
                  : get === 't1' || get === 't2'
                    ? tok(get)
                    : get === 'number'
                      ? 42
                      : get === 'spaced'
                        ? ` ${t1}`
                        : Promise.resolve(t1);
          const v = createVerifier({
            issuer: 'https://tenant.example.test/oidc',
            audience: AUDIENCE,
            jwks: { keys: [key.jwk] },
            cookie: 'at',
            ...(withGetToken ? { getToken: () => got as string | undefined } : {}),
          });
          const nonEmpty = cookies.filter((c) => c !== '');
          let request: RequestLike;
          if (shape === 'web') {
            const headers = new Headers();
            if (authorization !== undefined) headers.append('authorization', authorization);
            for (const c of nonEmpty) headers.append('cookie', c);
            request = new Request('https://api.test/', { headers });
          } else if (shape === 'raw') {
            const raw: string[] = [];
            if (authorization !== undefined) raw.push('Authorization', authorization);
            for (const c of nonEmpty) raw.push('Cookie', c);
            request = { headers: {}, rawHeaders: raw } as RequestLike;
          } else {
            const headers: Record<string, string | string[]> = {};
            if (authorization !== undefined) headers.authorization = authorization;
            if (nonEmpty.length > 0) headers.cookie = nonEmpty;
            request = { headers };
          }
          let authToken: string | undefined;
          const answer = await verdict(async () => {
            const result = await v.authenticate(request, optional ? { optional: true } : {});
            authToken = result?.token;
            return result;
          });

          // The rules, written out. Offers: [value, well-formed].
          const offers: { value: string; valid: boolean }[] = [];
          let twoCookies = false;
          if (authorization !== undefined && /^bearer( |$)/i.test(authorization)) {
            const t = authorization.slice(7);
            offers.push({ value: t, valid: t === t1 || t === t2 });
          }
          const named = fields.flat().filter((p) => p.name.trim() === 'at');
          if (named.length > 1) twoCookies = true;
          else if (named.length === 1) {
            let raw = value(named[0]!.val);
            if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) raw = raw.slice(1, -1);
            if (raw !== '') offers.push({ value: raw, valid: raw === t1 || raw === t2 });
          }
          let badGetToken = false;
          if (withGetToken) {
            if (typeof got === 'string' && got !== '') {
              offers.push({ value: got, valid: got === t1 || got === t2 });
            } else if (got !== undefined && got !== null && got !== '') badGetToken = true;
          }
          const why = `${auth} ${JSON.stringify(cookies)} ${withGetToken ? get : '-'} ${shape} optional=${optional}: ${answer}`;
          if (answer === 'ok') {
            expect(offers.length, why).toBe(1);
            expect(twoCookies || badGetToken, why).toBe(false);
            expect(offers[0]!.valid, why).toBe(true);
            expect(authToken, why).toBe(offers[0]!.value);
          } else if (answer === 'anonymous') {
            expect(optional && offers.length === 0 && !twoCookies && !badGetToken, why).toBe(true);
          } else {
            expect(answer, why).toMatch(/^40[01] [a-z_]+$/);
            if (offers.length + (twoCookies ? 2 : 0) > 1) {
              expect(answer, why).toBe('400 multiple_credentials');
            }
            if (offers.length === 1 && offers[0]!.valid && !twoCookies && !badGetToken) {
              throw new Error(`one well-formed offer refused: ${why}`);
            }
            if (offers.length === 0 && !twoCookies && !badGetToken) {
              expect(answer, why).toBe(optional ? 'anonymous' : '401 missing_token');
            }
          }
        },
      ),
      { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 400) },
    );
  });

  it('no refusal from any source (header, cookie, getToken) nor of any issuer shape echoes the token: not in details, events, body, headers or message', async () => {
    const events: RejectionEvent[] = [];
    const bad = `${t1.slice(0, -4)}AAAA`; // the signature altered
    const v = createVerifier({
      issuer: [A, B],
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      cookie: 'at',
      getToken: (req) => (req.headers as Record<string, string>)['x-token'],
      onRejected: (event) => events.push(event),
    });
    const requests: Record<string, string | string[]>[] = [
      { cookie: `at=${t1}; at=${t2}` },
      { cookie: `at=${t1}`, authorization: `Bearer ${t2}` },
      { cookie: `at="${bad}` },
      { cookie: `at=${bad}` },
      { 'x-token': `${t1} ` },
      { 'x-token': bad, cookie: `at=${bad}` },
      { authorization: `Bearer ${t1}`, 'x-token': t1 },
      { cookie: [`at=${t1}`, `at=${t1}`] },
      { authorization: `Bearer ${t1}` }, // iss is not A or B
    ];
    const errors: AuthError[] = [];
    for (const headers of requests) {
      try {
        await v.authenticate({ headers }, { optional: true });
      } catch (error) {
        errors.push(error as AuthError);
      }
    }
    expect(errors).toHaveLength(requests.length);
    const text = JSON.stringify([
      events.map((e) => ({ ...e, cause: String(e.cause) })),
      errors.map((e) => [e.message, e.details, e.body, e.headers, String(e.cause), e.stack]),
    ]);
    for (const t of [t1, t2, bad]) {
      const signature = t.slice(t.lastIndexOf('.') + 1);
      for (let at = 0; at + 16 <= signature.length; at += 8) {
        expect(text.includes(signature.slice(at, at + 16))).toBe(false);
      }
      expect(text.includes(t.slice(0, 40))).toBe(false);
    }
  });
});

describe('sound: cache interplay', () => {
  let key: TestKey;
  beforeAll(async () => {
    key = await makeKey('ES256');
  });

  it('one token through two verifiers of different options and routes of any strictness, in any order and time: each answer is that of a brand-new cache-less verifier, and an ok is one jose gives', async () => {
    const API2 = 'https://orders.api';
    const T0 = Date.UTC(2031, 5, 1);
    const now0 = T0 / 1000;
    const ISS = 'https://tenant.example.test/oidc';
    const optionsOf: readonly VerifierOptions[] = [
      {
        issuer: ISS,
        audience: [AUDIENCE, API2],
        jwks: { keys: [key.jwk] },
        organizations: true,
      },
      {
        issuer: ISS,
        audience: AUDIENCE,
        jwks: { keys: [key.jwk] },
        maxTokenAge: 60,
        requiredClaims: ['tenant_id'],
      },
    ];
    const claims = [
      {},
      { sub: 'user-1' },
      { organization_id: 'acme' },
      { aud: 'urn:logto:organization:acme' },
      { aud: API2, tenant_id: 'acme' },
      { tenant_id: 'acme', roles: ['admin', 'x'] },
      { tenant_id: 'ACME', roles: 'admin x' },
      { tenant_id: 7 },
      { tenant_id: 'acme', iat: now0 - 50 },
      { tenant_id: 'acme', exp: now0 + 40 },
      { tenant_id: 'acme', sub: 'user-2', scope: 'read:products', organization_id: 'acme' },
      { scope: undefined, tenant_id: 'acme' },
    ];
    const tokens = await Promise.all(
      claims.map((c) =>
        mint(
          key,
          Object.fromEntries(
            Object.entries(m2mClaims({ iat: now0, exp: now0 + 3600, ...c })).filter(
              ([, value]) => value !== undefined,
            ),
          ),
        ),
      ),
    );
    const routes: readonly Requirements[] = [
      {},
      { machine: true },
      { scopes: ['read:products'] },
      { scopes: ['read:products', 'write:products'] },
      { scopes: ['admin', 'write:products'], any: true },
      { claimEquals: { tenant_id: 'acme' } },
      { claimIncludes: { roles: ['admin'] } },
      { anyOrganization: true },
      { organization: 'acme' },
      { organization: 'acme', machine: true, scopes: ['read:products'] },
      { optional: true },
    ];
    /** A route as the kit takes it: the organization as a function of the request. */
    const kitRoute = (r: Requirements) => {
      const { organization, ...rest } = r;
      return organization === undefined ? rest : { ...rest, organization: () => organization };
    };
    const joseOf = (o: VerifierOptions) => ({
      issuer: ISS,
      // With organizations: true an organization audience is accepted too (per route after).
      audience: [
        ...[o.audience as string | string[]].flat(),
        ...(o.organizations === true ? ['urn:logto:organization:acme'] : []),
      ],
      typ: 'at+jwt',
      clockTolerance: 5,
      ...(o.maxTokenAge === undefined ? {} : { maxTokenAge: o.maxTokenAge }),
      requiredClaims: [...STRICT_CLAIMS, ...(o.requiredClaims ?? [])],
    });
    const action = fc.oneof(
      { weight: 1, arbitrary: fc.record({ tick: fc.integer({ min: 0, max: 25 }) }) },
      {
        weight: 6,
        arbitrary: fc.record({
          v: fc.nat({ max: 1 }),
          t: fc.nat({ max: tokens.length - 1 }),
          r: fc.nat({ max: routes.length - 1 }),
          how: fc.constantFrom('verify', 'authenticate', 'guard', 'kit'),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 30 }), async (actions) => {
        const time = clock(T0);
        const warm = optionsOf.map((o) => createVerifier(o));
        const guards = warm.map((v) => routes.map((r) => v.guard(r)));
        const kits = warm.map((v) => routes.map((r) => routeGuard(v, kitRoute(r))));
        const run = async (
          v: Verifier,
          how: string,
          token: string,
          r: number,
          route?: (req: RequestLike) => Promise<unknown>,
          kit?: ReturnType<typeof routeGuard>,
        ) => {
          const req = { headers: { authorization: `Bearer ${token}` } };
          if (how === 'verify') return verdict(() => v.verify(token, routes[r]));
          if (how === 'authenticate') return verdict(() => v.authenticate(req, routes[r]));
          if (how === 'guard') return verdict(() => (route ?? v.guard(routes[r]))(req));
          return verdict(() =>
            (kit ?? routeGuard(v, kitRoute(routes[r]!))).run(undefined, req, {
              pass: (auth) => auth,
              respond: (error) => {
                throw error;
              },
              fail: (error) => {
                throw error;
              },
            }),
          );
        };
        for (const a of actions) {
          if ('tick' in a) {
            time.advance(a.tick);
            continue;
          }
          const token = tokens[a.t]!;
          const got = await run(
            warm[a.v]!,
            a.how,
            token,
            a.r,
            guards[a.v]![a.r] as (req: RequestLike) => Promise<unknown>,
            kits[a.v]![a.r] as ReturnType<typeof routeGuard>,
          );
          const fresh = createVerifier({ ...optionsOf[a.v]!, cache: false });
          const want = await run(fresh, a.how, token, a.r);
          expect(got, `${JSON.stringify(a)} at +${(Date.now() - T0) / 1000} s`).toBe(want);
          if (got === 'ok') {
            await expect(
              jwtVerify(token, createLocalJWKSet({ keys: [key.jwk] }), {
                ...joseOf(optionsOf[a.v]!),
                currentDate: new Date(Date.now()),
              }),
            ).resolves.toBeDefined();
          }
        }
      }),
      { seed: Number(process.env.S31_SEED ?? SEED), numRuns: Number(process.env.S31_RUNS ?? 80) },
    );
  });
});
