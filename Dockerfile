# syntax=docker/dockerfile:1
# Caxton in a container: a multi-stage build, a non-root runtime, the data
# directory and the model cache in volumes.
#
#   docker build -t caxton .
#   docker run -d --name caxton -p 8080:8080 \
#     -v caxton-data:/var/lib/caxton/data -v caxton-models:/var/cache/caxton caxton
#   docker exec caxton caxton agents list      # the admin token is in the data volume
#
# packaging/container-build-steps runs these same steps without a container
# engine (in a clean directory) and checks the result starts and answers.

FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The built-in config-agent component is built for wasm32-wasip2 by
# host/build.rs and embedded in the binary.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p caxton --bin caxton \
 && install -D target/release/caxton /out/caxton

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/caxton caxton \
 && mkdir -p /var/lib/caxton/data /var/cache/caxton \
 && chown -R caxton:caxton /var/lib/caxton /var/cache/caxton
COPY --from=build /out/caxton /usr/local/bin/caxton
USER caxton
WORKDIR /var/lib/caxton
# Beyond loopback every request but /api/v1/health needs a token; the
# admin token is written to the data directory at the first start.
ENV CAXTON_HOST=0.0.0.0 \
    CAXTON_PORT=8080 \
    CAXTON_DATA_DIR=/var/lib/caxton/data \
    CAXTON_MODEL_CACHE=/var/cache/caxton/models
VOLUME ["/var/lib/caxton/data", "/var/cache/caxton"]
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD ["caxton", "--server", "http://127.0.0.1:8080", "status"]
ENTRYPOINT ["caxton"]
CMD ["start"]
