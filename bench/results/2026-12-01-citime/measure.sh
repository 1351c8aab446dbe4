#!/bin/bash
# Runs inside the heavy lock: three rounds of the e2e project (two files at a time), then the serial e2e project.
cd /work/wt/citime
export PATH=$PWD/.tooling/node_modules/.bin:$PATH
echo "lock taken $(date -u +%T)"; uptime
for i in 1 2 3; do
  s=$(date +%s.%N)
  pnpm vitest run --project @tickwork/e2e --reporter=default --reporter=json --outputFile.json=/tmp/citime/e2e-par-$i.json > /tmp/citime/e2e-par-$i.log 2>&1
  rc=$?
  echo "e2e round $i rc $rc wall $(echo "$(date +%s.%N) - $s" | bc) end $(date -u +%T)"; uptime
done
s=$(date +%s.%N)
pnpm vitest run --project @tickwork/e2e-serial --reporter=default --reporter=json --outputFile.json=/tmp/citime/e2e-serial-1.json > /tmp/citime/e2e-serial-1.log 2>&1
echo "e2e-serial rc $? wall $(echo "$(date +%s.%N) - $s" | bc) end $(date -u +%T)"; uptime
