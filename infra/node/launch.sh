#!/bin/sh
# How every Tickwork process starts, wherever it starts: the image's entry point (so compose and
# Kubernetes), `npm start` (scripts/start.ts), `npm run api|worker|migrate`, the fleet, and the
# test kit's launchers that the end-to-end tests, the chaos suite and the benchmarks use. It is
# the one place that names the Node flags and the file each process runs.
#
#   infra/node/launch.sh api|worker|migrate|rekey [args…]   the built code (dist/, `npm run build`)
#   TICKWORK_SOURCES=1 infra/node/launch.sh api …      the TypeScript sources, as tests run them
#   infra/node/launch.sh healthcheck api|worker [path] an HTTP probe (compose's health checks)
#
# `exec` hands the process id to node, so SIGTERM from `docker stop`, Kubernetes or a parent
# process reaches the app's own graceful shutdown.
set -eu
cd "$(dirname "$0")/../.."
[ "$#" -gt 0 ] || set -- api

# V8 sizes the young and the old generation from the machine's memory and, on a large box, lets
# both grow far past what the live data needs (30-50 MiB under load): 2 MiB semi-spaces and a
# 96 MiB old generation keep idle and peak RSS low (bench/RESULTS.md; docs/operations.md says
# what they cost a process that allocates fast; the worker's young generation at 4-16 MiB was
# measured and lowered neither its lateness nor what it promotes per occurrence, for up to
# +19 MiB idle). The api has its own: V8 commits both semi-spaces
# at start and keeps them, so their size is paid at the seed's load too; 4 MiB ones (with a
# 160 MiB old generation) keep that within 150 MB with room (8 MiB ones came to 148-149 MB) and
# win back part of the throughput the 2 MiB ones cost. MALLOC_ARENA_MAX=2 (glibc) keeps the api's threads from each
# growing a malloc arena of their own (set it empty for glibc's default). TICKWORK_NODE_FLAGS
# replaces the flags of any process: for a deployment that trades memory back, or a benchmark.
flags=${TICKWORK_NODE_FLAGS-"--max-old-space-size=96 --max-semi-space-size=2"}
node=${NODE:-node}

# The built code finds the workspace's packages in their dist/ through the `tickwork-dist`
# condition of their package.json `exports`; without it they resolve to src/, whose types Node
# strips as it loads them.
start() {
  source=$1
  built=$2
  shift 2
  if [ "${TICKWORK_SOURCES:-}" = 1 ]; then
    exec "$node" $flags "$source" "$@"
  fi
  exec "$node" --conditions=tickwork-dist $flags "$built" "$@"
}

case "$1" in
  api)
    shift
    flags=${TICKWORK_NODE_FLAGS-"--max-old-space-size=160 --max-semi-space-size=4"}
    MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX-2}
    export MALLOC_ARENA_MAX
    start apps/api/src/server.ts apps/api/dist/server.js "$@"
    ;;
  worker)  shift; start apps/worker/src/main.ts apps/worker/dist/main.js "$@" ;;
  migrate) shift; start packages/db/src/cli.ts packages/db/dist/cli.js "$@" ;;
  rekey)   shift; start packages/db/src/rekey-cli.ts packages/db/dist/rekey-cli.js "$@" ;;
  # Slim images have no curl or wget.
  healthcheck) shift; exec "$node" infra/docker/healthcheck.mjs "$@" ;;
  -*)      exec "$node" "$@" ;;
  *)       exec "$@" ;;
esac
