/**
 * Adversarial review of session 31's source changes (`git diff ae1c785..HEAD -- src`):
 * 1. src/safe-text.ts: variation selectors U+FE00-FE0F escaped unless one U+FE0E/U+FE0F directly
 *    follows a kept Extended_Pictographic character (runs, cuts at `max`, surrogate edges, the
 *    fast and slow paths, U+E0100+, ZWJ and keycap sequences), and the same through `quote`
 *    (option-checks) and a Rejection's details (errors.ts, via onRejected).
 * 2. src/options.ts resolveRequirements: per call, `organization` beside `anyOrganization: true`
 *    no longer throws; the named organization is required. Every shape of organization, against
 *    `{ organization }` alone, `authenticate`, and a route's `guard(req, { organization })`.
 * 3. src/claims.ts checkIssuer: a non-string `iss` is invalid_claim, an absent one missing_claim;
 *    JSON `__proto__` members against jose.
 * 4. src/logto.ts: `jwks` replaces the tenant JWKS; an http (non-loopback) endpoint beside an https
 *    custom domain is refused naming `endpoint`. Loopback spellings, http custom domains, jwks as a
 *    getter or non-enumerable, and what the built verifier fetches (a recording `fetch`, no network).
 *
 * Findings:
 * F1 (low, documented, kept) per call, an absent organization beside `anyOrganization: true`
 *    accepts every organization's token (session 19's reading: "this request's organization, or
 *    any when it names none"), while `guard({ anyOrganization: true })` given
 *    `guard(req, { organization: undefined })` refuses them all (a context that carries an
 *    organization makes an organization route). Both are safe; pinned as they are.
 * F2 (low, too strict only, FIXED) logto() with static `jwks`, an http endpoint and an https custom
 *    domain was refused ("the keys are fetched from it"), though no key is fetched.
 * F3 (low, FIXED) a requirement inherited as a NON-enumerable member (Object.defineProperty on a
 *    null-prototype parent) was read by nobody: refuseInherited's for...in does not see it, so an
 *    `organization` (or `scopes`) meant was silently absent, per call and on a route alike.
 * The `sound` blocks hold what held; each assertion can fail.
 */
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createVerifier, logto } from 'resource-guard';
import type { RejectionEvent, Requirements, Verifier } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import { quote } from '../src/option-checks.ts';
import { safeText } from '../src/safe-text.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

