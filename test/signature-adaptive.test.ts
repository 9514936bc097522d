/**
 * Where a signature is verified (src/signature.ts): P-384 and P-521 on the thread pool; other keys
 * inline only when alone in their turn of the event loop with nothing on the thread pool, and on
 * the pool as soon as verifications queue up. Either route gives the same answers. (Which route
 * is faster is a benchmark's question, bench/route.ts: no timing here.)
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { signatureRoute, verifySignature } from '../src/signature.ts';

function jws(privateKey: KeyObject, alg: string, hash: string, n: number): string {
  const header = Buffer.from(JSON.stringify({ alg })).toString('base64url');
  const input = `${header}.${Buffer.from(`payload ${n}`).toString('base64url')}`;
  const signature = sign(hash, Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
const tamper = (token: string) => `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;

describe('the signature route', () => {
  it('P-384 and P-521 on the pool; RSA, P-256 and Ed25519 adaptive', () => {
    const route = (key: KeyObject) => signatureRoute.routeFor(key);
    for (const modulusLength of [2048, 3072]) {
      expect(route(generateKeyPairSync('rsa', { modulusLength }).publicKey)).toBe('adaptive');
    }
    expect(route(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)).toBe('adaptive');
    expect(route(generateKeyPairSync('ed25519').publicKey)).toBe('adaptive');
    for (const namedCurve of ['P-384', 'P-521']) {
      expect(route(generateKeyPairSync('ec', { namedCurve }).publicKey)).toBe('pool');
    }
  });

  it('P-384 goes to the pool even alone; the same answers', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const token = jws(privateKey, 'ES384', 'sha384', 0);
    await nextTurn();
    const answer = verifySignature(token, publicKey, 'ES384');
    expect(answer).toBeInstanceOf(Promise);
    expect(await answer).toBe(true);
    expect(await verifySignature(tamper(token), publicKey, 'ES384')).toBe(false);
  });

  it('adaptive: alone inline, then the pool while verifications queue; the same answers', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tokens = Array.from({ length: 8 }, (_, n) => jws(privateKey, 'ES256', 'sha256', n));
    await nextTurn();
    // Alone in its turn: a boolean at once.
    expect(verifySignature(tokens[0]!, publicKey, 'ES256')).toBe(true);
    // Others in the same turn: promises (the thread pool), good and tampered alike.
    const queued = tokens
      .slice(1)
      .flatMap((t) => [
        verifySignature(t, publicKey, 'ES256'),
        verifySignature(tamper(t), publicKey, 'ES256'),
      ]);
    expect(queued.every((answer) => answer instanceof Promise)).toBe(true);
    expect(await Promise.all(queued)).toEqual(tokens.slice(1).flatMap(() => [true, false]));
    // The pool drained and a new turn: inline again, and a tampered one refused there too.
    await nextTurn();
    expect(verifySignature(tamper(tokens[0]!), publicKey, 'ES256')).toBe(false);
  });

  it('RSA 2048 too: the first of a turn inline, the rest on the pool, PS256 alike', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const tokens = Array.from({ length: 4 }, (_, n) => jws(privateKey, 'RS256', 'sha256', n));
    await nextTurn();
    const answers = tokens.map((t) => verifySignature(t, publicKey, 'RS256'));
    expect(answers[0]).toBe(true);
    expect(answers.slice(1).every((answer) => answer instanceof Promise)).toBe(true);
    expect(await Promise.all(answers)).toEqual([true, true, true, true]);
  });
});
