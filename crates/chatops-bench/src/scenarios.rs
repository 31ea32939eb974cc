//! The measurements of issues #6, #10 and #11, each a baseline and a chatops run made back to back:
//! 1. [`ack`]: signed Slack commands for a `when: manual` job, c=1 and c=16, vs bare actix-web.
//! 2. [`reply`]: `run echo` from command to reply, c=1 latency and c=16 throughput, vs spawning
//!    `sh -c 'echo hi'` from Tokio.
//! 3. [`many`]: many concurrent `sleep` jobs: the server's RSS and CPU while they wait, then
//!    every reply; vs spawning the sleeps directly.
//! 4. [`big`]: a job writing 200 MB, vs the shell writing the same bytes to a file.
//! 5. [`live`]: command → reply with live progress (a status message edited while the job
//!    runs, the result in its thread) vs the same server setup without it (issue #11).
//! 6. [`runner`]: command → reply when the job runs on a GitLab runner vs the local shell
//!    (issue #10).
//!
//! Every chatops measurement gets a fresh server (fresh data dir, fresh peak RSS), so one
//! measurement's leftovers (thousands of waiting manual jobs) cannot skew the next.

use crate::baseline::{self, Shell};
use crate::error::BenchError;
use crate::load::{run_count, run_for, Client, Failure, Outcome};
use crate::procfs;
use crate::server::{dir_bytes, ServerProcess, Variant, RUNNER_TOKEN};
use crate::stats::Percentiles;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much work each measurement does.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Ack load: time before measuring (connections, caches).
    pub ack_warmup: Duration,
    /// Ack load: the measured window.
    pub ack_measure: Duration,
    /// Command → reply: jobs run (and not counted) before measuring.
    pub reply_warmup: u64,
    /// Command → reply at c=1: jobs measured.
    pub reply_c1: u64,
    /// Command → reply at c=16: jobs measured.
    pub reply_c16: u64,
    /// Many long jobs: how many.
    pub many_jobs: u64,
    /// Many long jobs: how long each sleeps, seconds.
    pub many_sleep: u64,
    /// Big output: bytes the job writes.
    pub big_bytes: u64,
    /// Live progress: `echo` jobs measured at c=1, each way.
    pub live_echo: u64,
    /// Live progress: `ticker` jobs (about 3 s each) measured at c=1, each way.
    pub live_ticker: u64,
    /// On a runner: `echo` jobs measured at c=1, each way.
    pub runner_echo: u64,
}

impl Sizes {
    /// The figures.
    pub fn full() -> Sizes {
        Sizes {
            ack_warmup: Duration::from_secs(1),
            ack_measure: Duration::from_secs(5),
            reply_warmup: 16,
            reply_c1: 200,
            reply_c16: 1600,
            many_jobs: 1000,
            many_sleep: 20,
            big_bytes: 200_000_000,
            live_echo: 100,
            live_ticker: 10,
            runner_echo: 100,
        }
    }

    /// Small counts for a smoke test (about a minute).
    pub fn quick() -> Sizes {
        Sizes {
            ack_warmup: Duration::from_millis(300),
            ack_measure: Duration::from_secs(1),
            reply_warmup: 4,
            reply_c1: 20,
            reply_c16: 160,
            many_jobs: 50,
            many_sleep: 5,
            big_bytes: 20_000_000,
            live_echo: 10,
            live_ticker: 3,
            runner_echo: 10,
        }
    }
}

