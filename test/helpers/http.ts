import { createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';

/** The Authorization header that carries `token` (RFC 6750 §2.1). */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Listens on loopback, port 0; answers the origin and a close that ends every connection (a
 * keep-alive client would otherwise hold the close open).
 */
export async function listenLoopback(
  server: Server,
): Promise<{ origin: string; port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An HTTP answer as {@link rawRequest} reads it. */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One HTTP/1.1 request with the target exactly as written (no URL normalisation by a client),
 * bounded by `timeoutMs`. Headers given as a raw list (node's `rawHeaders` format) are sent line
 * for line, Host only if the list holds one, on a connection of their own.
 */
export function rawRequest(
  base: string,
  target: string,
  method = 'GET',
  headers: Record<string, string> | string[] = {},
  body?: string | Buffer,
  timeoutMs = 8000,
): Promise<Answer> {
  const { hostname, port } = new URL(base);
  const raw = Array.isArray(headers) ? { agent: false, setHost: false } : {};
  return new Promise((resolve, reject) => {
    const options = { host: hostname, port, path: target, method, headers, ...raw };
    const req = httpRequest(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    // A server that answers before reading the body may reset the upload: not our failure.
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout: ${method} ${target}`)));
    req.end(body);
  });
}

/** JSON answers by path: `undefined` is a 404. */
export type JsonRoute = (path: string) => { status: number; body: unknown } | undefined;

/**
 * A JSON server on loopback (an issuer at `<origin>/oidc`, say) whose answers `route(origin)`
 * decides per request target; `hits` records every target asked, in order.
 */
export async function jsonServer(route: (origin: string) => JsonRoute) {
  const hits: string[] = [];
  let router: JsonRoute = () => undefined;
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const answer = router(req.url ?? '');
    if (answer === undefined) return res.writeHead(404).end();
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  const { origin, close } = await listenLoopback(server);
  router = route(origin);
  return { origin, issuer: `${origin}/oidc`, hits, close };
}

/**
 * The status of one raw HTTP/1.1 `GET /` to `port` on loopback (`Host` first, then `lines`, each
 * sent byte for byte: repeated or odd fields stay as written), bounded by 5 s.
 */
export function rawStatus(port: number, lines: readonly string[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (match) {
        resolve(Number(match[1]));
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.write(['GET / HTTP/1.1', 'Host: 127.0.0.1', ...lines, '', ''].join('\r\n'));
  });
}
