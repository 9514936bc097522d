/**
 * A bounded soak: load on loopback against the Express example (in its own process) while the
 * embedded issuer rotates keys — with and without a grace period — and its JWKS goes down (503)
 * and hangs, then comes back. Counts wrong decisions (a valid token rejected outside the
 * unavoidable window, an invalid one accepted), 5xx answers, RSS over time and log lines holding a
 * token; writes bench/SOAK.md; ends by itself; exits 1 on any wrong decision, 500 or leak.
 *
 *   npm run soak -- --seconds 300
 */
import { spawn } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, importJWK, SignJWT } from 'jose';
import type { JWK } from 'jose';
import { startIssuer } from '../examples/issuer.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) {
  args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '');
}
const SECONDS = Number(args.get('seconds') ?? 60);
const WORKERS = Number(args.get('workers') ?? 16);
const COOLDOWN = 30; // the example's default keys.cooldown
const TIMEOUT = 5; // the example's default keys.timeout
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;

// The issuer, and a JWKS endpoint in front of it that the soak can take down.
const issuer = await startIssuer();
let jwksState: 'up' | 'down' | 'hang' = 'up';
const proxy = createServer(async (req, res) => {
  if (jwksState === 'down') return res.writeHead(503).end();
  if (jwksState === 'hang') return; // never answers; the example's timeout must cut it off
  const upstream = await fetch(issuer.jwksUri);
  res.writeHead(upstream.status, { 'content-type': 'application/json' });
  res.end(await upstream.text());
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const jwksUri = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/jwks`;

// The API under test: the Express example, exactly as a user runs it.
const api = spawn(process.execPath, ['--import', 'tsx', here('../examples/express.ts')], {
  env: { ...process.env, ISSUER: issuer.issuer, JWKS_URI: jwksUri, PORT: '0' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
const logLines: string[] = [];
api.stderr.setEncoding('utf8').on('data', (chunk: string) => logLines.push(...chunk.split('\n')));
const apiUrl = await new Promise<string>((resolve) => {
  api.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const match = /on (http:\/\/[\d.]+:\d+)/.exec(chunk);
    if (match) resolve(`${match[1]}/products`);
  });
});

// Tokens: the current valid one, and invalid ones signed with the issuer's real key where it matters.
interface Tokens {
  valid: string;
  kid: string;
  invalid: string[];
}
const sent = new Set<string>();
const kidSince = new Map<string, number>();
const outages: [number, number][] = [];

async function makeTokens(): Promise<Tokens> {
  const valid = await issuer.token(issuer.apps.reader, { scope: 'read:products' });
  const signing = issuer.signingKeys[0] as JWK;
  const kid = signing.kid as string;
  if (!kidSince.has(kid)) kidSince.set(kid, elapsed());
  const key = await importJWK(signing, 'ES384');
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    jti: 'soak',
    sub: 'shopping-reader',
    client_id: 'shopping-reader',
    scope: 'read:products',
    iss: issuer.issuer,
    aud: 'https://shopping.api',
    iat: now,
    exp: now + 3600,
  };
  const sign = (payload: object, k = key) =>
    new SignJWT(payload as never).setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid }).sign(k);
  const foreign = (await generateKeyPair('ES384')).privateKey;
  const [h, , s] = valid.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'read:products admin' })).toString('base64url')}.${s}`;
  const invalid = [
    await sign({ ...claims, iat: now - 7200, exp: now - 3600 }),
    await sign({ ...claims, aud: 'https://billing.api' }),
    await sign({ ...claims, iss: issuer.endpoint }),
    await sign(claims, foreign),
    tampered,
    `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`,
  ];
  for (const t of [valid, ...invalid]) sent.add(t);
  return { valid, kid, invalid };
}

let tokens = await makeTokens();
const counts = {
  requests: 0,
  validOk: 0,
  validInWindow: 0,
  validDuringOutage: 0,
  validRejectedWrongly: 0,
  invalidRejected: 0,
  invalidAccepted: 0,
  status5xx: 0,
  status500: 0,
};
const wrongSamples: string[] = [];

// After an outage the key set retries on its back-off (at most the cooldown apart): 503s for a
// kid it could not fetch are expected until that retry succeeds.
const inOutage = (t: number) =>
  jwksState !== 'up' || outages.some(([from, to]) => t >= from && t <= to + COOLDOWN + TIMEOUT + 2);

async function worker(deadline: number) {
  let i = 0;
  while (Date.now() < deadline) {
    const current = tokens;
    const isValid = i++ % 4 !== 0;
    const token = isValid ? current.valid : (current.invalid[i % current.invalid.length] as string);
    let status = 0;
    let description = '';
    try {
      const response = await fetch(apiUrl, { headers: { authorization: `Bearer ${token}` } });
      status = response.status;
      description =
        ((await response.json()) as { error_description?: string }).error_description ?? '';
    } catch (error) {
      status = -1;
      description = String(error);
    }
    counts.requests++;
    const t = elapsed();
    if (status >= 500) counts.status5xx++;
    if (status === 500) counts.status500++;
    if (isValid) {
      const since = kidSince.get(current.kid) ?? 0;
      if (status === 200) counts.validOk++;
      else if (
        status === 401 &&
        /signing key is unknown/.test(description) &&
        t - since <= COOLDOWN + 2
      ) {
        counts.validInWindow++; // the new kid waits for the cooldown since the last fetch
      } else if (status === 503 && inOutage(t)) counts.validDuringOutage++;
      else {
        counts.validRejectedWrongly++;
        if (wrongSamples.length < 10)
          wrongSamples.push(`t=${t.toFixed(1)} valid → ${status} ${description}`);
      }
    } else if (status === 200) {
      counts.invalidAccepted++;
      if (wrongSamples.length < 10) wrongSamples.push(`t=${t.toFixed(1)} invalid accepted`);
    } else if (status === 400 || status === 401 || (status === 503 && inOutage(t))) {
      counts.invalidRejected++;
    } else {
      counts.validRejectedWrongly++; // an unexpected answer to an invalid token
      if (wrongSamples.length < 10) wrongSamples.push(`t=${t.toFixed(1)} invalid → ${status}`);
    }
  }
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

// The scenario, as fractions of the run.
const events: [number, string, () => Promise<void> | void][] = [
  [
    0.15,
    'rotate keys, no grace period (self-hosted Logto)',
    async () => {
      await issuer.rotate({ grace: false });
      tokens = await makeTokens();
    },
  ],
  [
    0.3,
    'JWKS down (503)',
    () => {
      jwksState = 'down';
      outages.push([elapsed(), Infinity]);
    },
  ],
  [
    0.38,
    'rotate keys with a grace period, during the outage',
    async () => {
      await issuer.rotate({ grace: true });
      tokens = await makeTokens();
    },
  ],
  [
    0.5,
    'JWKS back',
    () => {
      jwksState = 'up';
      (outages.at(-1) as [number, number])[1] = elapsed();
    },
  ],
  [
    0.6,
    'rotate keys with a grace period',
    async () => {
      await issuer.rotate({ grace: true });
      tokens = await makeTokens();
    },
  ],
  [
    0.72,
    'JWKS hangs',
    () => {
      jwksState = 'hang';
      outages.push([elapsed(), Infinity]);
    },
  ],
  [
    0.8,
    'JWKS back',
    () => {
      jwksState = 'up';
      (outages.at(-1) as [number, number])[1] = elapsed();
    },
  ],
  [
    0.85,
    'rotate keys, no grace period',
    async () => {
      await issuer.rotate({ grace: false });
      tokens = await makeTokens();
    },
  ],
];

const timeline: string[] = [];
const rss: [number, number][] = [];
const deadline = started + SECONDS * 1000;
const sampler = setInterval(() => rss.push([elapsed(), rssMiB(api.pid as number)]), 2000);
const scheduled = events.map(
  ([at, label, action]) =>
    new Promise<void>((resolve) =>
      setTimeout(
        async () => {
          await action();
          timeline.push(`${elapsed().toFixed(1)} s: ${label}`);
          console.log(`${elapsed().toFixed(1)} s: ${label}`);
          resolve();
        },
        at * SECONDS * 1000,
      ),
    ),
);
console.log(`soak: ${SECONDS} s, ${WORKERS} workers against ${apiUrl}`);
await Promise.all([...Array.from({ length: WORKERS }, () => worker(deadline)), ...scheduled]);
clearInterval(sampler);
rss.push([elapsed(), rssMiB(api.pid as number)]);

api.kill();
proxy.closeAllConnections();
proxy.close();
await issuer.close();

const leakedLines = logLines.filter((line) => [...sent].some((t) => line.includes(t))).length;
const rssValues = rss.map(([, v]) => v);
const wrong = counts.validRejectedWrongly + counts.invalidAccepted;
const report = [
  '# Soak report',
  '',
  `\`npm run soak -- --seconds ${SECONDS}\` on ${new Date().toISOString().slice(0, 16)}Z, Node ${process.version}, ${WORKERS} concurrent clients on loopback against the Express example (default key settings: maxAge 600 s, cooldown ${COOLDOWN} s, timeout ${TIMEOUT} s).`,
  '',
  '## Timeline',
  '',
  ...timeline.map((line) => `- ${line}`),
  '',
  '## Decisions',
  '',
  '| | count |',
  '|---|---:|',
  `| requests | ${counts.requests} |`,
  `| valid token → 200 | ${counts.validOk} |`,
  `| valid token under a kid younger than the cooldown → 401 unknown_kid (the unavoidable window) | ${counts.validInWindow} |`,
  `| valid token → 503 while the JWKS was down or hanging | ${counts.validDuringOutage} |`,
  `| **valid token rejected outside those windows** | **${counts.validRejectedWrongly}** |`,
  `| invalid token → 4xx (or 503 during an outage) | ${counts.invalidRejected} |`,
  `| **invalid token accepted** | **${counts.invalidAccepted}** |`,
  `| 5xx answers (all 503 during outages unless counted above) | ${counts.status5xx} |`,
  `| **500 answers** | **${counts.status500}** |`,
  `| log lines of the API holding a token (of ${logLines.filter(Boolean).length}) | ${leakedLines} |`,
  '',
  `RSS of the API process: start ${rssValues[0]?.toFixed(1)} MiB, max ${Math.max(...rssValues).toFixed(1)} MiB, end ${rssValues.at(-1)?.toFixed(1)} MiB (${rss.length} samples, every 2 s).`,
  '',
  wrong === 0 && counts.status500 === 0 && leakedLines === 0
    ? 'Result: **no wrong decision, no 500, no token in the logs.**'
    : `Result: **FAILED** — ${wrongSamples.join('; ')}`,
  '',
];
writeFileSync(here('./SOAK.md'), `${report.join('\n')}\n`);
console.log(report.join('\n'));
process.exit(wrong === 0 && counts.status500 === 0 && leakedLines === 0 ? 0 : 1);
