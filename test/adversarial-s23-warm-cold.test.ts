/**
 * Session 23: warm against cold, where the cache model (test/cache-model.test.ts) does not look.
 *
 * That model sends every request through `verify(token, { scopes })`, whose requirements are
 * resolved per call: the pass a verifier remembers "with the entry for the route that asked" is
 * never reused there, and it has no revocation hook, no `checks`, no organization, no DPoP, no
 * optional route. Here a model-based property (fast-check `commands`) drives ONE long-lived
 * verifier with its cache (warm) through any interleaving of:
 *
 * - requests on 18 routes (scopes all/any/none-of-none, machine, organization, anyOrganization,
 *   claim rules, sync and async `checks`, optional, DPoP allowed/required/disabled), through
 *   `guard(req)`, `guard(req, { organization })`, the adapter kit (synchronous when it can be),
 *   `verify()` and `authenticate()`, with Bearer, DPoP (the bound key's proof or another key's),
 *   DPoP without a proof, no credentials, Basic, and an empty Bearer;
 * - 20 tokens: M2M, user, organization-level API, organization tokens, DPoP-bound (to each of two
 *   keys), `cnf` of another kind, nbf in the future, expired, expiring within the run, signed by a
 *   foreign key under our kid, RSA (verified inline), no `kid` (never cached), TWO VALID Ed25519
 *   tokens whose short keys collide (the cache's 30-bit hash of the last 12 characters), and
 *   forgeries sharing a valid token's signature tail or differing from it only before / within
 *   its last 12 characters;
 * - bursts of concurrent requests on several routes (and bursts of one token on many routes, and
 *   of the colliding pair and the forgeries), the clock moving by seconds or milliseconds, stepped
 *   back, or put just before/after a token's `exp`, `nbf` or `iat + maxTokenAge`; a revocation
 *   hook (sync, async, or throwing) whose answer changes; `checks` whose answer changes; "twice"
 *   sequences (the same request twice, so a pass is remembered, then the world changes: a check
 *   says no, the token is revoked, time passes; then the same request and another route); the
 *   caller loosening the requirement objects its guards were built from; DPoP proofs replayed; a
 *   key leaving (or coming back to) the JWKS.
 *
 * Three oracles for every request: a long-lived verifier WITHOUT the cache fed the same traffic
 * (lockstep: the only difference is the cache), a BRAND-NEW verifier built for that request from
 * the pristine requirements (cold), and a by-the-book reading of the token's claims (never
 * looser: an `ok` must be one the claims, the clock, the denylist and the route allow).
 *
 * Runs four configurations (no hook: route passes are remembered; a hook asked on every
 * request; a hook with `revocationMemo` (sync hook; the memo's documented reuse exempts it from the
 * brand-new oracle once the denylist changed); request-scoped with `maxTokenAge` and a 3-entry
 * cache), 40 sequences of up to 50 commands each, seed 2323 (`S23_RUNS` / `FUZZ_SEED` override).
 * Plain scenarios below replay the same attacks step by step. Where a brand-new verifier may
 * legitimately differ (a key changed and the long-lived set has not refreshed yet; DPoP after a
 * clock stepped back, where a warm verifier is documented to be stricter), only the lockstep
 * oracle and the book apply.
 */
