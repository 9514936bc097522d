#!/usr/bin/env bash
# A NestJS project as `nest new` (Nest 12 CLI, @nestjs/schematics 12) lays it out: the default ESM
# template ("type": "module", tsconfig with module/moduleResolution nodenext,
# experimentalDecorators, emitDecoratorMetadata, TypeScript 6), src/ compiled by
# `tsc -p tsconfig.build.json` (what `nest build` runs) and run with node. Then the template's
# CommonJS variant (`nest new --type cjs`: no "type", the same nodenext settings, extensionless
# imports), which loads the ESM-only package through require(esm). Each run: a local JWKS, a token
# signed with jose, a request without it (401 + Bearer challenge), with it (200), short of a scope
# (403).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

# package.json as the template has it (the CLI, linters and test runners left out).
cat > package.json <<'JSON'
{
  "name": "shop-api",
  "version": "0.0.1",
  "private": true,
  "license": "UNLICENSED",
  "type": "module",
  "scripts": { "build": "tsc -p tsconfig.build.json", "start:prod": "node dist/main" }
}
JSON
install_packed @nestjs/common@12 @nestjs/core@12 @nestjs/platform-express@12 reflect-metadata@0.2 \
  rxjs@7 jose@6 typescript@6 @types/node@24 @types/express@5 vitest@4

# The template's tsconfig.json and tsconfig.build.json, verbatim (strict: true, the default).
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "resolvePackageJsonExports": true,
    "esModuleInterop": true,
    "isolatedModules": true,
    "declaration": true,
    "removeComments": true,
    "emitDecoratorMetadata": true,
    "experimentalDecorators": true,
    "allowSyntheticDefaultImports": true,
    "target": "ES2023",
    "sourceMap": true,
    "outDir": "./dist",
    "rootDir": ".",
    "incremental": true,
    "skipLibCheck": true,
    "strict": true,
    "strictPropertyInitialization": false,
    "types": ["vitest/globals", "node"]
  }
}
JSON
cat > tsconfig.build.json <<'JSON'
{
  "extends": "./tsconfig.json",
  "compilerOptions": {
    "rootDir": "./src"
  },
  "include": ["src"],
  "exclude": ["node_modules", "test", "dist", "**/*spec.ts"]
}
JSON

# The template's sources (the logger quieted); $1 is the relative import suffix ('.js' for ESM, ''
# for CommonJS), $2 how main.ts calls bootstrap() ('await' in ESM, 'void' in CommonJS).
sources() {
  mkdir -p src
  cat > src/main.ts <<TS
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module$1';

async function bootstrap() {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  await app.listen(process.env.PORT ?? 3000);
}
$2 bootstrap();
TS
  cat > src/app.service.ts <<'TS'
import { Injectable } from '@nestjs/common';

@Injectable()
export class AppService {
  getProducts(): string[] {
    return ['Espresso beans, 1 kg'];
  }
}
TS
  cat > src/app.controller.ts <<TS
import { Controller, Get } from '@nestjs/common';
import type { AuthInfo } from 'resource-guard';
import { Auth, RequireAuth } from 'resource-guard/nestjs';
import { AppService } from './app.service$1';

@Controller('products')
export class AppController {
  constructor(private readonly appService: AppService) {}

  @Get()
  @RequireAuth({ scopes: ['read:products'] })
  list(@Auth() auth: AuthInfo) {
    return { client: auth.clientId, products: this.appService.getProducts() };
  }
}
TS
  cat > src/app.module.ts <<TS
import { Module } from '@nestjs/common';
import { createVerifier } from 'resource-guard';
import { ResourceGuardModule } from 'resource-guard/nestjs';
import { AppController } from './app.controller$1';
import { AppService } from './app.service$1';

@Module({
  imports: [
    ResourceGuardModule.forRoot({
      verifier: createVerifier({
        issuer: process.env.ISSUER ?? 'https://tenant.example.test/oidc',
        audience: 'https://shopping.api',
        jwksUri: process.env.JWKS_URI,
      }),
    }),
  ],
  controllers: [AppController],
  providers: [AppService],
})
export class AppModule {}
TS
}

# Starts a JWKS, runs dist/main.js of the folder given, checks the answers.
cat > check.mjs <<'JS'
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { issuer, jwksUri, sign as signClaims } from './local-issuer.mjs';

const free = createServer();
await new Promise((resolve) => free.listen(0, '127.0.0.1', resolve));
const port = free.address().port;
await new Promise((resolve) => free.close(resolve));
process.env.ISSUER = issuer;
process.env.JWKS_URI = jwksUri;
process.env.PORT = String(port);

await import(pathToFileURL(`${process.argv[2]}/dist/main.js`).href);
const url = `http://127.0.0.1:${port}/products`;
const get = async (headers = {}) => {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fetch(url, { headers });
    } catch (error) {
      if (attempt > 100) throw error; // the CommonJS main does not wait for listen()
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
};
const sign = (scope) => signClaims({ scope });

const fail = (message) => {
  console.error(`nestjs project (${process.argv[2]}): ${message}`);
  process.exit(1);
};
const anonymous = await get();
const challenge = anonymous.headers.get('www-authenticate') ?? '';
if (anonymous.status !== 401 || !challenge.startsWith('Bearer realm="https://shopping.api"')) {
  fail(`no token: ${anonymous.status} ${challenge}`);
}
const reader = await get({ authorization: `Bearer ${await sign('read:products')}` });
const body = await reader.json();
if (reader.status !== 200 || body.client !== 'shop-app' || body.products.length !== 1) {
  fail(`a reader token: ${reader.status} ${JSON.stringify(body)}`);
}
const other = await get({ authorization: `Bearer ${await sign('write:products')}` });
if (other.status !== 403 || !/insufficient_scope/.test(other.headers.get('www-authenticate'))) {
  fail(`a token without the scope: ${other.status}`);
}
console.log(`  ${process.argv[2]}: 401 with a Bearer challenge, 200 with a token, 403 without the scope`);
process.exit(0);
JS

# The default template: ESM.
sources .js await
npx tsc -p tsconfig.build.json
node check.mjs .

# `nest new --type cjs`: the same settings in a CommonJS package (its types list names jest,
# which is not installed here: node only).
mkdir cjs
cd cjs
echo '{ "name": "shop-api-cjs", "version": "0.0.1", "private": true }' > package.json
sed -e 's/"vitest\/globals", "node"/"node"/' ../tsconfig.json > tsconfig.json
cp ../tsconfig.build.json .
sources '' void
npx tsc -p tsconfig.build.json
grep -q 'require("resource-guard/nestjs")' dist/app.controller.js # CommonJS output
cd ..
node check.mjs cjs
