#!/bin/sh
# lagtail: targeted tests, then head vs main side by side (three wake-ab rounds at the defaults)
cd /work/wt/lagtail
export PATH=$PWD/.tooling/node_modules/.bin:$PATH
R=bench/results/2026-12-02-lagtail
date -u +%T; uptime
pnpm vitest run --project @tickwork/worker > $R/test-worker.log 2>&1; echo "worker tests rc=$?"
pnpm vitest run --root e2e foundation semantics > $R/test-e2e.log 2>&1; echo "e2e rc=$?"
date -u +%T; uptime; vmstat 1 2 | tail -1
node bench/src/wake-ab.ts --rounds 3 --hz 10 --before-root /tmp/ab-lagtail --dump $R/final > $R/wake-ab-final.log 2>&1; echo "final rc=$?"
date -u +%T; uptime
node bench/src/raw-at-rate.ts --schedules 1000 --rate 200 --hz 10 --measure-s 10 --waker --ledger > $R/raw-1k-200-ledger-waker.log 2>&1; echo "raw rc=$?"
node bench/src/raw-at-rate.ts --schedules 1000 --rate 200 --hz 10 --measure-s 10 --waker > $R/raw-1k-200-waker.log 2>&1; echo "raw rc=$?"
date -u +%T; uptime