/// The figures of the table, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fig {
    /// Ack requests/s at c=1.
    AckRate1,
    /// Ack p50 at c=1, ms.
    AckP50c1,
    /// Ack p99 at c=1, ms.
    AckP99c1,
    /// Ack requests/s at c=16.
    AckRate16,
    /// Ack p50 at c=16, ms.
    AckP50c16,
    /// Ack p99 at c=16, ms.
    AckP99c16,
    /// Command → reply p50 at c=1, ms.
    ReplyP50,
    /// Command → reply p99 at c=1, ms.
    ReplyP99,
    /// Command → reply p50 at c=1, ms, against direct bash spawns.
    ReplyP50Bash,
    /// Command → reply jobs/s at c=16.
    ReplyRate16,
    /// Command → reply jobs/s at c=16, against direct bash spawns.
    ReplyRate16Bash,
    /// Many jobs: p99 of the acks (16 senders at a time), ms: Slack's 3 s under a burst.
    ManyAckP99,
    /// Many jobs: the server's RSS while they wait, MB.
    ManyRss,
    /// Many jobs: the server's peak RSS over the whole measurement, MB.
    ManyPeak,
    /// Many jobs: the server's CPU while they wait, % of one core.
    ManyCpu,
    /// Many jobs: first command to last reply, s.
    ManyWall,
    /// Big output: command to reply, s.
    BigWall,
    /// Big output: the server's peak RSS, MB.
    BigPeak,
    /// Live progress on vs off: `echo` command → reply p50 at c=1, ms.
    LiveEchoP50,
    /// Live progress on vs off: `ticker` (about 3 s, edited once or more) command → reply
    /// p50 at c=1, ms.
    LiveTickerP50,
    /// `echo` on a GitLab runner (the Rust test runner) vs the local shell: command → reply p50
    /// at c=1, ms.
    RunnerEchoP50,
    /// The same, p99.
    RunnerEchoP99,
}

/// One figure's values, one per run.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// The baseline's values.
    pub baseline: Vec<f64>,
    /// chatops' values.
    pub chatops: Vec<f64>,
    /// chatops / baseline, per run (only when both were measured in that run).
    pub ratios: Vec<f64>,
}

/// Counts of things that must not happen, summed over every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    /// Commands answered with another status than 200, not answered, or not with JSON.
    pub acks_failed: u64,
    /// Accepted commands whose final reply never arrived.
    pub replies_lost: u64,
    /// Final replies beyond the first for one command.
    pub replies_duplicated: u64,
    /// Final replies saying the job did not succeed.
    pub jobs_not_succeeded: u64,
}

/// Everything measured so far.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Per figure, its values over the runs.
    pub series: BTreeMap<Fig, Series>,
    /// Counts of failures.
    pub errors: Errors,
    /// Things worth saying under the table (e.g. the size of the big job's log on disk).
    pub notes: Vec<String>,
}

impl Results {
    /// Records one run's values of `fig`.
    pub fn record(&mut self, fig: Fig, baseline: Option<f64>, chatops: Option<f64>) {
        let s = self.series.entry(fig).or_default();
        if let Some(b) = baseline {
            s.baseline.push(b);
        }
        if let Some(c) = chatops {
            s.chatops.push(c);
        }
        if let (Some(b), Some(c)) = (baseline, chatops) {
            if b > 0.0 {
                s.ratios.push(c / b);
            }
        }
    }

    fn tally(&mut self, t: &Tally) {
        self.errors.acks_failed += t.acks_failed;
        self.errors.replies_lost += t.lost;
        self.errors.replies_duplicated += t.duplicates;
        self.errors.jobs_not_succeeded += t.not_succeeded;
    }
}

/// What a measurement shares with the others.
pub struct Ctx {
    /// The load client and the fake platform.
    pub client: Arc<Client>,
    /// `target/release/chatops`.
    pub bin: PathBuf,
    /// How much work.
    pub sizes: Sizes,
    /// Where the shell baseline writes its file.
    pub scratch: PathBuf,
}

/// Failures of one chatops measurement.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Commands whose final reply arrived.
    received: u64,
    acks_failed: u64,
    lost: u64,
    duplicates: u64,
    not_succeeded: u64,
}

const TEXT_MANUAL: &str = "run manual-job";
const TEXT_ECHO: &str = "run echo";
const TEXT_TICKER: &str = "run ticker";
/// How long a quick job's reply may take before it counts as lost.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long the bench waits after the last reply for late duplicates.
const SETTLE: Duration = Duration::from_millis(500);

