#!/usr/bin/env bash
# The merged head's figures of 2026-12-03, one invocation under the heavy lock.
cd "$(dirname "$0")/../../.." || exit 1
export PATH=$PWD/.tooling/node_modules/.bin:$PATH
OUT=bench/results/2026-12-03-final
stamp() { echo "=== $(date -u +%FT%TZ) $*"; uptime; }
run() { local log=$1; shift; { stamp "start: $*"; "$@"; echo "rc=$?"; stamp "end"; } > "$OUT/$log" 2>&1; }
stamp "lock acquired, head $(git rev-parse --short HEAD)" > $OUT/run.log
run quick.log npm run bench -- --quick; cp bench/results/quick.json $OUT/quick.json 2>/dev/null
run api.log npm run bench -- api --rounds 2 --duration 5; cp bench/results/api.json $OUT/api.json
run drain-peers.log npm run bench -- fire --schedules 0 --rounds 3 --hz 10 --skip-scale --redis-cluster 0 --contestants tickwork,bullmq-fetch,bullmq-fetch-pg,pgboss,graphile; cp bench/results/fire.json $OUT/drain-peers.json
stamp "all done" >> $OUT/run.log