import { createPrivateKey, sign } from 'node:crypto';
import fc from 'fast-check';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, MemoryReplayStore } from 'resource-guard';
import type {
  AuthInfo,
  Requirements,
  RequestLike,
  Verifier,
  VerifierOptions,
} from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import { createTestIssuer } from 'resource-guard/testing';
import type { TestIssuer } from 'resource-guard/testing';
import type { Outcome, RouteGuard, RouteOptions } from 'resource-guard/kit';
import { shortKey } from '../src/token-key.ts';
import { dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

const RUNS = Number(process.env.S23_RUNS ?? 40);
const SEED = Number(process.env.FUZZ_SEED ?? 2323);
const JWKS_URI = 'https://issuer.s23.test/oidc/jwks';
/** A fixed epoch (2031-01-01): the two colliding Ed25519 tokens below are fixed bytes. */
const START = 1_924_992_000_000;
const T0 = START / 1000;
const TOLERANCE = 5;
const ORG_AUD = 'urn:logto:organization:';

// ---------------------------------------------------------------------------------------------
// Two valid tokens with the same short key. Ed25519 signatures are deterministic: with this fixed
// key and these fixed claims, jti `w-1008` and `r-5044` were found (birthday search, once) to
// share the 30-bit hash the cache and the in-flight map find a token by.
// ---------------------------------------------------------------------------------------------
const ED_JWK = {
  kty: 'OKP',
  crv: 'Ed25519',
  d: 'g7hkICJ-CdltVhK3dCVveG7PersttKmrrhDoTiyhd3A',
  x: 'RzgZ6bSS1pgPbEwZhky1zCNfsjFEXEBo8ilucGRBmXY',
};
const ED_PUBLIC: JWK = { kty: 'OKP', crv: 'Ed25519', x: ED_JWK.x, kid: 'ed-fixed', alg: 'EdDSA' };

function edToken(tag: 'w' | 'r', i: number): string {
  const header = b64url(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-fixed' }));
  const claims = {
    jti: `${tag}-${i}`,
    sub: 'app-123',
    client_id: 'app-123',
    iat: T0,
    exp: T0 + 100_000,
    scope: tag === 'w' ? 'read:products write:products' : 'read:products',
    iss: ISSUER,
    aud: AUDIENCE,
  };
  const input = `${header}.${b64url(JSON.stringify(claims))}`;
  const key = createPrivateKey({ key: ED_JWK, format: 'jwk' });
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

// ---------------------------------------------------------------------------------------------
// Routes: factories, so each system gets its own objects (the caller may mutate them later).
// ---------------------------------------------------------------------------------------------
interface World {
  published: JWK[];
  revoked: Set<string>;
  hookAsync: boolean;
  /** The revocation hook throws: every request must fail closed (503), cached token or not. */
  hookDown: boolean;
  /** The denylist or the hook changed once (a memo may answer as before, as documented). */
  hookChanged: boolean;
  checkOk: boolean;
  /** A key left or came back: a brand-new verifier sees the change before a long-lived one. */
  keysChanged: boolean;
  /** The clock went back once: DPoP's "accepted at" memory makes a warm verifier stricter. */
  steppedBack: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Spec = Requirements;
const ROUTES: readonly ((world: World) => Spec)[] = [
  () => ({}),
  () => ({ optional: true }),
  () => ({ scopes: ['read:products'] }),
  () => ({ scopes: ['write:products'] }),
  () => ({ scopes: ['read:products', 'write:products'] }),
  () => ({ scopes: ['write:products', 'admin'], any: true }),
  () => ({ machine: true, scopes: ['read:products'] }),
  () => ({ organization: 'o1' }),
  () => ({ organization: 'o2', scopes: ['read:products'] }),
  () => ({ anyOrganization: true, scopes: ['read:products'] }),
  () => ({ anyOrganization: true, optional: true }),
  () => ({ claimEquals: { tier: 'gold' } }),
  () => ({ claimIncludes: { roles: ['admin'] } }),
  (w) => ({ checks: { flag: () => w.checkOk } }),
  (w) => ({
    scopes: ['read:products'],
    checks: { slow: async () => (await sleep(1), w.checkOk) },
  }),
  () => ({ dpop: 'required', scopes: ['read:products'] }),
  () => ({ dpop: 'disabled', optional: true }),
  () => ({ scopes: [], any: true }), // any one of none: admits no token
];

/** What a caller might do to the object it built a guard from: loosen everything it can. */
function loosen(spec: Spec): void {
  const o = spec as Record<string, unknown>;
  const scopes = o.scopes as string[] | undefined;
  if (scopes !== undefined) scopes.length = 0;
  o.any = false;
  o.machine = false;
  delete o.organization;
  o.anyOrganization = true;
  o.optional = true;
  if (o.dpop !== undefined) o.dpop = 'allowed';
  const equals = o.claimEquals as Record<string, unknown> | undefined;
  if (equals !== undefined) delete equals.tier;
  const includes = o.claimIncludes as Record<string, string[]> | undefined;
  if (includes !== undefined) includes.roles!.length = 0;
  const checks = o.checks as Record<string, () => boolean> | undefined;
  if (checks !== undefined) for (const name of Object.keys(checks)) checks[name] = () => true;
}

/** The kit's options for a route: an organization route names it through a function. */
function kitOptions(spec: Spec): RouteOptions<unknown> {
  const { organization, ...rest } = spec;
  return organization === undefined ? rest : { ...rest, organization: () => organization };
}

// ---------------------------------------------------------------------------------------------
// Tokens.
// ---------------------------------------------------------------------------------------------
interface TokenInfo {
  readonly token: string;
  /** The claims, when the token is genuine (signed by a published key); else undefined. */
  readonly claims: Record<string, unknown> | undefined;
  /** Which issuer key signed it ('rs' may leave the JWKS). */
  readonly key: 'es' | 'rs' | 'ed' | 'none';
}

let es: TestKey;
let rs: TestKey;
let foreign: TestKey;
let p1: ProofKey;
let p2: ProofKey;
let tokens: TokenInfo[];

async function buildTokens(): Promise<TokenInfo[]> {
  const claimsOf = (token: string) =>
    JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
  const genuine = async (key: TestKey, claims: Record<string, unknown>, header = {}) => {
    const token = await mint(key, claims, header);
    return { token, claims: claimsOf(token), key: key === es ? 'es' : 'rs' } as TokenInfo;
  };
  const rw = 'read:products write:products';
  const list: TokenInfo[] = [
    /* 0 */ await genuine(es, m2mClaims({ scope: rw, exp: T0 + 90_000 })),
    /* 1 */ await genuine(es, m2mClaims({ scope: 'read:products', exp: T0 + 60 })),
    /* 2 */ await genuine(
      es,
      m2mClaims({
        sub: 'user-1',
        client_id: 'spa',
        scope: 'read:products admin',
        roles: ['admin', 'x'],
        tier: 'gold',
        exp: T0 + 90_000,
      }),
    ),
    /* 3 */ await genuine(
      es,
      m2mClaims({ organization_id: 'o1', scope: 'read:products', exp: T0 + 90_000 }),
    ),
    /* 4 */ await genuine(
      es,
      m2mClaims({ aud: `${ORG_AUD}o1`, scope: 'read:products', exp: T0 + 90_000 }),
    ),
    /* 5 */ await genuine(es, m2mClaims({ aud: `${ORG_AUD}o2`, scope: '', exp: T0 + 90_000 })),
    /* 6 */ await genuine(
      es,
      m2mClaims({ aud: [AUDIENCE, `${ORG_AUD}o1`], scope: rw, exp: T0 + 90_000 }),
    ),
    /* 7 */ await genuine(
      es,
      m2mClaims({ cnf: { jkt: p1.jkt }, scope: 'read:products', exp: T0 + 90_000 }),
    ),
    /* 8 */ await genuine(es, m2mClaims({ cnf: { jkt: p2.jkt }, scope: rw, exp: T0 + 120 })),
    /* 9 */ await genuine(es, m2mClaims({ cnf: { 'x5t#S256': 'abc' }, exp: T0 + 90_000 })),
    /* 10 */ await genuine(es, m2mClaims({ nbf: T0 + 60, exp: T0 + 90_000 })),
    /* 11 */ await genuine(es, m2mClaims({ iat: T0 - 3600, exp: T0 - 10 })),
    /* 12 */ {
      token: await mint(foreign, m2mClaims({ exp: T0 + 90_000 }), { kid: es.kid }),
      claims: undefined,
      key: 'none',
    },
    /* 13 */ await genuine(rs, m2mClaims({ scope: rw, tier: 'gold', exp: T0 + 90_000 })),
    /* 14 */ { token: edToken('w', 1008), claims: undefined, key: 'ed' },
    /* 15 */ { token: edToken('r', 5044), claims: undefined, key: 'ed' },
  ];
  list[14] = { ...list[14]!, claims: claimsOf(list[14]!.token) };
  list[15] = { ...list[15]!, claims: claimsOf(list[15]!.token) };
  const [h0, p0, s0] = list[0]!.token.split('.') as [string, string, string];
  const [h2, p2seg] = list[2]!.token.split('.') as [string, string];
  const flip = (text: string, at: number) =>
    `${text.slice(0, at)}${text[at] === 'A' ? 'B' : 'A'}${text.slice(at + 1)}`;
  const forged = (token: string): TokenInfo => ({ token, claims: undefined, key: 'none' });
  list.push(
    /* 16 */ forged(`${h2}.${p2seg}.${s0}`), // another token's claims, token 0's signature (tail)
    /* 17 */ forged(`${h0}.${flip(p0, 20)}.${s0}`), // differs from token 0 before its tail only
    /* 18 */ forged(`${h0}.${p0}.${flip(s0, s0.length - 6)}`), // differs within its last 12
    /* 19 */ await genuine(es, m2mClaims({ scope: rw, exp: T0 + 90_000 }), { kid: undefined }),
  );
  return list;
}

// ---------------------------------------------------------------------------------------------
// The systems under test.
// ---------------------------------------------------------------------------------------------
interface Config {
  readonly name: string;
  readonly hook: boolean;
  readonly memo: number;
  readonly requestScoped?: boolean;
  /** `maxTokenAge`, and a tiny cache (evictions, replaced entries). */
  readonly maxTokenAge?: number;
}

interface Side {
  readonly verifier: Verifier;
  readonly guards: ReturnType<Verifier['guard']>[];
  readonly kits: RouteGuard<unknown, AuthInfo | undefined>[];
  /** The last DPoP request this side accepted: its proof, to replay. */
  lastAccepted: { token: string; proof: string } | undefined;
}

interface Real {
  readonly world: World;
  readonly config: Config;
  readonly options: VerifierOptions;
  /** The objects the guards were built from: the caller's, which it may mutate. */
  readonly given: Spec[];
  readonly warm: Side;
  readonly lockstep: Side;
}

type Model = Record<string, never>;

function optionsFor(world: World, config: Config): VerifierOptions {
  const fetch = async () => {
    fetching++;
    try {
      await sleep(0);
      return Response.json({ keys: world.published });
    } finally {
      fetching--;
    }
  };
  const isRevoked = (auth: AuthInfo) => {
    if (world.hookDown) throw new Error('the denylist is down');
    const revoked = world.revoked.has(auth.claims.jti as string);
    return world.hookAsync && config.memo === 0 ? sleep(1).then(() => revoked) : revoked;
  };
  return {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: JWKS_URI,
    organizations: true,
    keys: { maxAge: 60, maxStale: 120, cooldown: 5 },
    fetch,
    // A store of its own: the runs step the clock back, and the default store (one per process)
    // judges a proof too old by the latest time any verifier asked it.
    dpop: { origin: ORIGIN, replay: new MemoryReplayStore() },
    requestScoped: config.requestScoped === true,
    ...(config.maxTokenAge === undefined
      ? {}
      : { maxTokenAge: config.maxTokenAge, cache: { maxEntries: 3 } }),
    ...(config.hook ? { isRevoked, revocationMemo: config.memo } : {}),
  };
}

function side(options: VerifierOptions, given: Spec[]): Side {
  const verifier = createVerifier(options);
  return {
    verifier,
    guards: given.map((spec) => verifier.guard(spec)),
    kits: given.map((spec) => routeGuard(verifier, kitOptions(spec))),
    lastAccepted: undefined,
  };
}

function system(config: Config): Real {
  const world: World = {
    published: [es.jwk, rs.jwk, ED_PUBLIC],
    revoked: new Set(),
    hookAsync: false,
    hookDown: false,
    hookChanged: false,
    checkOk: true,
    keysChanged: false,
    steppedBack: false,
  };
  const options = optionsFor(world, config);
  const given = ROUTES.map((route) => route(world));
  return {
    world,
    config,
    options,
    given,
    warm: side(options, given),
    lockstep: side({ ...options, cache: false }, given),
  };
}

// ---------------------------------------------------------------------------------------------
// One request, and its answer as a string: `ok <jti>`, `anon`, `<status> <reason>`, or a throw.
// ---------------------------------------------------------------------------------------------
type Via = 'guard' | 'guardOrg' | 'kit' | 'verify' | 'authenticate';
type Scheme = 'bearer' | 'dpop1' | 'dpop2' | 'dpopAth' | 'dpopBare' | 'none' | 'basic' | 'empty';

interface Step {
  readonly r: number;
  readonly t: number;
  readonly via: Via;
  readonly scheme: Scheme;
  readonly org: string | undefined;
}

const show = (step: Step) =>
  `route ${step.r} token ${step.t} via ${step.via} scheme ${step.scheme} org ${step.org}`;

const toAnswer = (value: unknown): string =>
  value === undefined ? 'anon' : `ok ${String((value as AuthInfo).claims.jti)}`;

function fromError(error: unknown): string {
  if (error instanceof AuthError) return `${error.status} ${error.reason}`;
  return `throw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
}

const answer = (promise: Promise<unknown>): Promise<string> => promise.then(toAnswer, fromError);

const KIT: Outcome<string, AuthInfo | undefined> = {
  pass: (auth) => toAnswer(auth),
  respond: (error) => fromError(error),
  fail: (error) => fromError(error),
};

/** A request for `step`, with a fresh proof of its own (every verifier gets another proof). */
async function requestFor(step: Step): Promise<{ request: RequestLike; proof?: string }> {
  const token = tokens[step.t]!.token;
  const base = { method: 'GET', url: '/products' };
  switch (step.scheme) {
    case 'bearer':
      return { request: { ...base, headers: { authorization: `Bearer ${token}` } } };
    case 'dpop1':
    case 'dpop2': {
      const key = step.scheme === 'dpop1' ? p1 : p2;
      const signed = await proof(key, 'GET', `${ORIGIN}/products`, token);
      return { request: dpopRequest(token, signed), proof: signed };
    }
    case 'dpopAth': {
      // The bound key's proof, made for another token (its `ath`): a stolen proof reused.
      const signed = await proof(p1, 'GET', `${ORIGIN}/products`, tokens[0]!.token);
      return { request: dpopRequest(token, signed), proof: signed };
    }
    case 'dpopBare':
      return { request: dpopRequest(token, undefined) };
    case 'none':
      return { request: { ...base, headers: {} } };
    case 'basic':
      return { request: { ...base, headers: { authorization: 'Basic YWxhZGRpbjpzZXNhbWU=' } } };
    case 'empty':
      return { request: { ...base, headers: { authorization: 'Bearer ' } } };
  }
}

/** `verify()` takes a token: the credential-less schemes give it an empty string. */
const verifyArgument = (step: Step): string =>
  ['none', 'basic', 'empty'].includes(step.scheme) ? '' : tokens[step.t]!.token;

/** Sends `step` to `s`: through its long-lived guard, kit route, or per-call requirements. */
async function send(
  s: Side,
  step: Step,
  pristine: () => Spec,
): Promise<{ answer: string; proof?: string | undefined }> {
  if (step.via === 'verify') {
    return { answer: await answer(s.verifier.verify(verifyArgument(step), pristine())) };
  }
  const { request, proof: signed } = await requestFor(step);
  let result: string;
  switch (step.via) {
    case 'guard':
      result = await answer(s.guards[step.r]!(request));
      break;
    case 'guardOrg':
      result = await answer(s.guards[step.r]!(request, { organization: step.org }));
      break;
    case 'kit':
      result = await s.kits[step.r]!.run(request, request, KIT);
      break;
    case 'authenticate':
      result = await answer(s.verifier.authenticate(request, pristine()));
      break;
  }
  if (signed !== undefined && result.startsWith('ok')) {
    s.lastAccepted = { token: tokens[step.t]!.token, proof: signed };
  }
  return { answer: result, proof: signed };
}

/** A brand-new verifier (same options, same world, same clock) answers `step` once. */
async function cold(real: Real, step: Step): Promise<string> {
  const pristine = () => ROUTES[step.r]!(real.world);
  const fresh = createVerifier(real.options);
  const s: Side = {
    verifier: fresh,
    guards: ROUTES.map((_, i) => (i === step.r ? fresh.guard(pristine()) : fresh.guard())),
    kits: ROUTES.map((_, i) => routeGuard(fresh, i === step.r ? kitOptions(pristine()) : {})),
    lastAccepted: undefined,
  };
  return (await send(s, step, pristine)).answer;
}

/**
 * By the book: may `step` be answered `ok`, and may it be answered `anon`? From the claims, the
 * clock, the world and the PRISTINE route, independently of the library.
 */
function book(real: Real, step: Step): { ok: boolean; anon: boolean } {
  const spec = ROUTES[step.r]!(real.world);
  const { world, config } = real;
  const mode = spec.dpop ?? 'allowed';
  const guardLike = step.via !== 'verify';
  const dpopScheme = step.scheme.startsWith('dpop');
  const noCredentials =
    step.scheme === 'none' || step.scheme === 'basic' || (dpopScheme && mode === 'disabled');
  const anon = guardLike && spec.optional === true && noCredentials;
  const info = tokens[step.t]!;
  const c = info.claims;
  if (c === undefined) return { ok: false, anon };
  if (step.scheme === 'none' || step.scheme === 'basic' || step.scheme === 'empty') {
    return { ok: false, anon };
  }
  if (info.key === 'rs' && !world.keysChanged && !world.published.includes(rs.jwk)) {
    return { ok: false, anon };
  }
  const now = Date.now() / 1000;
  if (!((c.exp as number) > now - TOLERANCE)) return { ok: false, anon };
  if (typeof c.nbf === 'number' && c.nbf > now + TOLERANCE) return { ok: false, anon };
  if ((c.iat as number) > now + TOLERANCE) return { ok: false, anon };
  const maxAge = config.maxTokenAge;
  if (maxAge !== undefined && now - (c.iat as number) - TOLERANCE > maxAge) {
    return { ok: false, anon };
  }
  if (config.hook && world.hookDown && !(config.memo > 0)) return { ok: false, anon };
  if (config.hook && config.memo === 0 && world.revoked.has(c.jti as string)) {
    return { ok: false, anon };
  }
  const cnf = c.cnf as Record<string, unknown> | undefined;
  if (!guardLike || step.scheme === 'bearer') {
    if (cnf !== undefined || mode === 'required') {
      return { ok: false, anon };
    }
  } else {
    // A DPoP request: a route that accepts DPoP, a proof, by the key the token is bound to.
    const jkt = step.scheme === 'dpop1' ? p1.jkt : step.scheme === 'dpop2' ? p2.jkt : undefined;
    if (mode === 'disabled' || jkt === undefined) return { ok: false, anon };
    if (cnf === undefined || Object.keys(cnf).join() !== 'jkt' || cnf.jkt !== jkt) {
      return { ok: false, anon };
    }
  }
  const aud = [c.aud].flat() as string[];
  const api = aud.includes(AUDIENCE);
  const orgAuds = aud.filter((a) => a.startsWith(ORG_AUD)).map((a) => a.slice(ORG_AUD.length));
  const tokenOrg = (c.organization_id as string | undefined) ?? orgAuds[0];
  const named =
    step.via === 'guardOrg' ? (typeof step.org === 'string' ? step.org : '') : spec.organization;
  if (named === undefined) {
    const global = tokenOrg === undefined && api;
    const anyOrg = tokenOrg !== undefined && tokenOrg !== '' && spec.anyOrganization === true;
    if (!global && !anyOrg) return { ok: false, anon };
  } else {
    if (named === '') return { ok: false, anon };
    const matches = api ? c.organization_id === named : aud.includes(`${ORG_AUD}${named}`);
    if (!matches) return { ok: false, anon };
  }
  if (spec.machine === true && !(c.client_id !== undefined && c.sub === c.client_id)) {
    return { ok: false, anon };
  }
  const granted = typeof c.scope === 'string' ? c.scope.split(' ').filter(Boolean) : [];
  if (spec.scopes !== undefined) {
    const has = (s: string) => granted.includes(s);
    const met = spec.any === true ? spec.scopes.some(has) : spec.scopes.every(has);
    if (!met) return { ok: false, anon };
  }
  for (const [claim, value] of Object.entries(spec.claimEquals ?? {})) {
    if (c[claim] !== value) return { ok: false, anon };
  }
  for (const [claim, values] of Object.entries(spec.claimIncludes ?? {})) {
    const actual = c[claim];
    const list = Array.isArray(actual)
      ? actual
      : typeof actual === 'string'
        ? actual.split(' ')
        : [];
    if (!values.every((v) => list.includes(v))) return { ok: false, anon };
  }
  if (spec.checks !== undefined && !world.checkOk) return { ok: false, anon };
  return { ok: true, anon };
}

/** JWKS requests under way, across every verifier of the process. */
let fetching = 0;

/** Lets background refreshes and slow hooks land (they run on real timers). */
async function settle(): Promise<void> {
  await sleep(3);
  if (fetching === 0) return;
  while (fetching > 0) await sleep(1);
  await sleep(2); // the set is installed a few turns after the answer
}

/** The three oracles, for an answer the warm verifier gave (and the lockstep one). */
async function judge(
  real: Real,
  step: Step,
  warm: string,
  lockstep: string | undefined,
): Promise<void> {
  if (lockstep !== undefined) {
    expect(warm, `warm vs lockstep (no cache): ${show(step)}`).toBe(lockstep);
  }
  expect(warm, `an unexpected throw: ${show(step)}`).not.toMatch(/^throw /);
  const rules = book(real, step);
  if (warm.startsWith('ok')) {
    expect(rules.ok, `accepted against the book: ${show(step)} → ${warm}`).toBe(true);
    expect(warm, `another token's answer: ${show(step)}`).toBe(
      `ok ${String(tokens[step.t]!.claims?.jti)}`,
    );
  }
  if (warm === 'anon') expect(rules.anon, `anonymous against the book: ${show(step)}`).toBe(true);
  if (real.world.keysChanged || lockstep === undefined) return;
  // Memo: a remembered answer is documented to be reused for revocationMemo, through a
  // revocation, an unrevocation or the hook going down: a brand-new verifier has no memo.
  if (real.config.memo > 0 && real.world.hookChanged) return;
  const fresh = await cold(real, step);
  if (step.scheme.startsWith('dpop') && real.world.steppedBack) {
    // Documented: a warm DPoP verifier remembers when it last accepted a proof (stricter only).
    if (warm.startsWith('ok')) expect(fresh, `cold vs warm: ${show(step)}`).toBe(warm);
    return;
  }
  expect(warm, `warm vs a brand-new verifier: ${show(step)}`).toBe(fresh);
}

// ---------------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------------
class Request implements fc.AsyncCommand<Model, Real> {
  constructor(readonly step: Step) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const pristine = () => ROUTES[this.step.r]!(real.world);
    const warm = await send(real.warm, this.step, pristine);
    const lockstep = await send(real.lockstep, this.step, pristine);
    await judge(real, this.step, warm.answer, lockstep.answer);
    await settle();
  }
  toString = () => `request(${JSON.stringify(this.step)})`;
}

/** Concurrent requests on several routes: first sightings racing each other and repeats. */
class Burst implements fc.AsyncCommand<Model, Real> {
  constructor(readonly steps: readonly Step[]) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const go = (s: Side) =>
      this.steps.map((step) => send(s, step, () => ROUTES[step.r]!(real.world)));
    const [warm, lockstep] = await Promise.all([
      Promise.all(go(real.warm)),
      Promise.all(go(real.lockstep)),
    ]);
    await settle();
    // After a key left, a refresh may land mid-burst: answers during the race may go either way
    // (the book still holds); afterwards each request is answered as without the cache.
    const racing = real.world.keysChanged;
    for (let i = 0; i < this.steps.length; i++) {
      await judge(real, this.steps[i]!, warm[i]!.answer, racing ? undefined : lockstep[i]!.answer);
    }
    if (racing) for (const step of this.steps) await new Request(step).run({}, real);
  }
  toString = () => `burst(${JSON.stringify(this.steps)})`;
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly seconds: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    vi.setSystemTime(Date.now() + this.seconds * 1000);
    if (this.seconds < 0) real.world.steppedBack = true;
    await settle();
  }
  toString = () => `advance(${this.seconds})`;
}