/// Runs two measurements one after the other, baseline first or not: alternating the order
/// from run to run (B C, C B, B C...) cancels the machine's drift out of the ratios.
async fn ordered<B, C>(
    baseline_first: bool,
    baseline: impl Future<Output = B>,
    chatops: impl Future<Output = C>,
) -> (B, C) {
    if baseline_first {
        let b = baseline.await;
        (b, chatops.await)
    } else {
        let c = chatops.await;
        (baseline.await, c)
    }
}

fn log(what: &str) {
    eprintln!("chatops-bench: {what}");
}

/// Records chatops' failures against the commands numbered since `first`, after letting late
/// duplicates arrive; forgets them at the fake afterwards.
async fn account(client: &Client, first: u64, accepted_before: u64, out: &Outcome) -> Tally {
    tokio::time::sleep(SETTLE).await;
    let ids = first..client.peek_id();
    let counts = client.fake.counts(ids.clone());
    client.fake.forget(ids);
    let accepted = client.accepted() - accepted_before;
    Tally {
        received: counts.received,
        acks_failed: out.failed - out.lost - out.not_succeeded,
        lost: accepted.saturating_sub(counts.received),
        duplicates: counts.duplicates,
        not_succeeded: out.not_succeeded,
    }
}

fn describe_failures(out: &Outcome) -> String {
    if out.failed == 0 {
        return String::new();
    }
    format!(", {} FAILED (e.g. {:?})", out.failed, out.failures.first())
}

/// Checks the server answers the bench project's command as the contract says, so the load
/// that follows measures the path it means to.
async fn sanity_ack(ctx: &Ctx, server: &ServerProcess) -> Result<(), BenchError> {
    let n = ctx.client.take_id();
    let ack = ctx
        .client
        .command(server.base(), TEXT_MANUAL, n)
        .await
        .map_err(|f| {
            BenchError::Unexpected(format!(
                "chatops refused `/bench {TEXT_MANUAL}`: {f:?}; its ack: {:?}\nits log:\n{}",
                ctx.client.first_bad_ack(),
                server.stderr_tail()
            ))
        })?;
    let json: serde_json::Value = serde_json::from_str(&ack).unwrap_or_default();
    if json["response_type"] != "in_channel" {
        return Err(BenchError::Unexpected(format!(
            "chatops answered `/bench {TEXT_MANUAL}` with {ack}, not an in-channel ack of a created manual job"
        )));
    }
    Ok(())
}

/// Runs `n` echo jobs one at a time, each of which must reply `succeeded`.
async fn warm_replies(ctx: &Ctx, server: &ServerProcess, n: u64) -> Result<(), BenchError> {
    for _ in 0..n {
        if let Err(f) = ctx
            .client
            .command_to_reply(server.base(), TEXT_ECHO, PATIENCE)
            .await
        {
            return Err(BenchError::Unexpected(format!(
                "the warm-up `/bench {TEXT_ECHO}` failed: {f:?} (ack: {:?})\nchatops' log:\n{}",
                ctx.client.first_bad_ack(),
                server.stderr_tail()
            )));
        }
    }
    Ok(())
}

/// Ack throughput and latency at concurrency `c` against the bare baseline or chatops.
async fn ack_load(ctx: &Ctx, chatops: bool, c: usize) -> Result<(Outcome, Tally), BenchError> {
    let server = if chatops {
        ServerProcess::chatops(&ctx.bin, ctx.client.fake.host_port()).await?
    } else {
        ServerProcess::baseline().await?
    };
    if chatops {
        sanity_ack(ctx, &server).await?;
    }
    let first = ctx.client.peek_id();
    let accepted = ctx.client.accepted();
    let client = ctx.client.clone();
    let base: Arc<str> = server.base().into();
    let out = run_for(c, ctx.sizes.ack_warmup, ctx.sizes.ack_measure, move || {
        let client = client.clone();
        let base = base.clone();
        async move { client.ack(&base, TEXT_MANUAL).await }
    })
    .await;
    // SIGTERM with thousands of manual jobs still waiting: a graceful shutdown must not take
    // long (`stop` reports one that takes over 15 s, and kills it).
    server.stop().await;
    // A manual job replies only when played, which the bench never does; a final reply here
    // (e.g. "canceled" at shutdown) is logged, and a duplicate shows up in the counts.
    let mut tally = account(&ctx.client, first, accepted, &out).await;
    tally.lost = 0;
    if tally.received > 0 {
        log(&format!(
            "chatops posted a final reply for {} of the {} manual jobs it was never asked to play",
            tally.received,
            ctx.client.accepted() - accepted
        ));
    }
    let p = Percentiles::of(&out.latencies);
    log(&format!(
        "ack c={c} {}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms{}",
        if chatops { "chatops" } else { "bare actix-web" },
        out.rate(),
        p.map_or(f64::NAN, |p| p.p50),
        p.map_or(f64::NAN, |p| p.p99),
        describe_failures(&out)
    ));
    Ok((out, tally))
}

