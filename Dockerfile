# syntax=docker/dockerfile:1
# LeadRank in a container: a multi-stage build of the one binary, run as a
# non-root user, with /healthz as the health check.
#
#   docker build -t leadrank .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://… -e LEADRANK_JWT_SECRET=… leadrank
#
# Build with trace export over OTLP: docker build --build-arg FEATURES=otel .

FROM rust:1.94-bookworm AS build
ARG FEATURES=""
WORKDIR /src
# Dependencies first, so a change to LeadRank's own code rebuilds only it.
COPY Cargo.toml Cargo.lock ./
COPY api/Cargo.toml api/
COPY entity/Cargo.toml entity/
COPY migration/Cargo.toml migration/
COPY scoring/Cargo.toml scoring/
COPY tests/Cargo.toml tests/
RUN for crate in api entity migration scoring tests; do \
        mkdir -p "$crate/src" && echo 'fn main() {}' > "$crate/src/main.rs" && touch "$crate/src/lib.rs"; \
    done \
    && mkdir -p tests/api tests/bench \
    && for f in tests/api/main.rs tests/bench/http.rs tests/bench/rescore.rs tests/bench/models.rs tests/bench/ingest.rs; do echo 'fn main() {}' > "$f"; done \
    && cargo build --release --locked -p api --features "$FEATURES" || true
COPY . .
# The real sources are newer than the stubs' build; make sure cargo sees it.
RUN find api entity migration scoring -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p api --features "$FEATURES" \
    && cp target/release/leadrank /leadrank

FROM debian:bookworm-slim
# The distribution's current CA certificates and curl (for the health check):
# pinning their versions would break the build at every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/leadrank --create-home leadrank
COPY --from=build /leadrank /usr/local/bin/leadrank
USER 10001:10001
WORKDIR /var/lib/leadrank
ENV LEADRANK_BIND=0.0.0.0:8080 \
    LEADRANK_LOG_FORMAT=json \
    DATABASE_URL=sqlite:///var/lib/leadrank/leadrank.db
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["leadrank"]
CMD ["serve"]
