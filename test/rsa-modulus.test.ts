/**
 * An RSA key's size is its modulus's value, however `n` is written: zero octets in front of it
 * (which an attacker can add to make a 1024-bit key pass a length check) count for nothing.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rsaModulusBits } from '../src/rsa-modulus.ts';

const keys = [1024, 2048, 3072].map((modulusLength) => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength });
  return { modulusLength, n: publicKey.export({ format: 'jwk' }).n as string };
});

const padded = (n: string, zeros: number) =>
  Buffer.concat([Buffer.alloc(zeros), Buffer.from(n, 'base64url')]).toString('base64url');

describe('rsaModulusBits', () => {
  it("is node's modulusLength, with any number of leading zero octets", () => {
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.nat({ max: 300 }), (key, zeros) => {
        expect(rsaModulusBits(padded(key.n, zeros))).toBe(key.modulusLength);
      }),
      { seed: 20, numRuns: 200 },
    );
  });

  it('counts the bits of any big-endian value', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const value = BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
        expect(rsaModulusBits(Buffer.from(bytes).toString('base64url'))).toBe(
          value === 0n ? 0 : value.toString(2).length,
        );
      }),
      { seed: 21, numRuns: 300 },
    );
  });

  it('is 0 for what is not unpadded base64url', () => {
    for (const n of [undefined, 42, '', 'AAAA', 'A', 'ABCDE', '====', 'ab cd', 'ab.cd', 'ab=cd']) {
      expect(rsaModulusBits(n)).toBe(0);
    }
  });

  it('reads `=` padding and the `+/` alphabet as a key import does: the value counts, not the spelling', () => {
    for (const key of keys) {
      const bytes = Buffer.from(key.n, 'base64url');
      expect(rsaModulusBits(bytes.toString('base64'))).toBe(key.modulusLength);
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const value = Buffer.from(bytes);
        expect(rsaModulusBits(value.toString('base64'))).toBe(
          rsaModulusBits(value.toString('base64url')),
        );
      }),
      { seed: 22, numRuns: 300 },
    );
  });
});
