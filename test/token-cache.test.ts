import { describe, expect, it, vi } from 'vitest';
import { AuthError } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { fixtureVerifier, jwks, key, next, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import { untilFresh } from './helpers/fresh.ts';

useKeySetFixture();

const setup = (options: Partial<VerifierOptions> = {}) =>
  fixtureVerifier({ keys: { cooldown: 0 }, ...options });

const reason = (promise: Promise<unknown>) =>
  promise.then(
    () => 'ok',
    (error: unknown) => (error instanceof AuthError ? error.reason : String(error)),
  );

/** Counts signature verifications by watching node:crypto (the core's signature path on Node). */
function countVerifications() {
  const nodeCrypto = process.getBuiltinModule('node:crypto');
  return vi.spyOn(nodeCrypto, 'verify');
}

describe('the verified-token cache', () => {
  it('verifies a repeated token once, and still checks scopes on every request', async () => {
    const { verifier } = setup();
    const token = await mint(key, m2mClaims({ scope: 'read:products' }));
    await verifier.verify(await mint(key)); // keys loaded (and the crypto route probed, once)
    const verifications = countVerifications();
    for (let i = 0; i < 10; i++) await verifier.verify(token, { scopes: ['read:products'] });
    expect(verifications).toHaveBeenCalledTimes(1);
    expect(await reason(verifier.verify(token, { scopes: ['write:products'] }))).toBe(
      'insufficient_scope',
    );
  });

  it('with cache: false verifies every time', async () => {
    const { verifier } = setup({ cache: false });
    const token = await mint(key);
    const verifications = countVerifications();
    for (let i = 0; i < 3; i++) await verifier.verify(token);
    expect(verifications).toHaveBeenCalledTimes(3);
  });

  it('concurrent first sightings of one token share one verification', async () => {
    const { verifier } = setup();
    const token = await mint(key);
    await verifier.verify(await mint(key)); // keys loaded
    const verifications = countVerifications();
    await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));
    expect(verifications).toHaveBeenCalledTimes(1);
  });

  it('never answers from the cache past the token’s exp', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ clockTolerance: 0 });
    const exp = Math.floor(Date.now() / 1000) + 60;
    const token = await mint(key, m2mClaims({ exp }));
    expect(await reason(verifier.verify(token))).toBe('ok');
    vi.setSystemTime(exp * 1000 + 1);
    expect(await reason(verifier.verify(token))).toBe('expired');
  });

  it('never answers from the cache past maxTokenAge', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ clockTolerance: 0, maxTokenAge: 30 });
    const token = await mint(key);
    expect(await reason(verifier.verify(token))).toBe('ok');
    vi.setSystemTime(Date.now() + 31_000);
    expect(await reason(verifier.verify(token))).toBe('token_too_old');
  });

  it('never caches a failure', async () => {
    const { verifier, events } = setup();
    const expired = await mint(key, m2mClaims({ exp: 1 }));
    for (let i = 0; i < 3; i++) expect(await reason(verifier.verify(expired))).toBe('expired');
    expect(events).toHaveLength(3);
  });

  it('drops the entries of a key that leaves the JWKS', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ keys: { maxAge: 60, cooldown: 0 } });
    const oldToken = await mint(key);
    expect(await reason(verifier.verify(oldToken))).toBe('ok');
    jwks.keys = [next.jwk]; // rotated without grace
    const newToken = await mint(next);
    expect(await reason(verifier.verify(newToken))).toBe('ok'); // unknown kid → refetch
    expect(await reason(verifier.verify(oldToken))).toBe('unknown_kid');
  });

  it('is bounded by maxEntries, oldest first', async () => {
    const { verifier } = setup({ cache: { maxEntries: 2 } });
    const tokens = await Promise.all([mint(key), mint(key), mint(key)]);
    for (const token of tokens) await verifier.verify(token);
    const verifications = countVerifications();
    await verifier.verify(tokens[2] as string);
    await verifier.verify(tokens[1] as string);
    expect(verifications).toHaveBeenCalledTimes(0);
    await verifier.verify(tokens[0] as string); // evicted
    expect(verifications).toHaveBeenCalledTimes(1);
  });

  it('is bounded by maxBytes', async () => {
    const tokens = await Promise.all(Array.from({ length: 5 }, () => mint(key)));
    // Estimated per entry: twice the token's length plus 640 bytes. Room for two, not three.
    const entry = (tokens[0] as string).length * 2 + 640;
    const { verifier } = setup({ cache: { maxBytes: 2 * entry + 100 } });
    for (const token of tokens) await verifier.verify(token);
    const verifications = countVerifications();
    for (const token of tokens) await verifier.verify(token);
    expect(verifications.mock.calls.length).toBeGreaterThanOrEqual(3);
  });

  it('a token differing in one character is a different entry', async () => {
    const { verifier } = setup();
    const token = await mint(key);
    await verifier.verify(token);
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    expect(await reason(verifier.verify(token.slice(0, -1) + last))).toBe('bad_signature');
  });

  it('a cached token stops working once its key leaves the JWKS, with no other traffic', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ keys: { maxAge: 600, cooldown: 0 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    expect(await reason(verifier.verify(token))).toBe('ok');
    jwks.keys = [next.jwk];
    vi.setSystemTime(Date.now() + 601_000);
    expect(await reason(verifier.verify(token))).toBe('ok'); // stale keys vouch; refresh starts
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
    await untilFresh(verifier);
    expect(await reason(verifier.verify(token))).toBe('unknown_kid');
  });

  it('keeps answering from the cache through a JWKS outage, until maxStale', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ keys: { maxAge: 60, maxStale: 600, cooldown: 0 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    await verifier.verify(token);
    jwks.behave((_req, res) => res.writeHead(503).end());
    const verifications = countVerifications();
    vi.setSystemTime(Date.now() + 120_000);
    for (let i = 0; i < 5; i++) expect(await reason(verifier.verify(token))).toBe('ok');
    expect(verifications).toHaveBeenCalledTimes(0);
    vi.setSystemTime(Date.now() + 600_000); // past maxAge + maxStale
    expect(await reason(verifier.verify(token))).toBe('keys_unavailable');
  });
});

