# syntax=docker/dockerfile:1
# tokend's container image: a release build on Debian 12, run from distroless as non-root.
#   docker build -t tokend:0.1.0 .
# The chart (helm/tokend) runs it with a read-only root filesystem; tokend writes nothing to disk
# with Postgres. protoc is not needed: build.rs compiles proto/ with protox (pure Rust).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the crates and the target directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tokend \
 && install -D -m 0755 target/release/tokend /out/tokend

# glibc, libgcc and CA certificates, no shell; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tokend /usr/local/bin/tokend
USER 65532:65532
ENV TOKEND__SERVER__ADDR=0.0.0.0:50051 \
    TOKEND__LOG__FORMAT=json
# 50051: gRPC and the HTTP routes; 9090: Prometheus /metrics, when metrics.addr is set
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/tokend"]
CMD ["serve"]
