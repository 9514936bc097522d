/**
 * HTTP benchmark: wrk (one thread, 10 connections per server, pinned to core 1) against servers in
 * their own processes, all pinned to core 0, GET /products on loopback. ES256 tokens.
 *
 * - paired: for each framework, bare, noop (one do-nothing middleware / hook), assign (one that
 *   only sets `auth` to a constant object, where the adapter sets it: the floor of any auth
 *   middleware) and guarded (one repeated token) are loaded AT THE SAME MOMENT, each by its own
 *   wrk, sharing core 0: the ratios to bare come from the same seconds (sequential runs here swing
 *   ±30%). All four get the same request, `Authorization` header included (the others ignore it):
 *   what differs is the middleware, not the bytes on the wire. `--node <binary>` runs the servers
 *   on another Node (the paired table only); `--framework express|koa|fastify` limits the paired
 *   table to one framework. `--against <checkout>`: instead, bare and this build guarded against
 *   another checkout's build guarded (runAgainst), for a change's cost over HTTP.
 * - peer: Express guarded by resource-guard vs by express-oauth2-jwt-bearer, paired the same way.
 * - distinct: a guarded server of its own per framework, alone on core 0; every request carries a
 *   token that server (and every other) has never seen: tokens come from a per-server pool
 *   through a cursor that never wraps, each run writes the next unused slice to a file that wrk
 *   walks once (bench/wrk.lua); a run that runs out of tokens is void (an error). Pools are
 *   minted between runs, sized from the highest rate seen so far.
 *
 *   npm run bench:http [-- --rounds 8 --seconds 5] [-- --against /tmp/old --framework koa]
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ISSUER, jwksServer } from './fixtures.ts';
import { mintKey, mintTokens } from './mint.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    // 8: with four variants started in a rotating order, each starts first twice.
    rounds: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    node: { type: 'string' },
    // One framework's paired table only (express, koa or fastify).
    framework: { type: 'string' },
    against: { type: 'string' },
  },
  strict: false,
});
const CONNECTIONS = 10;
const WRK_SCRIPT = fileURLToPath(new URL('./wrk.lua', import.meta.url));

export const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
export const wrkVersion = (() => {
  const out = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (out.error) throw new Error('wrk not found: apt-get install -y wrk');
  return /wrk (\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? '?';
})();
if (hasTaskset) spawnSync('taskset', ['-cp', '1', String(process.pid)]);
export const pin = (core: number, command: string[]) =>
  hasTaskset ? ['taskset', '-c', String(core), ...command] : command;

interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
}

async function startServer(
  framework: string,
  variant: string,
  env: NodeJS.ProcessEnv,
  node = process.execPath,
  entry = fileURLToPath(new URL('./http-server.ts', import.meta.url)),
): Promise<Server> {
  const [command, ...rest] = pin(0, [node, '--import', 'tsx', entry, framework, variant]);
  const child = spawn(command!, rest, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const { port } = JSON.parse(line.toString()) as { port: number };
  return { name: `${framework} ${variant}`, url: `http://127.0.0.1:${port}/products`, child };
}

interface WrkResult {
  requests: number;
  duration_us: number;
  status_errors: number;
  socket_errors: number;
  tokens_used: number;
  exhausted: number;
  p99_us: number;
}

/** One wrk run: `token` as a static header, or `tokenFile` walked once. Resolves req/s. */
export async function wrk(
  url: string,
  seconds: number,
  load: { token?: string; tokenFile?: string },
  connections = CONNECTIONS,
): Promise<WrkResult & { rps: number }> {
  const header = load.token === undefined ? [] : ['-H', `Authorization: Bearer ${load.token}`];
  const [command, ...rest] = pin(1, [
    'wrk',
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '-s',
    WRK_SCRIPT,
    ...header,
    url,
  ]);
  const child = spawn(command!, rest, {
    env: { ...process.env, WRK_TOKENS: load.tokenFile ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'close');
  const json = /^RESULT (.*)$/m.exec(out)?.[1];
  if (json === undefined) throw new Error(`wrk ${url}: no result\n${out}`);
  const result = JSON.parse(json) as WrkResult;
  if (!result.exhausted && (result.status_errors > 0 || result.socket_errors > 0)) {
    throw new Error(
      `${url}: ${result.status_errors} non-2xx, ${result.socket_errors} socket errors`,
    );
  }
  return { ...result, rps: result.requests / (result.duration_us / 1e6) };
}

/**
 * Nanoseconds of CPU a process has used, all its threads: the first field of each
 * /proc/<pid>/task/<tid>/schedstat (time on a CPU; then run-queue wait, then timeslices).
 * `undefined` off Linux or for a process gone. (A server is `taskset`'s exec: the same pid.)
 */
function cpuNs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return total;
  } catch {
    return undefined;
  }
}

