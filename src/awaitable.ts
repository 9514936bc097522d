import type { Awaitable } from './types.ts';

/**
 * `f(value)`, at once when `value` is not a promise: the one place where a step that is
 * synchronous when it can be forks into the asynchronous path.
 */
export function chain<T, U>(value: Awaitable<T>, f: (resolved: T) => Awaitable<U>): Awaitable<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}
