/**
 * Route requirements beyond scopes: claim values, your own checks, optional authentication. Each
 * is checked on every request, cache hit or not, and reported through onRejected.
 */
import { describe, expect, it } from 'vitest';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Requirements } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { fixtureVerifier, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { m2mClaims, mint } from './helpers/keys.ts';

useKeySetFixture();

const admin = () => mint(key, m2mClaims({ roles: ['admin', 'ops'], tenant: 'acme', tier: 2 }));

describe('claim rules', () => {
  it('claimEquals compares with ===, on every request (cache hit or not)', async () => {
    const { verifier, events } = fixtureVerifier();
    const token = await admin();
    const route = (claimEquals: NonNullable<Requirements['claimEquals']>) =>
      outcome(verifier.verify(token, { claimEquals }));
    expect(await route({ tenant: 'acme', tier: 2 })).toBe('ok');
    expect(await route({ tenant: 'acme', tier: 2 })).toBe('ok'); // a cache hit
    expect(await route({ tenant: 'globex' })).toBe('403 claim_mismatch');
    expect(await route({ tier: '2' })).toBe('403 claim_mismatch'); // no coercion
    expect(await route({ missing: true })).toBe('403 claim_mismatch');
    expect(events.at(-1)?.details).toMatchObject({ claim: 'missing', expected: true });
    expect(events.at(-1)?.code).toBe('access_denied');
  });

  it('claimIncludes reads an array or a space-separated string; values match exactly', async () => {
    const { verifier } = fixtureVerifier();
    const token = await admin();
    const route = (claimIncludes: NonNullable<Requirements['claimIncludes']>) =>
      outcome(verifier.verify(token, { claimIncludes }));
    expect(await route({ roles: ['admin'] })).toBe('ok');
    expect(await route({ roles: ['admin', 'ops'] })).toBe('ok');
    expect(await route({ scope: ['read:products'] })).toBe('ok'); // the space-separated scope
    expect(await route({ roles: ['adm'] })).toBe('403 claim_mismatch'); // never a substring
    expect(await route({ roles: ['admin', 'root'] })).toBe('403 claim_mismatch');
    expect(await route({ tenant: ['acme'] })).toBe('ok'); // a string claim: split on spaces
    expect(await route({ tier: ['2'] })).toBe('403 claim_mismatch'); // a number is no list
  });

  it('a claim named like an Object.prototype member is never "present" by inheritance', async () => {
    const { verifier } = fixtureVerifier();
    const token = await admin();
    expect(await outcome(verifier.verify(token, { claimIncludes: { constructor: ['x'] } }))).toBe(
      '403 claim_mismatch',
    );
  });
});

describe('checks: your own rules', () => {
  it('sync and async checks, by name; the first that says no refuses', async () => {
    const { verifier, events } = fixtureVerifier();
    const token = await admin();
    const calls: string[] = [];
    const checks = {
      'is admin': (auth: AuthInfo) => (calls.push('admin'), auth.claims.roles !== undefined),
      'paid plan': async (auth: AuthInfo) => (calls.push('paid'), auth.claims.tenant === 'acme'),
      'not on sunday': () => (calls.push('sunday'), false),
    };
    expect(await outcome(verifier.verify(token, { checks }))).toBe('403 check_failed');
    expect(events.at(-1)?.details).toEqual({ check: 'not on sunday' });
    expect(calls).toEqual(['admin', 'paid', 'sunday']);
    calls.length = 0;
    expect(await outcome(verifier.verify(token, { checks }))).toBe('403 check_failed'); // cached
    expect(calls).toEqual(['admin', 'paid', 'sunday']);
  });

  it('only `true` allows: a truthy non-boolean is a no', async () => {
    const { verifier } = fixtureVerifier();
    const token = await admin();
    const checks = { sloppy: () => 'yes' as unknown as boolean };
    expect(await outcome(verifier.verify(token, { checks }))).toBe('403 check_failed');
  });

  it('a check that throws is a bug: it reaches the caller as is, not as an AuthError', async () => {
    const { verifier } = fixtureVerifier();
    const token = await admin();
    const checks = {
      broken: () => {
        throw new RangeError('bug');
      },
    };
    await expect(verifier.verify(token, { checks })).rejects.toThrow(RangeError);
    const asyncChecks = { broken: () => Promise.reject(new RangeError('bug')) };
    await expect(verifier.verify(token, { checks: asyncChecks })).rejects.toThrow(RangeError);
  });

  it('checks are options too: not a function, or empty, is a TypeError at the route', () => {
    const { verifier } = fixtureVerifier();
    expect(() => verifier.guard({ checks: { x: 'no' as never } })).toThrow(/`checks.x`/);
    expect(() => verifier.guard({ checks: {} })).toThrow(/`checks` must name/);
    expect(() => verifier.guard({ claimEquals: { a: {} as never } })).toThrow(/`claimEquals.a`/);
    expect(() => verifier.guard({ claimIncludes: { a: 'x' as never } })).toThrow(
      /`claimIncludes.a`/,
    );
  });
});

describe('optional authentication', () => {
  it('no credentials → anonymous; a bad token is still refused; a good one is verified', async () => {
    const { verifier } = fixtureVerifier();
    const guard = verifier.guard({ optional: true, scopes: ['read:products'] });
    expect(await guard({ headers: {} })).toBeUndefined();
    expect(await guard({ headers: { authorization: 'Basic YTpi' } })).toBeUndefined();
    const bad = await outcome(guard({ headers: { authorization: 'Bearer not.a.jwt' } }));
    expect(bad).toBe('401 malformed_token');
    expect(await outcome(guard({ headers: { authorization: 'Bearer' } }))).toBe(
      '400 malformed_header',
    );
    const expired = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) - 60 }));
    expect(await outcome(guard({ headers: { authorization: `Bearer ${expired}` } }))).toBe(
      '401 expired',
    );
    const auth = await guard({ headers: { authorization: `Bearer ${await mint(key)}` } });
    expect(auth?.clientId).toBe('app-123');
    // A valid token that lacks the scope is refused too: optional is not "anything goes".
    const weak = await mint(key, m2mClaims({ scope: 'other' }));
    expect(await outcome(guard({ headers: { authorization: `Bearer ${weak}` } }))).toBe(
      '403 insufficient_scope',
    );
  });

  it('authenticate() with optional: true resolves undefined without credentials', async () => {
    const { verifier } = fixtureVerifier();
    expect(await verifier.authenticate({ headers: {} }, { optional: true })).toBeUndefined();
    await expect(verifier.authenticate({ headers: {} })).rejects.toBeInstanceOf(AuthError);
  });
});