class Revoke implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly t: number,
    readonly revoked: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const jti = tokens[this.t]!.claims?.jti as string | undefined;
    if (jti === undefined) return;
    if (this.revoked) real.world.revoked.add(jti);
    else real.world.revoked.delete(jti);
    real.world.hookChanged = true;
  }
  toString = () => `${this.revoked ? 'revoke' : 'unrevoke'}(${this.t})`;
}

class Flip implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly what: 'checkOk' | 'hookAsync' | 'hookDown',
    readonly value: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    real.world[this.what] = this.value;
    if (this.what === 'hookDown') real.world.hookChanged = true;
  }
  toString = () => `${this.what}(${this.value})`;
}

/** The caller loosens the object it built route `r` from: its guards must not notice. */
class Mutate implements fc.AsyncCommand<Model, Real> {
  constructor(readonly r: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    loosen(real.given[this.r]!);
  }
  toString = () => `mutate(${this.r})`;
}

/** A proof accepted before, sent again in a new request: never accepted twice. */
class Replay implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, real: Real) {
    const replay = async (s: Side) => {
      if (s.lastAccepted === undefined) return 'none';
      const request = dpopRequest(s.lastAccepted.token, s.lastAccepted.proof);
      return answer(s.guards[0]!(request));
    };
    const warm = await replay(real.warm);
    const lockstep = await replay(real.lockstep);
    expect(warm, 'a replay, warm vs lockstep').toBe(lockstep);
    expect(warm.startsWith('ok'), `a replayed proof was accepted: ${warm}`).toBe(false);
  }
  toString = () => 'replay()';
}

