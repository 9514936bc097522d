/**
 * Adversarial review, session 21: output hygiene. Everything a client controls that reaches an
 * operator (onRejected `details`, `node:diagnostics_channel` events, OpenTelemetry metric and span
 * attributes, health(), WarmUpError, warnings) or another client (`AuthError` message, body and
 * headers, `WWW-Authenticate`): control and bidi characters (log injection, display spoofing),
 * ill-formed Unicode, any part of a token or a DPoP proof echoed, sizes and cardinalities that
 * grow with input, header injection through configuration, internals (URL queries, stack frames).
 *
 * The bugs it found carry a `Was a bug:` note (fixed in the same session: src/safe-text.ts, used
 * by `clip()` in src/errors.ts and by src/option-checks.ts; URLs in a fetch error's message shown
 * as `displayUrl` shows them); the properties that already held are the other tests.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { formatWithOptions, inspect } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier, sendAuthError, WarmUpError } from 'resource-guard';
import type {
  KeySourceError,
  RejectionEvent,
  RejectionReason,
  Requirements,
  Verifier,
  VerifierOptions,
} from 'resource-guard';
import { REASONS } from '../src/errors.ts';
import { ath, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { observatory } from './helpers/observatory.ts';
import { faces, isWellFormed, strings } from './helpers/surfaces.ts';

let key: TestKey; // the issuer's
let attacker: TestKey; // anyone's own key
let proofKey: ProofKey; // a client's DPoP key

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

/** Visible text in every hostile value: what an escaped rendering must still show. */
const VISIBLE = 'vz9q';
/**
 * Every class of character that must not reach a log line as is: CR LF (a forged log line), NUL,
 * ESC (terminal escape sequences), DEL, C1 (U+0085 NEL is a line break to many viewers, U+009B a
 * CSI), U+2028/2029 (line and paragraph separators: JSON.stringify leaves them raw), and the bidi
 * controls (U+202E RLO, U+2066-2069 isolates, U+200E/200F marks, U+061C: Trojan-source display
 * spoofing). JSON.stringify escapes only the C0 range: a JSON logger passes the rest through.
 */
const CONTROLS =
  '\r\n2026-01-01 INFO accepted\u0000\u001b[31m\u007f\u0085\u009b\u2028\u2029\u202e\u2066\u200e\u061c';
const HOSTILE = `${VISIBLE}${CONTROLS}end`;

/** The characters of `text` that no log line should carry as is (lone surrogates included). */
function unsafeCharacters(text: string): string[] {
  const found: string[] = [];
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (
      code < 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      code === 0x2028 ||
      code === 0x2029 ||
      code === 0x061c ||
      code === 0x200e ||
      code === 0x200f ||
      (code >= 0x202a && code <= 0x202e) ||
      (code >= 0x2066 && code <= 0x2069) ||
      (code >= 0xd800 && code <= 0xdfff) // only a lone surrogate is one character here
    ) {
      found.push(`U+${code.toString(16).toUpperCase().padStart(4, '0')}`);
    }
  }
  return found;
}

/** An HTTP/1.1 body, chunked or not. */
function dechunk(head: string, body: string): string {
  if (!/^transfer-encoding: chunked$/im.test(head)) return body;
  let out = '';
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    const size = Number.parseInt(body.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** A node-shaped request, as adapters hand it to the verifier. */
function request(
  authorization: string,
  extra: Record<string, string> = {},
  { method = 'GET', url = '/products' } = {},
) {
  const headers: Record<string, string> = { host: 'api.shop.example', authorization, ...extra };
  return { method, url, headers, rawHeaders: Object.entries(headers).flat() };
}

const unsigned = (header: Record<string, unknown>, payload = m2mClaims()) =>
  rawToken({ alg: 'ES256', typ: 'at+jwt', kid: key.kid, ...header }, payload, 'AAAA');

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

async function refusal(attempt: Promise<unknown>): Promise<AuthError> {
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof AuthError)) throw new Error(`expected an AuthError, got ${String(error)}`);
  return error;
}

/**
 * One place where client-chosen text reaches onRejected's details: how a request puts `value`
 * there, the reason it is refused with, and the detail that quotes it.
 */
interface Place {
  readonly name: string;
  readonly reason: RejectionReason;
  /** Who can write it: anyone, a holder of a DPoP-bound token, or a holder of any valid token. */
  readonly who: 'anyone' | 'a DPoP token holder' | 'a valid token holder' | 'the issuer (signed)';
  run(verifier: Verifier, value: string): Promise<unknown>;
  quote(details: Readonly<Record<string, unknown>>): unknown;
}

const bound = () => mint(key, m2mClaims({ cnf: { jkt: proofKey.jkt } }));