/** Ends a server and waits for it: the next round's servers start on a quiet core. */
async function stop(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = once(server.child, 'exit');
  server.child.kill();
  await exited;
}

/** 0..n-1 starting at `round` (mod n): who starts first changes every round. */
const rotation = (n: number, round: number) =>
  Array.from({ length: n }, (_, i) => (i + Math.max(0, round)) % n);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const spread = (values: number[]) => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
});
export type Spread = ReturnType<typeof spread>;

/** Paired rounds of one framework: req/s medians, the per-round ratios to bare (and guarded to assign). */
export interface PairedRow {
  framework: string;
  bare: number;
  noop: number;
  assign: number;
  repeat: number;
  noopRatio: Spread;
  assignRatio: Spread;
  repeatRatio: Spread;
  repeatToAssign: Spread;
  /**
   * The same ratio from CPU time instead of req/s: bare's CPU per request / guarded's, per round
   * (every thread of each server, from /proc: immune to how the scheduler shared the core).
   * `undefined` where /proc is not there.
   */
  repeatCpuRatio: Spread | undefined;
  /** µs of CPU per request, medians of rounds: bare, noop, assign, guarded. */
  cpuUs: readonly number[] | undefined;
}

export interface HttpRow extends PairedRow {
  /** Alone on core 0, every token a first sighting. */
  distinct: number;
  distinctP99Ms: number;
  distinctTokens: number;
  distinctRequests: number;
}

export interface PairedResult {
  rows: PairedRow[];
  /** The Node the servers ran on (`process.version` of that binary). */
  node: string;
  rounds: number;
  seconds: number;
}

export interface HttpResult {
  rows: HttpRow[];
  node: string;
  /** Express: resource-guard / express-oauth2-jwt-bearer, paired, repeat token. */
  peer: { guarded: number; peer: number; ratio: Spread };
  rounds: number;
  seconds: number;
  distinctRounds: number;
  distinctSeconds: number;
  wrk: string;
  pinned: boolean;
}

const FRAMEWORKS = ['express', 'koa', 'fastify'].filter(
  (name) => args.framework === undefined || args.framework === name,
);
const VARIANTS = ['bare', 'noop', 'assign', 'guarded'] as const;

interface Setup {
  key: ReturnType<typeof mintKey>;
  repeat: string;
  env: NodeJS.ProcessEnv;
  close(): void;
}

async function setUp(): Promise<Setup> {
  const key = mintKey('ES256');
  const { url: jwksUrl, server: jwks } = await jwksServer([key.jwk as never]);
  const [repeat] = (await mintTokens(key, 1, 'read:products')) as [string];
  const env = {
    ...process.env,
    BENCH_ISSUER: ISSUER,
    BENCH_JWKS: jwksUrl,
    BENCH_ALG: 'ES256',
    BENCH_TOKEN: repeat,
  };
  return { key, repeat, env, close: () => jwks.close() };
}

const versionOf = (node: string) =>
  spawnSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).stdout.trim();

/**
 * The paired table: per framework, bare, noop, assign and guarded loaded at the same moment.
 * `node`: the binary the servers run on (default: this one).
 */
