/**
 * Session 31 mutation pass (after sessions 23, 25 and 29: test/mutation-s23.test.ts,
 * test/mutation-s25.test.ts, test/mutation-s29.test.ts): hand-made mutants of the modules those
 * passes left out (key-set, public-key, jws-segment, token-key, dpop-request, dpop-jws, dpop-nonce,
 * revocation, organization, option-checks, options, kit, resource-metadata, replay-store), each run
 * in a separate worktree against the test files that target its module, then against the whole
 * suite. One test per mutant that every one of those files let through and that could make the
 * library accept what it should refuse, refuse a valid token, or answer with a wrong status or
 * Retry-After. Each passes on the current sources and fails on its mutant, named by a `kills:`
 * line. Static key sets or a `fetch` stub (no network), fake `Date` only.
 */
import type { JWK } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, MemoryReplayStore } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import { dpopFixture, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { untilFresh } from './helpers/fresh.ts';
import { clock, outcome } from './helpers/outcome.ts';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const JWKS_URI = 'https://tenant.example.test/oidc/jwks';

/** The AuthError a promise rejects with (a verified token fails the test). */
async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  const error: unknown = await promise.then(
    () => new Error('expected a refusal, got a verified token'),
    (e: unknown) => e,
  );
  if (!(error instanceof AuthError)) throw error;
  return error;
}

/**
 * A `fetch` for the JWKS URL that answers `keys()` while `up()` says so, and fails (a network
 * error) otherwise; `calls` counts the requests.
 */
