/**
 * The runtime smoke test: real tokens from the embedded issuer (examples/issuer.ts, on Node) sent
 * to app.mjs running on another runtime, which imports the BUILT package. Each check is one HTTP
 * request to the runtime, bounded by a timeout. run.sh installs the runtimes and the packed
 * package, then runs, for example:
 *
 *   node --import tsx test/runtimes/smoke.ts --target workerd --app <folder> --miniflare <dir>
 *
 * Targets: `bun`, `deno` (their own servers, serve.mjs), `workerd` and `workerd-nodejs-compat`
 * (miniflare; the second with `nodejs_compat` and a compatibility date after 2024-09-23).
 *
 * Two independent lines run side by side, one per route of the app: `/web` (a Web `Request` and
 * `authErrorResponse`) and `/hono` (`resource-guard/hono`), each with its own issuer, JWKS front
 * and module-scope verifier. Each line runs a few cycles of hours-in-seconds key life: a valid
 * token, tampered and wrong-audience tokens, stale keys refreshed in the background, a rotation, an
 * outage of the JWKS (503, reset connections or no answer) past `maxStale`, the recovery, and a
 * rotation that removes the old key. Every request must answer in time, never 500, 200 whenever
 * the keys can be had, 503 when they cannot, and 401 for a bad token.
 *
 * Before them, the runtime differential (differential.ts): a few hundred hostile tokens and DPoP
 * requests, each answered first by the same app and package on Node (the oracle); the runtime must
 * answer every one as Node did. `--only differential` runs just that part.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createProof, generateProofKey } from '../../examples/dpop-proof.ts';
import { startIssuer } from '../../examples/issuer.ts';
import type { Issuer } from '../../examples/issuer.ts';
import { prepareDifferential } from './differential.ts';

const SHOPPING_API = 'https://shopping.api';
const OTHER_API = 'https://other.api';

/**
 * The key cache, in seconds: hours of key life pass in a few seconds. The fetch timeout is roomy,
 * so that a loaded CI machine does not turn a slow answer into an outage.
 */
const KEYS = { maxAge: 2, maxStale: 3, cooldown: 1, timeout: 2 };
/** Past every deadline the test waits for, in ms. */
const MARGIN = 400;
/** Past `maxAge + maxStale`, where a 503 is expected: the runtime may take a while to store keys. */
const STALE_MARGIN = 1000;
/** A JWKS answer takes this long, so a background refresh outlives the request that starts it. */
const JWKS_LATENCY = 100;
/** The longest any one request may take, in ms (a hung request fails the check). */
const REQUEST_TIMEOUT = 5000;
/** A line stops after this many requests in a row hung: its verifier is wedged for good. */
const MAX_HUNG_IN_A_ROW = 3;
/** How long a runtime may take to start. */
const START_TIMEOUT = 30_000;

