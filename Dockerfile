# syntax=docker/dockerfile:1
# tkg-stream image: one image, one verb per container (`tkg ingest`, `tkg train`, `tkg serve`, `tkg publish`).
# Built by deploy/compose.yaml (context = repository root). Runs TypeScript directly through tsx (no build step).
# Metrics, liveness and readiness on TKG_METRICS_PORT: /metrics, /healthz, /readyz.

FROM node:20-bookworm-slim AS deps
WORKDIR /app
# .npmrc: ignore-scripts=true (onnxruntime-node ships its CPU binaries in the package; no GPU download).
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    TKG_METRICS_PORT=9464 \
    TKG_STATE_DIR=/data/state
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY schemas ./schemas
COPY data ./data
RUN mkdir -p /data/state && chown -R node:node /data
USER node
VOLUME ["/data"]
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.TKG_METRICS_PORT || 9464) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/tkg.js"]
CMD ["--help"]
