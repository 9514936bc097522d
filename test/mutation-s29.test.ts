/**
 * Session 29 mutation pass (after sessions 23 and 25: test/mutation-s23.test.ts,
 * test/mutation-s25.test.ts): hand-made mutants of claims, token-cache, verify-token,
 * requirements, signature, dpop and request, each run in a separate worktree against the test files
 * that target its module. One test per mutant that every one of those files let through and that
 * could make the library accept what it should refuse (or refuse a valid token). Each passes on
 * the current sources and fails on its mutant, named by a `kills:` line. Static key sets (one test
 * fetches through a `fetch` stub), fake `Date` only.
 */
import { KeyObject, sign } from 'node:crypto';
import type * as NodeCrypto from 'node:crypto';
import type { JWK } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type * as ResourceGuard from 'resource-guard';
import type { ReplayStore, VerifierOptions } from 'resource-guard';
import {
  dpopOptions,
  dpopRequest,
  makeProofKey,
  ORIGIN,
  proof,
  proofClaims,
} from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

const URL_ = `${ORIGIN}/products`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const staticVerifier = (keys: JWK[], options: Partial<VerifierOptions> = {}) =>
  createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys }, cache: false, ...options });

/** An in-memory replay store of the test's own (the time a store was last asked bounds proofs). */
function ownStore(): ReplayStore {
  const seen = new Set<string>();
  return {
    insertIfAbsent(key: string) {
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    },
  };
}

describe('claimEquals / claimIncludes read the token’s own claims only', () => {
  let es256: TestKey;
  beforeAll(async () => {
    es256 = await makeKey('ES256');
  });

  /** `Object.prototype[name] = value` (not enumerable) while `run` runs: a polluted runtime. */
  async function polluted<T>(name: string, value: unknown, run: () => Promise<T>): Promise<T> {
    Object.defineProperty(Object.prototype, name, { value, configurable: true, writable: true });
    try {
      return await run();
    } finally {
      delete (Object.prototype as Record<string, unknown>)[name];
    }
  }

  // kills: src/requirements.ts:48 `Object.hasOwn(auth.claims, claim) ? auth.claims[claim] :
  // undefined` → `auth.claims[claim]`. A prototype polluted elsewhere in the process (another
  // library's bug) must not grant a claim value the token does not carry.
  it('claimEquals: a value on Object.prototype is not the token’s claim', async () => {
    const verifier = staticVerifier([es256.jwk]);
    const token = await mint(es256);
    const answer = await polluted('s29_role', 'admin', () =>
      outcome(verifier.verify(token, { claimEquals: { s29_role: 'admin' } })),
    );
    expect(answer).toBe('403 claim_mismatch');
    // Control: the token's own claim matches.
    const own = await mint(es256, m2mClaims({ s29_role: 'admin' }));
    expect(await outcome(verifier.verify(own, { claimEquals: { s29_role: 'admin' } }))).toBe('ok');
  });

  // kills: src/requirements.ts:60 `Object.hasOwn(auth.claims, claim) ? auth.claims[claim] :
  // undefined` → `auth.claims[claim]` (claimIncludes, as above).
  it('claimIncludes: a list on Object.prototype is not the token’s claim', async () => {
    const verifier = staticVerifier([es256.jwk]);
    const token = await mint(es256);
    const answer = await polluted('s29_groups', ['admin'], () =>
      outcome(verifier.verify(token, { claimIncludes: { s29_groups: ['admin'] } })),
    );
    expect(answer).toBe('403 claim_mismatch');
    const own = await mint(es256, m2mClaims({ s29_groups: ['admin'] }));
    expect(await outcome(verifier.verify(own, { claimIncludes: { s29_groups: ['admin'] } }))).toBe(
      'ok',
    );
  });
});

