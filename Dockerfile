# syntax=docker/dockerfile:1
# One image, three entry points: `api`, `worker`, `migrate` (see infra/docker/entrypoint.sh).
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build stage:
# the image is the workspace's sources plus its production node_modules, and a cache of the
# sources with their types stripped (filled below, served by infra/node/typescript-cache.mjs).
#
#   docker build -t tickwork:local .
#   docker run --rm tickwork:local migrate
#   docker run --rm -p 3000:3000 tickwork:local api

ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS base
# corepack cannot verify pnpm's signatures here; npm installs the version package.json pins.
ARG PNPM_VERSION=12.4.2
RUN npm install --global --no-audit --no-fund "pnpm@${PNPM_VERSION}" \
 && npm cache clean --force \
 && pnpm --version
WORKDIR /app

# Every manifest and the lockfile, and nothing else, so that a source change keeps the
# install layers cached.
FROM base AS manifests
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY packages/core/package.json packages/core/
COPY packages/db/package.json packages/db/

# The full install (dev dependencies too): the stage to extend for type checks or tests in CI
# (`docker build --target deps`). NODE_ENV is unset here on purpose: production would drop dev
# dependencies.
FROM manifests AS deps
RUN --mount=type=cache,id=tickwork-pnpm-store,target=/pnpm/store \
    CI=true pnpm install --frozen-lockfile --prod=false --store-dir=/pnpm/store

# Runtime dependencies only: what the final image carries.
FROM manifests AS prod-deps
RUN --mount=type=cache,id=tickwork-pnpm-store,target=/pnpm/store \
    CI=true pnpm install --frozen-lockfile --prod --store-dir=/pnpm/store

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    WORKER_PORT=9464
WORKDIR /app
# node_modules (root and per package) from the install; the files stay owned by root, so the
# unprivileged process can read but not rewrite its own code.
COPY --from=prod-deps /app /app
# The sources (.dockerignore lets in only what runs: manifests, src/ trees, infra/docker/).
COPY . .
# Our sources with their types stripped, once, here: at run time the files are read-only, and a
# process that strips them itself keeps Node's stripper resident (infra/node/typescript-cache.mjs).
RUN node infra/node/strip-sources.mjs
USER node
EXPOSE 3000 9464
ENTRYPOINT ["/app/infra/docker/entrypoint.sh"]
CMD ["api"]
