/**
 * Requirements given per call (`verify`, `authenticate`), built from the request: a claim value
 * from a header or a query parameter (absent, repeated as `?t=a&t=b`, blank, an object from
 * `?t[x]=1`), a scope built from a route parameter (with a space, a quote, empty). Session 28
 * (helper-63's F1): such a value matched no token only for `organization`; in `claimEquals`,
 * `claimIncludes` and `scopes` it was a TypeError, a 500 in every README catch, for anyone, with
 * a token or without. Now a value that is not one matches no token (403), after the token is
 * verified (no token: 401), and never drops its rule; names and shapes stay a TypeError.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type {
  OptionalRequirements,
  RequestRequirements,
  Requirements,
  Verifier,
} from 'resource-guard';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

/** What an app's catch does: an AuthError is answered with its status, anything else is a 500. */
async function answer(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return '200';
  } catch (error) {
    if (error instanceof AuthError) {
      const challenge = error.headers['www-authenticate'] ?? '';
      // The challenge stays a header a proxy accepts, whatever the value was.
      expect(challenge).toMatch(/^[\x20-\x7E]*$/);
      return `${error.status} ${error.reason}`;
    }
    return `500 ${String(error)}`;
  }
}

let key: TestKey;
let verifier: Verifier;
let token: string;
/** Claims the token carries: `tenant_id`, `roles` (array), `groups` (space-separated), odd `scp`. */
const CLAIMS = {
  tenant_id: 'acme',
  blank: '',
  count: 7,
  admin: true,
  roles: ['catalog-admin', 'reader'],
  groups: 'ops dev',
  scope: undefined,
  scp: ['read:products', 'read:a b', 'x"y', ''],
};

beforeAll(async () => {
  key = await makeKey('ES256');
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
  const claims: Record<string, unknown> = m2mClaims(CLAIMS);
  delete claims.scope;
  token = await mint(key, claims);
});

const withToken = () => ({ headers: { authorization: `Bearer ${token}` } });
const anonymous = { headers: {} };
const forged = () => ({ headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });

/** What a query parser or a header can hand a requirement. */
const fromRequest = fc.oneof(
  fc.constantFrom(undefined, null, '', ' ', 'acme', 'acme ', 'read:products', 'a b', 'x"y', '\r\n'),
  fc.string({ maxLength: 12 }),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
  fc.constantFrom(7, 0, -1, 1.5, Number.NaN, Infinity, 2 ** 53, true, false),
);

/** The model: what a cold check says of the token's claims, a value that is not one matching none. */
const isScope = (v: unknown): v is string =>
  typeof v === 'string' && /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(v);
const isClaimValue = (v: unknown) =>
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (typeof v === 'number' &&
    Number.isFinite(v) &&
    (!Number.isInteger(v) || Number.isSafeInteger(v)));
const GRANTED = CLAIMS.scp.filter((s) => s !== '');

