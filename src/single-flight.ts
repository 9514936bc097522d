import type { Awaitable } from './types.ts';

/**
 * In-flight sharing: while an asynchronous piece of work for a key is pending, callers with the
 * same key get the same promise instead of starting it again (concurrent first sightings of one
 * token share one verification). Synchronous results are returned as they are, never shared.
 * Off in request-scoped mode (Cloudflare Workers), where a promise must not cross requests.
 */
export class SingleFlight<V> {
  readonly #pending = new Map<string, Promise<V>>();

  /** @param share `false` where a promise must not cross requests: every call does its work. */
  constructor(private readonly share = true) {}

  run(key: string, work: () => Awaitable<V>): Awaitable<V> {
    if (!this.share) return work();
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const result = work();
    if (!(result instanceof Promise)) return result;
    this.#pending.set(key, result);
    const settle = () => {
      if (this.#pending.get(key) === result) this.#pending.delete(key);
    };
    result.then(settle, settle);
    return result;
  }
}
