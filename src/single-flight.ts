import { shortKey } from './token-key.ts';
import type { Awaitable } from './types.ts';

/**
 * In-flight sharing: while an asynchronous verification of a token is pending, callers with the
 * same token get the same promise instead of starting it again (concurrent first sightings of one
 * token share one verification). Synchronous results are returned as they are, never shared.
 * Off in request-scoped mode (Cloudflare Workers), where a promise must not cross requests.
 *
 * Found by the token's {@link shortKey}, the whole token compared (a Map keyed by the token itself
 * would hash all of it on every first sighting); a token whose short key is taken by another
 * pending one is verified on its own, unshared.
 */
export class SingleFlight<V> {
  readonly #pending = new Map<number, { readonly token: string; readonly result: Promise<V> }>();

  /** @param share `false` where a promise must not cross requests: every call does its work. */
  constructor(private readonly share = true) {}

  run(token: string, work: () => Awaitable<V>): Awaitable<V> {
    if (!this.share) return work();
    const key = shortKey(token);
    const pending = this.#pending.get(key);
    if (pending !== undefined && pending.token === token) return pending.result;
    const result = work();
    if (!(result instanceof Promise) || pending !== undefined) return result;
    const entry = { token, result };
    this.#pending.set(key, entry);
    const settle = () => {
      if (this.#pending.get(key) === entry) this.#pending.delete(key);
    };
    result.then(settle, settle);
    return result;
  }
}
