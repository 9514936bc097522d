/**
 * Baseline comparison: two builds of resource-guard (e.g. the previous release and the current
 * tree) in ONE process, against the same loopback JWKS, same keys and same tokens, measured in
 * interleaved rounds (A B, then B A, …; median of rounds). Prints µs/op for each and the ratio
 * candidate / baseline (< 1 = the candidate is faster).
 *
 * Cases: a repeat token (answered from the verified-token cache) through the adapters' path (0.1:
 * `guard().attempt`; since: `resource-guard/kit`'s `routeGuard().run`) with a
 * plain `{ headers }` request and with a node-IncomingMessage-like request (`rawHeaders`), and
 * through `await verify(token)`, and an organization-level API token through
 * `await verify(token, { scopes, organization })` (per-call requirements: how session 23's
 * per-call option scan slipped by unmeasured); a first-seen token (a fresh one each op, from a
 * pre-minted pool, cache on) for ES384 and RS256.
 *
 *   cd /tmp/old && npm run build          # the baseline's dist/
 *   npm run build && cp -r dist /tmp/new-dist   # freeze the candidate
 *   npm run bench:baseline -- --baseline /tmp/old/dist --candidate /tmp/new-dist [--rounds 21 --ms 150 --pool 40000]
 *
 * A dist folder must resolve `jose` (a `node_modules` next to it or above it) and load as ESM (a
 * `package.json` with `"type": "module"` next to it or above it): a copied dist needs both.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AUDIENCE, benchKey, benchToken, ISSUER, jwksServer } from './fixtures.ts';
import type { BenchKey } from './fixtures.ts';

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    candidate: { type: 'string', default: './dist' },
    rounds: { type: 'string', default: '21' },
    /** Target duration of one side of one round, in ms. */
    ms: { type: 'string', default: '150' },
    /** Most pre-minted first-seen tokens per algorithm (caps first-seen ops per round). */
    pool: { type: 'string', default: '40000' },
  },
});
if (args.baseline === undefined) {
  console.error('usage: bench/baseline.ts --baseline <dist dir> [--candidate <dist dir>]');
  process.exit(2);
}
const ROUNDS = Number(args.rounds);
const ROUND_MS = Number(args.ms);
const POOL = Number(args.pool);
const SCOPES = { scopes: ['read:products'] };
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** The slice of the public API used here, common to both builds. */
interface Guard {
  attempt(request: object): unknown;
}
interface Verifier {
  guard(requirements: object): Guard;
  verify(token: string, requirements: object): Promise<unknown>;
}
interface Library {
  createVerifier(options: object): Verifier;
}
/** The adapter kit (0.2 on): what the adapters call instead of 0.1's `guard.attempt`. */
interface Kit {
  routeGuard(
    verifier: Verifier,
    options: object,
  ): { run(req: object, request: object, outcome: object): unknown };
}
const RETURN_AUTH = {
  pass: (auth: unknown) => auth,
  respond: (error: unknown) => {
    throw error;
  },
  fail: (error: unknown) => {
    throw error;
  },
};

async function load(dir: string): Promise<{ dir: string; lib: Library; kit: Kit | undefined }> {
  const entry = resolve(dir, 'src/index.js');
  if (!existsSync(entry)) throw new Error(`${entry} not found: build first`);
  const kitEntry = resolve(dir, 'src/kit.js');
  return {
    dir: resolve(dir),
    lib: (await import(pathToFileURL(entry).href)) as Library,
    kit: existsSync(kitEntry) ? ((await import(pathToFileURL(kitEntry).href)) as Kit) : undefined,
  };
}

/** The adapters' path of a build: the kit's route guard where there is one, else guard.attempt. */
function adapterPath(verifier: Verifier, kit: Kit | undefined): Guard {
  if (kit === undefined) return verifier.guard(SCOPES);
  const guard = kit.routeGuard(verifier, SCOPES);
  return { attempt: (request) => guard.run(request, request, RETURN_AUTH) };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** One side of a case: `time()` runs it once (about ROUND_MS) and returns µs/op. */
type Timer = () => Promise<number>;

/** µs per op of a synchronous op, batched 64 per clock read. */
const timeSync =
  (op: () => unknown): Timer =>
  () => {
    let sink: unknown;
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ROUND_MS) {
      for (let i = 0; i < 64; i++) sink = op();
      n += 64;
      now = performance.now();
    }
    if (sink === undefined) throw new Error('no result');
    return Promise.resolve(((now - start) * 1000) / n);
  };

