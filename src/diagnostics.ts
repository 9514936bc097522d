/**
 * What resource-guard tells operators, without a logger of its own: events on
 * `node:diagnostics_channel` (free when nobody subscribes: one `hasSubscribers` read), and
 * one-time warnings for configurations that are almost certainly mistakes. Where the runtime has
 * no `node:diagnostics_channel` (Cloudflare Workers without `nodejs_compat`), nothing is published.
 *
 * No event ever holds a token, a subject or a client id.
 */
import type { KeyState } from './types.ts';

/** The channel names, for `diagnostics_channel.subscribe(name, listener)`. */
export const CHANNELS = Object.freeze({
  /** Every request's outcome: a {@link DecisionEvent}. */
  decision: 'resource-guard:decision',
  /** Every attempt to fetch an issuer's key set: a {@link KeysFetchEvent}. */
  keysFetch: 'resource-guard:keys:fetch',
  /** A key set moving between `empty`, `fresh`, `stale` and `unavailable`: a {@link KeysStateEvent}. */
  keysState: 'resource-guard:keys:state',
  /** Verified tokens dropped from the cache before their expiry: a {@link CacheEvictEvent}. */
  cacheEvict: 'resource-guard:cache:evict',
});

/** One request's outcome (or one `verify()` call's). */
export interface DecisionEvent {
  /** `anonymous`: no token on an optional route. `error`: a bug (the request fails with it). */
  readonly outcome: 'accepted' | 'refused' | 'anonymous' | 'error';
  /** With `refused`: the exact reason (see the README's troubleshooting table). */
  readonly reason?: string;
  /** With `refused`: the HTTP status the client gets (400, 401, 403, 503). */
  readonly status?: number;
  /** Answered from the verified-token cache. */
  readonly cached: boolean;
  /** From the request to the answer, in milliseconds. */
  readonly duration: number;
  /** With `accepted`: the token's issuer (one of the configured ones). */
  readonly issuer?: string;
}

/** One fetch of a key set (discovery included, when the JWKS URL is discovered). */
export interface KeysFetchEvent {
  /** The configured issuer(s) this key set serves. */
  readonly issuers: readonly string[];
  /** The JWKS URL, or the discovery URL when discovery failed. */
  readonly url: string | undefined;
  readonly outcome: 'ok' | 'error';
  /** The HTTP status, when the failure was one. */
  readonly status?: number;
  /** With `error`: the root cause, e.g. `ECONNREFUSED`, `ENOTFOUND`, `HTTP 404`, `timeout`. */
  readonly error?: string;
  /** With `ok`: how many usable keys the set holds. */
  readonly keys?: number;
  /** When the fetch started (milliseconds since the epoch) and how long it took (milliseconds). */
  readonly startTime: number;
  readonly duration: number;
}

/** A key set's state changed. */
export interface KeysStateEvent {
  readonly issuers: readonly string[];
  readonly from: KeyState;
  readonly to: KeyState;
  /** With `unavailable` or a failing `stale`: the last failure (URL and root cause). */
  readonly lastError?: string;
}

/** Cached verifications dropped before their expiry. */
export interface CacheEvictEvent {
  /** `capacity`: the cache was full (entries or bytes); `revoked`: their key left the key set. */
  readonly reason: 'capacity' | 'revoked';
  readonly count: number;
}

interface Channel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}

type Listener = (message: unknown, name: string | symbol) => void;

interface ChannelModule {
  channel(name: string): Channel;
  subscribe(name: string, listener: Listener): void;
  unsubscribe(name: string, listener: Listener): boolean;
}

const module = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:diagnostics_channel') as ChannelModule | undefined;

const silent: Channel = { hasSubscribers: false, publish: () => undefined };
const open = (name: string): Channel => {
  try {
    return module?.channel(name) ?? silent;
  } catch {
    return silent;
  }
};

/** The channels, opened once. Publish only after checking `hasSubscribers`. */
export const decisionChannel = open(CHANNELS.decision);
export const keysFetchChannel = open(CHANNELS.keysFetch);
export const keysStateChannel = open(CHANNELS.keysState);
export const cacheEvictChannel = open(CHANNELS.cacheEvict);

/**
 * Subscribes `listener` to a channel; returns the unsubscribe. Throws where the runtime has no
 * `node:diagnostics_channel`.
 */
export function subscribeTo(name: string, listener: (message: unknown) => void): () => void {
  if (module === undefined) {
    throw new Error('resource-guard: this runtime has no node:diagnostics_channel');
  }
  const wrapped: Listener = (message) => listener(message);
  module.subscribe(name, wrapped);
  return () => void module.unsubscribe(name, wrapped);
}

/** Publishes when someone listens; the event is built only then. */
export function publish(channel: Channel, event: () => unknown): void {
  if (channel.hasSubscribers) channel.publish(event());
}

const warned = new Set<string>();

/**
 * A warning, once per process per `key` (default: the `code`): `process.emitWarning` where there
 * is one (so `--disable-warning=<code>` silences it), `console.warn` elsewhere.
 */
export function warnOnce(code: string, message: string, key = code): void {
  if (warned.has(key)) return;
  warned.add(key);
  const proc = (
    globalThis as {
      process?: { emitWarning?: (message: string, options: { code: string }) => void };
    }
  ).process;
  try {
    if (typeof proc?.emitWarning === 'function') proc.emitWarning(message, { code });
    else console.warn(`[${code}] ${message}`);
  } catch {
    // A warning must never break the caller.
  }
}

const CREATION_WINDOW_MS = 10_000;
const CREATION_LIMIT = 100;
const creations = new Map<string, number[]>();

/**
 * Called for every verifier created: warns (once) when one issuer gets more than
 * {@link CREATION_LIMIT} verifiers within {@link CREATION_WINDOW_MS}: a verifier created per
 * request, which fetches the keys and caches nothing.
 */
export function noteVerifierCreated(issuers: Iterable<string>, now = Date.now()): void {
  const key = [...issuers].sort().join(' ');
  let times = creations.get(key);
  if (times === undefined) {
    if (creations.size >= 1000) creations.clear(); // bounded: this is a hint, not an audit log
    times = [];
    creations.set(key, times);
  }
  times.push(now);
  while (times.length > 0 && now - (times[0] as number) > CREATION_WINDOW_MS) times.shift();
  if (times.length > CREATION_LIMIT) {
    times.length = 0;
    warnOnce(
      'RESOURCE_GUARD_VERIFIER_PER_REQUEST',
      `resource-guard: more than ${CREATION_LIMIT} verifiers were created for ${key} within ` +
        `${CREATION_WINDOW_MS / 1000} s. Create one verifier at start-up and share it: each new ` +
        'one fetches the keys again and starts with an empty cache.',
    );
  }
}
