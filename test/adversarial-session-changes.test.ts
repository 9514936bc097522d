/**
 * Adversarial review of this session's changes (8376927..HEAD): the requirements note on cached
 * entries, short-keyed single flight, key-set ordering, revocation memo, replay-store lanes and
 * the pool watchdog. Each guard asserts exact status and reason against what a cold (cache-less)
 * verifier answers; `it.fails` marks an attack that succeeds today, written as it should behave.
 */
import crypto, { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JWK } from 'jose';
import { createVerifier } from 'resource-guard';
import type { Verifier, VerifierOptions } from 'resource-guard';
import { MemoryReplayStore } from '../src/replay-store.ts';
import { clock, outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { bearer } from './helpers/http.ts';
import { dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

let issuerKey: TestKey;
let otherKey: TestKey;
beforeAll(async () => {
  [issuerKey, otherKey] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
});

/** A verifier on a JWKS served through `fetch`, whose keys the test may change. */
function world(options: Partial<VerifierOptions> = {}) {
  const state = { keys: [issuerKey.jwk] as JWK[], fetches: 0 };
  const fetch = (async () => {
    state.fetches++;
    return Response.json({ keys: state.keys });
  }) as typeof globalThis.fetch;
  const make = (extra: Partial<VerifierOptions> = {}) =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'https://issuer.test/jwks',
      fetch,
      ...options,
      ...extra,
    });
  return { state, verifier: make(), cold: make({ cache: false }) };
}

const request = (token: string) => ({ method: 'GET', url: '/x', headers: bearer(token) });

/** The same call on the cached verifier (three times, so the note is set and used) and a cold one. */
async function both(
  hot: Verifier,
  cold: Verifier,
  call: (v: Verifier) => Promise<unknown>,
): Promise<string[]> {
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await outcome(call(hot)));
  answers.push(await outcome(call(cold)));
  return answers;
}

describe('the requirements note on a cached entry never skips a route rule', () => {
  it('per-call requirements and NO_REQUIREMENTS: a passed route never opens another', async () => {
    const { verifier, cold } = world();
    const token = await mint(issuerKey, m2mClaims({ scope: 'read:products' }));
    expect(await both(verifier, cold, (v) => v.verify(token))).toEqual(Array(4).fill('ok'));
    expect(
      await both(verifier, cold, (v) => v.verify(token, { scopes: ['write:products'] })),
    ).toEqual(Array(4).fill('403 insufficient_scope'));
    expect(
      await both(verifier, cold, (v) => v.authenticate(request(token), { machine: true })),
    ).toEqual(Array(4).fill('ok'));
    const human = await mint(issuerKey, m2mClaims({ sub: 'user-1' }));
    expect(await both(verifier, cold, (v) => v.verify(human))).toEqual(Array(4).fill('ok'));
    expect(await both(verifier, cold, (v) => v.verify(human, { machine: true }))).toEqual(
      Array(4).fill('403 machine_required'),
    );
  });

  it('an organization token noted on an anyOrganization route stays refused elsewhere', async () => {
    const { verifier, cold } = world();
    const token = await mint(issuerKey, m2mClaims({ organization_id: 'org-a' }));
    const anyOrg = verifier.guard({ anyOrganization: true });
    const coldAny = cold.guard({ anyOrganization: true });
    for (let i = 0; i < 3; i++) expect(await outcome(anyOrg(request(token)))).toBe('ok');
    expect(await outcome(coldAny(request(token)))).toBe('ok');
    const plain = verifier.guard();
    const coldPlain = cold.guard();
    expect(await outcome(plain(request(token)))).toBe('403 organization_token');
    expect(await outcome(coldPlain(request(token)))).toBe('403 organization_token');
    expect(await outcome(verifier.verify(token))).toBe('403 organization_token');
    // An organization route (a per-request object): org-a passes, then org-b must not.
    const orgRoute = verifier.guard({ scopes: ['read:products'] });
    for (let i = 0; i < 2; i++) {
      expect(await outcome(orgRoute(request(token), { organization: 'org-a' }))).toBe('ok');
    }
    expect(await outcome(orgRoute(request(token), { organization: 'org-b' }))).toBe(
      '403 organization_mismatch',
    );
    expect(await outcome(orgRoute(request(token), {}))).toBe('403 organization_mismatch');
  });

  it('a noted token stops at its expiry and when its key leaves the set', async () => {
    const time = clock();
    const { verifier, state } = world({ keys: { cooldown: 0 } });
    const route = verifier.guard({ scopes: ['read:products'] });
    const now = Math.floor(Date.now() / 1000);
    const short = await mint(issuerKey, m2mClaims({ iat: now, exp: now + 60 }));
    const long = await mint(issuerKey, m2mClaims());
    for (let i = 0; i < 3; i++) {
      expect(await outcome(route(request(short)))).toBe('ok');
      expect(await outcome(route(request(long)))).toBe('ok');
    }
    time.advance(66); // past exp + the 5 s clock tolerance
    expect(await outcome(route(request(short)))).toBe('401 expired');
    expect(await outcome(world().cold.verify(short))).toBe('401 expired');
    expect(await outcome(route(request(long)))).toBe('ok');
    // The issuer drops the key; a token with an unknown kid makes the set refresh.
    state.keys = [otherKey.jwk];
    const fetched = state.fetches;
    expect(await outcome(route(request(await mint(otherKey, m2mClaims()))))).toBe('ok');
    expect(state.fetches).toBe(fetched + 1);
    expect(await outcome(route(request(long)))).toBe('401 unknown_kid');
  });

  it('a route with checks or a revocation hook is asked on every request', async () => {
    let allow = true;
    let revoked = false;
    const { verifier } = world({ isRevoked: () => revoked });
    const token = await mint(issuerKey, m2mClaims());
    const route = verifier.guard({ scopes: ['read:products'] });
    for (let i = 0; i < 3; i++) expect(await outcome(route(request(token)))).toBe('ok');
    revoked = true;
    expect(await outcome(route(request(token)))).toBe('401 revoked');

    const plain = world().verifier;
    const checked = plain.guard({ checks: { allowed: () => allow } });
    for (let i = 0; i < 3; i++) expect(await outcome(checked(request(token)))).toBe('ok');
    allow = false;
    expect(await outcome(checked(request(token)))).toBe('403 check_failed');
  });

  it('a key-bound token cached by DPoP requests never passes as Bearer, before or after a note', async () => {
    const proofKey = await makeProofKey();
    const fx = await dpopFixture({}, issuerKey);
    const token = await fx.bound(proofKey);
    const route = fx.verifier.guard({ scopes: ['read:products'], dpop: 'allowed' });
    const dpopCall = async () =>
      outcome(route(dpopRequest(token, await proof(proofKey, 'GET', `${ORIGIN}/products`, token))));
    for (let i = 0; i < 2; i++) expect(await dpopCall()).toBe('ok');
    for (let i = 0; i < 3; i++) {
      expect(await outcome(route(dpopRequest(token, undefined, { scheme: 'Bearer' })))).toBe(
        '401 dpop_bound_token',
      );
      expect(await outcome(fx.verifier.verify(token, { scopes: ['read:products'] }))).toBe(
        '401 dpop_bound_token',
      );
    }
    expect(await dpopCall()).toBe('ok');
    // A plain token noted on Bearer is still refused on a DPoP-required route without a proof.
    const plain = await fx.plain();
    for (let i = 0; i < 3; i++) expect(await outcome(fx.verifier.verify(plain))).toBe('ok');
    const required = fx.verifier.guard({ dpop: 'required' });
    expect(await outcome(required(dpopRequest(plain, undefined, { scheme: 'Bearer' })))).toBe(
      '401 dpop_required',
    );
  });
});

