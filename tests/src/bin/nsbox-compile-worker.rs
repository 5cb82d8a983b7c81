//! The compile worker of the test servers (`TestServer`), as `nsbox compile-worker` is
//! the binary's: the end-to-end suites compile uploads the way `nsbox serve` does.

fn main() -> std::process::ExitCode {
    nsbox::tenants::compiler::worker_main()
}
