/**
 * In-process, interleaved: the node crypto.verify floor, jose's jwtVerify, and resource-guard with a
 * first-seen token (the full verification path) and a repeat token (the verified-token cache), for
 * ES384, RS256, ES256 and EdDSA. Prints µs/op (median of rounds) and ratios.
 *
 *   npm run bench:micro [-- --rounds 7 --ms 150]
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { jwtVerify } from 'jose';
import { createVerifier } from 'resource-guard';
import { ALGORITHMS, AUDIENCE, benchKey, benchToken, ISSUER, jwksServer } from './fixtures.ts';
import type { BenchAlg } from './fixtures.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) {
  args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '');
}
const ROUNDS = Number(args.get('rounds') ?? 7);
const ROUND_MS = Number(args.get('ms') ?? 150);

type Op = () => unknown;

/** µs per op of `op` run repeatedly for about ROUND_MS, awaiting it when it returns a promise. */
async function measure(op: Op, isAsync: boolean): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ROUND_MS) {
    for (let i = 0; i < 16; i++) {
      if (isAsync) await op();
      else op();
    }
    n += 16;
    now = performance.now();
  }
  return ((now - start) * 1000) / n;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

const NODE_PARAMS: Record<BenchAlg, [string | null, object]> = {
  ES384: ['sha384', { dsaEncoding: 'ieee-p1363' }],
  ES256: ['sha256', { dsaEncoding: 'ieee-p1363' }],
  RS256: ['sha256', {}],
  EdDSA: [null, {}],
};

export interface MicroRow {
  alg: BenchAlg;
  floor: number;
  jose: number;
  firstSeen: number;
  repeat: number;
  /** Synchronous crypto calls on the event loop during 300 first-seen verifications. */
  syncCrypto: { calls: number; p50: number; max: number };
}

/**
 * Watches node:crypto's `verify` while `work` runs: the durations (µs) of the calls made
 * synchronously on the event loop (a call with a callback runs on the thread pool: not counted).
 */
async function syncCryptoCalls(work: () => Promise<unknown>): Promise<number[]> {
  const nodeCrypto = process.getBuiltinModule('node:crypto') as {
    verify: (...args: unknown[]) => unknown;
  };
  const original = nodeCrypto.verify;
  const durations: number[] = [];
  nodeCrypto.verify = function (this: unknown, ...args: unknown[]) {
    if (typeof args[4] === 'function') return original.apply(this, args);
    const started = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      durations.push((performance.now() - started) * 1000);
    }
  };
  try {
    await work();
  } finally {
    nodeCrypto.verify = original;
  }
  return durations;
}

export async function runMicro(log = console.log): Promise<MicroRow[]> {
  const keys = await Promise.all(ALGORITHMS.map((alg) => benchKey(alg)));
  const { url, server } = await jwksServer(keys.map((k) => k.jwk));
  const rows: MicroRow[] = [];
  try {
    for (const key of keys) {
      const token = await benchToken(key);
      const [h, p, s] = token.split('.') as [string, string, string];
      const input = Buffer.from(`${h}.${p}`);
      const signature = Buffer.from(s, 'base64url');
      const keyObject = createPublicKey({ key: key.jwk as never, format: 'jwk' });
      const [hash, extra] = NODE_PARAMS[key.alg];
      const floorOp = () => {
        if (!cryptoVerify(hash, input, { key: keyObject, ...extra } as never, signature)) {
          throw new Error('floor: bad signature');
        }
      };
      const joseOptions = {
        issuer: ISSUER,
        audience: AUDIENCE,
        typ: 'at+jwt',
        algorithms: [key.alg],
      };
      const joseOp = () => jwtVerify(token, key.publicKey, joseOptions);
      const common = { issuer: ISSUER, audience: AUDIENCE, jwksUri: url };
      const uncached = createVerifier({ ...common, cache: false });
      const cached = createVerifier(common);
      // What an adapter does per request: a guard built once per route, a request with headers.
      const request = { headers: { authorization: `Bearer ${token}` } };
      const uncachedGuard = uncached.guard({ scopes: ['read:products'] });
      const cachedGuard = cached.guard({ scopes: ['read:products'] });
      const firstSeenOp = () => uncachedGuard(request);
      const repeatOp = () => cachedGuard(request);
      await firstSeenOp();
      await repeatOp();

      const samples = {
        floor: [] as number[],
        jose: [] as number[],
        firstSeen: [] as number[],
        repeat: [] as number[],
      };
      for (let round = 0; round < ROUNDS; round++) {
        samples.floor.push(await measure(floorOp, false));
        samples.jose.push(await measure(joseOp, true));
        samples.firstSeen.push(await measure(firstSeenOp, true));
        samples.repeat.push(await measure(repeatOp, true));
      }
      const syncCalls = await syncCryptoCalls(async () => {
        for (let i = 0; i < 300; i++) await firstSeenOp();
      });
      const row = {
        alg: key.alg,
        floor: median(samples.floor),
        jose: median(samples.jose),
        firstSeen: median(samples.firstSeen),
        repeat: median(samples.repeat),
        syncCrypto: {
          calls: syncCalls.length,
          p50: syncCalls.length ? median(syncCalls) : 0,
          max: Math.max(0, ...syncCalls),
        },
      };
      rows.push(row);
      log(
        `${row.alg.padEnd(6)} floor ${row.floor.toFixed(1).padStart(7)} µs | jose ${row.jose.toFixed(1).padStart(7)} µs (${(row.jose / row.floor).toFixed(2)}×) | ` +
          `first-seen ${row.firstSeen.toFixed(1).padStart(7)} µs (${(row.firstSeen / row.floor).toFixed(2)}×) | repeat ${row.repeat.toFixed(2).padStart(6)} µs | ` +
          `sync crypto on the loop: ${row.syncCrypto.calls} calls, p50 ${row.syncCrypto.p50.toFixed(0)} µs, max ${row.syncCrypto.max.toFixed(0)} µs`,
      );
    }
  } finally {
    server.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runMicro();
}
