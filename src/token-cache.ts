/** The verified-token cache's settings. */
export interface TokenCacheOptions {
  /** Most tokens kept. Default: 10000. */
  readonly maxEntries?: number;
  /** Approximate memory bound of the entries, in bytes. Default: 48 MiB. */
  readonly maxBytes?: number;
}

export interface ResolvedTokenCacheOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export interface Entry<T, O> {
  readonly value: T;
  /** Milliseconds since the epoch after which the entry is never used. */
  readonly validUntil: number;
  readonly kid: string;
  /** The key set whose key verified the token. */
  readonly owner: O;
  readonly bytes: number;
}

/**
 * Per-entry memory as measured (bench/memory.ts: ~3.5 KiB for a 330-character Logto-shaped
 * token): the token string held as the key, plus ~3 KiB of claims, header and AuthInfo objects.
 */
const entryBytes = (token: string) => token.length * 2 + 3072;

/**
 * Verified tokens, keyed by the whole token string (so no two tokens can ever share an entry).
 * An entry is never used past `validUntil` (the token's `exp`, or sooner), is dropped when its
 * signing key leaves the issuer's key set, and is evicted oldest-first past `maxEntries` or
 * `maxBytes`. Only successes are ever stored.
 */
export class TokenCache<T, O extends object> {
  readonly #entries = new Map<string, Entry<T, O>>();
  readonly #options: ResolvedTokenCacheOptions;
  #bytes = 0;

  constructor(options: ResolvedTokenCacheOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, now: number): Entry<T, O> | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    if (now >= entry.validUntil) {
      this.#delete(token, entry);
      return undefined;
    }
    return entry;
  }

  set(token: string, value: T, validUntil: number, kid: string, owner: O): void {
    const bytes = entryBytes(token);
    if (bytes > this.#options.maxBytes || this.#options.maxEntries === 0) return;
    const previous = this.#entries.get(token);
    if (previous !== undefined) this.#delete(token, previous);
    this.#entries.set(token, { value, validUntil, kid, owner, bytes });
    this.#bytes += bytes;
    const { maxEntries, maxBytes } = this.#options;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= maxEntries && this.#bytes <= maxBytes) break;
      this.#delete(oldest, entry);
    }
  }

  /** Drops every entry signed by `owner`'s keys whose kid is no longer in `kids`. */
  retainKids(owner: O, kids: ReadonlySet<string>): void {
    for (const [token, entry] of this.#entries) {
      if (entry.owner === owner && !kids.has(entry.kid)) this.#delete(token, entry);
    }
  }

  #delete(token: string, entry: Entry<T, O>): void {
    this.#entries.delete(token);
    this.#bytes -= entry.bytes;
  }
}