beforeEach(() => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------
// 1. safe-text
// ---------------------------------------------------------------------------------------------

const SELECTOR = /[\ufe00-\ufe0f]/u;
const PICT = /^\p{Extended_Pictographic}$/u;
const unescape = (text: string) =>
  text.replace(/\\u([0-9a-f]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
const wellFormed = (text: string) =>
  !/\p{Surrogate}/u.test(text.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''));

/**
 * The invariants a printed value must keep: at most max+1 units (the `…`), well-formed, no raw
 * supplementary selector, and every raw U+FE00-FE0F is a lone FE0E/FE0F right after a pictograph.
 */
function checkSafe(out: string, max: number): void {
  expect(out.length).toBeLessThanOrEqual(max + 1);
  expect(wellFormed(out)).toBe(true);
  expect(/[\u{e0100}-\u{e01ef}]/u.test(out)).toBe(false);
  const chars = [...out];
  chars.forEach((char, i) => {
    if (!SELECTOR.test(char)) return;
    expect(char === '\ufe0e' || char === '\ufe0f').toBe(true);
    expect(i > 0 && PICT.test(chars[i - 1] as string)).toBe(true);
  });
}

describe('sound: safe-text variation selectors', () => {
  it.each([
    ['❤\ufe0f', '❤\ufe0f'],
    ['❤\ufe0e', '❤\ufe0e'],
    ['❤\ufe0f\ufe0f', '❤\ufe0f\\ufe0f'],
    ['❤\ufe0e\ufe0f', '❤\ufe0e\\ufe0f'],
    ['❤\ufe00', '❤\\ufe00'],
    ['❤\ufe0d', '❤\\ufe0d'],
    ['\ufe0f', '\\ufe0f'],
    ['a\ufe0f', 'a\\ufe0f'],
    ['1\ufe0f\u20e3', '1\\ufe0f\u20e3'], // keycap: a digit is not pictographic
    ['😀\u{e0100}', '😀\\udb40\\udd00'],
    ['😀\ufe0f\u{e01ef}', '😀\ufe0f\\udb40\\uddef'],
    ['👨\u200d\ufe0f', '👨\\u200d\\ufe0f'], // after an escaped ZWJ
    ['👨\u200d👩\ufe0f', '👨\\u200d👩\ufe0f'],
    ['\ud83d\ufe0f', '\\ud83d\\ufe0f'], // a lone surrogate is escaped, so no selector after it
    ['\ude00\ufe0f', '\\ude00\\ufe0f'],
    ['\u200b\ufe0f', '\\u200b\\ufe0f'],
  ])('%j → %j', (input, expected) => {
    expect(safeText(input, 200)).toBe(expected);
    checkSafe(safeText(input, 200), 200);
  });

  it('a cut between a pictograph and its selector, or inside a pair, keeps neither half', () => {
    expect(safeText('❤\ufe0f', 1)).toBe('❤…');
    expect(safeText('a😀\ufe0f', 2)).toBe('a…');
    expect(safeText('😀\ufe0f', 2)).toBe('😀…');
    expect(safeText('😀\ufe0f', 3)).toBe('😀\ufe0f');
    expect(safeText('😀\ufe0f\ufe0f', 3)).toBe('😀\ufe0f…');
    // The fast path (no selector in the first max+1 units) never reaches a later one.
    expect(safeText(`${'a'.repeat(10)}\ufe0f`, 5)).toBe('aaaaa…');
    expect(safeText(`${'a'.repeat(4)}😀\ufe0f`, 5)).toBe('aaaa…');
  });

  it('a run of selectors carries no hidden bits: at most one raw selector per pictograph', () => {
    const hidden = '\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08';
    const out = safeText(`❤${hidden}❤\ufe0f${hidden}`, 1000);
    expect([...out].filter((c) => SELECTOR.test(c))).toEqual(['\ufe0f']);
    expect(unescape(out)).toBe(`❤${hidden}❤\ufe0f${hidden}`);
  });

  it('property: any mix of pictographs, selectors, surrogates and controls, any max', () => {
    const piece = fc.constantFrom(
      '❤',
      '😀',
      '©',
      '\ufe0e',
      '\ufe0f',
      '\ufe00',
      '\ufe0a',
      '\u{e0100}',
      '\u200d',
      '\u20e3',
      '\ud83d',
      '\ude00',
      'a',
      '1',
      '\n',
      '\u202e',
      '"',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), fc.nat(40), (pieces, max) => {
        const value = pieces.join('');
        for (const out of [safeText(value, max), safeText(value, Number.POSITIVE_INFINITY)]) {
          const limit = out === safeText(value, max) ? max : Number.POSITIVE_INFINITY;
          checkSafe(out, limit);
          // Faithful: undoing the escapes gives a prefix of the value.
          const body = out.endsWith('…') && !value.endsWith('…') ? out.slice(0, -1) : out;
          expect(value.startsWith(unescape(body))).toBe(true);
        }
        // Closed under concatenation: a selector opening a value is escaped, so two printed
        // values side by side never make a new pictograph + selector pair.
        const joined = safeText(value, max) + safeText(pieces.slice().reverse().join(''), max);
        checkSafe(joined, Number.POSITIVE_INFINITY);
      }),
      { seed: 0x531, numRuns: 3000 },
    );
  });

  it('quote (option-checks) keeps the same rule inside its JSON quotes, and cuts at 64', () => {
    expect(quote('❤\ufe0f\ufe0f')).toBe('"❤\ufe0f\\ufe0f"');
    expect(quote('\ufe0fx')).toBe('"\\ufe0fx"'); // after the opening quote: escaped
    expect(quote(`${'x'.repeat(63)}❤\ufe0f`)).toBe(`"${'x'.repeat(63)}❤"`);
    expect(quote(`${'x'.repeat(63)}😀\ufe0f`)).toBe(`"${'x'.repeat(63)}\\ud83d"`);
    for (const value of ['❤\ufe0e\ufe0e', '\u{e0100}', '❤\u{e0100}', '1\ufe0f\u20e3']) {
      checkSafe(quote(value), Number.POSITIVE_INFINITY);
    }
  });

  it('a rejection detail (errors.ts clip) is printed by the same rule', async () => {
    const key = await makeKey('ES256');
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      onRejected: (event) => events.push(event),
    });
    const kid = `❤\ufe0f\ufe0f${'\ufe01'.repeat(300)}`;
    expect(await outcome(verifier.verify(await mint(key, m2mClaims(), { kid })))).toMatch(/^401 /);
    const shown = JSON.stringify(events[0]?.details);
    expect(shown).toContain('❤\ufe0f\\\\ufe0f');
    const text = String(events[0]?.details.kid);
    checkSafe(text, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. per-call organization beside anyOrganization
// ---------------------------------------------------------------------------------------------

const ORG = (id: string) => `urn:logto:organization:${id}`;

describe('per-call organization beside anyOrganization', () => {
  let key: TestKey;
  let verifier: Verifier;
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    key = await makeKey('ES256');
    verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      organizations: true,
    });
    const claims: Record<string, Record<string, unknown>> = {
      global: {},
      apiO1: { organization_id: 'o1' },
      apiO2: { organization_id: 'o2' },
      apiBlank: { organization_id: '' },
      apiSpaced: { organization_id: ' o1 ' },
      orgO1: { aud: ORG('o1') },
      orgO2: { aud: ORG('o2') },
      orgAndApiO1: { aud: [AUDIENCE, ORG('o1')] },
    };
    for (const [name, extra] of Object.entries(claims)) {
      tokens[name] = await mint(key, m2mClaims(extra));
    }
  });

  /** Requirement objects holding `organization` in many ways. */
  const SHAPES: Record<string, (any?: unknown) => Requirements> = {
    string: (any) =>
      ({
        organization: 'o1',
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    other: (any) =>
      ({
        organization: 'o2',
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    blank: (any) =>
      ({
        organization: '',
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    spaced: (any) =>
      ({
        organization: ' o1 ',
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    urn: (any) =>
      ({
        organization: ORG('o1'),
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    array: (any) =>
      ({
        organization: ['o1'],
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as unknown as Requirements,
    null: (any) =>
      ({
        organization: null,
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as unknown as Requirements,
    number: (any) =>
      ({
        organization: 1,
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as unknown as Requirements,
    boxed: (any) =>
      ({
        organization: new String('o1'),
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as unknown as Requirements,
    getter: (any) => {
      let reads = 0;
      const out = {
        get organization() {
          reads++;
          return reads === 1 ? 'o1' : undefined;
        },
      };
      if (any !== undefined)
        Object.defineProperty(out, 'anyOrganization', { value: any, enumerable: true });
      return out as Requirements;
    },
    nonEnumerable: (any) => {
      const out = any === undefined ? {} : { anyOrganization: any };
      Object.defineProperty(out, 'organization', { value: 'o1', enumerable: false });
      return out as Requirements;
    },
    nullProto: (any) =>
      Object.assign(Object.create(null) as object, {
        organization: 'o1',
        ...(any === undefined ? {} : { anyOrganization: any }),
      }) as Requirements,
    proxy: (any) =>
      new Proxy(
        { organization: 'o1', ...(any === undefined ? {} : { anyOrganization: any }) },
        {},
      ) as Requirements,
  };

  const request = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  describe('sound', () => {
    it('with anyOrganization: true, every organization shape decides as `{ organization }` alone, on verify, authenticate and a route guard', async () => {
      const route = verifier.guard({ anyOrganization: true });
      const plainRoute = verifier.guard();
      const rows: string[] = [];
      for (const [shape, build] of Object.entries(SHAPES)) {
        for (const [name, token] of Object.entries(tokens)) {
          const alone = await outcome(verifier.verify(token, build()));
          const both = await outcome(verifier.verify(token, build(true)));
          const authAlone = await outcome(verifier.authenticate(request(token), build()));
          const authBoth = await outcome(verifier.authenticate(request(token), build(true)));
          expect([shape, name, both]).toEqual([shape, name, alone]);
          expect([shape, name, authBoth]).toEqual([shape, name, authAlone]);
          expect([shape, name, authAlone]).toEqual([shape, name, alone]);
          // A route declared with anyOrganization, given the request's organization.
          const context = { organization: (build() as { organization?: unknown }).organization };
          const viaGuard = await outcome(route(request(token), context as never));
          const viaPlain = await outcome(plainRoute(request(token), context as never));
          expect([shape, name, viaGuard]).toEqual([shape, name, viaPlain]);
          if (alone === 'ok') rows.push(`${shape}/${name}`);
        }
      }
      // What passed: o1's tokens under an o1 string (own, non-enumerable, getter read once,
      // null-prototype, Proxy), o2's under o2, the spaced one; boxed/array/null/number/blank/URN:
      // none. (An API + organization-URN audience without organization_id matches no route.)
      expect(rows.sort()).toEqual(
        [
          'getter/apiO1',
          'getter/orgO1',
          'nonEnumerable/apiO1',
          'nonEnumerable/orgO1',
          'nullProto/apiO1',
          'nullProto/orgO1',
          'other/apiO2',
          'other/orgO2',
          'proxy/apiO1',
          'proxy/orgO1',
          'spaced/apiSpaced',
          'string/apiO1',
          'string/orgO1',
        ].sort(),
      );
    });

    it('anyOrganization false decides as its absence; a non-boolean one is a TypeError, never true', async () => {
      for (const build of Object.values(SHAPES)) {
        for (const token of Object.values(tokens)) {
          expect(await outcome(verifier.verify(token, build(false)))).toBe(
            await outcome(verifier.verify(token, build())),
          );
        }
      }
      for (const any of ['true', 1]) {
        await expect(verifier.verify(tokens.orgO2 as string, SHAPES.string!(any))).rejects.toThrow(
          TypeError,
        );
        await expect(
          verifier.verify(tokens.orgO2 as string, { anyOrganization: any } as never),
        ).rejects.toThrow(TypeError);
      }
    });

    it('a route still refuses the contradiction where it is declared, and the kit too', () => {
      expect(() => verifier.guard({ organization: 'o1', anyOrganization: true })).toThrow(
        /anyOrganization/,
      );
      expect(() =>
        routeGuard(verifier, { organization: () => 'o1', anyOrganization: true } as never),
      ).toThrow(/anyOrganization/);
    });

    it('anyOrganization: true with no organization still accepts any, and global tokens', async () => {
      expect(
        await outcome(verifier.verify(tokens.apiO2 as string, { anyOrganization: true })),
      ).toBe('ok');
      expect(
        await outcome(verifier.verify(tokens.global as string, { anyOrganization: true })),
      ).toBe('ok');
      expect(
        await outcome(verifier.verify(tokens.apiBlank as string, { anyOrganization: true })),
      ).toBe('403 organization_token');
    });
  });

  it('F1 (documented, kept): an absent per-call organization beside anyOrganization leaves any organization; a guard context naming none refuses', async () => {
    const route = verifier.guard({ anyOrganization: true });
    const token = tokens.apiO2 as string;
    // What the guard decides for a request naming no organization (a missing header):
    expect(await outcome(route(request(token), { organization: undefined }))).toBe(
      '403 organization_mismatch',
    );
    // verify given the same missing header beside anyOrganization: any organization (README).
    expect(
      await outcome(
        verifier.verify(token, {
          organization: undefined,
          anyOrganization: true,
        } as unknown as Requirements),
      ),
    ).toBe('ok');
  });

  it('F3: a requirement inherited as a non-enumerable member is refused, per call and on a route', async () => {
    const parent = Object.create(null) as Record<string, unknown>;
    Object.defineProperty(parent, 'organization', { value: 'o1', enumerable: false });
    const child = Object.create(parent) as Requirements;
    const scopesParent = Object.create(null) as Record<string, unknown>;
    Object.defineProperty(scopesParent, 'scopes', { value: ['admin'], enumerable: false });
    const token = tokens.apiO2 as string;
    await expect(verifier.verify(token, child)).rejects.toThrow(/`organization` is inherited/);
    expect(() => verifier.guard(Object.create(scopesParent) as Requirements)).toThrow(
      /`scopes` is inherited/,
    );
    expect(() => routeGuard(verifier, Object.create(scopesParent) as object)).toThrow(
      /`scopes` is inherited/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 3. checkIssuer: a non-string iss, and JSON __proto__
// ---------------------------------------------------------------------------------------------

describe('sound: iss present but not a string, absent, or behind __proto__', () => {
  let key: TestKey;
  let verifier: Verifier;
  beforeAll(async () => {
    key = await makeKey('ES256');
    verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
  });
  const jose = async (token: string) => {
    try {
      await jwtVerify(token, createLocalJWKSet({ keys: [key.jwk] }), {
        issuer: ISSUER,
        audience: AUDIENCE,
        typ: 'at+jwt',
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
      });
      return 'ok';
    } catch {
      return 'refused';
    }
  };
  /** The m2m claims as JSON text with `iss` replaced by `issJson` (raw), or dropped. */
  const payload = (issJson: string | undefined, extra = '') => {
    const { iss: _iss, ...rest } = m2mClaims();
    const body = JSON.stringify(rest).slice(1, -1);
    return `{${body}${issJson === undefined ? '' : `,"iss":${issJson}`}${extra}}`;
  };
  const header = () => ({ alg: 'ES256', typ: 'at+jwt', kid: key.kid });

  it.each([
    ['null'],
    ['1'],
    ['true'],
    ['[]'],
    [JSON.stringify([ISSUER])],
    ['{}'],
    [`{"toString":1}`],
  ])('iss %s → 401 invalid_claim; jose refuses too', async (iss) => {
    const token = await signRaw(key, header(), payload(iss));
    expect(await outcome(verifier.verify(token))).toBe('401 invalid_claim');
    expect(await jose(token)).toBe('refused');
  });

  it('iss absent, or only inside a JSON "__proto__" member → missing_claim; jose refuses', async () => {
    for (const extra of ['', `,"__proto__":{"iss":${JSON.stringify(ISSUER)}}`]) {
      const token = await signRaw(key, header(), payload(undefined, extra));
      expect(await outcome(verifier.verify(token))).toBe('401 missing_claim');
      expect(await jose(token)).toBe('refused');
    }
  });

  it('a "__proto__" member beside a good iss changes nothing (both accept), and a later duplicate iss wins in both', async () => {
    const good = await signRaw(
      key,
      header(),
      payload(JSON.stringify(ISSUER), ',"__proto__":{"iss":1}'),
    );
    expect(await outcome(verifier.verify(good))).toBe('ok');
    expect(await jose(good)).toBe('ok');
    const dup = await signRaw(key, header(), payload(JSON.stringify(ISSUER), ',"iss":null'));
    expect(await outcome(verifier.verify(dup))).toBe('401 invalid_claim');
    expect(await jose(dup)).toBe('refused');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. logto(): jwks, http endpoints, custom domains, and what the verifier fetches
// ---------------------------------------------------------------------------------------------

describe('logto()', () => {
  let key: TestKey;
  beforeAll(async () => {
    key = await makeKey('ES384');
  });

  /** A fetch that records every URL and answers the JWKS; never the network. */
  const recorder = () => {
    const urls: string[] = [];
    const fetch = vi.fn(async (input: unknown) => {
      urls.push(String(input instanceof Request ? input.url : input));
      return new Response(JSON.stringify({ keys: [key.jwk] }), {
        headers: { 'content-type': 'application/json' },
      });
    });
    return { urls, fetch: fetch as unknown as typeof globalThis.fetch };
  };

  describe('sound', () => {
    it.each([
      ['http://LOCALHOST', 'http://localhost/oidc/jwks'],
      ['http://localhost:3001', 'http://localhost:3001/oidc/jwks'],
      ['http://127.0.0.2', 'http://127.0.0.2/oidc/jwks'],
      ['http://127.1', 'http://127.0.0.1/oidc/jwks'],
      ['http://[::1]:3001', 'http://[::1]:3001/oidc/jwks'],
    ])('loopback %s beside an https custom domain: allowed, JWKS %s', (endpoint, jwksUri) => {
      const options = logto({ endpoint, audience: AUDIENCE, customDomains: ['auth.example.com'] });
      expect(options.jwksUri).toBe(jwksUri);
      expect(() => createVerifier(options)).not.toThrow();
    });

    it.each([
      'http://localhost.evil.test',
      'http://localhost.',
      'http://127.0.0.1.evil.test',
      'http://[::ffff:127.0.0.1]',
      'http://tenant.example.test',
      'HTTP://tenant.example.test',
    ])('non-loopback %s beside an https custom domain: TypeError naming endpoint', (endpoint) => {
      for (const domain of [
        'auth.example.com',
        'https://auth.example.com',
        'HTTPS://auth.example.com',
      ]) {
        expect(() => logto({ endpoint, audience: AUDIENCE, customDomains: [domain] })).toThrow(
          /`endpoint` must use https/,
        );
      }
    });

    it('http custom domains beside an http endpoint stay http, and createVerifier takes them', () => {
      const options = logto({
        endpoint: 'http://tenant.example.test',
        audience: AUDIENCE,
        customDomains: ['http://auth.example.com', 'HTTP://Other.Example.com:8080'],
      });
      expect(options.issuer).toEqual([
        'http://tenant.example.test/oidc',
        'http://auth.example.com/oidc',
        'http://other.example.com:8080/oidc',
      ]);
      expect(() => createVerifier(options)).not.toThrow();
    });

    it('an https issuer is never served keys fetched over plain http (non-loopback)', async () => {
      const cases: [string, string[]][] = [
        ['https://tenant.example.test', ['http://auth.example.com', 'auth2.example.com']],
        ['http://127.0.0.1:9', ['auth.example.com']],
      ];
      for (const [endpoint, customDomains] of cases) {
        const { urls, fetch } = recorder();
        const options = logto({ endpoint, audience: AUDIENCE, customDomains, fetch });
        const verifier = createVerifier(options);
        for (const iss of options.issuer as string[]) {
          const token = await mint(key, m2mClaims({ iss }));
          expect(await outcome(verifier.verify(token))).toBe('ok');
        }
        expect(urls.length).toBeGreaterThan(0);
        for (const url of urls) {
          const parsed = new URL(url);
          expect(parsed.protocol === 'https:' || parsed.hostname === '127.0.0.1').toBe(true);
        }
      }
    });

    it('jwks given (own, non-enumerable, getter read once): no jwksUri, and nothing fetched', async () => {
      const jwks = { keys: [key.jwk] };
      const shapes = (fetch: typeof globalThis.fetch) => {
        const own = {
          endpoint: 'https://tenant.example.test',
          audience: AUDIENCE,
          customDomains: ['auth.example.com'],
          fetch,
        };
        const hidden = { ...own };
        Object.defineProperty(hidden, 'jwks', { value: jwks, enumerable: false });
        let reads = 0;
        const getter = {
          ...own,
          get jwks() {
            reads++;
            return reads === 1 ? jwks : undefined;
          },
        };
        return [{ ...own, jwks }, hidden, getter];
      };
      for (let i = 0; i < 3; i++) {
        const { urls, fetch } = recorder();
        const options = logto(shapes(fetch)[i] as never);
        expect('jwksUri' in options).toBe(false);
        const verifier = createVerifier(options);
        for (const iss of options.issuer as string[]) {
          expect(await outcome(verifier.verify(await mint(key, m2mClaims({ iss }))))).toBe('ok');
        }
        const unknown = await makeKey('ES384');
        expect(await outcome(verifier.verify(await mint(unknown, m2mClaims())))).toMatch(/^401 /);
        expect(urls).toEqual([]);
      }
    });

    it('jwks: undefined is no jwks: the tenant JWKS is used', () => {
      const options = logto({
        endpoint: 'https://tenant.example.test',
        audience: AUDIENCE,
        jwks: undefined,
      } as never);
      expect(options.jwksUri).toBe('https://tenant.example.test/oidc/jwks');
    });
  });

  it('F2: static jwks beside an http endpoint and an https custom domain is accepted (nothing is fetched)', () => {
    const jwks = { keys: [key.jwk] };
    // createVerifier takes the same issuers with the same static keys.
    expect(() =>
      createVerifier({
        issuer: ['http://tenant.example.test/oidc', 'https://auth.example.com/oidc'],
        audience: AUDIENCE,
        jwks,
      }),
    ).not.toThrow();
    const options = logto({
      endpoint: 'http://tenant.example.test',
      audience: AUDIENCE,
      customDomains: ['auth.example.com'],
      jwks,
    });
    expect('jwksUri' in options).toBe(false);
  });
});
