// node:http direct, as the README shows it: `verifier.guard(requirements)` on the IncomingMessage
// and `sendAuthError`. Every method reaches the guard on /products and /dpop.
import { createServer } from 'node:http';
import { AuthError, sendAuthError } from 'resource-guard';
import { dpopVerifier, listen, MARKER, SCOPES, verifier } from './common.mjs';

const canRead = verifier.guard({ scopes: SCOPES });
const canReadDpop = dpopVerifier.guard({ scopes: SCOPES });

const server = createServer(async (req, res) => {
  res.setHeader(MARKER, 'http');
  const path = (req.url ?? '').replace(/^[a-z]+:\/\/[^/]*/i, '').split('?')[0];
  const guard = path === '/products' ? canRead : path === '/dpop' ? canReadDpop : undefined;
  if (guard === undefined) return void res.writeHead(404).end('not found');
  try {
    const auth = await guard(req);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ client: auth.clientId }));
  } catch (error) {
    if (error instanceof AuthError) return sendAuthError(res, error);
    console.error(`[http] ${error instanceof Error ? error.name : typeof error}`);
    res.writeHead(500).end();
  }
});
listen(server);
