#!/usr/bin/env bash
# Packs resource-guard, installs the tarball in an empty folder the way a user would, imports every
# subpath from it, type-checks a consumer against its .d.ts files and runs a real verification.
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

cd "$work"
cat > package.json <<'JSON'
{ "name": "consumer", "private": true, "type": "module" }
JSON
npm install --silent --no-audit --no-fund --prefer-offline "./$tarball" express@5 koa@3 fastify@5 \
  @types/express@5 @types/koa@3 @types/node@20 typescript@5.9
cp "$root/test/pack/smoke.mjs" "$root/test/pack/consumer.ts" .
node smoke.mjs
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
  "noEmit": true, "skipLibCheck": true, "types": ["node"], "lib": ["ES2023", "DOM"] },
  "files": ["consumer.ts"] }
JSON
npx tsc -p tsconfig.json
echo "pack check: every subpath imports, types resolve, a token verifies from the tarball"
