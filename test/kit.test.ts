/**
 * The adapter kit: option checks, the sync-or-promise fork, the error policy (each request ends in
 * exactly one of pass / respond / fail) and the metadata rule, once for every adapter.
 */
import { describe, expect, it } from 'vitest';
import { AuthError } from 'resource-guard';
import type { AuthInfo } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { Outcome, RouteOptions } from 'resource-guard/kit';
import { bearer } from './helpers/http.ts';
import { fixtureVerifier, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { m2mClaims, mint } from './helpers/keys.ts';

useKeySetFixture();

type Req = { readonly org?: unknown };

/** Records which outcome ran, and how many times in all. */
function recorder() {
  const calls: string[] = [];
  const outcome: Outcome<string> = {
    pass: (auth: AuthInfo) => (calls.push(`pass ${auth.clientId}`), 'passed'),
    respond: (error) => (calls.push(`respond ${error.status} ${error.reason}`), 'responded'),
    fail: (error) => (
      calls.push(`fail ${error instanceof AuthError ? error.reason : String(error)}`),
      'failed'
    ),
  };
  return { calls, outcome };
}

/** A request that carries `token`. */
const withToken = (token: string) => ({ headers: bearer(token) });

describe('routeGuard', () => {
  it('answers a repeat token synchronously, a first sighting with a promise; one outcome each', async () => {
    const guard = routeGuard<Req>(fixtureVerifier().verifier, { scopes: ['read:products'] });
    const request = withToken(await mint(key));
    const { calls, outcome } = recorder();
    const first = guard.run({}, request, outcome);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toBe('passed');
    expect(guard.run({}, request, outcome)).toBe('passed'); // no promise
    expect(guard.run({}, { headers: {} }, outcome)).toBe('responded'); // known at once
    expect(calls).toEqual(['pass app-123', 'pass app-123', 'respond 401 missing_token']);
  });

  it('hands each call its req, res and next: one outcome for every request, sync or not', async () => {
    const guard = routeGuard<Req>(fixtureVerifier().verifier, { scopes: ['read:products'] });
    const seen: unknown[][] = [];
    const outcome: Outcome<string, AuthInfo, Req, { id: string }, () => string> = {
      pass: (auth, req, res, next) => (seen.push(['pass', auth.clientId, req, res.id]), next()),
      respond: (error, req, res, next) => (
        seen.push(['respond', error.reason, req, res.id]),
        next()
      ),
      fail: () => 'failed',
    };
    const request = withToken(await mint(key));
    const [a, b, c] = [{ org: 'a' }, { org: 'b' }, { org: 'c' }];
    expect(await guard.run(a, request, outcome, { id: 'res-a' }, () => 'next-a')).toBe('next-a');
    expect(guard.run(b, request, outcome, { id: 'res-b' }, () => 'next-b')).toBe('next-b');
    expect(guard.run(c, { headers: {} }, outcome, { id: 'res-c' }, () => 'next-c')).toBe('next-c');
    expect(seen).toEqual([
      ['pass', 'app-123', a, 'res-a'],
      ['pass', 'app-123', b, 'res-b'],
      ['respond', 'missing_token', c, 'res-c'],
    ]);
  });

  it("errors: 'throw' sends an AuthError to fail; a bug goes to fail in either mode", async () => {
    const { verifier } = fixtureVerifier();
    const throwing = routeGuard<Req>(verifier, { errors: 'throw', scopes: ['write:products'] });
    const token = await mint(key, m2mClaims({ scope: 'read:products' }));
    const { calls, outcome } = recorder();
    expect(await throwing.run({}, withToken(token), outcome)).toBe('failed');
    const buggy = routeGuard<Req>(verifier, {
      organization: () => {
        throw new Error('route bug');
      },
    });
    expect(buggy.run({}, withToken(token), outcome)).toBe('failed');
    expect(calls).toEqual(['fail insufficient_scope', 'fail Error: route bug']);
  });

  it('a pass that throws after a late answer rejects the promise and never runs fail too', async () => {
    const guard = routeGuard<Req>(fixtureVerifier().verifier);
    const calls: string[] = [];
    const result = guard.run({}, withToken(await mint(key)), {
      pass: () => {
        calls.push('pass');
        throw new Error('downstream');
      },
      respond: () => calls.push('respond'),
      fail: () => calls.push('fail'),
    });
    await expect(result).rejects.toThrow('downstream');
    expect(calls).toEqual(['pass']);
  });

  it('the request’s organization comes from the route function; a non-string matches nothing', async () => {
    const guard = routeGuard<Req>(fixtureVerifier().verifier, {
      organization: (req) => req.org as string,
    });
    const token = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const { calls, outcome } = recorder();
    await guard.run({ org: 'acme' }, withToken(token), outcome);
    for (const org of [undefined, '', 'globex', ['acme']]) {
      await guard.run({ org }, withToken(token), outcome);
    }
    expect(calls).toEqual([
      'pass app-123',
      ...Array.from({ length: 4 }, () => 'respond 403 organization_mismatch'),
    ]);
  });

  it.each<[string, unknown, RegExp]>([
    ['errors: next (0.1 Express spelling)', { errors: 'next' }, /`errors`.*'throw' passes/],
    ['errors: other', { errors: 'rethrow' }, /`errors` must be 'respond' or 'throw'/],
    ['organization: a string', { organization: 'acme' }, /`organization` must be a function/],
    [
      'organization with anyOrganization',
      { organization: () => 'a', anyOrganization: true },
      /`anyOrganization` contradicts/,
    ],
    ['a misspelt requirement', { scope: ['read:products'] }, /`scope`.*did you mean `scopes`/],
    ['not an object', 'read:products', /`options` must be a plain object/],
  ])('checks its options when the route is declared: %s', (_name, options, message) => {
    const build = () => routeGuard(fixtureVerifier().verifier, options as RouteOptions<Req>);
    expect(build).toThrow(TypeError);
    expect(build).toThrow(message);
  });

  it('needs a verifier', () => {
    expect(() => routeGuard({} as never)).toThrow(/`verifier` must be a verifier/);
  });
});

describe('metadataRoute', () => {
  it('serves GET and HEAD of exactly the metadata path', () => {
    const route = metadataRoute(
      fixtureVerifier({ resourceMetadata: { resource: 'https://api.example.com/shop' } }).verifier,
    );
    expect(route.path).toBe('/.well-known/oauth-protected-resource/shop');
    expect(route.matches('GET', route.path)).toBe(true);
    expect(route.matches('HEAD', route.path)).toBe(true);
    expect(route.matches('POST', route.path)).toBe(false);
    expect(route.matches('GET', `${route.path}/`)).toBe(false);
    expect(route.headers['content-type']).toBe('application/json');
  });

  it('is a TypeError without the resourceMetadata option', () => {
    expect(() => metadataRoute(fixtureVerifier().verifier)).toThrow(
      /`resourceMetadata` is not set/,
    );
  });
});
