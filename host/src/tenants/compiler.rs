//! Compiling an upload where it cannot hurt the host: in a child process (the
//! `compile-worker`) with an address-space and a CPU-time limit, killed when the upload
//! gives up or times out. A component can be valid and still built to make a compiler
//! spend minutes and gigabytes; in the child that is the child's problem, and the
//! upload is refused with `compile_limit`.
//!
//! The worker reads the component on stdin, checks its shape ([`super::shape`]),
//! compiles it with an engine configured as the host's, and writes the compiled
//! artifact on stdout. On a refusal it exits with code 3 and writes
//! `<code>\n<message>` instead.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::engine::worker_engine;
use super::load_error::LoadError;
use super::shape::{self, CompileLimits, ShapeError};

/// How to start the compile worker: a program and its first arguments (the job is
/// added as the last). `nsbox` runs itself as `nsbox compile-worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before the job.
    pub args: Vec<String>,
}

/// What one compilation is told: how to build the engine, and its limits.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    wasm_stack_bytes: usize,
    limits: CompileLimits,
}

/// The worker's exit code when it refused the component (its reason on stdout).
const REFUSED: u8 = 3;

/// Compiles `bytes` in a child process under `limits`; the compiled artifact, or why
/// not. Dropping the future kills the child.
pub(crate) async fn compile_in_worker(
    worker: &Worker,
    wasm_stack_bytes: usize,
    limits: &CompileLimits,
    bytes: &[u8],
) -> Result<Vec<u8>, LoadError> {
    let job = Job {
        wasm_stack_bytes,
        limits: limits.clone(),
    };
    let job = serde_json::to_string(&job).map_err(|e| stopped(&e))?;
    let mut child = tokio::process::Command::new(&worker.program)
        .args(&worker.args)
        .arg(job)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| stopped(&format!("cannot start {}: {e}", worker.program.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that refuses early stops reading: the rest does not matter.
        let _ = stdin.write_all(bytes).await;
    }
    let output = child.wait_with_output().await.map_err(|e| stopped(&e))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    if output.status.code() == Some(i32::from(REFUSED)) {
        let text = String::from_utf8_lossy(&output.stdout);
        let (code, message) = text.split_once('\n').unwrap_or(("invalid", &text));
        return Err(match code {
            "compile_limit" => LoadError::CompileLimit(message.to_owned()),
            _ => LoadError::Invalid(message.to_owned()),
        });
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // SIGXCPU at the soft CPU limit, SIGKILL at the hard one.
    if matches!(output.status.signal(), Some(24 | 9)) {
        return Err(LoadError::CompileLimit(format!(
            "compiling used more than {} ms of CPU time",
            limits.cpu_ms
        )));
    }
    // The heap's allocation failures abort the process with this message.
    if stderr.contains("memory allocation") {
        return Err(LoadError::CompileLimit(out_of_memory(limits)));
    }
    Err(stopped(&format!(
        "{}: {}",
        output.status,
        stderr.lines().last().unwrap_or_default()
    )))
}

fn out_of_memory(limits: &CompileLimits) -> String {
    format!(
        "compiling needed more than {} bytes of memory",
        limits.memory_bytes
    )
}

fn stopped(error: &dyn std::fmt::Display) -> LoadError {
    LoadError::Compiler(error.to_string())
}

/// The compile worker's `main`: reads the job (its last argument) and the component
/// (stdin), limits itself, checks and compiles, writes the artifact (stdout).
pub fn worker_main() -> ExitCode {
    let refuse = |code: &str, message: &dyn std::fmt::Display| {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{code}\n{message}");
        ExitCode::from(REFUSED)
    };
    let job = std::env::args_os().next_back();
    let Some(Ok(job)) = job
        .as_ref()
        .and_then(|arg| arg.to_str())
        .map(serde_json::from_str::<Job>)
    else {
        return refuse(
            "invalid",
            &"the compile worker needs its job as its last argument",
        );
    };
    if let Err(error) = limit_self(&job.limits) {
        return refuse(
            "invalid",
            &format!("cannot limit the compile worker: {error}"),
        );
    }
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut bytes) {
        return refuse("invalid", &format!("cannot read the component: {error}"));
    }
    match shape::check(&bytes, &job.limits) {
        Ok(()) => {}
        Err(error @ ShapeError::Beyond { .. }) => return refuse("compile_limit", &error),
        Err(ShapeError::Invalid(error)) => return refuse("invalid", &error),
    }
    let engine = match worker_engine(job.wasm_stack_bytes) {
        Ok(engine) => engine,
        Err(error) => return refuse("invalid", &format!("{error:#}")),
    };
    match engine.precompile_component(&bytes) {
        Ok(artifact) => match std::io::stdout().lock().write_all(&artifact) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        // Memory the compiler maps itself (code, not the heap) fails as an error.
        Err(error) if format!("{error:#}").contains("os error 12") => {
            refuse("compile_limit", &out_of_memory(&job.limits))
        }
        Err(error) => refuse("invalid", &format!("{error:#}")),
    }
}

/// Caps this process's address space and CPU time (seconds, rounded up): past the
/// first, allocations fail and the process aborts; past the second, the kernel stops it.
/// And gives way to everything else on the machine (the lowest priority): the cores it
/// uses are the ones the host's own threads leave.
fn limit_self(limits: &CompileLimits) -> std::io::Result<()> {
    use rustix::process::{setpriority_process, setrlimit, Resource, Rlimit};
    setpriority_process(None, 19)?;
    let memory = Some(limits.memory_bytes);
    setrlimit(
        Resource::As,
        Rlimit {
            current: memory,
            maximum: memory,
        },
    )?;
    let seconds = limits.cpu_ms.div_ceil(1000).max(1);
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(seconds),
            maximum: Some(seconds + 1),
        },
    )?;
    Ok(())
}
