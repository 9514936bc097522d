/**
 * Adversarial pass, session 25: floods of forged tokens against a real deployment's shape, and what
 * they do to legitimate traffic. Measured over node:http first (scratch harness, 2 cores): a cached
 * Bearer token stays at p50 ≤ 3 ms under floods of forged slow-key tokens, unknown kids and huge
 * headers (about 20 ms under 10,000 req/s of forged RSA-4096 tokens, where the event loop itself
 * is saturated); fresh tokens of slow keys wait for the thread pool's backlog, which grows with
 * the attacker's concurrency (expected: CPU for CPU). What is NOT expected is that fast keys
 * inherit that backlog: an `adaptive` verification (RSA, P-256, Ed25519: 20-60 µs inline, and
 * every DPoP proof, ES256 by default) goes to the pool whenever anything is pooled, so behind the
 * attacker's queued P-384/P-521 verifications, FIFO.
 *
 * Settlement order is asserted, never time: libuv's queue is FIFO, so a verification queued behind
 * N others settles after about N - 4 of them (4 threads); one run inline settles before any.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import { AUDIENCE, b64url, ISSUER, m2mClaims, makeKey, mint, rawToken } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

/** Forged verifications started before the legitimate one. */
const BACKLOG = 64;

/** A token under the issuer's real P-384 kid with an in-range signature that verifies nothing. */
const forgedES384 = (key: TestKey) =>
  rawToken({ alg: 'ES384', typ: 'at+jwt', kid: key.kid }, m2mClaims(), b64url(randomBytes(96)));

/**
 * Starts {@link BACKLOG} forged ES384 verifications (all on the thread pool), then `legit()`;
 * returns how many forged ones had settled when the legitimate one settled, and its outcome.
 */
async function behindBacklog(verifier: Verifier, slow: TestKey, legit: () => Promise<unknown>) {
  let settled = 0;
  const forged = Array.from({ length: BACKLOG }, () =>
    outcome(verifier.verify(forgedES384(slow))).finally(() => settled++),
  );
  let before = -1;
  const legitOutcome = await outcome(legit().finally(() => (before = settled)));
  const forgedOutcomes = await Promise.all(forged);
  expect(new Set(forgedOutcomes)).toEqual(new Set(['401 bad_signature']));
  return { before, legitOutcome };
}

describe('a backlog of forged slow-key tokens on the thread pool', () => {
  let slow: TestKey;
  let fast: TestKey;
  let verifier: Verifier;

  const setUp = async () => {
    slow ??= await makeKey('ES384'); // Logto's default key
    fast ??= await makeKey('RS256'); // a second issuer's, or the key being rotated to
    verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [slow.jwk, fast.jwk] },
      algorithms: ['ES384', 'RS256'],
      dpop: { origin: ORIGIN },
    });
    // Both kids' candidates selected once, so every later verification starts synchronously.
    expect(await outcome(verifier.verify(forgedES384(slow)))).toBe('401 bad_signature');
    expect(await outcome(verifier.verify(await mint(fast)))).toBe('ok');
  };

  it('a cached Bearer token is answered before any of them (guard)', async () => {
    await setUp();
    const token = await mint(slow);
    expect(await outcome(verifier.verify(token))).toBe('ok');
    const { before, legitOutcome } = await behindBacklog(verifier, slow, () =>
      verifier.verify(token),
    );
    expect(legitOutcome).toBe('ok');
    expect(before).toBe(0);
  });

  // Was a bug: a fresh RS256 token (a 2048-bit key: ~50 µs inline) waited for the whole backlog,
  // 60+ of 64 forged P-384 verifications settled first. Over HTTP with 512 attacker connections of
  // forged ES384 tokens its p50 went from 0.7 ms to 282 ms; with pipelined requests (6,400
  // queued), 2.9 s. Inline while a slow key is on the pool (within the turn's budget; the helper's
  // first variant, inline once every pool thread was busy): 1.4 ms, 1.8 ms.
  it('a fresh token of a fast (adaptive) key is not queued behind them', async () => {
    await setUp();
    const token = await mint(fast);
    const { before, legitOutcome } = await behindBacklog(verifier, slow, () =>
      verifier.verify(token),
    );
    expect(legitOutcome).toBe('ok');
    expect(before).toBeLessThan(BACKLOG / 2);
  });

  // Was a bug: a DPoP request with a CACHED bound token still verifies its proof (ES256, adaptive)
  // on every request; with the pool backlogged, on the pool, behind the whole backlog. Over HTTP
  // under 512 connections of forged ES384 tokens: p50 291 ms (a cached Bearer token: 0.5 ms); with
  // pipelined requests, 10 s. Inline while a slow key is on the pool: 1.1 ms, 2.8 ms (first variant).
  it("a cached DPoP-bound token's proof is not queued behind them", async () => {
    await setUp();
    const proofKey = await makeProofKey();
    const token = await mint(slow, m2mClaims({ cnf: { jkt: proofKey.jkt } }));
    const url = `${ORIGIN}/products`;
    const first = dpopRequest(token, await proof(proofKey, 'GET', url, token));
    expect(await outcome(verifier.authenticate(first))).toBe('ok'); // the token is cached now
    const request = dpopRequest(token, await proof(proofKey, 'GET', url, token));
    const { before, legitOutcome } = await behindBacklog(verifier, slow, () =>
      verifier.authenticate(request),
    );
    expect(legitOutcome).toBe('ok');
    expect(before).toBeLessThan(BACKLOG / 2);
  });
});
