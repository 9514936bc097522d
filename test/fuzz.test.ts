/**
 * Property tests (fast-check): whatever arrives in the Authorization header — random text,
 * unicode, mutated real tokens, huge segments, tokens signed with the real key over random or
 * hostile claims — the answer is an AuthError with a 4xx status, or a verified token whose claims
 * an independent oracle accepts. Never another exception, never a 5xx (the keys are up), never the
 * token in a hook payload.
 *
 * `npm test` runs a seeded sample; `npm run fuzz` runs FUZZ_RUNS (default 100,000) per property.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AuthError, createVerifier } from 'resource-guard';
import type { RejectionEvent, Verifier } from 'resource-guard';
import { startJwksServer } from './helpers/jwks-server.ts';
import type { JwksServer } from './helpers/jwks-server.ts';
import { AUDIENCE, b64url, ISSUER, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const SEED = Number(process.env.FUZZ_SEED ?? 6750);
const TOLERANCE = 5;

let jwks: JwksServer;
let key: TestKey;
let verifier: Verifier;
let valid: string;
const events: RejectionEvent[] = [];

beforeAll(async () => {
  key = await makeKey('ES256'); // the cheapest curve to sign many tokens with
  jwks = await startJwksServer([key.jwk]);
  verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: jwks.url,
    algorithms: ['ES256', 'RS256'],
    clockTolerance: TOLERANCE,
    cache: { maxEntries: 1000 },
    onRejected: (event) => events.push(event),
  });
  valid = await mint(key, {
    jti: 'fuzz',
    sub: 'app',
    client_id: 'app',
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 3600,
    scope: 'read:products',
    iss: ISSUER,
    aud: AUDIENCE,
  });
});
afterAll(() => jwks.close());

/** The answer to one request: 'ok' with claims, or the status of the AuthError. */
async function answer(authorization: string) {
  events.length = 0;
  try {
    const auth = await verifier.authenticate({ headers: { authorization } });
    return { status: 200, claims: auth.claims as Record<string, unknown> };
  } catch (error) {
    if (!(error instanceof AuthError)) throw error; // an escaping exception fails the property
    return { status: error.status, claims: undefined };
  }
}

function assertNoLeak(token: string) {
  if (token.length < 24) return;
  for (const event of events) {
    const text =
      JSON.stringify(event.details) + String((event.cause as Error | undefined)?.message ?? '');
    expect(text.includes(token)).toBe(false);
  }
}

/** An independent statement of what a valid access token is, for tokens signed with our key. */
function oracleAccepts(claims: Record<string, unknown>, header: Record<string, unknown>): boolean {
  const now = Date.now() / 1000;
  const str = (v: unknown) => typeof v === 'string';
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  const optional = (v: unknown, test: (v: unknown) => boolean) => v === undefined || test(v);
  const aud = claims.aud;
  return (
    typeof header.typ === 'string' &&
    ['at+jwt', 'application/at+jwt'].includes(header.typ.toLowerCase()) &&
    header.alg === 'ES256' &&
    !('crit' in header) &&
    !('jku' in header) &&
    !('jwk' in header) &&
    !('x5u' in header) &&
    claims.iss === ISSUER &&
    (aud === AUDIENCE ||
      (Array.isArray(aud) && aud.length > 0 && aud.every(str) && aud.includes(AUDIENCE))) &&
    str(claims.sub) &&
    str(claims.jti) &&
    str(claims.client_id) &&
    num(claims.exp) &&
    (claims.exp as number) > now - TOLERANCE &&
    num(claims.iat) &&
    (claims.iat as number) <= now + TOLERANCE &&
    optional(claims.nbf, (v) => num(v) && (v as number) <= now + TOLERANCE) &&
    optional(claims.scope, str) &&
    optional(claims.organization_id, str) &&
    optional(claims.scp, (v) => Array.isArray(v) && v.every(str))
  );
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64char = fc.constantFrom(...B64);
const numeric = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 2 ** 53, -(2 ** 53), 1e21, Number.MAX_VALUE),
  fc.string().map((s) => s),
  fc.constant(null),
  fc.boolean(),
  fc.constant(Math.floor(Date.now() / 1000) + 3600),
  fc.constant(Math.floor(Date.now() / 1000) - 3600),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });

