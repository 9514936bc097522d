# Sourced by test/pack/projects/<name>/check.sh, which gets the packed tarball's path as $1:
# strict mode, the tarball's absolute path in $tarball, and an empty temporary folder (removed on
# exit) as the working directory, holding local-issuer.mjs for the project's check.mjs.
# `install_packed` installs the tarball and the packages given, the way a user would.
set -euo pipefail
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
projects=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$projects/local-issuer.mjs" .

install_packed() {
  npm install --silent --no-audit --no-fund --prefer-offline "$tarball" "$@"
}
