//! The servers under test, started as child processes (pinned to a core when asked),
//! and what the kernel says about them: CPU time and resident memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A server the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Node's socket.io 4.8 (bench/node).
    Node,
    /// socketioxide 0.18 with native handlers (bench/socketioxide).
    Socketioxide,
    /// nsbox with the `bench` example tenant.
    Nsbox,
    /// A WebSocket echo server without Socket.IO (`raw-echo`): the ceiling.
    Raw,
}

impl Peer {
    /// Every peer, in the order the tables show them.
    pub const ALL: [Peer; 4] = [Peer::Node, Peer::Socketioxide, Peer::Nsbox, Peer::Raw];

    /// The name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Node => "node",
            Peer::Socketioxide => "socketioxide",
            Peer::Nsbox => "nsbox",
            Peer::Raw => "raw",
        }
    }

    /// The peer of that name.
    pub fn parse(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Where the peers' programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The repository's root.
    pub root: PathBuf,
    /// The release `nsbox` binary.
    pub nsbox: PathBuf,
    /// The release `socketioxide-peer` binary.
    pub socketioxide: PathBuf,
    /// The `raw-echo` binary (built beside `nsbox-bench`).
    pub raw_echo: PathBuf,
}

/// How a run of rounds on fresh servers is made (the state and cluster benchmarks).
pub struct Run<'a> {
    /// The programs.
    pub programs: &'a Programs,
    /// Rounds, each on fresh servers; the reports show medians.
    pub rounds: usize,
    /// Each scenario's measured window.
    pub window: Duration,
    /// Each scenario's warm-up.
    pub warmup: Duration,
    /// The CPU the servers are pinned to.
    pub server_core: Option<usize>,
    /// Where the servers keep their data.
    pub data_dir: &'a Path,
}

/// A running server.
pub struct Running {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Running {
    /// Starts `peer` on `port`, pinned to CPU `core` if given, and waits until it
    /// accepts connections.
    pub fn start(
        peer: Peer,
        programs: &Programs,
        port: u16,
        core: Option<usize>,
        data_dir: &Path,
    ) -> Result<Running> {
        Running::start_in_cluster(peer, programs, port, core, data_dir, None)
    }

    /// [`Running::start`], joined to the other servers on the Redis at `redis` when
    /// given (nsbox with `--redis`, Node with the sharded Redis adapter).
    pub fn start_in_cluster(
        peer: Peer,
        programs: &Programs,
        port: u16,
        core: Option<usize>,
        data_dir: &Path,
        redis: Option<&str>,
    ) -> Result<Running> {
        let (program, mut args): (PathBuf, Vec<String>) = match peer {
            Peer::Node => (
                "node".into(),
                vec![
                    programs
                        .root
                        .join("bench/node/server.mjs")
                        .display()
                        .to_string(),
                    port.to_string(),
                ],
            ),
            Peer::Socketioxide => (programs.socketioxide.clone(), vec![port.to_string()]),
            Peer::Raw => (programs.raw_echo.clone(), vec![port.to_string()]),
            Peer::Nsbox => (
                programs.nsbox.clone(),
                vec![
                    "serve".into(),
                    "--config".into(),
                    programs.root.join("bench/nsbox.toml").display().to_string(),
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--admin-listen".into(),
                    format!("127.0.0.1:{}", port + 1),
                    "--data-dir".into(),
                    data_dir.display().to_string(),
                ],
            ),
        };
        if let (Peer::Nsbox, Some(url)) = (peer, redis) {
            args.extend(["--redis".to_owned(), url.to_owned()]);
        }
        let mut command = match core {
            Some(core) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(core.to_string()).arg(&program);
                taskset
            }
            None => Command::new(&program),
        };
        // What the server says goes to a log beside its data, for when it will not start.
        std::fs::create_dir_all(data_dir)?;
        let log_path = data_dir.join(format!("{}-{port}.log", peer.name()));
        let log = std::fs::File::create(&log_path)?;
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", "warn")
            .envs(
                redis
                    .filter(|_| peer == Peer::Node)
                    .map(|url| ("REDIS_URL", url)),
            )
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let running = Running { child, port };
        running.wait_until_listening().with_context(|| {
            format!("{} did not start; see {}", peer.name(), log_path.display())
        })?;
        Ok(running)
    }

    fn wait_until_listening(&self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("nothing listens on port {} after 60 s", self.port)
    }

    /// User plus system CPU time the server has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Its resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds from a `/proc/<pid>/stat` file (utime + stime, at 100 ticks a second).
pub fn cpu_seconds_of(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name: state is field 3 of the file, utime 14 and stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// Reads the servers' and the load generator's CPU time at the window's edges.
pub struct ProcMeter<'a> {
    servers: Vec<&'a Running>,
    at_start: (f64, f64),
    /// CPU seconds the servers together and this process spent in the window.
    pub spent: (f64, f64),
}

impl<'a> ProcMeter<'a> {
    /// A meter of `server` and of this process.
    pub fn new(server: &'a Running) -> Self {
        ProcMeter::of(&[server])
    }

    /// A meter of several servers (their sum) and of this process.
    pub fn of(servers: &[&'a Running]) -> Self {
        ProcMeter {
            servers: servers.to_vec(),
            at_start: (0.0, 0.0),
            spent: (0.0, 0.0),
        }
    }

    fn now(&self) -> (f64, f64) {
        let servers = self.servers.iter().map(|s| s.cpu_seconds()).sum();
        (servers, cpu_seconds_of("/proc/self/stat"))
    }
}

impl crate::scenario::Meter for ProcMeter<'_> {
    fn start(&mut self) {
        self.at_start = self.now();
    }
    fn stop(&mut self) {
        let now = self.now();
        self.spent = (now.0 - self.at_start.0, now.1 - self.at_start.1);
    }
}

/// The CPU time of the thread that runs the load (a generator on a thread of its own,
/// beside a server in the same process), as a share of the window's wall time.
#[derive(Debug, Default)]
pub struct ThreadMeter {
    at_start: Option<(f64, Instant)>,
    /// The thread's CPU seconds over the window's seconds, once stopped.
    pub share: f64,
}

impl crate::scenario::Meter for ThreadMeter {
    fn start(&mut self) {
        self.at_start = Some((cpu_seconds_of("/proc/thread-self/stat"), Instant::now()));
    }
    fn stop(&mut self) {
        if let Some((cpu, started)) = self.at_start {
            let spent = cpu_seconds_of("/proc/thread-self/stat") - cpu;
            self.share = spent / started.elapsed().as_secs_f64().max(1e-9);
        }
    }
}
