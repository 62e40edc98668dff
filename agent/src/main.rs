//! The `warden` command: see `warden --help` and the README.

fn main() -> std::process::ExitCode {
    warden::cli::main()
}