describe('short keys: a token sharing another one’s last 12 characters shares nothing', () => {
  it('a forged payload under a valid signature is refused, in flight and after caching', async () => {
    const { verifier } = world();
    const token = await mint(issuerKey, m2mClaims({ scope: 'read:products' }));
    const [header, , signature] = token.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify(m2mClaims({ scope: 'read:products write:products admin' })),
    ).toString('base64url');
    const forged = `${header}.${forgedPayload}.${signature}`;
    expect(forged.slice(-12)).toBe(token.slice(-12));
    // Concurrent first sightings: the forged one must not share the valid one's verification.
    const answers = await Promise.all([
      outcome(verifier.verify(token)),
      outcome(verifier.verify(forged)),
      outcome(verifier.verify(token)),
    ]);
    expect(answers).toEqual(['ok', '401 bad_signature', 'ok']);
    // Cached: the forged one is still refused, and does not displace the valid one.
    expect(await outcome(verifier.verify(forged))).toBe('401 bad_signature');
    expect(await outcome(verifier.verify(token, { scopes: ['read:products'] }))).toBe('ok');
    expect(await outcome(verifier.verify(forged, { scopes: ['admin'] }))).toBe('401 bad_signature');
  });
});

describe('revocation memo', () => {
  it('a "not revoked" asked while another token was revoked is not kept', async () => {
    const revoked = new Set<string>();
    let release: ((value: boolean) => void) | undefined;
    let asked = 0;
    const { verifier } = world({
      revocationMemo: 600,
      isRevoked: (auth: { claims: { jti?: unknown } }) => {
        const jti = auth.claims.jti as string;
        if (jti === 'slow') {
          asked++;
          if (asked === 1) return new Promise<boolean>((resolve) => (release = resolve));
        }
        return revoked.has(jti);
      },
    });
    const slow = await mint(issuerKey, m2mClaims({ jti: 'slow' }));
    const other = await mint(issuerKey, m2mClaims({ jti: 'other' }));
    const first = outcome(verifier.verify(slow));
    while (release === undefined) await new Promise((r) => setTimeout(r, 1));
    revoked.add('other');
    expect(await outcome(verifier.verify(other))).toBe('401 revoked');
    release(false);
    expect(await first).toBe('ok');
    // Revoked meanwhile: the stale "not revoked" must not be answered from the memo.
    revoked.add('slow');
    expect(await outcome(verifier.verify(slow))).toBe('401 revoked');
    expect(asked).toBe(2);
    // A "not revoked" asked with no revocation in between is kept (the memo works at all).
    const third = await mint(issuerKey, m2mClaims({ jti: 'third' }));
    expect(await outcome(verifier.verify(third))).toBe('ok');
    revoked.add('third');
    expect(await outcome(verifier.verify(third))).toBe('ok');
  });
});

