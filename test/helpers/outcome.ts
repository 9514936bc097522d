import { vi } from 'vitest';
import { AuthError } from 'resource-guard';

/** `'ok'`, or `'<status> <reason>'` of the AuthError; anything else is rethrown. */
export async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (error instanceof AuthError) return `${error.status} ${error.reason}`;
    throw error;
  }
}

/** Fakes `Date` only (real timers keep running, so servers still answer); `advance` in seconds. */
export function clock(now = Date.now()) {
  vi.useFakeTimers({ toFake: ['Date'], now });
  return { advance: (seconds: number) => vi.setSystemTime(Date.now() + seconds * 1000) };
}
