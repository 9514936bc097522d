/**
 * The `dpop` option of `createVerifier` (RFC 9449): its documented shape, and what it is once
 * checked. The rules themselves are in the one table, `option-rules.ts`.
 */
import type { Algorithm } from './option-rules.ts';
import { configError } from './option-checks.ts';
import { processReplayStore } from './replay-store.ts';
import type { ReplayStore } from './replay-store.ts';

/** Where DPoP is accepted: not at all, alongside Bearer, or instead of Bearer. */
export type DpopMode = 'disabled' | 'allowed' | 'required';

/** Stateless server nonces (RFC 9449 §9): every instance sharing `secret` accepts the others'. */
export interface DpopNonceOptions {
  /** The secret every instance of the API shares: a string or bytes, at least 32. Required. */
  readonly secret: string | Uint8Array;
  /** Seconds per nonce; a nonce is accepted in its step and the next. Default: 300. */
  readonly step?: number;
}

/**
 * DPoP (RFC 9449): `Authorization: DPoP <token>` with a `DPoP` proof header, the token bound to the
 * proof's key by `cnf.jkt`. Give `origin` (the API's public origin, as clients call it) or,
 * knowingly, `trustHost`.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 *
 * const verifier = createVerifier({
 *   issuer: 'https://tenant.logto.app/oidc',
 *   audience: 'https://shopping.api',
 *   dpop: { mode: 'required', origin: 'https://api.shop.example' },
 * });
 * ```
 */
export interface DpopOptions {
  /**
   * `'allowed'`: Bearer and DPoP; `'required'`: DPoP only; `'disabled'`: Bearer only (routes may
   * still turn DPoP on with their own `dpop` requirement). Default: `'allowed'`.
   */
  readonly mode?: DpopMode;
  /**
   * The API's public origin(s), `https://api.example.com`: a proof's `htu` must be one of them
   * followed by the request's path. Never taken from the request's `Host` header (a client could
   * set it) unless `trustHost` says so. Required unless `trustHost` is `true`.
   */
  readonly origin?: string | readonly string[];
  /**
   * `true`: also accept `htu` whose host is the request's `Host` header (http or https). The host
   * part of `htu` is then as good as unchecked: a proof made for another server is accepted if it
   * names a path this API serves. For development. Default: `false`.
   */
  readonly trustHost?: boolean;
  /** Proof algorithms accepted (asymmetric only). Default: every one resource-guard supports. */
  readonly algorithms?: readonly Algorithm[];
  /**
   * Seconds a proof is accepted after its `iat` (plus the verifier's `clockTolerance` either
   * side); a proof's `jti` is remembered for that window. Default: 60.
   */
  readonly maxAge?: number;
  /**
   * Where used proofs are remembered, so that each is accepted once. Default: in memory, one per
   * verifier (100,000 proofs at most): right for ONE instance. An API served by several
   * instances needs a shared store: `redisReplayStore(client)` from `resource-guard/redis`.
   */
  readonly replay?: ReplayStore;
  /** Longest wait for the replay store, in seconds; past it the request gets a 503. Default: 1. */
  readonly replayTimeout?: number;
  /** Server nonces (`use_dpop_nonce`, `DPoP-Nonce`). Default: off. */
  readonly nonce?: DpopNonceOptions;
  /** Longest proof accepted, in characters. Default: 8192. */
  readonly maxProofLength?: number;
}

/** The `dpop` option once checked. */
export interface ResolvedDpopOptions {
  readonly mode: DpopMode;
  /** Public origins as `URL.origin` spells them. */
  readonly origins: ReadonlySet<string>;
  readonly trustHost: boolean;
  readonly algorithms: ReadonlySet<string>;
  /** Seconds a proof is accepted after its `iat`. */
  readonly maxAge: number;
  readonly replay: ReplayStore;
  /** Seconds. */
  readonly replayTimeout: number;
  readonly nonce: { readonly secret: Uint8Array; readonly step: number } | undefined;
  readonly maxProofLength: number;
}

/** What the rule table checked, turned into the resolved option (a fresh in-memory store). */
export function resolveDpop(checked: {
  readonly mode: DpopMode;
  readonly origin: readonly string[] | undefined;
  readonly trustHost: boolean;
  readonly algorithms: readonly string[];
  readonly maxAge: number;
  readonly replay: { insertIfAbsent(key: string, ttlMs: number): unknown } | undefined;
  readonly replayTimeout: number;
  readonly nonce: { readonly secret: Uint8Array; readonly step: number } | undefined;
  readonly maxProofLength: number;
}): ResolvedDpopOptions {
  if (checked.origin === undefined && !checked.trustHost) {
    configError(
      'dpop.origin',
      "is required: the API's public origin (https://api.example.com), which a proof's htu names",
    );
  }
  return Object.freeze({
    mode: checked.mode,
    origins: new Set((checked.origin ?? []).map((origin) => new URL(origin).origin)),
    trustHost: checked.trustHost,
    algorithms: new Set(checked.algorithms),
    maxAge: checked.maxAge,
    replay: (checked.replay as ReplayStore | undefined) ?? processReplayStore(),
    replayTimeout: checked.replayTimeout,
    nonce: checked.nonce,
    maxProofLength: checked.maxProofLength,
  });
}
