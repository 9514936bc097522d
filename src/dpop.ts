/**
 * DPoP, the resource-server side of RFC 9449: the proof's checks (§4.3), its binding to the access
 * token (§6.1, `cnf.jkt`), server nonces (§9) and replay (§11.1). The verifier calls it for a
 * request whose `Authorization` scheme is `DPoP`; every decision about DPoP is made here.
 */
import type { JWK } from 'jose';
import { Rejection } from './errors.ts';
import {
  checkProofHeader,
  COMPACT_JWS,
  importProofKey,
  proofKeyThumbprint,
  proofRejection,
} from './dpop-jws.ts';
import type { ProofHeader } from './dpop-jws.ts';
import {
  hostOf,
  MANY,
  normalizeHtu,
  originOf,
  pathOf,
  readOneHeader,
  targetOf,
} from './dpop-request.ts';
import { NonceIssuer } from './dpop-nonce.ts';
import { isCanonicalBase64url, jsonObject } from './jws-segment.ts';
import type { ResolvedDpopOptions } from './dpop-options.ts';
import type { ReplayStore } from './replay-store.ts';
import { nodeCrypto } from './node-crypto.ts';
import { extractDpopToken } from './request.ts';
import { verifySignature } from './signature.ts';
import type { AuthInfo, Awaitable, RequestLike, RequestTarget } from './types.ts';

export type { RequestTarget } from './types.ts';
export type { DpopMode } from './dpop-options.ts';

/** A request presenting `Authorization: DPoP <token>` and its proof, not checked yet. */
export interface DpopPresentation {
  readonly token: string;
  readonly proof: string;
  readonly target: RequestTarget;
  /** The host the request names (see `hostOf`), read only with `trustHost`. */
  readonly host: string | undefined;
  /** The request it came with: one object per HTTP request, in every framework. */
  readonly request: object;
}

/** Longest `jti` accepted (RFC 9449 asks for at least 96 bits of randomness; 64 characters is ample). */
const MAX_JTI = 256;
/** Proof keys remembered (imported once, thumbprinted once), oldest forgotten first. */
const MAX_KEYS = 1000;
/** A UTF-16 surrogate that is not half of a pair (`u`: a pair is one code point, not matched). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** Seconds of clock skew a proof's `iat` may have, whatever the token's `clockTolerance`. */
const MAX_PROOF_SKEW = 60;
/** `Retry-After` when the replay store cannot answer. */
const RETRY_AFTER = 5;

/**
 * Per request, per replay store: the proof it consumed there (its replay identity) and that
 * insert. Shared by every verifier: two verifiers on one store that guard one request share its
 * insert, as two guards of one verifier do.
 */
const CONSUMED = new WeakMap<
  object,
  Map<ReplayStore, { identity: string; inserted: Promise<void> }>
>();

/**
 * Per replay store: the latest time (wall clock, seconds) a verifier asked it to insert a proof.
 * A store may drop the entries expired by then on ANY call (an insert refused as a replay, one
 * that failed, another verifier's on the same store), so a proof is too old by that time as by the
 * clock: a clock stepped back cannot bring a proof whose entry is gone back into its window (RFC
 * 9449 §11.1).
 */
const ASKED_AT = new WeakMap<ReplayStore, number>();

/** The DPoP checks of one verifier. */
export class Dpop {
  readonly #options: ResolvedDpopOptions;
  readonly #clockTolerance: number;
  readonly #maxTokenLength: number;
  readonly #nonces: NonceIssuer | undefined;
  /** Whether a pending computation may be shared between requests (not on Workers). */
  readonly #shared: boolean;
  /** Headers a proof has been verified under: only a signature that verified makes one known. */
  readonly #headers = new Map<string, ProofHeader>();
  /** Imports under way, shared by concurrent proofs where promises may cross requests. */
  readonly #pending = new Map<string, Promise<ProofHeader>>();
  /** Per request: a newer server nonce than its proof's, to send with a success (RFC 9449 §9). */
  readonly #newerNonce = new WeakMap<object, string>();
  /** `algs="..."` of the challenge. */
  readonly algs: string;

