/**
 * Adversarial review of session 21's output-hygiene change (src/safe-text.ts, its use by `clip()`,
 * `innermostMessage()` and `displayUrl()` in src/errors.ts, and by `quote()` in
 * src/option-checks.ts).
 *
 * A `Was a bug:` note marks what the review found and the same session fixed (the quadratic URL
 * scan, queries written other ways, invisible tag and format characters, credentials in
 * unparsable URLs, claim names in configuration errors); the other tests are properties that held
 * (some document a limit judged acceptable, and say so).
 *
 * Timings measured on the review machine (Node 20, tsx), for the report:
 * - safeText of a short kid: well under 1 µs; 1 MB of NUL: 0.03 ms; 1 MB of 😀: 0.004 ms (both stop
 *   at `max`); 1 MB of safe ASCII: 0.5 ms (the fast-path test scans the whole string; 64 KiB:
 *   0.03 ms); a details object of 10 × 10 × 10 references to one 1 MB string: 2–3 ms (NUL, 😀),
 *   520 ms (safe ASCII: 1,110 full scans), impossible from one token (its strings are disjoint,
 *   so a token's details scan at most the token).
 * - innermostMessage: a node-fetch message 0.009 ms; `'a.'.repeat(n)`: n = 5,000 → 32 ms,
 *   10,000 → 129 ms, 20,000 → 504 ms, 40,000 (80 KB) → 2.0 s: quadratic (before the fix; see the note below).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { RejectionEvent, Requirements } from 'resource-guard';
import { describeKeyFailure, displayUrl, KeySourceError, Rejection } from '../src/errors.ts';
import { safeText } from '../src/safe-text.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { isWellFormed } from './helpers/surfaces.ts';

let key: TestKey;
let attacker: TestKey;
beforeAll(async () => {
  [key, attacker] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
});

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** What the README promises to escape (lone surrogates are checked by `isWellFormed`). */
const PROMISED =
  // eslint-disable-next-line no-control-regex -- the characters under test
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;

/** Milliseconds one call of `fn` takes (after one warm-up call). */
function time(fn: () => unknown): number {
  fn();
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** `clip()` as it was before this change (src/errors.ts at 71cec04), for regression checks. */
function oldClip(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.length > 200 ? `${value.slice(0, 200)}…` : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth > 2) return '[…]';
  if (Array.isArray(value)) return value.slice(0, 10).map((item) => oldClip(item, depth + 1));
  const entries = Object.entries(value).slice(0, 10);
  return Object.fromEntries(
    entries.map(([name, item]) => [oldClip(name, depth + 1), oldClip(item, depth + 1)]),
  );
}

/** The `error` a network failure's root cause shows (health(), events, metrics, details). */
const networkError = (message: string, url = 'https://keys.example.test/jwks') =>
  describeKeyFailure(
    new KeySourceError('network', 'request failed', url, { cause: new Error(message) }),
  ).error;

async function rejectionOf(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => undefined,
    (error: unknown) => error,
  );
}

const SECRET = 'S3CRETapikey9';

// ---------------------------------------------------------------------------------------------
// 1. safeText: bounds, well-formedness, the promised escapes, cost
// ---------------------------------------------------------------------------------------------

