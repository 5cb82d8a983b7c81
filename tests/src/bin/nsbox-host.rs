//! A test server in a process of its own, for the suites that kill it (`SIGKILL`) and
//! start it again on the same data directory: `nsbox-host CONFIG DATA_DIR` serves the
//! configuration in the file `CONFIG` (components relative to the built examples), then
//! prints `SERVER_URL=http://... ADMIN_URL=http://...` on one line and serves until killed.

use std::io::Write;
use std::path::Path;

use integration_tests::TestServer;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, data_dir] = args.as_slice() else {
        eprintln!("usage: nsbox-host CONFIG DATA_DIR");
        return std::process::ExitCode::from(2);
    };
    let config = match std::fs::read_to_string(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cannot read {config}: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match TestServer::start_in(&config, Path::new(data_dir)).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let admin = server
        .admin
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "SERVER_URL={} ADMIN_URL={admin}", server.url());
    let _ = stdout.flush();
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}