  constructor(
    options: ResolvedDpopOptions,
    clockTolerance: number,
    maxTokenLength: number,
    shared = true,
  ) {
    this.#options = options;
    // The token's leeway for the issuer's clock, but never more than a minute for a proof: a
    // pre-generated proof must not stay usable for long (RFC 9449 §11.1).
    this.#clockTolerance = Math.min(clockTolerance, MAX_PROOF_SKEW);
    this.#maxTokenLength = maxTokenLength;
    this.#shared = shared;
    this.#nonces = options.nonce && new NonceIssuer(options.nonce, shared);
    this.algs = [...options.algorithms].join(' ');
  }

  /**
   * The DPoP credentials of a request: `undefined` when its `Authorization` scheme is not `DPoP`.
   * Throws a {@link Rejection} for a malformed field, a missing, repeated or oversized proof.
   */
  read(request: RequestLike, target: RequestTarget | undefined): DpopPresentation | undefined {
    const token = extractDpopToken(request, this.#maxTokenLength);
    if (token === undefined) return undefined;
    const proof = readOneHeader(request, 'dpop');
    if (proof === MANY) throw new Rejection('dpop_multiple_proofs');
    if (proof === undefined) throw new Rejection('dpop_proof_missing');
    if (proof.length > this.#options.maxProofLength) {
      throw new Rejection('dpop_proof_invalid', {
        problem: 'too large',
        length: proof.length,
        maxLength: this.#options.maxProofLength,
      });
    }
    const host = this.#options.trustHost ? hostOf(request) : undefined;
    return { token, proof, target: target ?? targetOf(request), host, request };
  }

  /**
   * Checks the proof against the request and the verified token, then records it as used: the
   * last step, so that only a proof that passed everything else consumes its `jti`. Rejects with
   * a {@link Rejection}.
   */
  async check(presented: DpopPresentation, auth: AuthInfo, admitted: () => unknown): Promise<void> {
    const jkt = boundKey(auth.claims.cnf);
    const { proof } = presented;
    const match = COMPACT_JWS.exec(proof);
    if (match === null) throw proofRejection('not a compact JWS');
    if (!isCanonicalBase64url(match[3] as string)) {
      // One signature, one spelling (unused trailing bits zero), as for access tokens.
      throw proofRejection('non-canonical signature encoding');
    }
    const payload = jsonObject(match[2] as string);
    if (payload === undefined) throw proofRejection('the payload is not a base64url JSON object');
    // Header checks, key import and thumbprint: once per distinct header (one per client key)
    // that a proof has been verified under; before that, once per proof.
    const segment = match[1] as string;
    const known = this.#headers.get(segment);
    const header = known ?? (await this.#headerOf(segment, jkt));
    // The binding first: a proof by any other key (a thief's) costs no signature check.
    if (header.jkt !== jkt) {
      throw new Rejection('dpop_key_mismatch', { expected: jkt, actual: header.jkt });
    }
    const htu = this.#checkClaims(payload, presented);
    if (typeof payload.ath !== 'string') throw proofRejection('no ath claim');
    if (payload.ath !== (await sha256(auth.token))) throw new Rejection('dpop_ath_mismatch');
    if (!(await verifySignature(proof, header.key, header.alg, header.modulus))) {
      throw new Rejection('dpop_proof_signature', { alg: header.alg });
    }
    // Only now: a forged proof with the client's public jwk (and any padding in its header) is
    // never remembered, so it neither holds memory nor pushes the client's own header out.
    if (known === undefined) this.#remember(segment, header);
    let newer: string | undefined;
    if (this.#nonces !== undefined) {
      const now = Date.now(); // one reading for both: a step may begin between two
      const current = await this.#nonces.current(now);
      if (!(await this.#nonces.isValid(payload.nonce, now))) {
        throw new Rejection(
          'dpop_nonce_required',
          { problem: payload.nonce === undefined ? 'no nonce' : 'unknown or expired nonce' },
          undefined,
          undefined,
          current,
        );
      }
      // The previous step's nonce, still good but not for long: the answer carries the current one,
      // so the client signs its next proof with it instead of meeting a use_dpop_nonce.
      if (payload.nonce !== current) newer = current;
    }
    // The route's own rules (scopes, revocation, ...) before the replay insert, the last step: a
    // token that may not use this route cannot fill the replay store either.
    await admitted();
    await this.#consume(
      presented.request,
      `${header.jkt} ${htu} ${payload.jti as string}`,
      payload.iat as number,
    );
    this.#judgeOwnBounds(payload); // its exp may have passed while the store answered
    // The nonce judged before the awaits above may have expired during them.
    if (this.#nonces !== undefined && !this.#nonces.stillValid(payload.nonce)) {
      throw new Rejection(
        'dpop_nonce_required',
        { problem: 'the nonce expired while the request was being checked' },
        undefined,
        undefined,
        await this.#nonces.current(),
      );
    }
    // Only for a request that passed: what its successful answer carries.
    if (newer !== undefined) this.#newerNonce.set(presented.request, newer);
  }

  /**
   * The server nonce to send with a successful answer to `request` (a `DPoP-Nonce` header): the
   * current one when its proof carried the previous step's; else `undefined`.
   */
  newerNonce(request: object): string | undefined {
    return this.#newerNonce.get(request);
  }

  /**
   * The replay insert, once per request: a second guard on the same request (a router-level guard
   * and a route's own, say) that checks the same proof again shares the first one's insert instead
   * of finding the proof used. Every other check still runs for it. Another request, even with
   * the same proof, is another object: its insert finds the proof used.
   */
  #consume(request: object, identity: string, iat: number): Promise<void> {
    const store = this.#options.replay;
    let byStore = CONSUMED.get(request);
    const earlier = byStore?.get(store);
    if (earlier !== undefined && earlier.identity === identity) return earlier.inserted;
    const inserted = this.#insert(identity, iat);
    if (byStore === undefined) CONSUMED.set(request, (byStore = new Map()));
    byStore.set(store, { identity, inserted });
    return inserted;
  }

  /** `htm`, `htu`, `iat`, `jti`: returns the normalised `htu`. */
  #checkClaims(payload: Record<string, unknown>, presented: DpopPresentation): string {
    const { jti, htm, htu, iat } = payload;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI) {
      throw proofRejection('no jti claim, or not a string of 1 to 256 characters');
    }
    // Its replay key hashes its UTF-8, where every lone surrogate (JSON's "\ud800") is U+FFFD:
    // one jti, one spelling, or "\ud800", "\udc00" and "\ufffd" would be one key.
    if (LONE_SURROGATE.test(jti)) throw proofRejection('a jti that is not well-formed Unicode');
    if (typeof htm !== 'string') throw proofRejection('no htm claim');
    if (typeof htu !== 'string') throw proofRejection('no htu claim');
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw proofRejection('no iat claim');
    for (const claim of ['exp', 'nbf'] as const) {
      const value = payload[claim];
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
        throw proofRejection(`an ${claim} claim that is not a NumericDate`);
      }
    }
    const { method } = presented.target;
    if (htm !== method) {
      throw new Rejection('dpop_htm_mismatch', { expected: method ?? null, actual: htm });
    }
    const claimed = normalizeHtu(htu);
    const expected = this.#expectedHtu(presented, claimed);
    if (claimed === undefined || claimed !== expected) {
      // Both without query, fragment or credentials: nothing a client put there reaches a log.
      throw new Rejection('dpop_htu_mismatch', {
        expected: expected ?? null,
        actual: claimed ?? 'not an absolute http(s) URL without credentials',
      });
    }
    this.#judgeWindow(iat, false);
    this.#judgeOwnBounds(payload);
    return claimed;
  }

  /**
   * A proof's own `exp` and `nbf`, when it has them (RFC 9449 defines neither, but a JWT that
   * carries them means them, RFC 7519 §4.1.4-4.1.5): judged as an access token's are, an end at
   * the exact time and a start at the whole second, `clockTolerance` either side. Judged at the
   * claims check and again once the replay store has answered.
   */
  #judgeOwnBounds(payload: Record<string, unknown>): void {
    const { exp, nbf } = payload as { exp?: number; nbf?: number };
    if (exp === undefined && nbf === undefined) return;
    const now = Date.now() / 1000;
    const tolerance = this.#clockTolerance;
    if (exp !== undefined && exp <= now - tolerance) {
      throw new Rejection('dpop_proof_stale', { problem: 'past its exp', exp, now });
    }
    if (nbf !== undefined && nbf > Math.floor(now) + tolerance) {
      throw new Rejection('dpop_proof_stale', { problem: 'before its nbf', nbf, now });
    }
  }

  /**
   * The proof's window: `iat` no later than now and no earlier than `maxAge` before the latest of
   * now and the store's latest call (a clock stepped back must not reopen a window an instance
   * sharing the store has closed), `clockTolerance` either side. Judged at the claims check and
   * again once the replay store has answered (`answered`).
   */
  #judgeWindow(iat: number, answered: boolean): void {
    const now = Date.now() / 1000;
    const tolerance = this.#clockTolerance;
    if (iat > now + tolerance) {
      throw new Rejection('dpop_proof_stale', { problem: 'iat in the future', iat, now });
    }
    const accepted = ASKED_AT.get(this.#options.replay) ?? -Infinity;
    if (iat < Math.max(now, accepted) - this.#options.maxAge - tolerance) {
      throw new Rejection('dpop_proof_stale', {
        problem: answered
          ? 'too old by the time the replay store answered'
          : accepted > now
            ? 'too old: the replay store was asked at a later time (the clock stepped back)'
            : 'too old',
        iat,
        now,
        maxAge: this.#options.maxAge,
      });
    }
  }

  /** The request's URL without query: a configured origin, or (`trustHost`) the Host header. */
  #expectedHtu(presented: DpopPresentation, claimed: string | undefined): string | undefined {
    const path = pathOf(presented.target.url);
    if (path === undefined) return undefined;
    if (claimed !== undefined) {
      const origin = new URL(claimed).origin;
      if (this.#options.origins.has(origin)) return `${origin}${path}`;
      if (this.#options.trustHost && presented.host !== undefined) {
        const fromHost = originOf(`${new URL(claimed).protocol}//${presented.host}`);
        if (fromHost !== undefined) return `${fromHost}${path}`;
      }
    }
    const [first] = this.#options.origins;
    return first === undefined ? undefined : `${first}${path}`;
  }

  /**
   * A protected header decoded and checked, its key imported and thumbprinted. The caller
   * remembers it (per distinct header segment: a client sends the same one with every proof, at
   * most {@link MAX_KEYS}, oldest forgotten first) once a proof's signature verified under it. A
   * pending import is shared between concurrent proofs only where promises may cross requests.
   */
  async #headerOf(segment: string, jkt: string): Promise<ProofHeader> {
    const pending = this.#pending.get(segment);
    if (pending !== undefined) return pending;
    const header = jsonObject(segment);
    if (header === undefined) throw proofRejection('the header is not a base64url JSON object');
    const alg = checkProofHeader(header, this.#options.algorithms);
    // A key the token is not bound to is refused before it is imported, and never remembered.
    const thumbprint = await proofKeyThumbprint(header.jwk as JWK);
    if (thumbprint !== jkt) {
      throw new Rejection('dpop_key_mismatch', { expected: jkt, actual: thumbprint });
    }
    // Another proof under this header may have started its import while this one thumbprinted.
    const started = this.#pending.get(segment);
    if (started !== undefined) return started;
    const entry = importProofKey(header.jwk as JWK, alg);
    if (this.#shared) {
      this.#pending.set(segment, entry);
      const settled = () => {
        if (this.#pending.get(segment) === entry) this.#pending.delete(segment);
      };
      entry.then(settled, settled);
    }
    return entry;
  }

  #remember(segment: string, entry: ProofHeader): void {
    if (!this.#headers.has(segment) && this.#headers.size >= MAX_KEYS) {
      const oldest = this.#headers.keys().next();
      if (oldest.done !== true) this.#headers.delete(oldest.value);
    }
    this.#headers.set(segment, entry);
  }

  /**
   * Inserts the proof's identifier, once, within the replay window; 503 when the store fails. The
   * window is checked again once the store has answered: the entry of a first use lasts from
   * its insert to past the end of the window, so an insert that is still inside the window when
   * its answer comes back (after the route's rules and the store's latency) finds it.
   */
  async #insert(identity: string, iat: number): Promise<void> {
    const key = await sha256(identity);
    // The whole window a proof's iat may be accepted in, both ends included, the clockTolerance
    // once more for the clocks of the instances sharing the store (each judges the window by its
    // own: one behind the one that accepted first sees the window end later), and a second more.
    const ttlMs = Math.ceil((this.#options.maxAge + 3 * this.#clockTolerance + 1) * 1000);
    const store = this.#options.replay;
    // Before the call: whatever it answers, the store may have dropped what expired by now.
    const askedAt = Date.now() / 1000;
    if (!((ASKED_AT.get(store) ?? -Infinity) >= askedAt)) ASKED_AT.set(store, askedAt);
    let fresh: unknown;
    try {
      fresh = store.insertIfAbsent(key, ttlMs);
      if (fresh instanceof Promise) fresh = await this.#bounded(fresh);
    } catch (cause) {
      throw new Rejection('dpop_replay_unavailable', undefined, cause, RETRY_AFTER);
    }
    if (fresh === false) throw new Rejection('dpop_replayed');
    if (fresh === true) {
      // Judged again now the store has answered: a clock stepped back while the route's rules or
      // the store ran puts the iat in the future, as a verification started now finds it (its
      // entry, timed from this clock, would expire while the proof's window is still open); and
      // an insert that landed after a first use's entry expired (a slow store, slow route rules
      // between the claims check and the insert) is no first use (RFC 9449 §11.1).
      this.#judgeWindow(iat, true);
    } else {
      throw new Rejection(
        'dpop_replay_unavailable',
        { problem: 'the replay store answered something other than true or false' },
        undefined,
        RETRY_AFTER,
      );
    }
  }

  /** The store's answer, or a rejection once `replayTimeout` has passed. */
  #bounded(answer: Promise<unknown>): Promise<unknown> {
    const timeoutMs = this.#options.replayTimeout * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the replay store took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
  }
}

