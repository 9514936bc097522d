import { createLocalJWKSet } from 'jose';
import type { JWK, JWTHeaderParameters } from 'jose';
import { KeySourceError, Rejection } from './errors.ts';
import { usableKeys } from './key-source.ts';
import type { KeySource } from './key-source.ts';
import type { VerifyKey } from './signature.ts';
import type { Voucher } from './token-cache.ts';

/** The key-set cache's settings. Every duration is in seconds. */
export interface KeySetOptions {
  /**
   * Keys younger than this are used without asking the issuer. Logto sends
   * `Cache-Control: no-cache` on its JWKS, so the lifetime is ours. Default: 600.
   */
  readonly maxAge?: number;
  /**
   * A token whose `kid` is not in the set triggers a refetch at most once per cooldown, so a flood
   * of random kids costs the issuer at most one request per cooldown. Default: 30.
   */
  readonly cooldown?: number;
  /** Timeout of one JWKS or discovery request, body included; really aborts it. Default: 5. */
  readonly timeout?: number;
  /**
   * When a refresh fails, the last good keys keep serving for this long past `maxAge`, while
   * refreshes are retried with back-off (1 s, 2 s, 4 s, ... up to the cooldown). Default: 43200.
   */
  readonly maxStale?: number;
}

export interface ResolvedKeySetOptions {
  readonly maxAge: number;
  readonly cooldown: number;
  readonly timeout: number;
  readonly maxStale: number;
  readonly fetch: typeof globalThis.fetch;
  /**
   * No work outlives or crosses requests (Cloudflare Workers): no shared refresh promise and no
   * background refresh; a request that needs the keys refreshed does it itself, or waits (on a
   * timer of its own) while another request's refresh is under way.
   */
  readonly requestScoped: boolean;
}

/**
 * One public key of an issuer, as its key set trusts it right now. The same object stands for the
 * same JWK across refreshes (a JWK that comes back unchanged keeps its object); when the JWK leaves
 * the set, or changes in any member (a new key under the same kid, another `alg`), the old object
 * is marked untrusted for good. A cached verification is bound to this object, so one property
 * read tells whether the key that verified it may still vouch for it.
 */
export class TrustedKey implements Voucher {
  #trusted = true;
  /** @internal the key's own one-key jose set: jose does the alg/kty/crv/use fit and import. */
  readonly select: ReturnType<typeof createLocalJWKSet>;
  constructor(
    /** The JWK's members, canonical: its identity across refreshes. */
    readonly id: string,
    readonly kid: string | undefined,
    select: ReturnType<typeof createLocalJWKSet>,
    /** The key set it belongs to (and so the issuer(s) it may vouch for). */
    readonly owner: RemoteKeySet,
  ) {
    this.select = select;
  }

  /** Still in its issuer's key set, unchanged. */
  get trusted(): boolean {
    return this.#trusted;
  }

  /** Trusted, and its key set not older than `maxAge + maxStale` (which may start a refresh). */
  vouches(now: number): boolean {
    return this.#trusted && this.owner.vouches(now);
  }

  /** @internal */
  revoke(): void {
    this.#trusted = false;
  }
}

/** A key fit for one token header: the trusted key and the key object to verify with. */
export interface Candidate {
  readonly trusted: TrustedKey;
  readonly key: VerifyKey;
}

/** Keys tried for one token at most (several keys under one kid, or a token with no kid). */
export const MAX_CANDIDATES = 8;

/** One successfully fetched key set. */
interface Snapshot {
  readonly keys: readonly TrustedKey[];
  readonly byId: ReadonlyMap<string, TrustedKey>;
  readonly byKid: ReadonlyMap<string, readonly TrustedKey[]>;
  readonly fetchedAt: number;
  /** Candidates already selected, by `alg kid`, so a known key is found without a promise. */
  readonly selected: Map<string, readonly Candidate[]>;
}

/** The JWK with its members in a fixed order: equal strings for equal keys. */
function canonicalJwk(jwk: JWK): string {
  return JSON.stringify(jwk, Object.keys(jwk).sort());
}

/**
 * The keys of one issuer: fetched once, cached, shared by every request. Concurrent misses share
 * one fetch; an unknown `kid` refetches at most once per cooldown; after `maxAge` the set is
 * refreshed in the background while the last good keys keep serving (up to `maxStale`); failed
 * refreshes back off. When no usable key can be had it rejects with `keys_unavailable` (503).
 * Each key is a {@link TrustedKey}, revoked the moment a refresh no longer lists it unchanged.
 */
export class RemoteKeySet {
  #snapshot: Snapshot | undefined;
  #inflight: Promise<Snapshot> | undefined;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  /** Request-scoped mode: when the refresh under way (if any) started, and the newest applied. */
  #fetchingSince: number | undefined;
  #started = 0;
  #applied = 0;
  #failures = 0;
  #retryAt = 0;
  readonly #source: KeySource;
  readonly #options: ResolvedKeySetOptions;

  /** @param source loads the JWKS document (fetched, or a static set). */
  constructor(source: KeySource, options: ResolvedKeySetOptions) {
    this.#source = source;
    this.#options = options;
  }

