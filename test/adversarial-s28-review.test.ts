/**
 * Session 28 review (helper-64) of 69c634f (per-call requirement values from the request become a
 * sentinel that matches no token). Probes: looser than a cold check, 500s, the sentinel leaking,
 * the docs. Findings: per-call lists were read through their iterator (one yielding fewer items
 * dropped the rest) and a string where claimIncludes wants a list was a silent 403 where a route's
 * is a TypeError (both FIXED); the README promised a blank claimEquals value matched no token,
 * where it is compared with `===` as on a route (the README was corrected).
 */
import diagnostics from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { RejectionEvent, Requirements, Verifier } from 'resource-guard';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

async function answer(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return '200';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    return `500 ${String(error)}`;
  }
}

let key: TestKey;
let verifier: Verifier;
let token: string;
const events: RejectionEvent[] = [];

const CLAIMS = {
  tenant_id: 'acme',
  blank: '',
  zero: 0,
  roles: ['catalog-admin', 'reader'],
  groups: 'ops dev',
  scope: 'read:products write:products',
};

beforeAll(async () => {
  key = await makeKey('ES256');
  verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [key.jwk] },
    onRejected: (event) => {
      events.push(event);
    },
  });
  token = await mint(key, m2mClaims(CLAIMS));
});

const req = () => ({ headers: { authorization: `Bearer ${token}` } });
const as = (value: unknown) => value as Requirements;

