/** The isRevoked hook: asked on every request (cache hit or not), fails closed, optional memo. */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AuthInfo, VerifierOptions } from 'resource-guard';
import { Rejection } from '../src/errors.ts';
import { Revocation } from '../src/revocation.ts';
import { outcome } from './helpers/outcome.ts';
import { fixtureVerifier, key, useKeySetFixture } from './helpers/key-set-fixture.ts';
import { m2mClaims, mint } from './helpers/keys.ts';

useKeySetFixture();

describe('isRevoked', () => {
  it('is asked on every request, cache hit or not; true refuses with 401 revoked', async () => {
    const denylist = new Set<string>();
    const asked: string[] = [];
    const { verifier, events } = fixtureVerifier({
      isRevoked: async (auth: AuthInfo) => {
        asked.push(auth.claims.jti as string);
        return denylist.has(auth.claims.jti as string);
      },
    });
    const token = await mint(key, m2mClaims({ jti: 'j-1' }));
    expect(await outcome(verifier.verify(token))).toBe('ok');
    expect(await outcome(verifier.verify(token))).toBe('ok');
    denylist.add('j-1');
    expect(await outcome(verifier.verify(token))).toBe('401 revoked');
    expect(asked).toEqual(['j-1', 'j-1', 'j-1']);
    expect(events.at(-1)).toMatchObject({ code: 'invalid_token', details: { jti: 'j-1' } });
  });

  it('fails closed: a hook that throws, rejects, hangs or answers a non-boolean is a 503', async () => {
    const token = await mint(key);
    const hooks: [string, NonNullable<VerifierOptions['isRevoked']>][] = [
      [
        'throws',
        () => {
          throw new Error('redis down');
        },
      ],
      ['rejects', () => Promise.reject(new Error('redis down'))],
      ['hangs', () => new Promise<boolean>(() => undefined)],
      ['answers a string', () => 'no' as unknown as boolean],
    ];
    for (const [, isRevoked] of hooks) {
      const { verifier, events } = fixtureVerifier({ isRevoked, revocationTimeout: 0.05 });
      expect(await outcome(verifier.verify(token))).toBe('503 revocation_unavailable');
      const error: unknown = await verifier.verify(token).catch((e: unknown) => e);
      expect((error as { headers: object }).headers).toMatchObject({ 'retry-after': '5' });
      expect(events[0]?.code).toBe('temporarily_unavailable');
    }
  });

  it('with revocationMemo, an answer is reused for that long per token', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    let revoked = false;
    const isRevoked = vi.fn(() => revoked);
    const { verifier } = fixtureVerifier({ isRevoked, revocationMemo: 30 });
    const token = await mint(key);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    revoked = true;
    expect(await outcome(verifier.verify(token))).toBe('ok'); // remembered
    expect(isRevoked).toHaveBeenCalledTimes(1);
    vi.setSystemTime(Date.now() + 31_000);
    expect(await outcome(verifier.verify(token))).toBe('401 revoked');
    expect(isRevoked).toHaveBeenCalledTimes(2);
  });

  it('a revoked token is refused before the route requirements are looked at', async () => {
    const { verifier, events } = fixtureVerifier({ isRevoked: () => true });
    const token = await mint(key, m2mClaims({ scope: 'other' }));
    expect(await outcome(verifier.verify(token, { scopes: ['read:products'] }))).toBe(
      '401 revoked',
    );
    expect(events.map((e) => e.reason)).toEqual(['revoked']);
  });
});

describe('the memo and a slow answer', () => {
  it('a "not revoked" asked before the revocation never replaces a remembered "revoked"', async () => {
    let revoked = false;
    let calls = 0;
    const { verifier } = fixtureVerifier({
      revocationMemo: 60,
      isRevoked: async () => {
        const asked = revoked; // the answer as of the moment it was asked
        if (calls++ === 0) await new Promise((r) => setTimeout(r, 100)); // the first one is slow
        return asked;
      },
    });
    const token = await mint(key);
    const a = outcome(verifier.verify(token)); // asks while not revoked; answers late
    await new Promise((r) => setTimeout(r, 20));
    revoked = true;
    expect(await outcome(verifier.verify(token))).toBe('401 revoked'); // b: remembered
    await a; // a's late "not revoked" lands
    expect(await outcome(verifier.verify(token))).toBe('401 revoked'); // c: still refused
  });
});

/**
 * The memo as a model: tokens revoked one way in a store, hook calls answered late or at once,
 * the memo filled past its 10,000 tokens, the clock moved. Whatever the interleaving, the memo is
 * never looser than asking: once a check of a token has said "revoked", no check that starts
 * later says otherwise; and a check that starts `revocationMemo` after the revocation says
 * "revoked" (an answer is remembered from when it was asked, never from when it came).
 */
