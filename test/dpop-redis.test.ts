/**
 * DPoP replay protection across instances (RFC 9449 §11.1), with real parts: a real Redis
 * (`redis-server` on a loopback port), the embedded oidc-provider issuer issuing DPoP-bound
 * tokens, and two API PROCESSES (the Express and the Fastify example, configured from the
 * environment as an operator would: DPOP, PUBLIC_ORIGIN, REDIS_URL) sharing that Redis.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createClient } from 'redis';
import { createClient as createClient5 } from 'redis5';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisReplayStore } from 'resource-guard/redis';
import { createProof, generateProofKey } from '../examples/dpop-proof.ts';
import type { ProofKey } from '../examples/dpop-proof.ts';
import { startIssuer } from '../examples/issuer.ts';
import type { Issuer } from '../examples/issuer.ts';
import { hasRedisServer, startRedisServer } from './helpers/redis-server.ts';
import type { RedisServer } from './helpers/redis-server.ts';

const PUBLIC = 'https://shopping.example';

if (!hasRedisServer) {
  console.warn(
    'test/dpop-redis.test.ts SKIPPED: redis-server is not installed (apt-get install redis-server; .ci/run installs it)',
  );
}

/** An example API as its own process; resolves with its URL once it listens. */
async function startApi(
  file: string,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start: ${output}`)), 20_000);
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      const match = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`${file} exited (${code}): ${output}`)));
  });
  return { url, child };
}

describe.skipIf(!hasRedisServer)(
  'DPoP replay protection on Redis, across two API processes',
  () => {
    let redis: RedisServer;
    let issuer: Issuer;
    let key: ProofKey;
    let token: string;
    let a: { url: string; child: ChildProcess };
    let b: { url: string; child: ChildProcess };

    beforeAll(async () => {
      [redis, issuer, key] = await Promise.all([
        startRedisServer(),
        startIssuer(),
        generateProofKey(),
      ]);
      token = await issuer.token(issuer.apps.reader, { scope: 'read:products', dpop: key });
      const env = {
        ISSUER: issuer.issuer,
        DPOP: 'required',
        PUBLIC_ORIGIN: PUBLIC,
        REDIS_URL: redis.url,
      };
      [a, b] = await Promise.all([
        startApi('examples/express.ts', env),
        startApi('examples/fastify.ts', env),
      ]);
    }, 60_000);

    afterAll(async () => {
      for (const api of [a, b]) {
        if (api?.child.exitCode === null) {
          api.child.kill();
          await once(api.child, 'exit');
        }
      }
      await Promise.all([redis?.stop(), issuer?.close()]);
    });

    const proofFor = (path = '/products', method = 'GET') =>
      createProof(key, { method, url: `${PUBLIC}${path}`, accessToken: token });
    const call = async (api: { url: string }, proof: string, path = '/products') => {
      const response = await fetch(`${api.url}${path}`, {
        headers: { authorization: `DPoP ${token}`, dpop: proof },
      });
      const body = (await response.json()) as Record<string, unknown>;
      return { status: response.status, body, headers: response.headers };
    };

    it('both instances accept a fresh proof', async () => {
      expect((await call(a, await proofFor())).status).toBe(200);
      expect((await call(b, await proofFor())).status).toBe(200);
    });

    it('a proof accepted by instance A and replayed to instance B is refused', async () => {
      const proof = await proofFor();
      expect((await call(a, proof)).status).toBe(200);
      const replay = await call(b, proof);
      expect(replay.status).toBe(401);
      expect(replay.body.error).toBe('invalid_dpop_proof');
      expect(replay.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_dpop_proof"/);
    });

    it('concurrent replays of one proof to both instances: exactly one is accepted', async () => {
      for (let round = 0; round < 3; round++) {
        const proof = await proofFor();
        const answers = await Promise.all(
          Array.from({ length: 16 }, (_, i) => call(i % 2 === 0 ? a : b, proof)),
        );
        const statuses = answers.map((answer) => answer.status);
        expect(statuses.filter((status) => status === 200)).toHaveLength(1);
        expect(statuses.filter((status) => status === 401)).toHaveLength(15);
      }
    });

    it('Redis stopped mid-run: 503 refusals, no acceptance; recovery when it returns', async () => {
      await redis.stop();
      try {
        for (const api of [a, b, a, b]) {
          const answer = await call(api, await proofFor());
          expect(answer.status).toBe(503);
          expect(answer.body.error).toBe('temporarily_unavailable');
          expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        }
      } finally {
        await redis.start();
      }
      for (const api of [a, b]) {
        let status = 0;
        const deadline = Date.now() + 15_000;
        while (status !== 200 && Date.now() < deadline) {
          status = (await call(api, await proofFor())).status;
          if (status !== 200) {
            expect(status).toBe(503); // never anything else while it reconnects
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        expect(status).toBe(200);
      }
      // And replay protection holds again across the instances (Redis restarted empty).
      const proof = await proofFor();
      expect((await call(b, proof)).status).toBe(200);
      expect((await call(a, proof)).status).toBe(401);
    }, 40_000);
  },
);

/** node-redis's current major (6, RESP3 by default) and the one before it (5, RESP2); 4.0.0 is
 * the pack check's (test/pack/projects/oldest-peers). */
const clients = [
  { major: 6, connect: (url: string) => createClient({ url, disableOfflineQueue: true }) },
  { major: 5, connect: (url: string) => createClient5({ url, disableOfflineQueue: true }) },
];

describe.skipIf(!hasRedisServer).each(clients)(
  'redisReplayStore on a real Redis, node-redis $major',
  ({ connect }) => {
    let redis: RedisServer;
    let client: ReturnType<typeof connect>;

    beforeAll(async () => {
      redis = await startRedisServer();
      client = connect(redis.url);
      client.on('error', () => undefined);
      await client.connect();
    });
    afterAll(async () => {
      client?.destroy();
      await redis?.stop();
    });

    it('inserts once with SET NX PX: the key expires with its TTL', async () => {
      const store = redisReplayStore(client, { prefix: 'test:' });
      // 1 s (it was 300 ms: a loaded machine between two round trips could let it expire).
      expect(await store.insertIfAbsent('k1', 1000)).toBe(true);
      expect(await store.insertIfAbsent('k1', 1000)).toBe(false);
      const ttl = await client.pTTL('test:k1');
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(1000);
      await new Promise((resolve) => setTimeout(resolve, 1050));
      expect(await store.insertIfAbsent('k1', 1000)).toBe(true);
    });

    it('100 concurrent inserts of one key from two clients: exactly one true', async () => {
      const second = connect(redis.url);
      second.on('error', () => undefined);
      await second.connect();
      try {
        const stores = [redisReplayStore(client), redisReplayStore(second)];
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, i) => stores[i % 2]!.insertIfAbsent('race', 60_000)),
        );
        expect(answers.filter(Boolean)).toHaveLength(1);
      } finally {
        second.destroy();
      }
    });

    it('refuses what is not a client', () => {
      expect(() => redisReplayStore({} as never)).toThrow(TypeError);
    });
  },
);
