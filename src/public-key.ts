import { base64url } from 'jose';
import type { JWK } from 'jose';
import { isCanonicalBase64url } from './jws-segment.ts';

/**
 * What a public JWK is worth trusting, judged from its values the same way on every runtime: an
 * issuer's keys (key-source.ts) and a DPoP proof's `jwk` (dpop-jws.ts) alike. The runtimes'
 * crypto differ at the edges (OpenSSL accepts an RSA exponent of 1, BoringSSL and Deno a
 * small-order Ed25519 key, and their JWK imports read base64 spellings differently), so these are
 * refused, or spelled one way, before any import.
 */

/** The members that carry a public key's value (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2). */
const VALUE_MEMBERS = ['n', 'e', 'x', 'y'] as const;

/**
 * A member's bytes, read as leniently as a key import reads it (`=` padding, the `+/` alphabet):
 * this reads the value, it does not judge the spelling. `undefined` for what is no base64.
 */
function looseBytes(member: unknown): Uint8Array | undefined {
  if (typeof member !== 'string') return undefined;
  let end = member.length;
  while (end > 0 && member.charCodeAt(end - 1) === 0x3d) end--; // `=`
  const text = member.slice(0, end).replace(/\+/g, '-').replace(/\//g, '_');
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  return base64url.decode(text);
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * An RSA modulus given as a JWK `n`, as octets without leading zeros (the `k` octets a signature
 * must have, RFC 8017 §8.2.2); `undefined` for what is not base64 of a value above zero.
 */
export function rsaModulus(n: unknown): Uint8Array | undefined {
  const bytes = looseBytes(n);
  if (bytes === undefined) return undefined;
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first++;
  return first === bytes.length ? undefined : bytes.subarray(first);
}

/**
 * The size in bits of an RSA modulus given as a JWK `n` (RFC 7518 §6.3.1.1: base64url of the
 * unsigned big-endian value), counted from its value, not from how long it is written: leading
 * zero octets (which some libraries add, and which anyone can add to make a 1024-bit key look like
 * a 2048-bit one) count for nothing. 0 for anything that is not base64 of some value.
 */
export function rsaModulusBits(n: unknown): number {
  const bytes = looseBytes(n);
  if (bytes === undefined) return 0;
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first++;
  if (first === bytes.length) return 0;
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] as number));
}

/**
 * Why a public key must verify nothing, or `undefined`:
 * - a value member (`n`, `e`, `x`, `y`) that is no base64 at all: Node's import skips the
 *   characters it does not know, so what it would import is not what was judged here;
 * - an RSA exponent that is not odd, at least 3 and under 2^256 (RFC 8017 §3.1; FIPS 186-5's
 *   bound): with e = 1, or any e ≡ 1 mod λ(n), a signature is the padded digest itself, which
 *   anyone can write, and OpenSSL (Node) accepts it;
 * - an Ed25519 key of small order (libsodium's list of the 7 encodings, sign bit aside): a
 *   signature of R = identity and S = 0 verifies for every message, on OpenSSL (Node), BoringSSL
 *   (Bun, workerd) and Deno alike.
 */
export function weakKeyProblem(jwk: Readonly<Record<string, unknown>>): string | undefined {
  for (const name of VALUE_MEMBERS) {
    if (jwk[name] !== undefined && looseBytes(jwk[name]) === undefined) {
      return `${name} is not base64url`;
    }
  }
  if (jwk.kty === 'RSA') {
    // Bounded before it is decoded: 32 octets are 43 characters, room left for a leading zero.
    const e =
      typeof jwk.e === 'string' && jwk.e.length <= MAX_E_CHARS ? looseBytes(jwk.e) : undefined;
    const first = e === undefined ? -1 : e.findIndex((octet) => octet !== 0);
    const value = first === -1 ? undefined : e?.subarray(first); // undefined: no value, or 0
    if (
      value === undefined ||
      value.length > 32 ||
      ((value[value.length - 1] as number) & 1) === 0 ||
      (value.length === 1 && value[0] === 1)
    ) {
      return 'RSA public exponent is not odd, at least 3 and under 2^256';
    }
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    const x = looseBytes(jwk.x);
    if (x !== undefined && x.length === 32 && SMALL_ORDER.some((point) => sameY(point, x))) {
      return 'Ed25519 public key of small order';
    }
  }
  return undefined;
}

const MAX_E_CHARS = 64;

/**
 * The encodings of the Ed25519 points of small order, the sign bit of the last octet cleared
 * (libsodium's `has_small_order`): 0 (order 4), 1 (the identity), the two of order 8, p − 1
 * (order 2), and p and p + 1 (non-canonical 0 and 1).
 */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => Uint8Array.from(hex.match(/../g) as string[], (byte) => parseInt(byte, 16)));

function sameY(point: Uint8Array, x: Uint8Array): boolean {
  for (let i = 0; i < 31; i++) if (point[i] !== x[i]) return false;
  return point[31] === ((x[31] as number) & 0x7f);
}

/** Whether every value member present is unpadded base64url in its one canonical spelling. */
export function hasCanonicalMembers(jwk: Readonly<Record<string, unknown>>): boolean {
  return VALUE_MEMBERS.every((name) => {
    const member = jwk[name];
    return (
      member === undefined ||
      (typeof member === 'string' && BASE64URL.test(member) && isCanonicalBase64url(member))
    );
  });
}

/**
 * The JWK with its value members written as canonical base64url (decoded as leniently as
 * {@link rsaModulusBits} reads them), an RSA key's `n` and `e` in their fewest octets (RFC 7518
 * §6.3.1), so that every runtime's import reads the same bytes (Node takes `+/` and `=`, Bun and
 * Deno refuse `+/`, Deno and workerd a stray `=`) and one key is one key however it is written.
 * EC and OKP coordinates keep their fixed length. The same object when nothing changes.
 */
export function withCanonicalMembers(jwk: JWK): JWK {
  let copy: Record<string, unknown> | undefined;
  for (const name of VALUE_MEMBERS) {
    const member = (jwk as Record<string, unknown>)[name];
    let bytes = looseBytes(member);
    if (bytes === undefined) continue;
    if (jwk.kty === 'RSA') {
      const first = bytes.findIndex((octet) => octet !== 0);
      bytes = bytes.subarray(first === -1 ? Math.max(bytes.length - 1, 0) : first);
    }
    const canonical = base64url.encode(bytes);
    if (canonical !== member) (copy ??= { ...jwk })[name] = canonical;
  }
  return (copy ?? jwk) as JWK;
}