const PLACES: readonly Place[] = [
  {
    name: 'token header kid (unknown_kid)',
    reason: 'unknown_kid',
    who: 'anyone',
    run: async (v, value) => v.verify(await mint(attacker, m2mClaims(), { kid: value })),
    quote: (d) => d.kid,
  },
  {
    name: 'token claim iss (issuer_mismatch)',
    reason: 'issuer_mismatch',
    who: 'anyone',
    run: (v, value) => v.verify(unsigned({}, m2mClaims({ iss: value }))),
    quote: (d) => d.actual,
  },
  {
    name: 'token claim aud (audience_mismatch)',
    reason: 'audience_mismatch',
    who: 'anyone',
    run: (v, value) => v.verify(unsigned({}, m2mClaims({ aud: [value] }))),
    quote: (d) => d.actual,
  },
  {
    name: 'token header alg (alg_not_allowed)',
    reason: 'alg_not_allowed',
    who: 'anyone',
    run: (v, value) => v.verify(unsigned({ alg: value })),
    quote: (d) => d.actual,
  },
  {
    name: 'token header typ (typ_mismatch)',
    reason: 'typ_mismatch',
    who: 'anyone',
    run: (v, value) => v.verify(unsigned({ typ: value })),
    quote: (d) => d.actual,
  },
  {
    name: 'token header crit (unsupported_crit)',
    reason: 'unsupported_crit',
    who: 'anyone',
    run: (v, value) => v.verify(unsigned({ crit: [value] })),
    quote: (d) => d.crit,
  },
  {
    name: 'DPoP proof header typ (dpop_proof_invalid)',
    reason: 'dpop_proof_invalid',
    who: 'a DPoP token holder',
    run: async (v, value) => {
      const token = await bound();
      const dpop = await proof(proofKey, 'GET', `${ORIGIN}/products`, token, {
        header: { typ: value },
      });
      return v.authenticate(request(`DPoP ${token}`, { dpop }));
    },
    quote: (d) => d.typ,
  },
  {
    name: 'DPoP proof header alg (dpop_proof_alg)',
    reason: 'dpop_proof_alg',
    who: 'a DPoP token holder',
    run: async (v, value) => {
      const token = await bound();
      const dpop = await proof(proofKey, 'GET', `${ORIGIN}/products`, token, {
        header: { alg: value },
      });
      return v.authenticate(request(`DPoP ${token}`, { dpop }));
    },
    quote: (d) => d.actual,
  },
  {
    name: 'DPoP proof claim htm (dpop_htm_mismatch), read before the proof signature',
    reason: 'dpop_htm_mismatch',
    who: 'a DPoP token holder',
    run: async (v, value) => {
      const token = await bound();
      const dpop = await proof(proofKey, value, `${ORIGIN}/products`, token);
      return v.authenticate(request(`DPoP ${token}`, { dpop }));
    },
    quote: (d) => d.actual,
  },
  {
    // Express, Koa, Fastify, Hono and Nest decode route parameters: `/orgs/%0D%0A...` is CR LF.
    name: "a route's organization from a decoded URL parameter (organization_mismatch)",
    reason: 'organization_mismatch',
    who: 'a valid token holder',
    run: async (v, value) => {
      const guard = v.guard({});
      return guard(request(`Bearer ${await mint(key)}`), { organization: value });
    },
    quote: (d) => d.expected,
  },
  {
    name: 'a signed sub on a machine-only route (machine_required)',
    reason: 'machine_required',
    who: 'the issuer (signed)',
    run: async (v, value) =>
      v.verify(await mint(key, m2mClaims({ sub: value })), { machine: true } as Requirements),
    quote: (d) => d.subject,
  },
  {
    name: 'a signed custom claim on a claimEquals route (claim_mismatch)',
    reason: 'claim_mismatch',
    who: 'the issuer (signed)',
    run: async (v, value) =>
      v.verify(await mint(key, m2mClaims({ department: value })), {
        claimEquals: { department: 'sales' },
      }),
    quote: (d) => d.actual,
  },
];

// ---------------------------------------------------------------------------------------------
// 1. Control and bidi characters in onRejected details
// ---------------------------------------------------------------------------------------------

