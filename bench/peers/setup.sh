#!/usr/bin/env bash
# Installs the pinned peer job queues (graphile-worker, pg-boss, pg) from npm
# into a cache directory outside the repository. Idempotent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SEMIONT_JOBS_PEERS_CACHE:-$HOME/.cache/semiont-jobs/bench-peers}"

fail() { echo "bench/peers/setup.sh: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || fail "node (>= 20) is missing: install Node.js 20 or newer"
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
[ "$major" -ge 20 ] 2>/dev/null || fail "node >= 20 is required, found $(node --version 2>/dev/null || echo unknown)"
command -v npm >/dev/null 2>&1 || fail "npm is missing: install npm (it ships with Node.js)"

mkdir -p "$cache"
if [ -d "$cache/node_modules" ] && cmp -s "$here/package-lock.json" "$cache/package-lock.json" \
   && cmp -s "$here/package.json" "$cache/package.json"; then
  echo "bench/peers: cache up to date at $cache" >&2
else
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  echo "bench/peers: installing into $cache" >&2
  if ! (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2); then
    rm -f "$cache/package-lock.json"   # force a retry next time
    fail "npm ci failed in $cache (is the npm registry reachable?)"
  fi
fi

for p in graphile-worker pg-boss pg; do
  v="$(node -p "require('$cache/node_modules/$p/package.json').version" 2>/dev/null)" \
    || fail "package $p is missing from $cache/node_modules"
  echo "$p $v"
done
echo "node $(node --version)"
