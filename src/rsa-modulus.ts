import { base64url } from 'jose';

/**
 * The size in bits of an RSA modulus given as a JWK `n` (RFC 7518 §6.3.1.1: base64url of the
 * unsigned big-endian value), counted from its value, not from how long it is written: leading
 * zero octets (which some libraries add, and which anyone can add to make a 1024-bit key look like
 * a 2048-bit one) count for nothing. 0 for anything that is not base64 of some value.
 */
export function rsaModulusBits(n: unknown): number {
  if (typeof n !== 'string') return 0;
  // Read as leniently as a key import reads it (`=` padding, the `+/` alphabet): this counts the
  // value, it does not judge the spelling, and a key an issuer wrote that way keeps verifying.
  let end = n.length;
  while (end > 0 && n.charCodeAt(end - 1) === 0x3d) end--; // `=`
  const text = n.slice(0, end).replace(/\+/g, '-').replace(/\//g, '_');
  if (!BASE64URL.test(text) || text.length % 4 === 1) return 0;
  const bytes = base64url.decode(text);
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first++;
  if (first === bytes.length) return 0;
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] as number));
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
