/**
 * Adversarial pass, session 29: a differential between resource-guard's DPoP proof validation
 * (RFC 9449, resource-server side) and a second, independent implementation: oidc-provider 9's
 * own `validateDpop` (node_modules/oidc-provider/lib/helpers/validate_dpop.js), imported and
 * called DIRECTLY with a real `Provider` (dPoP enabled, every algorithm resource-guard accepts
 * allowed, no nonce secret) and a minimal Koa-like `ctx`. Around it, the resource-server steps
 * oidc-provider takes for its own protected resources, reimplemented from its source:
 *
 * - the scheme (lib/helpers/oidc_context.js:237-256): a `DPoP` header with any scheme but `DPoP`
 *   is refused, `DPoP` without the header is refused, `split(' ')` must give two parts;
 * - the access token: jose `jwtVerify` (issuer, audience, `typ: at+jwt`) — the cold verification
 *   that is the reference for tokens;
 * - `checkDpopReplay` (validate_dpop.js:24-51, called directly: `clientId` + `jti` unique);
 * - the binding (lib/shared/access_token.js:28-36): a proof with an unbound token is refused, a
 *   bound token without a proof or with another key's proof is refused.
 *
 * resource-guard runs through `authenticate()` (node-style request) or `guard()` (Web Request).
 * The first rule: never `ok` where the reference refuses, unless README/CONFORMANCE.md says why.
 *
 * `// FIXED` probes failed on the code they probed and pass since; `// DOCUMENTED` probes pin a
 * departure the README and CONFORMANCE.md state; `// SOUND:` properties pass (fixed seeds).
 */
import {
  constants,
  createHash,
  generateKeyPairSync,
  randomUUID,
  sign as nodeSign,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import Provider from 'oidc-provider';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';
// prettier-ignore
// @ts-expect-error: oidc-provider's helpers are untyped deep imports (ESM, plain JS).
import validateDpop, { checkDpopReplay } from '../node_modules/oidc-provider/lib/helpers/validate_dpop.js';
import { dpopFixture, dpopOptions, ORIGIN } from './helpers/dpop.ts';
import type { DpopFixture } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, mint } from './helpers/keys.ts';
import { DEFAULT_ALGORITHMS } from '../src/option-rules.ts';

const ALL_ALGS = [...DEFAULT_ALGORITHMS];

// ---------------------------------------------------------------------------------------------
// The reference: oidc-provider's validateDpop, called directly.
// ---------------------------------------------------------------------------------------------

// The provider prints its development warnings once; nothing here serves HTTP.
const provider = new Provider('https://op.example', {
  features: { dPoP: { enabled: true } },
  enabledJWA: { dPoPSigningAlgValues: ALL_ALGS as never },
});

interface Presented {
  /** The whole Authorization value, e.g. `DPoP <token>`. */
  readonly authorization: string;
  readonly proof: string | undefined;
  readonly method: string;
  /** The request path (origin-form). */
  readonly path: string;
}

let issuerJwks: ReturnType<typeof createLocalJWKSet>;