describe('the memo, by model', () => {
  afterEach(() => void vi.useRealTimers());

  const ops = fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('revoke' as const), token: fc.nat(1) }),
      fc.record({ kind: fc.constant('check' as const), token: fc.nat(1), slow: fc.boolean() }),
      fc.record({ kind: fc.constant('land' as const), index: fc.nat(7) }),
      fc.record({ kind: fc.constant('fill' as const), count: fc.constantFrom(1, 5_000, 10_000) }),
      fc.record({
        kind: fc.constant('tick' as const),
        ms: fc.constantFrom(0, 1_000, 6_000, 11_000),
      }),
    ),
    { maxLength: 40 },
  );
  const MEMO_MS = 10_000;
  const authOf = (token: string) => ({ token, claims: {}, clientId: 'app' }) as unknown as AuthInfo;
  const answer = (run: () => Promise<void> | undefined): Promise<string> | string => {
    const settle = (error: unknown) => {
      if (error instanceof Rejection) return error.reason;
      throw error;
    };
    try {
      const result = run();
      return result === undefined ? 'ok' : result.then(() => 'ok', settle);
    } catch (error) {
      return settle(error);
    }
  };

  it('a check never says less than the hook would, across late answers, eviction and time', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    let fillers = 0;
    await fc.assert(
      fc.asyncProperty(ops, async (script) => {
        vi.setSystemTime(1_700_000_000_000);
        const revokedAt = new Map<string, number>();
        const saidRevoked = new Set<string>();
        const late: (() => void)[] = [];
        const inFlight: { token: string; mustRevoke: boolean; result: Promise<string> }[] = [];
        let slow = false;
        const revocation = new Revocation(
          (auth) => {
            const revoked = revokedAt.has(auth.token); // as of the moment it was asked
            if (!slow) return revoked;
            return new Promise<boolean>((resolve) => late.push(() => resolve(revoked)));
          },
          MEMO_MS / 1000,
          3600,
        );
        const expectation = (token: string) =>
          saidRevoked.has(token) ||
          (revokedAt.has(token) && Date.now() >= (revokedAt.get(token) as number) + MEMO_MS);
        const record = (token: string, mustRevoke: boolean, result: string) => {
          if (mustRevoke) expect(result).toBe('revoked');
          if (result === 'revoked') saidRevoked.add(token);
        };
        /** Every check whose answer has come is judged; the rest stay in flight. */
        const judgeSettled = async () => {
          for (const flight of inFlight.splice(0)) {
            const settled = await Promise.race([flight.result, Promise.resolve('pending')]);
            if (settled === 'pending') inFlight.push(flight);
            else record(flight.token, flight.mustRevoke, settled);
          }
        };
        for (const op of script) {
          if (op.kind === 'revoke') {
            if (!revokedAt.has(`T${op.token}`)) revokedAt.set(`T${op.token}`, Date.now());
          } else if (op.kind === 'tick') {
            vi.advanceTimersByTime(op.ms);
          } else if (op.kind === 'fill') {
            slow = false;
            for (let i = 0; i < op.count; i++)
              answer(() => revocation.check(authOf(`f${fillers++}`)));
          } else if (op.kind === 'land') {
            const resolve = late.splice(op.index % Math.max(1, late.length), 1)[0];
            resolve?.();
            await new Promise((r) => setImmediate(r)); // its answer reaches the memo
            await judgeSettled();
          } else {
            const token = `T${op.token}`;
            slow = op.slow;
            const mustRevoke = expectation(token);
            const result = answer(() => revocation.check(authOf(token)));
            if (typeof result === 'string') record(token, mustRevoke, result);
            else inFlight.push({ token, mustRevoke, result });
          }
        }
        // A late "no" can be asked again (once), late too: answer until every check has settled.
        for (let round = 0; inFlight.length > 0; round++) {
          expect(round, 'a check still unsettled with every hook call answered').toBeLessThan(4);
          for (const resolve of late.splice(0)) resolve();
          await new Promise((r) => setImmediate(r));
          await judgeSettled();
        }
      }),
      {
        numRuns: 300,
        examples: [
          // A late "no" once a full memo dropped a "revoked": the hook is asked again, late too.
          [
            [
              { kind: 'revoke', token: 1 },
              { kind: 'check', token: 1, slow: false },
              { kind: 'check', token: 0, slow: true },
              { kind: 'fill', count: 10_000 },
              { kind: 'check', token: 0, slow: true },
            ],
          ],
          // A late "not revoked" landing once the token's own "revoked" was evicted by a full memo.
          [
            [
              { kind: 'check', token: 0, slow: true },
              { kind: 'revoke', token: 0 },
              { kind: 'check', token: 0, slow: false },
              { kind: 'fill', count: 10_000 },
              { kind: 'land', index: 0 },
              { kind: 'check', token: 0, slow: false },
            ],
          ],
          // A "not revoked" asked before the revocation, landing late: remembered from its asking.
          [
            [
              { kind: 'check', token: 1, slow: true },
              { kind: 'revoke', token: 1 },
              { kind: 'tick', ms: 6_000 },
              { kind: 'land', index: 0 },
              { kind: 'tick', ms: 6_000 },
              { kind: 'check', token: 1, slow: false },
            ],
          ],
        ],
      },
    );
  });
});
