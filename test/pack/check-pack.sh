#!/usr/bin/env bash
# Packs resource-guard, installs the tarball in an empty folder the way a user would, imports every
# subpath from it, type-checks a consumer against its .d.ts files and runs a real verification.
# Then the CommonJS side: require() of every subpath from a .cjs file, and a CommonJS TypeScript
# project (no "type": "module") compiled with the settings the README documents, then run. The
# TypeScript checks run on TypeScript 5.9 and on TypeScript 7.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$root"
npm run --silent build
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
echo "packed $tarball ($(du -k "$work/$tarball" | cut -f1) KiB):"
tar -tzf "$work/$tarball" | sed 's/^/  /' | head -40
if tar -tzf "$work/$tarball" | grep -qE '^package/(test|examples|bench|src|adapters)/'; then
  echo "the tarball holds sources or tests it should not" >&2
  exit 1
fi
contents=$(tar -tzf "$work/$tarball")
for file in LICENSE CONFORMANCE.md README.md; do
  if ! grep -qx "package/$file" <<<"$contents"; then
    echo "the tarball lacks $file" >&2
    exit 1
  fi
done

cd "$work"
cat > package.json <<'JSON'
{ "name": "consumer", "private": true, "type": "module" }
JSON
npm install --silent --no-audit --no-fund --prefer-offline "./$tarball" express@5 koa@3 fastify@5 \
  @hapi/hapi@21 @hapi/boom@10 hono@4 @nestjs/common@12 @nestjs/core@12 reflect-metadata@0.2 rxjs@7 \
  @opentelemetry/api@1 redis@6 @types/express@5 @types/koa@3 @types/node@20 typescript@5.9 typescript7@npm:typescript@7
cp "$root/test/pack/smoke.mjs" "$root/test/pack/consumer.ts" "$root/test/pack/require.cjs" .
node smoke.mjs
node require.cjs
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
  "noEmit": true, "skipLibCheck": true, "types": ["node"], "lib": ["ES2023", "DOM"] },
  "files": ["consumer.ts"] }
JSON
npx tsc -p tsconfig.json
# TypeScript 7 (the native compiler) reads the same .d.ts files the same way.
node node_modules/typescript7/bin/tsc -p tsconfig.json

# CommonJS TypeScript: the README's settings ("module" and "moduleResolution" nodenext, TS >= 5.8).
mkdir cjs
cp "$root/test/pack/consumer-cjs.ts" cjs/consumer.ts
cat > cjs/package.json <<'JSON'
{ "name": "cjs-consumer", "private": true }
JSON
cat > cjs/tsconfig.json <<'JSON'
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "strict": true,
  "outDir": "out", "skipLibCheck": true, "types": ["node"], "lib": ["ES2023", "DOM"] },
  "files": ["consumer.ts"] }
JSON
npx tsc -p cjs/tsconfig.json
grep -q 'require("resource-guard")' cjs/out/consumer.js # compiled to CommonJS, not left as import
node cjs/out/consumer.js
rm -rf cjs/out
node node_modules/typescript7/bin/tsc -p cjs/tsconfig.json
grep -q 'require("resource-guard")' cjs/out/consumer.js
node cjs/out/consumer.js
# Framework projects laid out as their users lay them out (a Nest CLI project, a Hapi project, a
# Hono project), each installing the tarball in its own folder: test/pack/projects/<name>/check.sh
# gets the tarball's path.
for check in "$root"/test/pack/projects/*/check.sh; do
  [ -f "$check" ] || continue
  echo "project $(basename "$(dirname "$check")"):"
  bash "$check" "$work/$tarball"
done
echo "pack check: every subpath imports and requires, ESM and CommonJS types resolve, a token verifies"