/** µs per op of an async op, awaited one after the other, batched 16 per clock read. */
const timeAsync =
  (op: () => Promise<unknown>): Timer =>
  async () => {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ROUND_MS) {
      for (let i = 0; i < 16; i++) await op();
      n += 16;
      now = performance.now();
    }
    return ((now - start) * 1000) / n;
  };

interface Case {
  name: string;
  sides: [Timer, Timer];
}

interface Row {
  name: string;
  old: number;
  new: number;
  /** median(new) / median(old). */
  ratio: number;
  /** The median, min and max of the per-round ratios new / old (paired, same round). */
  paired: { median: number; min: number; max: number };
}

async function run(cases: Case[]): Promise<Row[]> {
  const samples = cases.map(() => [[], []] as [number[], number[]]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [c, testCase] of cases.entries()) {
      // A B in even rounds, B A in odd ones: neither side always runs right after the other.
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const side of order) {
        gc();
        samples[c]![side]!.push(await testCase.sides[side]!());
      }
    }
  }
  return cases.map(({ name }, c) => {
    const [a, b] = samples[c]!;
    const ratios = a.map((old, i) => b[i]! / old);
    return {
      name,
      old: median(a),
      new: median(b),
      ratio: median(b) / median(a),
      paired: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) },
    };
  });
}

async function mint(key: BenchKey, count: number): Promise<string[]> {
  const tokens: string[] = [];
  while (tokens.length < count) {
    const batch = Math.min(64, count - tokens.length);
    tokens.push(...(await Promise.all(Array.from({ length: batch }, () => benchToken(key)))));
  }
  return tokens;
}

const headerRequest = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const nodeRequest = (token: string) => ({
  headers: { host: 'api.example.test', authorization: `Bearer ${token}` },
  rawHeaders: ['Host', 'api.example.test', 'Authorization', `Bearer ${token}`],
});