/// 1. The ack path, at c=1 and c=16.
pub async fn ack(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    for c in [1usize, 16] {
        let (b, ch) = ordered(
            baseline_first,
            ack_load(ctx, false, c),
            ack_load(ctx, true, c),
        )
        .await;
        let (b, _) = b?;
        let (ch, tally) = ch?;
        // The baseline's failures are the harness's: nothing else can refuse its requests.
        if b.failed > 0 {
            return Err(BenchError::Baseline(format!(
                "the bare server failed {} requests: {:?}",
                b.failed,
                b.failures.first()
            )));
        }
        res.tally(&tally);
        let (pb, pc) = (
            Percentiles::of(&b.latencies),
            Percentiles::of(&ch.latencies),
        );
        let (rate, p50, p99) = if c == 1 {
            (Fig::AckRate1, Fig::AckP50c1, Fig::AckP99c1)
        } else {
            (Fig::AckRate16, Fig::AckP50c16, Fig::AckP99c16)
        };
        res.record(rate, Some(b.rate()), Some(ch.rate()));
        res.record(p50, pb.map(|p| p.p50), pc.map(|p| p.p50));
        res.record(p99, pb.map(|p| p.p99), pc.map(|p| p.p99));
    }
    Ok(())
}

/// Direct spawns of `shell -c 'echo hi'`: `count` of them, `c` at a time (after a warm-up).
async fn spawn_load(ctx: &Ctx, c: usize, count: u64, shell: Shell) -> Result<Outcome, BenchError> {
    for _ in 0..ctx.sizes.reply_warmup {
        baseline::spawn_echo(shell).await?;
    }
    let out = run_count(c, count, move |_| async move {
        baseline::spawn_echo(shell)
            .await
            .map_err(|e| Failure::Baseline(e.to_string()))
    })
    .await;
    if out.failed > 0 {
        return Err(BenchError::Baseline(format!("{:?}", out.failures.first())));
    }
    log(&format!(
        "spawn {} c={c}: {:.0} jobs/s, p50 {:.3} ms",
        shell.label(),
        out.rate(),
        Percentiles::of(&out.latencies).map_or(f64::NAN, |p| p.p50)
    ));
    Ok(out)
}

/// The baseline (`sh`) and chatops' own job shell (`bash`), back to back.
async fn spawn_loads(ctx: &Ctx, c: usize, count: u64) -> Result<(Outcome, Outcome), BenchError> {
    let sh = spawn_load(ctx, c, count, Shell::Sh).await?;
    let bash = spawn_load(ctx, c, count, Shell::Bash).await?;
    Ok((sh, bash))
}

/// chatops `run echo` from command to reply: `count` jobs, `c` at a time (after a warm-up).
async fn reply_load(ctx: &Ctx, c: usize, count: u64) -> Result<(Outcome, Tally), BenchError> {
    replies_of(ctx, Variant::ResponseUrl, TEXT_ECHO, c, count).await
}

