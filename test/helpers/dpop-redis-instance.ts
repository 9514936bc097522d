/**
 * One more API instance, as its own Node process (no memory shared with the test): a node:http
 * server over `verifier.authenticate(req)`, built from the package sources (run with
 * `node --import tsx`), its DPoP replay store on Redis. Configured from the environment:
 *
 * - `JWKS`: the issuer's public keys (a JSON `{ keys: [...] }`); `ISSUER`, `AUDIENCE`, `ORIGIN`;
 * - `REDIS_URL`, `PREFIX` (optional), `MAX_AGE`, `CLOCK_TOLERANCE`, `REPLAY_TIMEOUT` (seconds);
 * - `CLOCK_OFFSET_MS`: this process's clock runs that far from the real one (a skewed instance).
 *
 * Prints `listening on http://127.0.0.1:<port>` once it listens (port 0: a free one). `GET /now`
 * answers its `Date.now()`; every other request is authenticated and answers 200 `{ ok: true }` or
 * the AuthError as is (`sendAuthError`), anything else a bare 500.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { AuthError, createVerifier, sendAuthError } from 'resource-guard';
import { redisReplayStore } from 'resource-guard/redis';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is required`);
  return value;
};

const offset = Number(process.env.CLOCK_OFFSET_MS ?? '0');
if (offset !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + offset;
}

const redis = createClient({
  url: env('REDIS_URL'),
  disableOfflineQueue: true,
  socket: { reconnectStrategy: () => 50, connectTimeout: 500 },
});
redis.on('error', () => undefined);
await redis.connect();

const prefix = process.env.PREFIX;
const verifier = createVerifier({
  issuer: env('ISSUER'),
  audience: env('AUDIENCE'),
  jwks: JSON.parse(env('JWKS')) as { keys: [] },
  clockTolerance: Number(process.env.CLOCK_TOLERANCE ?? '5'),
  dpop: {
    mode: 'required',
    origin: env('ORIGIN'),
    maxAge: Number(process.env.MAX_AGE ?? '60'),
    replayTimeout: Number(process.env.REPLAY_TIMEOUT ?? '1'),
    replay: redisReplayStore(redis, prefix === undefined ? {} : { prefix }),
  },
});

const server = createServer((req, res) => {
  if (req.url === '/now') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ now: Date.now() }));
    return;
  }
  verifier.authenticate(req).then(
    () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    },
    (error: unknown) => {
      if (error instanceof AuthError) {
        sendAuthError(res, error);
      } else {
        res.writeHead(500);
        res.end();
      }
    },
  );
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
console.log(`listening on http://127.0.0.1:${port}`);

process.once('SIGTERM', () => {
  redis.destroy();
  process.exit(0);
});
