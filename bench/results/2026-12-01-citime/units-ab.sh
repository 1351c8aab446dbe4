#!/bin/bash
# Inside the heavy lock: the unit projects (group 0) with 2 files at a time (A) and 3 (B), alternating, 3 rounds.
cd /work/wt/citime
export PATH=$PWD/.tooling/node_modules/.bin:$PATH
P="--project @tickwork/api --project @tickwork/core --project @tickwork/db --project @tickwork/queue --project @tickwork/client --project @tickwork/metrics --project @tickwork/testkit"
echo "lock taken $(date -u +%T)"; uptime
for i in 1 2 3; do
  for w in 2 3; do
    if [ $((i % 2)) = 0 ]; then w=$((5 - w)); fi
    s=$(date +%s.%N)
    pnpm vitest run $P --maxWorkers=$w --reporter=default --reporter=json --outputFile.json=/tmp/citime/units-w$w-$i.json > /tmp/citime/units-w$w-$i.log 2>&1
    rc=$?
    echo "units maxWorkers=$w round $i rc $rc wall $(echo "$(date +%s.%N) - $s" | bc) end $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
uptime
