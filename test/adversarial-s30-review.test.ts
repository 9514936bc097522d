/**
 * Adversarial review, session 30 (helper h76): the areas reviewed less than the signature, claims
 * and cache paths. Route requirements (claimEquals, claimIncludes, checks, any/all scopes,
 * organization and anyOrganization, machine-only, optional authentication), `resource-guard/testing`,
 * the option checks (createVerifier, logto()), static keys, and the revocation hook.
 *
 * The invariant: never looser than a cold verification by the rules (a brand-new verifier, a
 * by-the-book reading of the token, jose for what jose reads), hostile input a clear 400/401/403.
 * What held is asserted as is (`SOUND`); the three faults found (`FIXED`, was `FAULT`) assert the
 * correct behaviour, and fail on the code before the session 30 fix.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, logto } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier, VerifierOptions } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome } from 'resource-guard/kit';
import { createTestIssuer } from 'resource-guard/testing';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

let key: TestKey; // the issuer's (ES256)
let v: Verifier; // static key set, organizations: true
let good: string; // M2M, scope `read:products write:products`, no organization

beforeAll(async () => {
  key = await makeKey('ES256');
  v = createVerifier(base({ organizations: true }));
  good = await mint(key, m2mClaims());
});

beforeEach(() => {
  // Many verifiers are made on purpose: silence the "verifier per request" and duration hints.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

function base(extra: Partial<VerifierOptions> = {}): VerifierOptions {
  return { issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] }, ...extra };
}
const req = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** `'ok'`, `'anonymous'`, `'<status> <reason>'`, or `'TypeError'` (thrown or rejected). */
async function verdict(run: () => Promise<unknown> | unknown): Promise<string> {
  try {
    const auth = await run();
    return auth === undefined ? 'anonymous' : 'ok';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    if (error instanceof TypeError) return 'TypeError';
    throw error;
  }
}

/** A route declared with `requirements` (checked once), asked with `token`. */
const onRoute = (verifier: Verifier, requirements: unknown, token: string, organization?: string) =>
  verdict(() => {
    const guard = verifier.guard(requirements as Requirements);
    return organization === undefined ? guard(req(token)) : guard(req(token), { organization });
  });

/** What a kit route (every adapter) answers: `'TypeError'` at declaration, else its outcome. */
async function kitVerdict(verifier: Verifier, options: unknown, token: string): Promise<string> {
  let guard;
  try {
    guard = routeGuard(verifier, options as Parameters<typeof routeGuard>[1]);
  } catch (error) {
    if (error instanceof TypeError) return 'TypeError';
    throw error;
  }
  const seen: Outcome<Promise<string>> = {
    pass: () => Promise.resolve('ok'),
    respond: (error) => Promise.resolve(`${error.status} ${error.reason}`),
    fail: (error) => Promise.resolve(error instanceof TypeError ? 'TypeError' : 'fail'),
  };
  return guard.run({}, req(token), seen);
}

/** A token signed over a raw JSON payload (duplicate members, `__proto__`: what JSON.stringify cannot write). */
const rawPayloadToken = (json: string) =>
  signRaw(key, { alg: 'ES256', typ: 'at+jwt', kid: key.kid }, json);

/** `m2mClaims()` as JSON, with `extra` (raw JSON members) spliced in before the closing brace. */
function claimsJson(extra: string, overrides: Record<string, unknown> = {}): string {
  const json = JSON.stringify(m2mClaims(overrides));
  return `${json.slice(0, -1)},${extra}}`;
}

/** Objects inheriting from a null-prototype base (as INI or query-string parsers make them). */
function inheriting<T extends object>(inherited: T, own: Record<string, unknown>): T {
  const parent = Object.assign(Object.create(null) as object, inherited);
  return Object.assign(Object.create(parent) as object, own) as T;
}

// ─────────────────────────────── 1. Route requirements ───────────────────────────────

describe('requirements: prototype keys and duplicated JSON members', () => {
  // SOUND: a payload's own `__proto__` member is data, never a claim, scope or organization.
  it('a payload `__proto__` member grants no scope, claim or organization', async () => {
    const token = await rawPayloadToken(
      claimsJson('"__proto__":{"scope":"admin","organization_id":"o1","tenant":"acme"}', {
        scope: undefined,
      }),
    );
    expect(await onRoute(v, { scopes: ['admin'] }, token)).toBe('403 insufficient_scope');
    expect(await onRoute(v, { claimEquals: { tenant: 'acme' } }, token)).toBe('403 claim_mismatch');
    expect(await onRoute(v, { organization: 'placeholder' }, token, 'o1')).toBe(
      '403 organization_mismatch',
    );
    expect(await onRoute(v, {}, token)).toBe('ok'); // a global token, as a cold reading says
  });

  // SOUND: claim rules named after Object.prototype members read the token's own members only.
  it('claimEquals / claimIncludes named constructor, toString, __proto__ read own members only', async () => {
    const rule = Object.defineProperty({}, '__proto__', { value: 'acme', enumerable: true });
    expect(await onRoute(v, { claimEquals: rule }, good)).toBe('403 claim_mismatch');
    const own = await rawPayloadToken(claimsJson('"__proto__":"acme"'));
    expect(await onRoute(v, { claimEquals: rule }, own)).toBe('ok');
    expect(await onRoute(v, { claimEquals: { constructor: 'Object' } }, good)).toBe(
      '403 claim_mismatch',
    );
    expect(await onRoute(v, { claimIncludes: { toString: ['x'] } }, good)).toBe(
      '403 claim_mismatch',
    );
    expect(await verdict(() => v.verify(good, { claimIncludes: { hasOwnProperty: ['x'] } }))).toBe(
      '403 claim_mismatch',
    );
  });

  // SOUND: a duplicated member is read as JSON.parse (and so jose) reads it: the last one wins.
  it('duplicated scope / organization_id members: the last wins, as for jose', async () => {
    const token = await rawPayloadToken(
      claimsJson('"scope":"admin","organization_id":"o1","organization_id":"o2","scope":"read"', {
        scope: undefined,
      }),
    );
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: [key.jwk] }), {
      typ: 'at+jwt',
    });
    expect([payload.scope, payload.organization_id]).toEqual(['read', 'o2']);
    const r = (scopes: string[], org: string) =>
      onRoute(v, { organization: 'placeholder', scopes }, token, org);
    expect(await r(['admin'], 'o2')).toBe('403 insufficient_scope');
    expect(await r(['read'], 'o1')).toBe('403 organization_mismatch');
    expect(await r(['read'], 'o2')).toBe('ok');
  });
});

