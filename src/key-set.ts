import { createLocalJWKSet, errors as joseErrors } from 'jose';
import type { JWK, JWTHeaderParameters } from 'jose';
import { Rejection } from './errors.ts';
import { fetchJson, KeySourceError } from './fetch-json.ts';
import type { VerifyKey } from './signature.ts';

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
}

/** Largest JWKS body accepted. Real sets are a few KiB. */
export const MAX_JWKS_BYTES = 256 * 1024;
/** Largest number of keys accepted in one set. */
export const MAX_JWKS_KEYS = 100;

/** One successfully fetched key set. */
interface Snapshot {
  readonly select: ReturnType<typeof createLocalJWKSet>;
  readonly kids: ReadonlySet<string>;
  readonly fetchedAt: number;
  /** Keys already selected, by `alg kid`, so a known key is found without a promise. */
  readonly selected: Map<string, VerifyKey>;
}

const ASYMMETRIC_CURVES: Readonly<Record<string, readonly string[]>> = {
  EC: ['P-256', 'P-384', 'P-521'],
  OKP: ['Ed25519'],
};

/**
 * Keeps only public signature keys of a supported type. Private keys, symmetric keys and keys for
 * encryption are ignored: a key set may never make an HMAC secret or a private key trusted.
 */
export function usableKeys(document: unknown, url: string): JWK[] {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (typeof document !== 'object' || document === null || !Array.isArray(keys)) {
    throw new KeySourceError('invalid_document', 'not a JSON Web Key Set', url);
  }
  if (keys.length > MAX_JWKS_KEYS) {
    throw new KeySourceError('invalid_document', `more than ${MAX_JWKS_KEYS} keys`, url);
  }
  return keys.filter((key): key is JWK => {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return false;
    const jwk = key as Record<string, unknown>;
    if ('d' in jwk || 'k' in jwk) return false;
    if (jwk.use !== undefined && jwk.use !== 'sig') return false;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return false;
    if (jwk.kty === 'RSA') return typeof jwk.n === 'string' && typeof jwk.e === 'string';
    const curves = typeof jwk.kty === 'string' ? ASYMMETRIC_CURVES[jwk.kty] : undefined;
    return curves !== undefined && curves.includes(jwk.crv as string);
  });
}

/**
 * The keys of one issuer: fetched once, cached, shared by every request. Concurrent misses share
 * one fetch; an unknown `kid` refetches at most once per cooldown; after `maxAge` the set is
 * refreshed in the background while the last good keys keep serving (up to `maxStale`); failed
 * refreshes back off. When no usable key can be had it rejects with `keys_unavailable` (503).
 */
export class RemoteKeySet {
  #snapshot: Snapshot | undefined;
  #inflight: Promise<Snapshot> | undefined;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #retryAt = 0;
  readonly #listeners: ((kids: ReadonlySet<string>) => void)[] = [];
  readonly #source: () => Promise<URL>;
  readonly #options: ResolvedKeySetOptions;

  /** @param source resolves the JWKS URL (fixed, or from discovery). */
  constructor(source: () => Promise<URL>, options: ResolvedKeySetOptions) {
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
    if (now >= this.#retryAt) this.#refresh().catch(() => undefined);
    return true;
  }

  /** Calls `listener` with the new set of kids each time a refresh replaces the keys. */
  onRefresh(listener: (kids: ReadonlySet<string>) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * The verification key for a token header; synchronous when the key was selected before and the
   * keys are fresh. Throws (or rejects with) a {@link Rejection}.
   */
  getKey(header: JWTHeaderParameters): VerifyKey | Promise<VerifyKey> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && header.kid !== undefined && this.vouches(Date.now())) {
      const known = snapshot.selected.get(`${header.alg} ${header.kid}`);
      if (known !== undefined) return known;
    }
    return this.#selectKey(header);
  }

  async #selectKey(header: JWTHeaderParameters): Promise<VerifyKey> {
    let snapshot = await this.#usable();
    const { kid } = header;
    if (kid !== undefined && !snapshot.kids.has(kid)) {
      snapshot = await this.#refreshForUnknownKid(snapshot);
      if (!snapshot.kids.has(kid)) throw new Rejection('unknown_kid', { kid });
    }
    try {
      const key = await snapshot.select(header);
      if (kid !== undefined) snapshot.selected.set(`${header.alg} ${kid}`, key);
      return key;
    } catch (cause) {
      const details =
        cause instanceof joseErrors.JWKSMultipleMatchingKeys
          ? { kid, alg: header.alg, problem: 'several keys fit and the token names no kid' }
          : { kid, alg: header.alg, problem: 'no key of this kid fits the algorithm' };
      throw new Rejection('key_mismatch', details, cause);
    }
  }

  async #usable(): Promise<Snapshot> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && this.vouches(Date.now())) return snapshot;
    return this.#refresh();
  }

  async #refreshForUnknownKid(snapshot: Snapshot): Promise<Snapshot> {
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

  #refresh(): Promise<Snapshot> {
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
      (snapshot) => {
        this.#snapshot = snapshot;
        this.#failures = 0;
        this.#retryAt = 0;
        for (const listener of this.#listeners) {
          try {
            listener(snapshot.kids);
          } catch {
            // A listener must not turn a good refresh into a failure.
          }
        }
        return snapshot;
      },
      (cause: unknown) => {
        this.#failures++;
        const backoff = Math.min(2 ** (this.#failures - 1), Math.max(1, this.#options.cooldown));
        this.#retryAt = Date.now() + backoff * 1000;
        throw new Rejection(
          'keys_unavailable',
          { problem: 'the key set could not be fetched', failures: this.#failures },
          cause,
          backoff,
        );
      },
    );
    this.#inflight = inflight;
    const clear = () => {
      if (this.#inflight === inflight) this.#inflight = undefined;
    };
    inflight.then(clear, clear);
    return inflight;
  }

  async #load(): Promise<Snapshot> {
    const url = await this.#source();
    const document = await fetchJson(url, {
      timeout: this.#options.timeout,
      maxBytes: MAX_JWKS_BYTES,
      fetch: this.#options.fetch,
    });
    const keys = usableKeys(document, url.href);
    if (keys.length === 0) {
      // An empty set would make every token unknown: treat it as a failed fetch and keep the last
      // good keys (stale serving, back-off) instead.
      throw new KeySourceError('invalid_document', 'no usable signing key in the set', url.href);
    }
    const kids = new Set<string>();
    for (const key of keys) if (key.kid !== undefined) kids.add(key.kid);
    return {
      select: createLocalJWKSet({ keys }),
      kids,
      fetchedAt: Date.now(),
      selected: new Map(),
    };
  }
}
