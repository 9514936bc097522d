import { base64url } from 'jose';

/**
 * The segments of a compact JWS (RFC 7515 §7.1), read the one strict way for an access token and
 * a DPoP proof alike, whatever the runtime: unpadded base64url with its unused trailing bits zero
 * (RFC 4648 §3.5: one value, one spelling), decoding to UTF-8 (RFC 7519 §7.2 step 10) that is a
 * JSON object. A segment's characters are already known to be base64url's (`[\w-]`).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Unpadded base64url whose unused trailing bits are zero. A length of 4n+1 is no encoding at all
 * (node's decoder would drop the last character, WebCrypto's `atob` refuse it).
 */
export function isCanonicalBase64url(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = ALPHABET.indexOf(segment[segment.length - 1] as string);
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

/**
 * Strict: bytes that are not UTF-8 are refused, not replaced with U+FFFD (two different invalid
 * `sub` and `client_id` would otherwise decode equal), and a byte-order mark is kept (so JSON
 * refuses it, as it does on every runtime).
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const hasBuffer = typeof globalThis.Buffer === 'function';

/** A segment's JSON object, or `undefined` for anything else. Buffer where there is one. */
export function jsonObject(segment: string): Record<string, unknown> | undefined {
  if (!isCanonicalBase64url(segment)) return undefined;
  try {
    const bytes = hasBuffer ? Buffer.from(segment, 'base64url') : base64url.decode(segment);
    const value: unknown = JSON.parse(UTF8.decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
