#!/usr/bin/env bash
# The runtime matrix (issue 11). Installs each runtime from the npm registry, pinned, into a cache
# outside the repository ($RUNTIMES_DIR, default ~/.cache/resource-guard-runtimes; see install.sh),
# then:
#   node22 node24 node26    the whole vitest suite on that official Node binary
#   bun deno                the smoke test (smoke.ts) against the packed package, served by the
#                           runtime's own server
#   workerd                 the smoke test on workerd (miniflare), twice: without compatibility
#                           flags, and with nodejs_compat (workerd-plain, workerd-nodejs-compat)
#   node | smoke | all      node22-26 | bun, deno and workerd | both (the default)
# Every target runs even when one fails; the exit status says whether all passed.
#   bash test/runtimes/run.sh workerd        # just the Workers smoke
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/runtimes/install.sh"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

targets=()
for arg in "${@:-all}"; do
  case $arg in
    all) targets+=(node22 node24 node26 bun deno workerd-plain workerd-nodejs-compat) ;;
    node) targets+=(node22 node24 node26) ;;
    smoke) targets+=(bun deno workerd-plain workerd-nodejs-compat) ;;
    workerd) targets+=(workerd-plain workerd-nodejs-compat) ;;
    node22 | node24 | node26 | bun | deno | workerd-plain | workerd-nodejs-compat) targets+=("$arg") ;;
    *)
      echo "unknown target: $arg" >&2
      exit 2
      ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

# The smoke test's app folder: the packed package installed the way a user installs it, with Hono.
app=""
prepare_app() {
  [ -n "$app" ] && return
  app="$work/app"
  mkdir -p "$app"
  npm run --silent build
  local tarball
  tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
  echo '{ "name": "runtime-smoke", "private": true, "type": "module" }' >"$app/package.json"
  local hono
  hono=$(node -p 'require("./node_modules/hono/package.json").version')
  (cd "$app" && npm install --silent --no-audit --no-fund --prefer-offline "$work/$tarball" "hono@$hono")
}

# The smoke driver runs on Node 24 (miniflare needs Node >= 22).
smoke() {
  prepare_app
  "$(node_bin 24.21.0)/node" --import tsx test/runtimes/smoke.ts --app "$app" "$@"
}

run_target() {
  case $1 in
    node2[246])
      local version
      for version in "${NODE_VERSIONS[@]}"; do
        if [ "${version%%.*}" = "${1#node}" ]; then
          local bin
          bin=$(node_bin "$version")
          echo "node $("$bin/node" --version): vitest run"
          PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run
        fi
      done
      ;;
    bun) smoke --target bun --bun "$(bun_exe)" ;;
    deno) smoke --target deno --deno "$(deno_exe)" ;;
    workerd-plain) smoke --target workerd --miniflare "$(miniflare_dir)" ;;
    workerd-nodejs-compat) smoke --target workerd-nodejs-compat --miniflare "$(miniflare_dir)" ;;
  esac
}

failed=()
summary=()
for target in "${targets[@]}"; do
  echo "=== $target"
  start=$SECONDS
  if run_target "$target"; then
    summary+=("$target: passed ($((SECONDS - start)) s)")
  else
    summary+=("$target: FAILED ($((SECONDS - start)) s)")
    failed+=("$target")
  fi
done
echo "=== runtime matrix"
printf '  %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