describe('requirements: scope spellings (RFC 6749 §3.3: scope-token *( SP scope-token ))', () => {
  // SOUND: only SP separates; every other spelling of "admin" grants nothing, on every surface.
  it.each([
    ['read:products\tadmin', '403 insufficient_scope'],
    ['read:products\u00a0admin', '403 insufficient_scope'],
    ['read:products\nadmin', '403 insufficient_scope'],
    ['read:products\u3000admin', '403 insufficient_scope'],
    ['read:products,admin', '403 insufficient_scope'],
    ['\u0430dmin', '403 insufficient_scope'], // Cyrillic а
    ['ADMIN', '403 insufficient_scope'],
    ['admin\u200b', '403 insufficient_scope'],
    ['ad\u00admin', '403 insufficient_scope'], // soft hyphen
    ['adm', '403 insufficient_scope'],
    ['administrator', '403 insufficient_scope'],
    ['  read:products   admin  ', 'ok'],
    ['admin', 'ok'],
  ])('scope %j, route needs admin → %s', async (scope, expected) => {
    const token = await mint(key, m2mClaims({ scope }));
    expect(await onRoute(v, { scopes: ['admin'] }, token)).toBe(expected);
    expect(await verdict(() => v.verify(token, { scopes: ['admin'] }))).toBe(expected);
    expect(await kitVerdict(v, { scopes: ['admin'] }, token)).toBe(expected);
  });

  // SOUND: a confusable or non-ASCII required scope is a TypeError where declared, and per call
  // matches no token, even one whose scp lists it verbatim.
  it('a non-ASCII required scope: TypeError on a route, unmatchable per call', async () => {
    const claims = m2mClaims({ scp: ['\u0430dmin', 'a b'] });
    delete claims.scope;
    const token = await mint(key, claims);
    expect(await onRoute(v, { scopes: ['\u0430dmin'] }, token)).toBe('TypeError');
    expect(await verdict(() => v.verify(token, { scopes: ['\u0430dmin'] }))).toBe(
      '403 insufficient_scope',
    );
    expect(await verdict(() => v.verify(token, { scopes: ['a b'] }))).toBe(
      '403 insufficient_scope',
    );
  });

  // SOUND: `scope` wins over `scp`; a `scp` of another shape is refused even beside a `scope`.
  it.each([
    [{ scope: '', scp: ['admin'] }, '403 insufficient_scope'],
    [{ scope: 'read', scp: ['admin'] }, '403 insufficient_scope'],
    [{ scope: undefined, scp: ['admin'] }, 'ok'], // documented: scp read when scope is absent
    [{ scope: undefined, scp: 'admin' }, '401 invalid_claim'],
    [{ scope: 'admin', scp: 'admin' }, '401 invalid_claim'],
    [{ scope: undefined, scp: ['admin', 1] }, '401 invalid_claim'],
    [{ scope: ['admin'] }, '401 invalid_claim'],
    [{ scope: null }, '401 invalid_claim'],
    [{ scope: undefined, scp: null }, '401 invalid_claim'],
  ])('%j → %s', async (claims, expected) => {
    const token = await mint(key, m2mClaims(claims));
    expect(await onRoute(v, { scopes: ['admin'] }, token)).toBe(expected);
  });
});

describe('requirements: any / all', () => {
  // SOUND: all-of, any-of, and "any of none" never admits.
  it.each([
    [{ scopes: ['read:products', 'admin'] }, '403 insufficient_scope'],
    [{ scopes: ['read:products', 'admin'], any: true }, 'ok'],
    [{ scopes: ['admin', 'root'], any: true }, '403 insufficient_scope'],
    [{ scopes: [], any: true }, '403 insufficient_scope'],
    [{ any: true }, '403 insufficient_scope'],
    [{ scopes: ['read:products', 'read:products'] }, 'ok'],
    [{ scopes: [] }, 'ok'],
  ])('%j → %s (route, per call and kit alike)', async (requirements, expected) => {
    expect(await onRoute(v, requirements, good)).toBe(expected);
    expect(await verdict(() => v.verify(good, requirements as Requirements))).toBe(expected);
    expect(await kitVerdict(v, requirements, good)).toBe(expected);
  });

  // SOUND: per call, an invalid item is unmatchable; `any` still needs one held, valid scope.
  it('per call: unmatchable items never count as held', async () => {
    const weird = ['read:products ', '', 'admin', undefined, { toString: () => 'read:products' }];
    expect(
      await verdict(() => v.verify(good, { scopes: weird, any: true } as unknown as Requirements)),
    ).toBe('403 insufficient_scope');
    expect(
      await verdict(() =>
        v.verify(good, { scopes: [...weird, 'read:products'], any: true } as never),
      ),
    ).toBe('ok');
  });
});