describe('RSA signatures', () => {
  // kills: src/signature.ts:21 `saltLength: 48` → `saltLength: -2` (RSA_PSS_SALTLEN_AUTO), and
  // src/signature.ts:22 `saltLength: 64` → `saltLength: -2`. Session 23 pinned PS256 only: with
  // auto-detection a PS384/PS512 signature with any salt length verified (RFC 7518 §3.5: the salt
  // is the hash's length), a second spelling of a token the holder of the key signed.
  it('PS384 and PS512: only a PSS signature whose salt is the hash length verifies', async () => {
    for (const [alg, hash, own] of [
      ['PS384', 'sha384', 48],
      ['PS512', 'sha512', 64],
    ] as const) {
      const key = await makeKey(alg);
      const verifier = staticVerifier([key.jwk], { algorithms: [alg] });
      const privateKey = KeyObject.from(key.privateKey);
      const input = `${b64url(JSON.stringify({ alg, typ: 'at+jwt', kid: key.kid }))}.${b64url(JSON.stringify(m2mClaims()))}`;
      const withSalt = (saltLength: number) =>
        `${input}.${b64url(sign(hash, Buffer.from(input), { key: privateKey, padding: 6, saltLength }))}`;
      expect(await outcome(verifier.verify(withSalt(own))), alg).toBe('ok');
      for (const saltLength of [0, 32, own === 48 ? 64 : 48]) {
        expect(
          await outcome(verifier.verify(withSalt(saltLength))),
          `${alg} salt ${saltLength}`,
        ).toBe('401 bad_signature');
      }
    }
  });

  // kills: src/signature.ts:491 `text.length !== Math.ceil((modulus.length * 4) / 3)` →
  // `text.length > Math.ceil(...)`. A signature is exactly k octets (RFC 8017 §8.2.2 step 1); a
  // runtime that left-pads a short one (as some crypto libraries do) would otherwise take
  // `s` without its leading zero octet as a second spelling of the token. rsa-signature-range
  // tries k - 1 octets only on Node's crypto, which refuses them itself.
  it('a signature one octet short (its leading zero dropped) is refused on a runtime that pads it', async () => {
    const key = await makeKey('RS256');
    const verifier = staticVerifier([key.jwk], { algorithms: ['RS256'] });
    const n = Buffer.from(key.jwk.n as string, 'base64url');
    const k = n.length;
    // A token whose signature starts with a zero octet, its next octet below n's first.
    let token: string | undefined;
    for (let i = 0; i < 5000 && token === undefined; i++) {
      const candidate = await mint(key);
      const s = Buffer.from(candidate.slice(candidate.lastIndexOf('.') + 1), 'base64url');
      if (s[0] === 0 && (s[1] as number) < (n[0] as number)) token = candidate;
    }
    expect(token).toBeDefined();
    const dot = (token as string).lastIndexOf('.');
    const s = Buffer.from((token as string).slice(dot + 1), 'base64url');
    const short = `${(token as string).slice(0, dot + 1)}${b64url(s.subarray(1))}`;

    const crypto = process.getBuiltinModule('node:crypto');
    const real = crypto.verify.bind(crypto) as (...args: unknown[]) => unknown;
    const padding = vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
      const signature = args[3] as Uint8Array;
      if (signature.length < k)
        args[3] = Buffer.concat([Buffer.alloc(k - signature.length), signature]);
      return real(...args);
    }) as never);
    expect(await outcome(verifier.verify(token as string))).toBe('ok');
    expect(await outcome(verifier.verify(short))).toBe('401 bad_signature');
    // The stand-in runtime does accept the short spelling: only the length check refuses it.
    const input = Buffer.from((token as string).slice(0, dot), 'latin1');
    expect(
      crypto.verify(
        'sha256',
        input,
        crypto.createPublicKey({ key: key.jwk, format: 'jwk' }),
        s.subarray(1),
      ),
    ).toBe(true);
    expect(padding).toHaveBeenCalled();
  });

  // kills: src/signature.ts:79 `good === true && nodeCrypto.verify(hash, input, keyInput,
  // signature) === false` → `good === true`. The start-up probe must also see a wrong signature
  // refused: a node:crypto whose verify says yes to everything (a broken polyfill) is no route, and
  // jose (WebCrypto) decides instead. Without that half, every forged token verified.
  it('a node:crypto that verifies everything is not used: a forged token is still refused', async () => {
    const crypto = process.getBuiltinModule('node:crypto');
    vi.spyOn(crypto, 'verify').mockImplementation(((...args: unknown[]) => {
      const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
      if (typeof callback !== 'function') return true;
      setImmediate(() => callback(null, true));
      return undefined;
    }) as never);
    // A fresh copy of the library: the probe's answer is kept per module instance.
    vi.resetModules();
    const fresh = (await import('resource-guard')) as typeof ResourceGuard;
    const [key, thief] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
    const verifier = fresh.createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      cache: false,
    });
    const answer = (promise: Promise<unknown>) =>
      promise.then(
        () => 'ok',
        (e: { status?: number; reason?: string }) => `${e.status} ${e.reason}`,
      );
    const forged = await mint(thief, m2mClaims(), { kid: key.kid });
    expect(await answer(verifier.verify(forged))).toBe('401 bad_signature');
    expect(await answer(verifier.verify(await mint(key)))).toBe('ok');
  });
});

