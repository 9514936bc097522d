/**
 * A DPoP proof's own `exp` and `nbf` (session 29, after helper-73's differential against
 * oidc-provider, which runs jose's jwtVerify on a proof): RFC 9449 defines neither, but a JWT that
 * carries them means them (RFC 7519 §4.1.4-4.1.5). Before, they were never read: a proof past its
 * own `exp`, or before its `nbf`, or with either not a number, was accepted. Now they are held as an
 * access token's are (an end at the exact time, a start at the whole second, `clockTolerance`
 * either side), before the replay store and again once it has answered. Fake `Date` only.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { ReplayStore } from 'resource-guard';
import { dpopOptions, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';

const URL_ = `${ORIGIN}/products`;

/** An in-memory replay store that counts its inserts, and may run something as it answers. */
function countingStore(onInsert: () => void = () => undefined) {
  const seen = new Set<string>();
  const store = {
    inserts: 0,
    async insertIfAbsent(key: string) {
      store.inserts++;
      await Promise.resolve();
      onInsert();
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    },
  };
  return store as ReplayStore & { inserts: number };
}

let issuer: TestKey;
let holder: ProofKey;
beforeAll(async () => {
  [issuer, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
});
afterEach(() => vi.useRealTimers());

const bound = () => mint(issuer, m2mClaims({ cnf: { jkt: holder.jkt } }));

async function answer(
  payload: Record<string, unknown>,
  onInsert?: () => void,
): Promise<{ outcome: string; problem: unknown; inserts: number }> {
  const replay = countingStore(onInsert);
  const verifier = createVerifier(dpopOptions(issuer, { dpop: { origin: ORIGIN, replay } }));
  const token = await bound();
  const p = await proof(holder, 'GET', URL_, token, { payload });
  const result = await verifier.authenticate(dpopRequest(token, p)).then(
    () => ({ outcome: 'ok', problem: undefined }),
    (error: unknown) => {
      expect(error).toBeInstanceOf(AuthError);
      const e = error as AuthError;
      return { outcome: `${e.status} ${e.reason}`, problem: e.details.problem };
    },
  );
  return { ...result, inserts: replay.inserts };
}

describe("a DPoP proof's own exp and nbf", () => {
  it('exp passed beyond the tolerance: stale, and never reaches the replay store', async () => {
    const now = Math.floor(Date.now() / 1000);
    vi.useFakeTimers({ toFake: ['Date'], now: now * 1000 + 500 }); // a loaded machine keeps its margins
    expect(await answer({ exp: now - 30 })).toEqual({
      outcome: '401 dpop_proof_stale',
      problem: 'past its exp',
      inserts: 0,
    });
    // Within the 5 s tolerance, and ahead: accepted.
    expect((await answer({ exp: now - 3 })).outcome).toBe('ok');
    expect((await answer({ exp: now + 60 })).outcome).toBe('ok');
  });

  it('nbf ahead beyond the tolerance, judged at the whole second: stale, never inserted', async () => {
    const second = Math.floor(Date.now() / 1000);
    vi.useFakeTimers({ toFake: ['Date'], now: second * 1000 + 900 });
    // T + 5.5 at T + 0.9: beyond the whole second plus 5 s (as jose judges an nbf).
    expect(await answer({ iat: second, nbf: second + 5.5 })).toEqual({
      outcome: '401 dpop_proof_stale',
      problem: 'before its nbf',
      inserts: 0,
    });
    expect((await answer({ iat: second, nbf: second + 5 })).outcome).toBe('ok');
    expect((await answer({ iat: second, nbf: second - 60 })).outcome).toBe('ok');
  });

  it('exp or nbf that is not a NumericDate: invalid, never inserted', async () => {
    for (const payload of [
      { exp: 'tomorrow' },
      { nbf: 'yesterday' },
      { exp: null },
      { nbf: {} },
      { exp: [1] },
      { exp: true },
    ]) {
      expect(await answer(payload)).toMatchObject({
        outcome: '401 dpop_proof_invalid',
        inserts: 0,
      });
    }
  });

  it('an exp that passes while the replay store answers: refused once it has answered', async () => {
    const clock = vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const now = Math.floor(Date.now() / 1000);
    // The proof's exp is 8 s ahead; the store takes (by the clock) 20 s to answer.
    const slow = await answer({ exp: now + 8 }, () => clock.setSystemTime(Date.now() + 20_000));
    expect(slow).toEqual({ outcome: '401 dpop_proof_stale', problem: 'past its exp', inserts: 1 });
    // Control: a store that answers at once.
    const later = Math.floor(Date.now() / 1000);
    expect((await answer({ exp: later + 8 })).outcome).toBe('ok');
  });

  it('a proof without exp or nbf is unaffected', async () => {
    expect(await answer({})).toEqual({ outcome: 'ok', problem: undefined, inserts: 1 });
  });
});
