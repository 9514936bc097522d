/**
 * Churn: does the verified-token cache cost anything when it never hits? One process, two
 * verifiers against the same loopback JWKS: `on` with a cache that is FULL and evicting
 * (maxEntries 1000, prefilled with 2000 tokens before timing), `off` with `cache: false`. Every
 * token reaches a verifier exactly once (a separate, pre-minted pool per side and per round).
 * Paired rounds, AB then BA; the figure is the throughput ratio on / off (per-round median and
 * range), with 1 and 32 verifications in flight. Goal: on / off ≥ 0.97.
 *
 *   npm run bench:churn [-- --rounds 21 --es256 600 --rs256 500]
 */
import { parseArgs } from 'node:util';
import { createVerifier } from 'resource-guard';
import { AUDIENCE, ISSUER, jwksServer } from './fixtures.ts';
import { mintKey, mintTokens } from './mint.ts';
import type { MintAlg, MintKey } from './mint.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    rounds: { type: 'string', default: '21' },
    es256: { type: 'string', default: '600' },
    rs256: { type: 'string', default: '500' },
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
        `${key.alg}: minting ${(2 * CACHE_ENTRIES + 2 * 2 * rounds * perRound).toLocaleString('en')} tokens...`,
      );
      // Fill the cache past its bound (it is evicting from here on), and warm both sides' JIT.
      await drive(guards[1], await mintTokens(key, 2 * CACHE_ENTRIES), 8);
      await drive(guards[0], await mintTokens(key, CACHE_ENTRIES), 8);
      for (const inflight of [1, 32]) {
        // One pool per side and round: no token is ever seen twice by a verifier.
        const pools = [
          await mintTokens(key, rounds * perRound),
          await mintTokens(key, rounds * perRound),
        ];
        const samples: [number[], number[]] = [[], []];
        for (let round = 0; round < rounds; round++) {
          for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
            gc();
            const slice = pools[side]!.slice(round * perRound, (round + 1) * perRound);
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
          `${row.alg} ${String(inflight).padStart(2)} in flight: off ${row.off.toFixed(1)} µs, on (full, evicting) ${row.on.toFixed(1)} µs; ` +
            `on/off throughput per round ${row.ratio.median.toFixed(3)} [${row.ratio.min.toFixed(2)}–${row.ratio.max.toFixed(2)}]`,
        );
      }
    }
  } finally {
    server.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runChurn();
  if (args.json !== undefined) process.stdout.write(`RESULT ${JSON.stringify(rows)}\n`);
  process.exit(0);
}