export async function runPaired(
  log = console.log,
  {
    rounds = Number(args.rounds),
    seconds = Number(args.seconds),
    node = (args.node as string | undefined) ?? process.execPath,
  }: { rounds?: number; seconds?: number; node?: string } = {},
  setup?: Setup,
): Promise<PairedResult> {
  const own = setup ?? (await setUp());
  const servers: Server[] = [];
  try {
    const rows: PairedRow[] = [];
    for (const framework of FRAMEWORKS) {
      const samples: number[][] = VARIANTS.map(() => []);
      /** µs of CPU per request, per variant and round; dropped if any reading failed. */
      let cpu: number[][] | undefined = VARIANTS.map(() => []);
      for (let round = 0; round < rounds; round++) {
        // Fresh processes every round: one process of the same code can run ~15% slower than
        // another for its whole life (where its JIT code and heap landed), so a variant must not
        // keep one process's luck through every round.
        const group: Server[] = [];
        for (const variant of VARIANTS) {
          group.push(await startServer(framework, variant, own.env, node));
        }
        servers.push(...group);
        // The same request to all (the token's header too): only the middleware differs. The
        // wrk processes start in a rotating order: the first one started measures a few % low
        // (an A/A run of two guarded servers showed it), so no variant keeps that place.
        const load = async (time: number) => {
          const started: Promise<Awaited<ReturnType<typeof wrk>>>[] = [];
          for (const i of rotation(group.length, round)) {
            started[i] = wrk(group[i]!.url, time, { token: own.repeat });
          }
          return Promise.all(started);
        };
        await load(2); // warm-up: the JIT's
        const before = group.map((server) => cpuNs(server.child.pid));
        const results = await load(seconds);
        const after = group.map((server) => cpuNs(server.child.pid));
        await Promise.all(group.map(stop));
        results.forEach((r, i) => samples[i]!.push(r.rps));
        results.forEach((r, i) => {
          const [from, to] = [before[i], after[i]];
          if (from === undefined || to === undefined || r.requests === 0) cpu = undefined;
          else cpu?.[i]!.push((to - from) / 1000 / r.requests);
        });
        const [b, ...others] = results.map((r) => r.rps) as [number, ...number[]];
        log(
          `round ${round + 1}/${rounds} ${framework.padEnd(8)} bare ${b.toFixed(0)} | ${others
            .map((v, i) => `${VARIANTS[i + 1]} ${v.toFixed(0)} (${(v / b).toFixed(3)})`)
            .join(' | ')} req/s`,
        );
      }
      const [b, n, a, g] = samples as [number[], number[], number[], number[]];
      rows.push({
        framework,
        bare: median(b),
        noop: median(n),
        assign: median(a),
        repeat: median(g),
        noopRatio: spread(n.map((v, i) => v / b[i]!)),
        assignRatio: spread(a.map((v, i) => v / b[i]!)),
        repeatRatio: spread(g.map((v, i) => v / b[i]!)),
        repeatToAssign: spread(g.map((v, i) => v / a[i]!)),
        repeatCpuRatio: cpu && spread(cpu[0]!.map((bareUs, i) => bareUs / cpu![3]![i]!)),
        cpuUs: cpu?.map(median),
      });
    }
    return { rows, node: versionOf(node), rounds, seconds };
  } finally {
    for (const server of servers) server.child.kill();
    if (setup === undefined) own.close();
  }
}

