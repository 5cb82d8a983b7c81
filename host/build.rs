//! Builds the example tenants (`examples/`) to wasm32-wasip2 so that the binary can
//! embed them and `nsbox serve` works out of the box. Off with
//! `--no-default-features` (feature `builtin-tenants`).

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf();
    for dir in ["examples", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    if env::var_os("CARGO_FEATURE_BUILTIN_TENANTS").is_none() {
        return;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/nsbox-<hash>/out: build the examples once in
    // <target>/wasm-examples, shared by every profile.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-examples"))
        .unwrap_or_else(|| out_dir.join("wasm-examples"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("examples").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads stdout of a build script as directives: send the build's output to stderr.
        .stdout(Stdio::from(std::io::stderr()));
    // What the outer build set for the host's own crates must not leak into the guests'.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        build.env_remove(var);
    }
    let status = build.status().expect("cargo runs");
    if !status.success() {
        panic!(
            "building the example tenants for wasm32-wasip2 failed (output above). Is the target \
             installed (`rustup target add wasm32-wasip2`)? To build nsbox without them: \
             `cargo build -p nsbox --no-default-features`."
        );
    }
    println!(
        "cargo:rustc-env=NSBOX_EXAMPLES_DIR={}",
        target_dir.join("wasm32-wasip2").join("release").display()
    );
}
