import { Rejection } from './errors.ts';
import type { AuthInfo } from './types.ts';

/** Tokens whose answer is remembered at most (oldest forgotten first). */
const MAX_MEMO_ENTRIES = 10_000;
/** `Retry-After` when the hook cannot answer. */
const RETRY_AFTER = 5;

/**
 * The `isRevoked` hook, asked for every request (cache hit or not) once the token is verified:
 * `true` refuses it as `revoked` (401). A hook that throws, rejects, answers anything but a
 * boolean, or takes longer than the timeout fails closed: `revocation_unavailable` (503). With a
 * memo, an answer is reused for that long per token (at most {@link MAX_MEMO_ENTRIES} tokens);
 * failures are never remembered.
 */
export class Revocation {
  readonly #isRevoked: (auth: AuthInfo) => unknown;
  readonly #memoMs: number;
  readonly #timeoutMs: number;
  readonly #memo = new Map<string, { readonly revoked: boolean; readonly until: number }>();

  constructor(isRevoked: (auth: AuthInfo) => unknown, memoSeconds: number, timeoutSeconds: number) {
    this.#isRevoked = isRevoked;
    this.#memoMs = memoSeconds * 1000;
    this.#timeoutMs = timeoutSeconds * 1000;
  }

  /** `undefined` when a remembered answer says "not revoked"; throws or rejects a Rejection. */
  check(auth: AuthInfo): Promise<void> | undefined {
    const token = auth.token;
    if (this.#memoMs > 0) {
      const known = this.#memo.get(token);
      if (known !== undefined && Date.now() < known.until) return this.#answer(known.revoked, auth);
      if (known !== undefined) this.#memo.delete(token);
    }
    let answer: unknown;
    try {
      answer = this.#isRevoked(auth);
    } catch (cause) {
      throw unavailable('the isRevoked hook threw', cause);
    }
    if (!(answer instanceof Promise)) return this.#settle(answer, auth);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(unavailable(`the isRevoked hook took longer than ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    return Promise.race([answer, timeout]).then(
      (value) => {
        clearTimeout(timer);
        return this.#settle(value, auth);
      },
      (cause: unknown) => {
        clearTimeout(timer);
        throw cause instanceof Rejection
          ? cause
          : unavailable('the isRevoked hook rejected', cause);
      },
    );
  }

  #settle(value: unknown, auth: AuthInfo): undefined {
    if (typeof value !== 'boolean') {
      throw unavailable('the isRevoked hook answered something other than true or false');
    }
    if (this.#memoMs > 0) {
      if (this.#memo.size >= MAX_MEMO_ENTRIES) {
        const oldest = this.#memo.keys().next();
        if (oldest.done !== true) this.#memo.delete(oldest.value);
      }
      // Revocation goes one way: a slow "not revoked" from before never replaces a "revoked".
      const known = this.#memo.get(auth.token);
      if (known?.revoked === true && !value) return this.#answer(true, auth);
      this.#memo.set(auth.token, { revoked: value, until: Date.now() + this.#memoMs });
    }
    return this.#answer(value, auth);
  }

  #answer(revoked: boolean, auth: AuthInfo): undefined {
    if (revoked) {
      throw new Rejection('revoked', {
        jti: auth.claims.jti ?? null,
        clientId: auth.clientId ?? null,
      });
    }
    return undefined;
  }
}

function unavailable(problem: string, cause?: unknown): Rejection {
  return new Rejection('revocation_unavailable', { problem }, cause, RETRY_AFTER);
}
