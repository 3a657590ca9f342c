# syntax=docker/dockerfile:1
#
# scrapefarm image: one binary; one container = one worker = one headless Chromium + one profile.
#
#   docker build -t scrapefarm:0.1.0 .
#   docker run --rm --shm-size=1g -e DATABASE_URL=... -e AMQP_URL=... \
#     --security-opt seccomp=k8s/seccomp/scrapefarm-chromium.json scrapefarm:0.1.0 worker
#
# The seccomp profile lets Chromium's sandbox create its user namespaces (Docker's default profile
# denies them); without it the worker logs a WARN and runs Chromium with --no-sandbox. Chromium
# and chromedriver never see DATABASE_URL/AMQP_URL: they start with a minimal environment.
#
# Credentials are never baked in: DATABASE_URL and AMQP_URL come from the environment at run time
# (in Kubernetes from the Secret `scrapefarm-credentials`, see k8s/).

############################################################################################
# Build stage
############################################################################################
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependency-caching layer: compile every dependency against a dummy crate, so that editing
# src/ only recompiles scrapefarm itself. Re-runs only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources. `build.r[s]` copies build.rs only if it exists (Cargo.toml is listed again
# so the instruction always has a match). migrations/ and sites/ are read at compile time by
# sqlx::migrate! and include_str! (the built-in sites), and shipped in the runtime image below.
COPY Cargo.toml build.r[s] ./
COPY src ./src
COPY migrations ./migrations
COPY sites ./sites
# COPY keeps the sources' mtimes, which can be older than the dummy build's artifacts: drop
# the crate's own fingerprints so cargo cannot mistake the dummy build for an up-to-date one.
RUN rm -rf target/release/.fingerprint/scrapefarm-* \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/scrapefarm /out/scrapefarm

############################################################################################
# Runtime stage
############################################################################################
FROM debian:bookworm-slim AS runtime

# Versions are not pinned on purpose: Debian's security archive replaces Chromium's exact
# version within weeks, so a pinned version stops resolving and the build breaks. Rebuild the
# image regularly to pick up Chromium security fixes instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        chromium \
        chromium-driver \
        chromium-headless-shell \
        fonts-liberation \
        fonts-noto-color-emoji \
        tini \
    && rm -rf /var/lib/apt/lists/*

# Non-root user; uid/gid 10001 match runAsUser/fsGroup in k8s/. The profile and snapshot
# directories are volumes in Kubernetes; in plain Docker they are owned by the user here.
RUN groupadd --system --gid 10001 scrapefarm \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/scrapefarm --create-home \
        --shell /usr/sbin/nologin scrapefarm \
    && mkdir -p /app/profiles /app/snapshots \
    && chown 10001:10001 /app/profiles /app/snapshots

WORKDIR /app
COPY --from=build /out/scrapefarm /usr/local/bin/scrapefarm
COPY sites /app/sites
COPY migrations /app/migrations

ENV CHROME_BIN=/usr/bin/chromium \
    CHROMEDRIVER_BIN=/usr/bin/chromedriver \
    SCRAPEFARM_SITES_DIR=/app/sites \
    SCRAPEFARM_PROFILE_DIR=/app/profiles \
    SCRAPEFARM_SNAPSHOT_DIR=/app/snapshots \
    SCRAPEFARM_READY_FILE=/tmp/scrapefarm-health.json \
    SCRAPEFARM_LOG_FORMAT=json

USER 10001

# `scrapefarm health` exits 0 when the worker in $SCRAPEFARM_READY_FILE runs and progressed within 60 s.
# (Kubernetes ignores HEALTHCHECK; k8s/worker-job.yaml runs the same command as a probe.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["scrapefarm", "health"]

# tini is PID 1 so that Chromium's zombie children are reaped and SIGTERM reaches scrapefarm,
# which stops consuming, finishes in-flight pages up to its deadline and closes the browser.
ENTRYPOINT ["/usr/bin/tini", "--", "scrapefarm"]
CMD ["worker"]
