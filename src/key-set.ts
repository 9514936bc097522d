import { createLocalJWKSet } from 'jose';
import type { JWK, JWTHeaderParameters } from 'jose';
import { keysFetchChannel, keysStateChannel, publish } from './diagnostics.ts';
import { describeKeyFailure, displayUrl, KeySourceError, Rejection } from './errors.ts';
import type { KeyFailure } from './errors.ts';
import { usableKeys } from './key-source.ts';
import { rsaModulus } from './public-key.ts';
import type { KeySource } from './key-source.ts';
import type { VerifyKey } from './signature.ts';
import type { Voucher } from './token-cache.ts';
import type { KeyHealth, KeyState } from './types.ts';

/** The key-set cache's settings. Every duration is in seconds. */
export interface KeySetOptions {
  /**
   * Keys younger than this are used without asking the issuer. Logto sends
   * `Cache-Control: no-cache` on its JWKS, so the lifetime is ours. Default: 600.
   */
  readonly maxAge?: number;
  /**
   * A token whose `kid` is not in the set triggers a refetch at most once per cooldown, so a flood
   * of random kids costs the issuer at most one fetch per cooldown (with discovery, the metadata
   * and the JWKS). Default: 30.
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
    /** An RSA key's modulus (a signature must be below it), `undefined` for other keys. */
    readonly modulus?: Uint8Array,
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

/** What a key set is for, for its events and health reports. */
export interface KeySetLabel {
  /** The configured issuer(s) it serves. */
  readonly issuers: readonly string[];
  /** Fetched over the network (events are published for each fetch); `false` for a static set. */
  readonly fetched: boolean;
}

/** One successfully fetched key set. */
interface Snapshot {
  readonly keys: readonly TrustedKey[];
  readonly byId: ReadonlyMap<string, TrustedKey>;
  readonly byKid: ReadonlyMap<string, readonly TrustedKey[]>;
  readonly fetchedAt: number;
  /** Where it came from (JWKS URL as diagnostics show it, or the static set's name). */
  readonly url: string;
  /** Candidates already selected, by `alg kid`, so a known key is found without a promise. */
  readonly selected: Map<string, readonly Candidate[]>;
}

/** The JWK with its members in a fixed order: equal strings for equal keys. */
function canonicalJwk(jwk: JWK): string {
  return JSON.stringify(jwk, Object.keys(jwk).sort());
}

/**
 * Whether `now` lies in `[from, until)`, two wall-clock readings. A clock stepped back before
 * `from` is outside: the interval is over, never stretched by the step.
 */
const within = (from: number, until: number, now: number): boolean => now >= from && now < until;

/**
 * The keys of one issuer: fetched once, cached, shared by every request. Concurrent misses share
 * one fetch; an unknown `kid` refetches at most once per cooldown; after `maxAge` the set is
 * refreshed in the background while the last good keys keep serving (up to `maxStale`); failed
 * refreshes back off. When no usable key can be had it rejects with `keys_unavailable` (503).
 * Each key is a {@link TrustedKey}, revoked the moment a refresh no longer lists it unchanged.
 */
export class RemoteKeySet {
  #snapshot: Snapshot | undefined;
  /**
   * The current snapshot is fresh in `[#freshFrom, #freshUntil)` (ms: `fetchedAt` to `fetchedAt +
   * maxAge`): what a cache hit asks, kept here so that the hit reads this object, not the snapshot
   * and the options. Every interval here is such a pair of wall-clock readings: a clock stepped
   * back before the interval began ends it (keys stale, back-off and cooldown over), so a step
   * never stretches one (see {@link within}).
   */
  #freshFrom = Infinity;
  #freshUntil = -Infinity;
  #inflight: Promise<Snapshot> | undefined;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  /** Request-scoped: when the refresh under way (if any) started. */
  #fetchingSince: number | undefined;
  /**
   * Refreshes are numbered as they start; their answers count in that order, whatever order they
   * land in: the newest refresh whose keys are in use, and the newest whose outcome (keys or a
   * failure) health() and the back-off report.
   */
  #started = 0;
  #applied = 0;
  #reported = 0;
  #failures = 0;
  /** Backing off in `[#retryFrom, #retryAt)`. */
  #retryFrom = 0;
  #retryAt = 0;
  /** The last failure since the last success. */
  #lastFailure: KeyFailure | undefined;
  #state: KeyState = 'empty';
  readonly #source: KeySource;
  readonly #options: ResolvedKeySetOptions;
  readonly #label: KeySetLabel;

