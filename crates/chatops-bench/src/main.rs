//! `chatops-bench`: the benchmark of issues #6, #10 and #11. Measures chatops against the machine's own
//! limits in one run and prints a table of figures, ratios and the issue's targets.
//!
//! ```text
//! cargo run --release -p chatops-bench                 # 3 runs, medians
//! cargo run --release -p chatops-bench -- --quick      # small counts, a smoke test
//! cargo run --release -p chatops-bench -- --only ack,reply --runs 5
//! ```
//!
//! It builds `chatops` in release mode first, then for each run and each measurement starts a
//! fresh `chatops serve` (temp config, data dir and project; Slack signing; replies to a fake
//! platform inside the bench) and the matching baseline, alternating which goes first.
//! It exits 0 even when targets are missed (that is a measurement); non-zero only when the
//! harness fails (a server did not start, replies were lost or duplicated).
//!
//! # Layout
//! - [`scenarios`]: the six measurements (ack, command→reply, many long jobs, big output,
//!   live progress, on a runner).
//! - [`load`]: the closed-loop load client and the command/reply operations.
//! - [`fake`]: the fake chat platform receiving replies.
//! - [`baseline`]: the bare actix-web server, direct spawns, the shell writing to a file.
//! - [`server`]: the servers as child processes; the bench's config and CI file.
//! - [`slack`]: Slack slash-command forms and v0 signing.
//! - [`procfs`]: RSS and CPU time from `/proc`.
//! - [`stats`], [`table`], [`report`]: percentiles and medians, the table, its rows.

mod baseline;
mod error;
mod fake;
mod load;
mod procfs;
mod report;
mod scenarios;
mod server;
mod slack;
mod stats;
mod table;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use error::BenchError;
use scenarios::{Ctx, Results, Sizes};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "chatops-bench",
    about = "Benchmark chatops against the machine's own limits (issue #6)"
)]
struct Cli {
    /// Runs of each measurement; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Small counts (20 MB output, 50 sleeps of 5 s, 1 s load windows): a smoke test.
    #[arg(long)]
    quick: bool,
    /// Only these measurements (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Measure>,
    /// Use this chatops binary instead of building `target/release/chatops`.
    #[arg(long, value_name = "PATH")]
    chatops: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Internal>,
}

#[derive(Subcommand)]
enum Internal {
    /// The bare actix-web baseline server (started by the bench itself).
    #[command(hide = true)]
    BaselineServer,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Measure {
    /// Signed slash commands for a manual job, c=1 and c=16, vs bare actix-web.
    Ack,
    /// `run echo` from command to reply, vs direct spawns.
    Reply,
    /// Many concurrent `sleep` jobs: RSS, CPU, every reply.
    Many,
    /// A job writing 200 MB, vs the shell writing to a file.
    Big,
    /// Command→reply with live progress (status message edits, threaded result) vs without.
    Live,
    /// Command→reply with the job on a GitLab runner (the Rust test runner) vs the local shell.
    Runner,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Internal::BaselineServer) = cli.command {
        return match baseline::serve_bare() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match bench(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chatops-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: Cli) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "chatops-bench: warning: this is a debug build of the bench; its client is slow. \
             Use `cargo run --release -p chatops-bench`."
        );
    }
    procfs::raise_fd_limit();
    let bin = match cli.chatops {
        Some(p) => p,
        None => build_chatops()?,
    };
    anyhow::ensure!(
        bin.is_file(),
        "{} does not exist; build it or pass --chatops",
        bin.display()
    );
    let sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let only = |m: Measure| cli.only.is_empty() || cli.only.contains(&m);
    let scratch = tempfile::Builder::new()
        .prefix("chatops-bench-scratch.")
        .tempdir()
        .context("cannot create a scratch dir")?;

    // Two workers, as many as the target machine has cores: the client must not outnumber
    // the server it measures.
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    let mut results = Results::default();
    let outcome: Result<(), BenchError> = rt.block_on(async {
        let fake = fake::FakePlatform::start()?;
        let ctx = Ctx {
            client: Arc::new(load::Client::new(fake)?),
            bin: bin.clone(),
            sizes: sizes.clone(),
            scratch: scratch.path().to_owned(),
        };
        for run in 0..cli.runs {
            // B C, C B, B C...: each pair runs back to back, and the order alternates.
            let baseline_first = run % 2 == 0;
            eprintln!(
                "chatops-bench: run {} of {} ({} first)",
                run + 1,
                cli.runs,
                if baseline_first {
                    "baseline"
                } else {
                    "chatops"
                }
            );
            if only(Measure::Ack) {
                scenarios::ack(&ctx, &mut results, baseline_first).await?;
            }
            if only(Measure::Reply) {
                scenarios::reply(&ctx, &mut results, baseline_first).await?;
            }
            if only(Measure::Many) {
                scenarios::many(&ctx, &mut results, baseline_first).await?;
            }
            if only(Measure::Big) {
                scenarios::big(&ctx, &mut results, baseline_first).await?;
            }
            if only(Measure::Live) {
                scenarios::live(&ctx, &mut results, baseline_first).await?;
            }
            if only(Measure::Runner) {
                scenarios::runner(&ctx, &mut results, baseline_first).await?;
            }
        }
        let other = ctx.client.fake.other_posts();
        if other > 0 {
            results.notes.push(format!(
                "the fake platform got {other} posts that were not a job's final reply"
            ));
        }
        Ok(())
    });

    print_report(&results, &sizes, cli.runs, &bin);
    // Other work on the machine skews absolute figures (ratios less so: they pair runs).
    println!("load average before: {load_before}; after: {}", loadavg());
    if let Err(e) = outcome {
        anyhow::bail!("the bench stopped: {e}");
    }
    let e = &results.errors;
    if e.replies_lost > 0 || e.replies_duplicated > 0 {
        eprintln!(
            "chatops-bench: {} replies lost and {} duplicated: the figures above are not trustworthy",
            e.replies_lost, e.replies_duplicated
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo build --release --bin chatops` in the workspace; returns the binary's path.
fn build_chatops() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("chatops-bench: cargo build --release --bin chatops");
    let status = std::process::Command::new(&cargo)
        .args(["build", "--release", "--bin", "chatops"])
        .current_dir(&root)
        .status()
        .map_err(|e| BenchError::Spawn {
            what: "cargo".into(),
            source: e,
        })?;
    if !status.success() {
        return Err(BenchError::Build(status).into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("chatops"))
}

/// The workspace root: two levels above this crate's manifest.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.to_owned(), Path::to_owned)
}

fn print_report(results: &Results, sizes: &Sizes, runs: u32, bin: &Path) {
    let rows = report::rows(results, sizes);
    println!();
    println!(
        "chatops-bench: {} ({}), medians of {runs} run{}; ratio = chatops / baseline, median of the per-run ratios",
        bin.display(),
        if sizes.many_jobs < 1000 { "--quick" } else { "full" },
        if runs == 1 { "" } else { "s" }
    );
    println!("machine: {}", machine());
    println!();
    print!("{}", table::render(&rows));
    for note in &results.notes {
        println!("note: {note}");
    }
}

/// The 1, 5 and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model, core count and kernel, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available, Linux {kernel}")
}
