//! What the build scripts of `nsbox` (the tenants it embeds) and of the integration
//! tests (every example, the hostile ones included) share: making sure the
//! `wasm32-wasip2` target is installed, and building example tenants for it.
//!
//! rustup installs the targets `rust-toolchain.toml` lists only when it installs the
//! toolchain itself, and not at all with `RUSTUP_AUTO_INSTALL=0`; so a fresh clone on
//! a machine with the toolchain but without the target would fail deep inside the
//! guest build with `can't find crate for std`. [`ensure_target`] installs it instead,
//! saying so, or fails with one line that says what to run.

use std::env;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target tenant components are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Makes sure the toolchain building this has the `wasm32-wasip2` standard library,
/// installing it with rustup when it is missing. `lock_dir` holds a lock file, so that
/// two build scripts running at once do not install it twice.
pub fn ensure_target(lock_dir: &Path) -> Result<(), String> {
    if target_installed() {
        return Ok(());
    }
    std::fs::create_dir_all(lock_dir).map_err(|e| format!("{}: {e}", lock_dir.display()))?;
    let lock = File::create(lock_dir.join(".rustup-target.lock"))
        .map_err(|e| format!("{}: {e}", lock_dir.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_dir.display()))?;
    // Another build script may have installed it while this one waited.
    if target_installed() {
        return Ok(());
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        rustup.args(["--toolchain", toolchain]);
    }
    println!(
        "cargo:warning=the {TARGET} target is missing: installing it with `rustup target add {TARGET}`"
    );
    eprintln!("nsbox: installing the {TARGET} target (rustup target add {TARGET})");
    // A build script's stdout is read as directives: rustup's output goes to stderr.
    let status = rustup.stdout(Stdio::from(std::io::stderr())).status();
    let how = match &toolchain {
        Some(toolchain) => format!("rustup target add {TARGET} --toolchain {toolchain}"),
        None => format!("rustup target add {TARGET}"),
    };
    match status {
        Ok(status) if status.success() && target_installed() => Ok(()),
        Ok(status) => Err(format!(
            "the {TARGET} target is missing and `{how}` failed ({status}); run it yourself"
        )),
        Err(e) => Err(format!(
            "the {TARGET} target is missing and rustup could not be run ({e}); install the \
             target for this toolchain (with rustup: `{how}`)"
        )),
    }
}

/// Whether the standard library for [`TARGET`] is in the sysroot of the compiler
/// cargo builds with.
fn target_installed() -> bool {
    target_lib_dir().is_some_and(|dir| dir.is_dir())
}

/// Where the sysroot keeps [`TARGET`]'s standard library.
fn target_lib_dir() -> Option<PathBuf> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Some(
        Path::new(&sysroot)
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib"),
    )
}

/// The repository's root, seen from a build script of a crate one level below it; the
/// build runs again when the examples, the guest SDK or the WIT change.
pub fn repository_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir);
    for dir in ["examples", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    root
}

/// The directory every build of the examples shares, `<target>/wasm-examples`, found
/// from a build script's `OUT_DIR` (`<target>/<profile>/build/<crate>-<hash>/out`).
pub fn shared_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-examples"))
        .unwrap_or_else(|| out_dir.join("wasm-examples"))
}

/// Builds `packages` of the examples workspace (every member when empty) for
/// [`TARGET`] in release mode, with the lockfile as it is; returns the directory
/// holding the `.wasm` files. Output goes to stderr.
pub fn build_examples(examples: &Path, packages: &[&str]) -> Result<PathBuf, String> {
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    let target_dir = shared_target_dir();
    ensure_target(&target_dir)?;
    // Run again if the target goes (a `rustup target remove`): a cached build would
    // otherwise not notice until the examples change.
    if let Some(dir) = target_lib_dir() {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::from(std::io::stderr()));
    if packages.is_empty() {
        build.arg("--workspace");
    }
    for package in packages {
        build.args(["-p", package]);
    }
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
    let status = build
        .status()
        .map_err(|e| format!("cargo could not be run: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the example tenants for {TARGET} failed ({status}; output above)"
        ));
    }
    Ok(target_dir.join(TARGET).join("release"))
}
