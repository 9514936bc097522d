import { firstAcceptedSecond } from './claims.ts';
import { cacheEvictChannel, publish } from './diagnostics.ts';
import { shortKey } from './token-key.ts';

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

/**
 * What a cached verification is bound to: the key that verified it (in practice a
 * {@link TrustedKey} of the key set). `vouches(now)` is asked on every hit.
 */
export interface Voucher {
  /** `false` for good once the key left its key set (or changed): the entry is dropped. */
  readonly trusted: boolean;
  /** Whether the key may vouch for a token at `now` (trusted, and its set not too stale). */
  vouches(now: number): boolean;
}

/** What a lookup finds: the value, and a note its owner may keep with it. */
export interface Found<T> {
  readonly value: T;
  /**
   * The owner's own memo about the value (the verifier: the route requirements it last passed),
   * dropped with the entry. Never read by the cache.
   */
  note: unknown;
}

interface Entry<T> extends Found<T> {
  readonly token: string;
  /** Milliseconds since the epoch before which the entry is not used (a clock stepped back). */
  readonly validFrom: number;
  /** Milliseconds since the epoch after which the entry is never used. */
  readonly validUntil: number;
  readonly key: Voucher;
  readonly bytes: number;
}

/**
 * Per-entry memory, an upper estimate of what bench/memory.ts measures (about 1,320 bytes for a
 * 382-character token, 2,380 for a 994-character one: the token, its decoded claims and header,
 * the AuthInfo and the entry).
 */
const entryBytes = (token: string) => token.length * 2 + 640;

/**
 * The cache policy: when a verified token may be answered from memory, as `[from, until)` in
 * milliseconds. Until its `exp` (or sooner with `maxTokenAge`: `iat + maxTokenAge`); from the
 * moment its `nbf` and `iat` are accepted (minus `clockTolerance`, from the whole second on), so
 * a clock stepped back does not make the cache looser than a fresh check. Each bound is 1 ms inside the fresh check's (which
 * compares seconds, `Date.now() / 1000`): at the very edge, where the two roundings could
 * disagree by one ulp, the fresh check decides.
 */
export function cacheableWindow(
  claims: { readonly exp: number; readonly iat?: number | undefined; readonly nbf?: unknown },
  rules: { readonly maxTokenAge: number | undefined; readonly clockTolerance: number },
): readonly [from: number, until: number] {
  const { exp, iat, nbf } = claims;
  const byAge =
    rules.maxTokenAge !== undefined && iat !== undefined ? iat + rules.maxTokenAge : Infinity;
  // The fresh check judges a start against the whole second: the first one it accepts.
  const from = firstAcceptedSecond({ iat, nbf }, rules.clockTolerance);
  return [from * 1000 + 1, Math.min(exp, byAge) * 1000 - 1];
}

/**
 * Verified tokens, keyed by the whole token string (so no two tokens can ever share an entry).
 * An entry is answered only while BOTH hold: `now < validUntil` (the token's `exp`, or sooner) and
 * the key that verified it still vouches for it — it is still in its issuer's key set, unchanged
 * (checked on every hit, so a refresh racing a verification cannot leave a removed or replaced
 * key's token behind), and the set is not older than `maxAge + maxStale`. Entries are evicted
 * oldest-first past `maxEntries` or `maxBytes`. Only successes are ever stored.
 */
export class TokenCache<T> {
  /** By {@link shortKey} of the token; the entry holds the whole token. */
  readonly #entries = new Map<number, Entry<T>>();
  /** Insertion order, for oldest-first eviction in O(1): slots of deleted entries are skipped. */
  #order: { readonly key: number; readonly entry: Entry<T> }[] = [];
  #head = 0;
  readonly #options: ResolvedTokenCacheOptions;
  #bytes = 0;
  /** Lookups in a row that found nothing (a hit resets it). */
  #misses = 0;
  /** Past this many misses in a row, a token is admitted on its second sighting only. */
  readonly #admitAfter: number;
  /** Hashes of tokens seen once while admission is by second sighting (a lossy table). */
  #seen: Int32Array | undefined;

