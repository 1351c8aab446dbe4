#!/bin/bash
cd /work/wt/citime
export PATH=$PWD/.tooling/node_modules/.bin:$PATH
echo "lock taken $(date -u +%T)"; uptime
node bench/test-database.ts --rounds 6 --per-round 8
uptime; date -u +%T
# The e2e project one file at a time (as before), for the side-by-side figure with the three 2-wide runs.
s=$(date +%s.%N)
pnpm vitest run --project @tickwork/e2e --maxWorkers=1 --reporter=default --reporter=json --outputFile.json=/tmp/citime/e2e-one-1.json > /tmp/citime/e2e-one-1.log 2>&1
echo "e2e one at a time rc $? wall $(echo "$(date +%s.%N) - $s" | bc) end $(date -u +%T)"; uptime
