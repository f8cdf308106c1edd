# ccgw in a container: the gateway built from source, the console built from web/, and the
# pinned Claude Code CLI installed by npm. Build: `docker build -t ccgw .`
# Run:   docker run -p 8080:8080 -v ccgw-data:/data -e ANTHROPIC_API_KEY=... ccgw
# Demo:  docker run -p 8080:8080 ccgw serve --demo   (the built-in scripted model, offline)
#
# The base images are arguments, so a mirror or a hardened base can stand in for them.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# The console's assets (embedded in the binary by rust-embed).
FROM ${NODE_IMAGE} AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# The gateway.
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY migrations migrations
# Cargo.toml names the benchmarks' examples, so their sources must exist; only they (a new
# figure in bench/RESULTS.md must not invalidate the release build).
COPY bench/*.rs bench/
COPY --from=web /src/web/dist web/dist
RUN cargo build --release --locked --bin ccgw \
 && strip target/release/ccgw

# The runtime: Node.js for the CLI, bubblewrap and socat for its Bash sandbox, git for the
# tools that use it. No compiler, no sources.
FROM ${NODE_IMAGE}
ARG CLAUDE_CODE_VERSION=2.1.197
# One layer, and nothing left of the downloads: apt's package files and caches (a base without
# Debian's docker-clean hook keeps them), npm's cache and logs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap socat git ca-certificates tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && npm install -g --no-audit --no-fund --no-update-notifier "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && rm -rf /root/.npm \
 && claude --version \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home ccgw \
 && mkdir -p /data && chown ccgw:ccgw /data
COPY --from=build /src/target/release/ccgw /usr/local/bin/ccgw

ENV CCGW_HOST=0.0.0.0 \
    CCGW_PORT=8080 \
    CCGW_DATA_DIR=/data \
    CCGW_CLAUDE_BIN=/usr/local/bin/claude \
    CCGW_LOG_FORMAT=json \
    HOME=/data
USER ccgw
VOLUME ["/data"]
EXPOSE 8080
# Node is there anyway, so the check needs no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini reaps what the CLI leaves and forwards SIGTERM, so the gateway drains (docs/configuration.md).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/ccgw"]
CMD ["serve"]