function jwksFetch(keys: () => JWK[], up: () => boolean = () => true) {
  const stub = {
    calls: 0,
    fetch: (async () => {
      stub.calls++;
      if (!up()) throw new TypeError('fetch failed');
      return new Response(JSON.stringify({ keys: keys() }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof globalThis.fetch,
  };
  return stub;
}

const fetchedVerifier = (
  stub: { fetch: typeof globalThis.fetch },
  extra: Partial<VerifierOptions> = {},
) =>
  createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: JWKS_URI,
    fetch: stub.fetch,
    cache: false,
    ...extra,
  });

describe('key-set: candidates and back-off', () => {
  // kills: src/key-set.ts:537 `(this.#retryAt - now) / 1000` → `(this.#retryAt - this.#retryFrom)
  // / 1000`. A request refused while the set backs off is told the time LEFT of the back-off, not
  // its whole length: after three failures (a 4 s back-off) and 3 s of it, Retry-After is 1, not 4.
  it('Retry-After while backing off is the time left of the back-off', async () => {
    const time = clock();
    const stub = jwksFetch(
      () => [],
      () => false,
    );
    const verifier = fetchedVerifier(stub);
    const key = await makeKey('ES256');
    const token = await mint(key);
    const retryAfter = async () => (await refusal(verifier.verify(token))).headers['retry-after'];
    expect(await retryAfter()).toBe('1'); // failure 1: back-off 1 s
    time.advance(1);
    expect(await retryAfter()).toBe('2'); // failure 2: back-off 2 s
    time.advance(2);
    expect(await retryAfter()).toBe('4'); // failure 3: back-off 4 s
    expect(stub.calls).toBe(3);
    time.advance(3);
    const error = await refusal(verifier.verify(token));
    expect(stub.calls).toBe(3); // still backing off: no fetch
    expect(`${error.status} ${error.reason}`).toBe('503 keys_unavailable');
    expect(error.headers['retry-after']).toBe('1');
  });
  // kills: src/key-set.ts:387 the Retry-After of a new kid refused within the cooldown after a failed
  // refetch, `Math.max(1, (this.#nextAttemptAt(now) - now) / 1000)` → `1`. The next fetch can
  // happen only when the cooldown ends: a client told 1 s comes back to another 503.
  it('a new kid within the cooldown after a failed refetch: Retry-After is the cooldown left', async () => {
    const time = clock();
    let up = true;
    const [known, rotated] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
    const stub = jwksFetch(
      () => [known.jwk],
      () => up,
    );
    const verifier = fetchedVerifier(stub);
    expect(await outcome(verifier.verify(await mint(known)))).toBe('ok');
    up = false;
    time.advance(31); // past the cooldown: the new kid refetches, and that fails
    const first = await refusal(verifier.verify(await mint(rotated)));
    expect(`${first.status} ${first.reason}`).toBe('503 keys_unavailable');
    expect(first.headers['retry-after']).toBe('30');
    expect(stub.calls).toBe(2);
    time.advance(10); // within the cooldown of that failed refetch: no fetch, 503 until it ends
    const again = await refusal(verifier.verify(await mint(rotated)));
    expect(stub.calls).toBe(2);
    expect(`${again.status} ${again.reason}`).toBe('503 keys_unavailable');
    expect(again.headers['retry-after']).toBe('20');
  });
  // kills: src/key-set.ts:522 `if (!this.#fresh(now)) return this.#retryAt;` dropped. Keys fetched
  // "in the future" of a clock stepped back are not fresh: a failed refresh then backs off 1 s,
  // and Retry-After says 1, not the 30 s of a cooldown that only a fresh set waits for.
  it('after a backwards clock step, a failed refresh answers Retry-After of its back-off', async () => {
    const time = clock();
    let up = true;
    const key = await makeKey('ES256');
    const stub = jwksFetch(
      () => [key.jwk],
      () => up,
    );
    const verifier = fetchedVerifier(stub);
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    up = false;
    time.advance(-60);
    const token = await mint(key); // issued on the stepped-back clock
    const error = await refusal(verifier.verify(token));
    expect(`${error.status} ${error.reason}`).toBe('503 keys_unavailable');
    expect(stub.calls).toBe(2);
    expect(error.headers['retry-after']).toBe('1');
    // And 1 s is right: a request then fetches again, and the keys are back.
    up = true;
    time.advance(1);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(stub.calls).toBe(3);
  });

  // kills: src/key-set.ts:403 `(this.#options.timeout + 1) * 1000` → `1000`. Request-scoped: a
  // refresh under way is waited for as long as its request may take (the fetch timeout + 1 s), not
  // 1 s; a second request 2 s into a slow JWKS answer waits, it does not fetch again.
  it('request-scoped: a refresh slower than 1 s is waited for, not duplicated', async () => {
    const time = clock();
    const key = await makeKey('ES256');
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const stub = jwksFetch(() => [key.jwk]);
    const slow = async (...args: Parameters<typeof globalThis.fetch>) => {
      const response = stub.fetch(...args);
      await gate;
      return response;
    };
    const verifier = fetchedVerifier(
      { fetch: slow as typeof globalThis.fetch },
      { requestScoped: true },
    );
    const token = await mint(key);
    const first = outcome(verifier.verify(token));
    while (stub.calls === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    time.advance(2);
    const second = outcome(verifier.verify(token));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(stub.calls).toBe(1);
    release();
    expect(await Promise.all([first, second])).toEqual(['ok', 'ok']);
    expect(stub.calls).toBe(1);
  });
  // kills: src/key-set.ts:480 `snapshot.byId.get(key.id) !== key` → `=== undefined`. A refresh that
  // lists a kid more than eight times builds its keys afresh (a crowded kid verifies nothing): the
  // key object that verified a cached token must be revoked too, though its JWK is still listed,
  // or the cache keeps vouching for a token that now verifies under no key.
  it('a kid that becomes crowded stops vouching for the tokens it verified before', async () => {
    const time = clock();
    const key = await makeKey('ES256', 'shared');
    const crowd = await Promise.all(Array.from({ length: 8 }, () => makeKey('ES256', 'shared')));
    let keys = [key.jwk];
    const stub = jwksFetch(() => keys);
    const verifier = fetchedVerifier(stub, { cache: {}, keys: { maxAge: 60 } });
    const token = await mint(key);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    keys = [key.jwk, ...crowd.map((k) => k.jwk)];
    time.advance(61); // stale: served once more while the refresh runs in the background
    expect(await outcome(verifier.verify(token))).toBe('ok');
    await untilFresh(verifier);
    expect(stub.calls).toBe(2);
    expect(await outcome(verifier.verify(token))).toBe('401 key_mismatch');
  });
  // kills: src/key-set.ts:494 `if (order < this.#applied && current !== undefined) return current;`
  // dropped. Request-scoped: a refetch for a new kid silent past the fetch timeout + 1 s is
  // presumed cut off, and a later one runs; when the old one finally fails, its request gets the
  // newer keys (which hold its kid), not a 503.
  it('request-scoped: an old refetch failing after a newer one landed answers with its keys', async () => {
    const time = clock();
    const [old, rotated] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
    let keys = [old.jwk];
    let failHung: (error: Error) => void = () => undefined;
    const stub = jwksFetch(() => keys);
    const fetch = ((...args: Parameters<typeof globalThis.fetch>) =>
      stub.calls === 1
        ? (stub.calls++, new Promise<Response>((_, reject) => (failHung = reject)))
        : stub.fetch(...args)) as typeof globalThis.fetch;
    const verifier = fetchedVerifier({ fetch }, { requestScoped: true });
    expect(await outcome(verifier.verify(await mint(old)))).toBe('ok');
    keys = [old.jwk, rotated.jwk];
    time.advance(31); // past the cooldown: a new kid refetches (and this refetch hangs)
    const token = await mint(rotated);
    const first = outcome(verifier.verify(token));
    while (stub.calls === 1) await new Promise((resolve) => setTimeout(resolve, 2));
    time.advance(31); // silent past timeout + 1 s, and past the cooldown: a new refetch runs
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(stub.calls).toBe(3);
    failHung(new TypeError('fetch failed'));
    expect(await first).toBe('ok');
  });
});

describe('dpop-request: which header and which host', () => {
  // kills: src/dpop-request.ts:149 (a headers record) `if (value !== undefined) return MANY;`
  // dropped. Two DPoP fields in a plain headers object (two spellings of the name, as a framework
  // may hand them over) are two proofs: 400, never the last of them.
  it('a headers record with two DPoP fields is refused, not read as its last proof', async () => {
    const [fx, holder] = await Promise.all([dpopFixture(), makeProofKey()]);
    const token = await fx.bound(holder);
    const [one, two] = await Promise.all([
      proof(holder, 'GET', `${ORIGIN}/products`, token),
      proof(holder, 'GET', `${ORIGIN}/products`, token),
    ]);
    const request = {
      method: 'GET',
      url: '/products',
      headers: { host: 'api.shop.example', authorization: `DPoP ${token}`, dpop: one, DPoP: two },
    };
    expect(await outcome(fx.verifier.authenticate(request))).toBe('400 dpop_multiple_proofs');
  });

  // kills: src/dpop-request.ts:178 `if (absolute && !web)` → `if (absolute && web)`. With
  // trustHost, a node request in absolute form names its host in its target (RFC 9112 §3.2.2: the
  // Host field is ignored): a proof for the Host field's origin is a proof for another URL.
  it('trustHost: an absolute-form target names the host, whatever the Host field says', async () => {
    const [fx, holder] = await Promise.all([
      dpopFixture({ dpop: { trustHost: true } }),
      makeProofKey(),
    ]);
    const token = await fx.bound(holder);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = dpopRequest(token, p, { url: 'https://other.example/products' });
    expect(await outcome(fx.verifier.authenticate(request))).toBe('401 dpop_htu_mismatch');
    // Control: the same proof on an origin-form target with that Host.
    const q = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, q)))).toBe('ok');
  });

  // kills: src/dpop-request.ts:182 `host === MANY || authority === MANY` → `host === MANY`. Two
  // :authority values name no host: a refusal, never a symbol turned into a URL (a TypeError, 500).
  it('trustHost: two :authority values name no host (401, not an exception)', async () => {
    const [fx, holder] = await Promise.all([
      dpopFixture({ dpop: { trustHost: true } }),
      makeProofKey(),
    ]);
    const token = await fx.bound(holder);
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = {
      method: 'GET',
      url: '/products',
      headers: {
        ':authority': ['api.shop.example', 'api.shop.example'],
        authorization: `DPoP ${token}`,
        dpop: p,
      },
    };
    expect(await outcome(fx.verifier.authenticate(request))).toBe('401 dpop_htu_mismatch');
  });
});