  /**
   * `admitAfterMisses`: how many lookups in a row may miss before admission turns to second
   * sightings. Default: `maxEntries`, at least 1,024 (the whole content turned over unused).
   */
  constructor(options: ResolvedTokenCacheOptions, admitAfterMisses?: number) {
    this.#options = options;
    this.#admitAfter = admitAfterMisses ?? Math.max(options.maxEntries, MIN_ADMIT_AFTER);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** @internal The eviction queue's length, live and dead slots: bounded by about 2 × size. */
  get queued(): number {
    return this.#order.length;
  }

  /** The value cached for `token`, if it may be answered at `now`. */
  get(token: string, now: number): T | undefined {
    return this.find(token, now)?.value;
  }

  /** {@link get}, with the entry's note. */
  find(token: string, now: number): Found<T> | undefined {
    const key = shortKey(token);
    const entry = this.#entries.get(key);
    // The short key finds the entry; the whole token must then be equal (a plain comparison,
    // cheaper than hashing it): no two tokens ever share an answer.
    if (entry === undefined || entry.token !== token) {
      this.#misses++;
      return undefined;
    }
    if (now < entry.validUntil && now >= entry.validFrom && entry.key.vouches(now)) {
      this.#misses = 0;
      return entry;
    }
    this.#misses++;
    // Expired, or its key is gone: never again. (A set merely too stale may recover.)
    if (now >= entry.validUntil) this.#delete(key, entry);
    else if (!entry.key.trusted) {
      this.#delete(key, entry);
      publish(cacheEvictChannel, () => ({ reason: 'revoked', count: 1 }));
    }
    return undefined;
  }

  set(token: string, value: T, validFrom: number, validUntil: number, key: Voucher): void {
    const bytes = entryBytes(token);
    if (bytes > this.#options.maxBytes || this.#options.maxEntries === 0) return;
    if (this.#misses >= this.#admitAfter && !this.#seenBefore(token)) return;
    const lookup = shortKey(token);
    const previous = this.#entries.get(lookup);
    if (previous !== undefined) this.#delete(lookup, previous);
    const entry: Entry<T> = { token, value, note: undefined, validFrom, validUntil, key, bytes };
    this.#entries.set(lookup, entry);
    this.#order.push({ key: lookup, entry });
    this.#bytes += bytes;
    const { maxEntries, maxBytes } = this.#options;
    let evicted = 0;
    while (this.#entries.size > maxEntries || this.#bytes > maxBytes) {
      const oldest = this.#order[this.#head++];
      if (oldest === undefined) break;
      if (this.#entries.get(oldest.key) === oldest.entry) {
        this.#delete(oldest.key, oldest.entry);
        evicted++;
      }
    }
    if (evicted > 0) publish(cacheEvictChannel, () => ({ reason: 'capacity', count: evicted }));
    this.#compact();
  }

  /**
   * The admission policy once the cache has stopped paying (every lookup a miss for as long as it
   * takes to turn its whole content over: a flood of distinct tokens). Storing such a token only
   * costs (the entry, its eviction, and a copy of the AuthInfo into the old generation at GC), so
   * a token is then stored on its second sighting: this records the first in a fixed table of
   * hashes (lossy: a newer token may take the slot) and says whether it was there. A hit returns
   * the cache to admitting every verified token. Never a question of trust: what is stored is
   * still a verified token, compared whole on every lookup.
   */
  #seenBefore(token: string): boolean {
    const seen = (this.#seen ??= new Int32Array(seenSlots(this.#admitAfter)));
    const hash = shortKey(token) + 1; // 0 is an empty slot
    const slot = hash & (seen.length - 1);
    if (seen[slot] === hash) return true;
    seen[slot] = hash;
    return false;
  }

  #delete(key: number, entry: Entry<T>): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  /**
   * Drops the slots of evicted and deleted entries (those before the head included) once they
   * outnumber the live ones: the queue stays within about twice the entries, at O(1) per insert.
   */
  #compact(): void {
    const slots = this.#order.length;
    if (slots < 1024 || slots <= 2 * this.#entries.size) return;
    this.#order = this.#order
      .slice(this.#head)
      .filter((slot) => this.#entries.get(slot.key) === slot.entry);
    this.#head = 0;
  }
}

const MIN_ADMIT_AFTER = 1024;

/** A power of two at least `n`, within [1024, 65536]: at most 256 KiB. */
const seenSlots = (n: number): number =>
  2 ** Math.min(16, Math.max(10, Math.ceil(Math.log2(Math.max(n, 1)))));