/** The RSA key leaves the JWKS (or comes back): only the lockstep oracle still applies. */
class Rotate implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, real: Real) {
    const { world } = real;
    world.keysChanged = true;
    world.published = world.published.includes(rs.jwk)
      ? world.published.filter((k) => k !== rs.jwk)
      : [...world.published, rs.jwk];
  }
  toString = () => 'rotate()';
}

/** Tokens that pass somewhere (drawn more often: a leak needs a pass to leak). */
const GOOD = [0, 1, 2, 3, 4, 6, 7, 8, 13, 14, 15, 19];
const tokenArb = fc.oneof(
  { arbitrary: fc.constantFrom(...GOOD), weight: 3 },
  { arbitrary: fc.nat({ max: 19 }), weight: 1 },
);

/** Moves the clock to a token's edge: `exp` (or `nbf`), plus or minus a few seconds. */
class ToEdge implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly t: number,
    readonly which: 'exp' | 'nbf' | 'iat' | 'age',
    readonly offsetMs: number,
  ) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    const claims = tokens[this.t]!.claims!;
    const maxAge = real.config.maxTokenAge;
    const at =
      this.which === 'nbf'
        ? (claims.nbf as number)
        : this.which === 'iat'
          ? (claims.iat as number) - TOLERANCE
          : this.which === 'exp'
            ? (claims.exp as number)
            : maxAge === undefined
              ? (tokens[1]!.claims!.exp as number) // no maxTokenAge: the short-lived token's exp
              : (claims.iat as number) + maxAge;
    const edge = at * 1000;
    const target = edge + this.offsetMs;
    if (target < Date.now()) real.world.steppedBack = true;
    vi.setSystemTime(target);
    await settle();
  }
  toString = () => `toEdge(${this.t}, ${this.which}, ${this.offsetMs})`;
}

