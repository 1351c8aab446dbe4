# One image, three entry points: `api`, `worker`, `migrate` (infra/node/launch.sh, which also
# holds the Node flags). The build stage compiles every package's src/ into its dist/ (turbo's
# `build` task); the image carries that built code and the production node_modules, not the
# sources, the tests or the test kit. `npm run test:image` builds and runs it (docs/operations.md).
#
#   docker build -t tickwork:local .
#   docker run --rm --network host -e DATABASE_URL=… tickwork:local migrate
#   docker run --rm --network host -e DATABASE_URL=… -e REDIS_URL=… -e ADMIN_TOKEN=… tickwork:local api

ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS base
# corepack cannot verify pnpm's signatures here; npm installs the version package.json pins.
ARG PNPM_VERSION=12.4.2
RUN npm install --global --no-audit --no-fund "pnpm@${PNPM_VERSION}" \
 && npm cache clean --force \
 && pnpm --version
ENV CI=true
WORKDIR /app

# Every package the lockfile names, into the store, from the lockfile alone: a source change
# keeps this layer (and its downloads) cached.
FROM base AS fetch
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN --mount=type=cache,id=tickwork-pnpm-store,target=/pnpm/store \
    pnpm fetch --store-dir=/pnpm/store

# The full install (dev dependencies too: TypeScript, turbo) and the build. Also the stage to
# extend for type checks in CI (`docker build --target build`).
FROM fetch AS build
COPY . .
RUN --mount=type=cache,id=tickwork-pnpm-store,target=/pnpm/store \
    pnpm install --offline --frozen-lockfile --store-dir=/pnpm/store
RUN pnpm turbo run build --output-logs=errors-only

# What the image runs and nothing else: the runtime dependencies of the api and the worker (and
# of the packages they use, db's migrate among them), and dist/ in place of src/. The full
# install also made node_modules for the lockfile's other projects (e2e, bench, the test kit),
# which the context leaves out: they go, with the folders they leave empty.
FROM build AS pruned
RUN --mount=type=cache,id=tickwork-pnpm-store,target=/pnpm/store \
    find . -name node_modules -prune -exec rm -rf {} + \
 && pnpm install --offline --frozen-lockfile --prod --store-dir=/pnpm/store \
      --filter='@tickwork/api...' --filter='@tickwork/worker...' \
 && rm -rf apps/*/src packages/*/src apps/*/tsconfig*.json packages/*/tsconfig*.json tsconfig*.json turbo.json .turbo */*/.turbo \
 && find . -maxdepth 2 -type d -empty -delete

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    WORKER_PORT=9464
WORKDIR /app
# The files stay owned by root, so the unprivileged process can read but not rewrite its code.
COPY --from=pruned /app /app
USER node
EXPOSE 3000 9464
ENTRYPOINT ["/app/infra/node/launch.sh"]
CMD ["api"]