export async function runHttp(
  log = console.log,
  { rounds = Number(args.rounds), seconds = Number(args.seconds) } = {},
): Promise<HttpResult> {
  const distinctRounds = Math.max(1, Math.min(3, rounds));
  const distinctSeconds = Math.max(2, Math.min(3, seconds));
  const setup = await setUp();
  const { key, repeat, env } = setup;
  const servers = new Map<string, Server>();
  const dir = mkdtempSync(join(tmpdir(), 'rg-bench-'));
  try {
    const paired = await runPaired(log, { rounds, seconds, node: process.execPath }, setup);
    for (const framework of FRAMEWORKS) {
      // Its own process: its cache never holds a token another run sent.
      servers.set(`${framework} distinct`, await startServer(framework, 'guarded', env));
    }
    servers.set('express guarded', await startServer('express', 'guarded', env));
    servers.set('express peer', await startServer('express', 'peer', env));
    const url = (name: string) => servers.get(name)!.url;

    // Peer: resource-guard vs express-oauth2-jwt-bearer, paired.
    const peerSamples: [number[], number[]] = [[], []];
    for (let round = -1; round < distinctRounds; round++) {
      const names = ['express guarded', 'express peer'];
      const started: Promise<Awaited<ReturnType<typeof wrk>>>[] = [];
      for (const i of rotation(2, round)) {
        started[i] = wrk(url(names[i]!), round < 0 ? 2 : seconds, { token: repeat });
      }
      const [g, p] = (await Promise.all(started)) as [
        WrkResult & { rps: number },
        WrkResult & { rps: number },
      ];
      if (round < 0) continue;
      peerSamples[0].push(g.rps);
      peerSamples[1].push(p.rps);
      log(
        `round ${round + 1}/${distinctRounds} express  resource-guard ${g.rps.toFixed(0)} | express-oauth2-jwt-bearer ${p.rps.toFixed(0)} req/s`,
      );
    }

    // Distinct: each token reaches a server exactly once.
    const distinct = new Map<
      string,
      { rps: number[]; p99: number[]; tokens: number; requests: number }
    >();
    let highest = 4000;
    for (const framework of FRAMEWORKS) {
      const pool: string[] = [];
      let cursor = 0;
      const stats = { rps: [] as number[], p99: [] as number[], tokens: 0, requests: 0 };
      for (let round = -1; round < distinctRounds; round++) {
        const runSeconds = round < 0 ? 1 : distinctSeconds;
        let result: Awaited<ReturnType<typeof wrk>> | undefined;
        for (let attempt = 0; result === undefined; attempt++) {
          if (attempt === 3)
            throw new Error(`${framework} distinct: the token pool keeps running out`);
          const need = Math.ceil(highest * runSeconds * 2) + 2 * CONNECTIONS;
          if (pool.length - cursor < need) {
            pool.push(...(await mintTokens(key, need - (pool.length - cursor), 'read:products')));
          }
          const file = join(dir, `${framework}-${round + 1}-${attempt}.txt`);
          writeFileSync(file, `${pool.slice(cursor, cursor + need).join('\n')}\n`);
          const run = await wrk(url(`${framework} distinct`), runSeconds, { tokenFile: file });
          cursor += run.tokens_used; // the next run starts past every token this one sent
          highest = Math.max(highest, run.rps, run.tokens_used / runSeconds);
          // Ran out: void (its last requests were refused); again with a bigger pool.
          if (run.exhausted) log(`${framework} distinct: pool of ${need} ran out, run again`);
          else result = run;
        }
        if (round < 0) continue;
        stats.rps.push(result.rps);
        stats.p99.push(result.p99_us / 1000);
        stats.requests += result.requests;
        log(
          `round ${round + 1}/${distinctRounds} ${framework.padEnd(8)} distinct ${result.rps.toFixed(0)} req/s, p99 ${(result.p99_us / 1000).toFixed(1)} ms, ${result.tokens_used} tokens sent once each (${result.requests} answered)`,
        );
      }
      stats.tokens = cursor;
      if (new Set(pool.slice(0, cursor)).size !== cursor) throw new Error('a token was sent twice');
      distinct.set(framework, stats);
    }

    return {
      rows: paired.rows.map((row) => {
        const d = distinct.get(row.framework)!;
        return {
          ...row,
          distinct: median(d.rps),
          distinctP99Ms: median(d.p99),
          distinctTokens: d.tokens,
          distinctRequests: d.requests,
        };
      }),
      node: paired.node,
      peer: {
        guarded: median(peerSamples[0]),
        peer: median(peerSamples[1]),
        ratio: spread(peerSamples[0].map((v, i) => v / peerSamples[1][i]!)),
      },
      rounds,
      seconds,
      distinctRounds,
      distinctSeconds,
      wrk: wrkVersion,
      pinned: hasTaskset,
    };
  } finally {
    for (const server of servers.values()) server.child.kill();
    setup.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Two builds over HTTP (`--against <checkout>`): per framework, bare, guarded by the other
 * checkout's build (its own bench/http-server.ts, which imports its own dist/ by package name:
 * build it first) and guarded by this one, loaded at the same moment, fresh processes every
 * round; ratio = this / other within a round. The question a change's author asks ("did my
 * change cost the guarded request anything?"), answered without the host's mood: both builds
 * share the same seconds and the same core.
 */
export async function runAgainst(
  checkout: string,
  log = console.log,
  {
    rounds = Number(args.rounds),
    seconds = Number(args.seconds),
    node = (args.node as string | undefined) ?? process.execPath,
  }: { rounds?: number; seconds?: number; node?: string } = {},
): Promise<{ framework: string; oldRatio: Spread; newRatio: Spread; newToOld: Spread }[]> {
  const other = join(checkout, 'bench/http-server.ts');
  if (!existsSync(other) || !existsSync(join(checkout, 'dist'))) {
    throw new Error(`--against ${checkout}: no bench/http-server.ts or no dist/ there (build it)`);
  }
  const setup = await setUp();
  const servers: Server[] = [];
  const rows = [];
  try {
    for (const framework of FRAMEWORKS) {
      const ratios = { old: [] as number[], new: [] as number[], newToOld: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        const group = [
          await startServer(framework, 'bare', setup.env, node),
          await startServer(framework, 'guarded', setup.env, node, other),
          await startServer(framework, 'guarded', setup.env, node),
        ];
        servers.push(...group);
        const load = (time: number) => {
          const started: Promise<Awaited<ReturnType<typeof wrk>>>[] = [];
          for (const i of rotation(group.length, round)) {
            started[i] = wrk(group[i]!.url, time, { token: setup.repeat });
          }
          return Promise.all(started);
        };
        await load(2);
        const [b, o, n] = (await load(seconds)).map((r) => r.rps) as [number, number, number];
        await Promise.all(group.map(stop));
        ratios.old.push(o / b);
        ratios.new.push(n / b);
        ratios.newToOld.push(n / o);
        log(
          `round ${round + 1}/${rounds} ${framework.padEnd(8)} bare ${b.toFixed(0)} | other ${o.toFixed(0)} (${(o / b).toFixed(3)}) | this ${n.toFixed(0)} (${(n / b).toFixed(3)}) | this/other ${(n / o).toFixed(3)}`,
        );
      }
      rows.push({
        framework,
        oldRatio: spread(ratios.old),
        newRatio: spread(ratios.new),
        newToOld: spread(ratios.newToOld),
      });
    }
    return rows;
  } finally {
    for (const server of servers) server.child.kill();
    setup.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const show = (rows: readonly PairedRow[]) => {
    for (const row of rows) {
      console.log(
        `${row.framework}: bare ${row.bare.toFixed(0)}, noop/bare ${row.noopRatio.median.toFixed(3)}, assign/bare ${row.assignRatio.median.toFixed(3)}, guarded/bare ${row.repeatRatio.median.toFixed(3)} ` +
          `[${row.repeatRatio.min.toFixed(3)}–${row.repeatRatio.max.toFixed(3)}], guarded/assign ${row.repeatToAssign.median.toFixed(3)}`,
      );
    }
  };
  if (typeof args.against === 'string') {
    const fmt = (r: Spread) => `${r.median.toFixed(3)} [${r.min.toFixed(3)}–${r.max.toFixed(3)}]`;
    for (const row of await runAgainst(args.against)) {
      console.log(
        `${row.framework}: other/bare ${fmt(row.oldRatio)}, this/bare ${fmt(row.newRatio)}, this/other ${fmt(row.newToOld)}`,
      );
    }
  } else if (typeof args.node === 'string') {
    const result = await runPaired();
    console.log(`servers on Node ${result.node}`);
    show(result.rows);
  } else {
    const result = await runHttp();
    show(result.rows);
    for (const row of result.rows)
      console.log(`${row.framework}: distinct ${row.distinct.toFixed(0)} req/s`);
    console.log(
      `express: resource-guard / express-oauth2-jwt-bearer ${result.peer.ratio.median.toFixed(2)}×`,
    );
  }
  process.exit(0);
}