/** Claims near the valid shape: every field can go missing, change type or take an edge value. */
const claimsArb = fc.record(
  {
    jti: fc.oneof(fc.constant('j'), anyJson),
    sub: fc.oneof(fc.constant('app'), anyJson),
    client_id: fc.oneof(fc.constant('app'), anyJson),
    iat: fc.oneof(fc.constant(Math.floor(Date.now() / 1000)), numeric),
    exp: fc.oneof(fc.constant(Math.floor(Date.now() / 1000) + 3600), numeric),
    nbf: numeric,
    scope: fc.oneof(fc.constant('read:products'), anyJson),
    scp: anyJson,
    iss: fc.oneof(
      fc.constant(ISSUER),
      fc.constantFrom(`${ISSUER}/`, 'https://tenant.example.test'),
      anyJson,
    ),
    aud: fc.oneof(fc.constant(AUDIENCE), fc.constant([AUDIENCE, 'x']), fc.constant([]), anyJson),
    organization_id: anyJson,
  },
  { requiredKeys: [] },
);
const headerArb = fc.record(
  {
    alg: fc.oneof(
      fc.constant('ES256'),
      fc.constantFrom('none', 'HS256', 'RS256', 'ES384', 'es256'),
      anyJson,
    ),
    typ: fc.oneof(
      fc.constant('at+jwt'),
      fc.constantFrom('JWT', 'AT+JWT', 'application/at+jwt', ''),
      anyJson,
    ),
    kid: fc.oneof(fc.constant('__KID__'), anyJson),
    crit: fc.array(fc.string()),
    jku: fc.webUrl(),
    jwk: anyJson,
  },
  { requiredKeys: [] },
);

describe('fuzzed Authorization headers', () => {
  it('random and unicode text: always a 400 or 401', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'grapheme' }),
          fc.string().map((s) => `Bearer ${s}`),
          fc.string({ unit: 'binary' }).map((s) => `bearer ${s}`),
          fc
            .array(fc.string({ unit: b64char, maxLength: 40 }), { maxLength: 6 })
            .map((p) => `Bearer ${p.join('.')}`),
        ),
        async (authorization) => {
          const { status } = await answer(authorization);
          expect([400, 401]).toContain(status);
          assertNoLeak(authorization);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('a real token mutated (bit flips, truncation, huge segments, swapped segments): never accepted', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ at: fc.nat(), char: b64char }).map(({ at, char }) => {
            const i = at % valid.length;
            return valid[i] === '.' || valid[i] === char
              ? `${valid}A`
              : valid.slice(0, i) + char + valid.slice(i + 1);
          }),
          fc.nat().map((n) => valid.slice(0, n % valid.length)),
          fc.integer({ min: 1, max: 20_000 }).map((n) => {
            const [h, p, s] = valid.split('.');
            return `${h}.${p}${'A'.repeat(n)}.${s}`;
          }),
          fc.constant(valid.split('.').reverse().join('.')),
          fc
            .string({ unit: b64char, minLength: 1, maxLength: 30 })
            .map((extra) => `${valid}.${extra}`),
        ),
        async (token) => {
          const { status } = await answer(`Bearer ${token}`);
          expect([400, 401]).toContain(status);
          assertNoLeak(token);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('random JSON objects as header and payload, unsigned: never accepted', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyJson,
        anyJson,
        fc.string({ unit: b64char }),
        async (header, payload, signature) => {
          const token = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${signature}`;
          const { status } = await answer(`Bearer ${token}`);
          expect([400, 401]).toContain(status);
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('signed with the real key over near-valid claims: accepted exactly when the oracle says so', async () => {
    await fc.assert(
      fc.asyncProperty(headerArb, claimsArb, async (rawHeader, claims) => {
        const header = { ...rawHeader };
        if (header.kid === '__KID__') header.kid = key.kid;
        const token = await signRaw(key, header, claims);
        const result = await answer(`Bearer ${token}`);
        const expected = oracleAccepts(claims, header) && header.kid === key.kid;
        expect(result.status === 200).toBe(expected);
        expect([200, 401]).toContain(result.status);
        assertNoLeak(token);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('raw JSON that JSON.stringify cannot write: 1e309, -0, duplicate keys, deep nesting', async () => {
    const now = Math.floor(Date.now() / 1000);
    const base = `"iss":"${ISSUER}","aud":"${AUDIENCE}","sub":"a","client_id":"a","jti":"j","iat":${now}`;
    const cases = [
      `{${base},"exp":1e309}`,
      `{${base},"exp":-1e309}`,
      `{${base},"exp":${now + 60},"exp":"soon"}`, // duplicate key: the last one wins, a string
      `{${base},"exp":${now + 60},"nbf":1e309}`,
      `{${base},"exp":${now + 60}.5e0,"iat":-0}`,
      `{${base},"exp":${now + 60},"scope":${'['.repeat(2000)}${']'.repeat(2000)}}`,
      `{${base},"exp":${now + 60},"aud":"x","aud":"${AUDIENCE}"}`,
    ];
    const statuses = [];
    for (const payload of cases) {
      const token = await signRaw(key, { alg: 'ES256', typ: 'at+jwt', kid: key.kid }, payload);
      statuses.push((await answer(`Bearer ${token}`)).status);
    }
    // 1e309 is Infinity, refused; the duplicate `exp` ends as a string, refused; the nested scope
    // is not a string, refused; -0 iat and fractional exp are fine; the duplicate aud ends valid.
    expect(statuses).toEqual([401, 401, 401, 401, 200, 401, 200]);
  });
});
