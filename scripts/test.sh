#!/usr/bin/env bash
# `npm test`: lint and format-check (Biome), type-check every package, then run every test (unit,
# api, worker, end to end) in one vitest run against DATABASE_URL / REDIS_URL (default: the local
# services), in four groups one after the other (each project's `sequence.groupOrder`): the unit
# and in-process projects three files at a time; the worker's tests one at a time; the end-to-end
# files two at a time (e2e/vitest.config.ts); then, one file at a time, the end-to-end files that
# must run alone (e2e/lib/serial-files.ts) and the chaos suite (e2e/chaos).
set -euo pipefail
pnpm turbo run lint lint:root typecheck typecheck:root --output-logs=errors-only
exec pnpm vitest run "$@"
