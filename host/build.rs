//! Builds the example tenants the binary embeds (`echo`, `admin`, `chat`, `bench`,
//! `countdown`, and `hostile-panic` for the demo page)
//! to wasm32-wasip2, installing the target when it is missing, so that
//! `nsbox serve` works out of the box. Off with `--no-default-features`
//! (feature `builtin-tenants`).

use std::env;

/// The examples built into the binary (`host/src/tenants/builtin.rs`).
const EMBEDDED: [&str; 6] = [
    "echo",
    "admin",
    "chat",
    "bench",
    "countdown",
    "hostile-panic",
];

fn main() {
    let root = nsbox_build::repository_root();
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
