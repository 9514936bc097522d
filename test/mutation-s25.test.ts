/**
 * Session 25 mutation pass (after session 23's, test/mutation-s23.test.ts): hand-made mutants of
 * the trust-critical modules (claims, verify-token, verifier, dpop*, request, requirements,
 * organization, token-cache, token-key, key-set, public-key, revocation), each run against the
 * test files that target its module, survivors against the whole suite. One test per mutant that
 * every other test let through; each passes on the current sources and fails on its mutant (named
 * in the test). Static key sets, fake `Date` only: no network, no real waits.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { ReplayStore } from 'resource-guard';
import { dpopOptions, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { b64url, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

const URL_ = `${ORIGIN}/products`;

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => new Error('expected a refusal, got a pass'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

/** An in-memory replay store that counts its inserts. */
function countingStore() {
  const seen = new Set<string>();
  const store = {
    inserts: 0,
    insertIfAbsent(key: string) {
      store.inserts++;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    },
  };
  return store as ReplayStore & { inserts: number };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DPoP proof time window', () => {
  let issuer: TestKey;
  let holder: ProofKey;
  beforeAll(async () => {
    [issuer, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
  });
  const bound = () => mint(issuer, m2mClaims({ cnf: { jkt: holder.jkt } }));
  // A store of its own per test: the time a store was last asked bounds every later proof on it.
  const ownStore = () => dpopOptions(issuer, { dpop: { origin: ORIGIN, replay: countingStore() } });

  // Mutant: dpop.ts #checkClaims `iat > now + tolerance` → `iat > now + tolerance + 1`. The same
  // check after the replay insert still refused, so only the store tells: the proof was inserted.
  it('a proof from the future is refused before it reaches the replay store', async () => {
    const second = Math.floor(Date.now() / 1000);
    vi.useFakeTimers({ toFake: ['Date'], now: second * 1000 + 500 });
    const replay = countingStore();
    const verifier = createVerifier(dpopOptions(issuer, { dpop: { origin: ORIGIN, replay } }));
    const token = await bound();
    // clockTolerance 5: now + 5.5 s is the edge; iat = now + 6 is past it by half a second.
    const late = await proof(holder, 'GET', URL_, token, { payload: { iat: second + 6 } });
    const error = await refusal(verifier.authenticate(dpopRequest(token, late)));
    expect(error.reason).toBe('dpop_proof_stale');
    expect(error.details).toMatchObject({ problem: 'iat in the future' });
    expect(replay.inserts).toBe(0);
    // Control: iat = now + 5 is inside.
    const edge = await proof(holder, 'GET', URL_, token, { payload: { iat: second + 5 } });
    expect(await outcome(verifier.authenticate(dpopRequest(token, edge)))).toBe('ok');
    expect(replay.inserts).toBe(1);
  });

  // Mutant: dpop.ts #insert's window check after the store answered removed: a proof that aged
  // past maxAge while the route's own checks ran was taken as a first use.
  it('a proof that ages out of its window while the route’s checks run is refused', async () => {
    const clock = vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const verifier = createVerifier(ownStore());
    const token = await bound();
    const p = await proof(holder, 'GET', URL_, token);
    const slow = async () => {
      clock.setSystemTime(Date.now() + 70_000); // maxAge 60 + tolerance 5, and more
      return true;
    };
    const error = await refusal(verifier.authenticate(dpopRequest(token, p), { checks: { slow } }));
    expect(error.reason).toBe('dpop_proof_stale');
    expect(String(error.details.problem)).toMatch(/by the time the replay store answered/);
    // Control: a check that takes no time lets a fresh proof through.
    const quick = await proof(holder, 'GET', URL_, token);
    expect(
      await outcome(
        verifier.authenticate(dpopRequest(token, quick), { checks: { quick: () => true } }),
      ),
    ).toBe('ok');
  });

  // Mutant: dpop.ts #consume shares the request's earlier insert whatever proof it was for (the
  // `identity` comparison dropped): another proof on the same request object skipped the store.
  it('a second, already used proof on the same request object is checked against the store', async () => {
    const verifier = createVerifier(ownStore());
    const token = await bound();
    const [first, used] = await Promise.all([
      proof(holder, 'GET', URL_, token),
      proof(holder, 'GET', URL_, token),
    ]);
    expect(await outcome(verifier.authenticate(dpopRequest(token, used)))).toBe('ok');
    const request = dpopRequest(token, first);
    expect(await outcome(verifier.authenticate(request))).toBe('ok');
    // Same object, its DPoP field now the proof another request consumed.
    request.rawHeaders[request.rawHeaders.indexOf(first)] = used;
    request.headers.dpop = used;
    expect(await outcome(verifier.authenticate(request))).toBe('401 dpop_replayed');
    // Control: the same proof again on the same object shares its insert (two guards, one request).
    const again = dpopRequest(token, first);
    const twice = await proof(holder, 'GET', URL_, token);
    again.rawHeaders[again.rawHeaders.indexOf(first)] = twice;
    again.headers.dpop = twice;
    expect(await outcome(verifier.authenticate(again))).toBe('ok');
    expect(await outcome(verifier.authenticate(again))).toBe('ok');
  });
});

describe('DPoP proof keys: RSA bounds', () => {
  let issuer: TestKey;
  let holder: ProofKey;
  beforeAll(async () => {
    [issuer, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
  });

  /** A proof whose header carries an RSA jwk of `n`, `e` (signed by an EC key: never reached). */
  async function rsaProof(token: string, n: Uint8Array, e: Uint8Array) {
    const header = {
      typ: 'dpop+jwt',
      alg: 'RS256',
      jwk: { kty: 'RSA', n: b64url(n), e: b64url(e) },
    };
    const payload = {
      jti: `j-${Math.random()}`,
      htm: 'GET',
      htu: URL_,
      iat: Math.floor(Date.now() / 1000),
    };
    return signRaw(holder, header, payload);
  }
  const modulus = (bits: number) => {
    const bytes = randomBytes(Math.ceil(bits / 8));
    const top = bits % 8 === 0 ? 8 : bits % 8;
    bytes[0] = ((bytes[0] as number) & ((1 << top) - 1)) | (1 << (top - 1)); // exactly `bits`
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) | 1;
    return bytes;
  };
  const RSA_PROBLEM = 'jwk is an RSA key outside 2048 to 8192 bits, or with a large exponent';

  // Mutant: dpop-jws.ts no longer bounds `e` to 8 characters (6 octets): a 7-octet exponent (odd,
  // under 2^256, so not weak) reached the thumbprint and the import.
  it('an RSA proof key with an exponent past 6 octets is refused by the header rules', async () => {
    const verifier = createVerifier(dpopOptions(issuer));
    const token = await mint(issuer, m2mClaims({ cnf: { jkt: holder.jkt } }));
    const big = Uint8Array.of(1, 0, 0, 0, 0, 0, 1);
    const error = await refusal(
      verifier.authenticate(dpopRequest(token, await rsaProof(token, modulus(2048), big))),
    );
    expect(error.reason).toBe('dpop_proof_invalid');
    expect(error.details).toMatchObject({ problem: RSA_PROBLEM });
  });
});