describe('requirements: organizations', () => {
  // SOUND: organization_id of any type but string is refused on every route (RFC 9068 §2.2 types).
  it.each([1, 0, true, null, ['o1'], { id: 'o1' }])(
    'organization_id %j → 401 invalid_claim everywhere',
    async (organization_id) => {
      const token = await mint(key, m2mClaims({ organization_id }));
      expect(await onRoute(v, {}, token)).toBe('401 invalid_claim');
      expect(await onRoute(v, { anyOrganization: true }, token)).toBe('401 invalid_claim');
      expect(await onRoute(v, { organization: 'placeholder' }, token, 'o1')).toBe(
        '401 invalid_claim',
      );
    },
  );

  // SOUND: aud shapes: duplicates, non-strings, empty, empty organization id, two organizations.
  it.each([
    [{ aud: [AUDIENCE, AUDIENCE] }, ['ok', 'ok', '403 organization_mismatch']],
    [{ aud: [AUDIENCE, 1] }, ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim']],
    [{ aud: [] }, ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim']],
    [{ aud: null }, ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim']],
    [{ aud: { 0: AUDIENCE } }, ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim']],
    [
      { aud: ['urn:logto:organization:'] },
      ['401 audience_mismatch', '401 audience_mismatch', '401 audience_mismatch'],
    ],
    [
      { aud: [AUDIENCE, 'urn:logto:organization:o1'] },
      ['403 organization_token', 'ok', '403 organization_mismatch'],
    ],
    [
      { aud: [AUDIENCE, 'urn:logto:organization:o1'], organization_id: 'o2' },
      ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim'],
    ],
    [
      { aud: ['urn:logto:organization:o1', 'urn:logto:organization:O1'] },
      ['401 invalid_claim', '401 invalid_claim', '401 invalid_claim'],
    ],
    [
      { organization_id: '' },
      ['403 organization_token', '403 organization_token', '403 organization_mismatch'],
    ],
    [{ organization_id: 'O1' }, ['403 organization_token', 'ok', '403 organization_mismatch']],
    [{ organization_id: 'o1 ' }, ['403 organization_token', 'ok', '403 organization_mismatch']],
    [{ organization_id: 'o1' }, ['403 organization_token', 'ok', 'ok']],
    [{ aud: 'urn:logto:organization:o1' }, ['401 audience_mismatch', 'ok', 'ok']],
  ])('%j → [global, anyOrganization, organization o1]', async (claims, expected) => {
    const token = await mint(key, m2mClaims(claims));
    expect([
      await onRoute(v, {}, token),
      await onRoute(v, { anyOrganization: true }, token),
      await onRoute(v, { organization: 'placeholder' }, token, 'o1'),
    ]).toEqual(expected);
  });

  // SOUND: without `organizations`, an organization token opens nothing; per call, an organization
  // that is not a non-empty string matches no token; `anyOrganization` never admits organization_id "".
  it('organization tokens need the option; request-given organizations never widen a route', async () => {
    const strictV = createVerifier(base());
    const orgToken = await mint(key, m2mClaims({ aud: 'urn:logto:organization:o1' }));
    for (const requirements of [{}, { anyOrganization: true }, { organization: 'o1' }]) {
      expect(await onRoute(strictV, requirements, orgToken)).toBe('401 audience_mismatch');
    }
    for (const organization of [undefined, '', null, ['o1'], 1, { toString: () => 'o1' }]) {
      const requirements = { organization } as unknown as Requirements;
      expect(await verdict(() => v.verify(good, requirements))).toBe('403 organization_mismatch');
    }
  });
});

describe('requirements: machine and user tokens', () => {
  // SOUND: machine = sub === client_id; a missing client_id (strict: false) is never a machine.
  it.each([
    [{}, 'ok'],
    [{ sub: 'user-1' }, '403 machine_required'],
    [{ sub: 'APP-123' }, '403 machine_required'],
    [{ sub: 'app-123 ' }, '403 machine_required'],
  ])('%j → %s', async (claims, expected) => {
    const token = await mint(key, m2mClaims(claims));
    expect(await onRoute(v, { machine: true }, token)).toBe(expected);
  });

  it('strict: false, no client_id: never a machine', async () => {
    const lax = createVerifier(base({ strict: false }));
    const claims = m2mClaims();
    delete claims.client_id;
    const token = await mint(key, claims);
    expect(await onRoute(lax, { machine: true }, token)).toBe('403 machine_required');
    expect(await onRoute(lax, {}, token)).toBe('ok');
  });
});

describe('requirements: optional authentication', () => {
  // SOUND: only "no credentials" is anonymous; any token is verified as always, never downgraded.
  it('a token of any kind is verified; only no Bearer credentials is anonymous', async () => {
    const expired = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) - 60 }));
    const otherOrg = await mint(key, m2mClaims({ organization_id: 'o2' }));
    const cases: [Record<string, string>, string][] = [
      [{}, 'anonymous'],
      [{ authorization: '' }, 'anonymous'],
      [{ authorization: ' \t ' }, 'anonymous'],
      [{ authorization: 'Basic dXNlcjpwYXNz' }, 'anonymous'],
      [{ authorization: 'Bearertoken' }, 'anonymous'],
      [{ authorization: 'Bearer' }, '400 malformed_header'],
      [{ authorization: 'Bearer\tabc' }, '400 malformed_header'],
      [{ authorization: ', Bearer abc' }, '400 multiple_credentials'],
      [{ authorization: `Bearer ${good.slice(0, -4)}AAAA` }, '401 bad_signature'],
      [{ authorization: `Bearer ${expired}` }, '401 expired'],
      [{ authorization: 'Bearer opaque-token' }, '401 opaque_token'],
      [{ authorization: `Bearer ${good}` }, '403 insufficient_scope'],
    ];
    const guard = v.guard({ optional: true, scopes: ['admin'] });
    for (const [headers, expected] of cases) {
      expect(await verdict(() => guard({ headers }))).toBe(expected);
    }
    const orgRoute = v.guard({ optional: true, organization: 'placeholder' });
    expect(await verdict(() => orgRoute(req(otherOrg), { organization: 'o1' }))).toBe(
      '403 organization_mismatch',
    );
    expect(await verdict(() => orgRoute({ headers: {} }, { organization: 'o1' }))).toBe(
      'anonymous',
    );
    // verify() has no "no credentials": a missing token is never anonymous.
    for (const token of [undefined, '', ' ']) {
      expect(await verdict(() => v.verify(token as string, { optional: true }))).toMatch(/^401 /);
    }
  });
});

