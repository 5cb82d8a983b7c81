//! A real `redis-server` for the tests: on a free port, stopped when dropped; without
//! persistence, or with an append-only file that survives it being killed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` of a test's own.
pub(crate) struct TestRedis {
    child: Child,
    port: u16,
    /// Where it keeps its append-only file, when it keeps one.
    dir: Option<PathBuf>,
    /// `redis://127.0.0.1:PORT`
    pub(crate) url: String,
}

impl TestRedis {
    /// Starts one without persistence and waits until it accepts connections (at most 10 s).
    pub(crate) async fn start() -> TestRedis {
        TestRedis::launch(free_port(), None).await
    }

    /// Starts one that writes every change to its append-only file before answering.
    pub(crate) async fn start_durable() -> TestRedis {
        let dir = std::env::temp_dir().join(format!("nsbox-redis-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a directory for Redis");
        TestRedis::launch(free_port(), Some(dir)).await
    }

    async fn launch(port: u16, dir: Option<PathBuf>) -> TestRedis {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let redis = TestRedis {
            child,
            port,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port} within 10 s");
    }

    /// Kills it (SIGKILL) and starts it again on the same port, with what it persisted.
    pub(crate) async fn kill_and_restart(&mut self) {
        self.kill();
        let again = TestRedis::launch(self.port, self.dir.take()).await;
        // The old one is dead already, and its directory is the new one's.
        drop(std::mem::replace(self, again));
    }

    /// A plain client of it, connected: for a test to look at or change what is stored.
    pub(crate) async fn client(&self) -> fred::clients::Client {
        use fred::interfaces::ClientLike;
        let config = fred::types::config::Config::from_url(&self.url).expect("a URL");
        let client = fred::clients::Client::new(config, None, None, None);
        client.init().await.expect("connects");
        client
    }

    /// Kills it (SIGKILL); [`TestRedis::kill_and_restart`] brings it back.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it answering (SIGSTOP), as a Redis that hangs; `resume` undoes it.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it answer again (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