describe('per-call requirement values from the request', () => {
  it('organization typed `string | undefined` (a header) compiles, and undefined matches no token', async () => {
    // Compiles only because the per-call type admits `undefined` under the
    // exactOptionalPropertyTypes of this repository's tsconfig, as the README describes; a
    // route's does not (test/adversarial-s32-review.test.ts F1).
    const header = (headers: Readonly<Record<string, string | undefined>>) => headers['x-org'];
    const requirements: RequestRequirements = { organization: header({}) };
    // The optional overload's type is exported too: anonymous is undefined, never a throw.
    const optional: OptionalRequirements = { optional: true };
    expect(await verifier.authenticate(anonymous, optional)).toBeUndefined();
    expect(await answer(verifier.verify(token, requirements))).toBe('403 organization_mismatch');
    expect(await answer(verifier.authenticate(withToken(), requirements))).toBe(
      '403 organization_mismatch',
    );
  });

  it('claimEquals: a value that is not a claim value matches no token (403), never a 500 or a pass', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('tenant_id', 'blank', 'count', 'admin', 'absent'),
        fromRequest,
        async (claim, value) => {
          const requirements = { claimEquals: { [claim]: value } } as unknown as Requirements;
          // A valid value (the empty string too) is compared as on a route.
          const expected =
            isClaimValue(value) && (CLAIMS as Record<string, unknown>)[claim] === value
              ? '200'
              : '403 claim_mismatch';
          expect(await answer(verifier.authenticate(withToken(), requirements))).toBe(expected);
          expect(await answer(verifier.verify(token, requirements))).toBe(expected);
          expect(await answer(verifier.authenticate(anonymous, requirements))).toBe(
            '401 missing_token',
          );
          expect(await answer(verifier.authenticate(forged(), requirements))).toBe(
            '401 bad_signature',
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('claimIncludes: an item that is not one, or an empty list, matches no token (403)', async () => {
    const item = fc.oneof(
      fc.constantFrom('catalog-admin', 'reader', 'ops', 'dev', 'nobody'),
      fromRequest,
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('roles', 'groups', 'absent'),
        fc.oneof(fc.array(item, { maxLength: 3 }), fromRequest),
        async (claim, value) => {
          const requirements = { claimIncludes: { [claim]: value } } as unknown as Requirements;
          const actual = (CLAIMS as Record<string, unknown>)[claim];
          const held =
            typeof actual === 'string' ? actual.split(' ') : Array.isArray(actual) ? actual : [];
          // A list is a shape: anything else is a TypeError, as on a route.
          if (!Array.isArray(value)) {
            expect(await answer(verifier.authenticate(withToken(), requirements))).toMatch(
              /^500 TypeError: resource-guard: `claimIncludes/,
            );
            return;
          }
          const ok =
            value.length > 0 &&
            value.every((v) => typeof v === 'string' && v !== '' && held.includes(v));
          expect(await answer(verifier.authenticate(withToken(), requirements))).toBe(
            ok ? '200' : '403 claim_mismatch',
          );
          expect(await answer(verifier.authenticate(anonymous, requirements))).toBe(
            '401 missing_token',
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('scopes: an item that is not a scope token is held by no token, even one whose scp lists it', async () => {
    const item = fc.oneof(
      fc.constantFrom('read:products', 'read:a b', 'x"y', '', 'write:products'),
      fromRequest,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 3 }), fc.boolean(), async (scopes, any) => {
        const requirements = { scopes, any } as unknown as Requirements;
        const held = scopes.map((s) => isScope(s) && GRANTED.includes(s));
        const ok = any ? held.some(Boolean) : held.every(Boolean);
        expect(await answer(verifier.authenticate(withToken(), requirements))).toBe(
          ok ? '200' : '403 insufficient_scope',
        );
        expect(await answer(verifier.authenticate(anonymous, requirements))).toBe(
          '401 missing_token',
        );
      }),
      { numRuns: 150 },
    );
  });

  it('a valid value decides as a declared route does (guard), an invalid one refuses where guard() throws', async () => {
    const cases: Requirements[] = [
      { claimEquals: { tenant_id: 'acme' } },
      { claimEquals: { tenant_id: 'other' } },
      { claimIncludes: { roles: ['reader'] } },
      { claimIncludes: { groups: ['ops', 'dev'] } },
      { scopes: ['read:products'] },
      { scopes: ['read:products', 'write:products'], any: true },
    ];
    for (const requirements of cases) {
      expect(await answer(verifier.authenticate(withToken(), requirements))).toBe(
        await answer(verifier.guard(requirements)(withToken())),
      );
    }
    const invalid = [
      { claimEquals: { tenant_id: ['acme', 'evil'] } },
      { claimIncludes: { roles: [''] } },
      { scopes: ['read:a b'] },
    ] as unknown as Requirements[];
    for (const requirements of invalid) {
      expect(() => verifier.guard(requirements)).toThrow(TypeError);
      expect(await answer(verifier.authenticate(withToken(), requirements))).toMatch(/^403 /);
    }
  });

  it('the details say null where the value was not one; the 403 challenge names no scope then', async () => {
    const refused = (await verifier
      .authenticate(withToken(), { scopes: ['read:products', 'a b' as string] })
      .catch((e: unknown) => e)) as AuthError;
    expect(refused.details).toMatchObject({ required: ['read:products', null] });
    expect(refused.headers['www-authenticate']).not.toContain('scope=');
    const claim = (await verifier
      .authenticate(withToken(), { claimEquals: { tenant_id: undefined as unknown as string } })
      .catch((e: unknown) => e)) as AuthError;
    expect(claim.details).toMatchObject({ claim: 'tenant_id', expected: null, actual: 'acme' });
    // A token whose claim is null is not matched by a value that is not one either.
    const nullToken = await mint(key, m2mClaims({ tenant_id: null }));
    expect(
      await answer(
        verifier.verify(nullToken, { claimEquals: { tenant_id: {} as unknown as string } }),
      ),
    ).toBe('403 claim_mismatch');
  });

  it('names and shapes are still checked per call: a TypeError names the mistake', async () => {
    const mistakes = [
      { claimEquals: { '': 'x' } },
      { claimEquals: { ' tenant_id': 'acme' } },
      { claimEquals: {} },
      { claimIncludes: 'roles' },
      { claimIncludes: { roles: 'reader' } },
      { scopes: 'read:products' },
      { scope: ['read:products'] },
    ] as unknown as Requirements[];
    for (const requirements of mistakes) {
      await expect(verifier.authenticate(withToken(), requirements)).rejects.toThrow(TypeError);
    }
  });
});