/// Command to reply on a fresh server set up as `variant`: `count` jobs `text`, `c` at a
/// time, after a warm-up of echo jobs.
async fn replies_of(
    ctx: &Ctx,
    variant: Variant,
    text: &str,
    c: usize,
    count: u64,
) -> Result<(Outcome, Tally), BenchError> {
    let server =
        ServerProcess::chatops_with(&ctx.bin, ctx.client.fake.host_port(), variant).await?;
    // Its jobs' runner, for as long as the server runs.
    let runner = match variant {
        Variant::OnRunner => Some(
            chatops_testrunner::TestRunner::start(server.base(), RUNNER_TOKEN).map_err(|e| {
                BenchError::Unexpected(format!("the test runner does not start: {e}"))
            })?,
        ),
        _ => None,
    };
    warm_replies(ctx, &server, ctx.sizes.reply_warmup).await?;
    let first = ctx.client.peek_id();
    let accepted = ctx.client.accepted();
    let client = ctx.client.clone();
    let base: Arc<str> = server.base().into();
    let shared_text: Arc<str> = text.into();
    let out = run_count(c, count, move |_| {
        let (client, base, text) = (client.clone(), base.clone(), shared_text.clone());
        async move { client.command_to_reply(&base, &text, PATIENCE).await }
    })
    .await;
    let tally = account(&ctx.client, first, accepted, &out).await;
    if out.failed > 0 {
        log(&format!("chatops' log ends:\n{}", server.stderr_tail()));
    }
    if let Some(runner) = runner {
        runner.kill();
    }
    server.stop().await;
    log(&format!(
        "command→reply `{text}` c={c} chatops ({variant:?}): {:.0} jobs/s, p50 {:.3} ms, p99 {:.3} ms{}",
        out.rate(),
        Percentiles::of(&out.latencies).map_or(f64::NAN, |p| p.p50),
        Percentiles::of(&out.latencies).map_or(f64::NAN, |p| p.p99),
        describe_failures(&out)
    ));
    Ok((out, tally))
}

/// 2. Command to reply: latency at c=1, throughput at c=16.
pub async fn reply(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    let (b, ch) = ordered(
        baseline_first,
        spawn_loads(ctx, 1, ctx.sizes.reply_c1),
        reply_load(ctx, 1, ctx.sizes.reply_c1),
    )
    .await;
    let (sh, bash) = b?;
    let (ch, tally) = ch?;
    res.tally(&tally);
    let pc = Percentiles::of(&ch.latencies);
    let (psh, pbash) = (
        Percentiles::of(&sh.latencies),
        Percentiles::of(&bash.latencies),
    );
    res.record(Fig::ReplyP50, psh.map(|p| p.p50), pc.map(|p| p.p50));
    res.record(Fig::ReplyP99, psh.map(|p| p.p99), pc.map(|p| p.p99));
    res.record(Fig::ReplyP50Bash, pbash.map(|p| p.p50), pc.map(|p| p.p50));

    let (b, ch) = ordered(
        baseline_first,
        spawn_loads(ctx, 16, ctx.sizes.reply_c16),
        reply_load(ctx, 16, ctx.sizes.reply_c16),
    )
    .await;
    let (sh, bash) = b?;
    let (ch, tally) = ch?;
    res.tally(&tally);
    res.record(Fig::ReplyRate16, Some(sh.rate()), Some(ch.rate()));
    res.record(Fig::ReplyRate16Bash, Some(bash.rate()), Some(ch.rate()));
    Ok(())
}

/// Measurement 5, live progress: command → reply with the status message edited while the job
/// runs and the result in its thread, against the same server (bot token included) with live
/// progress off. The ratio is the cost of live progress to the user waiting for the result.
pub async fn live(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    for (fig, text, count) in [
        (Fig::LiveEchoP50, TEXT_ECHO, ctx.sizes.live_echo),
        (Fig::LiveTickerP50, TEXT_TICKER, ctx.sizes.live_ticker),
    ] {
        let (posts_before, edits_before) = ctx.client.fake.progress_posts();
        let (quiet, live) = ordered(
            baseline_first,
            replies_of(ctx, Variant::BotQuiet, text, 1, count),
            replies_of(ctx, Variant::BotLive, text, 1, count),
        )
        .await;
        let (quiet, quiet_tally) = quiet?;
        let (live, live_tally) = live?;
        res.tally(&quiet_tally);
        res.tally(&live_tally);
        let (posts, edits) = ctx.client.fake.progress_posts();
        let (posts, edits) = (posts - posts_before, edits - edits_before);
        // A job that ends within a second gets its reply alone (no status message); the
        // ticker runs 3 s: without status messages the live side measured nothing live.
        if text == TEXT_TICKER && posts < live_tally.received {
            return Err(BenchError::Unexpected(format!(
                "live progress posted {posts} status messages for {} replies: is it on?",
                live_tally.received
            )));
        }
        res.notes.push(format!(
            "live progress `{text}`: {posts} status messages, {edits} edits (progress and final) for {} jobs and {} warm-up echo jobs",
            live_tally.received, ctx.sizes.reply_warmup
        ));
        res.record(
            fig,
            Percentiles::of(&quiet.latencies).map(|p| p.p50),
            Percentiles::of(&live.latencies).map(|p| p.p50),
        );
    }
    Ok(())
}

