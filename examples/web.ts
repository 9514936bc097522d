/**
 * The shopping API as a Web-standard handler, `(request: Request) => Promise<Response>`: the shape
 * of Hono, Bun (`Bun.serve({ fetch: handle })`), Deno (`Deno.serve(handle)`) and Next.js route
 * handlers. `verifier.authenticate(request)` reads the Web `Request`'s headers;
 * `authErrorResponse(error)` builds the `Response`.
 *
 * Node has no Web server of its own, so when run directly (`npm run example:web`) a few lines at
 * the bottom bridge node:http to `handle`.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthError, authErrorResponse, RESOURCE_METADATA_HEADERS } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

/** The body as text, refusing more than `limit` bytes without reading past them. */
async function readText(request: Request, limit: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  for (let read = await reader?.read(); read && !read.done; read = await reader?.read()) {
    size += read.value.byteLength;
    if (size > limit) {
      await reader?.cancel();
      throw new Error('body too large');
    }
    chunks.push(read.value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The path and, for `/products/:id`, the percent-decoded id; `undefined` for malformed
 * percent-encoding. Everything the client controls is decoded here, up front, so a mangled URL is
 * a 400 and a throw further down is a real 500.
 */
function parseTarget(url: string): { pathname: string; id?: string } | undefined {
  const { pathname } = new URL(url); // a Request's url always parses
  const id = /^\/products\/([^/]+)$/.exec(pathname)?.[1];
  try {
    return id === undefined ? { pathname } : { pathname, id: decodeURIComponent(id) };
  } catch {
    return undefined; // URIError: `/products/%E0%A4%A`
  }
}

export function createHandle(verifier: Verifier, store = new ProductStore()) {
  const read = verifier.guard({ scopes: ['read:products'] });
  const write = verifier.guard({ scopes: ['write:products'] });
  const mayRead = verifier.guard({ optional: true });

  // A newer DPoP server nonce, when the request's proof carried one about to expire, goes on a
  // successful answer.
  return async (request: Request): Promise<Response> => {
    const response = await answer(request);
    const nonce = verifier.dpopNonce(request);
    if (nonce !== undefined && response.ok) response.headers.set('dpop-nonce', nonce);
    return response;
  };

  async function answer(request: Request): Promise<Response> {
    const target = parseTarget(request.url);
    if (target === undefined) {
      return Response.json(
        { error: 'invalid_request', error_description: 'Malformed URL' },
        { status: 400 },
      );
    }
    const { pathname, id } = target;
    // HEAD is GET without the body (RFC 9110 §9.3.2): the server sends no body for a HEAD.
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    try {
      const metadata = verifier.resourceMetadata;
      if (metadata && method === 'GET' && pathname === metadata.path) {
        return Response.json(metadata.document, { headers: RESOURCE_METADATA_HEADERS });
      }
      if (method === 'GET' && pathname === '/health') return Response.json({ status: 'ok' });
      if (method === 'GET' && pathname === '/health/keys') {
        const { status, body } = keysHealth(verifier); // readiness: 503 when the keys cannot verify
        return Response.json(body, { status });
      }
      if (method === 'GET' && pathname === '/products') {
        const auth = await read(request);
        return Response.json({ products: store.list(), client: auth.clientId });
      }
      // Optional authentication: anonymous callers get the featured list, a valid token a
      // personalized one; a bad token is still refused (never downgraded to anonymous).
      if (method === 'GET' && pathname === '/products/featured') {
        const auth = await mayRead(request);
        return Response.json({ products: store.featured(), personalized: auth !== undefined });
      }
      if (method === 'GET' && id !== undefined) {
        await read(request);
        const product = store.get(id);
        return Response.json(product ?? { error: 'not_found' }, { status: product ? 200 : 404 });
      }
      if (method === 'POST' && pathname === '/products') {
        await write(request); // before the body is read
        let body: unknown;
        try {
          body = JSON.parse(await readText(request, 16 * 1024));
        } catch {
          return Response.json(
            { error: 'invalid_request', error_description: 'Malformed request body' },
            { status: 400 },
          );
        }
        const input = parseNewProduct(body);
        if (typeof input === 'string') {
          return Response.json(
            { error: 'invalid_product', error_description: input },
            { status: 400 },
          );
        }
        return Response.json(store.add(input), { status: 201 });
      }
      return Response.json({ error: 'not_found' }, { status: 404 });
    } catch (error) {
      if (error instanceof AuthError) return authErrorResponse(error);
      return Response.json({ error: 'server_error' }, { status: 500 }); // our bug: no details
    }
  }
}

/**
 * The Web `Request`'s URL. The client sends both the target and the Host header, so neither may
 * reshape the other: an origin-form target (`/path`) is appended, never resolved (`//evil/x` stays
 * a path), and the URL `host` setter takes only a host[:port] from the header (not
 * `evil/products?`, which would otherwise move the path).
 */
function requestUrl(target = '/', host = ''): URL {
  if (!target.startsWith('/')) return new URL(target); // absolute-form: its own host counts
  const url = new URL(`http://localhost${target}`);
  url.host = host;
  return url;
}

/** node:http → Web `Request` → `handle` → node:http. Not needed on Bun, Deno or Hono. */
export function nodeServer(handle: (request: Request) => Promise<Response>): Server {
  return createServer(async (req, res) => {
    try {
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const request = new Request(requestUrl(req.url, req.headers.host), {
        method: req.method ?? 'GET',
        // rawHeaders keeps repeated headers, which req.headers would silently drop.
        headers: req.rawHeaders.flatMap((value, i, all): [string, string][] =>
          i % 2 === 0 ? [[value, all[i + 1] ?? '']] : [],
        ),
        // Streamed, not buffered: the handler reads it only after authentication.
        ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
      } as RequestInit);
      const response = await handle(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch {
      // An unparseable URL or header: the request never reaches the handler.
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":"invalid_request"}');
    }
  });
}

export async function serve(config: ApiConfig): Promise<Server> {
  const server = nodeServer(createHandle(await startVerifier(config)));
  server.listen(config.port, config.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo; // the real one, also with PORT=0
  console.log(`Shopping API (Web Request handler) on http://${config.host}:${port}`);
  return server;
}

runIfMain(import.meta.url, serve);
