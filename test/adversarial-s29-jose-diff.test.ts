/**
 * Adversarial pass, session 29: a broad differential between resource-guard and a COLD jose
 * verification (jose 6 `jwtVerify`, `createLocalJWKSet` / `createRemoteJWKSet` over the same key
 * set, fetched fresh; issuer, audience, `typ: 'at+jwt'`, clockTolerance, maxTokenAge and the
 * required claims as the library's options imply them; `currentDate` = the library's faked clock).
 *
 * The first rule: never accept a token the cold verification refuses. Each token goes through
 * `verify()` cold, `verify()` again (warm: the verified-token cache) and `guard()` with a Web
 * `Request`; the three must agree, and none may be `ok` where jose refuses.
 *
 * `// FIXED` probes failed on the code they probed and pass since; `// DOCUMENTED` probes pin a
 * departure from jose that CONFORMANCE.md states; `// SOUND:` properties pass (fixed seeds).
 */
import fc from 'fast-check';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, jwtVerify } from 'jose';
import type { JWK, JWTVerifyOptions } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { DEFAULT_ALGORITHMS } from '../src/option-rules.ts';

const ALGS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'] as const;
const DEFAULT_ALGS = [...DEFAULT_ALGORITHMS];
const STRICT_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'];
const LAX_CLAIMS = ['iss', 'sub', 'aud', 'exp'];
/** A whole second well in the future of any test run. */
const T = 1_900_000_000;

let keys: Record<(typeof ALGS)[number], TestKey>;
beforeAll(async () => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  const made = await Promise.all(ALGS.map((alg) => makeKey(alg)));
  keys = Object.fromEntries(made.map((k) => [k.alg, k])) as typeof keys;
});
afterEach(() => vi.useRealTimers());

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/**
 * Signs raw header and payload JSON text (duplicate members, `-0`, `1e400`, escapes: anything)
 * with any of the test keys, as a compact JWS. `scheme` overrides the signing scheme (a P-384 key
 * hashing with SHA-256, say) to build alg/key confusions.
 */
