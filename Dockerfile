# syntax=docker/dockerfile:1
# celery-autopilot: build the TypeScript once, ship only dist/ and the production dependencies,
# run as the unprivileged `node` user.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/copy-console-static.mjs ./scripts/
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
# better-sqlite3 (tasks.persist) is a native addon: its install script fetches a prebuilt binary
# or compiles one, so this stage, not the shipped image, gets a compiler. No other package's
# install script runs.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3 && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root, so the process cannot change its own code; it writes nothing.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The service writes only what its configuration names (tasks.persist, audit.file), as `node`
# (uid 1000) and readable by that user alone (0600): mount their directory writable by it.
USER node
EXPOSE 9818
# No curl in a slim image: Node's own fetch asks /-/healthy (liveness, not broker readiness, so a
# broker outage does not mark it unhealthy while it reconnects by itself).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.CELERY_AUTOPILOT_PORT||9818)+'/-/healthy').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The node flags of `npm start` (see src/main.ts for why). Arguments are celery-autopilot flags
# (`--broker-url ...`, `--config file.yaml`); the port is 9818
# unless --port or CELERY_AUTOPILOT_PORT says otherwise (the health check follows the latter).
ENTRYPOINT ["node", "--max-semi-space-size=4", "--single-threaded-gc", "--enable-source-maps", "dist/main.js"]
