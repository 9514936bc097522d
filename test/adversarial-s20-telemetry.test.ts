/**
 * Adversarial review, session 20: what an unauthenticated attacker (forged, unsigned or
 * self-signed tokens and DPoP proofs, any header, any path) can make the operations surfaces
 * grow or show: OpenTelemetry series and spans, `node:diagnostics_channel` events, `health()`,
 * `onRejected`, `AuthError` (message, body, headers, stack, inspect, JSON), process warnings.
 *
 * Measured with the OpenTelemetry SDK's in-memory metric and span exporters and subscribers on
 * every channel, after 1,000 requests carrying distinct hostile values.
 */
import { inspect } from 'node:util';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, CHANNELS, createVerifier } from 'resource-guard';
import type { RejectionEvent, Verifier, VerifierOptions } from 'resource-guard';
import { makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { startJwksServer } from './helpers/jwks-server.ts';
import { clock } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { observatory } from './helpers/observatory.ts';
import { faces, strings } from './helpers/surfaces.ts';

/** In every hostile value; base64url-safe, so it also fits opaque tokens and header garbage. */
const M = 'zq7tlm';
const N = 1000;

let key: TestKey; // the issuer's
let attacker: TestKey; // the attacker's own
let proofKey: ProofKey;

beforeAll(async () => {
  [key, attacker, proofKey] = await Promise.all([
    makeKey('ES256'),
    makeKey('ES256'),
    makeProofKey(),
  ]);
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const total = (series: Map<string, Set<string>>) =>
  [...series.values()].reduce((sum, set) => sum + set.size, 0);

function verifierWith(rejections: RejectionEvent[], extra: Partial<VerifierOptions> = {}) {
  return createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [key.jwk] },
    dpop: { origin: ORIGIN, mode: 'allowed' },
    onRejected: (event) => rejections.push(event),
    ...extra,
  });
}

/** A node-shaped request (what adapters hand `authenticate`). */
function request(authorization: string, extra: Record<string, string> = {}, url = '/products') {
  const headers: Record<string, string> = { host: 'api.shop.example', authorization, ...extra };
  const rawHeaders = Object.entries(headers).flat();
  return { method: 'GET', url, headers, rawHeaders };
}

const bearer = (token: string) => request(`Bearer ${token}`);
const unsigned = (header: Record<string, unknown>, payload = m2mClaims()) =>
  rawToken({ alg: 'ES256', typ: 'at+jwt', ...header }, payload, 'AAAA');

/**
 * The i-th hostile request: every attacker-chosen place in turn, each with a value of its own
 * (carrying {@link M}). None can verify: forged, unsigned, or signed by the attacker's key.
 */