/// Measurement 6, runners: `run echo` from command to reply at c=1 when the job runs on a
/// GitLab runner (Collabora's client library, `chatops-testrunner`, in this process) against
/// the same server running it in its local shell, in the same run.
pub async fn runner(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    let count = ctx.sizes.runner_echo;
    let (local, remote) = ordered(
        baseline_first,
        replies_of(ctx, Variant::ResponseUrl, TEXT_ECHO, 1, count),
        replies_of(ctx, Variant::OnRunner, TEXT_ECHO, 1, count),
    )
    .await;
    let (local, local_tally) = local?;
    let (remote, remote_tally) = remote?;
    res.tally(&local_tally);
    res.tally(&remote_tally);
    let (pl, pr) = (
        Percentiles::of(&local.latencies),
        Percentiles::of(&remote.latencies),
    );
    res.record(Fig::RunnerEchoP50, pl.map(|p| p.p50), pr.map(|p| p.p50));
    res.record(Fig::RunnerEchoP99, pl.map(|p| p.p99), pr.map(|p| p.p99));
    Ok(())
}

/// What the many-jobs measurement gives for chatops.
struct ManyFigures {
    ack_p99: Option<f64>,
    rss_waiting: u64,
    peak: u64,
    cpu_percent: f64,
    wall: Duration,
}

/// Direct spawns of `jobs` concurrent `sh -c 'sleep S'`: the time until the last exits.
async fn many_baseline(ctx: &Ctx) -> Result<Duration, BenchError> {
    let t0 = Instant::now();
    let secs = ctx.sizes.many_sleep;
    let tasks: Vec<_> = (0..ctx.sizes.many_jobs)
        .map(|_| tokio::spawn(baseline::spawn_sleep(secs)))
        .collect();
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Baseline(format!("a spawn task panicked: {e}")))??;
    }
    let wall = t0.elapsed();
    log(&format!(
        "{} direct sleeps: all done after {:.2} s",
        ctx.sizes.many_jobs,
        wall.as_secs_f64()
    ));
    Ok(wall)
}

