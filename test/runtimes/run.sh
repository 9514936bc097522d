#!/usr/bin/env bash
# The runtime matrix (issue 11). Installs each runtime from the npm registry, pinned, into a cache
# outside the repository ($RUNTIMES_DIR, default ~/.cache/resource-guard-runtimes; see install.sh),
# then:
#   node22 node24 node26    the whole vitest suite on that official Node binary
#   bun deno                the smoke test (smoke.ts) against the packed package, served by the
#                           runtime's own server
#   workerd                 the smoke test on workerd (miniflare), twice: without compatibility
#                           flags, and with nodejs_compat (workerd-plain, workerd-nodejs-compat)
#   corpus                  about 1,000 hostile tokens (test/runtimes/corpus, built on Node) verified
#                           in process by the packed package on Node, Bun and Deno: a token accepted
#                           on one and refused on another fails it
#   wire                    the node-style paths (node:http, Express, Koa, Fastify) on Node, Bun's
#                           and Deno's node:http: the same raw hostile requests over sockets
#                           (wire.ts); looser than Node, a 5xx, a hang or an echo fails it
#   node | smoke | all      node22-26 | bun, deno, workerd, corpus and wire | both (the default)
# Every target runs even when one fails; the exit status says whether all passed.
#   bash test/runtimes/run.sh workerd        # just the Workers smoke
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/test/runtimes/install.sh"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
export DENO_DIR=${DENO_DIR:-$RUNTIMES_DIR/deno-cache} DENO_NO_UPDATE_CHECK=1

targets=()
for arg in "${@:-all}"; do
  case $arg in
    all) targets+=(node22 node24 node26 bun deno workerd-plain workerd-nodejs-compat corpus wire) ;;
    node) targets+=(node22 node24 node26) ;;
    smoke) targets+=(bun deno workerd-plain workerd-nodejs-compat corpus wire) ;;
    workerd) targets+=(workerd-plain workerd-nodejs-compat) ;;
    node22 | node24 | node26 | bun | deno | workerd-plain | workerd-nodejs-compat | corpus | wire)
      targets+=("$arg")
      ;;
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
packed=""
prepare_app() {
  [ -n "$app" ] && return 0
  local dir="$work/app" tarball hono
  mkdir -p "$dir"
  npm run --silent build || return 1
  tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1) || return 1
  echo '{ "name": "runtime-smoke", "private": true, "type": "module" }' >"$dir/package.json"
  hono=$(node -p 'require("./node_modules/hono/package.json").version') || return 1
  (cd "$dir" && npm install --silent --no-audit --no-fund --prefer-offline \
    "$work/$tarball" "hono@$hono") || return 1
  packed="$work/$tarball"
  app=$dir
}

# The smoke driver runs on a pinned Node (miniflare needs Node >= 22); at most 5 minutes a runtime.
smoke() {
  local node
  node=$(node_bin "$DRIVER_NODE_VERSION") && prepare_app || return 1
  timeout --kill-after=10 300 "$node/node" --import tsx test/runtimes/smoke.ts --app "$app" "$@"
}

# The token corpus: built on the driver Node (with jose, which the packed package brings), then
# run.mjs on Node, Bun and Deno against the packed package, and compare.mjs on the answers.
corpus() {
  local node dir runtime
  node=$(node_bin "$DRIVER_NODE_VERSION") && prepare_app || return 1
  dir="$work/corpus"
  mkdir -p "$dir" || return 1
  cp "$root"/test/runtimes/corpus/{gen,run}.mjs "$dir/" || return 1
  echo '{ "name": "runtime-corpus", "private": true, "type": "module" }' >"$dir/package.json"
  ln -s "$app/node_modules" "$dir/node_modules" || return 1
  timeout 120 "$node/node" "$dir/gen.mjs" || return 1
  for runtime in node bun deno; do
    case $runtime in
      node) set -- "$node/node" "$dir/run.mjs" ;;
      bun) set -- "$(bun_exe)" "$dir/run.mjs" ;;
      deno) set -- "$(deno_exe)" run -A "$dir/run.mjs" ;;
    esac
    (cd "$dir" && timeout 180 "$@" >"$dir/$runtime.jsonl" 2>"$dir/$runtime.err") || {
      echo "run.mjs failed on $runtime:" >&2
      tail -n 20 "$dir/$runtime.err" >&2
      return 1
    }
  done
  "$node/node" "$root/test/runtimes/corpus/compare.mjs" "$dir"/{node,bun,deno}.jsonl
}

# The wire differential: the packed package with Express, Koa (@koa/router) and Fastify, at the
# versions the repository tests with, in a folder of its own; wire.ts starts one app per framework
# on Node, Bun and Deno and sends each the same raw requests. At most 150 s (about 20 s here).
wire() {
  local node bun deno dir spec version specs=()
  node=$(node_bin "$DRIVER_NODE_VERSION") && bun=$(bun_exe) && deno=$(deno_exe) && prepare_app ||
    return 1
  dir="$work/wire"
  mkdir -p "$dir" || return 1
  echo '{ "name": "runtime-wire", "private": true, "type": "module" }' >"$dir/package.json"
  for spec in express koa @koa/router fastify; do
    version=$(node -p "require('./node_modules/$spec/package.json').version") || return 1
    specs+=("$spec@$version")
  done
  (cd "$dir" && npm install --silent --no-audit --no-fund --prefer-offline "$packed" "${specs[@]}") ||
    return 1
  timeout --kill-after=10 150 "$node/node" --import tsx test/runtimes/wire.ts --app "$dir" \
    --node "$node/node" --bun "$bun" --deno "$deno"
}

# Each step checked by hand: run_target runs as an `if` condition, where `set -e` does not apply.
run_target() {
  local exe version bin
  case $1 in
    node2[246])
      for version in "${NODE_VERSIONS[@]}"; do
        [ "${version%%.*}" = "${1#node}" ] || continue
        bin=$(node_bin "$version") || return 1
        echo "node $("$bin/node" --version): vitest run"
        # Kept for the summary: CI shows only the tail of the output, so the failures are repeated there.
        PATH="$bin:$PATH" timeout --kill-after=10 600 "$bin/node" node_modules/vitest/vitest.mjs run \
          2>&1 | tee "$work/$1.log"
        return "${PIPESTATUS[0]}"
      done
      return 1
      ;;
    bun) exe=$(bun_exe) && smoke --target bun --bun "$exe" ;;
    deno) exe=$(deno_exe) && smoke --target deno --deno "$exe" ;;
    workerd-plain) exe=$(miniflare_dir) && smoke --target workerd --miniflare "$exe" ;;
    workerd-nodejs-compat) exe=$(miniflare_dir) && smoke --target workerd-nodejs-compat --miniflare "$exe" ;;
    corpus) corpus ;;
    wire) wire ;;
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
for target in "${failed[@]}"; do
  [ -f "$work/$target.log" ] || continue
  echo "=== $target: what failed"
  grep -E 'FAIL|×|AssertionError' "$work/$target.log" | grep -v '✓' | sed 's/\x1b\[[0-9;]*m//g' | head -n 60 || true
done
echo "=== runtime matrix"
printf '  %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
