/**
 * Churn: does the verified-token cache cost anything when it never hits? One process, two
 * verifiers against the same loopback JWKS: `on` with a FULL cache (maxEntries 1000, prefilled
 * with 2000 tokens before timing; past that many misses in a row a token seen once is only noted,
 * by the second-sighting admission, so what the rounds time is a lookup that misses and that
 * note), `off` with `cache: false`. Every
 * token reaches a verifier exactly once: each round's pre-minted slice is new to both (`off`,
 * which keeps nothing per token, verifies the same slice as `on`, so the two sides of a round do
 * the same signatures). Paired rounds, AB then BA; the figure is the throughput ratio on / off
 * (per-round median and range), with 1 and 32 verifications in flight. Goal: on / off ≥ 0.97.
 *
 *   npm run bench:churn [-- --rounds 31 --es256 1200 --rs256 1500]
 */
import { parseArgs } from 'node:util';
import { createVerifier } from 'resource-guard';
// The cache's source: runAdmission measures its policy alone, not the built package.
import { TokenCache } from '../src/token-cache.ts';
import { AUDIENCE, ISSUER, jwksServer } from './fixtures.ts';
import { mintKey, mintTokens } from './mint.ts';
import type { MintAlg, MintKey } from './mint.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    // Odd, for a median; 31 rather than 15: a round's ratio swings ±15% here, its median ±2.5%.
    rounds: { type: 'string', default: '31' },
    // Rounds of about 50 ms or more a side at 32 in flight: at 500 RS256 tokens (about 15 ms)
    // a round was too short to be steady.
    es256: { type: 'string', default: '1200' },
    rs256: { type: 'string', default: '1500' },
    json: { type: 'string' },
  },
  strict: false,
});
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const SCOPES = { scopes: ['read:products'] };
const CACHE_ENTRIES = 1000;

export interface ChurnRow {
  alg: MintAlg;
  inflight: number;
  perRound: number;
  /** µs per token, median of rounds. */
  off: number;
  on: number;
  /** Throughput on / off, per round: median, min, max. */
  ratio: { median: number; min: number; max: number };
}

type Guard = (request: object) => Promise<unknown>;

async function drive(guard: Guard, tokens: readonly string[], inflight: number): Promise<number> {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const token = tokens[next++]!;
      try {
        if (!(await guard({ headers: { authorization: `Bearer ${token}` } }))) failed++;
      } catch {
        failed++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  const elapsed = performance.now() - start;
  if (failed > 0) throw new Error(`${failed} of ${tokens.length} valid tokens refused`);
  return (elapsed * 1000) / tokens.length;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export async function runChurn(
  log = console.log,
  { rounds = Number(args.rounds), es256 = Number(args.es256), rs256 = Number(args.rs256) } = {},
): Promise<ChurnRow[]> {
  const keys: [MintKey, number][] = [
    [mintKey('ES256'), es256],
    [mintKey('RS256'), rs256],
  ];
  const { url, server } = await jwksServer(keys.map(([k]) => k.jwk));
  const rows: ChurnRow[] = [];
  try {
    for (const [key, perRound] of keys) {
      const common = { issuer: ISSUER, audience: AUDIENCE, jwksUri: url };
      const on = createVerifier({ ...common, cache: { maxEntries: CACHE_ENTRIES } });
      const off = createVerifier({ ...common, cache: false });
      const guards = [off.guard(SCOPES), on.guard(SCOPES)] as unknown as [Guard, Guard];
      log(
        `${key.alg}: minting ${(3 * CACHE_ENTRIES + 2 * rounds * perRound).toLocaleString('en')} tokens...`,
      );
      // Fill the cache past its bound (admitting on second sighting from here on); warm both JITs.
      await drive(guards[1], await mintTokens(key, 2 * CACHE_ENTRIES), 8);
      await drive(guards[0], await mintTokens(key, CACHE_ENTRIES), 8);
      for (const inflight of [1, 32]) {
        // One slice per round, new to both verifiers: no token is ever seen twice by either.
        const pool = await mintTokens(key, rounds * perRound);
        const samples: [number[], number[]] = [[], []];
        for (let round = 0; round < rounds; round++) {
          const slice = pool.slice(round * perRound, (round + 1) * perRound);
          for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
            gc();
            samples[side as 0 | 1].push(await drive(guards[side as 0 | 1], slice, inflight));
          }
        }
        const ratios = samples[0].map((offUs, i) => offUs / samples[1][i]!);
        const row: ChurnRow = {
          alg: key.alg,
          inflight,
          perRound,
          off: median(samples[0]),
          on: median(samples[1]),
          ratio: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) },
        };
        rows.push(row);
        log(
          `${row.alg} ${String(inflight).padStart(2)} in flight: off ${row.off.toFixed(1)} µs, on (full) ${row.on.toFixed(1)} µs; ` +
            `on/off throughput per round ${row.ratio.median.toFixed(3)} [${row.ratio.min.toFixed(2)}–${row.ratio.max.toFixed(2)}]`,
        );
      }
    }
  } finally {
    server.close();
  }
  return rows;
}

