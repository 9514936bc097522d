/** The isRevoked hook: asked on every request (cache hit or not), fails closed, optional memo. */
import { describe, expect, it, vi } from 'vitest';
import type { AuthInfo, VerifierOptions } from 'resource-guard';
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