/**
 * A request, a change of the world (a check's answer, the denylist, the clock), then the same
 * request again (a pass remembered with the entry must not outlive the change) and the same token
 * on another route.
 */
class Twice implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly step: Step,
    readonly change: fc.AsyncCommand<Model, Real>,
    readonly other: number,
    readonly before?: fc.AsyncCommand<Model, Real>,
  ) {}
  check = () => true;
  async run(m: Model, real: Real) {
    await this.before?.run(m, real);
    await new Request(this.step).run(m, real);
    await new Request(this.step).run(m, real);
    await this.change.run(m, real);
    await new Request(this.step).run(m, real);
    await new Request({ ...this.step, r: this.other }).run(m, real);
  }
  toString = () =>
    `twice(${JSON.stringify(this.step)}, ${String(this.change)}, ${this.other}, ${String(this.before)})`;
}

/** The two valid tokens that share a short key (and forgeries of a tail), all at once. */
class Collide implements fc.AsyncCommand<Model, Real> {
  constructor(readonly steps: readonly Step[]) {}
  check = () => true;
  async run(m: Model, real: Real) {
    await new Burst(this.steps).run(m, real);
  }
  toString = () => `collide(${JSON.stringify(this.steps)})`;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  r: fc.nat({ max: ROUTES.length - 1 }),
  t: tokenArb,
  via: fc.constantFrom<Via>('guard', 'guard', 'kit', 'guardOrg', 'verify', 'authenticate'),
  scheme: fc.constantFrom<Scheme>(
    'bearer',
    'bearer',
    'bearer',
    'bearer',
    'bearer',
    'dpop1',
    'dpop1',
    'dpop2',
    'dpopAth',
    'dpopBare',
    'none',
    'basic',
    'empty',
  ),
  org: fc.constantFrom('o1', 'o2', undefined),
});