async function signText(
  key: TestKey,
  header: string,
  payload: string,
  scheme?: AlgorithmIdentifier | RsaPssParams | EcdsaParams,
): Promise<string> {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const { name } = key.privateKey.algorithm as { name: string };
  const params =
    scheme ??
    (name === 'ECDSA'
      ? { name, hash: `SHA-${key.alg.slice(2)}` }
      : name === 'RSA-PSS'
        ? { name, saltLength: 32 }
        : { name });
  const signature = await crypto.subtle.sign(
    params,
    key.privateKey,
    new TextEncoder().encode(input),
  );
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

interface Opts {
  readonly audience: string | string[];
  readonly clockTolerance: number;
  readonly maxTokenAge: number | undefined;
  readonly requiredClaims: readonly string[];
  readonly strict: boolean;
}
const DEFAULTS: Opts = {
  audience: AUDIENCE,
  clockTolerance: 5,
  maxTokenAge: undefined,
  requiredClaims: [],
  strict: true,
};

/** jose's options equivalent to the library's. */
function joseOptions(o: Opts, nowMs: number | undefined): JWTVerifyOptions {
  return {
    issuer: ISSUER,
    audience: o.audience,
    ...(o.strict ? { typ: 'at+jwt' } : {}),
    algorithms: DEFAULT_ALGS,
    clockTolerance: o.clockTolerance,
    ...(o.maxTokenAge === undefined ? {} : { maxTokenAge: o.maxTokenAge }),
    requiredClaims: [...(o.strict ? STRICT_CLAIMS : LAX_CLAIMS), ...o.requiredClaims],
    ...(nowMs === undefined ? {} : { currentDate: new Date(nowMs) }),
  };
}

/** The cold verdict: 'ok' or 'refused: <jose error>'. */
async function cold(
  token: string,
  jwks: readonly unknown[],
  o: Opts = DEFAULTS,
  nowMs?: number,
): Promise<string> {
  try {
    await jwtVerify(token, createLocalJWKSet({ keys: jwks as JWK[] }), joseOptions(o, nowMs));
    return 'ok';
  } catch (error) {
    return `refused: ${(error as Error).name} ${(error as Error).message}`;
  }
}

function libOptions(o: Opts, jwks: readonly unknown[]): VerifierOptions {
  return {
    issuer: ISSUER,
    audience: o.audience,
    jwks: { keys: jwks as JWK[] },
    clockTolerance: o.clockTolerance,
    ...(o.maxTokenAge === undefined ? {} : { maxTokenAge: o.maxTokenAge }),
    requiredClaims: [...o.requiredClaims],
    strict: o.strict,
  };
}

const request = (token: string) =>
  new Request('https://api.test/products', { headers: { authorization: `Bearer ${token}` } });

/**
 * The library's verdicts at `nowMs` (Date faked): `verify` cold, `verify` warm, `guard()` with a
 * Web Request, on one fresh verifier; plus the onRejected details of the first refusal.
 */
async function mine(
  token: string,
  jwks: readonly unknown[],
  o: Opts = DEFAULTS,
  nowMs?: number,
): Promise<{ cold: string; warm: string; guard: string; details: string }> {
  if (nowMs !== undefined) vi.useFakeTimers({ toFake: ['Date'], now: nowMs });
  try {
    let details = '';
    const verifier = createVerifier({
      ...libOptions(o, jwks),
      onRejected: (event) => {
        details ||= `${event.reason} ${JSON.stringify(event.details)}`;
      },
    });
    const first = await outcome(verifier.verify(token));
    const warm = await outcome(verifier.verify(token));
    const guard = await outcome(verifier.guard()(request(token)));
    return { cold: first, warm, guard, details };
  } finally {
    vi.useRealTimers();
  }
}

const j = (value: unknown) => JSON.stringify(value);
const object = (members: readonly (readonly [string, string])[]) =>
  `{${members.map(([name, raw]) => `${j(name)}:${raw}`).join(',')}}`;

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

describe('key selection: one key in jose, several (or one deduplicated) in resource-guard', () => {
  // DOCUMENTED (CONFORMANCE.md, "Fetching keys"; helper-71's F1): the same JWK listed twice (or
  // respelled: `x` padded with `=`; or next to a private copy, which is ignored) is one key to the
  // library and two matching keys to jose, which refuses the token (JWKSMultipleMatchingKeys).
  // Every key tried is the issuer's own: no key the issuer did not publish ever verifies.
  it('F1: a key listed twice, respelled, or beside its private copy: one key (jose refuses)', async () => {
    const key = keys.ES256;
    const token = await mint(key, m2mClaims());
    const x = key.jwk.x as string;
    const sets: Record<string, unknown[]> = {
      'listed twice': [key.jwk, key.jwk],
      'twice, members reordered': [key.jwk, Object.fromEntries(Object.entries(key.jwk).reverse())],
      'respelled (x padded)': [key.jwk, { ...key.jwk, x: `${x}=` }],
      'beside a private key under its kid': [key.jwk, { ...key.jwk, d: b64url('x'.repeat(32)) }],
    };
    const looser: string[] = [];
    for (const [name, set] of Object.entries(sets)) {
      const jose = await cold(token, set);
      const lib = await mine(token, set);
      expect([name, jose === 'ok', lib.cold, lib.warm, lib.guard]).toEqual([
        name,
        false,
        'ok',
        'ok',
        'ok',
      ]);
      looser.push(name);
    }
    expect(looser).toHaveLength(4);
  });

  // DOCUMENTED (CONFORMANCE.md's RFC 7638 table, an "Adds"; helper-71's F2): two different keys
  // under one kid, or a token with no kid against a set holding two keys that fit its alg: jose
  // refuses (JWKSMultipleMatchingKeys: jwtVerify does not iterate), the library tries each of the
  // issuer's keys (at most 8) and accepts.
  it('F2: two keys under the token kid, or no kid and two fitting keys: each tried (jose refuses)', async () => {
    const key = keys.ES256;
    const sibling = await makeKey('ES256', key.kid);
    const stranger = await makeKey('ES256');
    const cases: [string, string, unknown[]][] = [
      ['two keys under one kid', await mint(key, m2mClaims()), [sibling.jwk, key.jwk]],
      [
        'no kid, two ES256 keys',
        await mint(key, m2mClaims(), { kid: undefined }),
        [stranger.jwk, key.jwk],
      ],
    ];
    const looser: string[] = [];
    for (const [name, token, set] of cases) {
      const jose = await cold(token, set);
      const lib = await mine(token, set);
      expect([name, jose === 'ok', lib.cold]).toEqual([name, false, 'ok']);
      looser.push(name);
    }
    expect(looser).toHaveLength(2);
  });

  // FIXED (session 29), was FAULT: a fetched JWKS whose `keys` holds a non-object item (null, a string, a number, an
  // array) is malformed to jose (isJwkSet: every member must be an object), so a cold
  // verification with the key set fetched fresh refuses every token; the library drops the item
  // (key-source.ts usableKeys, the `typeof key !== 'object'` filter) and accepts. (The static
  // `jwks` option already throws a TypeError for such an item: the fetched path disagrees with it.)
  it('F3: a fetched JWKS with a non-object item in `keys`: refused, as jose refuses the set', async () => {
    const key = keys.ES256;
    const token = await mint(key, m2mClaims());
    const looser: string[] = [];
    for (const junk of [null, 'x', 7, [1]]) {
      const body = j({ keys: [key.jwk, junk] });
      const fetch = (async () =>
        new Response(body, {
          status: 200,
          headers: { 'content-type': 'application/json' },
        })) as typeof globalThis.fetch;
      let jose = 'ok';
      try {
        const remote = createRemoteJWKSet(new URL('https://issuer.test/jwks'), {
          [customFetch]: fetch,
        });
        await jwtVerify(token, remote, joseOptions(DEFAULTS, undefined));
      } catch (error) {
        jose = `refused: ${(error as Error).message}`;
      }
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: 'https://issuer.test/jwks',
        fetch,
      });
      const lib = await outcome(verifier.verify(token));
      if (jose !== 'ok' && lib === 'ok') looser.push(`${j(junk)}: jose ${jose}`);
    }
    expect(looser).toEqual([]);
  });
});