describe('a key that changes while a token is being verified', () => {
  // kills: src/verify-token.ts:40 `if (retry) return verifyToken(token, config, keySets, false)` →
  // `if (false) return ...`. A key republished with a changed member (here `use` dropped: the
  // same public key) is a new TrustedKey, the old one revoked; a pool verification that started
  // under the old one and lands after must be answered as one started now (ok), not refused.
  it('a verification that lands after its key was republished changed is retried, and passes', async () => {
    const [key, next] = await Promise.all([makeKey('ES384'), makeKey('ES384')]);
    let published: JWK[] = [key.jwk];
    const fetch = (async () => {
      await sleep(5);
      return Response.json({ keys: published });
    }) as typeof globalThis.fetch;
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: 'https://issuer.test/jwks',
      fetch,
      keys: { cooldown: 0 },
    });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok'); // keys fetched
    const token = await mint(key);
    const input = token.slice(0, token.lastIndexOf('.'));
    // Hold this token's first pool verification (P-384 always goes to the pool) until released.
    const held: (() => void)[] = [];
    let holding = true;
    const nodeCrypto = process.getBuiltinModule('node:crypto') as typeof NodeCrypto;
    const verify = nodeCrypto.verify.bind(nodeCrypto) as (...args: unknown[]) => boolean;
    vi.spyOn(nodeCrypto, 'verify').mockImplementation(((...args: unknown[]) => {
      const callback = args[4] as ((error: Error | null, ok: boolean) => void) | undefined;
      if (typeof callback !== 'function') return verify(...args);
      const run = () => callback(null, verify(...args.slice(0, 4)));
      if (holding && Buffer.from(args[1] as Uint8Array).toString('latin1') === input) {
        holding = false;
        held.push(run);
      } else setImmediate(run);
      return undefined;
    }) as never);
    const first = outcome(verifier.verify(token));
    for (let i = 0; i < 1000 && held.length === 0; i++) await sleep(2);
    expect(held).toHaveLength(1);
    // The same public key, listed changed (no `use`), and a new key: the set is refreshed.
    const { use: _use, ...changed } = key.jwk;
    published = [changed, next.jwk];
    expect(await outcome(verifier.verify(await mint(next)))).toBe('ok');
    held.shift()?.(); // lands under the revoked TrustedKey
    expect(await first).toBe('ok');
  });
});

describe('DPoP proof bounds', () => {
  let issuer: TestKey;
  let holder: ProofKey;
  beforeAll(async () => {
    [issuer, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
  });
  const bound = () => mint(issuer, m2mClaims({ cnf: { jkt: holder.jkt } }));
  const verifierOwnStore = () =>
    createVerifier(dpopOptions(issuer, { dpop: { origin: ORIGIN, replay: ownStore() } }));

  // kills: src/dpop.ts:278 `exp <= now - tolerance` → `exp < now - tolerance`.
  // kills: src/dpop.ts:278 `exp <= now - tolerance` → `exp <= Math.floor(now) - tolerance`.
  // A proof's own exp is an end, judged as a token's: expired at exactly exp + tolerance, at the
  // exact time (not the whole second).
  it('a proof’s exp: expired at exactly exp + clockTolerance, judged at the millisecond', async () => {
    const second = Math.floor(Date.now() / 1000);
    vi.useFakeTimers({ toFake: ['Date'], now: second * 1000 });
    const verifier = verifierOwnStore();
    const token = await bound();
    const withExp = (exp: number) =>
      proof(holder, 'GET', URL_, token, { payload: { iat: second - 1, exp } });
    // clockTolerance 5: exp = now - 5 is the edge, and refused.
    expect(
      await outcome(verifier.authenticate(dpopRequest(token, await withExp(second - 5)))),
    ).toBe('401 dpop_proof_stale');
    expect(
      await outcome(verifier.authenticate(dpopRequest(token, await withExp(second - 4)))),
    ).toBe('ok');
    // Half a second later, exp = now - 4.75 s is past the edge (now - 5 = second - 4.5).
    vi.setSystemTime(second * 1000 + 500);
    expect(
      await outcome(verifier.authenticate(dpopRequest(token, await withExp(second - 4.75)))),
    ).toBe('401 dpop_proof_stale');
  });

  // kills: src/dpop.ts:245 ` || !Number.isFinite(value)` → `` (exp/nbf). JSON's 1e400 parses as
  // Infinity: a proof whose exp never passes is not a NumericDate, refused as invalid.
  it('a proof’s exp of 1e400 (Infinity once parsed) is invalid', async () => {
    const verifier = verifierOwnStore();
    const token = await bound();
    const claims = JSON.stringify(proofClaims('GET', URL_, token));
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: holder.publicJwk };
    const infinite = await signRaw(holder, header, `${claims.slice(0, -1)},"exp":1e400}`);
    const answer = await verifier.authenticate(dpopRequest(token, infinite)).then(
      () => 'ok',
      (e: { status: number; reason: string; details: Record<string, unknown> }) =>
        `${e.status} ${e.reason} ${String(e.details.problem)}`,
    );
    expect(answer).toBe('401 dpop_proof_invalid an exp claim that is not a NumericDate');
  });
});
