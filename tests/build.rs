//! Builds every example tenant, the hostile ones included, to wasm32-wasip2 for the
//! end-to-end suites (the host's own build embeds only the well-behaved ones).

fn main() {
    let root = nsbox_build::repository_root();
    match nsbox_build::build_examples(&root.join("examples"), &[]) {
        Ok(dir) => println!("cargo:rustc-env=NSBOX_FIXTURES_DIR={}", dir.display()),
        Err(error) => panic!("{error}"),
    }
}