describe('dpop-jws: the compact form', () => {
  // kills: src/dpop-jws.ts:27 COMPACT_JWS without its `$` anchor. A proof is exactly three
  // segments: anything after the signature (a fourth segment, padding, a stray character) makes
  // it no compact JWS, not a proof read up to where it stops being one.
  it('a proof with anything after its signature is refused', async () => {
    const [fx, holder] = await Promise.all([dpopFixture(), makeProofKey()]);
    const token = await fx.bound(holder);
    for (const tail of ['.x', '==', '.', '~']) {
      const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
      const answer = await outcome(fx.verifier.authenticate(dpopRequest(token, `${p}${tail}`)));
      expect(answer, tail).toBe('401 dpop_proof_invalid');
    }
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(fx.verifier.authenticate(dpopRequest(token, p)))).toBe('ok');
  });
});

describe('revocation: the hook’s timeout', () => {
  // kills: src/revocation.ts:37 `timeoutSeconds * 1000` → `timeoutSeconds * 10000`. The timeout is
  // in seconds: a hook that never answers is a 503 after revocationTimeout (200 ms here), not ten
  // times that (the request would hang).
  it('a hook that never answers is a 503 after revocationTimeout seconds', async () => {
    const key = await makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      isRevoked: () => new Promise<boolean>(() => undefined),
      revocationTimeout: 0.2,
    });
    const token = await mint(key);
    const started = performance.now();
    expect(await outcome(verifier.verify(token))).toBe('503 revocation_unavailable');
    expect(performance.now() - started).toBeLessThan(1500); // ten times the timeout is 2 s
  });
});

