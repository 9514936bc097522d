#!/usr/bin/env bash
# A Hapi project as its TypeScript users lay it out: "type": "module" (resource-guard is ESM-only,
# and the tsconfig `tsc --init` writes has verbatimModuleSyntax, which wants ESM syntax in ESM
# files), src/ compiled to dist/ with that default tsconfig (plus node's types), then run: a local
# JWKS, a token signed with jose, a request without it (401 + Bearer challenge) and one with it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cat > package.json <<'JSON'
{ "name": "hapi-shop", "private": true, "type": "module",
  "scripts": { "build": "tsc", "start": "node dist/server.js" } }
JSON
install_packed @hapi/hapi@21 jose@6 typescript@5.9 @types/node@20
npx tsc --init --rootDir src --outDir dist --types node >/dev/null
mkdir src
cat > src/server.ts <<'TS'
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Hapi from '@hapi/hapi';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier } from 'resource-guard';
import { resourceGuard, SCHEME } from 'resource-guard/hapi';
import type { ResourceGuardRefs, StrategyOptions } from 'resource-guard/hapi';

const issuer = 'https://tenant.example.test/oidc';
const audience = 'https://shopping.api';
const { publicKey, privateKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const jwks = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
});
await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
const jwksUri = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;

const server = Hapi.server({ port: 0, host: '127.0.0.1' });
await server.register({ plugin: resourceGuard, options: { verifier: createVerifier({ issuer, audience, jwksUri }) } });
server.auth.strategy('read', SCHEME, { scopes: ['read:products'] } satisfies StrategyOptions);
server.route<ResourceGuardRefs>({
  method: 'GET',
  path: '/products',
  options: { auth: 'read' },
  handler: (request) => ({ client: request.auth.credentials.auth.clientId, products: [] }),
});
await server.start();

const token = await new SignJWT({ client_id: 'shop-app', scope: 'read:products' })
  .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
  .setIssuer(issuer)
  .setAudience(audience)
  .setSubject('shop-app')
  .setIssuedAt()
  .setExpirationTime('5m')
  .setJti('jti-1')
  .sign(privateKey);

const url = `${server.info.uri}/products`;
const anonymous = await fetch(url);
const challenge = anonymous.headers.get('www-authenticate') ?? '';
const authorized = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
const body = (await authorized.json()) as { client?: string };
await server.stop();
jwks.close();
if (anonymous.status !== 401 || !challenge.startsWith('Bearer realm="https://shopping.api"')) {
  throw new Error(`no token: expected 401 with a Bearer challenge, got ${anonymous.status} ${challenge}`);
}
if (authorized.status !== 200 || body.client !== 'shop-app') {
  throw new Error(`valid token: expected 200, got ${authorized.status} ${JSON.stringify(body)}`);
}
console.log(`  hapi: 401 ${challenge.split(',')[0]}; 200 for client ${body.client}`);
TS
npm run --silent build
npm start --silent
