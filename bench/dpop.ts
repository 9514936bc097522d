/**
 * The cost of a DPoP request (RFC 9449): the proof's checks and signature, its binding to the
 * token, and the replay insert, in memory and on a real Redis (a `redis-server` started on a
 * loopback port), as a ratio to a Bearer request whose token the verified-token cache holds.
 * In-process through `verifier.authenticate()`, one request at a time, rounds interleaved; proofs
 * are signed before each round (the client's cost is not the server's). Median µs per request.
 *
 *   npm run bench:dpop [-- --rounds 7 --ms 200]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, randomUUID, verify as cryptoVerify } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createClient } from 'redis';
import { createVerifier } from 'resource-guard';
import type { ReplayStore, Verifier } from 'resource-guard';
import { redisReplayStore } from 'resource-guard/redis';
import { AUDIENCE, benchKey, ISSUER } from './fixtures.ts';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '200' } },
});
const ROUNDS = Number(args.rounds);
const ROUND_MS = Number(args.ms);
const ORIGIN = 'https://api.bench.example';
const URL_ = `${ORIGIN}/products`;

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** A redis-server on a free loopback port, or `undefined` when it is not installed. */
async function startRedis(): Promise<{ url: string; stop(): void } | undefined> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 400; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => resolve(true));
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.destroy());
    });
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

async function main() {
  const issuerKey = await benchKey('ES384');
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const jkt = await calculateJwkThumbprint(jwk);
  const now = Math.floor(Date.now() / 1000);
  const accessToken = (jti: string, extra: Record<string, unknown> = {}) =>
    new SignJWT({ scope: 'read:products', client_id: 'bench-app', ...extra })
      .setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid: issuerKey.kid })
      .setJti(jti)
      .setSubject('bench-app')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(issuerKey.privateKey);
  const token = await accessToken('bench-dpop', { cnf: { jkt } });
  const plain = await accessToken('bench-bearer');
  const ath = createHash('sha256').update(token).digest('base64url');
  const sign = () =>
    new SignJWT({ jti: randomUUID(), htm: 'GET', htu: URL_, ath })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
      .setIssuedAt()
      .sign(privateKey);

  const verifierWith = (replay?: ReplayStore): Verifier =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      dpop: { origin: ORIGIN, ...(replay ? { replay } : {}) },
    });
  const memory = verifierWith();
  const redisServer = await startRedis();
  const client = redisServer && createClient({ url: redisServer.url, disableOfflineQueue: true });
  await client?.connect();
  const onRedis = client && verifierWith(redisReplayStore(client));

  const bearerRequest = {
    method: 'GET',
    url: '/products',
    headers: { authorization: `Bearer ${plain}` },
    rawHeaders: ['Authorization', `Bearer ${plain}`],
  };
  const dpopRequest = (proof: string) => ({
    method: 'GET',
    url: '/products',
    headers: { authorization: `DPoP ${token}`, dpop: proof },
    rawHeaders: ['Authorization', `DPoP ${token}`, 'DPoP', proof],
  });

  /** µs per request over about ROUND_MS; `proofs` are used up one per request. */
  async function round(verifier: Verifier, proofs?: string[]): Promise<number> {
    let n = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < ROUND_MS) {
      const request = proofs ? dpopRequest(proofs[n] as string) : bearerRequest;
      await verifier.authenticate(request);
      n++;
      elapsed = performance.now() - start;
      if (proofs && n === proofs.length) break;
    }
    return (elapsed * 1000) / n;
  }
  /** A first-seen Bearer token each request: the full verification, for scale. */
  async function firstSeenRound(tokens: string[]): Promise<number> {
    const start = performance.now();
    let n = 0;
    for (; n < tokens.length && performance.now() - start < ROUND_MS; n++) {
      const t = tokens[n] as string;
      await memory.authenticate({ headers: {}, rawHeaders: ['Authorization', `Bearer ${t}`] });
    }
    return ((performance.now() - start) * 1000) / n;
  }
  /** The floor: node's own ES256 verification of one proof, on the thread pool as the guard does. */
  const floorKey = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  async function floorRound(proofs: string[]): Promise<number> {
    const start = performance.now();
    let n = 0;
    for (; n < proofs.length && performance.now() - start < ROUND_MS; n++) {
      const proof = proofs[n] as string;
      const dot = proof.lastIndexOf('.');
      await new Promise((resolve, reject) =>
        cryptoVerify(
          'sha256',
          Buffer.from(proof.slice(0, dot)),
          { key: floorKey, dsaEncoding: 'ieee-p1363' },
          Buffer.from(proof.slice(dot + 1), 'base64url'),
          (error, ok) => (error ? reject(error) : resolve(ok)),
        ),
      );
    }
    return ((performance.now() - start) * 1000) / n;
  }
  let serial = 0;
  const freshToken = () => accessToken(`first-${serial++}`);
  // The first sightings (token verification, key imports) out of the way.
  await memory.authenticate(bearerRequest);
  await memory.authenticate(dpopRequest(await sign()));
  await onRedis?.authenticate(dpopRequest(await sign()));

  const results: Record<string, number[]> = {
    bearer: [],
    firstSeen: [],
    floor: [],
    memory: [],
    redis: [],
  };
  for (let r = 0; r < ROUNDS; r++) {
    results.bearer?.push(await round(memory));
    results.firstSeen?.push(
      await firstSeenRound(await Promise.all(Array.from({ length: 2000 }, freshToken))),
    );
    const proofs = await Promise.all(Array.from({ length: 3000 }, sign));
    results.floor?.push(await floorRound(proofs));
    results.memory?.push(await round(memory, proofs));
    if (onRedis) {
      const more = await Promise.all(Array.from({ length: 3000 }, sign));
      results.redis?.push(await round(onRedis, more));
    }
  }
  const bearer = median(results.bearer as number[]);
  const row = (name: string, values: number[]) => {
    const us = median(values);
    console.log(
      `${name.padEnd(34)} ${us.toFixed(1).padStart(8)} µs   ${(us / bearer).toFixed(1).padStart(6)}x`,
    );
  };
  console.log(`DPoP request cost, median of ${ROUNDS} interleaved rounds (ES256 proofs)\n`);
  row('Bearer, cached token', results.bearer as number[]);
  row('Bearer, first-seen token (ES384)', results.firstSeen as number[]);
  row('floor: node ES256 verify of a proof', results.floor as number[]);
  row('DPoP, in-memory replay store', results.memory as number[]);
  if (onRedis) row('DPoP, Redis replay store (loopback)', results.redis as number[]);
  else console.log('DPoP, Redis replay store: skipped (redis-server not installed)');
  client?.destroy();
  redisServer?.stop();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