describe('refusals jose does not make, documented', () => {
  // DOCUMENTED (CONFORMANCE.md RFC 9068 §2.2.3, since helper-71's F4): a token whose `scp` is
  // not an array of strings is refused (invalid_claim scp), even beside a `scope`: a claim the
  // library reads has the type it reads. Entra ID's space-delimited string, `null`, `[1]`; jose
  // does not read `scp` and accepts.
  it('F4: a string (Entra-style), null or [1] `scp` beside a valid `scope`: invalid_claim (jose accepts)', async () => {
    const key = keys.ES256;
    const stricter: string[] = [];
    for (const scp of ['read:products write:products', null, [1]]) {
      const token = await mint(key, m2mClaims({ scp }));
      const jose = await cold(token, [key.jwk]);
      const lib = await mine(token, [key.jwk]);
      expect([jose, lib.cold]).toEqual(['ok', '401 invalid_claim']);
      stricter.push(`scp ${j(scp)}: ${lib.details}`);
    }
    expect(stricter).toHaveLength(3);
  });

  // DOCUMENTED (CONFORMANCE.md RFC 9068 §4, since helper-71's F5): an end of the window (`exp`,
  // `iat + maxTokenAge`) is judged against the exact clock, jose's against the whole second: a
  // fractional exp of T + 0.5 at T + 0.7 (tolerance 0), an integer exp of T at T + 0.651 with a
  // clockTolerance of 0.5, or an iat of T - 0.4 with maxTokenAge 0.5 at T + 0.2, is refused where
  // jose still accepts (under a second early; never later than jose).
  it('F5: fractional ends at a fractional clock: refused up to a second before jose refuses', async () => {
    const key = keys.ES256;
    const cases: [string, Record<string, unknown>, Opts, number][] = [
      [
        'exp T+0.5 at T+0.7, tolerance 0',
        { iat: T - 10, exp: T + 0.5 },
        { ...DEFAULTS, clockTolerance: 0 },
        T * 1000 + 700,
      ],
      [
        "Logto's integer exp T at T+0.651, clockTolerance 0.5",
        { iat: T - 10, exp: T },
        { ...DEFAULTS, clockTolerance: 0.5 },
        T * 1000 + 651,
      ],
      [
        'iat T-0.4, maxTokenAge 0.5 at T+0.2, tolerance 0',
        { iat: T - 0.4, exp: T + 60 },
        { ...DEFAULTS, clockTolerance: 0, maxTokenAge: 0.5 },
        T * 1000 + 200,
      ],
    ];
    const stricter: string[] = [];
    for (const [name, claims, o, nowMs] of cases) {
      const token = await mint(key, m2mClaims(claims));
      const jose = await cold(token, [key.jwk], o, nowMs);
      const lib = await mine(token, [key.jwk], o, nowMs);
      expect([name, jose, lib.cold]).toEqual([
        name,
        'ok',
        expect.stringMatching(/^401 (expired|token_too_old)$/),
      ]);
      stricter.push(name);
    }
    expect(stricter).toHaveLength(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Sound: broad properties
// ---------------------------------------------------------------------------------------------

/** Absent (null) most of the time, else one of `values`. */
const rare = (...values: string[]) =>
  fc.oneof({ weight: 10, arbitrary: fc.constant(null) }, fc.constantFrom(...values));
/** `arbitrary`'s value about once in `every` cases, else absent (null). */
const sometimes = <V>(arbitrary: fc.Arbitrary<V>, every: number) =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, arbitrary);
const jsonText = fc.jsonValue({ maxDepth: 2 }).map(j);

/** A claim's raw JSON: usually the good value, sometimes an edge of every JSON type. */
const stringClaim = (good: string) =>
  fc.oneof(
    { weight: 80, arbitrary: fc.constant(j(good)) },
    fc.constantFrom(
      j(`${good}/`),
      j(good.toUpperCase()),
      j(`${good}\u200b`),
      j(good.normalize('NFD').replace('a', 'a\u0301')),
      `"${[...good].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`,
      j([good]),
      j([good, good]),
      j({ [good]: true }),
      'null',
      '1',
      '""',
      'true',
    ),
    jsonText,
  );

const timeClaim = (min: number, max: number) =>
  fc.oneof(
    { weight: 10, arbitrary: fc.integer({ min, max }).map((d) => String(T + d)) },
    { weight: 10, arbitrary: fc.double({ min, max, noNaN: true }).map((d) => String(T + d)) },
    fc.constantFrom(
      '-0',
      '0',
      '1e400',
      '-1e400',
      '1e308',
      `${T}.5`,
      `${T - 10}.999`,
      `${T}e0`,
      `${T / 10}e1`,
      `"${T}"`,
      'null',
      'true',
      `[${T}]`,
      '{}',
    ),
    jsonText,
  );

const headerArb = (key: TestKey) =>
  fc
    .record({
      alg: fc.oneof(
        { weight: 80, arbitrary: fc.constant(j(key.alg)) },
        fc.constantFrom(
          ...ALGS.map(j),
          j('Ed25519'),
          j('none'),
          j('HS256'),
          j(key.alg.toLowerCase()),
          j(`${key.alg} `),
          '""',
          'null',
          j([key.alg]),
        ),
      ),
      typ: fc.oneof(
        { weight: 40, arbitrary: fc.constant(j('at+jwt')) },
        fc
          .constantFrom(
            'AT+JWT',
            'application/at+jwt',
            'Application/AT+JWT',
            'at+JWT',
            ' at+jwt',
            'at+jwt ',
            'application/at+jwt; charset=utf-8',
            'jwt',
            'JWT',
            'application/jwt',
            'x/at+jwt',
            'application/application/at+jwt',
            'at+jwt\u0000',
            'at\uff0bjwt',
            'dpop+jwt',
            '',
            'at+jwt\u200b',
            'APPLICATION/at+jwt',
          )
          .map(j),
        fc.constantFrom('null', '1', '["at+jwt"]', '{}'),
      ),
      kid: fc.oneof(
        { weight: 80, arbitrary: fc.constant(j(key.kid)) },
        fc.constantFrom(
          '1',
          'null',
          '""',
          j('other'),
          j([key.kid]),
          '{}',
          'true',
          j(`${key.kid} `),
        ),
      ),
      crit: rare('["b64"]', '[]', '["exp"]', '["b64","b64"]', '"b64"', '[""]'),
      b64: rare('true', 'false', '"false"'),
      cty: rare(j('JWT'), j('json'), j('application/JWT'), '1', j('at+jwt')),
      x5c: rare('[]', '["AAAA"]'),
      x5t: rare(j('abc')),
      zip: rare(j('DEF')),
      extra: fc.option(jsonText, { freq: 3, nil: null }),
    })
    .chain((h) =>
      fc.record({
        h: fc.constant(h),
        // A duplicate member before the real one (JSON.parse keeps the last, as jose reads it).
        dupe: fc.option(fc.constantFrom('alg', 'typ', 'kid'), { freq: 3, nil: undefined }),
        decoy: jsonText,
        omitKid: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))),
        omitTyp: fc.integer({ min: 0, max: 20 }).map((n) => n === 0),
      }),
    )
    .map(({ h, dupe, decoy, omitKid, omitTyp }) => {
      const members: [string, string][] = [];
      for (const [name, raw] of Object.entries(h)) {
        if (raw === null) continue;
        if ((name === 'kid' && omitKid) || (name === 'typ' && omitTyp)) continue;
        if (dupe === name) members.push([name, decoy]);
        members.push([name, raw]);
      }
      return object(members);
    });

const payloadArb = fc
  .record({
    iss: stringClaim(ISSUER),
    aud: fc.oneof(
      { weight: 30, arbitrary: fc.constant(j(AUDIENCE)) },
      fc.constantFrom(
        j([AUDIENCE]),
        j(['x', AUDIENCE]),
        j([AUDIENCE, AUDIENCE]),
        j([AUDIENCE, 1]),
        j([AUDIENCE, null]),
        j([]),
        j([[AUDIENCE]]),
        j('other'),
        j(['other']),
        j([`${AUDIENCE}/`]),
        j('urn:logto:organization:o1'),
      ),
      stringClaim(AUDIENCE),
    ),
    sub: stringClaim('app'),
    client_id: stringClaim('app'),
    jti: stringClaim('j'),
    scope: fc.option(stringClaim('read:products'), { freq: 8, nil: null }),
    scp: rare('["a"]', '["a","a"]', '[]'),
    organization_id: sometimes(stringClaim('org'), 10),
    exp: fc.option(timeClaim(-10, 60), { freq: 30, nil: null }),
    nbf: fc.option(timeClaim(-40, 10), { freq: 2, nil: null }),
    iat: fc.option(timeClaim(-40, 8), { freq: 30, nil: null }),
    proto: rare('{}', j({ exp: T + 100, iat: T }), 'null', j({ aud: AUDIENCE })),
    ctor: sometimes(jsonText, 6),
    foo: fc.option(jsonText, { freq: 3, nil: null }),
    cnfLike: rare(j({ 'x5t#S256': 'abc' })),
  })
  .chain((p) =>
    fc.record({
      p: fc.constant(p),
      dupe: fc.option(fc.constantFrom('exp', 'iss', 'aud', 'sub', 'iat', 'nbf'), {
        freq: 3,
        nil: undefined,
      }),
      decoy: jsonText,
    }),
  )
  .map(({ p, dupe, decoy }) => {
    const rename: Record<string, string> = {
      proto: '__proto__',
      ctor: 'constructor',
      cnfLike: 'cnf',
    };
    const members: [string, string][] = [];
    for (const [name, raw] of Object.entries(p)) {
      if (raw === null) continue;
      if (dupe === name) members.push([name, decoy]);
      members.push([rename[name] ?? name, raw]);
    }
    return object(members);
  });

const optsArb: fc.Arbitrary<Opts> = fc.record({
  audience: fc.constantFrom<string | string[]>(
    AUDIENCE,
    ['other', AUDIENCE],
    ['other'],
    [AUDIENCE],
  ),
  clockTolerance: fc.constantFrom(0, 0.5, 2.25, 5, 30),
  maxTokenAge: fc.constantFrom(undefined, undefined, 1, 20, 60, 0.5, 3600),
  requiredClaims: fc.subarray(
    ['scope', 'nbf', 'organization_id', 'foo', 'constructor', '__proto__', 'toString', 'exp'],
    { maxLength: 2 },
  ),
  strict: fc.boolean(),
});

/** One fresh verifier may not accept what jose refuses; cold, warm and guard must agree. */
const tally = { s1Accepted: 0, s1Stricter: 0, s2Accepted: 0, s2Signed: 0 };

async function compare(
  token: string,
  jwks: readonly unknown[],
  o: Opts,
  nowMs: number,
  label: string,
): Promise<void> {
  const jose = await cold(token, jwks, o, nowMs);
  if (jose === 'ok') tally.s1Accepted++;
  let lib;
  try {
    lib = await mine(token, jwks, o, nowMs);
  } catch (error) {
    // An option the library refuses at creation (a TypeError): nothing is accepted.
    expect(error).toBeInstanceOf(TypeError);
    return;
  }
  expect([lib.warm, lib.guard], label).toEqual([lib.cold, lib.cold]);
  if (jose !== 'ok') expect(lib.cold, `${label}\njose: ${jose}`).not.toBe('ok');
  if (jose === 'ok' && lib.cold !== 'ok') {
    tally.s1Stricter++;
    if (process.env.S29_LOG)
      console.log(`STRICTER ${lib.details.slice(0, 100)} :: ${label.slice(0, 600)}`);
  }
}

describe('broad differential against cold jose', () => {
  // SOUND: headers (alg among the key's and others, typ spellings and case, application/at+jwt,
  // kid of every type, crit with and without b64, b64, cty, x5c/x5t, zip, extra members, a
  // duplicate member before the real one), payloads (iss/aud/sub/client_id/jti/scope/exp/nbf/iat
  // of every JSON type, fractional, -0, 1e400, huge, arrays with duplicates, nested objects,
  // __proto__ and constructor members, \u escapes, NFD, zero-width), options (audience arrays,
  // fractional tolerance, maxTokenAge, requiredClaims incl. prototype names, strict on/off),
  // millisecond clocks and six key types: never accepted where jose refuses; cold = warm = guard.
  it('S1: headers x payloads x options x clocks x key types (seed 2929)', async () => {
    const caseArb = fc.constantFrom(...ALGS).chain((alg) =>
      fc.record({
        alg: fc.constant(alg),
        header: headerArb(keys[alg]),
        payload: payloadArb,
        opts: optsArb,
        nowMs: fc.integer({ min: -3000, max: 3000 }).map((d) => T * 1000 + d),
      }),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const key = keys[c.alg];
        const token = await signText(key, c.header, c.payload);
        await compare(
          token,
          [key.jwk],
          c.opts,
          c.nowMs,
          `${c.header} ${c.payload} ${j(c.opts)} @${c.nowMs}`,
        );
      }),
      { numRuns: Number(process.env.S29_RUNS ?? 1500), seed: Number(process.env.S29_SEED ?? 2929) },
    );
    // The property must reach both verdicts: accepted tokens, and refusals of every kind.
    expect(tally.s1Accepted).toBeGreaterThan(100);
  }, 60_000);

  // SOUND: the JWK's own members (use, key_ops, ext, alg, kid, crv) in every spelling jose reads
  // differently (key_ops duplicated, a string, ['sign'], ['verify','sign']; ext 'true'; use null
  // or 'SIG'; alg null, another alg, EdDSA vs Ed25519), against token headers whose alg ranges
  // over every algorithm and whose signature is made with the key's scheme for that alg (a P-384
  // key hashing SHA-256 for ES256, an RSA key signing PSS for RS256...): a one-key set never
  // accepts where jose refuses.
  it('S2: JWK members x token alg x signing scheme (seed 2930)', async () => {
    const often = <V>(good: V, ...others: V[]) =>
      fc.oneof({ weight: 4, arbitrary: fc.constant(good) }, fc.constantFrom(...others));
    const jwkArb = fc.record({
      use: often<unknown>('own', undefined, 'SIG', null, 'enc', 1),
      key_ops: often<unknown>(
        undefined,
        ['verify'],
        ['verify', 'verify'],
        'verify',
        ['sign'],
        ['verify', 'sign'],
        [],
        [1],
      ),
      ext: often<unknown>(undefined, true, false, 'true', 0),
      alg: often<unknown>(
        'own',
        undefined,
        null,
        '',
        'other',
        'EdDSA',
        'Ed25519',
        'RS256',
        'PS256',
      ),
      kid: often<unknown>('own', undefined, 5, ''),
    });
    const schemes: Record<string, AlgorithmIdentifier | RsaPssParams | EcdsaParams> = {
      ES256: { name: 'ECDSA', hash: 'SHA-256' },
      ES384: { name: 'ECDSA', hash: 'SHA-384' },
      ES512: { name: 'ECDSA', hash: 'SHA-512' },
      PSS32: { name: 'RSA-PSS', saltLength: 32 },
      PSS0: { name: 'RSA-PSS', saltLength: 0 },
      PSS64: { name: 'RSA-PSS', saltLength: 64 },
      PKCS1: { name: 'RSASSA-PKCS1-v1_5' },
      Ed25519: { name: 'Ed25519' },
    };
    const natural: Record<string, string> = {
      ES256: 'ES256',
      ES384: 'ES384',
      ES512: 'ES512',
      RS256: 'PKCS1',
      PS256: 'PSS32',
      EdDSA: 'Ed25519',
    };
    const caseArb = fc.constantFrom(...ALGS).chain((alg) =>
      fc.record({
        alg: fc.constant(alg),
        jwk: jwkArb,
        headerAlg: often(alg, ...DEFAULT_ALGS),
        scheme: often(natural[alg] as string, ...Object.keys(schemes)),
        withKid: fc.boolean(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const key = keys[c.alg];
        const { name } = key.privateKey.algorithm as { name: string };
        const scheme = schemes[c.scheme] as { name: string };
        // RSASSA and RSA-PSS keys are distinct WebCrypto keys: sign with the one we have.
        const fits = scheme.name === name || (name === 'ECDSA' && scheme.name === 'ECDSA');
        if (!fits) return;
        const jwk: Record<string, unknown> = { ...key.jwk };
        for (const [member, value] of Object.entries(c.jwk)) {
          if (value === 'own') continue;
          if (value === undefined) delete jwk[member];
          else jwk[member] = value === 'other' ? (c.alg === 'ES256' ? 'ES384' : 'ES256') : value;
        }
        const header = j({
          alg: c.headerAlg,
          typ: 'at+jwt',
          ...(c.withKid ? { kid: key.kid } : {}),
        });
        const payload = j(m2mClaims());
        const token = await signText(key, header, payload, scheme as AlgorithmIdentifier);
        tally.s2Signed++;
        let jose: string;
        try {
          await jwtVerify(
            token,
            createLocalJWKSet({ keys: [jwk as JWK] }),
            joseOptions(DEFAULTS, undefined),
          );
          jose = 'ok';
        } catch (error) {
          jose = `refused: ${(error as Error).message}`;
        }
        let lib: string;
        try {
          const verifier = createVerifier({
            issuer: ISSUER,
            audience: AUDIENCE,
            jwks: { keys: [jwk as JWK] },
          });
          lib = await outcome(verifier.verify(token));
          expect(await outcome(verifier.verify(token))).toBe(lib);
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError); // a set with no usable key: refused at creation
          return;
        }
        if (jose !== 'ok')
          expect(lib, `${j(jwk)} ${header} ${c.scheme}: jose ${jose}`).not.toBe('ok');
        // And strict, not broken: the plain, well-formed case is accepted as jose accepts it.
        if (jose === 'ok') {
          tally.s2Accepted++;
          expect(lib, `${j(jwk)} ${header} ${c.scheme}`).toBe('ok');
        }
      }),
      { numRuns: Number(process.env.S29_RUNS ?? 1500), seed: Number(process.env.S29_SEED ?? 2930) },
    );
    expect(tally.s2Signed).toBeGreaterThan(300);
    expect(tally.s2Accepted).toBeGreaterThan(20);
  }, 60_000);

  // SOUND: every `typ` spelling RFC 9068 §2.1 and jose's normalisation agree on gets one answer
  // from both (accepted exactly when jose accepts), strict mode on.
  it('S3: typ spellings agree with jose exactly', async () => {
    const key = keys.ES384;
    const spellings = [
      'at+jwt',
      'AT+JWT',
      'At+Jwt',
      'application/at+jwt',
      'APPLICATION/AT+JWT',
      'application/AT+jwt',
      'jwt',
      'JWT',
      'application/jwt',
      'at+jwt ',
      ' at+jwt',
      'application/ at+jwt',
      'x/at+jwt',
      'application/application/at+jwt',
      'at+jwt;',
      'application/at+jwt; charset=utf-8',
      'at\u212ajwt',
      'AT+JWT\u0130',
      'at+jwt\u0000',
      '',
      'dpop+jwt',
      'application/dpop+jwt',
    ];
    const differ: string[] = [];
    for (const typ of spellings) {
      const token = await mint(key, m2mClaims(), { typ });
      const jose = await cold(token, [key.jwk]);
      const lib = await mine(token, [key.jwk]);
      if ((jose === 'ok') !== (lib.cold === 'ok'))
        differ.push(`${j(typ)}: jose ${jose}, library ${lib.cold}`);
    }
    expect(differ).toEqual([]);
  });
});
