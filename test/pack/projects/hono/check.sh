#!/usr/bin/env bash
# A Hono project as `npm create hono` (the nodejs template) lays it out: "type": "module", src/
# compiled to dist/ by `tsc` with the template's own tsconfig ("module": "NodeNext", hono/jsx), run
# by `node dist/index.js` through @hono/node-server's serve(). Type-checked a second time with
# "moduleResolution": "Bundler" (the Workers and Vite templates). Then run: a local JWKS, tokens
# signed with jose, and requests without a token (401 + Bearer challenge), with one (200, typed
# claims), with two Authorization headers (400), to a scope it lacks (403 through app.onError).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cat > package.json <<'JSON'
{ "name": "hono-shop", "private": true, "type": "module",
  "scripts": { "dev": "tsx watch src/index.ts", "build": "tsc", "start": "node dist/index.js" } }
JSON
# The template's dependencies (tsx, for `npm run dev` only, is left out) and jose for the check.
install_packed hono@4 @hono/node-server@2 jose@6 typescript@7 @types/node
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ESNext",
    "module": "NodeNext",
    "strict": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": true,
    "types": ["node"],
    "jsx": "react-jsx",
    "jsxImportSource": "hono/jsx",
    "rootDir": "./src",
    "outDir": "./dist"
  },
  "exclude": ["node_modules"]
}
JSON
mkdir src
cat > src/app.ts <<'TS'
import { Hono } from 'hono'
import { AuthError, createVerifier } from 'resource-guard'
import { requireAuth, resourceMetadata } from 'resource-guard/hono'

declare module 'resource-guard' {
  interface CustomClaims {
    readonly tenant_id?: string
  }
}

export function createApp(issuer: string, jwksUri: string) {
  const verifier = createVerifier({
    issuer,
    audience: 'https://shopping.api',
    jwksUri,
    resourceMetadata: { scopesSupported: ['read:products'] },
  })
  const app = new Hono()
  app.use(resourceMetadata(verifier))
  app.get('/', (c) => c.text('Hello Hono!'))
  app.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (c) => {
    const auth = c.get('auth')
    // @ts-expect-error c.get('auth') is AuthInfo, not any: clientId is a string or undefined
    const wrong: number = auth.clientId
    void wrong
    const tenant: string | undefined = auth.claims.tenant_id
    return c.json({ client: auth.clientId, tenant, scopes: auth.scopes })
  })
  app.get('/admin', requireAuth(verifier, { scopes: ['admin'], errors: 'throw' }), (c) =>
    c.text('admin'),
  )
  app.onError((err, c) => {
    if (err instanceof AuthError) {
      return c.json({ ...err.body, via: 'onError' }, err.status, err.headers)
    }
    return c.json({ error: 'server_error' }, 500)
  })
  return app
}
TS
cat > src/index.ts <<'TS'
import { serve } from '@hono/node-server'
import { createApp } from './app.js'

const app = createApp(process.env.ISSUER ?? '', process.env.JWKS_URI ?? '')

serve({
  fetch: app.fetch,
  port: Number(process.env.PORT ?? 3000),
  hostname: '127.0.0.1'
}, (info) => {
  console.log(`Server is running on http://127.0.0.1:${info.port}`)
})
TS
npx tsc -v
npx tsc
npx tsc --noEmit --module ESNext --moduleResolution Bundler
cat > check.mjs <<'JS'
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { issuer, jwks, jwksUri, sign } from './local-issuer.mjs';

const token = (claims) => sign({ tenant_id: 't-1', ...claims });

// `npm start`, as the template runs it.
const server = spawn(process.execPath, ['dist/index.js'], {
  env: { ...process.env, ISSUER: issuer, JWKS_URI: jwksUri, PORT: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const base = await new Promise((resolve, reject) => {
  server.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
  server.stdout.on('data', (chunk) => {
    const url = /http:\/\/127\.0\.0\.1:\d+/.exec(String(chunk))?.[0];
    if (url) resolve(url);
  });
});
/** node:http, so that a header can be sent twice. */
const get = (path, headers = {}) =>
  new Promise((resolve, reject) => {
    request(`${base}${path}`, { headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk)).on('end', () => resolve({ res, text }));
    }).on('error', reject).end();
  });
try {
  assert.equal((await get('/')).text, 'Hello Hono!');
  const anonymous = await get('/products');
  assert.equal(anonymous.res.statusCode, 401);
  assert.match(anonymous.res.headers['www-authenticate'], /^Bearer realm="https:\/\/shopping\.api"/);
  assert.equal(JSON.parse(anonymous.text).error, 'missing_token');

  const reader = `Bearer ${await token({ scope: 'read:products' })}`;
  const ok = await get('/products', { authorization: reader });
  assert.equal(ok.res.statusCode, 200, ok.text);
  assert.deepEqual(JSON.parse(ok.text), { client: 'shop-app', tenant: 't-1', scopes: ['read:products'] });

  const twice = await get('/products', { authorization: [reader, reader] });
  assert.equal(twice.res.statusCode, 400);
  assert.match(twice.res.headers['www-authenticate'], /error="invalid_request"/);

  const admin = await get('/admin', { authorization: reader });
  assert.equal(admin.res.statusCode, 403);
  assert.equal(JSON.parse(admin.text).via, 'onError');
  assert.match(admin.res.headers['www-authenticate'], /scope="admin"/);

  const metadata = await get('/.well-known/oauth-protected-resource');
  assert.equal(JSON.parse(metadata.text).resource, 'https://shopping.api');
} finally {
  server.kill();
  jwks.close();
}
console.log('hono project: tsc (NodeNext and Bundler) clean; 401 challenge, 200 typed auth, 400 two headers, 403 via onError');
JS
node check.mjs