async function main() {
  const started = performance.now();
  const libs = [await load(args.baseline!), await load(args.candidate)];
  const [es384, rs256] = [await benchKey('ES384'), await benchKey('RS256')];
  const { url, server } = await jwksServer([es384.jwk, rs256.jwk]);
  // Room for every pool token: first-seen ops never pay for an eviction.
  const cache = { maxEntries: 100_000, maxBytes: 1024 * 1024 * 1024 };
  const options = { issuer: ISSUER, audience: AUDIENCE, jwksUri: url, cache };
  try {
    const verifiers = libs.map(({ lib }) => lib.createVerifier(options)) as [Verifier, Verifier];
    const guards = verifiers.map((v, i) => adapterPath(v, libs[i]!.kit)) as [Guard, Guard];
    const token = await benchToken(es384);
    const ORGANIZATION = { scopes: ['read:products'], organization: 'org-bench' };
    const orgToken = await benchToken(es384, undefined, { organization_id: 'org-bench' });

    // Repeat token: a first sighting fills each cache (and loads the keys); then always a hit.
    const repeatCases: Case[] = [];
    const headerRequests = guards.map(() => headerRequest(token));
    const nodeRequests = guards.map(() => nodeRequest(token));
    for (const [i, verifier] of verifiers.entries()) {
      await verifier.verify(token, SCOPES);
      for (const request of [headerRequests[i]!, nodeRequests[i]!]) {
        const result = guards[i]!.attempt(request);
        if (result instanceof Promise || result === undefined) {
          throw new Error(`${libs[i]!.dir}: a repeat token's attempt is not synchronous`);
        }
      }
    }
    repeatCases.push(
      {
        name: 'repeat  guard.attempt {headers}',
        sides: [0, 1].map((i) => timeSync(() => guards[i]!.attempt(headerRequests[i]!))) as [
          Timer,
          Timer,
        ],
      },
      {
        name: 'repeat  guard.attempt {rawHeaders}',
        sides: [0, 1].map((i) => timeSync(() => guards[i]!.attempt(nodeRequests[i]!))) as [
          Timer,
          Timer,
        ],
      },
      {
        name: 'repeat  await verify(token)',
        sides: [0, 1].map((i) => timeAsync(() => verifiers[i]!.verify(token, SCOPES))) as [
          Timer,
          Timer,
        ],
      },
    );
    // A build older than organization-level requirements refuses the option: no such case then.
    const orgSupported = await Promise.all(
      verifiers.map((v) =>
        v.verify(orgToken, ORGANIZATION).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (orgSupported.every(Boolean)) {
      repeatCases.push({
        name: 'repeat  await verify(org token, { organization })',
        sides: [0, 1].map((i) => timeAsync(() => verifiers[i]!.verify(orgToken, ORGANIZATION))) as [
          Timer,
          Timer,
        ],
      });
    } else console.log('(organization case skipped: a build does not support it)');

    // First-seen: the same fresh tokens for both sides, each used once per side. Ops per round
    // are fixed (so both sides see the same tokens), sized from a calibration to about ROUND_MS.
    const firstSeenCases: Case[] = [];
    const firstSeenInfo: string[] = [];
    for (const key of [es384, rs256]) {
      const firstSeen = (i: number, t: string) => {
        const result = guards[i]!.attempt(headerRequest(t));
        return result instanceof Promise ? result : undefined;
      };
      const warm = await mint(key, 200);
      let calibration = 0;
      for (const i of [0, 1]) {
        const start = performance.now();
        for (const t of warm) await firstSeen(i, t);
        calibration = Math.max(calibration, (performance.now() - start) / warm.length);
      }
      const perRound = Math.max(
        10,
        Math.min(Math.ceil(ROUND_MS / calibration), Math.floor(POOL / ROUNDS)),
      );
      const pool = await mint(key, perRound * ROUNDS);
      const cursors = [0, 0];
      const side =
        (i: number): Timer =>
        async () => {
          const from = cursors[i]!;
          cursors[i] = from + perRound;
          const start = performance.now();
          for (let k = from; k < from + perRound; k++) await firstSeen(i, pool[k]!);
          return ((performance.now() - start) * 1000) / perRound;
        };
      firstSeenCases.push({
        name: `first-seen ${key.alg} guard.attempt`,
        sides: [side(0), side(1)],
      });
      firstSeenInfo.push(`${key.alg} ${perRound} ops/round`);
    }

    const rows = await run([...repeatCases, ...firstSeenCases]);

    const cmd = [process.execPath, ...process.execArgv, ...process.argv.slice(1)].join(' ');
    console.log(`command: ${cmd}`);
    console.log(
      `node ${process.version}; baseline (old) ${libs[0]!.dir}; candidate (new) ${libs[1]!.dir}`,
    );
    console.log(
      `${ROUNDS} interleaved rounds (AB/BA), ~${ROUND_MS} ms per side per round; first-seen: ` +
        `${firstSeenInfo.join(', ')}; gc between samples: ${'gc' in globalThis ? 'yes' : 'no (run with --expose-gc)'}`,
    );
    console.log('');
    const header = `| case | old µs/op | new µs/op | new/old (medians) | new/old per round: median [min–max] |`;
    console.log(header);
    console.log('|---|---:|---:|---:|---:|');
    for (const row of rows) {
      const digits = row.old < 20 ? 3 : 1;
      console.log(
        `| ${row.name} | ${row.old.toFixed(digits)} | ${row.new.toFixed(digits)} | ` +
          `**${row.ratio.toFixed(3)}** | ${row.paired.median.toFixed(3)} [${row.paired.min.toFixed(2)}–${row.paired.max.toFixed(2)}] |`,
      );
    }
    console.log('');
    console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
  } finally {
    server.close();
  }
}

await main();
process.exit(0);