const { values: args } = parseArgs({
  options: {
    target: { type: 'string' },
    app: { type: 'string' },
    bun: { type: 'string' },
    deno: { type: 'string' },
    miniflare: { type: 'string' },
    cycles: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
});
const TARGETS = ['bun', 'deno', 'workerd', 'workerd-nodejs-compat'] as const;
type TargetName = (typeof TARGETS)[number];
const targetName = args.target as TargetName;
if (!TARGETS.includes(targetName)) throw new Error(`--target: one of ${TARGETS.join(', ')}`);
if (args.app === undefined)
  throw new Error('--app: the folder where the packed package is installed');
const appDir = args.app;
const cycles = Number(args.cycles);
if (args.only !== undefined && args.only !== 'differential') {
  throw new Error('--only: differential (or nothing, for everything)');
}
const onlyDifferential = args.only === 'differential';

type Outage = 'status' | 'reset' | 'silent';

/**
 * The issuer's JWKS as the verifier fetches it: a copy served from memory (so the issuer's own
 * speed does not matter), with latency, and outages on demand. It records when the last good set
 * went out and when the last refused fetch ended, so the test waits on facts, not guesses.
 */
async function startJwksFront(issuer: Issuer) {
  let outage: Outage | undefined;
  let body = '';
  let lastServed = 0;
  let lastRefused = 0;
  const server = createServer((req, res) => {
    const mode = outage;
    if (mode === 'silent') {
      // Never answers: the verifier's own timeout ends the fetch.
      lastRefused = Math.max(lastRefused, Date.now() + KEYS.timeout * 1000);
      return;
    }
    if (mode === 'reset') {
      lastRefused = Date.now();
      return void req.socket.destroy();
    }
    setTimeout(() => {
      if (mode === 'status') {
        lastRefused = Date.now();
        return void res.writeHead(503).end('down for maintenance');
      }
      lastServed = Date.now();
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    }, JWKS_LATENCY);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const front = {
    url: `http://127.0.0.1:${port}/jwks`,
    /** Copies the issuer's current JWKS (after a rotation). */
    async update() {
      const response = await fetch(issuer.jwksUri, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`the issuer's JWKS: ${response.status}`);
      body = await response.text();
    },
    /** When the last good JWKS went out (the verifier's keys are about this old). */
    get lastServed() {
      return lastServed;
    },
    /** When the last fetch the front refused ended (for a silent outage: when it times out). */
    get lastRefused() {
      return lastRefused;
    },
    set outage(next: Outage | undefined) {
      outage = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  await front.update();
  return front;
}

interface Target {
  readonly url: string;
  close(): Promise<void>;
}

/** app.mjs and serve.mjs next to the installed package, with the config for this run. */
function prepareApp(config: Record<string, unknown>): void {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const file of ['app.mjs', 'serve.mjs']) copyFileSync(join(here, file), join(appDir, file));
  writeFileSync(
    join(appDir, 'config.mjs'),
    `// Written by test/runtimes/smoke.ts.\nexport const options = ${JSON.stringify(config, null, 2)};\n`,
  );
}

/** Bun or Deno: their own server, serve.mjs, in a child process that prints its port. */
async function startServer(command: string, argv: string[]): Promise<Target> {
  const child: ChildProcess = spawn(command, argv, {
    cwd: appDir,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before listening`))),
  );
  exited.catch(() => undefined);
  const port = await Promise.race([
    new Promise<string>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const match = /^listening (\d+)$/.exec(line);
        if (match?.[1] !== undefined) resolve(match[1]);
        else console.log(`  [${targetName}] ${line}`);
      });
    }),
    exited,
    sleep(START_TIMEOUT).then(() => {
      throw new Error(`${command} did not listen within ${START_TIMEOUT} ms`);
    }),
  ]).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(3000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

interface MiniflareLike {
  readonly ready: Promise<URL>;
  dispose(): Promise<void>;
}

/** workerd through miniflare: app.mjs bundled with esbuild into one module worker. */
async function startWorker(nodejsCompat: boolean): Promise<Target> {
  if (args.miniflare === undefined) throw new Error('--miniflare: the folder miniflare is in');
  const { build } = await import('esbuild');
  const bundle = await build({
    entryPoints: [join(appDir, 'app.mjs')],
    absWorkingDir: appDir,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    logLevel: 'warning',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const entry = join(args.miniflare, 'node_modules/miniflare/dist/src/index.js');
  const { Miniflare } = (await import(pathToFileURL(entry).href)) as {
    Miniflare: new (options: Record<string, unknown>) => MiniflareLike;
  };
  const mf = new Miniflare({
    modules: true,
    script,
    scriptPath: 'worker.mjs',
    // Any date since 2024-09-23 gives nodejs_compat its full `process` (getBuiltinModule).
    compatibilityDate: '2025-09-01',
    compatibilityFlags: nodejsCompat ? ['nodejs_compat'] : [],
    host: '127.0.0.1',
    port: 0,
  });
  const url = await Promise.race([
    mf.ready,
    sleep(START_TIMEOUT).then(() => {
      throw new Error(`workerd did not start within ${START_TIMEOUT} ms`);
    }),
  ]);
  return { url: url.href.replace(/\/$/, ''), close: () => mf.dispose() };
}

interface Check {
  readonly line: string;
  readonly label: string;
  readonly expected: readonly number[];
  readonly got: string;
  readonly ok: boolean;
}

/** One request to the runtime: the status, or `hung` / `network error` (never throws). */
async function ask(url: string, token: string): Promise<{ status: string; detail: string }> {
  try {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT),
    });
    const text = await response.text();
    const detail = response.ok ? '' : (response.headers.get('www-authenticate') ?? text);
    return { status: String(response.status), detail: detail.slice(0, 200) };
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return { status: 'hung', detail: `no answer within ${REQUEST_TIMEOUT} ms` };
    }
    return { status: 'network error', detail: String((error as Error).cause ?? error) };
  }
}

/** A token whose payload was changed after signing (scopes widened), signature kept. */
function tamperPayload(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  claims.scope = 'read:products write:products admin';
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

/** A token with one signature character changed. */
function tamperSignature(token: string): string {
  const dot = token.lastIndexOf('.');
  const at = dot + 10;
  const swapped = token[at] === 'A' ? 'B' : 'A';
  return `${token.slice(0, at)}${swapped}${token.slice(at + 1)}`;
}

/** One line of the scenario: an issuer, its JWKS front and one route of the app. */
async function startLine(name: 'web' | 'hono') {
  const issuer = await startIssuer({
    resources: { [SHOPPING_API]: ['read:products'], [OTHER_API]: ['read:products'] },
  });
  const front = await startJwksFront(issuer);
  return { name, issuer, front };
}
type Line = Awaited<ReturnType<typeof startLine>>;

async function runLine(line: Line, target: Target, checks: Check[]): Promise<void> {
  const { issuer, front, name } = line;
  const url = `${target.url}/${name}`;
  const token = () => issuer.token(issuer.apps.reader, { scope: 'read:products' });
  const until = (at: number) => sleep(Math.max(0, at - Date.now()));
  const rotate = async (grace: boolean) => {
    await issuer.rotate({ grace });
    await front.update();
  };
  let hungInARow = 0;
  const expect = (label: string, jwt: string, ...expected: number[]) =>
    expectAt(url, label, jwt, ...expected);
  /** The verifier's `health()`, as the app serves it: 200 while its keys can verify, else 503. */
  const expectHealth = (label: string, ...expected: number[]) =>
    expectAt(`${url}/health`, `${label}: health()`, '', ...expected);
  const expectAt = async (at: string, label: string, jwt: string, ...expected: number[]) => {
    const { status, detail } = await ask(at, jwt);
    const ok = expected.map(String).includes(status);
    checks.push({ line: name, label, expected, got: status, ok });
    hungInARow = status === 'hung' ? hungInARow + 1 : 0;
    const mark = ok ? 'ok  ' : 'FAIL';
    const wanted = ok ? '' : ` (expected ${expected.join(' or ')})`;
    console.log(
      `  ${mark} /${name} ${label}: ${status}${wanted}${ok || !detail ? '' : ` ${detail}`}`,
    );
    if (hungInARow >= MAX_HUNG_IN_A_ROW) throw new Wedged();
  };
  const outages: Outage[] = ['status', 'reset', 'silent'];
  try {
    await cyclesOf(expect);
  } catch (error) {
    if (!(error instanceof Wedged)) throw error;
    const label = `${MAX_HUNG_IN_A_ROW} requests in a row hung: the rest of the line not run`;
    console.log(`  FAIL /${name} ${label}`);
    checks.push({ line: name, label, expected: [], got: 'stopped', ok: false });
  }

  async function cyclesOf(
    expect: (label: string, jwt: string, ...expected: number[]) => Promise<void>,
  ) {
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const c = `[${cycle}]`;
      const valid = await token();
      await expect(`${c} a valid token`, valid, 200);
      await expectHealth(`${c} keys fetched`, 200);
      await expect(`${c} the same token again (cached)`, valid, 200);
      await expect(`${c} payload tampered`, tamperPayload(await token()), 401);
      await expect(`${c} signature tampered`, tamperSignature(await token()), 401);
      const wrongAudience = await issuer.token(issuer.apps.reader, { resource: OTHER_API });
      await expect(`${c} wrong audience`, wrongAudience, 401);

      // Past maxAge: the keys still serve while a refresh runs in the background.
      await until(front.lastServed + KEYS.maxAge * 1000 + MARGIN);
      await expect(`${c} stale keys, refresh in the background`, await token(), 200);
      await expect(`${c} the next request`, await token(), 200);
      await sleep(JWKS_LATENCY * 3);
      await expect(`${c} after the background refresh`, await token(), 200);

      // A rotation: the new kid is fetched (at most once per cooldown).
      await rotate(true);
      await until(front.lastServed + KEYS.cooldown * 1000 + MARGIN);
      await expect(`${c} a token from the rotated key`, await token(), 200);

      // An outage of the JWKS: stale keys serve until maxAge + maxStale, then 503.
      const outage = outages[(cycle - 1) % outages.length] as Outage;
      front.outage = outage;
      await until(front.lastServed + KEYS.maxAge * 1000 + MARGIN);
      await expect(`${c} outage (${outage}), keys stale but within maxStale`, await token(), 200);
      await until(front.lastServed + (KEYS.maxAge + KEYS.maxStale) * 1000 + STALE_MARGIN);
      await expect(`${c} outage (${outage}), keys past maxStale`, await token(), 503);
      await expectHealth(`${c} outage (${outage}), keys past maxStale`, 503);
      await expect(`${c} outage (${outage}), tampered`, tamperPayload(await token()), 401, 503);
      await rotate(true);
      await sleep(KEYS.cooldown * 1000 + MARGIN);
      await expect(`${c} outage (${outage}), a new kid`, await token(), 503);

      // The issuer is back: valid tokens pass again once the back-off (at most the cooldown) ends.
      front.outage = undefined;
      await until(Math.max(Date.now(), front.lastRefused) + KEYS.cooldown * 1000 + MARGIN);
      await expect(`${c} after the outage`, await token(), 200);
      await expect(`${c} after the outage, again`, await token(), 200);
      await expectHealth(`${c} after the outage`, 200);

      // A rotation that drops the old key: the new kid passes, a token of the old key no longer.
      const old = await token();
      await rotate(false);
      await until(front.lastServed + KEYS.cooldown * 1000 + MARGIN);
      await expect(`${c} a token from the new key (old key removed)`, await token(), 200);
      await expect(`${c} a token from the removed key`, old, 401);
    }
  }
}

/** The public origin DPoP proofs name (the runtime listens elsewhere: behind a proxy, say). */
const DPOP_ORIGIN = 'https://api.smoke.example';

/**
 * DPoP on the runtime (`/dpop`, DPoP required, server nonces on): a bound token from the issuer
 * with a fresh proof passes once, after the server nonce; a replay, a proof for another method or
 * token, and the bound token as Bearer are refused. Runs before the lines rotate keys.
 */
async function runDpop(line: Line, target: Target, checks: Check[]): Promise<void> {
  const key = await generateProofKey();
  const token = await line.issuer.token(line.issuer.apps.reader, {
    scope: 'read:products',
    dpop: key,
  });
  const url = `${target.url}/dpop`;
  const htu = `${DPOP_ORIGIN}/dpop`;
  const send = async (headers: Record<string, string>) => {
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT) });
      const text = await response.text();
      return { status: String(response.status), response, text };
    } catch (error) {
      return { status: 'hung', response: undefined, text: String(error) };
    }
  };
  const check = (label: string, status: string, expected: number, detail = '') => {
    const ok = status === String(expected);
    checks.push({ line: 'dpop', label, expected: [expected], got: status, ok });
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} /dpop ${label}: ${status}${ok ? '' : ` ${detail}`}`);
  };
  const proof = (nonce?: string, method = 'GET', accessToken = token) =>
    createProof(key, { method, url: htu, accessToken, ...(nonce ? { nonce } : {}) });
  const dpop = async (p: string) => ({ authorization: `DPoP ${token}`, dpop: p });

  const first = await send(await dpop(await proof()));
  const nonce = first.response?.headers.get('dpop-nonce') ?? undefined;
  check('a proof without the server nonce: use_dpop_nonce', first.status, 401, first.text);
  const valid = await proof(nonce);
  const accepted = await send(await dpop(valid));
  check('a bound token with a fresh proof and the nonce', accepted.status, 200, accepted.text);
  const replayed = await send(await dpop(valid));
  check('the same proof again (replay)', replayed.status, 401, replayed.text);
  const post = await send(await dpop(await proof(nonce, 'POST')));
  check('a proof for another method', post.status, 401, post.text);
  const other = await send(await dpop(await proof(nonce, 'GET', `${token}x`)));
  check('a proof for another token (ath)', other.status, 401, other.text);
  const bearer = await send({ authorization: `Bearer ${token}` });
  check('the bound token as Bearer', bearer.status, 401, bearer.text);
}

/** Thrown when a line's requests keep hanging: its verifier is wedged. */
class Wedged extends Error {}

async function main(): Promise<number> {
  const lines = await Promise.all([startLine('web'), startLine('hono')]);
  const config = (line: Line) => ({
    issuer: line.issuer.issuer,
    audience: SHOPPING_API,
    jwksUri: line.front.url,
    keys: KEYS,
  });
  const differential = prepareDifferential(appDir);
  prepareApp({
    ...differential.config,
    web: config(lines[0]),
    hono: config(lines[1]),
    dpop: {
      ...config(lines[0]),
      dpop: {
        mode: 'required',
        origin: DPOP_ORIGIN,
        nonce: { secret: 'the runtime smoke test shares this secret' },
      },
    },
  });
  let target: Target | undefined;
  const checks: Check[] = [];
  try {
    switch (targetName) {
      case 'bun':
        target = await startServer(args.bun ?? 'bun', ['serve.mjs']);
        break;
      case 'deno':
        target = await startServer(args.deno ?? 'deno', [
          'run',
          '--allow-net',
          '--allow-read',
          '--allow-env',
          'serve.mjs',
        ]);
        break;
      case 'workerd':
      case 'workerd-nodejs-compat':
        target = await startWorker(targetName === 'workerd-nodejs-compat');
    }
    const started = target;
    const inside = await fetch(`${started.url}/runtime`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT),
    }).then((r) => r.text());
    console.log(`${targetName}: ${inside}`);
    const differences = await differential.run(targetName, started.url);
    checks.push(...differences.map((check) => ({ line: 'differential', ...check })));
    if (!onlyDifferential) {
      await runDpop(lines[0], started, checks);
      await Promise.all(lines.map((line) => runLine(line, started, checks)));
    }
  } finally {
    await target?.close();
    await Promise.all(lines.flatMap((line) => [line.front.close(), line.issuer.close()]));
  }
  const failed = checks.filter((check) => !check.ok);
  console.log(`${targetName}: ${checks.length - failed.length}/${checks.length} checks passed`);
  for (const name of [...lines.map((line) => line.name), 'dpop', 'differential']) {
    const first = failed.find((check) => check.line === name);
    if (first !== undefined) {
      console.log(`  /${name}: first failure: ${first.label}: ${first.got}`);
    }
  }
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