describe('safeText: what it promises holds', () => {
  const unit = fc.oneof(
    fc.constantFrom(
      '\u0000',
      '\r',
      '\n',
      '\u001b',
      '\u007f',
      '\u0085',
      '\u009b',
      '\u061c',
      '\u200b',
      '\u200d',
      '\u200f',
      '\u2028',
      '\u2029',
      '\u202a',
      '\u202e',
      '\u2060',
      '\u2064',
      '\u2066',
      '\u2069',
      '\ufeff',
      '\ud800',
      '\udbff',
      '\udc00',
      '\udfff',
      '😀',
      '\u{e0041}',
      '\u{10ffff}',
      '\\',
      'u',
      '…',
    ),
    fc.string({ unit: 'binary', maxLength: 1 }),
    fc.constantFrom('a', '0', ' ', '"'),
  );
  const hostile = fc.string({ unit, maxLength: 400 });

  it('for any input and any max from 0: at most max + 1 units, well-formed, nothing promised left raw', () => {
    fc.assert(
      fc.property(hostile, fc.integer({ min: 0, max: 300 }), (value, max) => {
        const shown = safeText(value, max);
        expect(shown.length).toBeLessThanOrEqual(max + 1);
        expect(isWellFormed(shown)).toBe(true);
        expect(shown).not.toMatch(PROMISED);
        // Cut only when needed: a short value of plainly safe characters comes back as is.
        if (value.length <= max && /^[\x20-\x7e…😀]*$/u.test(value)) {
          expect(shown).toBe(value);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('edges: max 0 and 1, a pair or an escape straddling the bound, exactly max, Infinity', () => {
    expect(safeText('', 0)).toBe('');
    expect(safeText('a', 0)).toBe('…');
    expect(safeText('\u0000', 5)).toBe('…'); // an escape is never cut
    expect(safeText('\u0000', 6)).toBe('\\u0000');
    expect(safeText('😀', 1)).toBe('…'); // a pair is never cut
    expect(safeText('😀', 2)).toBe('😀');
    expect(safeText(`${'a'.repeat(199)}😀b`, 200)).toBe(`${'a'.repeat(199)}…`);
    expect(safeText(`${'a'.repeat(194)}\u2028`, 200)).toBe(`${'a'.repeat(194)}\\u2028`);
    expect(safeText(`${'a'.repeat(195)}\u2028`, 200)).toBe(`${'a'.repeat(195)}…`);
    expect(safeText('x'.repeat(10_000), Number.POSITIVE_INFINITY)).toHaveLength(10_000);
    // A lone surrogate is escaped whichever half, wherever it is; a pair reversed is two lone ones.
    expect(safeText('\udfff\ud800', 200)).toBe('\\udfff\\ud800');
    expect(safeText('a\ud83d', 200)).toBe('a\\ud83d');
  });

  it('common path: a short, plain value is returned as is, cheaply (100,000 calls well under 100 ms)', () => {
    for (const value of ['kid-2026-01', 'https://tenant.example.test/oidc', 'ES256', 'at+jwt']) {
      expect(safeText(value, 200)).toBe(value);
    }
    const elapsed = time(() => {
      for (let i = 0; i < 100_000; i++) safeText('kid-2026-01', 200);
    });
    expect(elapsed).toBeLessThan(100);
  });

  it('bounded on hostile megabytes: 1 MB of NUL, of 😀, of safe ASCII, of ASCII ending in NUL', () => {
    const MB = 1 << 20;
    const cases = {
      nul: '\u0000'.repeat(MB), // escaping stops at max: ~34 escapes, not a million
      emoji: '😀'.repeat(MB / 2), // forces the code-point walk, which stops at max too
      safe: 'a'.repeat(MB), // the fast-path test scans the whole string once (~0.5 ms)
      safeThenNul: `${'a'.repeat(MB - 1)}\u0000`,
    };
    for (const [name, value] of Object.entries(cases)) {
      let shown = '';
      const elapsed = time(() => (shown = safeText(value, 200)));
      expect(shown.length, name).toBeLessThanOrEqual(201);
      expect(elapsed, name).toBeLessThan(50);
    }
  });

  it('a Rejection whose details hold 1,110 hostile 64 KiB strings (the most clip() keeps) is built in well under a second', () => {
    const nul = '\u0000'.repeat(65_536);
    const emoji = '😀'.repeat(32_768);
    const tree = (s: string) =>
      Object.fromEntries(
        Array.from({ length: 10 }, (_, i) => [
          `k${i}`,
          Object.fromEntries(Array.from({ length: 10 }, (_, j) => [`k${j}`, Array(10).fill(s)])),
        ]),
      );
    for (const s of [nul, emoji]) {
      let details: unknown;
      const elapsed = time(() => (details = new Rejection('claim_mismatch', tree(s)).details));
      expect(elapsed).toBeLessThan(500);
      expect(JSON.stringify(details).length).toBeLessThan(300_000);
    }
  });
});

describe('safeText: what it leaves as is', () => {
  // Was a bug: invisible "tag" characters (U+E0000-E007F, Cf, Default_Ignorable) pass through. Each
  // mirrors an ASCII character invisibly (U+E0041 is an invisible "A"), so a sender can hide a
  // whole message inside a kid, an iss or a proof's htm: invisible in a terminal, a log viewer or
  // a dashboard, yet read by anything that decodes them (the "ASCII smuggling" of prompt
  // injection into LLM-based log triage), and it makes two different kids display the same. The
  // README promises zero-width characters are escaped; these are zero-width. Fix (checked on a
  // scratch copy: this file's targeted tests flip, safe-text, hygiene, options, key-set and fuzz
  // tests still pass): in src/safe-text.ts match by code point with the `u` flag,
  // /(?![\ufe00-\ufe0f])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u
  // (variation selectors 1-16 kept: ❤️ is ordinary text), test it on `piece` whatever its
  // length, and escape an astral code point as its two `\uXXXX` units (valid JSON escapes, which
  // quote() in src/option-checks.ts relies on; not `\u{...}`). With `u`, an emoji no longer
  // leaves the fast path, so let the fast path test only `value.slice(0, max + 1)`: the whole
  // call is then O(max), where today it scans the whole string (0.5 ms per MB).
  it('tag characters (invisible ASCII) are escaped', () => {
    const hidden = [...'IGNORE PREVIOUS'].map((c) =>
      String.fromCodePoint(0xe0000 + c.charCodeAt(0)),
    );
    const kid = `kid-2026${hidden.join('')}`;
    expect(safeText(kid, 400)).not.toBe(kid);
    expect(safeText(kid, 400)).not.toMatch(/[\u{e0000}-\u{e007f}]/u);
  });

  // Was a bug: other invisible (Default_Ignorable or format) characters pass through: U+00AD SOFT
  // HYPHEN, U+034F COMBINING GRAPHEME JOINER, U+115F/U+1160/U+3164/U+FFA0 HANGUL FILLERs (the
  // "invisible identifier" of JavaScript backdoors), U+180E MONGOLIAN VOWEL SEPARATOR (zero
  // width since Unicode 6.3), U+17B4/17B5, U+206A-206F (deprecated format controls, next to the
  // escaped U+2060-2069), U+FFF9-FFFB (interlinear annotation: some renderers hide the annotated
  // text), U+1D173-1D17A. None forges a line or drives a terminal; each lets a value display
  // exactly as another (`kid-1` and `kid-\u180e1`), which is the display spoofing the change set
  // out to stop. Fix: the class proposed above.
  it('other invisible format characters are escaped', () => {
    const invisible = [
      '\u00ad',
      '\u034f',
      '\u115f',
      '\u1160',
      '\u17b4',
      '\u180e',
      '\u206a',
      '\u206f',
      '\u3164',
      '\uffa0',
      '\ufff9',
      '\ufffb',
      '\u{1d173}',
    ];
    const kept = invisible.filter((c) => safeText(`kid-${c}1`, 200) === `kid-${c}1`);
    expect(kept).toEqual([]);
  });

  it('kept by design (visible, or legitimate text): an emoji presentation selector, non-breaking and wide spaces, U+FFFC, combining marks', () => {
    // Noise for log injection: visible (U+00A0, U+3000, U+2800, U+FFFC), or part of ordinary
    // text (U+FE0F in ❤️; combining accents). Escaping them would garble real values. Since
    // session 31 only a presentation selector right after a pictograph is kept (test/safe-text.ts).
    for (const value of [
      '❤️',
      'a\u00a0b',
      'a\u3000b',
      'a\u2800b',
      'a\ufffcb',
      'é',
      'Zalgo\u0301\u0301',
    ]) {
      expect(safeText(value, 200)).toBe(value);
    }
  });

  it('accepted trade-off: ZWJ/ZWNJ in legitimate text are escaped (a Persian name, an emoji family)', () => {
    // U+200C is part of ordinary Persian spelling, U+200D of emoji sequences: both now read as
    // escapes in details. A value compared by code with `details.*` differs only for those.
    expect(safeText('می\u200cخواهم', 200)).toBe('می\\u200cخواهم');
    expect(safeText('👨\u200d👩\u200d👧', 200)).toBe('👨\\u200d👩\\u200d👧');
  });

  it('documented limit: the escaping is not reversible, a literal `\\u000d` reads as an escaped CR', () => {
    // Backslashes are kept, so a sender can make a harmless value look like one that carried
    // CR LF. Nothing is injected; only forensic fidelity suffers. Escaping `\` as `\\` would make
    // it reversible (and change values holding a backslash): judged not worth it.
    expect(safeText('a\\u000d\\u000ab', 200)).toBe(safeText('a\r\nb', 200));
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Rejection details: what users rely on did not change
// ---------------------------------------------------------------------------------------------

describe('Rejection details: unchanged for ordinary values', () => {
  it('any JSON value without an escaped character or a surrogate is clipped exactly as before', () => {
    const plain = fc.constantFrom(
      'a',
      'Z',
      '0',
      ' ',
      '"',
      '\\',
      '…',
      'é',
      'ж',
      '中',
      '-',
      '/',
      ':',
    );
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ unit: plain, maxLength: 5 }),
          fc.jsonValue({ maxDepth: 5, stringUnit: plain }),
          { maxKeys: 12 },
        ),
        fc.string({ unit: plain, minLength: 150, maxLength: 260 }),
        (details, long) => {
          const input = { ...details, long, nested: [[[long]], { deep: { deeper: [long] } }] };
          expect(new Rejection('claim_mismatch', input).details).toEqual(oldClip(input, 0));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('numbers, booleans, null and undefined stay what they are (nothing is stringified); depth cut as before', () => {
    const details = new Rejection('dpop_proof_stale', {
      iat: 1.5e9,
      now: 1_767_225_600.123,
      ok: false,
      none: null,
      missing: undefined,
      big: Number.MAX_SAFE_INTEGER,
      nested: [[['x']], [[1]]],
    }).details as Record<string, unknown>;
    expect(details).toEqual({
      iat: 1.5e9,
      now: 1_767_225_600.123,
      ok: false,
      none: null,
      missing: undefined,
      big: Number.MAX_SAFE_INTEGER,
      nested: [['[…]'], ['[…]']],
    });
    expect(Object.hasOwn(details, 'missing')).toBe(true);
  });

  it('through the verifier: an ordinary kid, iss, aud and a non-Latin or emoji kid are quoted exactly', async () => {
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      onRejected: (event) => events.push(event),
    });
    for (const kid of ['kid-2026-01', 'ключ-😀-2026', `${'k'.repeat(150)}😀`]) {
      await rejectionOf(verifier.verify(await mint(attacker, m2mClaims(), { kid })));
      expect(events.at(-1)?.details.kid).toBe(kid);
    }
    const unsigned = (payload: Record<string, unknown>) =>
      rawToken({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }, m2mClaims(payload), 'AAAA');
    await rejectionOf(verifier.verify(unsigned({ iss: 'https://other.example/oidc' })));
    expect(events.at(-1)?.details.actual).toBe('https://other.example/oidc');
    await rejectionOf(verifier.verify(unsigned({ aud: ['https://a.example', 'urn:x'] })));
    expect(events.at(-1)?.details.actual).toEqual(['https://a.example', 'urn:x']);
  });

  it('detail keys are escaped and bounded like values (a signed claim object quoted by claim_mismatch)', () => {
    const details = new Rejection('claim_mismatch', {
      claim: 'dept',
      actual: { 'a\r\nb': 1, [`${'k'.repeat(300)}`]: 2 },
    }).details as { actual: Record<string, unknown> };
    expect(Object.keys(details.actual)).toEqual(['a\\u000d\\u000ab', `${'k'.repeat(200)}…`]);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. innermostMessage (via describeKeyFailure): URLs in a fetch error's message
// ---------------------------------------------------------------------------------------------

describe("a fetch error's message: URLs shown as displayUrl shows them", () => {
  it('the shapes real fetch libraries produce lose their query and credentials', () => {
    const url = `https://keys.example.test/oidc/jwks?api_key=${SECRET}`;
    const messages = [
      `network timeout at: ${url}`, // node-fetch v2
      `request to ${url} failed, reason: socket hang up`, // node-fetch v2 (no code)
      `[GET] "${url}": 404 Not Found`, // ofetch
      `Request failed with status code 502 Bad Gateway: GET ${url}`, // ky
      `fetch <${url}> failed`,
      `fetch \`${url}\` failed`,
      `fetch '${url}' failed`,
      `fetch (${url}) failed`,
      `{"url":"${url}","status":0}`,
      `GET ${url.toUpperCase().replace(SECRET.toUpperCase(), SECRET)}`,
      `GET https://user:${SECRET}@keys.example.test/jwks`,
      `GET https://[::1]:8443/jwks?api_key=${SECRET}#frag`,
      `GET https://keys.example.test\\jwks?api_key=${SECRET}`,
      `GET xhttps://keys.example.test/jwks?api_key=${SECRET}`,
      `GET redis://u:${SECRET}@cache:6379/0`,
      `${url}\u0000\u202e`,
    ];
    for (const message of messages) {
      const shown = networkError(message);
      expect(shown, message).not.toContain(SECRET);
      expect(shown, message).not.toMatch(PROMISED);
      expect(shown.length).toBeLessThanOrEqual(121);
    }
    expect(networkError(`network timeout at: ${url}`)).toBe(
      'network timeout at: https://keys.example.test/oidc/jwks?…',
    );
  });

  // Was a bug: quadratic time. `innermostMessage` used to cut the message to 120 characters first; it
  // now runs URL_IN_TEXT (`/\b[a-z][a-z0-9+.-]*:\/\/…/gi`) over the whole message and cuts
  // after. In a run like `a.a.a.a…` every letter follows a `.`, so every one is a `\b` start, and
  // each start scans the rest of the run for `:` before failing: O(n²). Measured: 10 KB 32 ms,
  // 40 KB 504 ms, 80 KB 2.0 s, 1 MB extrapolates to minutes, synchronously, blocking the event
  // loop for every request. The message is whatever the user's `fetch` throws: wrappers that put
  // the response's status text or body in their error (common for non-2xx) let the key server,
  // or anything between, choose it; a refresh fails at most once per back-off step, and each
  // failure costs this again. Fix: cut before matching (`message.slice(0, 1024)` is plenty for
  // a 120-character result), and bound the scheme (`[a-z][a-z0-9+.-]{0,31}:\/\/`) so that each
  // start costs at most 32 steps (with `\b` dropped: see the next bug). Checked on a scratch
  // copy: 100 KB in 2 ms, and the hygiene tests' URL cases still pass.
  it('a 100 KB hostile message is summed up in well under 250 ms (not seconds)', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'https://keys.example.test/oidc/jwks',
      fetch: () => Promise.reject(new Error('a.'.repeat(50_000))),
    });
    const token = await mint(key);
    const start = performance.now();
    const error = await rejectionOf(verifier.verify(token));
    const elapsed = performance.now() - start;
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).reason).toBe('keys_unavailable');
    expect(elapsed).toBeLessThan(250);
  });

  it('unit measure of the same: linear inputs (no dots, one long URL) stay fast', () => {
    expect(time(() => networkError('a'.repeat(100_000)))).toBeLessThan(50);
    expect(time(() => networkError(`https://${'a'.repeat(100_000)}?k=1`))).toBeLessThan(50);
    expect(time(() => networkError('https://h '.repeat(10_000)))).toBeLessThan(100);
  });

  // Was a bug: `\b` before the scheme needs a non-word character before it, so a URL glued to a word
  // character (`_`, a digit) is not matched and keeps its query: `url_https://…?api_key=…`,
  // `1https://…`. Low likelihood, but the fix is free: drop `\b` (a match may start anywhere; the
  // leftmost one still covers the whole URL) with the bounded scheme proposed above.
  it('a URL right after a word character still loses its query', () => {
    expect(networkError(`url_https://keys.example.test/jwks?api_key=${SECRET}`)).not.toContain(
      SECRET,
    );
  });

  // Was a bug (against the README's absolute promise): "a JWKS URL's query, an `api_key=` say, is
  // never in the details, a health page, an event or a metric". Only URLs written
  // `scheme://…` are recognised; the same query in any other spelling reaches health(), events,
  // OTel and details: a scheme-relative `//host/path?…`, `host:port/path?…`, a JSON encoder that
  // escapes slashes (`https:\/\/…`, PHP and some Java ones), the query quoted on its own. The
  // library knows exactly what to hide: the URL it fetched. Fix: have the code that builds the
  // KeySourceError (src/fetch-json.ts, which holds `url`) pass the raw query and credentials
  // along, and have `innermostMessage` also replace every occurrence of `url.search.slice(1)`,
  // of each parameter's value (raw and percent-decoded) and of the password with `…`; or
  // soften the README to "URLs written scheme://… in the message".
  for (const [shape, message] of [
    ['scheme-relative', `upstream //keys.example.test/jwks?api_key=${SECRET} failed`],
    ['host:port/path', `connect keys.example.test:443/jwks?api_key=${SECRET} failed`],
    [
      'JSON with escaped slashes',
      `{"url":"https:\\/\\/keys.example.test\\/jwks?api_key=${SECRET}"}`,
    ],
    [
      'the query quoted on its own',
      `GET https://keys.example.test/jwks failed; query: api_key=${SECRET}`,
    ],
  ] as const) {
    it(`the query in another spelling (${shape}) is hidden too`, () => {
      expect(
        networkError(message, `https://keys.example.test/jwks?api_key=${SECRET}`),
      ).not.toContain(SECRET);
    });
  }

  it('…and it reaches health() (JSON with escaped slashes, end to end)', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: `https://keys.example.test/oidc/jwks?api_key=${SECRET}`,
      fetch: (input) =>
        Promise.reject(
          new Error(`proxy: {"target":"${String(input).replaceAll('/', '\\/')}","error":"reset"}`),
        ),
    });
    await rejectionOf(verifier.verify(await mint(key)));
    expect(verifier.health()[0]?.jwksUri).toBe('https://keys.example.test/oidc/jwks?…');
    expect(JSON.stringify(verifier.health())).not.toContain(SECRET);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. displayUrl
// ---------------------------------------------------------------------------------------------

describe('displayUrl', () => {
  it('never shows a query or a fragment, whatever the text, parsed or refused', () => {
    const part = fc.string({
      unit: fc.constantFrom(
        'a',
        'A',
        '/',
        '\\',
        ':',
        '[',
        ']',
        '%',
        '.',
        ' ',
        '@',
        '1',
        ';',
        '\t',
        '\n',
        '?',
      ),
      maxLength: 14,
    });
    const scheme = fc.constantFrom(
      'https://',
      'HTTPS://',
      'http:',
      'https:\\\\',
      ' \thttps://',
      'ht\ntps://',
      'redis://',
      'file://',
      'x://',
      'x:',
      '//',
      '',
    );
    fc.assert(
      fc.property(scheme, part, part, part, (s, userinfo, host, path) => {
        const shown = displayUrl(`${s}${userinfo}@${host}/${path}?api_key=${SECRET}#FRAGMENT`);
        expect(shown).not.toContain(SECRET);
        expect(shown).not.toContain('FRAGMENT');
      }),
      { numRuns: 3000 },
    );
  });

  it('hides credentials for every `scheme://` text, parsed or refused (what innermostMessage hands it)', () => {
    const part = fc.string({
      unit: fc.constantFrom('a', 'A', '[', ']', '%', '.', ' ', '@', '1', ';', ':', '\\'),
      maxLength: 10,
    });
    fc.assert(
      fc.property(
        fc.constantFrom('https://', 'HTTPS://', 'http://', 'redis://', 'x://', 'file://'),
        part,
        part,
        (s, host, path) => {
          const shown = displayUrl(`${s}user:PASSWORD@${host}/${path}?k=1`);
          expect(shown).not.toContain('PASSWORD');
        },
      ),
      { numRuns: 2000 },
    );
    expect(displayUrl('https://u:p@h@x/jwks?k=S')).toBe('https://x/jwks?…');
    expect(displayUrl('https://[::1]:8443/jwks?k=S#f')).toBe('https://[::1]:8443/jwks?…');
    expect(displayUrl('HTTPS://U:P@[BAD/JWKS?K=S')).toBe('HTTPS://[BAD/JWKS?…');
    expect(displayUrl('https://ho\nst/jw\tks?k=S')).toBe('https://host/jwks?…'); // the parser strips tab/LF
  });

  it('by design, the path is shown whole: `;params` and an encoded `?` are path', () => {
    expect(displayUrl(`https://keys.example.test/jwks;api_key=${SECRET}`)).toContain(SECRET);
    expect(displayUrl(`https://keys.example.test/jwks%3Fapi_key=${SECRET}`)).toContain(SECRET);
  });

  // Was a bug (internal contract; not reachable from a public input today, since configuration refuses
  // credentials, a fetch's URL is always serialised `scheme://…`, and innermostMessage hands it
  // only `scheme://` matches; but KeySourceError is public and runs its `url` through this):
  // displayUrl promises "no credentials", and shows them for refused text whose authority is
  // not introduced by exactly `//` (`https:u:p@[bad`, `https:\\u:p@[bad`), whose password holds
  // a `/`, or which is scheme-relative, and for a parsed URL with an opaque path
  // (`user:PASSWORD@host/…` parses as scheme `user:`, shown `user://PASSWORD@host/…`, with a `//`
  // that was not there). Fix: for refused text, drop everything after the scheme and its
  // slashes up to the last `@` of the head (a path `@` goes too: acceptable for text no parser
  // takes); for a parsed URL with an empty host, show `${protocol}…`. Checked on a scratch copy:
  // `head.replace(/^((?:[a-z][a-z0-9+.-]*:)?[\\/]*)[^]*@/i, '$1')` and
  // `if (parsed.host === '') return \`${parsed.protocol}…\`` pass these and every displayUrl test.
  for (const text of [
    'https:u:PASSWORD@[bad/jwks',
    'https:\\\\u:PASSWORD@[bad\\jwks',
    'https://u:PASS/WORD@[bad/jwks',
    '//u:PASSWORD@keys.example.test/jwks',
    'user:PASSWORD@keys.example.test/jwks',
  ]) {
    it(`hides the credentials of ${JSON.stringify(text)}`, () => {
      expect(displayUrl(text)).not.toMatch(/PASS/);
    });
  }

  it('a refused URL with control or bidi characters is escaped before it reaches any output', () => {
    // displayUrl itself keeps them (its refused branch returns text as is), but the only route for
    // refused text is a fetch message, which safeText escapes; configured URLs always parse.
    expect(displayUrl('https://[bad/\u202e\u0000x')).toBe('https://[bad/\u202e\u0000x');
    expect(networkError('GET https://u:p@[bad/\u202e\u0000x?k=1')).toBe(
      'GET https://[bad/\\u202e\\u0000x?…',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Configuration errors: quote() and the names it does not reach
// ---------------------------------------------------------------------------------------------

describe('configuration TypeErrors', () => {
  // Where a route is declared (per call, a scope that is not one matches no token: a 403).
  const messageOf = async (requirements: Requirements): Promise<string> => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
    });
    const error = await rejectionOf(Promise.resolve().then(() => verifier.guard(requirements)));
    expect(error).toBeInstanceOf(TypeError);
    return (error as TypeError).message;
  };

  it('quote(): readable, at most 64 characters of the value, every unsafe character escaped, valid JSON', async () => {
    const values = [
      'read:products x', // a space: refused, shown as is
      `x\r\n2026-01-01 INFO accepted\u0000\u001b[31m\u007f\u0085\u009b\u2028\u2029\u202e\u2066\u200e\u061c\u200b\ufeff`,
      `${'a'.repeat(63)}😀`, // the cut splits the pair: JSON.stringify writes the half as \ud83d
      ` ${'w'.repeat(100_000)}`, // long, and refused (a space)
    ];
    for (const value of values) {
      const message = await messageOf({ scopes: [value] });
      const quoted = /item 0 is ("(?:[^"\\]|\\.)*")/.exec(message)?.[1] as string;
      expect(quoted, message).toBeDefined();
      expect(JSON.parse(quoted)).toBe(value.slice(0, 64));
      expect(quoted.length).toBeLessThanOrEqual(64 * 6 + 2);
      expect(message).not.toMatch(PROMISED);
      expect(isWellFormed(message)).toBe(true);
    }
    expect(await messageOf({ scopes: ['read:products x'] })).toContain(
      '(item 0 is "read:products x")',
    );
  });

  // Was a bug: the names of `claimEquals`, `claimIncludes` and `checks` entries reach the message raw
  // and whole: `record()` in src/option-checks.ts builds the path as `${path}.${name}`, and
  // configError prints it. A CR LF, an ESC, a bidi override in a claim name, or a 1 MB name (a
  // 1 MB message), goes to the framework's error log. Same reach as the `scopes` case fixed in
  // this session: per-call requirements built from a request
  // (`claimEquals: { [req.params.claim]: req.query.value }`, where `?value[]=1` is an array and
  // fails the check). Also `configError(prefix + key, 'is inherited…')` in readLevel. Fix: use
  // `printable(name)` (which quotes through safeText) in both paths.
  it('a claim name in claimEquals / claimIncludes / checks is escaped and bounded in the message', async () => {
    const name = `dept\r\n2026-01-01 INFO accepted\u001b[31m\u202e${'w'.repeat(100_000)}`;
    const messages = [
      await messageOf({ claimEquals: { [name]: ['sales'] } } as unknown as Requirements),
      await messageOf({ claimIncludes: { [name]: [''] } }),
      await messageOf({ checks: { [name]: 1 } } as unknown as Requirements),
    ];
    for (const message of messages) {
      expect(message).not.toMatch(PROMISED);
      expect(message.length).toBeLessThan(1_000);
    }
  });
});
