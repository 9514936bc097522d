/**
 * HTTP benchmark: autocannon (in this process) against servers in their own processes on
 * loopback, each pinned to one core when `taskset` exists (load generator on the other). GET
 * /products with 10 connections; bare Express / Koa / Fastify vs the same guarded by
 * resource-guard (one repeated ES384 token, and all-distinct tokens), and Express guarded by
 * express-oauth2-jwt-bearer on the repeated-token workload. Medians of interleaved rounds.
 *
 *   npm run bench:http [-- --rounds 3 --seconds 5]
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { benchKey, benchToken, ISSUER, jwksServer } from './fixtures.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) {
  args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '');
}
const DEFAULT_ROUNDS = Number(args.get('rounds') ?? 3);
const DEFAULT_SECONDS = Number(args.get('seconds') ?? 5);
const CONNECTIONS = 10;
/** More distinct tokens than the verified-token cache holds (10,000), cycled: every one a miss. */
const DISTINCT = 12_000;

const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
if (hasTaskset) spawnSync('taskset', ['-cp', '1', String(process.pid)]);

interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
}

async function startServer(
  framework: string,
  variant: string,
  env: NodeJS.ProcessEnv,
): Promise<Server> {
  const entry = fileURLToPath(new URL('./http-server.ts', import.meta.url));
  const command = [process.execPath, '--import', 'tsx', entry, framework, variant];
  const child = hasTaskset
    ? spawn('taskset', ['-c', '0', ...command], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(command[0] as string, command.slice(1), { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const { port } = JSON.parse(line.toString()) as { port: number };
  return { name: `${framework} ${variant}`, url: `http://127.0.0.1:${port}/products`, child };
}

/** One cursor for every run: a token is not sent again before all DISTINCT others were. */
let next = 0;

async function load(
  url: string,
  tokens: readonly string[] | undefined,
  seconds: number,
): Promise<number> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    ...(tokens === undefined
      ? {}
      : {
          requests: [
            {
              setupRequest: (request: { headers?: Record<string, string> }) => {
                request.headers = {
                  ...request.headers,
                  authorization: `Bearer ${tokens[next++ % tokens.length]}`,
                };
                return request;
              },
            },
          ],
        }),
  } as autocannon.Options);
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
  return result.requests.average;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

export interface HttpRow {
  framework: string;
  bare: number;
  /** One middleware (hook) that does nothing: what the framework itself charges for one. */
  noop: number;
  repeat: number;
  distinct: number;
  peer?: number;
}

export async function runHttp(
  log = console.log,
  { rounds = DEFAULT_ROUNDS, seconds = DEFAULT_SECONDS } = {},
): Promise<HttpRow[]> {
  const key = await benchKey('ES384');
  const { url: jwksUrl, server: jwks } = await jwksServer([key.jwk]);
  const repeat = [await benchToken(key, 'read:products')];
  log(`minting ${DISTINCT} distinct ES384 tokens...`);
  const distinct: string[] = [];
  for (let i = 0; i < DISTINCT; i++) distinct.push(await benchToken(key, 'read:products'));

  const env = { ...process.env, BENCH_ISSUER: ISSUER, BENCH_JWKS: jwksUrl };
  const servers = new Map<string, Server>();
  for (const framework of ['express', 'koa', 'fastify']) {
    for (const variant of ['bare', 'noop', 'guarded']) {
      servers.set(`${framework} ${variant}`, await startServer(framework, variant, env));
    }
  }
  servers.set('express peer', await startServer('express', 'peer', env));

  const workloads: [string, string, readonly string[] | undefined][] = [];
  for (const framework of ['express', 'koa', 'fastify']) {
    workloads.push([`${framework} bare`, `${framework} bare`, undefined]);
    workloads.push([`${framework} noop`, `${framework} noop`, undefined]);
    workloads.push([`${framework} repeat`, `${framework} guarded`, repeat]);
    workloads.push([`${framework} distinct`, `${framework} guarded`, distinct]);
  }
  workloads.push(['express peer', 'express peer', repeat]);

  const samples = new Map<string, number[]>(workloads.map(([name]) => [name, []]));
  try {
    for (const [, server, tokens] of workloads) await load(servers.get(server)!.url, tokens, 1); // warm-up
    for (let round = 0; round < rounds; round++) {
      for (const [name, server, tokens] of workloads) {
        const rps = await load(servers.get(server)!.url, tokens, seconds);
        samples.get(name)!.push(rps);
        log(`round ${round + 1}/${rounds} ${name.padEnd(18)} ${rps.toFixed(0)} req/s`);
      }
    }
  } finally {
    for (const server of servers.values()) server.child.kill();
    jwks.close();
  }
  const m = (name: string) => median(samples.get(name) ?? [0]);
  return ['express', 'koa', 'fastify'].map((framework) => ({
    framework,
    bare: m(`${framework} bare`),
    noop: m(`${framework} noop`),
    repeat: m(`${framework} repeat`),
    distinct: m(`${framework} distinct`),
    ...(framework === 'express' ? { peer: m('express peer') } : {}),
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runHttp();
  for (const row of rows) {
    console.log(
      `${row.framework}: bare ${row.bare.toFixed(0)}, repeat ${row.repeat.toFixed(0)} (${(row.repeat / row.bare).toFixed(3)}), ` +
        `distinct ${row.distinct.toFixed(0)} (${(row.distinct / row.bare).toFixed(3)})` +
        (row.peer
          ? `, express-oauth2-jwt-bearer ${row.peer.toFixed(0)} (rg/peer ${(row.repeat / row.peer).toFixed(2)}×)`
          : ''),
    );
  }
}