describe('control and bidi characters from the request reach onRejected details', () => {
  // The harness of the bug below: each place is reached, with its reason, and its detail quotes
  // the value (a plain visible value, which any fix keeps as is).
  it.each(PLACES)('harness: $name is refused as such and quoted ($who)', async (place) => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const value = `${VISIBLE}-plain-${place.reason}`;
    const error = await refusal(place.run(verifier, value));
    expect(error.reason).toBe(place.reason);
    expect(rejections.at(-1)?.reason).toBe(place.reason);
    expect(JSON.stringify(place.quote(error.details))).toContain(value);
    // Client faces never show it.
    expect(faces(error)).not.toContain(VISIBLE);
  });

  // Was a bug: details quote client-chosen strings verbatim: `clip()` in src/errors.ts (the one place
  // every Rejection's details pass through) bounds a string's length (200) but keeps every
  // character. A token's kid, iss, aud, alg, typ or crit (anyone, before any signature check), a
  // DPoP proof's typ, alg or htm (a holder of a bound token: htm is read before the proof's
  // signature), a route's organization taken from a URL-decoded path parameter (any valid token
  // holder: `/orgs/%0D%0A...`), and signed claims (sub, custom claims) all reach onRejected's
  // `details` (and `AuthError.details`) with CR, LF, NUL, ESC, DEL, C1 controls (U+0085 NEL,
  // U+009B CSI), U+2028/2029 and bidi overrides (U+202E, U+2066-2069) intact. An operator
  // formatting details as text (`console.log(`refused kid=${details.kid}`)`, syslog, a
  // logfmt line) gets forged log lines and terminal escape sequences; even a JSON logger passes
  // C1, U+2028/2029 and the bidi controls through (JSON.stringify escapes only U+0000-U+001F),
  // which spoof what a log viewer displays. A demanding user expects details safe to print.
  // Fix: in `clip()` (src/errors.ts), escape every such character in every string, keys
  // included (e.g. `\u000a`-style, or JSON-style `\n`, `\u202e`), after the length cut so the
  // visible text stays recognisable; one place, every field, every reason.
  it.each(PLACES)(
    'details never carry control, C1, line-separator or bidi characters: $name',
    async (place) => {
      const rejections: RejectionEvent[] = [];
      const verifier = verifierWith(rejections);
      const error = await refusal(place.run(verifier, HOSTILE));
      expect(error.reason).toBe(place.reason);
      const event = rejections.at(-1) as RejectionEvent;
      const text = strings(event.details).join(' | ');
      expect(text).toContain(VISIBLE); // still recognisable
      expect(unsafeCharacters(text)).toEqual([]);
    },
  );

  // Was a bug (the same root cause, seen through the project's own example): examples/config.ts logs
  // every rejection with `console.warn(`rejected: ${event.reason}`, event.details)`. Node's
  // util.inspect escapes C0, DEL and C1 in strings, but prints U+2028/2029 and the bidi controls
  // (U+202E, U+2066, U+200E, U+061C) raw: an anonymous client's kid reorders what the operator's
  // terminal or log viewer shows (Trojan-source style), and U+2028 breaks the line in viewers
  // that honour it. Fix: the escaping proposed in `clip()` (src/errors.ts).
  it("examples/config.ts's own rejection log line shows no bidi control or line separator", async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    await refusal(verifier.verify(await mint(attacker, m2mClaims(), { kid: HOSTILE })));
    const event = rejections.at(-1) as RejectionEvent;
    const line = formatWithOptions(
      { colors: false, breakLength: Infinity },
      `rejected: ${event.reason}`,
      event.details,
    );
    expect(line).toContain(VISIBLE);
    expect(line).not.toMatch(/[\r\n]/); // util.inspect already escapes these ...
    expect(unsafeCharacters(line)).toEqual([]); // ... but not U+2028/2029 or bidi controls
  });

  it('the same hostile values never reach events, metrics, health() or any client face', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const errors: AuthError[] = [];
    for (const place of PLACES) errors.push(await refusal(place.run(verifier, HOSTILE)));
    expect(errors.map((e) => e.reason)).toEqual(PLACES.map((p) => p.reason));
    const shown = [
      JSON.stringify(seen.events.map((e) => e.message)),
      await seen.exported(),
      JSON.stringify(verifier.health()),
      ...errors.map(faces),
    ].join('\n');
    expect(shown).not.toContain(VISIBLE);
    // Headers, bodies and messages: printable ASCII only.
    for (const error of errors) {
      for (const value of Object.values(error.headers)) expect(value).toMatch(/^[\x20-\x7e]*$/);
      expect(JSON.stringify(error.body)).toMatch(/^[\x20-\x7e]*$/);
      expect(error.message).toMatch(/^[\x20-\x7e]*$/);
    }
  });

  it('sizes: a 5,000-character value in each place stays within 200 characters per string', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections, { maxTokenLength: 65_536 });
    for (const place of PLACES) {
      await refusal(place.run(verifier, `${VISIBLE}${'w'.repeat(5000)}`));
    }
    expect(rejections).toHaveLength(PLACES.length);
    for (const { details } of rejections) {
      for (const text of strings(details)) expect(text.length).toBeLessThanOrEqual(201);
      expect(JSON.stringify(details).length).toBeLessThanOrEqual(2_300);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Ill-formed Unicode in details
// ---------------------------------------------------------------------------------------------

describe('ill-formed UTF-16 in onRejected details', () => {
  // Was a bug: `clip()` in src/errors.ts cuts a long string at 200 UTF-16 code units with
  // `value.slice(0, 200)`: when an astral character (an emoji, 2 code units) straddles the cut,
  // the detail ends in a lone high surrogate. Any anonymous client can place it (kid, iss, alg,
  // typ, aud ...). A log sink that encodes the string as UTF-8 (a file, a socket, pino's
  // destination) writes U+FFFD or, in strict encoders, throws; JSON parsers that validate reject
  // the line. Fix: in `clip()`, step back one code unit when the cut lands after a high
  // surrogate (or cut by code points).
  it('a string cut at 200 characters never ends in half a surrogate pair', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const kid = `${'k'.repeat(199)}\u{1F600}tail`; // the emoji's two units are the 200th and 201st
    await refusal(verifier.verify(await mint(attacker, m2mClaims(), { kid })));
    const details = (rejections.at(-1) as RejectionEvent).details;
    expect(rejections.at(-1)?.reason).toBe('unknown_kid');
    expect((details.kid as string).startsWith('k'.repeat(199))).toBe(true);
    expect(isWellFormed(details.kid as string)).toBe(true);
  });

  // Was a bug: a JSON `\uD800` escape in a token's header or payload decodes (JSON.parse) to a lone
  // surrogate; the strict UTF-8 decoder in src/jws-segment.ts only sees the escape's ASCII bytes.
  // It then reaches details as is (kid, iss, aud, alg, typ, crit ...), with the same effect as
  // above. Fix: the sanitising step proposed for `clip()` (src/errors.ts) replaces lone
  // surrogates (String.prototype.toWellFormed, or an escape).
  it('a lone surrogate written as a JSON escape in the token never reaches details', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const header = `{"alg":"ES256","typ":"at+jwt","kid":"${VISIBLE}\\ud800x"}`;
    const payload = JSON.stringify(m2mClaims());
    const token = `${Buffer.from(header).toString('base64url')}.${Buffer.from(payload).toString('base64url')}.AAAA`;
    await refusal(verifier.verify(token));
    expect(rejections.at(-1)?.reason).toBe('unknown_kid');
    const kid = (rejections.at(-1) as RejectionEvent).details.kid as string;
    expect(kid).toContain(VISIBLE);
    expect(isWellFormed(kid)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. JWKS URL secrets through a fetch error's message
// ---------------------------------------------------------------------------------------------

describe('a JWKS URL with a secret in its query', () => {
  const SECRET = 'S3CRETapikey9';
  const JWKS = `https://keys.tenant.example.test/oidc/jwks?api_key=${SECRET}`;

  // Was a bug: the README promises "URLs are shown without their query or credentials (an API key in a
  // JWKS URL never reaches a health page, an event or a metric)", and `displayUrl` does so for the
  // `url` fields. But the root cause of a network failure with no system error code is the
  // innermost error's *message*, as is (`innermostMessage` in src/errors.ts, via
  // `describeKeyFailure`), and several fetch implementations put the full URL in it: node-fetch's
  // `network timeout at: <url>`, `request to <url> failed, reason: ...`, many proxy and retry
  // wrappers (the `fetch` option exists for them). That message becomes health().lastError,
  // the keys:fetch and keys:state events' `error`/`lastError`, the OTel `error.type` metric
  // attribute and span status message (also an unbounded-cardinality attribute), WarmUpError's
  // message, and onRejected's `details.error`: the api_key lands on a public health page and in
  // the metrics backend. The hook's `cause` (KeySourceError → the fetch's own error) carries it
  // too, where the README says a query "is never in a hook's payload". Fix: in
  // `innermostMessage` (src/errors.ts) strip URLs from the message (replace every `scheme://...`
  // with its `displayUrl`), or report only a fixed `network error` (plus the error's
  // `name`/`code`) when there is no system code; and have KeySourceError (src/errors.ts) keep
  // the fetch's error only behind that redaction (or correct the README's promise about `cause`).
  it('a fetch error message quoting the URL never carries its query anywhere', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: JWKS,
      onRejected: (event) => rejections.push(event),
      // node-fetch v2's FetchError for its own timeout: no `code`, the URL in the message.
      fetch: (input) =>
        Promise.reject(
          Object.assign(new Error(`network timeout at: ${String(input)}`), {
            name: 'FetchError',
            type: 'request-timeout',
          }),
        ),
    });
    // The first request fetches (its rejection's cause is the fetch error); warm() then meets
    // the back-off, and reports the last failure.
    const error = await refusal(verifier.verify(await mint(key)));
    expect(error.reason).toBe('keys_unavailable');
    const warm = await verifier.warm().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(warm).toBeInstanceOf(WarmUpError);
    const surfaces = {
      health: JSON.stringify(verifier.health()),
      events: JSON.stringify(seen.events.map((e) => e.message)),
      otel: await seen.exported(),
      warmUp: (warm as WarmUpError).message,
      details: JSON.stringify(rejections.map((r) => r.details)),
      // The README: "a JWKS URL's query ... is never in a hook's payload".
      // The KeySourceError itself; its own `cause`, the error the user's fetch threw, is kept as
      // thrown (the README says so: a custom fetch may quote the URL whole).
      hookCause: rejections
        .map((r) => {
          const { name, message, url, code } = r.cause as KeySourceError;
          return JSON.stringify({ name, message, url, code });
        })
        .join('\n'),
      client: faces(error),
    };
    expect(
      rejections.some((r) => inspect((r.cause as KeySourceError).cause).includes(SECRET)),
    ).toBe(true);
    // The harness: the url fields are clean, so a leak comes from the quoted message.
    expect(verifier.health()[0]?.jwksUri).toBe('https://keys.tenant.example.test/oidc/jwks?…');
    const leaking = Object.entries(surfaces)
      .filter(([, text]) => text.includes(SECRET))
      .map(([where]) => where);
    expect(leaking).toEqual([]);
  });

  it('the URL fields themselves hide the query: a refused connection, everywhere', async () => {
    // A port nobody listens on: ECONNREFUSED (a system code, so no message is quoted).
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: `http://127.0.0.1:${port}/jwks?api_key=${SECRET}#frag`,
      onRejected: (event) => rejections.push(event),
    });
    // The first request fetches (its rejection has the fetch error as cause); warm() then meets
    // the back-off.
    const error = await refusal(verifier.verify(await mint(key)));
    expect(error.reason).toBe('keys_unavailable');
    expect(error.status).toBe(503);
    const warm = await verifier.warm().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(warm).toBeInstanceOf(WarmUpError);
    expect(rejections.at(-1)?.details).toMatchObject({
      url: `http://127.0.0.1:${port}/jwks?…`,
      error: 'ECONNREFUSED',
    });
    expect(verifier.health()[0]?.jwksUri).toBe(`http://127.0.0.1:${port}/jwks?…`);
    const cause = (rejections[0] as RejectionEvent).cause as { url?: string };
    expect(cause.url).toBe(`http://127.0.0.1:${port}/jwks?…`);
    expect(
      inspect(
        rejections.map((r) => r.cause),
        { depth: 10 },
      ),
    ).not.toContain(SECRET);
    const text = [
      JSON.stringify(verifier.health()),
      JSON.stringify(seen.events.map((e) => e.message)),
      await seen.exported(),
      (warm as WarmUpError).message,
      JSON.stringify(rejections.map((r) => r.details)),
      faces(error),
    ].join('\n');
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('#frag');
    // The client learns nothing of the outage's cause or the URL.
    expect(faces(error)).not.toContain('127.0.0.1');
    expect(faces(error)).not.toContain('ECONNREFUSED');
    expect(error.headers['retry-after']).toMatch(/^[1-9]\d*$/);
  });

  it('credentials in jwksUri are refused at start-up, and the TypeError does not echo them', () => {
    let message = '';
    try {
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: `https://user:${SECRET}@keys.example.test/jwks`,
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/credentials/);
    expect(message).not.toContain(SECRET);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Client faces: fixed text, no injection through configuration
// ---------------------------------------------------------------------------------------------

describe('what a client sees: fixed, header-safe, and never the request echoed', () => {
  const QUOTABLE = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/;

  it('every reason, on every challenge shape: fixed description, safe header, no details, cause or frames', () => {
    const secret = `${VISIBLE}-secret`;
    const reasons = Object.keys(REASONS) as RejectionReason[];
    expect(reasons.length).toBeGreaterThanOrEqual(50);
    const shapes = [
      { challenge: { realm: 'api' } },
      { challenge: { realm: 'api', dpopAlgs: 'ES256' }, scheme: 'DPoP' as const },
      { challenge: { realm: 'api', dpopAlgs: 'ES256', bearer: false } },
      {
        challenge: { resourceMetadata: 'https://api.example/.well-known/oauth-protected-resource' },
      },
    ];
    for (const reason of reasons) {
      for (const shape of shapes) {
        const error = new AuthError(reason, {
          ...shape,
          details: { kid: secret, nested: { token: secret } },
          cause: Object.assign(new Error(secret), {
            stack: `Error: ${secret}\n    at x (/srv/app.js:1:1)`,
          }),
          scopes: ['read:products'],
          retryAfter: 7,
        });
        expect(QUOTABLE.test(error.description)).toBe(true);
        expect(error.message).toBe(error.description);
        expect(error.body).toEqual({ error: error.code, error_description: error.description });
        expect(faces(error)).not.toContain(secret);
        expect(faces(error)).not.toMatch(/\bat .*:\d+:\d+/); // no stack frame
        expect(error.stack).toBe(`AuthError: ${error.description} (${reason})`);
        for (const value of Object.values(error.headers)) expect(value).toMatch(/^[\x20-\x7e]*$/);
        if (error.status === 503) {
          expect(error.headers['www-authenticate']).toBeUndefined();
          expect(error.headers['retry-after']).toBe('7');
        } else {
          // Each quoted parameter closes where it should: an even count of quotes, no escapes.
          const header = error.headers['www-authenticate'] as string;
          expect((header.match(/"/g) ?? []).length % 2).toBe(0);
          expect(header).not.toContain('\\');
        }
        expect(error.expose).toBe(error.status < 500);
      }
    }
  });

  it('AuthError built by hand with unsafe challenge values leaves them out, never breaks the header', () => {
    const error = new AuthError('insufficient_scope', {
      challenge: {
        realm: 'api", error="fake\r\nSet-Cookie: a=b',
        resourceMetadata: 'https://x/"\\',
        dpopAlgs: 'ES256',
      },
      scopes: ['read"', 'x\r\ny'],
    });
    const header = error.headers['www-authenticate'] as string;
    expect(header).not.toMatch(/fake|Set-Cookie|\r|\n|\\/);
    expect(header).not.toContain('scope=');
    expect((header.match(/"/g) ?? []).length % 2).toBe(0);
  });

  /** The TypeErrors of configuration and per-call requirements holding a hostile value. */
  async function configMessages(hostile: string): Promise<string[]> {
    const messages: string[] = [];
    const grab = (fn: () => unknown) => {
      try {
        fn();
        messages.push('(accepted)');
      } catch (error) {
        expect(error).toBeInstanceOf(TypeError);
        messages.push((error as Error).message);
      }
    };
    grab(() => createVerifier({ issuer: ISSUER, audience: AUDIENCE, realm: hostile }));
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
    });
    grab(() => verifier.guard({ scopes: [hostile] }));
    grab(() => verifier.guard({ [hostile]: true } as Requirements)); // an unknown key
    grab(() => verifier.guard({ scopes: ['ok', hostile.replace(/"/g, ' ')] })); // a space
    // Per call (an app building scopes from the request): a scope no token holds, so a 403
    // (session 28; it was a TypeError, a 500), never a challenge holding the value.
    const perCall = await verifier
      .authenticate(request(`Bearer ${await mint(key)}`), { scopes: [hostile] })
      .then(
        () => 'accepted',
        (e: unknown) => e,
      );
    expect(perCall).toBeInstanceOf(AuthError);
    expect(perCall).toMatchObject({ status: 403, reason: 'insufficient_scope' });
    const challenge = (perCall as AuthError).headers['www-authenticate'] as string;
    expect(challenge).not.toContain('scope=');
    expect(challenge).not.toContain(hostile.slice(0, 8));
    expect(messages).not.toContain('(accepted)');
    return messages;
  }

  it('realm and scopes cannot inject a challenge: refused at configuration; the message quotes at most 64 characters, C0 escaped', async () => {
    const messages = await configMessages(`x"${CONTROLS}${'w'.repeat(500)}`);
    for (const message of messages) {
      expect(message).not.toMatch(/[\r\n]/);
      expect(message).not.toContain('\u0000');
      expect(message).not.toContain('\u001b');
      expect(message).not.toContain('w'.repeat(65));
    }
  });

  // Was a bug: a TypeError about a list item or an unknown key quotes the value with
  // `JSON.stringify(value.slice(0, 64))` (`showItem` and the key echo in src/option-checks.ts):
  // C0 controls are escaped, but DEL, C1 controls (U+0085, U+009B), U+2028/2029 and the bidi
  // controls pass through raw. Usually configuration, but per-call requirements are checked the
  // same way, and an app that builds `scopes` from a request (`read:${req.params.kind}`) gets a
  // TypeError (its 500) whose message, printed by the framework's error log, carries the
  // client's characters. Fix: quote through the same escaping proposed for details (one helper
  // in src/errors.ts, used by `clip()` and by src/option-checks.ts).
  it('a configuration TypeError never carries DEL, C1, U+2028/2029 or bidi characters', async () => {
    const messages = await configMessages(`x"${CONTROLS}`);
    for (const message of messages) expect(unsafeCharacters(message)).toEqual([]);
  });

  it('a metadata resource and audiences unfit for a quoted string never break the challenge', async () => {
    // A resource path with a quote and a backslash: percent-encoded (or made a slash) in the URL.
    const meta = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      resourceMetadata: { resource: 'https://api.example/v1/"q\\r%0D%0A' },
    });
    const error = await refusal(meta.verify('opaque'));
    const header = error.headers['www-authenticate'] as string;
    expect(header).toContain(
      'resource_metadata="https://api.example/.well-known/oauth-protected-resource/v1/%22q/r%0D%0A"',
    );
    expect((header.match(/"/g) ?? []).length % 2).toBe(0);
    // An audience unfit for a quoted string is never the default realm.
    const odd = createVerifier({
      issuer: ISSUER,
      audience: [`urn:a"b`, `urn:c\\d`],
      jwks: { keys: [key.jwk] },
    });
    const oddError = await refusal(odd.verify('opaque'));
    expect(oddError.headers['www-authenticate']).toBe(
      'Bearer realm="api", error="invalid_token", error_description="The access token is not a JWT"',
    );
  });

  it('over a real socket: raw bytes (obs-text, bidi as UTF-8) in Authorization, DPoP and Cookie get 400/401 JSON, never 500, a hang or an echo', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      dpop: { origin: ORIGIN, mode: 'allowed' },
      cookie: 'session',
    });
    const server: Server = createServer((req, res) => {
      verifier.authenticate(req).then(
        () => res.writeHead(200).end('ok'),
        (error: unknown) => {
          if (error instanceof AuthError) return sendAuthError(res, error);
          res.writeHead(500).end('bug');
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const raw = (headers: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        socket.setTimeout(5000, () => reject(new Error('hang')));
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
        socket.on('error', reject);
        socket.end(
          Buffer.concat([
            Buffer.from(
              'GET /products HTTP/1.1\r\nHost: api.shop.example\r\nConnection: close\r\n',
            ),
            Buffer.from(headers, 'utf8'),
            Buffer.from('\r\n'),
          ]),
        );
      });
    const token = await mint(attacker, m2mClaims(), { kid: `${VISIBLE}kid` });
    const cases = [
      `Authorization: Bearer ${VISIBLE}\u202e\u2066abc\r\n`,
      `Authorization: Bearer\u00a0${VISIBLE}\r\n`,
      `Authorization: Bearer ${token}\u0085\r\n`,
      `Authorization: DPoP ${token}\r\nDPoP: ${VISIBLE}\u202e.x.y\r\n`,
      `Authorization: DPoP ${VISIBLE}\u00ff\r\nDPoP: a.b.c\r\n`,
      `Cookie: session=${VISIBLE}\u202e\u00e9; other=1\r\n`,
      `Cookie: session=${token}\r\n`,
      `Authorization: ${VISIBLE}\u202eScheme x\r\n`,
      `Authorization: Bearer ${'A'.repeat(9000)}\r\n`,
      `Authorization: Bearer a.b.c\r\nAuthorization: Bearer ${VISIBLE}.d.e\r\n`,
    ];
    for (const headers of cases) {
      const response = await raw(headers);
      const [head = '', ...rest] = response.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 (400|401) /);
      expect(response).not.toContain(VISIBLE);
      expect(response).not.toContain(token.split('.')[2] as string);
      expect(JSON.parse(dechunk(head, rest.join('\r\n\r\n')))).toMatchObject({
        error: expect.any(String),
        error_description: expect.any(String),
      });
      expect(response).toMatch(/^[\x20-\x7e\r\n]*$/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Tokens and proofs never echoed
// ---------------------------------------------------------------------------------------------

describe('no token, proof, signature, ath or proof jti anywhere', () => {
  it('every DPoP refusal (and an acceptance): details, events, metrics, client faces and the replay store see none of it', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const inserted: string[] = [];
    const verifier = verifierWith(rejections, {
      dpop: {
        origin: ORIGIN,
        mode: 'allowed',
        replay: {
          insertIfAbsent: (key: string) => {
            if (inserted.includes(key)) return false;
            inserted.push(key);
            return true;
          },
        },
      },
    });
    const token = await bound();
    const other = await bound();
    const secrets = new Set<string>([token, token.split('.')[2] as string, ath(token)]);
    const proofs: string[] = [];
    const make = async (
      method: string,
      url: string,
      forToken: string,
      parts: Parameters<typeof proof>[4] = {},
    ) => {
      const jti = `${VISIBLE}-jti-${proofs.length}-${Math.random().toString(36).slice(2)}`;
      const made = await proof(proofKey, method, url, forToken, {
        ...parts,
        payload: { jti, ...parts.payload },
      });
      proofs.push(made);
      for (const part of [made, ...made.split('.'), jti]) secrets.add(part);
      return made;
    };
    const good = await make('GET', `${ORIGIN}/products`, token);
    const outcomes: unknown[] = [];
    const send = async (dpop: string, url = '/products') =>
      outcomes.push(
        await verifier.authenticate(request(`DPoP ${token}`, { dpop }, { url })).then(
          () => 'accepted',
          (e: unknown) => e,
        ),
      );
    await send(good); // accepted
    await send(good); // replayed
    await send(await make('GET', `${ORIGIN}/products`, other)); // ath of another token
    await send(await make('GET', `${ORIGIN}/elsewhere`, token)); // htu
    await send(await make('POST', `${ORIGIN}/products`, token)); // htm
    await send(await make('GET', `${ORIGIN}/products`, token, { payload: { iat: 1 } })); // stale
    const forged = await make('GET', `${ORIGIN}/products`, token);
    await send(`${forged.slice(0, forged.lastIndexOf('.'))}.${'A'.repeat(86)}`); // signature
    await send(`${good}x`); // malformed
    expect(outcomes[0]).toBe('accepted');
    const reasons = outcomes.slice(1).map((o) => (o as AuthError).reason);
    expect(reasons).toEqual([
      'dpop_replayed',
      'dpop_ath_mismatch',
      'dpop_htu_mismatch',
      'dpop_htm_mismatch',
      'dpop_proof_stale',
      'dpop_proof_signature',
      'dpop_proof_invalid',
    ]);
    const text = [
      JSON.stringify(rejections.map((r) => r.details)),
      rejections.map((r) => inspect(r.cause, { depth: 10 })).join('\n'),
      JSON.stringify(seen.events.map((e) => e.message)),
      await seen.exported(),
      ...outcomes.slice(1).map((o) => faces(o as AuthError)),
      inserted.join('\n'),
    ].join('\n');
    for (const secret of [...secrets].filter((s) => s.length >= 8)) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain(`${VISIBLE}-jti`);
    // The replay store holds one fixed-size hash per accepted proof: never the jti or the proof.
    expect(inserted).toHaveLength(1);
    expect(inserted[0]).toMatch(/^[\w-]{43}$/);
  });

  it('jti: the access token jti (an identifier, not a credential) is quoted only by `revoked`; never the token', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections, { isRevoked: () => true });
    const jti = `${VISIBLE}-token-jti`;
    const token = await mint(key, m2mClaims({ jti }));
    const error = await refusal(verifier.verify(token));
    expect(error.reason).toBe('revoked');
    expect(rejections.at(-1)?.details).toEqual({ jti, clientId: 'app-123' });
    const all = `${JSON.stringify(rejections)}\n${faces(error)}`;
    expect(all).not.toContain(token.split('.')[2] as string);
    expect(all).not.toContain(token.split('.')[1] as string);
    expect(faces(error)).not.toContain(jti);
    // Any other refusal of the same token: no jti.
    const scoped = verifierWith(rejections);
    await refusal(scoped.verify(token, { scopes: ['admin'] }));
    expect(JSON.stringify(rejections.at(-1))).not.toContain(jti);
  });

  it('a cookie holding something else (a session id, a foreign JWT) is never echoed', async () => {
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections, { cookie: 'session' });
    const sessionId = `${VISIBLE}s%3Aabcdef.0123456789abcdef`;
    const foreign = await mint(attacker, m2mClaims({ iss: 'https://other.example' }));
    for (const value of [sessionId, foreign, `${VISIBLE}${'x'.repeat(10_000)}`]) {
      const error = await refusal(
        verifier.authenticate({ headers: { cookie: `theme=dark; session=${value}` } }),
      );
      expect([400, 401]).toContain(error.status);
      const text = `${JSON.stringify(rejections.at(-1))}\n${faces(error)}`;
      expect(text).not.toContain(VISIBLE);
      expect(text).not.toContain(foreign.split('.')[2] as string);
    }
  });

  it('AuthInfo as an app logs it (JSON, inspect, spread) never shows the token', async () => {
    const verifier = verifierWith([]);
    const token = await mint(key);
    const auth = await verifier.verify(token);
    expect(auth.token).toBe(token);
    const [, payload = '', signature = ''] = token.split('.');
    for (const text of [
      JSON.stringify(auth),
      inspect(auth, { depth: 10 }),
      JSON.stringify({ ...auth }),
      String(Object.keys(auth)),
    ]) {
      expect(text).not.toContain(signature);
      expect(text).not.toContain(payload);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Cardinality of what a valid-token holder controls
// ---------------------------------------------------------------------------------------------

describe('cardinality: values a token holder chooses per request', () => {
  it('300 distinct organizations, proof htm and proof typ: metrics and event shapes stay fixed', async () => {
    const seen = observatory(cleanups);
    const rejections: RejectionEvent[] = [];
    const verifier = verifierWith(rejections);
    const guard = verifier.guard({});
    const token = await mint(key);
    const dpopToken = await bound();
    const round = async (i: number) => {
      await refusal(guard(request(`Bearer ${token}`), { organization: `${VISIBLE}-org-${i}` }));
      const htm = await proof(proofKey, `${VISIBLE}M${i}`, `${ORIGIN}/products`, dpopToken);
      await refusal(verifier.authenticate(request(`DPoP ${dpopToken}`, { dpop: htm })));
      const typ = await proof(proofKey, 'GET', `${ORIGIN}/products`, dpopToken, {
        header: { typ: `${VISIBLE}t${i}` },
      });
      await refusal(verifier.authenticate(request(`DPoP ${dpopToken}`, { dpop: typ })));
    };
    for (let i = 0; i < 5; i++) await round(i);
    const before = await seen.series();
    const shapes = seen.shapes().size;
    for (let i = 5; i < 300; i++) await round(i);
    expect(rejections).toHaveLength(900);
    expect(await seen.series()).toEqual(before);
    expect(seen.shapes().size).toBe(shapes);
    // Three reasons, each first verified then answered from the cache: at most six series.
    expect(before.get('resource_guard.decisions')?.size).toBeLessThanOrEqual(6);
    expect(await seen.exported()).not.toContain(VISIBLE);
  }, 30_000);

  it('onRejected: a throwing hook, or one returning a rejected or never-settling promise, changes nothing', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    cleanups.push(() => process.off('unhandledRejection', onUnhandled));
    const hooks: ((event: RejectionEvent) => unknown)[] = [
      () => {
        throw new Error(`${VISIBLE} hook`);
      },
      () => Promise.reject(new Error(`${VISIBLE} hook`)),
      () => new Promise(() => undefined),
      () => ({ then: () => undefined }),
    ];
    for (const onRejected of hooks) {
      const verifier = createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { keys: [key.jwk] },
        onRejected,
      });
      const error = await refusal(verifier.verify(unsigned({ kid: `${VISIBLE}\r\n` })));
      expect(error.status).toBe(401);
      expect(faces(error)).not.toContain(VISIBLE);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(unhandled).toEqual([]);
  });
});
