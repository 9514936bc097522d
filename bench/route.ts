/**
 * Where a signature is verified: inline (synchronous `crypto.verify` on the event loop), on libuv's
 * thread pool (its callback form), or adaptive (inline while nothing is on the pool and the turn
 * of the loop has spent under 0.2 ms verifying inline, else the pool) — per algorithm and key size, with 1
 * and 32 requests in flight. In-process, through src/signature.ts's own `verifySignature` with the
 * route forced: each request starts in its own turn of the event loop (`setImmediate`, as a
 * socket's data would), spends a fixed 20 µs of synchronous "framework" work (parsing, routing),
 * then verifies. Reported: µs per request (throughput) and the event loop's delay p99
 * (`monitorEventLoopDelay`, 1 ms resolution) during the run, in interleaved rounds.
 *
 *   TSX_TSCONFIG_PATH=bench/tsconfig.json node --import tsx bench/route.ts [-- --rounds 7]
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { signatureRoute, verifySignature } from '../src/signature.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: { rounds: { type: 'string', default: '7' } },
  strict: false,
});

type Route = 'inline' | 'pool' | 'adaptive';
const ROUTES: Route[] = ['inline', 'pool', 'adaptive'];
const FRAMEWORK_US = 20;

interface Case {
  readonly name: string;
  readonly alg: string;
  readonly hash: string | null;
  readonly options: Record<string, unknown>;
  readonly key: () => { privateKey: KeyObject };
}
const rsa = (bits: number) => () => generateKeyPairSync('rsa', { modulusLength: bits });
const ec = (namedCurve: string) => () => generateKeyPairSync('ec', { namedCurve });
const PSS = { padding: 6, saltLength: 32 };
export const ROUTE_CASES: Case[] = [
  { name: 'RS256 2048', alg: 'RS256', hash: 'sha256', options: {}, key: rsa(2048) },
  { name: 'PS256 2048', alg: 'PS256', hash: 'sha256', options: PSS, key: rsa(2048) },
  { name: 'RS256 3072', alg: 'RS256', hash: 'sha256', options: {}, key: rsa(3072) },
  { name: 'RS256 4096', alg: 'RS256', hash: 'sha256', options: {}, key: rsa(4096) },
  { name: 'ES256', alg: 'ES256', hash: 'sha256', options: {}, key: ec('P-256') },
  {
    name: 'EdDSA',
    alg: 'EdDSA',
    hash: null,
    options: {},
    key: () => generateKeyPairSync('ed25519'),
  },
  { name: 'ES384', alg: 'ES384', hash: 'sha384', options: {}, key: ec('P-384') },
  { name: 'ES512', alg: 'ES512', hash: 'sha512', options: {}, key: ec('P-521') },
];

export interface RouteRow {
  name: string;
  inflight: number;
  route: Route;
  /** Medians of rounds. */
  usPerRequest: number;
  eldP99Ms: number;
  /** The policy's route for this key (what `signatureRoute.force = undefined` does). */
  policy: string;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function busy(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until);
}

export async function runRoute(
  log = console.log,
  rounds = Number(args.rounds),
): Promise<RouteRow[]> {
  const rows: RouteRow[] = [];
  for (const c of ROUTE_CASES) {
    const { privateKey } = c.key();
    const publicKey = createPublicKey(privateKey);
    const header = Buffer.from(JSON.stringify({ alg: c.alg, typ: 'at+jwt' })).toString('base64url');
    const tokens = Array.from({ length: 64 }, (_, i) => {
      const input = `${header}.${Buffer.from(JSON.stringify({ jti: `r-${i}`, pad: 'x'.repeat(300) })).toString('base64url')}`;
      const signature = sign(c.hash, Buffer.from(input), {
        key: privateKey,
        dsaEncoding: 'ieee-p1363',
        ...c.options,
      });
      return `${input}.${signature.toString('base64url')}`;
    });
    // A slow verification gets fewer requests per run: about 60 ms of crypto each.
    signatureRoute.force = 'inline';
    for (let i = 0; i < 20; i++) verifySignature(tokens[i]!, publicKey, c.alg);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) verifySignature(tokens[i]!, publicKey, c.alg);
    const verifyUs = ((performance.now() - t0) * 1000) / 20;
    const count = Math.max(100, Math.round(60_000 / verifyUs));

    const drive = async (route: Route, inflight: number): Promise<[number, number]> => {
      signatureRoute.force = route;
      const eld = monitorEventLoopDelay({ resolution: 1 });
      let started = 0;
      let failed = 0;
      const start = performance.now();
      eld.enable();
      await new Promise<void>((resolve) => {
        let done = 0;
        const request = () => {
          const i = started++;
          setImmediate(() => {
            busy(FRAMEWORK_US);
            const finish = (ok: boolean) => {
              if (!ok) failed++;
              if (++done === count) resolve();
              else if (started < count) request();
            };
            const answer = verifySignature(tokens[i % tokens.length]!, publicKey, c.alg);
            if (answer instanceof Promise) void answer.then(finish);
            else finish(answer);
          });
        };
        for (let k = 0; k < Math.min(inflight, count); k++) request();
      });
      eld.disable();
      if (failed > 0) throw new Error(`${c.name}: ${failed} good signatures refused`);
      return [((performance.now() - start) * 1000) / count, eld.percentile(99) / 1e6];
    };

    for (const route of ROUTES) await drive(route, 8); // warm
    for (const inflight of [1, 32]) {
      const samples = new Map(ROUTES.map((r) => [r, [[], []] as [number[], number[]]]));
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 ? [...ROUTES].reverse() : ROUTES;
        for (const route of order) {
          const [us, eldMs] = await drive(route, inflight);
          samples.get(route)![0].push(us);
          samples.get(route)![1].push(eldMs);
        }
      }
      signatureRoute.force = undefined;
      const policy = policyOf(c, publicKey);
      for (const route of ROUTES) {
        const [us, eldMs] = samples.get(route)!;
        rows.push({
          name: c.name,
          inflight,
          route,
          usPerRequest: median(us),
          eldP99Ms: median(eldMs),
          policy,
        });
      }
      log(
        `${c.name.padEnd(10)} ${String(inflight).padStart(2)} in flight: ` +
          ROUTES.map((r) => {
            const row = rows.find(
              (x) => x.name === c.name && x.inflight === inflight && x.route === r,
            )!;
            return `${r} ${row.usPerRequest.toFixed(1)} µs/req (eld p99 ${row.eldP99Ms.toFixed(2)} ms)`;
          }).join(' | ') +
          ` — policy: ${policy}`,
      );
    }
  }
  signatureRoute.force = undefined;
  return rows;
}

/** The route the policy takes for this key (signature.ts decides). */
const policyOf = (_c: Case, publicKey: KeyObject): string =>
  signatureRoute.routeFor(publicKey) ?? 'jose';

if (import.meta.url === `file://${process.argv[1]}`) {
  await runRoute();
  process.exit(0);
}