describe('organization: an organization audience has an id', () => {
  // kills: src/organization.ts:19 `aud.length > ORGANIZATION_AUDIENCE.length` → `>=`. The bare
  // prefix `urn:logto:organization:` names no organization: a token for this API that also lists
  // it is no organization token (a global route takes it), and with `organizations: true` the
  // bare prefix alone is no audience of ours.
  it('`urn:logto:organization:` with no id is not an organization audience', async () => {
    const key = await makeKey('ES256');
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      organizations: true,
    });
    const both = await mint(key, m2mClaims({ aud: [AUDIENCE, 'urn:logto:organization:'] }));
    expect(await outcome(verifier.verify(both))).toBe('ok');
    const bare = await mint(key, m2mClaims({ aud: 'urn:logto:organization:' }));
    expect(await outcome(verifier.verify(bare, { anyOrganization: true }))).toBe(
      '401 audience_mismatch',
    );
  });
});

describe('option-checks: a configuration error never shows a password', () => {
  // kills: src/option-checks.ts:354 `quote`'s USERINFO test → `false`. A URL option refused for
  // carrying credentials is named, its value is not printed: the message goes to logs.
  it('a resourceMetadata URL with user:password@ is refused without echoing the password', () => {
    const make = () =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: JWKS_URI,
        resourceMetadata: { resourceDocumentation: 'https://ops:s3cr3t-pw@docs.example/api' },
      });
    expect(make).toThrow(TypeError);
    expect(make).toThrow(/resourceDocumentation/);
    expect(make).not.toThrow(/s3cr3t-pw/);
  });
});

