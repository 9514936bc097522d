import type { Awaitable } from './types.ts';

/**
 * In-flight sharing: while an asynchronous piece of work for a key is pending, callers with the
 * same key get the same promise instead of starting it again (concurrent first sightings of one
 * token share one verification). Synchronous results are returned as they are, never shared.
 */
export class SingleFlight<V> {
  readonly #pending = new Map<string, Promise<V>>();

  run(key: string, work: () => Awaitable<V>): Awaitable<V> {
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
