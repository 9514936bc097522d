import { compactVerify } from 'jose';
import type { CryptoKey, KeyObject as JoseKeyObject } from 'jose';
import type * as NodeCrypto from 'node:crypto';

/** A key as jose's key selection returns it. */
export type VerifyKey = CryptoKey | JoseKeyObject | Uint8Array;

type Params = readonly [hash: string | null, options: Record<string, unknown>];

// node:crypto parameters per JWS algorithm (RFC 7518 §3). PS*: salt length = hash length, as
// WebCrypto (and so jose) requires. ES*: the raw r||s signature encoding of JWS.
const RSA_PKCS1_PSS_PADDING = 6;
const PARAMS: Readonly<Record<string, Params>> = {
  RS256: ['sha256', {}],
  RS384: ['sha384', {}],
  RS512: ['sha512', {}],
  PS256: ['sha256', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  PS384: ['sha384', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 48 }],
  PS512: ['sha512', { padding: RSA_PKCS1_PSS_PADDING, saltLength: 64 }],
  ES256: ['sha256', { dsaEncoding: 'ieee-p1363' }],
  ES384: ['sha384', { dsaEncoding: 'ieee-p1363' }],
  ES512: ['sha512', { dsaEncoding: 'ieee-p1363' }],
  EdDSA: [null, {}],
  Ed25519: [null, {}],
};

/** RSA up to 2048 bits verifies in ~25 µs: cheaper inline than a thread-pool round trip. */
const MAX_INLINE_RSA_BITS = 2048;

// node:crypto without a static import, so the core still loads where it is absent (jose is used there).
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as typeof NodeCrypto | undefined;

interface PreparedKey {
  readonly key: NodeCrypto.KeyObject;
  readonly inline: boolean;
}
const prepared = new WeakMap<object, PreparedKey | null>();

function prepare(key: VerifyKey): PreparedKey | null {
  if (nodeCrypto === undefined || key instanceof Uint8Array) return null;
  let entry = prepared.get(key);
  if (entry === undefined) {
    try {
      const keyObject =
        key instanceof nodeCrypto.KeyObject
          ? key
          : nodeCrypto.KeyObject.from(key as unknown as NodeCrypto.webcrypto.CryptoKey);
      const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
      const rsa =
        keyObject.asymmetricKeyType === 'rsa' || keyObject.asymmetricKeyType === 'rsa-pss';
      // RSA under 2048 bits is left to jose, which refuses it (RFC 7518 §3.3).
      entry =
        keyObject.type === 'public' && !(rsa && bits < 2048)
          ? { key: keyObject, inline: rsa && bits <= MAX_INLINE_RSA_BITS }
          : null;
    } catch {
      entry = null;
    }
    prepared.set(key, entry);
  }
  return entry;
}

/**
 * Verifies the signature of a compact JWS whose header was already checked (algorithm allowed,
 * key chosen for it by jose's key selection). On Node it verifies with node:crypto KeyObjects built
 * once per key: small RSA keys inline, everything slower on the libuv thread pool, so the event
 * loop never runs a long verification. Elsewhere it is jose's `compactVerify`. A differential test
 * holds the two to identical decisions. Synchronous (a boolean) on the inline path, so that a small
 * RSA key costs no promise hop.
 */
export function verifySignature(
  token: string,
  key: VerifyKey,
  alg: string,
): boolean | Promise<boolean> {
  const params = PARAMS[alg];
  const ready = params === undefined ? null : prepare(key);
  if (ready === null || params === undefined || nodeCrypto === undefined) {
    return compactVerify(token, key, { algorithms: [alg] }).then(
      () => true,
      () => false,
    );
  }
  const dot = token.lastIndexOf('.');
  const input = Buffer.from(token.slice(0, dot), 'latin1');
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  const [hash, options] = params;
  const keyInput = { key: ready.key, ...options } as NodeCrypto.VerifyKeyObjectInput;
  const { verify } = nodeCrypto;
  if (ready.inline) {
    try {
      return verify(hash, input, keyInput, signature);
    } catch {
      return false;
    }
  }
  return new Promise((resolve) => {
    try {
      verify(hash, input, keyInput, signature, (error, ok) => resolve(error === null && ok));
    } catch {
      resolve(false);
    }
  });
}
