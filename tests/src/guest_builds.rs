//! The example tenants written in JavaScript and Python, built the way their READMEs
//! say (`npm ci && npm run build` in `examples/js/NAME`, `bash build.sh` in
//! `examples/python/NAME`), and the test tenants of `tests/fixtures/{js,python}` the
//! same way, once per test process, and
//! again only when what they are built from changed: the example, the guest SDK or the
//! contract (a fingerprint of those files is kept beside the component).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// One build at a time: the examples share the machine's cores and npm's cache.
static BUILDING: Mutex<()> = Mutex::const_new(());

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// Every file under `dir` but `node_modules` and `dist`, in a stable order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if matches!(name, "node_modules" | "dist" | "__pycache__") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A digest of every file the component is built from.
fn fingerprint(sources: &[PathBuf]) -> String {
    let mut files = Vec::new();
    for dir in sources {
        files_under(dir, &mut files);
    }
    let mut digest = Sha256::new();
    for file in files {
        digest.update(file.to_string_lossy().as_bytes());
        digest.update(std::fs::read(&file).unwrap_or_default());
    }
    format!("{:x}", digest.finalize())
}

/// Runs `program args` in `dir`, failing with its status.
pub(crate) async fn run(dir: &Path, program: &str, args: &[&str]) -> std::io::Result<()> {
    let status = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "`{program} {}` in {} failed: {status}",
            args.join(" "),
            dir.display()
        )))
    }
}

/// `PLACE/LANGUAGE/NAME/dist/NAME.wasm` (`PLACE` is `examples` or `tests/fixtures`) with
/// the SDK `guest-sdk/LANGUAGE`, built by running `steps` in its directory unless it is
/// already built from the same files.
async fn build(
    place: &str,
    language: &str,
    name: &str,
    steps: &[&[&str]],
) -> std::io::Result<PathBuf> {
    let root = root();
    let dir = root.join(place).join(language).join(name);
    let component = dir.join(format!("dist/{name}.wasm"));
    let stamp = dir.join("dist/.fingerprint");
    let _one_at_a_time = BUILDING.lock().await;
    let sources = [
        dir.clone(),
        root.join("guest-sdk").join(language),
        root.join("wit"),
    ];
    let expected = fingerprint(&sources);
    let built = std::fs::read_to_string(&stamp).unwrap_or_default();
    if component.is_file() && built == expected {
        return Ok(component);
    }
    for step in steps {
        run(&dir, step[0], &step[1..]).await?;
    }
    std::fs::write(&stamp, expected)?;
    Ok(component)
}

/// How a JS tenant project is built: `npm ci && npm run build`.
const JS_STEPS: &[&[&str]] = &[
    &["npm", "ci", "--no-audit", "--no-fund"],
    &["npm", "run", "build"],
];

/// How a Python tenant is built: `bash build.sh`.
const PYTHON_STEPS: &[&[&str]] = &[&["bash", "build.sh"]];

/// `examples/js/NAME/dist/NAME.wasm`, built with `npm ci && npm run build`.
pub async fn js_example(name: &str) -> std::io::Result<PathBuf> {
    build("examples", "js", name, JS_STEPS).await
}

/// `examples/python/NAME/dist/NAME.wasm`, built with `bash build.sh`.
pub async fn python_example(name: &str) -> std::io::Result<PathBuf> {
    build("examples", "python", name, PYTHON_STEPS).await
}

/// A test tenant in JavaScript, `tests/fixtures/js/NAME`, built as an example is.
pub async fn js_fixture(name: &str) -> std::io::Result<PathBuf> {
    build("tests/fixtures", "js", name, JS_STEPS).await
}

/// A test tenant in Python, `tests/fixtures/python/NAME`, built as an example is.
pub async fn python_fixture(name: &str) -> std::io::Result<PathBuf> {
    build("tests/fixtures", "python", name, PYTHON_STEPS).await
}

/// The README's JavaScript tenant (the block that starts `// src/hello.js`), built in a
/// fresh project of `dir` with the README's commands; the component's path.
pub async fn readme_js_example(dir: &Path) -> std::io::Result<PathBuf> {
    let readme = std::fs::read_to_string(root().join("README.md"))?;
    let start = readme
        .find("```js\n// src/hello.js\n")
        .ok_or_else(|| std::io::Error::other("the README has no `// src/hello.js` block"))?;
    let code = &readme[start + "```js\n".len()..];
    let code = &code[..code.find("```").unwrap_or(code.len())];
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("src/hello.js"), code)?;
    let sdk = root().join("guest-sdk/js");
    let sdk = sdk.to_string_lossy();
    let build = "nsbox-build src/hello.js -o dist/hello.wasm";
    let _one_at_a_time = BUILDING.lock().await;
    run(dir, "npm", &["init", "-y"]).await?;
    run(
        dir,
        "npm",
        &[
            "pkg",
            "set",
            "type=module",
            &format!("scripts.build={build}"),
        ],
    )
    .await?;
    run(
        dir,
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--install-links",
            &sdk,
        ],
    )
    .await?;
    run(dir, "npm", &["run", "build"]).await?;
    Ok(dir.join("dist/hello.wasm"))
}

/// Runs `nsbox-build ENTRY -o dist/NAME.wasm` in a project `dir` that has the JS SDK
/// installed (as `readme_js_example` makes it), with what it printed.
pub async fn nsbox_build_in(dir: &Path, entry: &str) -> std::io::Result<std::process::Output> {
    let name = Path::new(entry)
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or("out");
    tokio::process::Command::new("npx")
        .args(["nsbox-build", entry, "-o", &format!("dist/{name}.wasm")])
        .current_dir(dir)
        .output()
        .await
}
