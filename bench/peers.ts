/**
 * Distinct tokens vs peers, per algorithm Logto can issue (ES384, ES256, ES512, RS256, PS256,
 * EdDSA; RSA 2048-bit): Fastify servers in their own processes (bench/peers-server.ts), identical
 * handlers, every request a token that server has never seen (a per-server cursor over one pool
 * per algorithm, never wrapping; a run that runs out is void and redone). resource-guard with its
 * default signature route and forced inline / pool / adaptive (to decide the default), fast-jwt
 * (memoized, cache on), @fastify/jwt (as its README sets it up) and jose (`jwtVerify` +
 * `createRemoteJWKSet`).
 *
 * The servers are NOT pinned (they may use both cores: that is the thread pool's question); wrk
 * (`-t1`) is pinned to core 1. Servers of an algorithm are loaded one at a time, in an order that
 * rotates every round; a ratio is taken within a round (adjacent seconds). Beside req/s: the
 * server's event-loop delay p99 (`monitorEventLoopDelay`, 1 ms resolution) during the run.
 *
 *   npm run bench:peers [-- --rounds 3 --seconds 2 --algs ES256,RS256 --connections 1,32]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ISSUER, jwksServer } from './fixtures.ts';
import { hasTaskset, wrk } from './http.ts';
import { mintKey, mintTokens } from './mint.ts';
import type { MintAlg } from './mint.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '2' },
    algs: { type: 'string', default: 'ES384,ES256,ES512,RS256,PS256,EdDSA' },
    connections: { type: 'string', default: '1,32' },
  },
  strict: false,
});

export const PEER_ALGS: MintAlg[] = ['ES384', 'ES256', 'ES512', 'RS256', 'PS256', 'EdDSA'];
const OURS = ['resource-guard', 'rg-inline', 'rg-pool', 'rg-adaptive'];
const PEERS = ['fast-jwt', 'fastify-jwt', 'jose'];

export interface PeerRow {
  alg: MintAlg;
  connections: number;
  server: string;
  /** Medians over rounds. */
  rps: number;
  eldP99Ms: number;
  latencyP99Ms: number;
  /** resource-guard (default route) / this server, per round: median, min, max. */
  ours: { median: number; min: number; max: number };
  tokens: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function start(variant: string, env: NodeJS.ProcessEnv) {
  const entry = fileURLToPath(new URL('./peers-server.ts', import.meta.url));
  // Both cores, explicitly: this process is pinned to core 1 (for wrk), and a child would inherit it.
  const command = [process.execPath, '--import', 'tsx', entry, variant];
  const [file, ...rest] = hasTaskset ? ['taskset', '-c', '0,1', ...command] : command;
  const child: ChildProcess = spawn(file!, rest, {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const { port } = JSON.parse(line.toString()) as { port: number };
  return { variant, child, base: `http://127.0.0.1:${port}` };
}

export async function runPeers(
  log = console.log,
  {
    rounds = Number(args.rounds),
    seconds = Number(args.seconds),
    algs = String(args.algs).split(',') as MintAlg[],
    connections = String(args.connections).split(',').map(Number),
  } = {},
): Promise<PeerRow[]> {
  const rows: PeerRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'rg-peers-'));
  try {
    for (const alg of algs) {
      const key = mintKey(alg);
      const { url: jwksUrl, server: jwks } = await jwksServer([key.jwk as never]);
      const env = { ...process.env, BENCH_ISSUER: ISSUER, BENCH_JWKS: jwksUrl, BENCH_ALG: alg };
      const servers = await Promise.all([...OURS, ...PEERS].map((v) => start(v, env)));
      const pool: string[] = [];
      const cursor = new Map<string, number>(servers.map((s) => [s.variant, 0]));
      let highest = 500;
      try {
        for (const c of connections) {
          // With one connection: our routes and the fastest peer (latency, not both cores).
          const group = servers.filter(
            (s) => c > 1 || OURS.includes(s.variant) || s.variant === 'fast-jwt',
          );
          const samples = new Map(
            group.map((s) => [
              s.variant,
              { rps: [] as number[], eld: [] as number[], p99: [] as number[] },
            ]),
          );
          for (let round = -1; round < rounds; round++) {
            const order = group.map((_, i) => group[(i + Math.max(0, round)) % group.length]!);
            for (const server of order) {
              const runSeconds = round < 0 ? 1 : seconds;
              for (let attempt = 0; ; attempt++) {
                if (attempt === 3)
                  throw new Error(`${alg} ${server.variant}: the pool keeps running out`);
                const at = cursor.get(server.variant)!;
                const need = Math.ceil(highest * runSeconds * 1.5) + 2 * c;
                if (pool.length - at < need) {
                  pool.push(...(await mintTokens(key, need - (pool.length - at), 'read:products')));
                }
                const file = join(dir, `${alg}-${server.variant}.txt`);
                writeFileSync(file, `${pool.slice(at, at + need).join('\n')}\n`);
                await fetch(`${server.base}/__eld`); // reset
                const run = await wrk(
                  `${server.base}/products`,
                  runSeconds,
                  { tokenFile: file },
                  c,
                );
                const eld = (await (await fetch(`${server.base}/__eld`)).json()) as { p99: number };
                cursor.set(server.variant, at + run.tokens_used);
                highest = Math.max(highest, run.rps, run.tokens_used / runSeconds);
                if (run.exhausted) {
                  log(`${alg} ${server.variant}: pool of ${need} ran out, run again`);
                  continue;
                }
                if (round >= 0) {
                  const s = samples.get(server.variant)!;
                  s.rps.push(run.rps);
                  s.eld.push(eld.p99);
                  s.p99.push(run.p99_us / 1000);
                }
                break;
              }
            }
            if (round >= 0) {
              log(
                `${alg} c${c} round ${round + 1}/${rounds}: ` +
                  group
                    .map((s) => `${s.variant} ${samples.get(s.variant)!.rps.at(-1)!.toFixed(0)}`)
                    .join(' | '),
              );
            }
          }
          const ours = samples.get('resource-guard')!.rps;
          for (const server of group) {
            const s = samples.get(server.variant)!;
            const ratios = ours.map((v, i) => v / s.rps[i]!);
            rows.push({
              alg,
              connections: c,
              server: server.variant,
              rps: median(s.rps),
              eldP99Ms: median(s.eld),
              latencyP99Ms: median(s.p99),
              ours: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) },
              tokens: cursor.get(server.variant)!,
            });
          }
        }
        for (const s of servers) {
          const used = pool.slice(0, cursor.get(s.variant));
          if (new Set(used).size !== used.length) throw new Error('a token was sent twice');
        }
      } finally {
        for (const s of servers) s.child.kill();
        jwks.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runPeers();
  for (const r of rows) {
    console.log(
      `${r.alg} c${r.connections} ${r.server.padEnd(15)} ${r.rps.toFixed(0).padStart(6)} req/s  eld p99 ${r.eldP99Ms.toFixed(1)} ms  latency p99 ${r.latencyP99Ms.toFixed(1)} ms  resource-guard/this ${r.ours.median.toFixed(2)} [${r.ours.min.toFixed(2)}–${r.ours.max.toFixed(2)}]`,
    );
  }
  process.exit(0);
}
