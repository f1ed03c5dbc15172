//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is
//! needed) and generates tonic clients and servers. The encoded descriptor set is written too,
//! for gRPC reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tokend/v1/client.proto",
        "proto/tokend/v1/token.proto",
        "proto/tokend/v1/introspection.proto",
        "proto/tokend/v1/key.proto",
        "proto/tokend/v1/audit.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // The Postgres test suites run when TOKEND_TEST_DATABASE_URL is set; otherwise they are
    // marked ignored, so `cargo test` lists them as skipped instead of passing silently.
    println!("cargo:rustc-check-cfg=cfg(tokend_pg_tests)");
    println!("cargo:rerun-if-env-changed=TOKEND_TEST_DATABASE_URL");
    if std::env::var_os("TOKEND_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=tokend_pg_tests");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("tokend_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
