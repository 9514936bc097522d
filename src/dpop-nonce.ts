/**
 * Stateless DPoP server nonces (RFC 9449 §9): `<time step>.<HMAC-SHA-256(secret, step)>`. Every
 * instance sharing the secret issues and accepts the same nonces without a store; a nonce is good
 * for the step it was issued in and the next one. WebCrypto only (it runs on every runtime).
 */

/** Bytes of the MAC kept in a nonce (128 bits). */
const MAC_BYTES = 16;
/** The step and the MAC: `^\d+\.[A-Za-z0-9_-]{22}$`. */
const NONCE = /^(\d{1,12})\.([\w-]{22})$/;

export interface ResolvedNonceOptions {
  /** The shared secret's bytes (at least 32). */
  readonly secret: Uint8Array;
  /** Seconds per step. */
  readonly step: number;
}

/** Issues and checks nonces; the MACs of recent steps are computed once and remembered. */
export class NonceIssuer {
  readonly #step: number;
  readonly #key: Promise<CryptoKey>;
  /** step → its nonce (a handful: the current, the previous, the next). */
  readonly #nonces = new Map<number, Promise<string>>();

  constructor(options: ResolvedNonceOptions) {
    this.#step = options.step;
    this.#key = crypto.subtle.importKey(
      'raw',
      options.secret as Uint8Array<ArrayBuffer>,
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
  }

  /** The nonce to hand out now. */
  current(now = Date.now()): Promise<string> {
    return this.#nonceOf(Math.floor(now / 1000 / this.#step));
  }

  /** Whether `nonce` was issued in this step or the previous one (and so is not expired). */
  async isValid(nonce: unknown, now = Date.now()): Promise<boolean> {
    if (typeof nonce !== 'string') return false;
    const match = NONCE.exec(nonce);
    if (match === null) return false;
    const step = Number(match[1]);
    const current = Math.floor(now / 1000 / this.#step);
    if (step !== current && step !== current - 1) return false;
    return (await this.#nonceOf(step)) === nonce;
  }

  #nonceOf(step: number): Promise<string> {
    let nonce = this.#nonces.get(step);
    if (nonce === undefined) {
      nonce = this.#key.then(async (key) => {
        const mac = await crypto.subtle.sign(
          'HMAC',
          key,
          new TextEncoder().encode(`resource-guard dpop nonce ${step}`),
        );
        return `${step}.${base64url(new Uint8Array(mac, 0, MAC_BYTES))}`;
      });
      // A failure is not remembered: the next request computes it again.
      nonce.catch(() => this.#nonces.delete(step));
      this.#nonces.set(step, nonce);
      for (const known of this.#nonces.keys()) {
        if (known < step - 1 || known > step + 1) this.#nonces.delete(known);
      }
    }
    return nonce;
  }
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
