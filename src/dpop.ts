/**
 * DPoP, the resource-server side of RFC 9449: the proof's checks (§4.3), its binding to the access
 * token (§6.1, `cnf.jkt`), server nonces (§9) and replay (§11.1). The verifier calls it for a
 * request whose `Authorization` scheme is `DPoP`; every decision about DPoP is made here.
 */
import { calculateJwkThumbprint, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { Rejection } from './errors.ts';
import { NonceIssuer } from './dpop-nonce.ts';
import type { ResolvedDpopOptions } from './dpop-options.ts';
import { nodeCrypto } from './node-crypto.ts';
import { extractDpopToken } from './request.ts';
import { verifySignature } from './signature.ts';
import type {
  AuthInfo,
  Awaitable,
  HeadersGetter,
  HeaderValue,
  RequestLike,
  RequestTarget,
} from './types.ts';

export type { RequestTarget } from './types.ts';
export type { DpopMode } from './dpop-options.ts';

/** A request presenting `Authorization: DPoP <token>` and its proof, not checked yet. */
export interface DpopPresentation {
  readonly token: string;
  readonly proof: string;
  readonly target: RequestTarget;
  /** The `Host` header, read only with `trustHost`. */
  readonly host: string | undefined;
}

/** Members of a private JWK (RFC 7518 §6): a proof's `jwk` must carry none (RFC 9449 §4.3). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
/** Longest `jti` accepted (RFC 9449 asks for at least 96 bits of randomness; 64 characters is ample). */
const MAX_JTI = 256;
/** Proof keys remembered (imported once, thumbprinted once), oldest forgotten first. */
const MAX_KEYS = 1000;
/** `Retry-After` when the replay store cannot answer. */
const RETRY_AFTER = 5;

const proofRejection = (problem: string, details?: Record<string, unknown>) =>
  new Rejection('dpop_proof_invalid', { problem, ...details });

/** The DPoP checks of one verifier. */
export class Dpop {
  readonly #options: ResolvedDpopOptions;
  readonly #clockTolerance: number;
  readonly #maxTokenLength: number;
  readonly #nonces: NonceIssuer | undefined;
  /** Whether a pending computation may be shared between requests (not on Workers). */
  readonly #shared: boolean;
  readonly #headers = new Map<string, ProofHeader | Promise<ProofHeader>>();
  /** `algs="..."` of the challenge. */
  readonly algs: string;

  constructor(
    options: ResolvedDpopOptions,
    clockTolerance: number,
    maxTokenLength: number,
    shared = true,
  ) {
    this.#options = options;
    this.#clockTolerance = clockTolerance;
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
    let host: string | undefined;
    if (this.#options.trustHost) {
      const value = readOneHeader(request, 'host');
      host = value === MANY ? undefined : value;
    }
    return { token, proof, target: target ?? targetOf(request), host };
  }

  /**
   * Checks the proof against the request and the verified token, then records it as used: the
   * last step, so that only a proof that passed everything else consumes its `jti`. Rejects with
   * a {@link Rejection}.
   */
  async check(presented: DpopPresentation, auth: AuthInfo): Promise<void> {
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
    // Header checks, key import and thumbprint: once per distinct header (one per client key).
    const known = this.#headers.get(match[1] as string);
    const header =
      known === undefined || known instanceof Promise
        ? await this.#headerOf(match[1] as string)
        : known;
    const htu = this.#checkClaims(payload, presented);
    if (typeof payload.ath !== 'string') throw proofRejection('no ath claim');
    if (payload.ath !== (await sha256(auth.token))) throw new Rejection('dpop_ath_mismatch');
    if (!(await verifySignature(proof, header.key, header.alg))) {
      throw new Rejection('dpop_proof_signature', { alg: header.alg });
    }
    if (header.jkt !== jkt) {
      throw new Rejection('dpop_key_mismatch', { expected: jkt, actual: header.jkt });
    }
    if (this.#nonces !== undefined && !(await this.#nonces.isValid(payload.nonce))) {
      const nonce = await this.#nonces.current();
      throw new Rejection(
        'dpop_nonce_required',
        { problem: payload.nonce === undefined ? 'no nonce' : 'unknown or expired nonce' },
        undefined,
        undefined,
        nonce,
      );
    }
    await this.#insert(`${header.jkt} ${htu} ${payload.jti as string}`);
  }

  /** `htm`, `htu`, `iat`, `jti`: returns the normalised `htu`. */
  #checkClaims(payload: Record<string, unknown>, presented: DpopPresentation): string {
    const { jti, htm, htu, iat } = payload;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI) {
      throw proofRejection('no jti claim, or not a string of 1 to 256 characters');
    }
    if (typeof htm !== 'string') throw proofRejection('no htm claim');
    if (typeof htu !== 'string') throw proofRejection('no htu claim');
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw proofRejection('no iat claim');
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
    const now = Date.now() / 1000;
    const tolerance = this.#clockTolerance;
    if (iat > now + tolerance) {
      throw new Rejection('dpop_proof_stale', { problem: 'iat in the future', iat, now });
    }
    if (iat < now - this.#options.maxAge - tolerance) {
      throw new Rejection('dpop_proof_stale', {
        problem: 'too old',
        iat,
        now,
        maxAge: this.#options.maxAge,
      });
    }
    return claimed;
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
   * A protected header decoded and checked, its key imported and thumbprinted: remembered per
   * distinct header segment (a client sends the same one with every proof), at most
   * {@link MAX_KEYS}, oldest forgotten first. A header that fails is not remembered; a pending
   * import is shared between requests only where promises may cross requests.
   */
  #headerOf(segment: string): Promise<ProofHeader> {
    const known = this.#headers.get(segment);
    if (known !== undefined) return Promise.resolve(known);
    const header = jsonObject(segment);
    if (header === undefined) throw proofRejection('the header is not a base64url JSON object');
    const alg = checkProofHeader(header, this.#options.algorithms);
    const entry: Promise<ProofHeader> = importProofKey(header.jwk as JWK, alg).then((prepared) => {
      const current = this.#headers.get(segment);
      if (current === undefined || current === entry) this.#remember(segment, prepared);
      return prepared;
    });
    if (this.#shared) {
      entry.catch(() => this.#headers.delete(segment));
      this.#remember(segment, entry);
    }
    return entry;
  }

  #remember(segment: string, entry: ProofHeader | Promise<ProofHeader>): void {
    if (!this.#headers.has(segment) && this.#headers.size >= MAX_KEYS) {
      const oldest = this.#headers.keys().next();
      if (oldest.done !== true) this.#headers.delete(oldest.value);
    }
    this.#headers.set(segment, entry);
  }

  /** Inserts the proof's identifier, once, within the replay window; 503 when the store fails. */
  async #insert(identity: string): Promise<void> {
    const key = await sha256(identity);
    const ttlMs = Math.ceil((this.#options.maxAge + 2 * this.#clockTolerance) * 1000);
    let fresh: unknown;
    try {
      fresh = this.#options.replay.insertIfAbsent(key, ttlMs);
      if (fresh instanceof Promise) fresh = await this.#bounded(fresh);
    } catch (cause) {
      throw new Rejection('dpop_replay_unavailable', undefined, cause, RETRY_AFTER);
    }
    if (fresh === false) throw new Rejection('dpop_replayed');
    if (fresh !== true) {
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

/** A proof header once checked: its algorithm, its key imported, the key's thumbprint. */
interface ProofHeader {
  readonly alg: string;
  readonly key: CryptoKey;
  readonly jkt: string;
}

const COMPACT_JWS = /^([\w-]+)\.([\w-]+)\.([\w-]*)$/;
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Unpadded base64url whose unused trailing bits are zero (RFC 4648 §3.5). */
function isCanonicalBase64url(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = B64URL.indexOf(segment[segment.length - 1] as string);
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const padded = segment.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(padded + '='.repeat((4 - (padded.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 9449 §4.3 steps 4–7 on the header; returns the algorithm. */
function checkProofHeader(
  header: Record<string, unknown>,
  algorithms: ReadonlySet<string>,
): string {
  const { typ, alg, jwk } = header;
  if (
    typeof typ !== 'string' ||
    !['dpop+jwt', 'application/dpop+jwt'].includes(typ.toLowerCase())
  ) {
    throw proofRejection('typ is not dpop+jwt', { typ: typeof typ === 'string' ? typ : null });
  }
  if (typeof alg !== 'string' || !algorithms.has(alg)) {
    throw new Rejection('dpop_proof_alg', {
      actual: typeof alg === 'string' ? alg : null,
      allowed: [...algorithms],
    });
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    throw proofRejection('no jwk header');
  }
  const secret = PRIVATE_MEMBERS.filter((name) => name in jwk);
  if (secret.length > 0) throw proofRejection('jwk holds a private key', { members: secret });
  if ('crit' in header) throw proofRejection('unsupported crit header');
  return alg;
}

async function importProofKey(jwk: JWK, alg: string): Promise<ProofHeader> {
  let key: CryptoKey | Uint8Array;
  let jkt: string;
  try {
    key = await importJWK({ ...jwk, ext: true }, alg);
    jkt = await calculateJwkThumbprint(jwk, 'sha256');
  } catch (cause) {
    throw new Rejection('dpop_proof_invalid', { problem: 'jwk is not a usable public key' }, cause);
  }
  if (key instanceof Uint8Array || key.type !== 'public') {
    throw proofRejection('jwk is not a public key');
  }
  return { alg, key, jkt };
}

/**
 * `htu` without query and fragment, normalised as a URL (RFC 9449 §4.3: RFC 3986 §6.2.2 and
 * §6.2.3 normalisation): `undefined` for anything but an absolute http(s) URL.
 */
function normalizeHtu(htu: string): string | undefined {
  if (!URL.canParse(htu)) return undefined;
  const url = new URL(htu);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password) {
    return undefined;
  }
  return `${url.origin}${url.pathname}`;
}

/** The normalised path of a request target; the origin of an absolute one is ignored. */
function pathOf(url: string | undefined): string | undefined {
  if (typeof url !== 'string' || url === '') return undefined;
  try {
    // An origin-form target is appended, never resolved: `//evil/x` stays a path.
    const parsed = url.startsWith('/') ? new URL(`http://h${url}`) : new URL(url);
    return parsed.pathname;
  } catch {
    return undefined;
  }
}

/** `scheme://host[:port]` when `value` is nothing more; else `undefined`. */
function originOf(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  const bare = `${url.protocol}//${url.host}`;
  return bare.toLowerCase() === value.toLowerCase() && !url.username ? url.origin : undefined;
}

/** `method` and `url` of a node `IncomingMessage` or a Web `Request`. */
function targetOf(request: RequestLike): RequestTarget {
  const { method, url } = request as { method?: unknown; url?: unknown };
  return {
    method: typeof method === 'string' ? method : undefined,
    url: typeof url === 'string' ? url : undefined,
  };
}

const MANY = Symbol('many');

/**
 * One header's single value, `undefined` when absent (or blank), {@link MANY} when it appears
 * twice (two fields, or one joined with a comma, which no compact JWS or host contains).
 */
function readOneHeader(request: RequestLike, name: string): string | undefined | typeof MANY {
  let value: HeaderValue;
  const raw = request.rawHeaders;
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i];
      if (typeof key === 'string' && key.length === name.length && key.toLowerCase() === name) {
        if (value !== undefined) return MANY;
        value = raw[i + 1];
      }
    }
  }
  if (value === undefined && request.headers != null) {
    const headers = request.headers;
    if (typeof (headers as HeadersGetter).get === 'function') {
      value = (headers as HeadersGetter).get(name);
    } else {
      for (const key of Object.keys(headers)) {
        if (key.length !== name.length || key.toLowerCase() !== name) continue;
        if (value !== undefined) return MANY;
        value = (headers as Readonly<Record<string, HeaderValue>>)[key];
      }
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) return MANY;
    value = value[0];
  }
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  return trimmed.includes(',') ? MANY : trimmed;
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