/** A focused step: one token on many routes (where a remembered pass could leak). */
const focusedArb = (t: number) => stepArb.map((step) => ({ ...step, t }));

const commands = [
  stepArb.map((step) => new Request(step)),
  stepArb.map((step) => new Request(step)),
  tokenArb.chain((t) => focusedArb(t).map((step) => new Request(step))),
  fc.array(stepArb, { minLength: 2, maxLength: 8 }).map((steps) => new Burst(steps)),
  fc
    .tuple(tokenArb, fc.nat({ max: 5 }))
    .chain(([t, n]) =>
      fc.array(focusedArb(t), { minLength: 2, maxLength: 3 + n }).map((s) => new Burst(s)),
    ),
  fc.integer({ min: 1, max: 90 }).map((s) => new Advance(s)),
  fc.integer({ min: 1, max: 20 }).map((s) => new Advance(s)),
  fc.integer({ min: -40, max: -1 }).map((s) => new Advance(s)),
  fc.integer({ min: -3000, max: 3000 }).map((ms) => new Advance(ms / 1000)), // near an edge
  fc.tuple(tokenArb, fc.boolean()).map(([t, on]) => new Revoke(t, on)),
  fc.boolean().map((v) => new Flip('checkOk', v)),
  fc.boolean().map((v) => new Flip('hookAsync', v)),
  fc.boolean().map((v) => new Flip('hookDown', v)),
  fc.nat({ max: ROUTES.length - 1 }).map((r) => new Mutate(r)),
  fc.constant(new Replay()),
  fc.constant(new Rotate()),
  fc
    .tuple(
      fc.constantFrom<[number, 'exp' | 'nbf' | 'iat' | 'age']>(
        [1, 'exp'],
        [8, 'exp'],
        [11, 'exp'],
        [10, 'nbf'],
        [14, 'iat'],
        [15, 'iat'],
        [0, 'iat'],
        [0, 'age'],
        [14, 'age'],
      ),
      fc.integer({ min: -8000, max: 8000 }),
    )
    .map(([[t, which], ms]) => new ToEdge(t, which, ms)),
  fc
    .tuple(
      fc
        .tuple(
          focusedArb(0),
          fc.constantFrom(...GOOD, 10),
          fc.oneof(fc.constantFrom(13, 14), fc.nat({ max: ROUTES.length - 1 })),
          fc.constantFrom<Via>('guard', 'kit'),
        )
        .map(([step, t, r, via]) => ({ ...step, t, r, via })),
      fc.oneof(
        fc.constant(null).map(() => new Flip('checkOk', false) as fc.AsyncCommand<Model, Real>),
        fc.integer({ min: 1, max: 120 }).map((s) => new Advance(s)),
      ),
      fc.nat({ max: ROUTES.length - 1 }),
    )
    .map(([step, change, other]) => new Twice(step, change, other, new Flip('checkOk', true))),
  fc
    .tuple(
      fc
        .tuple(focusedArb(0), fc.constantFrom(...GOOD), fc.constantFrom<Via>('guard', 'kit'))
        .map(([step, t, via]) => ({ ...step, t, via })),
      fc.nat({ max: ROUTES.length - 1 }),
    )
    .map(([step, other]) => new Twice(step, new Revoke(step.t, true), other)),
  fc
    .array(
      fc.record({
        r: fc.nat({ max: ROUTES.length - 1 }),
        t: fc.constantFrom(14, 15, 14, 15, 0, 16, 17, 18),
        via: fc.constantFrom<Via>('guard', 'kit', 'verify'),
        scheme: fc.constant<Scheme>('bearer'),
        org: fc.constant(undefined),
      }),
      { minLength: 2, maxLength: 6 },
    )
    .map((steps) => new Collide(steps)),
];

const CONFIGS: readonly Config[] = [
  { name: 'no revocation hook: route passes are remembered', hook: false, memo: 0 },
  { name: 'a revocation hook asked on every request', hook: true, memo: 0 },
  { name: 'a revocation hook with revocationMemo: 3', hook: true, memo: 3 },
  {
    name: 'request-scoped, maxTokenAge, a 3-entry cache, no hook',
    hook: false,
    memo: 0,
    requestScoped: true,
    maxTokenAge: 400,
  },
];

