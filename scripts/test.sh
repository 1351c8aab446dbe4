#!/usr/bin/env bash
# `npm test`: lint and format-check (Biome), type-check every package, then run every test (unit,
# api, worker, end to end) in one vitest run against DATABASE_URL / REDIS_URL (default: the local
# services).
set -euo pipefail
pnpm turbo run lint lint:root typecheck typecheck:root --output-logs=errors-only
exec pnpm vitest run "$@"