const VECTORS: readonly ((i: number) => Promise<ReturnType<typeof request>>)[] = [
  // kid, unknown; signed by the attacker
  async (i) => bearer(await mint(attacker, m2mClaims(), { kid: `${M}-kid-${i}` })),
  // iss
  async (i) => bearer(unsigned({ kid: key.kid }, m2mClaims({ iss: `https://${M}-${i}.x/oidc` }))),
  // alg
  async (i) => bearer(unsigned({ alg: `${M}-alg-${i}` })),
  // typ (a string)
  async (i) => bearer(unsigned({ typ: `${M}-typ-${i}` })),
  // aud
  async (i) => bearer(unsigned({ kid: key.kid }, m2mClaims({ aud: [`${M}-aud-${i}`] }))),
  // crit (strings)
  async (i) => bearer(unsigned({ crit: [`${M}-crit-${i}`] })),
  // jku / x5u naming the attacker's own key
  async (i) => bearer(unsigned({ jku: `https://${M}-${i}.x/jwks` })),
  // a header member and a claim name of its own, the real kid, the attacker's signature
  async (i) =>
    bearer(
      await mint(attacker, m2mClaims({ [`${M}_claim_${i}`]: 1 }), {
        kid: key.kid,
        [`${M}_hdr_${i}`]: `${M}${i}`,
      }),
    ),
  // sub, client_id, jti, scope: the attacker's, signature forged
  async (i) =>
    bearer(
      await mint(
        attacker,
        m2mClaims({
          sub: `${M}-sub-${i}`,
          client_id: `${M}-cid-${i}`,
          jti: `${M}-jti-${i}`,
          scope: `${M}:scope:${i} admin`,
        }),
        { kid: key.kid },
      ),
    ),
  // an opaque token
  async (i) => bearer(`${M}opaque${i}`),
  // a malformed Authorization field, another scheme, a garbage scheme name
  async (i) => request(`Bearer ${M}.${i}.x!`),
  async (i) => request(`${M}Scheme${i} ${M}${i}`),
  // DPoP: forged token, distinct proof (htu, jti, jwk member) and path
  async (i) => {
    const token = await mint(attacker, m2mClaims({ cnf: { jkt: proofKey.jkt } }), {
      kid: key.kid,
    });
    const path = `/${M}/path/${i}`;
    const dpop = await proof(proofKey, 'GET', `${ORIGIN}/${M}/htu/${i}`, token, {
      header: { jwk: { ...proofKey.publicJwk, [`${M}_jwk_${i}`]: `${M}${i}` } },
      payload: { jti: `${M}-proof-jti-${i}` },
    });
    return request(`DPoP ${token}`, { dpop }, path);
  },
  // DPoP: unknown kid, and a second DPoP header
  async (i) => {
    const token = await mint(attacker, m2mClaims({ cnf: { jkt: proofKey.jkt } }), {
      kid: `${M}-dpop-kid-${i}`,
    });
    const dpop = await proof(proofKey, 'GET', `${ORIGIN}/products`, token);
    return request(`DPoP ${token}`, { dpop }, `/${M}/${i}`);
  },
  // DPoP: two proofs (two fields), or one over maxProofLength
  async (i) => {
    const req = request(`DPoP ${M}.${i}.x`, { dpop: `${M}.a${i}.b` }, `/${M}/${i}`);
    return { ...req, rawHeaders: [...req.rawHeaders, 'DPoP', `${M}.c${i}.d`] };
  },
  async (i) => request(`DPoP ${M}.${i}.x`, { dpop: `${M}${i}.${'p'.repeat(9000)}.s` }),
];

async function flood(verifier: Verifier, count: number, from = 0): Promise<AuthError[]> {
  const errors: AuthError[] = [];
  for (let i = from; i < from + count; i++) {
    const req = await (
      VECTORS[i % VECTORS.length] as (i: number) => Promise<ReturnType<typeof request>>
    )(i);
    try {
      await verifier.authenticate(req);
      throw new Error(`hostile request ${i} was accepted`);
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      errors.push(error);
    }
  }
  return errors;
}