beforeAll(async () => {
  // Minted five minutes before the run starts (iat), so a clock stepped back has room.
  vi.useFakeTimers({ toFake: ['Date'], now: START - 300_000 });
  [es, rs, foreign, p1, p2] = await Promise.all([
    makeKey('ES256', 'es'),
    makeKey('RS256', 'rs'),
    makeKey('ES256', 'es'),
    makeProofKey(),
    makeProofKey(),
  ]);
  tokens = await buildTokens();
  vi.setSystemTime(START);
});
afterAll(() => vi.useRealTimers());

describe.each(CONFIGS)('warm answers as cold, route by route ($name)', (config) => {
  it(
    'over any interleaving of routes, tokens, schemes, bursts, time, hooks and mutations',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.commands(commands, { maxCommands: 50, size: 'large' }),
          async (cmds) => {
            vi.setSystemTime(START);
            const real = system(config);
            await fc.asyncModelRun(() => ({ model: {}, real }), cmds);
          },
        ),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    },
    Math.max(60_000, RUNS * 2_000),
  );
});

// ---------------------------------------------------------------------------------------------
// The same attacks as plain scenarios: each answer of one warm verifier next to a brand-new one's.
// ---------------------------------------------------------------------------------------------
describe('warm answers as cold: scenarios', () => {
  const bearerRequest = (token: string): RequestLike => ({
    method: 'GET',
    url: '/products',
    headers: { authorization: `Bearer ${token}` },
  });

  /** A system of `config` and a helper that asks route `r` through the warm guard and cold. */
  function scenario(config: Config = CONFIGS[0]!) {
    vi.setSystemTime(START);
    const real = system(config);
    const ask = async (r: number, t: number, via: Via = 'guard', scheme: Scheme = 'bearer') => {
      const step: Step = { r, t, via, scheme, org: undefined };
      const pristine = () => ROUTES[r]!(real.world);
      const warm = (await send(real.warm, step, pristine)).answer;
      const fresh = await cold(real, step);
      expect(warm, `warm vs cold: ${show(step)}`).toBe(fresh);
      return warm;
    };
    return { real, ask };
  }

  it('two VALID tokens sharing the short key: neither answers for the other, noted or not, concurrently or not', async () => {
    const [w, r] = [tokens[14]!.token, tokens[15]!.token];
    expect(w).not.toBe(r);
    expect(shortKey(w)).toBe(shortKey(r));
    const { real, ask } = scenario();
    // Route 3 wants write:products: only `w-1008` has it.
    expect(await ask(3, 14)).toBe('ok w-1008');
    expect(await ask(3, 14)).toBe('ok w-1008'); // noted with the entry
    expect(await ask(3, 15)).toBe('403 insufficient_scope'); // replaces the entry (same slot)
    expect(await ask(2, 15)).toBe('ok r-5044');
    expect(await ask(3, 14)).toBe('ok w-1008');
    expect(await ask(3, 15)).toBe('403 insufficient_scope');
    // Concurrent first sightings on a brand-new verifier (the in-flight map uses the short key).
    const fresh = createVerifier(real.options);
    const write = fresh.guard({ scopes: ['write:products'] });
    const answers = await Promise.all(
      [w, r, w, r, w].map((token) => answer(write(bearerRequest(token)))),
    );
    expect(answers).toEqual([
      'ok w-1008',
      '403 insufficient_scope',
      'ok w-1008',
      '403 insufficient_scope',
      'ok w-1008',
    ]);
  });

  it('a forged token with a cached token’s signature tail (or differing only before or within it) is refused', async () => {
    const { ask } = scenario();
    const jti = String(tokens[0]!.claims!.jti);
    expect(await ask(2, 0)).toBe(`ok ${jti}`);
    expect(await ask(2, 0)).toBe(`ok ${jti}`);
    expect(shortKey(tokens[16]!.token)).toBe(shortKey(tokens[0]!.token));
    expect(await ask(2, 16)).toBe('401 bad_signature');
    expect(await ask(2, 17, 'kit')).toMatch(/^401 (bad_signature|malformed_token)$/);
    expect(await ask(2, 18, 'verify')).toBe('401 bad_signature');
    expect(await ask(1, 16)).toBe('401 bad_signature'); // never anonymous on an optional route
    expect(await ask(2, 0)).toBe(`ok ${jti}`); // and the genuine entry is still there
  });

  it('the caller loosening the objects its guards were built from changes nothing, warm or not', async () => {
    const { real, ask } = scenario();
    const before: string[] = [];
    const routes = [2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 15, 17];
    for (const r of routes) before.push(await ask(r, 2), await ask(r, 2, 'kit'));
    for (const r of routes) loosen(real.given[r]!);
    real.world.checkOk = false;
    const after: string[] = [];
    for (const r of routes) after.push(await ask(r, 2), await ask(r, 2, 'kit'));
    // The user token (route 6 wants a machine; 15 wants DPoP; 17 admits nothing) is as refused
    // as before, except where only the check's own answer changed.
    expect(after.filter((a, i) => a !== before[i])).toEqual([
      '403 check_failed',
      '403 check_failed',
    ]);
  });

  it('a revocation after a cached pass is refused at once (sync and async hook); a failing hook fails closed', async () => {
    for (const hookAsync of [false, true]) {
      const { real, ask } = scenario(CONFIGS[1]);
      real.world.hookAsync = hookAsync;
      const jti = String(tokens[0]!.claims!.jti);
      expect(await ask(2, 0)).toBe(`ok ${jti}`);
      expect(await ask(2, 0)).toBe(`ok ${jti}`);
      expect(await ask(2, 0, 'kit')).toBe(`ok ${jti}`);
      real.world.revoked.add(jti);
      expect(await ask(2, 0)).toBe('401 revoked');
      expect(await ask(2, 0, 'kit')).toBe('401 revoked');
      expect(await ask(1, 0)).toBe('401 revoked'); // optional: refused, not anonymous
      real.world.revoked.delete(jti);
      expect(await ask(2, 0)).toBe(`ok ${jti}`);
      real.world.hookDown = true;
      expect(await ask(2, 0)).toBe('503 revocation_unavailable');
      expect(await ask(7, 7, 'guard', 'dpop1')).toBe('503 revocation_unavailable');
    }
  });

  it('a check whose answer changes is asked again on a cached token, on every route that has it', async () => {
    const { real, ask } = scenario();
    const jti = String(tokens[0]!.claims!.jti);
    for (let i = 0; i < 2; i++) {
      // Twice each: a first sighting, then a cache hit (where a pass could be remembered).
      expect(await ask(13, 0)).toBe(`ok ${jti}`);
      expect(await ask(14, 0, 'kit')).toBe(`ok ${jti}`);
    }
    real.world.checkOk = false;
    expect(await ask(13, 0)).toBe('403 check_failed');
    expect(await ask(14, 0, 'kit')).toBe('403 check_failed');
    expect(await ask(0, 0)).toBe(`ok ${jti}`); // a route without the check
  });

  it('a DPoP-bound token cached through DPoP is refused as Bearer on every route and entry point', async () => {
    const { ask } = scenario();
    const jti = String(tokens[7]!.claims!.jti);
    expect(await ask(2, 7, 'guard', 'dpop1')).toBe(`ok ${jti}`);
    expect(await ask(15, 7, 'kit', 'dpop1')).toBe(`ok ${jti}`);
    for (const r of [0, 1, 2, 9, 10]) {
      expect(await ask(r, 7)).toBe('401 dpop_bound_token');
      expect(await ask(r, 7, 'kit')).toBe('401 dpop_bound_token');
    }
    expect(await ask(0, 7, 'verify')).toBe('401 dpop_bound_token');
    expect(await ask(2, 7, 'guard', 'dpop2')).toBe('401 dpop_key_mismatch'); // another key's proof
    expect(await ask(2, 7, 'guard', 'dpopAth')).toBe('401 dpop_ath_mismatch'); // another token's
    expect(await ask(1, 7, 'guard', 'dpopBare')).toBe('401 dpop_proof_missing');
    expect(await ask(16, 7, 'guard', 'dpop1')).toBe('anon'); // DPoP disabled there: no credentials
    expect(await ask(15, 0)).toBe('401 dpop_required');
    expect(await ask(2, 0, 'guard', 'dpop1')).toBe('401 dpop_unbound_token');
  });

  it('an optional route never turns a bad credential into an anonymous pass, warm or not', async () => {
    const { ask } = scenario();
    expect(await ask(1, 0)).toMatch(/^ok /);
    for (const t of [11, 12, 16, 17, 18, 9, 8]) expect(await ask(1, t)).not.toBe('anon');
    expect(await ask(1, 0, 'guard', 'empty')).toBe('400 malformed_header');
    expect(await ask(1, 0, 'guard', 'dpopBare')).toBe('401 dpop_proof_missing');
    expect(await ask(1, 0, 'guard', 'none')).toBe('anon');
    expect(await ask(1, 5)).toBe('401 audience_mismatch'); // an organization token
    expect(await ask(1, 3)).toBe('403 organization_token'); // an organization-level API token
    expect(await ask(10, 5)).toMatch(/^ok /); // the route that accepts any organization
    expect(await ask(10, 3, 'kit')).toMatch(/^ok /);
  });

  it('a noted pass ends with the token: exp within the tolerance, then past it', async () => {
    const { ask } = scenario();
    const exp = tokens[1]!.claims!.exp as number;
    const jti = String(tokens[1]!.claims!.jti);
    expect(await ask(2, 1)).toBe(`ok ${jti}`);
    expect(await ask(2, 1)).toBe(`ok ${jti}`);
    vi.setSystemTime(exp * 1000 + TOLERANCE * 1000 - 1); // within the tolerance: still good
    expect(await ask(2, 1)).toBe(`ok ${jti}`);
    vi.setSystemTime(exp * 1000 + TOLERANCE * 1000);
    expect(await ask(2, 1)).toBe('401 expired');
    expect(await ask(2, 1, 'kit')).toBe('401 expired');
    vi.setSystemTime(START - 400_000); // back before its iat (minus the tolerance)
    expect(await ask(2, 1)).toBe('401 issued_in_future');
  });
});