describe('per-call values: never looser than a cold check', () => {
  it('a blank claimEquals value per call is compared as on a route (the README says so)', async () => {
    // helper-64 found the README promising that a blank matched no token; the fix chosen keeps
    // claimEquals `===` for every valid value, per call as on a route (session 19's oracle test
    // holds it), and the README says a blank header gives '' that a blank claim equals.
    expect(await answer(verifier.authenticate(req(), { claimEquals: { blank: '' } }))).toBe('200');
    expect(await answer(verifier.guard({ claimEquals: { blank: '' } })(req()))).toBe('200');
    expect(await answer(verifier.authenticate(req(), { claimEquals: { tenant_id: '' } }))).toBe(
      '403 claim_mismatch',
    );
    // Per call, a blank organization matches no token (a route's is a TypeError).
    expect(await answer(verifier.authenticate(req(), { organization: '' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('FIXED: claimIncludes given a string per call is a TypeError (a shape), as scopes is', async () => {
    const requirements = as({ claimIncludes: { roles: 'reader' } });
    expect(() => verifier.guard(requirements)).toThrow(TypeError);
    expect(await answer(verifier.authenticate(req(), requirements))).toMatch(/^500 TypeError/);
    expect(await answer(verifier.authenticate(req(), as({ scopes: 'read:products' })))).toMatch(
      /^500 TypeError/,
    );
    // An empty list per call matches no token (a route's is a TypeError).
    expect(await answer(verifier.authenticate(req(), { claimIncludes: { roles: [] } }))).toBe(
      '403 claim_mismatch',
    );
  });

  it('FIXED: a list is read by index per call, as on a route: an iterator yielding fewer drops nothing', async () => {
    const scopes = ['read:products', 'admin'];
    Object.defineProperty(scopes, Symbol.iterator, {
      value: function* () {
        yield 'read:products';
      },
    });
    expect(await answer(verifier.guard({ scopes })(req()))).toBe('403 insufficient_scope');
    expect(await answer(verifier.authenticate(req(), { scopes }))).toBe('403 insufficient_scope');
    const roles = ['reader', 'nobody'];
    Object.defineProperty(roles, Symbol.iterator, {
      value: function* () {
        yield 'reader';
      },
    });
    expect(await answer(verifier.guard({ claimIncludes: { roles } })(req()))).toBe(
      '403 claim_mismatch',
    );
    expect(await answer(verifier.authenticate(req(), { claimIncludes: { roles } }))).toBe(
      '403 claim_mismatch',
    );
  });

  it('holes, undefined, objects with toString/valueOf, symbols, bigints, NaN: refused', async () => {
    const odd: unknown[] = [
      undefined,
      null,
      { toString: () => 'acme' },
      { valueOf: () => 'acme' },
      Symbol('acme'),
      10n,
      Number.NaN,
      ['acme'],
      Object.freeze(Object.create(null)),
      new String('acme'),
    ];
    for (const value of odd) {
      const r1 = as({ claimEquals: { tenant_id: value } });
      expect(await answer(verifier.authenticate(req(), r1))).toBe('403 claim_mismatch');
      const r2 = as({ claimIncludes: { roles: [value, 'reader'] } });
      expect(await answer(verifier.authenticate(req(), r2))).toBe('403 claim_mismatch');
      const r3 = as({ scopes: [value, 'read:products'] });
      expect(await answer(verifier.authenticate(req(), r3))).toBe('403 insufficient_scope');
    }
    // eslint-disable-next-line no-sparse-arrays
    const holes = [, 'read:products'] as string[];
    expect(await answer(verifier.authenticate(req(), { scopes: holes }))).toBe(
      '403 insufficient_scope',
    );
    // eslint-disable-next-line no-sparse-arrays
    const roleHoles = [, 'reader'] as string[];
    expect(
      await answer(verifier.authenticate(req(), { claimIncludes: { roles: roleHoles } })),
    ).toBe('403 claim_mismatch');
    // -0 equals a token's 0, as on a route.
    expect(await answer(verifier.authenticate(req(), { claimEquals: { zero: -0 } }))).toBe('200');
    expect(await answer(verifier.guard({ claimEquals: { zero: -0 } })(req()))).toBe('200');
  });

  it('any: true over values that are not one; an empty list per call', async () => {
    const r = as({ scopes: [undefined, ''], any: true });
    expect(await answer(verifier.authenticate(req(), r))).toBe('403 insufficient_scope');
    const s = as({ scopes: [undefined, 'read:products'], any: true });
    expect(await answer(verifier.authenticate(req(), s))).toBe('200');
    expect(await answer(verifier.authenticate(req(), as({ claimIncludes: { roles: [] } })))).toBe(
      '403 claim_mismatch',
    );
  });

  it('getters, Proxies, frozen and __proto__ names: read once, not mutated, never dropped', async () => {
    let reads = 0;
    const claimEquals = {
      get tenant_id() {
        reads += 1;
        return reads === 1 ? undefined : 'acme';
      },
    };
    expect(await answer(verifier.authenticate(req(), as({ claimEquals })))).toBe(
      '403 claim_mismatch',
    );
    expect(reads).toBe(1);
    const proxy = new Proxy(
      { tenant_id: 'x' },
      { get: (_t, p) => (p === 'tenant_id' ? undefined : undefined) },
    );
    expect(await answer(verifier.authenticate(req(), as({ claimEquals: proxy })))).toBe(
      '403 claim_mismatch',
    );
    const frozen = Object.freeze({ claimEquals: Object.freeze({ tenant_id: undefined }) });
    expect(await answer(verifier.authenticate(req(), as(frozen)))).toBe('403 claim_mismatch');
    const proto = JSON.parse('{"__proto__": null}') as Record<string, unknown>;
    expect(await answer(verifier.authenticate(req(), as({ claimEquals: proto })))).toBe(
      '403 claim_mismatch',
    );
    const ctor = { constructor: undefined };
    expect(await answer(verifier.authenticate(req(), as({ claimEquals: ctor })))).toBe(
      '403 claim_mismatch',
    );
  });

  it('the cache and its route memo never carry a pass over to a per-call refusal', async () => {
    const route = verifier.guard({ scopes: ['read:products'] });
    expect(await answer(route(req()))).toBe('200');
    expect(await answer(route(req()))).toBe('200');
    expect(await answer(verifier.authenticate(req()))).toBe('200');
    expect(await answer(verifier.verify(token))).toBe('200');
    for (let i = 0; i < 3; i++) {
      expect(
        await answer(verifier.authenticate(req(), as({ scopes: ['read:products', undefined] }))),
      ).toBe('403 insufficient_scope');
      expect(
        await answer(verifier.verify(token, as({ claimEquals: { tenant_id: ['acme'] } }))),
      ).toBe('403 claim_mismatch');
      expect(await answer(route(req()))).toBe('200');
    }
  });
});

describe('the sentinel is never visible in a way that throws or misleads', () => {
  it('details, onRejected, JSON, inspect, headers, diagnostics_channel', async () => {
    const published: unknown[] = [];
    const listener = (message: unknown) => published.push(message);
    diagnostics.subscribe('resource-guard:decision', listener);
    try {
      events.length = 0;
      const cases = [
        as({ scopes: ['read:products', 'a b', undefined], any: false }),
        as({ claimEquals: { tenant_id: ['a', 'b'] } }),
        as({ claimIncludes: { roles: ['reader', '', undefined] } }),
        as({ claimIncludes: { roles: [] } }),
      ];
      for (const requirements of cases) {
        const error = (await verifier
          .authenticate(req(), requirements)
          .catch((e: unknown) => e)) as AuthError;
        expect(error).toBeInstanceOf(AuthError);
        expect(error.status).toBe(403);
        const text = JSON.stringify(error.details);
        expect(text).not.toContain('{}');
        expect(() => inspect(error.details, { depth: 9 })).not.toThrow();
        expect(() => String(Object.values(error.details))).not.toThrow();
        expect(error.headers['www-authenticate']).not.toContain('scope=');
        expect(JSON.stringify(error.body)).not.toContain('null');
        expect(() => error.getResponse()).not.toThrow();
      }
      expect(events).toHaveLength(cases.length);
      for (const event of events) {
        expect(() => JSON.stringify(event)).not.toThrow();
        expect(() => `${inspect(event, { depth: 9 })}`).not.toThrow();
      }
      expect(published.length).toBe(cases.length);
      expect(() => JSON.stringify(published)).not.toThrow();
    } finally {
      diagnostics.unsubscribe('resource-guard:decision', listener);
    }
  });

  it('a valid scope next to one that is not one: the challenge names none (as documented)', async () => {
    const error = (await verifier
      .authenticate(req(), as({ scopes: ['admin', undefined] }))
      .catch((e: unknown) => e)) as AuthError;
    expect(error.details).toMatchObject({ required: ['admin', null] });
    expect(error.headers['www-authenticate']).not.toContain('scope=');
  });
});
