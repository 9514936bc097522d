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
  /** Answers remembered in `[from, until)`, wall-clock ms from when the hook was asked. */
  readonly #memo = new Map<
    string,
    { readonly revoked: boolean; readonly from: number; readonly until: number }
  >();
  /**
   * How many "revoked" answers the hook has given. A "not revoked" is remembered only when none
   * came while it was being asked: an answer from before a revocation is stale, and remembering
   * it would outlive the memo's own record of the revocation (evicted when full, or expired).
   */
  #revocations = 0;
  /** How many "revoked" answers the memo has dropped (evicted, or expired and swept). */
  #forgotten = 0;

  constructor(isRevoked: (auth: AuthInfo) => unknown, memoSeconds: number, timeoutSeconds: number) {
    this.#isRevoked = isRevoked;
    this.#memoMs = memoSeconds * 1000;
    this.#timeoutMs = timeoutSeconds * 1000;
  }

  /**
   * `undefined` when a remembered answer says "not revoked"; throws or rejects a Rejection.
   * `again`: the second ask of {@link check} (never a third).
   */
  check(auth: AuthInfo, again = false): Promise<void> | undefined {
    const token = auth.token;
    if (this.#memoMs > 0) {
      const known = this.#memo.get(token);
      const now = Date.now();
      // From when it was asked: a clock stepped back before then ends the memo, never stretches it.
      if (known !== undefined && now < known.until && now >= known.from) {
        return this.#answer(known.revoked, auth);
      }
      if (known !== undefined) this.#forget(token);
    }
    const asked = this.#revocations;
    const forgotten = this.#forgotten;
    const askedAt = this.#memoMs > 0 ? Date.now() : 0;
    let answer: unknown;
    try {
      answer = this.#isRevoked(auth);
    } catch (cause) {
      throw unavailable('the isRevoked hook threw', cause);
    }
    if (!(answer instanceof Promise)) return this.#settle(answer, auth, asked, askedAt);
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
        // A "no" asked before the memo dropped a "revoked" (maybe this token's), with nothing
        // remembered for it now: asked again, once, as a request starting now would be.
        if (value === false && forgotten !== this.#forgotten && !again && !this.#memo.has(token)) {
          return this.check(auth, true);
        }
        return this.#settle(value, auth, asked, askedAt);
      },
      (cause: unknown) => {
        clearTimeout(timer);
        throw cause instanceof Rejection
          ? cause
          : unavailable('the isRevoked hook rejected', cause);
      },
    );
  }

  /**
   * `asked`: {@link Revocation.#revocations} when the hook was asked, at `askedAt`: an answer is
   * remembered for `revocationMemo` from when it was asked, not from when it came.
   */
  #settle(value: unknown, auth: AuthInfo, asked: number, askedAt: number): undefined {
    if (typeof value !== 'boolean') {
      throw unavailable('the isRevoked hook answered something other than true or false');
    }
    if (value) this.#revocations++;
    if (this.#memoMs > 0) {
      // Revocation goes one way: a slow "not revoked" from before never replaces a "revoked",
      // and is not remembered at all once any token was revoked while it was being asked.
      const known = this.#memo.get(auth.token);
      if (known?.revoked === true && !value) return this.#answer(true, auth);
      if (value || asked === this.#revocations) this.#remember(auth.token, value, askedAt);
    }
    return this.#answer(value, auth);
  }

  /** Oldest forgotten first, only to make room for a token not remembered yet. */
  #remember(token: string, revoked: boolean, from: number): void {
    if (!this.#memo.delete(token) && this.#memo.size >= MAX_MEMO_ENTRIES) {
      const oldest = this.#memo.keys().next();
      if (oldest.done !== true) this.#forget(oldest.value);
    }
    this.#memo.set(token, { revoked, from, until: from + this.#memoMs });
  }

  #forget(token: string): void {
    if (this.#memo.get(token)?.revoked === true) this.#forgotten++;
    this.#memo.delete(token);
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
