# converged in a small non-root image. Build: docker build -t converged .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p converged && strip target/release/converged

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/converged --shell /usr/sbin/nologin converged \
 && mkdir -p /etc/converged /var/lib/converged \
 && chown converged:converged /var/lib/converged
COPY --from=build /src/target/release/converged /usr/local/bin/converged
COPY deploy/converged.toml /etc/converged/converged.toml
USER converged
VOLUME ["/etc/converged", "/var/lib/converged"]
ENV CONVERGED__HTTP__LISTEN=0.0.0.0:9797
EXPOSE 9797
# /healthz is 503 once the engine stops making progress (no cycle for 3x the resync interval,
# or one past its deadline; see docs/operations.md), so a wedged daemon turns unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:9797/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/converged"]
CMD ["run", "--config", "/etc/converged/converged.toml"]
