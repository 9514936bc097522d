/**
 * `npm start` as a newcomer runs it: the embedded issuer, the API, its health and its metrics; and
 * a port clash that names the variable to change. Real processes on loopback.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const children: ReturnType<typeof spawn>[] = [];
afterAll(() => {
  for (const child of children) child.kill();
});

/** Runs `npm start`'s program with `env`; resolves with its output so far once `until` matches. */
function start(env: Record<string, string>, until: RegExp) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/start.ts'], {
    cwd: root,
    env: { ...process.env, ISSUER: '', LOGTO_ENDPOINT: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const done = new Promise<{ output: string; code: number | null }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${String(until)} in:\n${output}`)), 20_000);
    const check = () => {
      if (until.test(output)) {
        clearTimeout(timer);
        resolve({ output, code: child.exitCode });
      }
    };
    child.stdout.on('data', (chunk: Buffer) => ((output += chunk.toString()), check()));
    child.stderr.on('data', (chunk: Buffer) => ((output += chunk.toString()), check()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ output, code });
    });
  });
  return done;
}

async function occupied(): Promise<Server> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

describe('npm start', () => {
  it('serves the API, its keys health and its metrics; a real M2M token reads', async () => {
    const { output } = await start(
      { PORT: '0', ISSUER_PORT: '0', METRICS_PORT: '0' },
      /npm run example:m2m/,
    );
    const health = /curl -s (http:\/\/127\.0\.0\.1:\d+)\/health\/keys/.exec(output)?.[1];
    const metrics = /curl -s (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(output)?.[1];
    const token = /curl -s -X POST (\S+) \\\n {2}-H "Authorization: Basic (\S+)"/.exec(output);
    expect(output).toMatch(
      /Issuer http:\/\/127\.0\.0\.1:\d+\/oidc, audience https:\/\/shopping\.api/,
    );
    expect(output).toMatch(/Keys of http:\/\/127\.0\.0\.1:\d+\/oidc: \d+ from /);

    const ready = await fetch(`${health}/health/keys`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ok', issuers: [{ state: 'fresh' }] });

    const answer = (await (
      await fetch(token?.[1] as string, {
        method: 'POST',
        headers: {
          authorization: `Basic ${token?.[2]}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials&resource=https%3A%2F%2Fshopping.api&scope=read%3Aproducts',
      })
    ).json()) as { access_token: string };
    const read = await fetch(`${health}/products`, {
      headers: { authorization: `Bearer ${answer.access_token}` },
    });
    expect(read.status).toBe(200);
    expect((await fetch(`${health}/products`)).status).toBe(401);

    // npm start calls the API once with a Bearer token and once with DPoP (both accepted), then
    // this test reads once more.
    expect(output).toMatch(/Bearer GET \/products → 200/);
    expect(output).toMatch(/DPoP {3}GET \/products → 200/);
    const text = await (await fetch(metrics as string)).text();
    expect(text).toMatch(
      /resource_guard_decisions_total\{[^}]*resource_guard_outcome="accepted"[^}]*\} 3/,
    );
    expect(text).toMatch(
      /resource_guard_decisions_total\{[^}]*resource_guard_reason="missing_token"[^}]*\} 1/,
    );
    expect(text).toMatch(/resource_guard_jwks_fetches_total\{[^}]*resource_guard_outcome="ok"/);
    expect(text).not.toContain(answer.access_token);
  });

  it.each(['PORT', 'ISSUER_PORT', 'METRICS_PORT'])(
    'a port in use names %s and exits 1',
    async (variable) => {
      const server = await occupied();
      const { port } = server.address() as AddressInfo;
      try {
        const { output, code } = await start(
          { PORT: '0', ISSUER_PORT: '0', METRICS_PORT: '0', [variable]: String(port) },
          /is in use/,
        );
        expect(output).toContain(
          `Port ${port} on 127.0.0.1 is in use: set ${variable} to another port`,
        );
        expect(output).not.toMatch(/\n\s+at /); // no stack trace
        expect(code === null || code === 1).toBe(true);
      } finally {
        server.close();
      }
    },
  );
});
