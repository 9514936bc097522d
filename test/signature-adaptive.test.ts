/**
 * Where a signature is verified (src/signature.ts): P-384 and P-521 on the thread pool; other keys
 * inline while nothing is on the pool and their turn of the event loop has not spent its inline
 * budget, on the pool otherwise. Either route gives the same answers. (Which route
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

  it('adaptive: inline until the turn has spent its budget, then the pool while anything is on it; the same answers', async () => {
    for (const [alg, hash, make] of [
      ['ES256', 'sha256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
      ['RS256', 'sha256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ] as const) {
      const { privateKey, publicKey } = make();
      const tokens = Array.from({ length: 16 }, (_, n) => jws(privateKey, alg, hash, n));
      await nextTurn();
      // In one turn, one after another: inline (a boolean at once) until the budget is spent.
      const answers: (boolean | Promise<boolean>)[] = [];
      for (let i = 0; i < 5000 && !(answers.at(-1) instanceof Promise); i++) {
        const token = tokens[i % tokens.length]!;
        answers.push(verifySignature(i % 2 ? tamper(token) : token, publicKey, alg));
      }
      expect(answers[0]).toBe(true);
      expect(answers.at(-1)).toBeInstanceOf(Promise);
      // While one is on the pool, the next goes there too, good and tampered alike.
      const queued = [
        verifySignature(tokens[0]!, publicKey, alg),
        verifySignature(tamper(tokens[1]!), publicKey, alg),
      ];
      expect(queued.every((answer) => answer instanceof Promise)).toBe(true);
      const expected = answers.map((_, i) => i % 2 === 0);
      expect(await Promise.all([...answers, ...queued])).toEqual([...expected, true, false]);
      // The pool drained and a new turn: inline again, a tampered one refused there too.
      await nextTurn();
      expect(verifySignature(tamper(tokens[0]!), publicKey, alg)).toBe(false);
    }
  });
});
