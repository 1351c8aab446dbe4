#!/bin/sh
# The `node` of a bench's processes (`NODE=<this>`; infra/node/launch.sh runs `$NODE`): the api and
# everything else run as given; the worker alone gets, when set,
#   BENCH_WORKER_FLAGS  its heap flags instead of launch.sh's (`--max-old-space-size`,
#                       `--max-semi-space-size`), so a lever of the worker's leaves the api's alone;
#   BENCH_GC_DIR        V8's own GC trace (`--trace-gc --trace-gc-nvp`, stdout and stderr to
#                       <dir>/worker-<pid>.log) and gc-observe.mjs's wall-clock GC events beside it.
# `exec` all the way: the worker's pid stays the one the bench started, so its CPU and RSS read true.
set -eu
real=${BENCH_REAL_NODE:?BENCH_REAL_NODE: the node to run}
case " $* " in
  *" apps/worker/"*) ;;
  *) exec "$real" "$@" ;;
esac
if [ -n "${BENCH_WORKER_FLAGS+set}" ]; then
  for arg; do
    shift
    case "$arg" in
      --max-old-space-size=* | --max-semi-space-size=*) ;;
      *) set -- "$@" "$arg" ;;
    esac
  done
  # shellcheck disable=SC2086 # the flags are words
  set -- $BENCH_WORKER_FLAGS "$@"
fi
if [ -n "${BENCH_GC_DIR:-}" ]; then
  mkdir -p "$BENCH_GC_DIR"
  exec "$real" --trace-gc --trace-gc-nvp --import="$(dirname "$0")/gc-observe.mjs" "$@" \
    >"$BENCH_GC_DIR/worker-$$.log" 2>&1
fi
exec "$real" "$@"