describe('a cache entry is bound to the key that verified it, not to its kid', () => {
  it('a key replaced under the same kid takes its cached tokens with it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const [k1, k2] = await Promise.all([makeKey('ES384', 'rot'), makeKey('ES384', 'rot')]);
    jwks.keys = [k1.jwk];
    const cached = setup({ keys: { maxAge: 60, cooldown: 0 } }).verifier;
    const cold = setup({ keys: { maxAge: 60, cooldown: 0 }, cache: false }).verifier;
    const token = await mint(k1, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    expect(await reason(cached.verify(token))).toBe('ok');
    expect(await reason(cold.verify(token))).toBe('ok');
    jwks.keys = [k2.jwk]; // the issuer now serves another key under kid "rot"
    // A token of the new key refreshes both sets (same kid, but the set has changed under it).
    vi.setSystemTime(Date.now() + 61_000);
    await reason(cached.verify(await mint(k2)));
    await reason(cold.verify(await mint(k2)));
    await vi.waitFor(() => expect(jwks.hits).toBe(4));
    await untilFresh(cached, cold);
    expect(await reason(cold.verify(token))).toBe('bad_signature');
    expect(await reason(cached.verify(token))).toBe('bad_signature');
  });

  it('a JWK that changes in any member (here its alg) no longer vouches for cached tokens', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ keys: { maxAge: 60, cooldown: 0 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    expect(await reason(verifier.verify(token))).toBe('ok');
    jwks.keys = [{ ...key.jwk, alg: 'ES512' }]; // same material, now only for another algorithm
    vi.setSystemTime(Date.now() + 61_000);
    await reason(verifier.verify(token)); // stale: starts the refresh
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
    await untilFresh(verifier);
    expect(await reason(verifier.verify(token))).toBe('key_mismatch');
  });

  it('a refresh racing 400 first sightings leaves none of the removed key’s tokens in the cache', async () => {
    const gone = await makeKey('ES384', 'gone');
    jwks.keys = [gone.jwk];
    const { verifier } = setup({ keys: { cooldown: 0 } });
    const tokens = await Promise.all(Array.from({ length: 400 }, () => mint(gone)));
    expect(await reason(verifier.verify(await mint(gone)))).toBe('ok'); // keys loaded
    jwks.keys = [key.jwk];
    const newKid = await mint(key);
    // 400 verifications on the thread pool, and a token of an unknown kid that refreshes the set
    // (without `gone`) while they run.
    const racing = tokens.map((token) => reason(verifier.verify(token)));
    const refresher = reason(verifier.verify(newKid));
    const during = await Promise.all(racing);
    expect(await refresher).toBe('ok');
    expect(during.every((r) => r === 'ok' || r === 'unknown_kid')).toBe(true);
    const after = await Promise.all(tokens.map((token) => reason(verifier.verify(token))));
    expect(after.filter((r) => r !== 'unknown_kid')).toEqual([]);
  });

  it('the same key listed twice, or unchanged across a refresh, keeps its cached tokens', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const { verifier } = setup({ keys: { maxAge: 60, cooldown: 0 } });
    const token = await mint(key, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    await verifier.verify(token);
    jwks.keys = [key.jwk, { ...key.jwk }, next.jwk];
    vi.setSystemTime(Date.now() + 61_000);
    await verifier.verify(token); // starts the refresh
    await vi.waitFor(() => expect(jwks.hits).toBe(2));
    await untilFresh(verifier);
    const verifications = countVerifications();
    expect(await reason(verifier.verify(token))).toBe('ok');
    expect(verifications).toHaveBeenCalledTimes(0); // still answered from the cache
  });
});

