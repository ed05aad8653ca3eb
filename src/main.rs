//! The `lakehose` binary: a thin shim over the library, so tests and
//! benchmarks reuse the same code.

fn main() -> std::process::ExitCode {
    lakehose::run()
}
