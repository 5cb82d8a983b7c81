//! A real `redis-server` for the tests: on a free port, without persistence, stopped
//! when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` of a test's own.
pub(crate) struct TestRedis {
    child: Child,
    /// `redis://127.0.0.1:PORT`
    pub(crate) url: String,
}

impl TestRedis {
    /// Starts one and waits until it accepts connections (at most 10 s).
    pub(crate) async fn start() -> TestRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let redis = TestRedis {
            child,
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
}

impl TestRedis {
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

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
