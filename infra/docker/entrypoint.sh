#!/bin/sh
# The image's entry point: one word picks the process. `exec` hands PID 1 to node, so SIGTERM
# from `docker stop` / Kubernetes reaches the app's own graceful shutdown (docs/operations.md, Graceful shutdown).
set -eu
cd "$(dirname "$0")/../.."
[ "$#" -gt 0 ] || set -- api
# The flags of infra/node/node-flags.ts (e2e/infra.test.ts keeps the two in step): stripped
# sources from the cache the image build filled, and V8's heap sized to what the process needs.
NODE_FLAGS="--import=./infra/node/typescript-cache.mjs --max-old-space-size=96 --max-semi-space-size=2"

case "$1" in
  api)     shift; exec node $NODE_FLAGS apps/api/src/server.ts "$@" ;;
  worker)  shift; exec node $NODE_FLAGS apps/worker/src/main.ts "$@" ;;
  migrate) shift; exec node packages/db/src/cli.ts "$@" ;;
  # `healthcheck api|worker [path]`: an HTTP probe for engines without httpGet (compose);
  # slim images have no curl or wget.
  healthcheck) shift; exec node infra/docker/healthcheck.mjs "$@" ;;
  -*)      exec node "$@" ;;
  *)       exec "$@" ;;
esac