describe('requirements: checks', () => {
  // SOUND: only a real `true` (or a promise of it) allows; a thenable, a boxed true or "true" refuse.
  it.each([
    [() => true, 'ok'],
    [() => Promise.resolve(true), 'ok'],
    [() => 'true', '403 check_failed'],
    [() => 1, '403 check_failed'],
    [() => new Boolean(true), '403 check_failed'],
    [() => ({ then: (ok: (v: boolean) => void) => ok(true) }), '403 check_failed'],
    [() => Promise.resolve('true'), '403 check_failed'],
    [() => undefined, '403 check_failed'],
  ])('check %s → %s', async (check, expected) => {
    const requirements = { checks: { c: check } } as unknown as Requirements;
    expect(await onRoute(v, requirements, good)).toBe(expected);
    expect(await verdict(() => v.verify(good, requirements))).toBe(expected);
  });

  // SOUND: a later sync check still runs after an async one said yes.
  it('every check runs, in order, after an async yes', async () => {
    const seen: string[] = [];
    const checks = {
      a: async () => (seen.push('a'), true),
      b: () => (seen.push('b'), false),
    };
    expect(await onRoute(v, { checks }, good)).toBe('403 check_failed');
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('requirements mutated by the caller after the route was built', () => {
  // SOUND: scopes, claim rules and checks are copied when the route is declared.
  it('the declared route keeps its rules, whatever the caller does to its objects', async () => {
    const scopes = ['admin'];
    const claimEquals: Record<string, string> = { tenant: 'acme' };
    const claimIncludes: Record<string, string[]> = { roles: ['root'] };
    const checks: Record<string, () => boolean> = { deny: () => false };
    const declared = [
      v.guard({ scopes }),
      v.guard({ claimEquals }),
      v.guard({ claimIncludes }),
      v.guard({ checks }),
    ];
    const kit = [
      routeGuard(v, { scopes }),
      routeGuard(v, { claimEquals }),
      routeGuard(v, { claimIncludes }),
      routeGuard(v, { checks }),
    ];
    scopes.length = 0;
    claimEquals.tenant = 'evil';
    delete claimEquals.tenant;
    claimIncludes.roles = [];
    checks.deny = () => true;
    const seen: Outcome<string> = {
      pass: () => 'ok',
      respond: (e) => `${e.status} ${e.reason}`,
      fail: () => 'fail',
    };
    for (const guard of declared) expect(await verdict(() => guard(req(good)))).toMatch(/^403 /);
    for (const guard of kit) expect(await guard.run({}, req(good), seen)).toMatch(/^403 /);
  });

  // SOUND: a getter in the requirements is read once; later answers do not change the route.
  it('a getter answering differently later does not change a declared route', async () => {
    let calls = 0;
    const requirements = {
      get scopes() {
        calls++;
        return calls === 1 ? ['admin'] : [];
      },
    };
    const guard = v.guard(requirements);
    for (let i = 0; i < 3; i++) {
      expect(await verdict(() => guard(req(good)))).toBe('403 insufficient_scope');
    }
  });
});

// FIXED (session 30), was FAULT (medium): an entry of `claimEquals`, `claimIncludes` or `checks` inherited from a
// null-prototype parent (`Object.create(Object.assign(Object.create(null), { deny: … }))`, the shape
// INI/query-string parsers and `Object.create(defaults)` make) is silently dropped: `record()` in
// src/option-checks.ts:485-504 reads `Object.getOwnPropertyNames` only, and `isPlainObject` accepts
// the object. Observed: the route (guard(), verify(), every adapter through the kit) admits a token
// the inherited rule refuses: `{ tenant: 'evil' }` passes `claimEquals: { tenant: 'acme' }`, a
// `deny` check is never asked. Rule: README "an unknown or misspelt option, at any level ... a
// tightening you meant is never silently absent" and "never a rule dropped"; the same input at the
// top level is refused (`is inherited`, readLevel, test/options.test.ts) and was a medium fault in
// the kit (s24). Fix: in `record()`, refuse an enumerable inherited name as `readLevel` does
// (`for (const name in value) if (!Object.hasOwn(value, name)) configError(...)`).
describe('claim rules and checks inherited from a null-prototype parent', () => {
  const refusedOrEnforced = ['TypeError', '403 claim_mismatch', '403 check_failed'];

  it('claimEquals: guard() refuses or enforces an inherited rule', async () => {
    const token = await mint(key, m2mClaims({ tenant: 'evil', region: 'eu' }));
    const claimEquals = inheriting({ tenant: 'acme' }, { region: 'eu' });
    expect(refusedOrEnforced).toContain(await onRoute(v, { claimEquals }, token));
  });

  it('claimIncludes: verify() refuses or enforces an inherited rule', async () => {
    const token = await mint(key, m2mClaims({ roles: ['reader'], region: ['eu'] }));
    const claimIncludes = inheriting({ roles: ['admin'] }, { region: ['eu'] });
    expect(refusedOrEnforced).toContain(await verdict(() => v.verify(token, { claimIncludes })));
  });

  it('checks: the kit (every adapter) refuses or enforces an inherited check', async () => {
    const checks = inheriting({ deny: () => false }, { allow: () => true });
    expect(refusedOrEnforced).toContain(await kitVerdict(v, { checks }, good));
  });
});

// FIXED (session 30), was FAULT (low): per call, `organizationFromRequest` (src/options.ts:290-300) decides from the
// `organization` member's DESCRIPTOR that it is a string and hands the object on as is; resolveLevel
// then reads it again through [[Get]]. A Proxy whose descriptor says `'o1'` and whose `get` answers
// `undefined` (a stateful or lazily-backed requirements object) turns the organization route global:
// `verify(globalToken, proxy)` → ok, where the same requirements as data → 403 organization_mismatch.
// The code's own comment says a member answering `'o1'` then `undefined` "must not turn an
// organization route global" (README: an organization that is there but not a non-empty string
// "never turns the route into a global one"); getters are covered, Proxies are not. Only app code can
// build such an object (no request can), hence low. Fix: read the member once (`ownData(given)` or
// the descriptor's value) and resolve that copy, instead of re-reading the original.
describe('per-call organization read through a Proxy', () => {
  it('a Proxy naming an organization never makes the route global', async () => {
    const proxy = new Proxy({ organization: 'o1' } as Record<string, unknown>, {
      get: (target, name) => (name === 'organization' ? undefined : target[name as string]),
    });
    expect(await verdict(() => v.verify(good, proxy as Requirements))).toBe(
      '403 organization_mismatch',
    );
  });

  // SOUND: a getter (the case the code guards) is read once, and the route stays an organization route.
  it('a getter answering o1 then undefined is read once', async () => {
    let calls = 0;
    const requirements = {
      get organization() {
        calls++;
        return calls === 1 ? 'o1' : undefined;
      },
    };
    expect(await verdict(() => v.verify(good, requirements as Requirements))).toBe(
      '403 organization_mismatch',
    );
  });
});

// FIXED (session 30), was FAULT (low): the kit reads a route's options with `ownData` (src/option-checks.ts:84-107), which
// lists members by [[OwnPropertyKeys]]; `verifier.guard()` reads them by [[GetOwnProperty]]
// (`Object.hasOwn`, readLevel). A Proxy whose `ownKeys` omits `scopes` while its descriptor and `get`
// report `['admin']` is enforced by guard() (403) and silently dropped by every adapter (ok): the
// same options object, two answers, the adapter's the looser. Rule: test/adversarial-s24-review
// "an inherited requirement is enforced or refused, never dropped"; README "the requirements
// checked are the ones used". App code only (no request can build it): low. Fix: in ownData, also
// read (or refuse) each rule name `Object.hasOwn` reports that `getOwnPropertyNames` did not list,
// or refuse a Proxy whose two views disagree.
describe('route options read through a Proxy: the kit and guard() agree', () => {
  it('a requirement hidden from ownKeys is enforced or refused by the kit too', async () => {
    const options = new Proxy({} as Record<string, unknown>, {
      ownKeys: () => [],
      getOwnPropertyDescriptor: (_target, name) =>
        name === 'scopes'
          ? { value: ['admin'], enumerable: true, configurable: true, writable: true }
          : undefined,
      get: (_target, name) => (name === 'scopes' ? ['admin'] : undefined),
    });
    // Fixed: both refuse the object (its two views disagree), where guard() enforced and the kit dropped.
    expect(await onRoute(v, options, good)).toBe('TypeError');
    expect(await kitVerdict(v, options, good)).toBe('TypeError');
  });
});

// ─────────────────────────────── 2. resource-guard/testing ───────────────────────────────

describe('resource-guard/testing', () => {
  // SOUND: refuses to run under NODE_ENV=production however a shell spells it.
  it.each(['production', 'PRODUCTION', ' Production ', 'production\r\n', '\tproduction'])(
    'NODE_ENV=%j → throws',
    async (value) => {
      vi.stubEnv('NODE_ENV', value);
      await expect(createTestIssuer()).rejects.toThrow(/NODE_ENV=production/);
    },
  );

  // SOUND: it publishes and returns public keys only, and its fetch answers its JWKS and nothing else.
  it('leaks no private key; its fetch refuses every other URL', async () => {
    const issuer = await createTestIssuer({ algorithm: 'RS256' });
    const rotated = await issuer.rotate();
    const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
    for (const jwk of [...issuer.jwks.keys, rotated]) {
      for (const member of privateMembers) expect(jwk).not.toHaveProperty(member);
    }
    expect(JSON.stringify(issuer)).not.toMatch(/"d":/);
    const fetch = issuer.verifierOptions.fetch as typeof globalThis.fetch;
    await expect(fetch('https://tenant.logto.app/oidc/jwks')).rejects.toThrow(TypeError);
    await expect(fetch(`${issuer.jwksUri}?x=1`)).rejects.toThrow(TypeError);
    expect(Object.isFrozen(issuer.verifierOptions)).toBe(true);
  });

  // SOUND: its tokens open only a verifier built from its own options; a tampered header is refused.
  it('another test issuer of the same name, or a tampered alg, opens nothing', async () => {
    const a = await createTestIssuer();
    const b = await createTestIssuer();
    const verifier = createVerifier({ ...a.verifierOptions });
    expect(await verdict(async () => verifier.verify(await a.mint()))).toBe('ok');
    expect(await verdict(async () => verifier.verify(await b.mint()))).toBe('401 unknown_kid');
    for (const alg of ['none', 'HS256', 'ES256']) {
      const token = await a.mint({ header: { alg } });
      expect(await verdict(() => verifier.verify(token))).toMatch(
        /^401 (alg_not_allowed|key_mismatch|bad_signature)$/,
      );
    }
    const production = createVerifier(base());
    expect(await verdict(async () => production.verify(await a.mint()))).toMatch(/^401 /);
  });
});

// ─────────────────────────────── 3. Option checks ───────────────────────────────

describe('createVerifier options that could loosen verification', () => {
  // SOUND: every one of these is a TypeError at start-up, never a silently looser verifier.
  it.each([
    ['algorithms', { algorithms: ['none'] }],
    ['algorithms', { algorithms: ['HS256'] }],
    ['algorithms', { algorithms: ['hs256'] }],
    ['algorithms', { algorithms: ['es256'] }],
    ['algorithms', { algorithms: ['RS256 '] }],
    ['algorithms', { algorithms: ['ES256\u200b'] }],
    ['algorithms', { algorithms: [] }],
    ['algorithms', { algorithms: 'ES256' }],
    ['clockTolerance', { clockTolerance: Number.NaN }],
    ['clockTolerance', { clockTolerance: -1 }],
    ['clockTolerance', { clockTolerance: '5' }],
    ['clockTolerance', { clockTolerance: Number.POSITIVE_INFINITY }],
    ['clockTolerance', { clockTolerance: null }],
    ['maxTokenAge', { maxTokenAge: -1 }],
    ['maxTokenAge', { maxTokenAge: Number.NaN }],
    ['audience', { audience: ['', AUDIENCE] }],
    ['audience', { audience: [` ${AUDIENCE}`] }],
    ['audience', { audience: `${AUDIENCE}\r` }],
    ['audience', { audience: [] }],
    ['issuer', { issuer: 'https://Tenant.example.test/oidc' }],
    ['issuer', { issuer: 'https://tenant.example.test:443/oidc' }],
    ['issuer', { issuer: `${ISSUER}?` }],
    ['issuer', { issuer: `${ISSUER}#` }],
    ['issuer', { issuer: 'https://u:p@tenant.example.test/oidc' }],
    ['issuer', { issuer: ` ${ISSUER}` }],
    ['issuer', { issuer: 'https://tenant.example.test/a/../oidc' }],
    ['issuer', { issuer: [] }],
    ['requiredClaims', { requiredClaims: [''] }],
    ['requiredClaims', { requiredClaims: [' tenant'] }],
    ['strict', { strict: 'false' }],
    ['strict', { strict: 0 }],
    ['organizations', { organizations: 'true' }],
    ['typ', { typ: 'JWT' }],
    ['jwks', { jwks: { keys: [] } }],
  ])('%s: %j → TypeError', (_name, extra) => {
    expect(() => createVerifier(base(extra as Partial<VerifierOptions>))).toThrow(TypeError);
  });

  // SOUND: the issuer is compared exactly (trailing slash, case); maxTokenAge 0 leaves only the tolerance.
  it('issuer exact; maxTokenAge 0 means "issued within clockTolerance"', async () => {
    const slash = createVerifier(base({ issuer: `${ISSUER}/` }));
    expect(await verdict(() => slash.verify(good))).toBe('401 issuer_mismatch');
    const now = Math.floor(Date.now() / 1000);
    const fresh = createVerifier(base({ maxTokenAge: 0 }));
    expect(
      await verdict(async () => fresh.verify(await mint(key, m2mClaims({ iat: now - 3 })))),
    ).toBe('ok');
    expect(
      await verdict(async () => fresh.verify(await mint(key, m2mClaims({ iat: now - 30 })))),
    ).toBe('401 token_too_old');
  });

  // SOUND: getters, Proxies and later mutation of the caller's objects change nothing after creation.
  it('options read once: getters, Proxies and mutation after createVerifier', async () => {
    let tolerance = 0;
    const audiences = [AUDIENCE];
    const algorithms: string[] = ['ES256'];
    const jwk = { ...key.jwk };
    const options = {
      issuer: ISSUER,
      get clockTolerance() {
        return tolerance;
      },
      audience: new Proxy(audiences, {}),
      algorithms,
      jwks: { keys: [jwk] },
    } as unknown as VerifierOptions;
    const verifier = createVerifier(options);
    tolerance = 1e9;
    audiences.push('https://other.api');
    algorithms.push('ES384');
    const other = await makeKey('ES256', key.kid);
    Object.assign(jwk, { x: other.jwk.x, y: other.jwk.y });
    const now = Math.floor(Date.now() / 1000);
    const expired = await mint(key, m2mClaims({ exp: now - 2, iat: now - 100 }));
    expect(await verdict(() => verifier.verify(expired))).toBe('401 expired');
    expect(
      await verdict(async () =>
        verifier.verify(await mint(key, m2mClaims({ aud: 'https://other.api' }))),
      ),
    ).toBe('401 audience_mismatch');
    expect(await verdict(async () => verifier.verify(await mint(other)))).toBe('401 bad_signature');
    expect(await verdict(() => verifier.verify(good))).toBe('ok');
  });
});

// ─────────────────────────────── 4. Static keys ───────────────────────────────

describe('static keys: what may never be trusted', () => {
  const pem = (
    k: { export(o: { format: 'pem'; type: 'spki' | 'pkcs8' }): unknown },
    type: 'spki' | 'pkcs8',
  ) => k.export({ format: 'pem', type }) as string;

  // SOUND: nothing but a public signing key of a supported type and size is accepted at start-up.
  it('symmetric, private, small RSA, other curves, KeyObjects, `use: enc`: TypeError', () => {
    const rsa1k = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa2k = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n2k = (rsa2k.publicKey.export({ format: 'jwk' }) as JWK).n as string;
    const small = rsa1k.publicKey.export({ format: 'jwk' }) as JWK;
    const keys: unknown[] = [
      { kty: 'oct', k: 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', alg: 'HS256' },
      ec.privateKey.export({ format: 'jwk' }),
      { ...key.jwk, use: 'enc' },
      { ...key.jwk, use: 'SIG' },
      small,
      { ...small, n: `AAAA${small.n as string}` }, // a 1024-bit key padded to look bigger
      { ...(rsa2k.publicKey.export({ format: 'jwk' }) as JWK), e: 'AQ' }, // e = 1
      { kty: 'RSA', n: n2k },
      pem(rsa1k.publicKey, 'spki'),
      pem(ec.privateKey, 'pkcs8'),
      pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey, 'spki'),
      pem(generateKeyPairSync('x25519').publicKey, 'spki'),
      pem(generateKeyPairSync('ed448').publicKey, 'spki'),
      pem(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey, 'spki'),
      ec.publicKey, // a KeyObject
      'not a key -----BEGIN PUBLIC KEY-----',
    ];
    for (const jwk of keys) {
      expect(() => createVerifier(base({ jwks: { keys: [jwk as JWK] } }))).toThrow(TypeError);
    }
  });

  // SOUND: a usable-looking key that jose would not use for this token (alg, crv, key_ops, ext)
  // verifies nothing: key_mismatch, as a cold jose key set refuses it.
  it.each([
    ['alg ES384 on a P-256 key', { alg: 'ES384' }],
    ['alg none', { alg: 'none' }],
    ['alg HS256', { alg: 'HS256' }],
    ['crv P-384 over P-256 coordinates', { crv: 'P-384' }],
    ['key_ops encrypt', { key_ops: ['encrypt'] }],
    ['key_ops sign', { key_ops: ['sign'] }],
    ['key_ops verify twice', { key_ops: ['verify', 'verify'] }],
    ['key_ops a string', { key_ops: 'verify' }],
    ['ext "true"', { ext: 'true' }],
  ])('%s → 401 key_mismatch', async (_label, change) => {
    const verifier = createVerifier(base({ jwks: { keys: [{ ...key.jwk, ...change } as JWK] } }));
    expect(await verdict(() => verifier.verify(good))).toBe('401 key_mismatch');
    const jose = createLocalJWKSet({ keys: [{ ...key.jwk, ...change } as JWK] });
    await expect(jwtVerify(good, jose)).rejects.toThrow();
  });

  // SOUND: an ES384 header signed with a P-256 key (SHA-384 ECDSA) is refused, as RFC 7518 §3.4 fits them.
  it('alg ES384 over a P-256 key: key_mismatch; RS256 key used for PS256: key_mismatch', async () => {
    const p256as384 = { ...key, alg: 'ES384' };
    const token = await signRaw(
      p256as384,
      { alg: 'ES384', typ: 'at+jwt', kid: key.kid },
      m2mClaims(),
    );
    const { alg: _alg, ...noAlg } = key.jwk;
    expect(
      await verdict(() => createVerifier(base({ jwks: { keys: [noAlg] } })).verify(token)),
    ).toBe('401 key_mismatch');
    const rsa = await makeKey('PS256');
    const verifier = createVerifier(base({ jwks: { keys: [{ ...rsa.jwk, alg: 'RS256' }] } }));
    expect(await verdict(async () => verifier.verify(await mint(rsa)))).toBe('401 key_mismatch');
  });

  // SOUND: a PEM string holding a private key and then a public key: the public block is the key.
  it('a PEM with a private block first trusts the public key only', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verifier = createVerifier(
      base({ jwks: { keys: [pem(ec.privateKey, 'pkcs8') + pem(ec.publicKey, 'spki')] } }),
    );
    expect(await verdict(() => verifier.verify(good))).toMatch(/^401 /);
  });
});

// ─────────────────────────────── 5. Revocation and logto() ───────────────────────────────

describe('isRevoked', () => {
  // SOUND: only `false` admits; anything else but `true` is a 503, never an acceptance.
  it.each([
    ['true', () => true, '401 revoked'],
    ['Promise(true)', () => Promise.resolve(true), '401 revoked'],
    ['false', () => false, 'ok'],
    ['Promise(false)', () => Promise.resolve(false), 'ok'],
    ['"false"', () => 'false', '503 revocation_unavailable'],
    ['0', () => 0, '503 revocation_unavailable'],
    ['undefined', () => undefined, '503 revocation_unavailable'],
    ['null', () => null, '503 revocation_unavailable'],
    [
      'thenable',
      () => ({ then: (ok: (v: boolean) => void) => ok(false) }),
      '503 revocation_unavailable',
    ],
    ['Promise("false")', () => Promise.resolve('false'), '503 revocation_unavailable'],
    ['rejects', () => Promise.reject(new Error('down')), '503 revocation_unavailable'],
    [
      'throws',
      () => {
        throw new Error('down');
      },
      '503 revocation_unavailable',
    ],
    ['never answers', () => new Promise(() => undefined), '503 revocation_unavailable'],
  ])('%s → %s', async (_label, isRevoked, expected) => {
    const verifier = createVerifier(
      base({ isRevoked: isRevoked as never, revocationTimeout: 0.05 }),
    );
    for (let i = 0; i < 2; i++) {
      expect(await verdict(() => verifier.verify(good))).toBe(expected); // cached the second time
      expect(await kitVerdict(verifier, {}, good)).toBe(expected);
    }
  });

  // SOUND: a remembered "revoked" is never undone by a later "no"; the hook never sees the token enumerable.
  it('revocation goes one way through the memo; the token is not enumerable on what the hook gets', async () => {
    let revoked = true;
    const seen: AuthInfo[] = [];
    const verifier = createVerifier(
      base({
        revocationMemo: 60,
        isRevoked: (auth) => (seen.push(auth), revoked),
      }),
    );
    expect(await verdict(() => verifier.verify(good))).toBe('401 revoked');
    revoked = false;
    expect(await verdict(() => verifier.verify(good))).toBe('401 revoked');
    expect(JSON.stringify(seen[0])).not.toContain(good.split('.')[2] as string);
    expect(Object.keys(seen[0] as object)).not.toContain('token');
  });
});

describe('logto()', () => {
  const endpoint = 'https://tenant.logto.app';

  // SOUND: the issuer is written as Logto writes it; issuer/jwksUri cannot be smuggled in.
  it.each([
    [{ endpoint: 'https://Tenant.Logto.App' }, ['https://tenant.logto.app/oidc']],
    [{ endpoint: 'https://tenant.logto.app:443/' }, ['https://tenant.logto.app/oidc']],
    [
      { endpoint, customDomains: ['Auth.Example.com', 'https://auth2.example.com:8443'] },
      [
        'https://tenant.logto.app/oidc',
        'https://auth.example.com/oidc',
        'https://auth2.example.com:8443/oidc',
      ],
    ],
  ])('%j → issuers %j', (options, issuers) => {
    const resolved = logto({ ...options, audience: AUDIENCE } as never);
    expect(resolved.issuer).toEqual(issuers);
    expect(resolved.jwksUri).toBe('https://tenant.logto.app/oidc/jwks');
    expect(resolved.strict).toBe(true);
  });

  // SOUND: smuggled issuer/jwksUri, an endpoint with /oidc, a query or credentials, a custom domain
  // with a path, HS256, a route requirement: each a TypeError, never a looser verifier.
  it.each([
    { endpoint, audience: AUDIENCE, issuer: 'https://evil.example/oidc' },
    { endpoint, audience: AUDIENCE, jwksUri: 'https://evil.example/jwks' },
    { endpoint, audience: AUDIENCE, issuer: undefined },
    { endpoint: `${endpoint}/oidc`, audience: AUDIENCE },
    { endpoint: `${endpoint}/oidc/`, audience: AUDIENCE },
    { endpoint: `${endpoint}?tenant=x`, audience: AUDIENCE },
    { endpoint: 'https://u:p@tenant.logto.app', audience: AUDIENCE },
    { endpoint, audience: AUDIENCE, customDomains: ['auth.example.com/path'] },
    { endpoint, audience: AUDIENCE, customDomains: ['auth.example.com?x'] },
    { endpoint, audience: AUDIENCE, customDomains: 'auth.example.com' },
    { endpoint, audience: AUDIENCE, algorithms: ['HS256'] },
    { endpoint, audience: AUDIENCE, scopes: ['read'] },
  ])('%j → TypeError', (options) => {
    expect(() => createVerifier(logto(options as never))).toThrow(TypeError);
  });
});

// The same class, where the library copies options before passing them on: logto() copies its
// options for createVerifier, so a tightening its copy left out (a Proxy hiding `algorithms` from
// its own keys) was dropped. Refused now, as createVerifier and guard() refuse it.
describe('options read through a Proxy whose own keys hide a member: refused everywhere', () => {
  const hiding = (name: string, value: unknown, visible: Record<string, unknown>) =>
    new Proxy(visible, {
      getOwnPropertyDescriptor: (target, key) =>
        key === name
          ? { value, enumerable: true, configurable: true, writable: true }
          : Reflect.getOwnPropertyDescriptor(target, key),
      get: (target, key) => (key === name ? value : Reflect.get(target, key)),
    });
  it('logto(): a hidden `algorithms` is a TypeError, not dropped', () => {
    const options = hiding('algorithms', ['ES256'], {
      endpoint: 'https://tenant.logto.app',
      audience: AUDIENCE,
    });
    expect(() => logto(options as never)).toThrow(TypeError);
  });
  it('createVerifier(): a hidden `maxTokenAge` is a TypeError', () => {
    const options = hiding('maxTokenAge', 60, {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [] },
    });
    expect(() => createVerifier(options as never)).toThrow(/own keys/);
  });
  it('verify() per call: a hidden `scopes` is refused, never dropped', async () => {
    const requirements = hiding('scopes', ['admin'], {});
    expect(await verdict(() => v.verify(good, requirements as Requirements))).toBe('TypeError');
  });
});
