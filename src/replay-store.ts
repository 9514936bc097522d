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

/** TTLs given a lane of their own in a {@link MemoryReplayStore}; a further one shares a lane. */
const MAX_LANES = 8;
/** Least time between two full sweeps of a {@link MemoryReplayStore} that looks full, in ms. */
const FULL_SWEEP_MS = 1000;

/** The entries of one TTL, key → expiry, in insertion order, which is expiry order. */
interface Lane {
  readonly ttl: number;
  readonly entries: Map<string, number>;
  /** The latest expiry ever inserted (an insert expiring before it breaks the order). */
  latest: number;
}

/**
 * The default store: one process's memory, bounded, expired entries swept as new ones arrive.
 * Enough for a single instance; an API served by several needs a shared store
 * (`resource-guard/redis`), or a proof accepted by one instance is accepted by the others.
 */
export class MemoryReplayStore implements ReplayStore {
  /**
   * The proofs held, in lanes by TTL (the verifier inserts with one TTL: one lane). Within a lane
   * insertion order is expiry order, so its expired entries are at its front: an insert drops
   * them from there and looks at nothing else, and a store full of live proofs refuses a new one
   * in O(1), never walking its entries. Past {@link MAX_LANES} TTLs, a new TTL joins the lane of
   * the nearest one: its entries are still dropped only once expired, but may wait behind live
   * ones, as may entries made after the clock stepped back (held longer, never forgotten early).
   */
  readonly #lanes: Lane[] = [];
  readonly #maxEntries: number;
  /**
   * Whether some lane may hold an expired entry behind a live one (a TTL sharing a lane, or an
   * insert after the clock stepped back): then a store that looks full is swept in full before it
   * refuses, at most once per {@link FULL_SWEEP_MS} (a flood at a full store stays O(1) per proof).
   */
  #disordered = false;
  #sweptAt = -Infinity;

  constructor(options: MemoryReplayStoreOptions = {}) {
    const max = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError('resource-guard: `maxEntries` must be a whole number from 1');
    }
    this.#maxEntries = max;
  }

  /** How many entries are held (expired ones included until swept). */
  get size(): number {
    let size = 0;
    for (const lane of this.#lanes) size += lane.entries.size;
    return size;
  }

  insertIfAbsent(key: string, ttlMs: number): boolean {
    const now = Date.now();
    let size = 0;
    for (let i = this.#lanes.length - 1; i >= 0; i--) {
      const { entries } = this.#lanes[i] as Lane;
      for (const [held, until] of entries) {
        if (until > now) break;
        entries.delete(held);
      }
      const until = entries.get(key);
      if (until !== undefined && until > now) return false;
      if (until !== undefined) entries.delete(key); // expired behind a live one (see #lanes)
      if (entries.size === 0) this.#lanes.splice(i, 1);
      size += entries.size;
    }
    if (size >= this.#maxEntries && this.#disordered) {
      if (now - this.#sweptAt >= FULL_SWEEP_MS || now < this.#sweptAt) size = this.#sweep(now);
    }
    if (size >= this.#maxEntries) {
      throw new Error(`the replay store holds ${this.#maxEntries} unexpired proofs`);
    }
    const lane = this.#lane(ttlMs);
    const until = now + ttlMs;
    if (until < lane.latest) this.#disordered = true;
    else lane.latest = until;
    lane.entries.set(key, until);
    return true;
  }

  /** Every expired entry dropped, wherever it is; the entries left. Notes whether order holds. */
  #sweep(now: number): number {
    this.#sweptAt = now;
    let size = 0;
    let ordered = true;
    for (let i = this.#lanes.length - 1; i >= 0; i--) {
      const { entries } = this.#lanes[i] as Lane;
      let previous = -Infinity;
      for (const [held, until] of entries) {
        if (until <= now) entries.delete(held);
        else if (until < previous) ordered = false;
        else previous = until;
      }
      if (entries.size === 0) this.#lanes.splice(i, 1);
      size += entries.size;
    }
    this.#disordered = !ordered;
    return size;
  }

  /** The lane of `ttl`: its own, a new one, or past {@link MAX_LANES} the nearest TTL's. */
  #lane(ttl: number): Lane {
    let nearest: Lane | undefined;
    for (const lane of this.#lanes) {
      if (lane.ttl === ttl) return lane;
      if (nearest === undefined || Math.abs(lane.ttl - ttl) < Math.abs(nearest.ttl - ttl)) {
        nearest = lane;
      }
    }
    if (nearest !== undefined && this.#lanes.length >= MAX_LANES) return nearest;
    const lane: Lane = { ttl, entries: new Map(), latest: -Infinity };
    this.#lanes.push(lane);
    return lane;
  }
}

let processStore: MemoryReplayStore | undefined;

/**
 * The store of every verifier given none: one per process (per isolate on Workers), made on first
 * use. A proof's key names its API (the proof key, `htu` and `jti`), so verifiers of different
 * APIs never meet in it; a verifier made again (a configuration reload, or one per request) still
 * finds the proofs its predecessor accepted.
 */
export function processReplayStore(): MemoryReplayStore {
  processStore ??= new MemoryReplayStore();
  return processStore;
}