/** Every key path of a details object (`actual.foo.bar`), array indices as `[]`. */
function keyPaths(value: unknown, prefix = '', out = new Set<string>()): Set<string> {
  if (typeof value !== 'object' || value === null) return out;
  if (Array.isArray(value)) {
    for (const item of value) keyPaths(item, `${prefix}[]`, out);
    return out;
  }
  for (const [name, item] of Object.entries(value)) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    out.add(path);
    keyPaths(item, path, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. Cardinality
// ---------------------------------------------------------------------------------------------

describe('cardinality: 1,000 requests with distinct hostile values', () => {
  it('OpenTelemetry series, event variety, health() and warnings stop growing after one round', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    // Two rounds of every vector: every reason it can reach, cached or not.
    await flood(verifier, 2 * VECTORS.length);
    const before = await seen.series();
    const shapesBefore = seen.shapes().size;
    const healthBefore = JSON.stringify(verifier.health().map(({ ageSeconds: _, ...h }) => h));

    const errors = await flood(verifier, N - 2 * VECTORS.length, 2 * VECTORS.length);
    expect(errors).toHaveLength(N - 2 * VECTORS.length);
    const after = await seen.series();

    // Every vector reached the verifier and was published.
    const decisions = seen.events.filter(({ channel }) => channel === CHANNELS.decision);
    expect(decisions).toHaveLength(N);
    const reasons = new Set(decisions.map(({ message }) => message.reason));
    expect(reasons.size).toBeGreaterThanOrEqual(10);
    // No growth, and a small absolute number: one series per reason (and its duration).
    expect(after).toEqual(before);
    expect(after.get('resource_guard.decisions')?.size).toBe(reasons.size);
    expect(total(after)).toBeLessThanOrEqual(2 * reasons.size + 4);
    expect(seen.shapes().size).toBe(shapesBefore);
    expect(seen.shapes().size).toBeLessThanOrEqual(reasons.size + 4);
    // A static key set: no fetch, no span, whatever the kids.
    expect(seen.spans.getFinishedSpans()).toHaveLength(0);
    // health(): one entry, the configured issuer, unchanged.
    const health = verifier.health();
    expect(health.map((h) => h.issuer)).toEqual([ISSUER]);
    expect(JSON.stringify(health.map(({ ageSeconds: _, ...h }) => h))).toBe(healthBefore);
    // No warning at all (a warnOnce keyed by attacker input would show here).
    expect(seen.warnings.map((w) => `${w.name} ${w.message}`)).toEqual([]);
    // onRejected's reasons and codes are as bounded (its details are not: see below).
    expect(new Set(rejections.map((r) => r.reason)).size).toBe(reasons.size);
    expect(
      new Set(rejections.map((r) => `${r.code} ${r.status} ${r.description}`)).size,
    ).toBeLessThanOrEqual(reasons.size);
  }, 40_000);

  it('an unknown-kid flood against a fetched JWKS: fetches, spans and url.full stay one', async () => {
    const server = await startJwksServer([key.jwk]);
    cleanups.push(() => server.close());
    const seen = observatory(cleanups);
    const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: server.url });
    await verifier.warm();
    const hitsAfterWarm = server.hits;
    // 300 at once: they share whatever fetch there is (no listener pile-up, no warning).
    const tokens = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        mint(attacker, m2mClaims(), { kid: `${M}-fetch-kid-${i}` }),
      ),
    );
    const reasons = await Promise.all(
      tokens.map((token) =>
        verifier.verify(token).then(
          () => 'ok',
          (error: unknown) => (error as AuthError).reason,
        ),
      ),
    );
    expect(new Set(reasons)).toEqual(new Set(['unknown_kid']));
    expect(seen.warnings).toEqual([]);
    // Past the cooldown, another burst of new kids: one refetch for all of them.
    const time = clock();
    cleanups.push(() => vi.useRealTimers());
    time.advance(31);
    const more = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        mint(attacker, m2mClaims(), { kid: `${M}-later-kid-${i}` }),
      ),
    );
    await Promise.all(more.map((token) => verifier.verify(token).catch(() => undefined)));
    // Warmed just now, so within the cooldown: none for the first burst, one for the second.
    expect(server.hits - hitsAfterWarm).toBe(1);
    const series = await seen.series();
    expect(series.get('resource_guard.jwks.fetches')?.size).toBe(1);
    expect([...(series.get('resource_guard.jwks.fetches') ?? [])][0]).toContain(server.url);
    expect(seen.spans.getFinishedSpans()).toHaveLength(2); // warm(), and the one refetch
    expect(series.get('resource_guard.decisions')?.size).toBe(1);
    expect(series.get('resource_guard.keys.state')?.size).toBe(4);
    expect(await seen.exported()).not.toContain(M);
  });

  // Was a bug: `typ_mismatch` passes a non-string `typ` to `details.actual` as is, and
  // `unsupported_crit` passes `crit` as is (src/token.ts checkHeader). An object there puts
  // attacker-chosen *key names* into onRejected's details (and JSON.stringify(AuthError)): a log
  // pipeline that maps details into fields (Elasticsearch, Loki labels, pino → JSON columns) gets
  // one new field per request. Measured: 1,000 requests, typ = { "<M>k<i>": 1 } or
  // crit = { "<M>c<i>": 1 } → 1,003 distinct detail key paths (a bounded design would be 3).
  // `alg_not_allowed` and the DPoP proof's typ already map a non-string to null.
  it('onRejected details never carry attacker-chosen key names (typ, crit objects)', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    for (let i = 0; i < N; i++) {
      const header = i % 2 === 0 ? { typ: { [`${M}k${i}`]: 1 } } : { crit: { [`${M}c${i}`]: 1 } };
      await verifier.verify(unsigned(header)).catch(() => undefined);
    }
    expect(rejections).toHaveLength(N);
    expect(new Set(rejections.map((r) => r.reason))).toEqual(
      new Set(['typ_mismatch', 'unsupported_crit']),
    );
    const paths = new Set<string>();
    for (const { details } of rejections) keyPaths(details, '', paths);
    expect(paths.size).toBeLessThanOrEqual(20);
  });

  it('(the measure of the fixed bug above) the detail key paths stay fixed; metrics and events too', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    for (let i = 0; i < 200; i++) {
      const header = i % 2 === 0 ? { typ: { [`${M}k${i}`]: 1 } } : { crit: { [`${M}c${i}`]: 1 } };
      await verifier.verify(unsigned(header)).catch(() => undefined);
    }
    const paths = new Set<string>();
    for (const { details } of rejections) keyPaths(details, '', paths);
    expect(paths.size).toBeLessThanOrEqual(3); // expected, actual, crit: no attacker keys (was 203)
    // ... while metrics and events stay at two reasons.
    expect((await seen.series()).get('resource_guard.decisions')?.size).toBe(2);
    expect(seen.shapes().size).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Leaks
// ---------------------------------------------------------------------------------------------

describe('leaks: what hostile values reach', () => {
  it('no hostile value reaches events, metrics, spans, health(), warnings or any face of the AuthError', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const errors = await flood(verifier, 3 * VECTORS.length);
    const surfaces = [
      JSON.stringify(seen.events.map((e) => e.message)),
      await seen.exported(),
      JSON.stringify(verifier.health()),
      seen.warnings.map((w) => `${w.name} ${w.message}`).join('\n'),
      ...errors.map(faces),
    ].join('\n');
    expect(surfaces).not.toContain(M);
    // Every client-facing header is printable ASCII.
    for (const error of errors) {
      for (const value of Object.values(error.headers)) expect(value).toMatch(/^[\x20-\x7e]*$/);
    }
  });

  it('onRejected: never the token, its signature, or the proof; strings ≤ 200; the cause says nothing of ours', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const secrets: string[] = [];
    for (let i = 0; i < 3 * VECTORS.length; i++) {
      const req = await (
        VECTORS[i % VECTORS.length] as (i: number) => Promise<ReturnType<typeof request>>
      )(i);
      const [, credential = ''] = (req.headers.authorization ?? '').split(' ');
      if (credential.split('.').length === 3) {
        secrets.push(credential, credential.split('.')[2] as string);
      }
      if (req.headers.dpop !== undefined) secrets.push(req.headers.dpop);
      await verifier.authenticate(req).catch(() => undefined);
    }
    expect(rejections).toHaveLength(3 * VECTORS.length);
    for (const event of rejections) {
      const text = `${JSON.stringify(event.details)}\n${inspect(event.cause, { depth: 10 })}`;
      for (const secret of secrets.filter((s) => s.length > 8)) expect(text).not.toContain(secret);
      for (const leaf of strings(event.details)) expect(leaf.length).toBeLessThanOrEqual(201);
      // jose's or our own cause: never attacker text.
      expect(inspect(event.cause, { depth: 10 })).not.toContain(M);
    }
    // The sub, client_id, jti and scope the attacker wrote never reach details (checked after
    // the signature only); the DPoP proof's htu, jti, jwk and the path neither (never parsed
    // before the token verifies).
    const all = JSON.stringify(rejections.map((r) => r.details));
    for (const part of [
      '-sub-',
      '-cid-',
      '-jti-',
      ':scope:',
      '_claim_',
      '/htu/',
      '-proof-jti-',
      '_jwk_',
      '/path/',
    ]) {
      expect(all).not.toContain(`${M}${part}`);
    }
  });

  it('property: any text in kid, iss, typ, alg, aud, crit, jku reaches no event, metric, health or client-facing face', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const places: Record<string, (text: string) => string> = {
      kid: (t) => unsigned({ kid: t }),
      iss: (t) => unsigned({ kid: key.kid }, m2mClaims({ iss: t })),
      typ: (t) => unsigned({ typ: t }),
      alg: (t) => unsigned({ alg: t }),
      aud: (t) => unsigned({ kid: key.kid }, m2mClaims({ aud: [t, `${t}2`] })),
      crit: (t) => unsigned({ crit: [t] }),
      jku: (t) => unsigned({ jku: t }),
    };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(places)),
        fc.string({ unit: 'binary', maxLength: 40 }),
        fc.constantFrom('', '\r\n', '\u2028', '\u001b[2J', '"', '\\'),
        async (place, text, control) => {
          seen.events.length = 0;
          const hostile = `${M}${control}${text}${'w'.repeat(250)}`;
          const token = (places[place] as (t: string) => string)(hostile);
          let error: unknown;
          await verifier.verify(token).catch((e: unknown) => (error = e));
          expect(error).toBeInstanceOf(AuthError);
          const shown = [
            JSON.stringify(seen.events.map((e) => e.message)),
            JSON.stringify(verifier.health()),
            faces(error as AuthError),
          ].join('\n');
          expect(shown).not.toContain(M);
          const last = rejections.at(-1) as RejectionEvent;
          for (const leaf of strings(last.details)) expect(leaf.length).toBeLessThanOrEqual(201);
        },
      ),
      { numRuns: 150 },
    );
    expect(await seen.exported()).not.toContain(M);
  });

  it("JSON.stringify(AuthError) shows details (bounded), never its cause, the token or a stack's frames", async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    // key_mismatch carries jose's error as cause: an ES384 alg under the ES256 kid.
    const token = unsigned(
      { alg: 'ES384', kid: key.kid, [`${M}x`]: 1 },
      m2mClaims({ sub: `${M}s` }),
    );
    const error = await verifier.verify(token).then(
      () => undefined,
      (e: unknown) => e as AuthError,
    );
    expect(error?.reason).toBe('key_mismatch');
    expect(error?.cause).toBeDefined();
    const json = JSON.stringify(error);
    expect(json).not.toContain(token.split('.')[2] as string);
    expect(json).not.toContain(M);
    expect(json).not.toContain('cause');
    expect(json).not.toMatch(/\bat .*\(.*:\d+:\d+\)/);
    expect(Object.keys(error as object)).not.toContain('cause');
  });

  // Was a bug: the same root cause as the key-name finding: a non-string `typ` or `crit` keeps its
  // nesting (clip() allows 10 × 10 entries, keys and values 200 characters each), so one
  // rejection's details hold up to ~40 KB of attacker text where every other reason holds a few
  // strings of ≤ 200 (an `aud` list, the largest, ≤ 10 × 200). Measured with maxTokenLength
  // 262,144: details JSON 42,892 characters for a typ object (crit alike); with the default
  // 8,192 the token's own size is the limit (~5.5 KB). Each such rejection is a 43 KB log line.
  it('one rejection never puts more than ~4 KB of attacker text into onRejected details', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections, { maxTokenLength: 262_144 });
    const wide = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [
        `${i}${'k'.repeat(300)}`,
        Object.fromEntries(
          Array.from({ length: 10 }, (_, j) => [`${j}${'j'.repeat(300)}`, 'v'.repeat(300)]),
        ),
      ]),
    );
    for (const header of [{ typ: wide }, { crit: wide }]) {
      await verifier.verify(unsigned(header)).catch(() => undefined);
    }
    expect(rejections.map((r) => r.reason)).toEqual(['typ_mismatch', 'unsupported_crit']);
    for (const { details } of rejections) {
      expect(JSON.stringify(details).length).toBeLessThanOrEqual(4096);
    }
  });

  it('(measure beside the fixed bug above) strings-only places stay within ~2.2 KB', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections, { maxTokenLength: 262_144 });
    const long = 'x'.repeat(5000);
    const tokens = [
      unsigned(
        { kid: key.kid },
        m2mClaims({ aud: Array.from({ length: 50 }, (_, i) => `${i}${long}`) }),
      ),
      unsigned({ kid: key.kid }, m2mClaims({ iss: `${long}://tenant.example.test/oidc` })),
      unsigned({ typ: long }),
      unsigned({ alg: long }),
      unsigned({ crit: Array.from({ length: 50 }, () => long) }),
      await mint(attacker, m2mClaims(), { kid: long }),
    ];
    for (const token of tokens) await verifier.verify(token).catch(() => undefined);
    expect(rejections).toHaveLength(tokens.length);
    for (const { details } of rejections) {
      expect(JSON.stringify(details).length).toBeLessThanOrEqual(2_300);
    }
  });
});
