import type { Attempt, Guard } from './types.ts';

/**
 * Each guard's synchronous-when-it-can check, kept off the app-facing `Guard` type: the verifier
 * registers it here, the adapter kit (`resource-guard/kit`) reads it. One compiled copy of the
 * core, so every adapter sees the same registry.
 */
const attempts = new WeakMap<Guard<undefined>, Attempt>();
/** Guards that read the request's method and URL (DPoP's `htm` and `htu`). */
const targeted = new WeakSet<Guard<undefined>>();

export function registerAttempt(
  guard: Guard<undefined>,
  attempt: Attempt,
  usesTarget = false,
): void {
  attempts.set(guard, attempt);
  if (usesTarget) targeted.add(guard);
}

/** Whether the guard wants the request's method and URL (its route accepts DPoP). */
export function usesTarget(guard: Guard<undefined>): boolean {
  return targeted.has(guard);
}

export function attemptOf(guard: Guard<undefined>): Attempt {
  const attempt = attempts.get(guard);
  if (attempt === undefined) throw new TypeError('resource-guard: not a guard of this verifier');
  return attempt;
}