/// chatops with many concurrent `sleep` jobs: commands sent 16 at a time; once all are
/// acked and settled, the server's CPU over a window that ends before any job can end, its
/// RSS at the end of that window; then every reply, and the peak RSS over it all.
async fn many_chatops(ctx: &Ctx) -> Result<(ManyFigures, Tally), BenchError> {
    let server = ServerProcess::chatops(&ctx.bin, ctx.client.fake.host_port()).await?;
    let pid = server.pid();
    let jobs = ctx.sizes.many_jobs;
    let sleep = Duration::from_secs(ctx.sizes.many_sleep);
    let patience = sleep + Duration::from_secs(120);
    let text: Arc<str> = format!("run sleep {}", ctx.sizes.many_sleep).into();
    let base: Arc<str> = server.base().into();
    let first = ctx.client.peek_id();
    let accepted = ctx.client.accepted();
    // Sixteen senders at a time, like a burst from a busy workspace; each task then waits for
    // its own reply without holding a sender's place. The channel reports acks so the
    // waiting window starts only once every command is in.
    let senders = Arc::new(tokio::sync::Semaphore::new(16));
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let t_first = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..jobs {
        let permit = senders
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BenchError::Unexpected("the sender semaphore closed".into()))?;
        let client = ctx.client.clone();
        let (base, text, acked) = (base.clone(), text.clone(), acked_tx.clone());
        tasks.push(tokio::spawn(async move {
            let n = client.take_id();
            let arrival = client.fake.expect(n);
            let t0 = Instant::now();
            let ack = client.command(&base, &text, n).await;
            let took = t0.elapsed();
            drop(permit);
            let _ = acked.send(took);
            ack?;
            match tokio::time::timeout(patience, arrival).await {
                Ok(Ok(a)) if a.succeeded => Ok(a.at),
                Ok(Ok(_)) => Err(Failure::NotSucceeded),
                _ => Err(Failure::Lost),
            }
        }));
    }
    drop(acked_tx);
    let mut acks = Vec::new();
    while acks.len() < jobs as usize {
        match acked_rx.recv().await {
            Some(took) => acks.push(took),
            None => break,
        }
    }
    let ack_p99 = Percentiles::of(&acks).map(|p| p.p99);
    let acked_after = t_first.elapsed();
    // Let the last jobs start; then measure until 1 s before the first job could end (every
    // job started after `t_first`).
    let settle = if ctx.sizes.many_sleep >= 20 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(500)
    };
    tokio::time::sleep(settle).await;
    let window_end = t_first + sleep.saturating_sub(Duration::from_secs(1));
    let window = window_end
        .saturating_duration_since(Instant::now())
        .min(Duration::from_secs(10));
    let window = if window < Duration::from_millis(500) {
        log("the waiting window is under 0.5 s: commands took too long to send; CPU figure is rough");
        Duration::from_millis(500)
    } else {
        window
    };
    let cpu0 = procfs::cpu_time(pid)?;
    let w0 = Instant::now();
    tokio::time::sleep(window).await;
    let cpu1 = procfs::cpu_time(pid)?;
    let measured = w0.elapsed();
    let rss_waiting = procfs::memory(pid)?.rss;
    let cpu_percent =
        (cpu1.saturating_sub(cpu0)).as_secs_f64() / measured.as_secs_f64().max(1e-9) * 100.0;

    let mut out = Outcome::default();
    let mut last = None::<Instant>;
    for t in tasks {
        match t.await {
            Ok(Ok(at)) => {
                last = Some(last.map_or(at, |l| l.max(at)));
                out.latencies.push(at.saturating_duration_since(t_first));
            }
            Ok(Err(f)) => out.fail(f),
            Err(e) => out.fail(Failure::Transport(format!("task panicked: {e}"))),
        }
    }
    let peak = procfs::memory(pid)?.peak;
    let tally = account(&ctx.client, first, accepted, &out).await;
    if out.failed > 0 {
        log(&format!("chatops' log ends:\n{}", server.stderr_tail()));
    }
    server.stop().await;
    let wall = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t_first));
    log(&format!(
        "{jobs} chatops sleeps: acked after {:.2} s (p99 {:.1} ms); waiting: RSS {:.1} MB, CPU {:.2}% over {:.1} s; \
         last reply after {:.2} s; peak RSS {:.1} MB{}",
        acked_after.as_secs_f64(),
        ack_p99.unwrap_or(f64::NAN),
        mb(rss_waiting),
        cpu_percent,
        measured.as_secs_f64(),
        wall.as_secs_f64(),
        mb(peak),
        describe_failures(&out)
    ));
    Ok((
        ManyFigures {
            ack_p99,
            rss_waiting,
            peak,
            cpu_percent,
            wall,
        },
        tally,
    ))
}

/// Bytes as (decimal) megabytes, the unit of the targets.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// 3. Many long jobs.
pub async fn many(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    let (b, ch) = ordered(baseline_first, many_baseline(ctx), many_chatops(ctx)).await;
    let b = b?;
    let (ch, tally) = ch?;
    res.tally(&tally);
    res.record(Fig::ManyAckP99, None, ch.ack_p99);
    res.record(Fig::ManyRss, None, Some(mb(ch.rss_waiting)));
    res.record(Fig::ManyPeak, None, Some(mb(ch.peak)));
    res.record(Fig::ManyCpu, None, Some(ch.cpu_percent));
    res.record(
        Fig::ManyWall,
        Some(b.as_secs_f64()),
        (ch.wall > Duration::ZERO).then_some(ch.wall.as_secs_f64()),
    );
    Ok(())
}

