//! `cargo xtask`: Warden's build and test tasks.
//!
//! - `cargo xtask build-plugins`: build the wasm plugins, copy them to `target/plugins/`
//!   and the test fixtures to `target/plugin-fixtures/`.
//! - `cargo xtask test [-- ARGS]`: everything CI runs, in order, stopping at the first
//!   failing step.
//! - `cargo xtask quickstart`: seed a churned SQLite database and vacuum it with the agent.
//! - `cargo xtask bench [-- ARGS]`: the runtime, webhook, backup, index-advisor
//!   and sql-walls benchmarks.

mod cmd;
mod mongo;
mod plugins;
mod quickstart;
mod suite;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Warden's build and test tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the wasm32-wasip2 plugin workspace and copy the plugins to target/plugins/
    /// and the test fixtures to target/plugin-fixtures/.
    BuildPlugins,
    /// Run the whole suite as CI does: PostgreSQL 15 packages, build-plugins, fmt,
    /// clippy, then `cargo test --workspace`.
    ///
    /// Arguments after `--` are appended to `cargo test --workspace`, e.g.
    /// `cargo xtask test -- -p warden-tests pg_harness -- --nocapture`
    /// (with `-p`/`--package`, `--workspace` is left out).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Seed examples/quickstart/quickstart.db with churn and vacuum it with the agent.
    Quickstart {
        /// Also delete the agent's state (run history) in examples/quickstart/state/.
        #[arg(long)]
        reset_state: bool,
    },
    /// Build the plugins, then run the runtime and webhook benches (`-p warden`), then the backup and index-advisor benches (`-p warden-tests`).
    Bench {
        /// Extra arguments for `cargo bench`.
        #[arg(last = true)]
        cargo_bench_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nerror: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let root = repo_root()?;
    match task {
        Task::BuildPlugins => plugins::build_plugins(&root).map(|_| ()),
        Task::Test { cargo_test_args } => suite::test(&root, &cargo_test_args),
        Task::Quickstart { reset_state } => quickstart::quickstart(&root, reset_state),
        Task::Bench { cargo_bench_args } => {
            plugins::build_plugins(&root)?;
            cmd::run(
                cmd::cargo(&root)
                    .args([
                        "bench", "-p", "warden", "--bench", "runtime", "--bench", "webhook",
                    ])
                    .args(&cargo_bench_args),
            )?;
            // The backup figures: the harness's PostgreSQL cluster and MongoDB test
            // server (the one `cargo xtask test` uses, installed when missing), the
            // backup plugin.
            let mongod = mongo::ensure_test_server()?;
            cmd::run(
                cmd::cargo(&root)
                    .args(["bench", "-p", "warden-tests", "--bench", "backup"])
                    .args(&cargo_bench_args)
                    .env("WARDEN_TEST_MONGOD", &mongod),
            )?;
            // The index advisor's figures: run time for 100 and 1,000 statements,
            // recall and precision against an exhaustive what-if search, measured
            // speed-ups (the harness's PostgreSQL cluster with HypoPG).
            cmd::run(
                cmd::cargo(&root)
                    .args(["bench", "-p", "warden-tests", "--bench", "index_advisor"])
                    .args(&cargo_bench_args),
            )?;
            // The sql walls: peak RSS for a 300 MB row under max_result_bytes
            // 16 MiB, time from a deadline to the backend being gone.
            cmd::run(
                cmd::cargo(&root)
                    .args(["bench", "-p", "warden-tests", "--bench", "walls"])
                    .args(&cargo_bench_args),
            )
        }
    }
}

/// The repository root: the parent of this crate's directory.
fn repo_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}