describe('options: one key source', () => {
  // kills: src/options.ts:209 the `jwks` + `jwksUri` TypeError dropped. Two key sources given
  // together would leave one silently unused (a pinned static set that is not what verifies, or
  // a JWKS URL never asked): refused at start-up.
  it('jwks and jwksUri together are a TypeError', async () => {
    const key = await makeKey('ES256');
    expect(() =>
      createVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwksUri: JWKS_URI,
        jwks: { keys: [key.jwk] },
      }),
    ).toThrow(/`jwks` and `jwksUri` are two key sources/);
  });
});

describe('options: request-scoped on Workers by default', () => {
  // kills: src/options.ts:229 `options.requestScoped ?? isWorkers()` → `?? false`. On Cloudflare
  // Workers no work may outlive a request: health() there reports, it starts no background fetch.
  it('where navigator.userAgent is Cloudflare-Workers, health() starts no fetch', async () => {
    vi.stubGlobal('navigator', { userAgent: 'Cloudflare-Workers' });
    try {
      const stub = jwksFetch(() => []);
      const verifier = fetchedVerifier(stub);
      expect(verifier.health().map((h) => h.state)).toEqual(['empty']);
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(stub.calls).toBe(0);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('resource-metadata: the resource is an http(s) URL', () => {
  // kills: src/resource-metadata.ts:43 the protocol check dropped (`url === undefined` only). An
  // audience that is no http(s) URL cannot be the default resource: a TypeError at start-up, not
  // metadata served at an origin of `null`.
  it('resourceMetadata over a non-http audience is a TypeError naming the resource', () => {
    expect(() =>
      createVerifier({
        issuer: ISSUER,
        audience: 'api://shopping',
        jwksUri: JWKS_URI,
        resourceMetadata: {},
      }),
    ).toThrow(/resourceMetadata\.resource/);
  });
});

describe('replay-store: a full store after a backwards clock step', () => {
  // kills: src/replay-store.ts:83 `max < 1` → `max < 0`. A store of no entries refuses every proof
  // (a 503 for every DPoP request): `maxEntries: 0` is a TypeError when the store is made.
  it('maxEntries: 0 is a TypeError', () => {
    expect(() => new MemoryReplayStore({ maxEntries: 0 })).toThrow(/maxEntries/);
    expect(new MemoryReplayStore({ maxEntries: 1 }).insertIfAbsent('a', 1000)).toBe(true);
  });

  // kills: src/replay-store.ts:112 `|| now < this.#sweptAt` dropped. A clock stepped back before the
  // last full sweep must not hold off the next one for a second of the NEW clock's time plus the
  // step: a store full only of expired proofs (behind a live one) makes room, it does not refuse
  // new proofs (a 503 for every DPoP request).
  it('a store that looks full is swept again when the clock is back before the last sweep', () => {
    const time = clock(1_000_000);
    const store = new MemoryReplayStore({ maxEntries: 3 });
    expect(store.insertIfAbsent('a', 1000)).toBe(true); // expires at +1000
    time.advance(-5);
    expect(store.insertIfAbsent('b', 1000)).toBe(true); // behind a: out of order
    time.advance(0.1);
    expect(store.insertIfAbsent('x', 1000)).toBe(true); // full
    time.advance(1.9); // b and x expired behind a: a full sweep drops them (the sweep's time)
    expect(store.insertIfAbsent('c', 1000)).toBe(true);
    time.advance(-3); // back before that sweep
    expect(store.insertIfAbsent('d', 1000)).toBe(true); // full again: a, c, d
    time.advance(1.5); // d expired, behind a; still before the last sweep's time
    expect(store.insertIfAbsent('e', 1000)).toBe(true);
    expect(store.insertIfAbsent('c', 1000)).toBe(false); // c is live: still a replay
  });
});
