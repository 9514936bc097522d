import type { ReplayStore } from 'resource-guard';

/**
 * What the store needs of a Redis client: node-redis's `sendCommand` (v4 to v6; a client you
 * created and connected, and whose `error` events you handle).
 */
export interface RedisCommandClient {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface RedisReplayStoreOptions {
  /** Prefix of the keys it writes (each key is a 43-character hash). Default: `rg:dpop:`. */
  readonly prefix?: string;
}

/**
 * A DPoP replay store on Redis, shared by every instance of an API: one atomic
 * `SET <prefix><hash> 1 NX PX <ttl>` per proof, so that of two instances presented the same proof
 * at the same moment exactly one accepts it. Redis unreachable or slow (past the verifier's
 * `dpop.replayTimeout`) refuses the request with a 503, never accepts it unchecked.
 *
 * Create the client with `disableOfflineQueue: true`: while Redis is down, commands then fail at
 * once (503) instead of queueing until it returns.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { createVerifier } from 'resource-guard';
 * import { redisReplayStore } from 'resource-guard/redis';
 *
 * const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', disableOfflineQueue: true });
 * redis.on('error', (error: Error) => console.warn('redis:', error.message));
 * await redis.connect();
 *
 * const verifier = createVerifier({
 *   issuer: 'https://tenant.logto.app/oidc',
 *   audience: 'https://shopping.api',
 *   dpop: { origin: 'https://api.shop.example', replay: redisReplayStore(redis) },
 * });
 * ```
 */
export function redisReplayStore(
  client: RedisCommandClient,
  options: RedisReplayStoreOptions = {},
): ReplayStore {
  if (typeof (client as Partial<RedisCommandClient> | null)?.sendCommand !== 'function') {
    throw new TypeError('resource-guard: `client` must be a node-redis client (createClient())');
  }
  const prefix = options.prefix ?? 'rg:dpop:';
  if (typeof prefix !== 'string') throw new TypeError('resource-guard: `prefix` must be a string');
  return Object.freeze({
    async insertIfAbsent(key: string, ttlMs: number): Promise<boolean> {
      const reply = await client.sendCommand([
        'SET',
        prefix + key,
        '1',
        'NX',
        'PX',
        // Redis refuses a PX that, added to its clock, passes 2^63 - 1 ms (a clockTolerance of
        // centuries): past 2^53 - 1 ms (285,000 years) the key simply outlives everything.
        String(
          ttlMs < Number.MAX_SAFE_INTEGER ? Math.max(1, Math.ceil(ttlMs)) : Number.MAX_SAFE_INTEGER,
        ),
      ]);
      if (reply === 'OK') return true;
      if (reply === null) return false;
      throw new Error('unexpected reply from Redis to SET NX PX');
    },
  });
}