export interface AdmissionRow {
  policy: string;
  /** ns per first-seen token (median of rounds), and the cost over no cache. */
  ns: number;
  overNone: { median: number; min: number; max: number };
  size: number;
}

/**
 * The cache's own cost per first-seen token on an all-distinct flood, by admission policy, without
 * the signature's noise: a lookup that misses, an AuthInfo-shaped object made (as a verification
 * does), then `set`. `none` = no cache (the object is still made); `every` = every verified token
 * stored (admitAfterMisses = Infinity); `second sighting` = the cache's policy (stored on a second
 * sighting once maxEntries lookups in a row have missed). 10,000 entries, 80,000 distinct
 * 500-character tokens cycled, interleaved rounds.
 */
export function runAdmission(log = console.log, rounds = 15): AdmissionRow[] {
  const N = 20_000;
  const head = `eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImEifQ.${'x'.repeat(360)}.`;
  const tokens = Array.from({ length: 4 * N }, (_, i) =>
    // Flat strings, as node's header parser makes them.
    Buffer.from(
      `${head}${`${i.toString(36)}${Math.random().toString(36).slice(2)}`.padStart(500 - head.length, 'Q')}`,
    ).toString(),
  );
  const voucher = { trusted: true, vouches: () => true };
  const make = (token: string) => {
    const claims = JSON.parse(
      `{"iss":"${ISSUER}","aud":"${AUDIENCE}","sub":"bench-app","client_id":"bench-app","scope":"read:products write:products","iat":1,"exp":99999999999,"jti":"${token.slice(-12)}"}`,
    ) as Record<string, string>;
    return {
      token,
      header: { alg: 'ES256', typ: 'at+jwt', kid: 'a' },
      claims,
      scopes: claims.scope!.split(' '),
      clientId: claims.client_id,
    };
  };
  type Cache = Pick<TokenCache<object>, 'get' | 'set'> & { size?: number };
  const options = { maxEntries: 10_000, maxBytes: 48 * 2 ** 20 };
  const policies: [string, Cache][] = [
    ['none', { get: () => undefined, set: () => undefined }],
    ['every', new TokenCache<object>(options, Infinity)],
    ['second sighting', new TokenCache<object>(options)],
  ];
  const cursor = policies.map(() => 0);
  const sink: object[] = new Array<object>(1024);
  const run = (p: number, count: number) => {
    const cache = policies[p]![1];
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const token = tokens[cursor[p]!++ % tokens.length]!;
      if (cache.get(token, 1000) === undefined) {
        const auth = make(token);
        cache.set(token, auth, 0, 1e15, voucher);
        sink[i & 1023] = auth;
      }
    }
    return ((performance.now() - start) * 1e6) / count;
  };
  for (let p = 0; p < policies.length; p++) run(p, 30_000); // warm, and full
  const samples = policies.map((): number[] => []);
  for (let round = 0; round < rounds; round++) {
    const order = policies.map((_, p) => p);
    if (round % 2) order.reverse();
    for (const p of order) {
      gc();
      samples[p]!.push(run(p, N));
    }
  }
  return policies.map(([policy, cache], p) => {
    const over = samples[p]!.map((ns, round) => ns - samples[0]![round]!);
    const row = {
      policy,
      ns: median(samples[p]!),
      overNone: { median: median(over), min: Math.min(...over), max: Math.max(...over) },
      size: cache.size ?? 0,
    };
    log(
      `admission ${policy}: ${row.ns.toFixed(0)} ns per first-seen token, ${row.overNone.median.toFixed(0)} ns over no cache [${row.overNone.min.toFixed(0)}–${row.overNone.max.toFixed(0)}], ${row.size} entries`,
    );
    return row;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const admission = runAdmission();
  const rows = await runChurn();
  if (args.json !== undefined) {
    process.stdout.write(`RESULT ${JSON.stringify({ rows, admission })}\n`);
  }
  process.exit(0);
}