  /**
   * Whether the keys fetched so far may still vouch for a token at `now`: yes while younger than
   * `maxAge`; yes while younger than `maxAge + maxStale`, starting a background refresh (back-off
   * permitting); no after that, or before the first fetch.
   */
  vouches(now: number): boolean {
    const snapshot = this.#snapshot;
    if (snapshot === undefined) return false;
    const age = now - snapshot.fetchedAt;
    const { maxAge, maxStale } = this.#options;
    if (age < maxAge * 1000) return true;
    if (age >= (maxAge + maxStale) * 1000) return false;
    // Request-scoped: no background work; the request that finds the keys stale refreshes them.
    if (this.#options.requestScoped) return false;
    if (now >= this.#retryAt) this.#refresh().catch(() => undefined);
    return true;
  }

  /**
   * The keys that fit a token header, in the set's order: the keys listed under its `kid` (or
   * every key, for a token without one) that fit its `alg`, at most {@link MAX_CANDIDATES}.
   * Synchronous when they were selected before and the keys are fresh. Throws (or rejects with) a
   * {@link Rejection}.
   */
  getCandidates(header: JWTHeaderParameters): readonly Candidate[] | Promise<readonly Candidate[]> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && header.kid !== undefined && this.vouches(Date.now())) {
      const known = snapshot.selected.get(`${header.alg} ${header.kid}`);
      if (known !== undefined) return known;
    }
    return this.#select(header);
  }