/// chatops running the big job: command to reply, the server's peak RSS, the log's size.
async fn big_chatops(ctx: &Ctx) -> Result<(Option<Duration>, u64, u64, Tally), BenchError> {
    let server = ServerProcess::chatops(&ctx.bin, ctx.client.fake.host_port()).await?;
    let first = ctx.client.peek_id();
    let accepted = ctx.client.accepted();
    let mut out = Outcome::default();
    let text = format!("run big {}", ctx.sizes.big_bytes);
    let wall = match ctx
        .client
        .command_to_reply(server.base(), &text, Duration::from_secs(600))
        .await
    {
        Ok(d) => Some(d),
        Err(f) => {
            out.fail(f);
            None
        }
    };
    let peak = procfs::memory(server.pid())?.peak;
    let on_disk = server.data_dir().map_or(0, |d| dir_bytes(&d));
    let tally = account(&ctx.client, first, accepted, &out).await;
    if out.failed > 0 {
        log(&format!("chatops' log ends:\n{}", server.stderr_tail()));
    }
    server.stop().await;
    log(&format!(
        "big output chatops: {} s, peak RSS {:.1} MB, data dir {:.1} MB{}",
        wall.map_or("—".into(), |w| format!("{:.2}", w.as_secs_f64())),
        mb(peak),
        mb(on_disk),
        describe_failures(&out)
    ));
    Ok((wall, peak, on_disk, tally))
}

/// 4. Big output.
pub async fn big(ctx: &Ctx, res: &mut Results, baseline_first: bool) -> Result<(), BenchError> {
    let baseline = async {
        let w = baseline::shell_to_file(ctx.sizes.big_bytes, &ctx.scratch).await;
        if let Ok(w) = &w {
            log(&format!(
                "big output shell to file: {:.2} s",
                w.as_secs_f64()
            ));
        }
        w
    };
    let (b, ch) = ordered(baseline_first, baseline, big_chatops(ctx)).await;
    let b = b?;
    let (wall, peak, on_disk, tally) = ch?;
    res.tally(&tally);
    res.record(
        Fig::BigWall,
        Some(b.as_secs_f64()),
        wall.map(|w| w.as_secs_f64()),
    );
    res.record(Fig::BigPeak, None, Some(mb(peak)));
    if on_disk < ctx.sizes.big_bytes {
        res.notes.push(format!(
            "big output: the data dir held {:.1} MB after the job, less than the {:.1} MB it wrote \
             (the contract keeps the log in full)",
            mb(on_disk),
            mb(ctx.sizes.big_bytes)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_pairs_ratios_within_a_run() {
        let mut r = Results::default();
        r.record(Fig::AckRate16, Some(1000.0), Some(600.0));
        r.record(Fig::AckRate16, Some(800.0), Some(600.0));
        r.record(Fig::ManyPeak, None, Some(30.0));
        let s = &r.series[&Fig::AckRate16];
        assert_eq!(s.ratios, vec![0.6, 0.75]);
        let m = &r.series[&Fig::ManyPeak];
        assert!(m.ratios.is_empty() && m.baseline.is_empty());
        assert_eq!(m.chatops, vec![30.0]);
    }

    #[test]
    fn ordered_runs_in_the_requested_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime for the test");
        rt.block_on(async {
            let seq = std::sync::Mutex::new(Vec::new());
            let push = |x: &'static str| {
                let seq = &seq;
                async move {
                    seq.lock().expect("test lock").push(x);
                    x
                }
            };
            let (b, c) = ordered(false, push("b"), push("c")).await;
            assert_eq!((b, c), ("b", "c"), "results keep their places");
            assert_eq!(*seq.lock().expect("test lock"), vec!["c", "b"]);
        });
    }
}
