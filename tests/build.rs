//! Builds every example tenant, the hostile ones included, to wasm32-wasip2 for the
//! end-to-end suites (the host's own build embeds only the well-behaved ones).

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf();
    for dir in ["examples", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    match nsbox_build::build_examples(&root.join("examples"), &[]) {
        Ok(dir) => println!("cargo:rustc-env=NSBOX_FIXTURES_DIR={}", dir.display()),
        Err(error) => panic!("{error}"),
    }
}
