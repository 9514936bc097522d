/**
 * Where DPoP proofs already seen are remembered (RFC 9449 §11.1): one atomic operation, insert
 * if absent with a time to live, so that every instance of an API sharing one store accepts a
 * proof once. The in-memory default serves one process; `resource-guard/redis` serves many.
 */
import type { Awaitable } from './types.ts';

/**
 * A store of proof identifiers seen recently. Its one operation must be ATOMIC across everything
 * that shares the store: two concurrent calls with the same key get `true` once. Never
 * check-then-set (an `EXISTS` then a `SET` lets two instances both pass).
 *
 * @example
 * ```ts
 * import type { ReplayStore } from 'resource-guard';
 *
 * // Any shared store with an atomic insert-if-absent will do; Redis: `SET key 1 NX PX ttl`.
 * const seen = new Set<string>();
 * const store: ReplayStore = {
 *   insertIfAbsent: (key) => !seen.has(key) && seen.add(key) !== undefined,
 * };
 * ```
 */
export interface ReplayStore {
  /**
   * Records `key` for `ttlMs` milliseconds unless it is already there: `true` when it was absent
   * (a first use), `false` when present (a replay). Throwing or rejecting refuses the request
   * with a 503, as does taking longer than the verifier's `dpop.replayTimeout`.
   */
  insertIfAbsent(key: string, ttlMs: number): Awaitable<boolean>;
}

/** `new MemoryReplayStore(options)`. */
export interface MemoryReplayStoreOptions {
  /**
   * Most proofs remembered at once. When it is full of proofs still inside their window, a new
   * proof is refused with a 503 (never accepted unchecked, never evicting one that could be
   * replayed). Default: 100,000 (about 13 MiB; at the default 70 s window, 1,400 DPoP requests
   * per second).
   */
  readonly maxEntries?: number;
}

/**
 * The default store: one process's memory, bounded, expired entries swept as new ones arrive.
 * Enough for a single instance; an API served by several needs a shared store
 * (`resource-guard/redis`), or a proof accepted by one instance is accepted by the others.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;

  constructor(options: MemoryReplayStoreOptions = {}) {
    const max = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError('resource-guard: `maxEntries` must be a whole number from 1');
    }
    this.#maxEntries = max;
  }

  /** How many entries are held (expired ones included until swept). */
  get size(): number {
    return this.#entries.size;
  }

  insertIfAbsent(key: string, ttlMs: number): boolean {
    const now = Date.now();
    this.#sweep(now, false);
    const until = this.#entries.get(key);
    if (until !== undefined && until > now) return false;
    if (until !== undefined) this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      this.#sweep(now, true);
      if (this.#entries.size >= this.#maxEntries) {
        throw new Error(`the replay store holds ${this.#maxEntries} unexpired proofs`);
      }
    }
    this.#entries.set(key, now + ttlMs);
    return true;
  }

  /**
   * Drops expired entries from the oldest: every entry has the verifier's one TTL, so insertion
   * order is expiry order and this stops at the first live one (amortised O(1)). `all` walks
   * everything, for entries of other TTLs.
   */
  #sweep(now: number, all: boolean): void {
    for (const [key, until] of this.#entries) {
      if (until <= now) this.#entries.delete(key);
      else if (!all) return;
    }
  }
}
