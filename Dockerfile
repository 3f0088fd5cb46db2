# devsecops-app as a distroless image: one static binary (glibc, crt-static), CA certificates, a
# passwd entry for uid 10001, an empty /data owned by it, nothing else: no shell, no package manager.
#
# With internet, one command builds everything (cargo-auditable embeds the dependency list, so the
# image can be audited offline with `cargo audit bin`):
#   DOCKER_BUILDKIT=1 docker build -t devsecops-app .
# Offline, feed a binary built on the host (scripts/build-image.sh does exactly this):
#   RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo auditable build --release -p devsecops-app \
#     --target x86_64-unknown-linux-gnu
#   DOCKER_BUILDKIT=1 docker build --build-arg BINARY_FROM=host -t devsecops-app .
# Probes belong to the orchestrator, so there is no HEALTHCHECK; `devsecops-app healthcheck URL`
# exists for runtimes that want one.

# checkov:skip=CKV_DOCKER_2: probes belong to the orchestrator (the chart's startup, liveness and readiness probes); owner: platform-team; expires: 2027-05-31
# checkov:skip=CKV_DOCKER_7: the variable stage reference selects a local build stage, not a registry tag; owner: platform-team; expires: 2027-05-31

ARG RUST_VERSION=1.95
ARG BINARY_FROM=build

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo install --locked cargo-auditable --version 0.7.7 \
 && RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo auditable build --release --locked \
      -p devsecops-app --target x86_64-unknown-linux-gnu \
 && mkdir -p /out/data \
 && cp target/x86_64-unknown-linux-gnu/release/devsecops-app /out/devsecops-app \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt \
 && printf 'app:x:10001:10001:devsecops-app:/nonexistent:/sbin/nologin\n' > /out/passwd \
 && printf 'app:x:10001:\n' > /out/group

# The same layout, from files the host prepared in dist/devsecops-app/ (no base image needed).
FROM scratch AS host
COPY dist/devsecops-app/ /out/

FROM ${BINARY_FROM} AS binary

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="devsecops-app" \
      org.opencontainers.image.description="Users API with health, readiness, Prometheus metrics and JSON logs" \
      org.opencontainers.image.source="https://github.com/devsecops-platform/devsecops" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binary /out/passwd /etc/passwd
COPY --from=binary /out/group /etc/group
COPY --from=binary /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary --chown=10001:10001 /out/data /data
COPY --from=binary /out/devsecops-app /usr/local/bin/devsecops-app
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=sqlite:///data/devsecops-app.db \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/devsecops-app"]