  /** @param source loads the JWKS document (fetched, or a static set). */
  constructor(
    source: KeySource,
    options: ResolvedKeySetOptions,
    label: KeySetLabel = { issuers: [], fetched: true },
  ) {
    this.#source = source;
    this.#options = options;
    // Frozen copies: an event subscriber gets these arrays, and must not change what health() says.
    this.#label = Object.freeze({ ...label, issuers: Object.freeze([...label.issuers]) });
    register(this);
  }

  /**
   * What this set last published (its state as of its last change, and its keys), without looking
   * again or starting anything: for instrumentation started after the set (see {@link keySetStates}).
   */
  get published(): KeySetState {
    return { issuers: this.#label.issuers, state: this.#state, keys: this.#snapshot?.keys.length };
  }

  /** The state at `now` (see {@link KeyState}), published on `resource-guard:keys:state` when it changed. */
  #observe(now: number): KeyState {
    const snapshot = this.#snapshot;
    let state: KeyState;
    if (snapshot === undefined) state = this.#failures > 0 ? 'unavailable' : 'empty';
    else if (this.#fresh(now)) state = 'fresh';
    else if (this.#servable(snapshot, now)) state = 'stale';
    else state = 'unavailable';
    const from = this.#state;
    if (state !== from) {
      this.#state = state;
      publish(keysStateChannel, () => ({
        issuers: this.#label.issuers,
        from,
        to: state,
        ...(this.#lastFailure === undefined ? {} : { lastError: summary(this.#lastFailure) }),
      }));
    }
    return state;
  }

  /**
   * This set's health at `now`, one entry per issuer it serves. Unless request-scoped, a set that
   * is empty or unavailable (and not backing off) starts a refresh in the background; a stale one
   * already does (see {@link vouches}).
   */
  health(now = Date.now()): KeyHealth[] {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined) this.vouches(now);
    let state = this.#observe(now);
    if (
      (state === 'empty' || state === 'unavailable') &&
      !this.#options.requestScoped &&
      !this.#backingOffAt(now)
    ) {
      this.#refresh().catch(() => undefined);
      state = this.#observe(now);
    }
    const failure = this.#lastFailure;
    const report: Omit<KeyHealth, 'issuer'> = {
      state,
      ageSeconds: snapshot === undefined ? null : Math.max(0, (now - snapshot.fetchedAt) / 1000),
      lastError: failure === undefined ? null : summary(failure),
      retryInSeconds: this.#backingOffAt(now) ? (this.#retryAt - now) / 1000 : null,
      jwksUri: snapshot?.url ?? failure?.url ?? null,
      keys: snapshot?.keys.length ?? 0,
    };
    return this.#label.issuers.map((issuer) => Object.freeze({ issuer, ...report }));
  }

  /**
   * Loads the keys now unless the set can already vouch (fresh, or stale within `maxStale`, which
   * starts a background refresh); rejects with the failure when no keys can be had.
   */
  async warm(): Promise<void> {
    await this.#usable();
  }

  /**
   * Whether the keys fetched so far may still vouch for a token at `now`: yes while younger than
   * `maxAge`; yes while younger than `maxAge + maxStale`, starting a background refresh (back-off
   * permitting); no after that, or before the first fetch.
   */
  vouches(now: number): boolean {
    if (now < this.#freshUntil && now >= this.#freshFrom) return true;
    const snapshot = this.#snapshot;
    if (snapshot === undefined) return false;
    this.#observe(now); // past maxAge: stale, or unavailable
    if (!this.#servable(snapshot, now)) return false;
    // Request-scoped: no background work; the request that finds the keys stale refreshes them.
    if (this.#options.requestScoped) return false;
    if (!this.#backingOffAt(now)) this.#refresh().catch(() => undefined);
    return true;
  }

  /** Whether `snapshot` may still answer at `now`: younger than `maxAge + maxStale`. */
  #servable(snapshot: Snapshot, now: number): boolean {
    const { maxAge, maxStale } = this.#options;
    return within(snapshot.fetchedAt, snapshot.fetchedAt + (maxAge + maxStale) * 1000, now);
  }

  #fresh(now: number): boolean {
    return within(this.#freshFrom, this.#freshUntil, now);
  }

  #backingOffAt(now: number): boolean {
    return within(this.#retryFrom, this.#retryAt, now);
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
      return current !== undefined && this.#servable(current, Date.now()) ? current : undefined;
    };
    if (this.#backingOffAt(Date.now()) && stale() !== undefined) return stale() as Snapshot;
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
      // No await from the last check to the claim in #refreshInRequest (see there).
      while (this.#otherRefreshUnderWay(Date.now())) await ownTimer();
      const current = this.#snapshot;
      if (current !== undefined && current !== snapshot) return current; // a newer set landed
    }
    if (this.#inflight !== undefined) return this.#inflight;
    const now = Date.now();
    const cooldownEnds = this.#lastFetchAt + this.#options.cooldown * 1000;
    if (within(this.#lastFetchAt, cooldownEnds, now)) {
      // Too soon to ask again. If the last attempt failed, the kid may well be a new key we could
      // not fetch: that is an outage (503), not proof the token is bad (401).
      if (this.#failures > 0) {
        throw new Rejection(
          'keys_unavailable',
          {
            problem: 'a new kid while the key set cannot be fetched',
            failures: this.#failures,
            ...this.#failureDetails(),
          },
          undefined,
          Math.max(1, (this.#nextAttemptAt(now) - now) / 1000),
        );
      }
      return snapshot;
    }
    return this.#refresh();
  }

  /**
   * Request-scoped: another request claimed a refresh that is still under way (its latest HTTP
   * request, the metadata's or the JWKS's, started within the fetch timeout + 1 s: a request that
   * was cut off never finishes its own). A request waits for it on {@link ownTimer}, never on that
   * request's promise.
   */
  #otherRefreshUnderWay(now: number): boolean {
    const since = this.#fetchingSince;
    return since !== undefined && within(since, since + (this.#options.timeout + 1) * 1000, now);
  }

  #refresh(): Promise<Snapshot> {
    if (this.#options.requestScoped) return this.#refreshInRequest();
    if (this.#inflight !== undefined) return this.#inflight;
    const now = Date.now();
    if (this.#backingOffAt(now)) return Promise.reject(this.#backingOff(now));
    this.#lastFetchAt = now;
    const order = ++this.#started;
    const inflight = this.#load().then(
      (snapshot) => this.#apply(snapshot, order),
      (cause: unknown) => this.#fail(cause, order),
    );
    this.#inflight = inflight;
    const clear = () => {
      if (this.#inflight === inflight) this.#inflight = undefined;
    };
    inflight.then(clear, clear);
    return inflight;
  }

  /**
   * Request-scoped: this request's own refresh, or the result of another's it waited for. The
   * check that no refresh is under way and the claim are one synchronous step, with no await
   * between them: of the requests that get here in one turn of the event loop (pipelined
   * requests, HTTP/2 streams, a batch of verify() calls, a cold start) the first claims the
   * refresh and fetches, the others see the claim and wait.
   */
  async #refreshInRequest(): Promise<Snapshot> {
    let waited = false;
    while (this.#otherRefreshUnderWay(Date.now())) {
      waited = true;
      await ownTimer();
    }
    const now = Date.now();
    const current = this.#snapshot;
    if (waited && current !== undefined && this.#fresh(now)) return current;
    if (this.#backingOffAt(now)) throw this.#backingOff(now);
    this.#lastFetchAt = now;
    this.#fetchingSince = now;
    const order = ++this.#started;
    // Each request of the refresh (the metadata, then the JWKS) has its own timeout: one that has
    // just started another is alive, and others keep waiting for it.
    const alive = () => {
      if (this.#started === order) this.#fetchingSince = Date.now();
    };
    try {
      return this.#apply(await this.#load(alive), order);
    } catch (cause) {
      return this.#fail(cause, order);
    } finally {
      if (this.#started === order) this.#fetchingSince = undefined;
    }
  }

  /**
   * Refresh `order` fetched `snapshot`. Only request-scoped refreshes can overlap (one silent for
   * longer than the fetch timeout + 1 s is presumed cut off), but the rule holds on both paths: an older
   * refresh's keys never roll back a newer one's (it gets the keys in use), and its success does
   * not clear a failure a newer refresh recorded.
   */
  #apply(snapshot: Snapshot, order: number): Snapshot {
    const previous = this.#snapshot;
    if (order < this.#applied && previous !== undefined) return previous;
    if (order > this.#reported) {
      this.#reported = order;
      this.#failures = 0;
      this.#retryAt = 0;
      this.#lastFailure = undefined;
    }
    this.#applied = order;
    this.#snapshot = snapshot;
    this.#freshFrom = snapshot.fetchedAt;
    this.#freshUntil = snapshot.fetchedAt + this.#options.maxAge * 1000;
    // In the same tick as the swap: a key no longer listed (or listed changed) stops vouching.
    for (const key of previous?.keys ?? []) {
      if (snapshot.byId.get(key.id) !== key) key.revoke();
    }
    this.#observe(Date.now()); // observers hear of it after the revocations, never before
    return snapshot;
  }

  /**
   * Refresh `order` failed: recorded (failures, back-off, 503) unless a newer refresh's keys are
   * already in use, which it gets instead (that failure is no longer true). A failure older than
   * one already recorded is still a 503 for its request, but leaves the record (the newest error,
   * the failure count and the back-off) as the newer one made it.
   */
  #fail(cause: unknown, order: number): Snapshot {
    const current = this.#snapshot;
    if (order < this.#applied && current !== undefined) return current;
    if (order > this.#reported) {
      this.#reported = order;
      this.#failures++;
      this.#lastFailure = describeKeyFailure(cause);
      const backoff = Math.min(2 ** (this.#failures - 1), Math.max(1, this.#options.cooldown));
      this.#retryFrom = Date.now();
      this.#retryAt = this.#retryFrom + backoff * 1000;
      this.#observe(Date.now());
    }
    throw new Rejection(
      'keys_unavailable',
      {
        problem: 'the key set could not be fetched',
        failures: this.#failures,
        ...this.#failureDetails(),
      },
      cause,
      Math.max(1, (this.#nextAttemptAt(Date.now()) - Date.now()) / 1000),
    );
  }

  /**
   * When a request refused for want of keys can expect a fetch: the back-off's end, and for a
   * fresh set (refetched only for an unknown kid, once per cooldown) not before the cooldown's
   * end, or the set's turning stale (a background refresh) if that comes first.
   */
  #nextAttemptAt(now: number): number {
    if (!this.#fresh(now)) return this.#retryAt;
    const cooldownEnds = this.#lastFetchAt + this.#options.cooldown * 1000;
    return Math.max(this.#retryAt, Math.min(cooldownEnds, this.#freshUntil));
  }

  /** A refresh refused while backing off: 503, the last failure's cause, and when to retry. */
  #backingOff(now: number): Rejection {
    return new Rejection(
      'keys_unavailable',
      {
        problem: 'backing off after a failed fetch',
        failures: this.#failures,
        ...this.#failureDetails(),
      },
      undefined,
      (this.#retryAt - now) / 1000,
    );
  }

  /** The last failure's URL and root cause, for a rejection's details. */
  #failureDetails(): { url?: string; error?: string } {
    const failure = this.#lastFailure;
    if (failure === undefined) return {};
    return failure.url === undefined
      ? { error: failure.error }
      : { url: failure.url, error: failure.error };
  }

  /** Fetches and builds a snapshot, publishing the fetch on `resource-guard:keys:fetch`. */
  async #load(request?: () => void): Promise<Snapshot> {
    if (!(this.#label.fetched && keysFetchChannel.hasSubscribers)) return this.#build(request);
    const startTime = Date.now();
    const start = performance.now();
    const issuers = this.#label.issuers;
    try {
      const snapshot = await this.#build(request);
      publish(keysFetchChannel, () => ({
        issuers,
        url: snapshot.url,
        outcome: 'ok',
        keys: snapshot.keys.length,
        startTime,
        duration: performance.now() - start,
      }));
      return snapshot;
    } catch (error) {
      const failure = describeKeyFailure(error);
      publish(keysFetchChannel, () => ({
        issuers,
        url: failure.url,
        outcome: 'error',
        error: failure.error,
        ...(failure.status === undefined ? {} : { status: failure.status }),
        startTime,
        duration: performance.now() - start,
      }));
      throw error;
    }
  }

  async #build(request?: () => void): Promise<Snapshot> {
    const { url, document } = await this.#source(request);
    const previous = this.#snapshot?.byId;
    const keys: TrustedKey[] = [];
    const byId = new Map<string, TrustedKey>();
    const byKid = new Map<string, TrustedKey[]>();
    const unique = new Map<string, JWK>();
    const perKid = new Map<string, number>();
    for (const jwk of usableKeys(document, url)) {
      let id: string;
      try {
        id = canonicalJwk(jwk);
      } catch {
        continue; // a member nested past the stack's depth: this key is unusable, the others not
      }
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
          const modulus = jwk.kty === 'RSA' ? rsaModulus(jwk.n) : undefined;
          trusted = new TrustedKey(id, jwk.kid, createLocalJWKSet({ keys: [jwk] }), this, modulus);
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
    return { keys, byId, byKid, fetchedAt: Date.now(), url: displayUrl(url), selected: new Map() };
  }
}

/** A 10 ms timer of the calling request's own: request-scoped waits share no promise. */
/** A key set as {@link keySetStates} reports it. */
export interface KeySetState {
  /** The same frozen array its events carry: the set's identity. */
  readonly issuers: readonly string[];
  readonly state: KeyState;
  /** Usable keys in its last fetched set; `undefined` before one. */
  readonly keys: number | undefined;
}

/**
 * Every key set alive, held weakly (a verifier let go is not kept by this). Dead entries are
 * dropped whenever the registry has doubled since the last sweep, so it stays within twice the live
 * sets at O(1) amortised per set created. No `WeakRef` in the runtime: nothing is registered.
 */
const registry = new Set<WeakRef<RemoteKeySet>>();
let sweepAt = 64;

function register(set: RemoteKeySet): void {
  if (typeof WeakRef !== 'function') return;
  registry.add(new WeakRef(set));
  if (registry.size < sweepAt) return;
  for (const ref of registry) if (ref.deref() === undefined) registry.delete(ref);
  sweepAt = Math.max(64, registry.size * 2);
}

/**
 * The key sets alive now, each as it last published: what instrumentation started after the
 * verifiers (and their `warm()`) needs to know of them before their next change.
 */
export function keySetStates(): KeySetState[] {
  const states: KeySetState[] = [];
  for (const ref of registry) {
    const set = ref.deref();
    if (set === undefined) registry.delete(ref);
    else states.push(set.published);
  }
  return states;
}

function ownTimer(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 10));
}

/** `ECONNREFUSED fetching https://…/jwks`: a failure in one line. */
function summary(failure: KeyFailure): string {
  return failure.url === undefined ? failure.error : `${failure.error} fetching ${failure.url}`;
}
