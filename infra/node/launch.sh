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
# both grow far past what the live data needs (30-40 MiB under load): 2 MiB semi-spaces and a
# 96 MiB old generation keep idle and peak RSS low (bench/RESULTS.md; docs/operations.md says
# what they cost a process that allocates fast). TICKWORK_NODE_FLAGS replaces them: for a
# deployment that trades memory back, or a side-by-side benchmark.
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
  api)     shift; start apps/api/src/server.ts apps/api/dist/server.js "$@" ;;
  worker)  shift; start apps/worker/src/main.ts apps/worker/dist/main.js "$@" ;;
  migrate) shift; start packages/db/src/cli.ts packages/db/dist/cli.js "$@" ;;
  rekey)   shift; start packages/db/src/rekey-cli.ts packages/db/dist/rekey-cli.js "$@" ;;
  # Slim images have no curl or wget.
  healthcheck) shift; exec "$node" infra/docker/healthcheck.mjs "$@" ;;
  -*)      exec "$node" "$@" ;;
  *)       exec "$@" ;;
esac