describe('the cache never answers where a fresh verification would not (review findings)', () => {
  it('a kid that grows past 8 keys stops vouching for the tokens it verified before', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const crowd = await Promise.all(Array.from({ length: 9 }, () => makeKey('ES384', 'k')));
    jwks.keys = [crowd[0]!.jwk];
    const cached = setup({ keys: { maxAge: 60, cooldown: 0 } });
    const cold = setup({ keys: { maxAge: 60, cooldown: 0 }, cache: false });
    const token = await mint(crowd[0]!, m2mClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    for (const v of [cached, cold]) expect(await reason(v.verifier.verify(token))).toBe('ok');
    jwks.keys = crowd.map((k) => k.jwk);
    vi.setSystemTime(Date.now() + 61_000);
    for (const v of [cached, cold]) await reason(v.verifier.verify(token)); // refresh starts
    await vi.waitFor(() => expect(jwks.hits).toBe(4));
    await untilFresh(cached.verifier, cold.verifier);
    expect(await reason(cold.verifier.verify(token))).toBe('key_mismatch');
    expect(await reason(cached.verifier.verify(token))).toBe('key_mismatch');
    expect(cached.events.at(-1)?.details.problem).toMatch(/more than 8 keys share this kid/);
  });

  it('a token without a kid is never answered from the cache', async () => {
    const { verifier } = setup();
    const token = await mint(key, undefined, { kid: undefined });
    await verifier.verify(token);
    const verifications = countVerifications();
    await verifier.verify(token);
    expect(verifications).toHaveBeenCalledTimes(1);
  });

  it('a clock stepped back: a cached token is not answered before its nbf/iat allow', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const now = Math.floor(Date.now() / 1000);
    const cached = setup();
    const cold = setup({ cache: false });
    const token = await mint(key, m2mClaims({ iat: now + 4, nbf: now + 4 }));
    for (const v of [cached, cold]) expect(await reason(v.verifier.verify(token))).toBe('ok');
    vi.setSystemTime(Date.now() - 30_000); // an NTP step
    const expected = await reason(cold.verifier.verify(token));
    expect(expected).not.toBe('ok');
    expect(await reason(cached.verifier.verify(token))).toBe(expected);
  });
});

describe('the cache key is the signature’s tail; the whole token is still compared', () => {
  it('a forged token that ends like a cached one is verified (and refused), not answered', async () => {
    const { verifier } = setup();
    const token = await mint(key);
    expect(await reason(verifier.verify(token))).toBe('ok');
    const [header, , signature] = token.split('.') as [string, string, string];
    const forged = `${header}.${Buffer.from(JSON.stringify(m2mClaims({ scope: 'admin' }))).toString('base64url')}.${signature}`;
    expect(await reason(verifier.verify(forged))).toBe('bad_signature');
    const verifications = countVerifications();
    expect(await reason(verifier.verify(token))).toBe('ok'); // still cached, not displaced
    expect(verifications).toHaveBeenCalledTimes(0);
  });

  it('evicts oldest first through many inserts, and keeps exactly the newest maxEntries', async () => {
    const { verifier } = setup({ cache: { maxEntries: 3 } });
    const tokens = await Promise.all(Array.from({ length: 40 }, () => mint(key)));
    for (const token of tokens) await verifier.verify(token);
    const verifications = countVerifications();
    for (const token of tokens.slice(-3)) await verifier.verify(token);
    expect(verifications).toHaveBeenCalledTimes(0);
    await verifier.verify(tokens[36] as string);
    expect(verifications).toHaveBeenCalledTimes(1);
  });
});
