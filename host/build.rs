//! Builds the example tenants the binary embeds (`echo`, `admin`, `chat`, `bench`)
//! to wasm32-wasip2, installing the target when it is missing, so that
//! `nsbox serve` works out of the box. Off with `--no-default-features`
//! (feature `builtin-tenants`).

use std::env;
use std::path::PathBuf;

/// The examples built into the binary (`host/src/tenants/builtin.rs`).
const EMBEDDED: [&str; 4] = ["echo", "admin", "chat", "bench"];

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
    match nsbox_build::build_examples(&root.join("examples"), &EMBEDDED) {
        Ok(dir) => println!("cargo:rustc-env=NSBOX_EXAMPLES_DIR={}", dir.display()),
        Err(error) => {
            eprintln!("{error}");
            panic!(
                "{error}. To build nsbox without its example tenants: `cargo build -p nsbox \
                 --no-default-features`"
            );
        }
    }
}
