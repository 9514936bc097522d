/**
 * Session 32 helpers: the three guards of the peer differential, each in a real Express app on
 * loopback (port 0), and a raw HTTP/1.1 client that sends header bytes exactly as written.
 */
import { connect } from 'node:net';
import { createServer } from 'node:http';
import express from 'express';
import type { ErrorRequestHandler } from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';
import type { Verifier } from 'resource-guard';
import { requireAuth } from 'resource-guard/express';
import { listenLoopback } from './http.ts';

/** The one route every guard protects, and the scope it needs. */
export const ROUTE = '/products';
export const SCOPE = 'read:products';

/** One answer, or why there was none. */
export interface Reply {
  readonly status: number;
  readonly head: string;
  readonly body: string;
  /** `'hang'` when nothing complete came back in time, `'reset'` when the socket failed. */
  readonly failure?: 'hang' | 'reset';
}

/**
 * One request with its header lines written as given: each value is a string of BYTES (latin1:
 * `\u00a0` is the single byte A0; encode wider characters with {@link utf8Bytes} first).
 * `Connection: close` and `Host` are added; the whole answer is read until the server closes.
 */
export function rawGet(
  origin: string,
  target: string,
  fields: ReadonlyArray<readonly [string, string]>,
  timeoutMs = 5000,
): Promise<Reply> {
  const { hostname, port } = new URL(origin);
  const lines = [`GET ${target} HTTP/1.1`, `Host: ${hostname}:${port}`];
  for (const [name, value] of fields) lines.push(`${name}: ${value}`);
  lines.push('Connection: close', '', '');
  const bytes = Buffer.from(lines.join('\r\n'), 'latin1');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname);
    const done = (failure?: 'hang' | 'reset') => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split === -1 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const body = split === -1 ? '' : text.slice(split + 4);
      resolve(failure === undefined ? { status, head, body } : { status, head, body, failure });
    };
    const timer = setTimeout(() => done('hang'), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => done());
    socket.on('error', () => done(chunks.length > 0 ? undefined : 'reset'));
    socket.write(bytes);
  });
}

/** A string's UTF-8 bytes as a latin1 string, for {@link rawGet}. */
export const utf8Bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

/** Express with resource-guard's adapter, as the README shows it; a 500 handler to see escapes. */
export async function startGuarded(verifier: Verifier) {
  const app = express();
  app.get(ROUTE, requireAuth(verifier, { scopes: [SCOPE] }), (_req, res) => {
    res.json({ ok: true });
  });
  const escaped: ErrorRequestHandler = (_error, _req, res, _next) => {
    res.status(500).json({ error: 'escaped' });
  };
  app.use(escaped);
  return listenLoopback(createServer(app));
}

/**
 * Express with express-oauth2-jwt-bearer 1.10, as strict as it goes: `strict: true` (RFC 9068:
 * typ at+jwt, iat/sub/client_id/jti present), `tokenSigningAlg` (one algorithm), DPoP off (Bearer
 * only, as resource-guard without its `dpop` option), `requiredScopes(SCOPE)`. Its JWKS is the
 * loopback server (`issuer` + `jwksUri`: no discovery needed). `ROUTE` has tokenSigningAlg
 * ES384 (Logto's default); `/any${ROUTE}` leaves the algorithm to its own asymmetric list.
 */
export async function startPeer(options: { issuer: string; audience: string; jwksUri: string }) {
  const app = express();
  const strict = auth({
    ...options,
    strict: true,
    tokenSigningAlg: 'ES384',
    dpop: { enabled: false },
  });
  const anyAlg = auth({ ...options, strict: true, dpop: { enabled: false } });
  const ok: express.RequestHandler = (_req, res) => {
    res.json({ ok: true });
  };
  app.get(ROUTE, strict, requiredScopes(SCOPE), ok);
  app.get(`/any${ROUTE}`, anyAlg, requiredScopes(SCOPE), ok);
  const render: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    const e = error as { status?: number; headers?: Record<string, string>; code?: string };
    res
      .status(e.status ?? 500)
      .set(e.headers ?? {})
      .json({ error: e.code ?? 'unknown' });
  };
  app.use(render);
  return listenLoopback(createServer(app));
}
