/** What anyone can sign with a key too weak to trust: for tests that such keys verify nothing. */
import { createHash } from 'node:crypto';

/**
 * The RSASSA-PKCS1-v1_5 encoding of a SHA-256 digest for a 2048-bit key (RFC 8017 §9.2): under
 * an exponent of 1 (or any e ≡ 1 mod λ(n)) it is the signature itself, no private key needed.
 */
export function emsaPkcs1Sha256(input: string): Buffer {
  const digestInfo = Buffer.from('3031300d060960864801650304020105000420', 'hex');
  const t = Buffer.concat([digestInfo, createHash('sha256').update(input).digest()]);
  return Buffer.concat([
    Buffer.from([0, 1]),
    Buffer.alloc(256 - t.length - 3, 0xff),
    Buffer.from([0]),
    t,
  ]);
}

/**
 * The encodings of the Ed25519 points of small order (libsodium's list, sign bit clear), written
 * out here apart from src/public-key.ts's copy so that a test checks it rather than repeats it.
 */
export const ED25519_SMALL_ORDER: readonly string[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];
