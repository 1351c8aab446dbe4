#!/usr/bin/env bash
# Sets up whatever is missing, then runs the given command with the project's toolchain:
#   - Node 24 (from the npm registry, into .tooling/) when the machine's Node is older;
#   - pnpm at the version package.json pins;
#   - the workspace's packages, whenever pnpm-lock.yaml is newer than the last install;
#   - the built code (each package's dist/, turbo's `build` task) when it is missing or older
#     than its sources: what `npm start`, `npm run api|worker|migrate` and the fleet run.
# Idempotent and quiet when nothing is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tooling="$root/.tooling"
node_major_wanted=24
pnpm_version="$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$root/package.json")"

log() { printf '\033[2m[setup]\033[0m %s\n' "$*" >&2; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ -x "$tooling/node_modules/.bin/node" ]; then
  export PATH="$tooling/node_modules/.bin:$PATH"
fi
node_ok() { [ "$(node_major node)" -ge "$node_major_wanted" ]; }
pnpm_ok() { [ "$(pnpm --version 2>/dev/null || true)" = "$pnpm_version" ]; }
if ! node_ok || ! pnpm_ok; then
  wanted=("pnpm@$pnpm_version")
  node_ok || wanted+=("node@$node_major_wanted")
  # The machine's Node may be older: install both together so npm keeps both in .tooling/.
  [ -x "$tooling/node_modules/.bin/node" ] && wanted+=("node@$node_major_wanted")
  log "installing ${wanted[*]} from the npm registry into .tooling/"
  mkdir -p "$tooling"
  [ -f "$tooling/package.json" ] || echo '{"private":true}' >"$tooling/package.json"
  npm install --prefix "$tooling" --no-audit --no-fund --loglevel=error "${wanted[@]}" >&2
  export PATH="$tooling/node_modules/.bin:$PATH"
  hash -r
  node_ok || { log "Node $node_major_wanted did not install"; exit 1; }
fi

stamp="$root/node_modules/.tickwork-installed"
if [ ! -f "$stamp" ] || [ "$root/pnpm-lock.yaml" -nt "$stamp" ] || [ "$root/package.json" -nt "$stamp" ]; then
  log "installing packages (pnpm install)"
  (cd "$root" && CI=true pnpm install --frozen-lockfile --reporter=append-only >&2) \
    || (cd "$root" && CI=true pnpm install --frozen-lockfile --reporter=append-only >&2)
  touch "$stamp"
fi

# Under a lock: the test kit runs this before it starts built processes, from several test
# files at once, and only one of them may write dist/.
built="$root/node_modules/.tickwork-built"
stale() {
  [ -f "$built" ] || return 0
  for config in "$root"/apps/*/tsconfig.build.json "$root"/packages/*/tsconfig.build.json; do
    dir="$(dirname "$config")"
    [ -d "$dir/dist" ] || return 0
    newer="$(find "$dir/src" "$dir/package.json" "$config" "$root"/tsconfig*.json -newer "$built" -print -quit)"
    [ -z "$newer" ] || return 0
  done
  return 1
}
if stale; then
  exec 9>"$root/node_modules/.tickwork-build.lock"
  flock 9
  if stale; then
    log "building dist/ (pnpm turbo run build)"
    touch "$built.next"
    output="$(cd "$root" && pnpm turbo run build --output-logs=errors-only 2>&1)" || {
      printf '%s\n' "$output" >&2
      log "the build failed"
      exit 1
    }
    mv "$built.next" "$built"
  fi
  exec 9>&-
fi

cd "$root"
exec "$@"
