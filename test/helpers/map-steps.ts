/**
 * Runs `run`, counting the Map iterator steps it takes: the entries a store walks (the DPoP memory
 * replay store's sweep), so a test can hold its work per call to a bound.
 */
export function counted<T>(run: () => T): { result: T; steps: number } {
  const proto = Map.prototype as unknown as Record<symbol, () => Iterator<unknown>>;
  const original = proto[Symbol.iterator] as () => Iterator<unknown>;
  let steps = 0;
  proto[Symbol.iterator] = function (this: Map<unknown, unknown>) {
    const iterator = original.call(this);
    return {
      next: () => {
        steps++;
        return iterator.next();
      },
      [Symbol.iterator]() {
        return this;
      },
    } as Iterator<unknown>;
  };
  try {
    return { result: run(), steps };
  } finally {
    proto[Symbol.iterator] = original;
  }
}
