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

/**
 * Issues and checks nonces; the MACs of recent steps are computed once and remembered. With
 * `shared: false` (runtimes where a promise must not cross requests) only settled values are
 * remembered: concurrent first computations each run their own.
 */
export class NonceIssuer {
  readonly #step: number;
  readonly #secret: Uint8Array;
  readonly #shared: boolean;
  #key: CryptoKey | Promise<CryptoKey> | undefined;
  /** step → its nonce (a handful: the current, the previous, the next). */
  readonly #nonces = new Map<number, string | Promise<string>>();

  constructor(options: ResolvedNonceOptions, shared = true) {
    this.#step = options.step;
    this.#secret = options.secret;
    this.#shared = shared;
  }

  /** The nonce to hand out now. */
  current(now = Date.now()): Promise<string> {
    return Promise.resolve(this.#nonceOf(Math.floor(now / 1000 / this.#step)));
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

  /** Whether `nonce`, which {@link isValid} accepted, is still in its window at `now`. */
  stillValid(nonce: unknown, now = Date.now()): boolean {
    const step = Number(NONCE.exec(String(nonce))?.[1]);
    const current = Math.floor(now / 1000 / this.#step);
    return step === current || step === current - 1;
  }

  #keyOf(): CryptoKey | Promise<CryptoKey> {
    if (this.#key !== undefined) return this.#key;
    const pending = crypto.subtle
      .importKey(
        'raw',
        this.#secret as Uint8Array<ArrayBuffer>,
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['sign'],
      )
      .then((key) => (this.#key = key));
    if (this.#shared) {
      this.#key = pending;
      pending.catch(() => (this.#key = undefined));
    }
    return pending;
  }

  #nonceOf(step: number): string | Promise<string> {
    const known = this.#nonces.get(step);
    if (known !== undefined) return known;
    const pending = Promise.resolve(this.#keyOf()).then(async (key) => {
      const mac = await crypto.subtle.sign(
        'HMAC',
        key,
        new TextEncoder().encode(`resource-guard dpop nonce ${step}`),
      );
      const nonce = `${step}.${base64url(new Uint8Array(mac, 0, MAC_BYTES))}`;
      this.#remember(step, nonce);
      return nonce;
    });
    if (this.#shared) {
      this.#remember(step, pending);
      // A failure is not remembered: the next request computes it again.
      pending.catch(() => this.#nonces.delete(step));
    }
    return pending;
  }

  #remember(step: number, nonce: string | Promise<string>): void {
    this.#nonces.set(step, nonce);
    for (const known of this.#nonces.keys()) {
      if (known < step - 1 || known > step + 1) this.#nonces.delete(known);
    }
  }
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