/**
 * The `jkt` a token is bound to (RFC 9449 §6.1). A token without one is not DPoP-bound; one with
 * other confirmation members (an mTLS `x5t#S256`) is bound in a way not checked here: refused.
 */
function boundKey(cnf: unknown): string {
  if (cnf === undefined) throw new Rejection('dpop_unbound_token');
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) {
    throw new Rejection('cnf_unsupported', { problem: 'cnf is not an object' });
  }
  const members = Object.keys(cnf);
  const others = members.filter((name) => name !== 'jkt');
  if (others.length > 0) throw new Rejection('cnf_unsupported', { members: others });
  const { jkt } = cnf as { jkt?: unknown };
  if (typeof jkt !== 'string' || jkt === '') throw new Rejection('dpop_unbound_token');
  return jkt;
}

/**
 * For a token presented with the `Bearer` scheme (or from a cookie, or `verify()`): a token bound
 * to a key (any `cnf`) must come with proof of that key, which a Bearer request cannot carry.
 */
export function refuseBoundToken(cnf: unknown): void {
  if (cnf === undefined) return;
  const jkt = typeof cnf === 'object' && cnf !== null && (cnf as { jkt?: unknown }).jkt;
  if (typeof jkt === 'string') throw new Rejection('dpop_bound_token');
  throw new Rejection('cnf_unsupported', { problem: 'a Bearer request cannot prove possession' });
}

/** base64url(SHA-256(text)): node's hash where there is one (synchronous, fast), else WebCrypto. */
function sha256(text: string): Awaitable<string> {
  if (nodeCrypto !== undefined) {
    return nodeCrypto.createHash('sha256').update(text).digest('base64url');
  }
  return crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)).then((digest) => {
    let binary = '';
    for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  });
}
