import type { Attempt, Guard } from './types.ts';

/**
 * Each guard's synchronous-when-it-can check, kept off the app-facing `Guard` type: the verifier
 * registers it here, the adapter kit (`resource-guard/kit`) reads it. One compiled copy of the
 * core, so every adapter sees the same registry.
 */
const attempts = new WeakMap<Guard, Attempt>();

export function registerAttempt(guard: Guard, attempt: Attempt): void {
  attempts.set(guard, attempt);
}

export function attemptOf(guard: Guard): Attempt {
  const attempt = attempts.get(guard);
  if (attempt === undefined) throw new TypeError('resource-guard: not a guard of this verifier');
  return attempt;
}
