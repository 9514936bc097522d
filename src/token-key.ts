/**
 * A token's short key: 30 bits hashed from its last {@link KEY_CHARS} characters, the end of its
 * signature, which differs between any two tokens an issuer signed. A small integer, for the maps
 * that find a token (the verified-token cache, the in-flight verifications): no string to
 * allocate, and no hash of the whole token (800 characters and more; V8 hashes a string used as a
 * Map key in full, which was most of a cache hit's cost). Two tokens may share a short key: the
 * maps keep the whole token and compare it, so no two tokens ever share an answer.
 */
const KEY_CHARS = 12;

export function shortKey(token: string): number {
  let hash = 0x811c9dc5;
  for (let i = Math.max(0, token.length - KEY_CHARS); i < token.length; i++) {
    hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193);
  }
  return (hash ^ (hash >>> 15)) & 0x3fffffff;
}