describe('scopes, checked with a loop', () => {
  it('all-of by default and any-of with any, even for requirements built by hand', async () => {
    const { checkScopes } = await import('../src/requirements.ts');
    const granted = ['read:products'];
    const decide = (requirements: Parameters<typeof checkScopes>[1]) => {
      try {
        checkScopes(granted, requirements);
        return 'ok';
      } catch {
        return 'refused';
      }
    };
    expect(decide({ scopes: ['read:products', 'write:products'] })).toBe('refused');
    expect(decide({ scopes: ['read:products', 'write:products'], any: false })).toBe('refused');
    expect(decide({ scopes: ['write:products', 'read:products'], any: true })).toBe('ok');
    expect(decide({ scopes: ['write:products'], any: true })).toBe('refused');
    expect(decide({ scopes: ['read:products'] })).toBe('ok');
    expect(decide({ scopes: [] })).toBe('ok');
  });
});

describe('a check that never answers', () => {
  it('is bounded by checkTimeout: 503 check_unavailable, never a hang', async () => {
    const { verifier, events } = fixtureVerifier({ checkTimeout: 0.05 });
    const token = await admin();
    const checks = { slow: () => new Promise<boolean>(() => undefined) };
    expect(await outcome(verifier.verify(token, { checks }))).toBe('503 check_unavailable');
    expect(events.at(-1)?.details).toMatchObject({ check: 'slow' });
  });
});