  async #select(header: JWTHeaderParameters): Promise<readonly Candidate[]> {
    let snapshot = await this.#usable();
    const { kid, alg } = header;
    if (kid !== undefined && !snapshot.byKid.has(kid)) {
      snapshot = await this.#refreshForUnknownKid(snapshot);
      if (!snapshot.byKid.has(kid)) throw new Rejection('unknown_kid', { kid });
    }
    const listed = kid === undefined ? snapshot.keys : (snapshot.byKid.get(kid) ?? []);
    if (listed.length > MAX_CANDIDATES && kid !== undefined) {
      throw new Rejection('key_mismatch', {
        kid,
        alg,
        keys: listed.length,
        problem: `more than ${MAX_CANDIDATES} keys share this kid`,
      });
    }
    const candidates: Candidate[] = [];
    let cause: unknown;
    for (const trusted of listed) {
      try {
        candidates.push({ trusted, key: await trusted.select(header) });
      } catch (error) {
        cause ??= error; // this key does not fit the algorithm
      }
    }
    if (candidates.length === 0) {
      throw new Rejection(
        'key_mismatch',
        {
          kid,
          alg,
          keys: listed.length,
          problem: `no key ${kid === undefined ? 'of the set' : 'of this kid'} fits the algorithm`,
        },
        cause,
      );
    }
    if (candidates.length > MAX_CANDIDATES) {
      throw new Rejection('key_mismatch', {
        kid,
        alg,
        keys: candidates.length,
        problem: `more than ${MAX_CANDIDATES} keys fit a token without a kid`,
      });
    }
    const result = Object.freeze(candidates);
    if (kid !== undefined) snapshot.selected.set(`${alg} ${kid}`, result);
    return result;
  }

  async #usable(): Promise<Snapshot> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && this.vouches(Date.now())) return snapshot;
    if (!this.#options.requestScoped) return this.#refresh();
    // Request-scoped: stale keys (within maxStale) answer while the refresh is backing off, and
    // when this request's own refresh fails.
    const stale = () => {
      const current = this.#snapshot;
      const { maxAge, maxStale } = this.#options;
      return current !== undefined && Date.now() - current.fetchedAt < (maxAge + maxStale) * 1000
        ? current
        : undefined;
    };
    if (Date.now() < this.#retryAt && stale() !== undefined) return stale() as Snapshot;
    try {
      return await this.#refresh();
    } catch (error) {
      const fallback = stale();
      if (fallback !== undefined) return fallback;
      throw error;
    }
  }

  async #refreshForUnknownKid(snapshot: Snapshot): Promise<Snapshot> {
    if (this.#options.requestScoped) {
      await this.#awaitOtherRefresh();
      const current = this.#snapshot;
      if (current !== undefined && current !== snapshot) return current; // a newer set landed
    }
    if (this.#inflight !== undefined) return this.#inflight;
    const now = Date.now();
    if (now - this.#lastFetchAt < this.#options.cooldown * 1000) {
      // Too soon to ask again. If the last attempt failed, the kid may well be a new key we could
      // not fetch: that is an outage (503), not proof the token is bad (401).
      if (this.#failures > 0) {
        throw new Rejection(
          'keys_unavailable',
          { problem: 'a new kid while the key set cannot be fetched', failures: this.#failures },
          undefined,
          Math.max(1, (this.#retryAt - now) / 1000),
        );
      }
      return snapshot;
    }
    return this.#refresh();
  }

  /**
   * Request-scoped: while another request's refresh is under way (and not older than the fetch
   * timeout: a request that was cut off never finishes its own), wait for it on a timer of this
   * request's own, never on that request's promise. `true` when one was waited for.
   */
  async #awaitOtherRefresh(): Promise<boolean> {
    const limit = (this.#options.timeout + 1) * 1000;
    let waited = false;
    while (this.#fetchingSince !== undefined && Date.now() - this.#fetchingSince < limit) {
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return waited;
  }

  #refresh(): Promise<Snapshot> {
    if (this.#options.requestScoped) return this.#refreshInRequest();
    if (this.#inflight !== undefined) return this.#inflight;
    const now = Date.now();
    if (now < this.#retryAt) {
      return Promise.reject(
        new Rejection(
          'keys_unavailable',
          { problem: 'backing off after a failed fetch', failures: this.#failures },
          undefined,
          (this.#retryAt - now) / 1000,
        ),
      );
    }
    this.#lastFetchAt = now;
    const inflight = this.#load().then(
      (snapshot) => this.#apply(snapshot),
      (cause: unknown) => this.#fail(cause),
    );
    this.#inflight = inflight;
    const clear = () => {
      if (this.#inflight === inflight) this.#inflight = undefined;
    };
    inflight.then(clear, clear);
    return inflight;
  }

  /** Request-scoped: this request's own refresh, or the result of another's it waited for. */
  async #refreshInRequest(): Promise<Snapshot> {
    if (await this.#awaitOtherRefresh()) {
      const { maxAge } = this.#options;
      const current = this.#snapshot;
      if (current !== undefined && Date.now() - current.fetchedAt < maxAge * 1000) return current;
    }
    const now = Date.now();
    if (now < this.#retryAt) {
      throw new Rejection(
        'keys_unavailable',
        { problem: 'backing off after a failed fetch', failures: this.#failures },
        undefined,
        (this.#retryAt - now) / 1000,
      );
    }
    this.#lastFetchAt = now;
    this.#fetchingSince = now;
    const order = ++this.#started;
    try {
      const snapshot = await this.#load();
      // An older fetch that lands after a newer one does not roll the keys back.
      return order > this.#applied ? this.#apply(snapshot, order) : (this.#snapshot ?? snapshot);
    } catch (cause) {
      return this.#fail(cause);
    } finally {
      if (this.#started === order) this.#fetchingSince = undefined;
    }
  }

  #apply(snapshot: Snapshot, order = ++this.#started): Snapshot {
    this.#applied = order;
    const previous = this.#snapshot;
    this.#snapshot = snapshot;
    this.#failures = 0;
    this.#retryAt = 0;
    // In the same tick as the swap: a key no longer listed (or listed changed) stops vouching.
    for (const key of previous?.keys ?? []) {
      if (snapshot.byId.get(key.id) !== key) key.revoke();
    }
    return snapshot;
  }

  #fail(cause: unknown): never {
    this.#failures++;
    const backoff = Math.min(2 ** (this.#failures - 1), Math.max(1, this.#options.cooldown));
    this.#retryAt = Date.now() + backoff * 1000;
    throw new Rejection(
      'keys_unavailable',
      { problem: 'the key set could not be fetched', failures: this.#failures },
      cause,
      backoff,
    );
  }

  async #load(): Promise<Snapshot> {
    const { url, document } = await this.#source();
    const previous = this.#snapshot?.byId;
    const keys: TrustedKey[] = [];
    const byId = new Map<string, TrustedKey>();
    const byKid = new Map<string, TrustedKey[]>();
    const unique = new Map<string, JWK>();
    const perKid = new Map<string, number>();
    for (const jwk of usableKeys(document, url)) {
      const id = canonicalJwk(jwk);
      if (unique.has(id)) continue; // the same key listed twice is one key
      unique.set(id, jwk);
      if (jwk.kid !== undefined) perKid.set(jwk.kid, (perKid.get(jwk.kid) ?? 0) + 1);
    }
    for (const [id, jwk] of unique) {
      // A kid listed more than MAX_CANDIDATES times verifies nothing (see #select): its keys must
      // not keep vouching for tokens they verified before the set grew, so they start afresh.
      const crowded = jwk.kid !== undefined && (perKid.get(jwk.kid) ?? 0) > MAX_CANDIDATES;
      let trusted = crowded ? undefined : previous?.get(id);
      if (trusted === undefined || !trusted.trusted) {
        try {
          trusted = new TrustedKey(id, jwk.kid, createLocalJWKSet({ keys: [jwk] }), this);
        } catch {
          continue; // a member jose finds malformed: this key is unusable, the others are not
        }
      }
      keys.push(trusted);
      byId.set(id, trusted);
      if (jwk.kid !== undefined) {
        const list = byKid.get(jwk.kid);
        if (list === undefined) byKid.set(jwk.kid, [trusted]);
        else list.push(trusted);
      }
    }
    if (keys.length === 0) {
      // An empty set would make every token unknown: treat it as a failed fetch and keep the last
      // good keys (stale serving, back-off) instead.
      throw new KeySourceError('invalid_document', 'no usable signing key in the set', url);
    }
    return { keys, byId, byKid, fetchedAt: Date.now(), selected: new Map() };
  }
}
