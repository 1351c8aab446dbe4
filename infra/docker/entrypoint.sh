#!/bin/sh
# The image's entry point: one word picks the process. `exec` hands PID 1 to node, so SIGTERM
# from `docker stop` / Kubernetes reaches the app's own graceful shutdown (DESIGN.md §9).
set -eu
cd "$(dirname "$0")/../.."
[ "$#" -gt 0 ] || set -- api

case "$1" in
  api)     shift; exec node apps/api/src/server.ts "$@" ;;
  worker)  shift; exec node apps/worker/src/main.ts "$@" ;;
  migrate) shift; exec node packages/db/src/cli.ts "$@" ;;
  # `healthcheck api|worker [path]`: an HTTP probe for engines without httpGet (compose);
  # slim images have no curl or wget.
  healthcheck) shift; exec node infra/docker/healthcheck.mjs "$@" ;;
  -*)      exec node "$@" ;;
  *)       exec "$@" ;;
esac
