#!/usr/bin/env bash
# Starts the local Postgres and Redis when they are down and this machine has them installed.
# Used by .ci/run and `npm start`; it leaves remote DATABASE_URL / REDIS_URL alone, and the local
# Postgres too when ENSURE_SKIP_POSTGRES is set (`npm run fleet -- --pg-replica` brings its own),
# and the local Redis when ENSURE_SKIP_REDIS is set (`npm run fleet -- --redis-cluster N`).
set -uo pipefail

is_local() { case "$1" in *127.0.0.1*|*localhost*|*'[::1]'*|"") return 0 ;; *) return 1 ;; esac; }

if [ -z "${ENSURE_SKIP_POSTGRES:-}" ] && is_local "${DATABASE_URL:-}" \
  && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "[setup] starting the local Postgres" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  else
    echo "[setup] Postgres does not answer on 127.0.0.1:5432; set DATABASE_URL to one that does" >&2
  fi
fi
if [ -z "${ENSURE_SKIP_REDIS:-}" ] && is_local "${REDIS_URL:-}" && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "[setup] starting the local Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  else
    echo "[setup] Redis does not answer on 127.0.0.1:6379; set REDIS_URL to one that does" >&2
  fi
fi
exit 0
