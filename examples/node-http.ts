/**
 * The shopping API on plain node:http: no framework, no adapter — `verifier.authenticate(req)`
 * and `sendAuthError(res, error)`.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:node
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthError, sendAuthError, sendResourceMetadata } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

const MAX_BODY = 16 * 1024;

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Reads a JSON body of at most MAX_BODY bytes; `undefined` when it is too large or not JSON. */
async function readJson(req: IncomingMessage): Promise<{ value: unknown } | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return undefined;
  }
}

/**
 * The request target's path and, for `/products/:id`, the percent-decoded id; `undefined` when the
 * client sent a target that does not parse or decode. Everything the client controls is parsed
 * here, up front, so a mangled URL is a 400 and a throw further down is a real 500.
 */
function parseTarget(target = '/'): { pathname: string; id?: string } | undefined {
  try {
    // Appended to the origin, not resolved against it: `//evil/products` stays a path.
    const { pathname } = new URL(target.startsWith('/') ? `http://localhost${target}` : target);
    const id = /^\/products\/([^/]+)$/.exec(pathname)?.[1];
    return id === undefined ? { pathname } : { pathname, id: decodeURIComponent(id) };
  } catch {
    return undefined; // a TypeError (no URL) or a URIError (malformed percent-encoding)
  }
}

export function createHandler(verifier: Verifier, store = new ProductStore()) {
  const read = verifier.guard({ scopes: ['read:products'] });
  const write = verifier.guard({ scopes: ['write:products'] });
  const mayRead = verifier.guard({ optional: true });

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = parseTarget(req.url);
    if (target === undefined) {
      return json(res, 400, { error: 'invalid_request', error_description: 'Malformed URL' });
    }
    const { pathname, id } = target;
    /** A route's guard for this request; a newer DPoP server nonce goes on the answer. */
    const authenticate = async <A>(guard: (request: IncomingMessage) => Promise<A>): Promise<A> => {
      const auth = await guard(req);
      const nonce = verifier.dpopNonce(req);
      if (nonce !== undefined) res.setHeader('dpop-nonce', nonce);
      return auth;
    };
    // HEAD is GET without the body (RFC 9110 §9.3.2): node's response leaves the body out.
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    try {
      const metadata = verifier.resourceMetadata;
      if (metadata && sendResourceMetadata(req, res, metadata)) return;
      if (method === 'GET' && pathname === '/health') return json(res, 200, { status: 'ok' });
      if (method === 'GET' && pathname === '/health/keys') {
        const { status, body } = keysHealth(verifier); // readiness: 503 when the keys cannot verify
        return json(res, status, body);
      }
      if (method === 'GET' && pathname === '/products') {
        const auth = await authenticate(read);
        return json(res, 200, { products: store.list(), client: auth.clientId });
      }
      // Optional authentication: anonymous callers get the featured list, a valid token a
      // personalized one; a bad token is still refused (never downgraded to anonymous).
      if (method === 'GET' && pathname === '/products/featured') {
        const auth = await authenticate(mayRead);
        return json(res, 200, { products: store.featured(), personalized: auth !== undefined });
      }
      if (method === 'GET' && id !== undefined) {
        await authenticate(read);
        const product = store.get(id);
        return json(res, product ? 200 : 404, product ?? { error: 'not_found' });
      }
      if (method === 'POST' && pathname === '/products') {
        await authenticate(write); // before the body is read
        const body = await readJson(req);
        if (body === undefined) {
          return json(res, 400, {
            error: 'invalid_request',
            error_description: 'Malformed request body',
          });
        }
        const input = parseNewProduct(body.value);
        if (typeof input === 'string') {
          return json(res, 400, { error: 'invalid_product', error_description: input });
        }
        return json(res, 201, store.add(input));
      }
      return json(res, 404, { error: 'not_found' });
    } catch (error) {
      if (error instanceof AuthError) return sendAuthError(res, error);
      return json(res, 500, { error: 'server_error' }); // our bug: no details, never a stack trace
    }
  };
}

export async function serve(config: ApiConfig): Promise<Server> {
  const handler = createHandler(await startVerifier(config));
  const server = createServer((req, res) => void handler(req, res));
  server.listen(config.port, config.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo; // the real one, also with PORT=0
  console.log(`Shopping API (node:http) on http://${config.host}:${port}`);
  return server;
}

runIfMain(import.meta.url, serve);