/** 'ok' or 'refused: <why>' from the reference resource server. */
async function reference(req: Presented): Promise<string> {
  const headers: Record<string, string> = {};
  const ctx = {
    oidc: {
      provider,
      route: 'resource',
      // The URL the request was made to, without query: ORIGIN + path (validate_dpop.js:125).
      urlFor: () => `${ORIGIN}${req.path.split(/[?#]/, 1)[0]}`,
    },
    method: req.method,
    get: (name: string) => (name.toLowerCase() === 'dpop' ? (req.proof ?? '') : ''),
    set: (name: string, value: string) => {
      headers[name] = value;
    },
    assert: (value: unknown, error: Error) => {
      if (!value) throw error;
    },
  };
  try {
    // oidc_context.js:237-256
    const dpop = req.proof;
    const { 0: scheme = '', 1: token = '', length } = req.authorization.split(' ');
    if (length !== 2) return 'refused: invalid authorization header value format';
    if (dpop && scheme.toLowerCase() !== 'dpop')
      return 'refused: scheme must be DPoP when DPoP is used';
    if (!dpop && scheme.toLowerCase() === 'dpop') return 'refused: DPoP header not provided';
    if (!dpop && scheme.toLowerCase() !== 'bearer') return 'refused: scheme must be Bearer';
    // The token: a cold jose verification.
    const { payload } = await jwtVerify(token, issuerJwks, {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      requiredClaims: ['exp'],
    });
    // access_token.js:10, 26-36
    const result = (await validateDpop(provider, ctx, token)) as { thumbprint: string } | undefined;
    await checkDpopReplay(provider, ctx, result, payload.client_id, Error);
    const jkt = (payload.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (result && !jkt) return 'refused: token is not sender-constrained';
    if (jkt && (!result || jkt !== result.thumbprint)) return 'refused: failed jkt verification';
    return 'ok';
  } catch (error) {
    const e = error as {
      error_description?: string;
      message?: string;
      cause?: { message?: string };
    };
    return `refused: ${e.error_description ?? e.message}${e.cause?.message ? ` (${e.cause.message})` : ''}`;
  }
}

// ---------------------------------------------------------------------------------------------
// resource-guard, through authenticate() (node-style) or guard() (Web Request).
// ---------------------------------------------------------------------------------------------

async function guarded(verifier: Verifier, req: Presented, web: boolean): Promise<string> {
  try {
    if (web) {
      const headers: Record<string, string> = { authorization: req.authorization };
      if (req.proof !== undefined) headers.dpop = req.proof;
      // The Web Request's origin is the Host header's: resource-guard must use its path only.
      await verifier.guard()(
        new Request(`http://evil.example:8080${req.path}`, { method: req.method, headers }),
      );
    } else {
      const rawHeaders = ['Host', 'api.shop.example', 'Authorization', req.authorization];
      if (req.proof !== undefined) rawHeaders.push('DPoP', req.proof);
      const headers: Record<string, string> = {};
      for (let i = 0; i < rawHeaders.length; i += 2) {
        headers[(rawHeaders[i] as string).toLowerCase()] = rawHeaders[i + 1] as string;
      }
      await verifier.authenticate({ method: req.method, url: req.path, headers, rawHeaders });
    }
    return 'ok';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    return `THREW ${(error as Error)?.stack ?? String(error)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys and proofs, signed with node:crypto with no checks (any header, any payload).
// ---------------------------------------------------------------------------------------------

type KeyName = 'p256' | 'p384' | 'p521' | 'rsa2048' | 'rsa1024' | 'ed25519';
interface ProofSigner {
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
  readonly jkt: string;
}
const SIGNERS = {} as Record<KeyName, ProofSigner>;
const MATCHED: Record<KeyName, readonly string[]> = {
  p256: ['ES256'],
  p384: ['ES384'],
  p521: ['ES512'],
  rsa2048: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  rsa1024: ['RS256', 'PS256'],
  ed25519: ['EdDSA', 'Ed25519'],
};

async function makeSigner(name: KeyName): Promise<ProofSigner> {
  const pair =
    name === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : name.startsWith('rsa')
        ? generateKeyPairSync('rsa', { modulusLength: Number(name.slice(3)) })
        : generateKeyPairSync('ec', {
            namedCurve: { p256: 'P-256', p384: 'P-384', p521: 'P-521' }[name as 'p256'],
          });
  const jwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
  return { privateKey: pair.privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

const HASH: Record<string, string | null> = {
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
  EdDSA: null,
  Ed25519: null,
};

/** A compact JWS over the JSON (or raw string) header and payload, signed by `signer` as `alg` says. */
function signProof(signer: ProofSigner, alg: unknown, header: unknown, payload: unknown): string {
  const json = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));
  const input = `${b64url(json(header))}.${b64url(json(payload))}`;
  const name = typeof alg === 'string' ? alg : 'ES256';
  const hash = name in HASH ? HASH[name]! : 'sha256';
  const options: Record<string, unknown> = {};
  if (name.startsWith('PS')) {
    options.padding = constants.RSA_PKCS1_PSS_PADDING;
    options.saltLength = Number(name.slice(2)) / 8;
  }
  if (name.startsWith('ES')) options.dsaEncoding = 'ieee-p1363';
  let signature: Buffer;
  try {
    signature = nodeSign(hash, Buffer.from(input), { key: signer.privateKey, ...options });
  } catch {
    signature = Buffer.alloc(64, 1);
  }
  return `${input}.${b64url(signature)}`;
}

const athOf = (token: string) => createHash('sha256').update(token).digest('base64url');
const nowSec = () => Math.floor(Date.now() / 1000);

let fx: DpopFixture;
let other: ProofSigner;

beforeAll(async () => {
  fx = await dpopFixture();
  issuerJwks = createLocalJWKSet({ keys: [fx.issuerKey.jwk] });
  const names: KeyName[] = ['p256', 'p384', 'p521', 'rsa2048', 'rsa1024', 'ed25519'];
  for (const name of names) SIGNERS[name] = await makeSigner(name);
  other = await makeSigner('p256');
});

/** A valid proof's parts for `method path` and `token`, signed by `signer` with `alg`. */
function baseParts(signer: ProofSigner, alg: string, method: string, path: string, token: string) {
  return {
    header: { typ: 'dpop+jwt', alg, jwk: signer.jwk } as Record<string, unknown>,
    payload: {
      jti: randomUUID(),
      htm: method,
      htu: `${ORIGIN}${path}`,
      iat: nowSec(),
      ath: athOf(token),
    } as Record<string, unknown>,
  };
}

/** Both sides on one presentation: a fresh proof per call, so replay never interferes. */
async function both(
  verifier: Verifier,
  build: (token: string) => Promise<Presented> | Presented,
  token: string,
  web = false,
): Promise<{ rg: string; ref: string }> {
  const req = await build(token);
  const rg = await guarded(verifier, req, web);
  // The reference consumes its own replay entry (clientId + jti), resource-guard its own.
  const ref = await reference(req);
  return { rg, ref };
}

/** A proof for GET /products by the P-256 key with `header`/`payload` overrides (undefined deletes). */
function variant(
  overrides: { header?: Record<string, unknown>; payload?: Record<string, unknown> },
  opts: { scheme?: string; method?: string; path?: string; signer?: ProofSigner } = {},
) {
  return (token: string): Presented => {
    const signer = opts.signer ?? SIGNERS.p256;
    const method = opts.method ?? 'GET';
    const path = opts.path ?? '/products';
    const base = baseParts(signer, 'ES256', method, path, token);
    const header = strip({ ...base.header, ...overrides.header });
    const payload = strip({ ...base.payload, ...overrides.payload });
    return {
      authorization: `${opts.scheme ?? 'DPoP'} ${token}`,
      proof: signProof(signer, header.alg, header, payload),
      method,
      path,
    };
  };
}

function strip(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

const bound = (signer: ProofSigner = SIGNERS.p256) =>
  mint(fx.issuerKey, m2mClaims({ cnf: { jkt: signer.jkt } }));

// ---------------------------------------------------------------------------------------------
// Found accepted where the reference refuses: fixed, or documented.
// ---------------------------------------------------------------------------------------------

describe('helper-73: proofs oidc-provider refuses', () => {
  // FIXED (session 29), was FAULT: a proof whose own `exp` had passed was accepted (src/dpop.ts never read exp; oidc-provider's jwtVerify refuses it).
  it('a proof with an exp in the past is refused (jwtVerify: "exp" claim timestamp check failed)', async () => {
    const token = await bound();
    for (const web of [false, true]) {
      const { rg, ref } = await both(
        fx.verifier,
        variant({ payload: { exp: nowSec() - 30 } }),
        token,
        web,
      );
      expect(ref).toMatch(/^refused/);
      expect(rg).toBe('401 dpop_proof_stale');
    }
  });

  // FIXED (session 29), was FAULT: a proof not valid before a future `nbf` was accepted (src/dpop.ts never read nbf).
  it('a proof with an nbf in the future is refused (jwtVerify: "nbf" claim timestamp check failed)', async () => {
    const token = await bound();
    const { rg, ref } = await both(
      fx.verifier,
      variant({ payload: { nbf: nowSec() + 3600 } }),
      token,
    );
    expect(ref).toMatch(/^refused/);
    expect(rg).toBe('401 dpop_proof_stale');
  });

  // FIXED (session 29), was FAULT: a proof with a non-numeric exp/nbf was accepted (jose: '"exp" claim must be a number').
  it('a proof with exp or nbf that is not a NumericDate is refused', async () => {
    const token = await bound();
    const results = [];
    for (const payload of [{ exp: 'tomorrow' }, { nbf: 'yesterday' }, { exp: null }, { nbf: {} }]) {
      const { rg, ref } = await both(fx.verifier, variant({ payload }), token);
      results.push({ payload, rg, ref: ref.startsWith('refused') ? 'refused' : ref });
    }
    expect(results.every(({ ref }) => ref === 'refused')).toBe(true);
    expect(results.filter(({ rg }) => rg === 'ok')).toEqual([]);
  });

  // DOCUMENTED (CONFORMANCE.md RFC 9449 §4.3 (10), since helper-73): without dpop.nonce, a
  // proof's `nonce` (of any type) is ignored, as §4.3 step 10 allows: a client may carry the
  // authorization server's nonce; oidc-provider refuses it (validate_dpop.js:102-103, 116-117).
  it('without server nonces, a proof carrying a nonce claim is accepted, the claim ignored', async () => {
    const token = await bound();
    const results = [];
    for (const nonce of ['made-up-nonce', 42, { a: 1 }]) {
      const { rg, ref } = await both(fx.verifier, variant({ payload: { nonce } }), token);
      results.push({ nonce, rg, ref: ref.startsWith('refused') ? 'refused' : ref });
    }
    expect(results.every(({ ref }) => ref === 'refused')).toBe(true);
    expect(results.filter(({ rg }) => rg !== 'ok')).toEqual([]);
  });

  // DOCUMENTED (README DPoP, CONFORMANCE.md RFC 9449 §7.1, since helper-73): with dpop 'allowed',
  // `Authorization: Bearer <unbound token>` with a DPoP header is a Bearer request: the token is
  // bound to no key, so the proof proves nothing about it and is not read (a bound token sent as
  // Bearer is refused). oidc-provider refuses a DPoP header on any scheme but DPoP
  // (oidc_context.js:247-248).
  it('a Bearer request with an unbound token that also carries a DPoP proof header is a Bearer request', async () => {
    const plain = await fx.plain();
    for (const web of [false, true]) {
      const { rg, ref } = await both(fx.verifier, variant({}, { scheme: 'Bearer' }), plain, web);
      expect(ref).toMatch(/^refused: scheme must be DPoP/);
      expect(rg).toBe('ok');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The generated differential over the dimensions the faults above do not cover.
// ---------------------------------------------------------------------------------------------

/** RFC 3986 §6.2.2.1-2 on a path, independently of src/: unreserved escapes decoded, hex upper. */
function pctNormal(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const c = String.fromCharCode(Number.parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
  });
}

/**
 * Why resource-guard may accept what the reference refuses, when the README/CONFORMANCE.md say so:
 * the escape normalisation of §6.2.2 (CONFORMANCE 4.3 (9), README "`/%7Euser` is `/~user`").
 */
function documentedLooser(
  req: Presented,
  proofPayload: Record<string, unknown>,
): string | undefined {
  const htu = proofPayload.htu;
  if (typeof htu !== 'string' || !URL.canParse(htu)) return undefined;
  const claimed = new URL(htu);
  claimed.search = '';
  claimed.hash = '';
  const expected = new URL(`${ORIGIN}${req.path.split(/[?#]/, 1)[0]}`);
  if (
    claimed.href !== expected.href &&
    claimed.origin === expected.origin &&
    pctNormal(claimed.pathname) === pctNormal(expected.pathname)
  ) {
    return 'percent-encoding normalisation (CONFORMANCE 4.3 (9))';
  }
  return undefined;
}

const PATHS = [
  '/products',
  '/products/',
  '/api/v1/items',
  '/a~b',
  '/a%7Eb',
  '/a%7eb',
  '/a%2fb',
  '/caf%C3%A9',
  '/x;y=1',
];

/** htu spellings for `path` (origin ORIGIN = https://api.shop.example). */
const HTU: Record<string, (path: string) => string> = {
  exact: (p) => `${ORIGIN}${p}`,
  upperHost: (p) => `HTTPS://API.SHOP.EXAMPLE${p}`,
  port443: (p) => `https://api.shop.example:443${p}`,
  port0443: (p) => `https://api.shop.example:0443${p}`,
  port8443: (p) => `https://api.shop.example:8443${p}`,
  emptyPort: (p) => `https://api.shop.example:${p}`,
  http: (p) => `http://api.shop.example${p}`,
  trailingSlash: (p) => `${ORIGIN}${p}/`,
  noSlash: (p) => `${ORIGIN}${p.replace(/\/$/, '')}`,
  query: (p) => `${ORIGIN}${p}?a=1&b=2`,
  fragment: (p) => `${ORIGIN}${p}#frag`,
  queryFragment: (p) => `${ORIGIN}${p}?#`,
  userinfo: (p) => `https://user:pw@api.shop.example${p}`,
  emptyUserinfo: (p) => `https://@api.shop.example${p}`,
  userOnly: (p) => `https://user@api.shop.example${p}`,
  otherHost: (p) => `https://api.shop.example.evil${p}`,
  trailingDotHost: (p) => `https://api.shop.example.${p}`,
  idn: (p) => `https://api.shöp.example${p}`,
  punycode: (p) => `https://api.xn--shp-sna.example${p}`,
  fullwidthHost: (p) => `https://api.shop.ｅxample${p}`,
  escapedHost: (p) => `https://api.shop.%65xample${p}`,
  tab: (p) => `https://api.shop.ex\tample${p}`,
  leadingSpace: (p) => ` ${ORIGIN}${p}`,
  backslash: (p) => `https://api.shop.example${p.replace(/\//g, '\\')}`,
  noSlashes: (p) => `https:api.shop.example${p}`,
  threeSlashes: (p) => `https:///api.shop.example${p}`,
  dotSegment: (p) => `${ORIGIN}/x/..${p}`,
  encodedDot: (p) => `${ORIGIN}/x/%2e%2e${p}`,
  doubleSlash: (p) => `${ORIGIN}/${p}`,
  pctUnreserved: (p) => `${ORIGIN}${p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`)}`,
  pctUpper: (p) => `${ORIGIN}${p.replace(/%[0-9a-f]{2}/gi, (m) => m.toUpperCase())}`,
  pctLower: (p) => `${ORIGIN}${p.replace(/%[0-9a-f]{2}/gi, (m) => m.toLowerCase())}`,
  tildeEncoded: (p) => `${ORIGIN}${p.replace('~', '%7E')}`,
  tildeDecoded: (p) => `${ORIGIN}${p.replace(/%7e/i, '~')}`,
  slashDecoded: (p) => `${ORIGIN}${p.replace(/%2f/i, '/')}`,
  unicodePath: (p) => `${ORIGIN}${p.replace(/%C3%A9/i, 'é')}`,
  relative: (p) => p,
  notString: () => 42 as unknown as string,
  caseChangedPath: (p) => `${ORIGIN}${p.toUpperCase()}`,
};

const TYP = [
  'dpop+jwt',
  'DPoP+JWT',
  'application/dpop+jwt',
  'Application/DPoP+JWT',
  'jwt',
  'at+jwt',
  'dpop+jwt ',
  'x/dpop+jwt',
  '',
  5,
  null,
  undefined,
];
const IAT = [
  'now',
  'fraction',
  'past30',
  'past70',
  'past299',
  'future3',
  'future4.9',
  'future10',
  'future299',
  'string',
  'zero',
  'negative',
  'null',
  'missing',
  'huge',
  'array',
] as const;
const JTI = [
  'uuid',
  'one',
  'len256',
  'len257',
  'len4096',
  'empty',
  'number',
  'null',
  'missing',
  'object',
  'unicode',
  'loneSurrogate',
  'space',
] as const;
const ATH = [
  'right',
  'missing',
  'otherToken',
  'padded',
  'standardB64',
  'upper',
  'hex',
  'number',
  'emptyTokenHash',
  'null',
] as const;
const JWK_VARIANT = [
  'plain',
  'kid',
  'useSig',
  'useEnc',
  'algSame',
  'algOther',
  'keyOpsVerify',
  'keyOpsBoth',
  'keyOpsEmpty',
  'extFalse',
  'extTrue',
  'privateD',
  'extraMember',
  'x5c',
  'wrongKty',
  'noKty',
  'missing',
  'string',
  'array',
  'paddedX',
  'b64StdX',
] as const;
const HTM = ['same', 'lower', 'other', 'missing', 'number', 'spaced'] as const;
const TOKEN = ['bound', 'boundOther', 'unbound', 'boundBearer'] as const;
const ALG_MODE = ['matched', 'matched', 'matched', 'any', 'none', 'HS256', 'missing'] as const;

const sample = fc.record({
  key: fc.constantFrom<KeyName>(
    'p256',
    'p256',
    'p384',
    'p521',
    'rsa2048',
    'rsa1024',
    'ed25519',
    'ed25519',
  ),
  algMode: fc.constantFrom(...ALG_MODE),
  algPick: fc.nat(20),
  typ: fc.constantFrom(...TYP),
  jwk: fc.constantFrom(...JWK_VARIANT),
  crit: fc.constantFrom('none', 'none', 'none', 'b64', 'unknown', 'empty'),
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH'),
  htm: fc.constantFrom(...HTM),
  path: fc.constantFrom(...PATHS),
  htu: fc.constantFrom(...Object.keys(HTU)),
  iat: fc.constantFrom(...IAT),
  jti: fc.constantFrom(...JTI),
  ath: fc.constantFrom(...ATH),
  token: fc.constantFrom(...TOKEN),
  extraClaims: fc.constantFrom('none', 'none', 'aud', 'iss', 'sub', 'cnf'),
  web: fc.boolean(),
  // Most samples change one or two things from a valid proof: the rest stay canonical.
  required: fc.boolean(),
  mutate: fc.uniqueArray(
    fc.constantFrom(
      'typ',
      'jwk',
      'crit',
      'htm',
      'htu',
      'path',
      'iat',
      'jti',
      'ath',
      'token',
      'alg',
      'extra',
    ),
    { maxLength: 2 },
  ),
});
type Sample = typeof sample extends fc.Arbitrary<infer T> ? T : never;

async function build(s: Sample): Promise<{
  req: Presented;
  payload: Record<string, unknown>;
  header: Record<string, unknown>;
  token: string;
}> {
  const on = (what: string) => (s.mutate as readonly string[]).includes(what);
  const signer = SIGNERS[s.key];
  const matched = MATCHED[s.key];
  let alg: unknown = matched[s.algPick % matched.length];
  if (on('alg')) {
    alg = {
      matched: alg,
      any: ALL_ALGS[s.algPick % ALL_ALGS.length],
      none: 'none',
      HS256: 'HS256',
      missing: undefined,
    }[s.algMode];
  }
  const tokenKind = on('token') ? s.token : 'bound';
  const token =
    tokenKind === 'unbound'
      ? await fx.plain()
      : await mint(
          fx.issuerKey,
          m2mClaims({ cnf: { jkt: tokenKind === 'boundOther' ? other.jkt : signer.jkt } }),
        );
  const path = on('path') ? s.path : '/products';
  const method = s.method;
  const base = baseParts(signer, 'ES256', method, path, token);
  const header: Record<string, unknown> = { ...base.header, alg };
  const payload: Record<string, unknown> = { ...base.payload };
  if (on('typ')) header.typ = s.typ;
  if (on('jwk')) {
    const j = signer.jwk as Record<string, unknown>;
    const first = Object.keys(j).find((k) => ['x', 'n'].includes(k)) as string;
    header.jwk = {
      plain: j,
      kid: { ...j, kid: 'k1' },
      useSig: { ...j, use: 'sig' },
      useEnc: { ...j, use: 'enc' },
      algSame: { ...j, alg },
      algOther: { ...j, alg: alg === 'ES384' ? 'ES256' : 'ES384' },
      keyOpsVerify: { ...j, key_ops: ['verify'] },
      keyOpsBoth: { ...j, key_ops: ['verify', 'sign'] },
      keyOpsEmpty: { ...j, key_ops: [] },
      extFalse: { ...j, ext: false },
      extTrue: { ...j, ext: true },
      privateD: { ...j, d: b64url(Buffer.alloc(32, 7)) },
      extraMember: { ...j, foo: 'bar', iat: 1 },
      x5c: { ...j, x5c: ['MIIB'] },
      wrongKty: { ...j, kty: j.kty === 'RSA' ? 'EC' : 'RSA' },
      noKty: (({ kty: _k, ...rest }) => rest)(j),
      missing: undefined,
      string: JSON.stringify(j),
      array: [j],
      paddedX: { ...j, [first]: `${j[first] as string}=` },
      b64StdX: { ...j, [first]: (j[first] as string).replace(/-/g, '+').replace(/_/g, '/') },
    }[s.jwk];
  }
  if (on('crit')) {
    if (s.crit === 'b64') Object.assign(header, { crit: ['b64'], b64: true });
    if (s.crit === 'unknown') Object.assign(header, { crit: ['urn:x'], 'urn:x': 1 });
    if (s.crit === 'empty') Object.assign(header, { crit: [] });
  }
  if (on('htm')) {
    payload.htm = {
      same: method,
      lower: method.toLowerCase(),
      other: method === 'GET' ? 'POST' : 'GET',
      missing: undefined,
      number: 1,
      spaced: ` ${method}`,
    }[s.htm];
  }
  if (on('htu')) payload.htu = HTU[s.htu]!(path);
  if (on('iat')) {
    const n = nowSec();
    payload.iat = {
      now: n,
      fraction: n + 0.25,
      past30: n - 30,
      past70: n - 70,
      past299: n - 299,
      future3: n + 3,
      'future4.9': Date.now() / 1000 + 4.9,
      future10: n + 10,
      future299: n + 299,
      string: String(n),
      zero: 0,
      negative: -1,
      null: null,
      missing: undefined,
      huge: 1e300,
      array: [n],
    }[s.iat];
  }
  if (on('jti')) {
    payload.jti = {
      uuid: randomUUID(),
      one: randomUUID().slice(0, 1),
      len256: randomUUID().padEnd(256, 'x'),
      len257: randomUUID().padEnd(257, 'x'),
      len4096: randomUUID().padEnd(4096, 'x'),
      empty: '',
      number: Math.random(),
      null: null,
      missing: undefined,
      object: { id: randomUUID() },
      unicode: `${randomUUID()}-ключ-😀`,
      loneSurrogate: `${randomUUID()}\ud800`,
      space: ` ${randomUUID()} `,
    }[s.jti];
  }
  if (on('ath')) {
    const right = athOf(token);
    payload.ath = {
      right,
      missing: undefined,
      otherToken: athOf(`${token}x`),
      padded: `${right}=`,
      standardB64: createHash('sha256').update(token).digest('base64'),
      upper: right.toUpperCase(),
      hex: createHash('sha256').update(token).digest('hex'),
      number: 1,
      emptyTokenHash: athOf(''),
      null: null,
    }[s.ath];
  }
  if (on('extra')) {
    if (s.extraClaims === 'aud') payload.aud = 'https://elsewhere';
    if (s.extraClaims === 'iss') payload.iss = 42;
    if (s.extraClaims === 'sub') payload.sub = ['x'];
    if (s.extraClaims === 'cnf') payload.cnf = { jkt: 'x' };
  }
  const h = strip(header);
  const p = strip(payload);
  const scheme = tokenKind === 'boundBearer' ? 'Bearer' : 'DPoP';
  return {
    req: { authorization: `${scheme} ${token}`, proof: signProof(signer, alg, h, p), method, path },
    payload: p,
    header: h,
    token,
  };
}

/** What each run saw, for the report (printed once). */
const stricter = new Map<string, unknown>();

describe('the generated differential (no exp/nbf/nonce, no Bearer with an unbound token)', () => {
  // SOUND: over 1500 generated proofs (typ, alg, jwk members, key sizes, crit, htm, htu spellings,
  // iat, jti, ath, token binding), resource-guard never accepts what oidc-provider refuses but
  // for the documented §6.2.2 escape normalisation, never throws or answers 5xx, and
  // authenticate() (node) and guard() (Web Request) agree.
  it('never ok where the reference refuses; never an exception or a 5xx', async () => {
    const looser: unknown[] = [];
    const required = createVerifier(
      dpopOptions(fx.issuerKey, { dpop: { mode: 'required', origin: ORIGIN } }),
    );
    /** Proofs resource-guard accepted: its replay identity is key + htu + jti (README). */
    const consumed = new Set<string>();
    const identity = (header: Record<string, unknown>, payload: Record<string, unknown>) => {
      const htu = new URL(payload.htu as string);
      return `${JSON.stringify(header.jwk)} ${htu.origin}${pctNormal(htu.pathname)} ${String(payload.jti)}`;
    };
    const tally = { bothOk: 0, bothRefuse: 0, rgStricter: 0, rgLooserDocumented: 0 };
    await fc.assert(
      fc.asyncProperty(sample, async (s) => {
        const { req, payload, header } = await build(s);
        const rg = await guarded(s.required ? required : fx.verifier, req, s.web);
        const ref = await reference(req);
        expect(rg).not.toMatch(/^THREW|^5\d\d/);
        if (rg === 'ok' && ref === 'ok') tally.bothOk += 1;
        if (rg !== 'ok' && ref !== 'ok') tally.bothRefuse += 1;
        if (rg === 'ok' && ref !== 'ok') {
          // The reference scopes a jti to the client (every token here has one client_id);
          // resource-guard to the proof key and htu (README "DPoP", CONFORMANCE 11.1): a short jti
          // reused by another key or for another URL is no replay there, and documented so.
          const why =
            documentedLooser(req, payload) ??
            (/Replay detected/.test(ref) && !consumed.has(identity(header, payload))
              ? 'replay scoped to key and htu'
              : undefined);
          if (why === undefined) looser.push({ s, header, payload, rg, ref });
          else tally.rgLooserDocumented += 1;
        }
        if (rg === 'ok') consumed.add(identity(header, payload));
        if (rg !== 'ok' && ref === 'ok') {
          tally.rgStricter += 1;
          const keyOf = `${rg} | ${s.mutate.map((m) => `${m}=${JSON.stringify((s as Record<string, unknown>)[m === 'alg' ? 'algMode' : m === 'extra' ? 'extraClaims' : m] ?? '')}`).join(',')}`;
          if (!stricter.has(keyOf))
            stricter.set(keyOf, { path: req.path, htu: payload.htu, key: s.key, alg: header.alg });
        }
      }),
      { seed: 2909, numRuns: 1500, endOnFailure: true },
    );
    if (process.env.S29_DPOP_VERBOSE) console.log(tally, [...stricter.keys()].sort().join('\n'));
    // Not vacuous: valid proofs pass both, broken ones fail both.
    expect(tally.bothOk).toBeGreaterThan(100);
    expect(tally.bothRefuse).toBeGreaterThan(100);
    expect(looser).toEqual([]);
  }, 60_000);
});

describe('random members and raw shapes', () => {
  // SOUND: random extra members in the header and the payload (any JSON, any name, including the
  // names of the checked ones: typ, alg, jwk, crit, htm, htu, iat, jti, ath, nonce, exp, nbf are
  // left out only where a FAULT above covers them) never make resource-guard accept what the
  // reference refuses, and never throw.
  it('extra header/payload members: never ok where the reference refuses', async () => {
    const name = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        'typ',
        'alg',
        'jwk',
        'kid',
        'x5c',
        'jku',
        'b64',
        'htm',
        'htu',
        'iat',
        'jti',
        'ath',
        'cnf',
        '__proto__',
        'constructor',
      ),
    );
    const members = fc.dictionary(name, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
    const looser: unknown[] = [];
    await fc.assert(
      fc.asyncProperty(members, members, fc.boolean(), async (headerExtra, payloadExtra, web) => {
        // The faults above, kept out: exp, nbf, nonce.
        for (const k of ['exp', 'nbf', 'nonce']) delete payloadExtra[k];
        const token = await bound();
        const req = variant({ header: headerExtra, payload: payloadExtra })(token);
        const rg = await guarded(fx.verifier, req, web);
        const ref = await reference(req);
        expect(rg).not.toMatch(/^THREW|^5\d\d/);
        if (rg === 'ok' && ref !== 'ok') looser.push({ headerExtra, payloadExtra, ref });
      }),
      { seed: 29029, numRuns: 300 },
    );
    expect(looser).toEqual([]);
  }, 30_000);

  // SOUND: a DPoP header that is not a proof at all (any printable string, dots, base64url
  // segments of any JSON) is a 4xx, never an exception or a 5xx, and never ok.
  it('arbitrary DPoP header values: a 4xx, never an exception', async () => {
    const token = await bound();
    const seg = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.jsonValue({ maxDepth: 2 }).map((v) => b64url(JSON.stringify(v))),
      fc.constantFrom('', 'e30', 'bnVsbA', 'W10', '_-_-', '....'),
    );
    const proofs = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(seg, seg, seg).map((parts) => parts.join('.')),
      fc.tuple(seg, seg, seg, seg, seg).map((parts) => parts.join('.')),
    );
    await fc.assert(
      fc.asyncProperty(proofs, fc.boolean(), async (dpop, web) => {
        const req: Presented = {
          authorization: `DPoP ${token}`,
          proof: dpop,
          method: 'GET',
          path: '/products',
        };
        const rg = await guarded(fx.verifier, req, web);
        // A Web Request refuses header values with control characters itself: not ours.
        if (web && /^THREW TypeError/.test(rg) && /[\0\r\n]/.test(dpop)) return;
        expect(rg).toMatch(/^4\d\d /);
      }),
      { seed: 29030, numRuns: 300 },
    );
  }, 30_000);
});

describe('token side, replay, nonces', () => {
  // SOUND: the token side agrees with oidc-provider's access_token.js:28-36: a bound token as
  // Bearer (with or without a proof), a proof by another key, an unbound token on the DPoP scheme,
  // the DPoP scheme without a proof: all refused by both.
  it('binding: every downgrade and mismatch refused by both', async () => {
    const token = await bound();
    const plain = await fx.plain();
    const otherToken = await bound(other);
    const cases: Array<[string, Presented]> = [
      [
        'bound as Bearer, no proof',
        { authorization: `Bearer ${token}`, proof: undefined, method: 'GET', path: '/products' },
      ],
      ['bound as Bearer, with proof', variant({}, { scheme: 'Bearer' })(token)],
      ['bound to another key', variant({})(otherToken)],
      ['unbound on DPoP', variant({})(plain)],
      [
        'DPoP without proof',
        { authorization: `DPoP ${token}`, proof: undefined, method: 'GET', path: '/products' },
      ],
    ];
    for (const [what, req] of cases) {
      for (const web of [false, true]) {
        const rg = await guarded(fx.verifier, req, web);
        const ref = await reference(req);
        expect({ what, web, rg: rg === 'ok', ref: ref === 'ok' }).toEqual({
          what,
          web,
          rg: false,
          ref: false,
        });
      }
    }
    // Documented looser (CONFORMANCE 7.1: "`1*SP token68`", RFC 7235 §2.1): two spaces after the
    // scheme are accepted; oidc-provider's split(' ') refuses them (oidc_context.js:243-245).
    const spaced = { ...variant({})(token), authorization: `DPoP  ${token}` };
    expect(await guarded(fx.verifier, spaced, false)).toBe('ok');
    expect(await reference({ ...spaced })).toMatch(/^refused: invalid authorization header/);
    // The scheme is case-insensitive on both.
    const lower = variant({}, { scheme: 'dpop' });
    expect(await guarded(fx.verifier, lower(token), false)).toBe('ok');
    expect(await reference(lower(token))).toBe('ok');
  });

  // SOUND: a proof is accepted once (both), a new signature over the same key, htu and jti is a
  // replay (both); resource-guard's scope (key + htu) is narrower than oidc-provider's (client),
  // as its README says.
  it('replay: the same proof, or the same jti for the same key and URL, is refused by both', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<KeyName>('p256', 'p384', 'rsa2048', 'ed25519'),
        fc.boolean(),
        async (keyName, web) => {
          const signer = SIGNERS[keyName];
          const token = await bound(signer);
          const alg = MATCHED[keyName][0] as string;
          const jti = randomUUID();
          const make = (iatShift: number): Presented => {
            const base = baseParts(signer, alg, 'GET', '/products', token);
            const payload = { ...base.payload, jti, iat: nowSec() + iatShift };
            return {
              authorization: `DPoP ${token}`,
              proof: signProof(signer, alg, base.header, payload),
              method: 'GET',
              path: '/products',
            };
          };
          const first = make(0);
          expect(await guarded(fx.verifier, first, web)).toBe('ok');
          expect(await reference(first)).toBe('ok');
          expect(await guarded(fx.verifier, { ...first }, !web)).toBe('401 dpop_replayed');
          expect(await reference({ ...first })).toMatch(/Replay detected/);
          const again = make(-1);
          expect(await guarded(fx.verifier, again, web)).toBe('401 dpop_replayed');
          expect(await reference(again)).toMatch(/Replay detected/);
        },
      ),
      { seed: 29031, numRuns: 12 },
    );
  });

  // SOUND: with dpop.nonce, a nonce that is not a current server nonce (any type, any string) is
  // refused with use_dpop_nonce; the reference refuses a nonce it did not issue too.
  it('with server nonces: a forged or mistyped nonce is refused', async () => {
    const verifier = createVerifier(
      dpopOptions(fx.issuerKey, { dpop: { origin: ORIGIN, nonce: { secret: 'a'.repeat(32) } } }),
    );
    const token = await bound();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 1 }),
          fc.string({ maxLength: 80 }),
          fc.constant(undefined),
        ),
        async (nonce) => {
          const req = variant({ payload: { nonce } })(token);
          expect(await guarded(verifier, req, false)).toBe('401 dpop_nonce_required');
        },
      ),
      { seed: 29032, numRuns: 100 },
    );
  });
});

describe('strictness the reference does not have, documented', () => {
  // DOCUMENTED (session 29), was FAULT (low): a jti holding a lone UTF-16 surrogate is refused (src/dpop.ts), which oidc-provider accepts; README and CONFORMANCE 4.3 (4) now say so.
  it('a refusal the reference does not make is documented: a jti that is not well-formed Unicode', async () => {
    const token = await bound();
    const { rg, ref } = await both(
      fx.verifier,
      variant({ payload: { jti: `${randomUUID()}\ud800` } }),
      token,
    );
    expect(ref).toBe('ok');
    expect(rg).toBe('401 dpop_proof_invalid');
    const { readFileSync } = await import('node:fs');
    const docs = ['README.md', 'CONFORMANCE.md']
      .map((f) => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8'))
      .join('\n');
    expect(/jti[^\n]*(surrogate|well-formed|valid Unicode|UTF-16)/i.test(docs), 'documented').toBe(
      true,
    );
  });
});
