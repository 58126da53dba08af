# fhir-billing: the server image. TypeScript runs directly on Node 24 (type stripping): no build step.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# The `node` devDependency only exists to give Node 24 to machines that lack it; the image has it.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY src ./src
COPY fhir-profiles ./fhir-profiles
COPY scripts ./scripts
# npm ci's postinstall, run once src/ is here: the embedded database's template (no initdb at start).
RUN node scripts/embedded-template.ts
# The embedded default (no DATABASE_URL) writes under DATA_DIR: /app is root's, so the data
# directory is made here and given to the user the server runs as. A volume mounted on it starts
# as a copy of this (empty, node-owned) directory; a bind mount must be writable by uid 1000.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
# At most two malloc arenas (glibc makes up to 8 per core, each keeping what was freed), as
# `npm start` runs it: about 15 MB less idle memory.
ENV PORT=8080 DATA_DIR=/app/data MALLOC_ARENA_MAX=2
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--max-semi-space-size=4", "src/main.ts"]