describe('MemoryReplayStore lanes', () => {
  it('a proof is a replay whichever TTL it was stored with, past eight TTLs too', () => {
    const store = new MemoryReplayStore({ maxEntries: 100 });
    for (let ttl = 1; ttl <= 12; ttl++)
      expect(store.insertIfAbsent(`k${ttl}`, ttl * 1000)).toBe(true);
    for (let ttl = 1; ttl <= 12; ttl++) {
      for (const other of [1000, 70_000, 999_000]) {
        expect(store.insertIfAbsent(`k${ttl}`, other)).toBe(false);
      }
    }
    expect(store.size).toBe(12);
  });

  it('never forgets a proof early after the clock steps back', () => {
    const time = clock();
    const store = new MemoryReplayStore({ maxEntries: 10 });
    expect(store.insertIfAbsent('a', 70_000)).toBe(true);
    time.advance(-3600);
    expect(store.insertIfAbsent('b', 70_000)).toBe(true);
    time.advance(60);
    expect(store.insertIfAbsent('a', 70_000)).toBe(false);
    expect(store.insertIfAbsent('b', 70_000)).toBe(false);
  });

  // Was a bug (fixed in src/replay-store.ts): each lane was swept only up to its first live entry
  // and the count of expired entries behind a live one refused new proofs. After the clock stepped
  // back, new proofs queued behind older, later-expiring ones: the store filled with dead proofs
  // and every DPoP request got a 503 for as long as the step. A store whose lanes may be out of
  // expiry order is now swept in full before it refuses (at most once a second).
  it('a store holding one live proof and expired ones still has room after a clock step back', () => {
    const time = clock();
    const store = new MemoryReplayStore({ maxEntries: 3 });
    expect(store.insertIfAbsent('before-step', 70_000)).toBe(true);
    time.advance(-3600);
    expect(store.insertIfAbsent('b', 70_000)).toBe(true);
    expect(store.insertIfAbsent('c', 70_000)).toBe(true);
    time.advance(71); // b and c expired; before-step is live (until the old time + 70 s)
    expect(store.insertIfAbsent('d', 70_000)).toBe(true);
  });
});

describe('signature pool watchdog with a real, slow pool', () => {
  function jws(privateKey: KeyObject, n: number): string {
    const header = Buffer.from(JSON.stringify({ alg: 'ES384' })).toString('base64url');
    const input = `${header}.${Buffer.from(`payload ${n}`).toString('base64url')}`;
    const signature = sign('sha384', Buffer.from(input), {
      key: privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `${input}.${signature.toString('base64url')}`;
  }

  // Was a bug (fixed in src/signature.ts): a watchdog armed before the pool first called back
  // fired even after the pool had proven itself, so a busy pool (a cold-start burst queued behind
  // 4 threads) was declared broken for good. A watchdog now stands down once the pool has answered.
  it('a queued verification slower than poolProofMs after the pool called back does not disable the pool', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const realVerify = crypto.verify;
    let n = 0;
    vi.resetModules();
    vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
      const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
      if (typeof callback !== 'function')
        return (realVerify as (...a: unknown[]) => boolean)(...args);
      const ok = (realVerify as (...a: unknown[]) => boolean)(...args.slice(0, 4));
      // The first in the queue answers at once, the one behind it after 150 ms (a busy pool).
      setTimeout(() => callback(null, ok), n++ === 0 ? 1 : 150);
      return undefined;
    }) as typeof crypto.verify);
    const onWarning = () => undefined;
    process.on('warning', onWarning);
    try {
      const module = await import('../src/signature.ts');
      module.signatureRoute.poolProofMs = 50;
      const first = module.verifySignature(jws(p384.privateKey, 1), p384.publicKey, 'ES384');
      const second = module.verifySignature(jws(p384.privateKey, 2), p384.publicKey, 'ES384');
      expect(first).toBeInstanceOf(Promise);
      expect(await Promise.all([first, second])).toEqual([true, true]);
      // P-384 is always the pool's: a promise, unless the pool was declared broken.
      const later = module.verifySignature(jws(p384.privateKey, 3), p384.publicKey, 'ES384');
      expect(later).toBeInstanceOf(Promise);
      await later;
    } finally {
      process.off('warning', onWarning);
      vi.resetModules();
    }
  });
});
