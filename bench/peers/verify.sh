#!/usr/bin/env bash
# Small-size smoke matrix: every system x workload, synchronous_commit on and off.
# Usage: bash bench/peers/verify.sh [DATABASE_URL] > results.jsonl
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${1:-postgres://postgres@127.0.0.1:5432/test}"
bash "$here/setup.sh" >&2
for sc in on off; do
  for sys in graphile-worker pg-boss; do
    r() { node "$here/run.mjs" --system "$sys" --database-url "$url" --synchronous-commit "$sc" "$@"; }
    r --workload w1 --jobs 2000
    r --workload w1-batch --jobs 2000 --batch-size 500
    r --workload burndown --jobs 20000 --processes 1,2,4 --concurrency 10
    r --workload lifecycle --jobs 10000 --processes 4 --concurrency 10
    r --workload w3 --jobs 20
    r --workload w4 --jobs 2000 --processes 4
  done
done