describe('a request context and per-call requirements are read once', () => {
  /** A getter that answers `first`, then `undefined`: what is checked must be what is used. */
  const fickle = <T extends object>(target: T, first: string): T =>
    Object.defineProperty(target, 'organization', {
      enumerable: true,
      get: (() => {
        let reads = 0;
        return () => (reads++ === 0 ? first : undefined);
      })(),
    });

  let issuer: TestIssuer;
  let global: string;
  beforeAll(async () => {
    issuer = await createTestIssuer();
    global = await issuer.mint({ scopes: ['read:products'] });
  });
  const request = (token: string): RequestLike => ({
    headers: { authorization: `Bearer ${token}` },
  });

  it('guard(request, context): a context getter cannot turn an organization route global', async () => {
    const guard = createVerifier(issuer.verifierOptions).guard({ scopes: ['read:products'] });
    expect(await answer(guard(request(global), fickle({}, 'o1')))).toBe(
      '403 organization_mismatch',
    );
    // Without the trick, the same context is the same answer.
    expect(await answer(guard(request(global), { organization: 'o1' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('verify() and authenticate(): a requirements getter cannot turn the call global', async () => {
    const verifier = createVerifier(issuer.verifierOptions);
    expect(await answer(verifier.verify(global, fickle({ scopes: ['read:products'] }, 'o1')))).toBe(
      '403 organization_mismatch',
    );
    expect(await answer(verifier.authenticate(request(global), fickle({}, 'o1')))).toBe(
      '403 organization_mismatch',
    );
    // A plain object is used as given (no copy), and still answers the same.
    expect(await answer(verifier.verify(global, { organization: 'o1' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('guard(request, null) answers as guard(request); a throwing context rejects, never throws', async () => {
    const guard = createVerifier(issuer.verifierOptions).guard({ scopes: ['read:products'] });
    const subject = await answer(guard(request(global)));
    expect(subject).toMatch(/^ok /);
    expect(await answer(guard(request(global), null as never))).toBe(subject);
    const throwing = Object.defineProperty({}, 'organization', {
      get() {
        throw new Error('context getter');
      },
    });
    let promise: Promise<unknown> | undefined;
    expect(() => {
      promise = guard(request(global), throwing);
    }).not.toThrow();
    await expect(promise).rejects.toThrow('context getter');
  });
});
