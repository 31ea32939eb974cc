//! The shell executor: runs one job the way GitLab Runner's shell executor would, and better
//! behaved.
//!
//! # How a job runs
//! - `before_script` + `script` become one generated script, run by `bash` (else `sh`) with
//!   `set -eo pipefail`. Each command is preceded by a `printf` of its green `$ command` line
//!   and run as `eval '<command>'` (single-quoted literal), so the shell stops at the first
//!   failing command and a syntax error stays inside its own command. A check of `$?` after
//!   each command also stops a script whose command turned `set -e` off.
//! - A script goes to the shell as its `-c` argument (`$0` is the shell's name, so messages
//!   read `bash: line 5: ...` as in GitLab's shell executor). Only a script over 64 KiB (or
//!   one the kernel refuses as an argument) is written to a file in `scratch_dir`, which is
//!   created only then: creating and removing per-job files and folders (ext4 inode work) was
//!   most of a short job's cost, on the one thread that also runs every actor.
//! - The log file is opened without `O_TRUNC` (the watcher has usually created it already,
//!   off the actor thread, so no inode is allocated here, and ext4 does not flush it at close);
//!   its folder is created only when that open says it is missing.
//! - chatops' own lines (header, section ends, status) are written one burst at a time.
//! - `after_script` gets its own script and shell. It runs after success, failure, timeout and
//!   cancel alike, with GitLab's own 5-minute timeout ([`AFTER_SCRIPT_TIMEOUT`]); its failure
//!   does not change the job's status.
//! - The chat input is never shell text: the scripts hold only the CI file's commands, and
//!   `CHAT_INPUT` reaches the job only through the environment.
//! - The environment is the job's variables plus a small safe base of the server's
//!   ([`SAFE_BASE_ENV`], `LC_*`): nothing else of the server's (it holds chatops' secrets).
//! - stdin is `/dev/null` (a job reading stdin cannot eat anything); stdout and stderr share
//!   one pipe, so the log keeps their order.
//! - Each shell leads its own process group. At the timeout or on cancel the group gets
//!   SIGTERM, then SIGKILL after [`KILL_GRACE`]. When the shell ends on its own, whatever it
//!   left running in its group is killed (with SIGKILL) too: a job never leaks processes, and
//!   a background process holding the pipe cannot keep the job open. The executor then waits
//!   (bounded) until the group is gone, reaping members it is the parent of (as when chatops is
//!   PID 1 in a container).
//! - With a [`JobUser`], each shell drops to that user (groups, gid, uid) before it starts.
//! - The trace (GitLab-runner style: [`crate::output`]) streams through a [`TraceSink`] to
//!   `log_path` with secrets masked (every secret the server knows, not only the project's;
//!   readers clean and mask again: chatops-pipeline's `joblog`), while its collector keeps
//!   bounded tails for the reply. Reads grow
//!   from 4 KiB to 64 KiB (a pipe's size) when output floods, so idle jobs stay small.
//!
//! Everything is async on the caller's Tokio runtime (actix's current-thread one): no thread
//! per job.

use crate::output::{self, AFTER_SCRIPT, STEP_SCRIPT, STEP_SCRIPT_HEADER};
use crate::trace::{TraceSink, TraceStats, REPLY_TAIL_BYTES};
use crate::{BoxFuture, ExecHandle, ExecResult, ExecSpec, Executor, JobControl, JobUser};
use chatops_core::reply::format_duration;
use chatops_core::{JobStatus, OutputBlock};
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// `after_script`'s own timeout, as in GitLab.
pub const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Between SIGTERM and SIGKILL at a timeout or cancel.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// The variables of the server's own environment a job inherits; `LC_*` too.
pub const SAFE_BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM",
];

/// After the shell exits and its group is killed, how long output may still arrive: only a
/// process that left the group (setsid) can hold the pipe longer, and it is not waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a killed group's last members to be reaped (by us or by init).
const GROUP_GONE_WAIT: Duration = Duration::from_secs(5);
/// The largest script passed to the shell as its `-c` argument; bigger ones go through a file
/// in `scratch_dir`. Linux refuses a single argument over `MAX_ARG_STRLEN` (128 KiB): half of
/// that leaves room, and no real job's script comes near it.
const INLINE_SCRIPT_MAX: usize = 64 * 1024;
const READ_BUF_MIN: usize = 4 * 1024;
/// A pipe holds 64 KiB by default: larger reads never fill. (Pipes are not enlarged: Linux
/// counts pipe capacity per user, and past `pipe-user-pages-soft` (64 MiB) every new pipe of
/// the user, those inside jobs' scripts included, shrinks to two pages. A thousand jobs would
/// get there.)
const READ_BUF_MAX: usize = 64 * 1024;

/// The shell executor: runs jobs on this host (see the module doc). Stateless: every job's
/// state lives in its future and its handle.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn start(&self, spec: ExecSpec) -> io::Result<(ExecHandle, BoxFuture<'static, ExecResult>)> {
        let (handle, job) = start(spec)?;
        Ok((handle, Box::pin(job)))
    }
}

/// Starts the job (the step_script shell) right away; the returned future drives it to the end
/// (after_script included) and must be polled (the lead `actix::spawn`s it). Errors only if the
/// shell cannot be started at all (the lead reports it as a failed job): no runtime, the log
/// (or a huge script's file in `scratch_dir`) cannot be written, the working directory is
/// missing, ...
///
/// The synchronous part is kept small because it runs on the thread of every actor: one
/// `open` for the log and the spawn; no per-job folder or script file.
fn start(
    spec: ExecSpec,
) -> io::Result<(
    ExecHandle,
    impl Future<Output = ExecResult> + Send + 'static,
)> {
    let started = Instant::now();
    // Registering the pipe and the child needs a runtime; without one tokio would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "executor::start must be called inside a Tokio (actix) runtime",
        ));
    }
    let shell = shell();
    let sink = TraceSink::open(&spec.log_path, Arc::clone(&spec.secrets), REPLY_TAIL_BYTES)?;

    let step_commands = commands(spec.before_script.iter().chain(&spec.script));
    let single_command = crate::single_command(&spec.before_script, &spec.script);
    let step_script = script_text(shell, STEP_SCRIPT, &step_commands);
    let env = child_env(&spec.env, spec.user.as_ref(), &spec.workdir);

    let shared = Arc::new(Shared::new(sink.stats()));
    let mut trace = Trace::new(sink);
    let now = unix_now();
    trace.runner(&format!(
        "Running with chatops {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    trace.runner(&output::section_start_with_header(
        "prepare_executor",
        now,
        "Preparing the \"shell\" executor",
    ));
    trace.runner(&format!("Using Shell ({}) executor...\n", shell.name));
    trace.runner(&output::section_end("prepare_executor", now));
    trace.runner(&output::section_start_with_header(
        STEP_SCRIPT,
        now,
        STEP_SCRIPT_HEADER,
    ));
    // On disk before the shell starts: a live log read at once shows at least this.
    trace.flush();

    let step = spawn_script(
        shell,
        &step_script,
        &spec.scratch_dir.join("step_script.sh"),
        &spec.workdir,
        &env,
        spec.user.as_ref(),
    )?;
    shared.pgid.store(step.pgid, Ordering::Relaxed);
    tracing::info!(job = %spec.job_id, name = %spec.job_name, shell = shell.name, pgid = step.pgid, "job started");

    let job = Job {
        shell,
        env,
        started,
        single_command,
        trace,
        shared: shared.clone(),
        spec,
    };
    Ok((ExecHandle::new(shared), run(job, step)))
}

/// Kills a whole process group (used by the timeout, cancel, and restart recovery) with
/// SIGKILL. Refuses group ids ≤ 1 and chatops' own group, so a stale or zero id can never hit
/// the server or every process. (After a restart, a recorded id may have been reused: only
/// pass ids known to be a job's.)
pub fn kill_process_group(pgid: i32) {
    signal_group(pgid, libc::SIGKILL);
}

/// State shared between the job's future and its handles.
#[derive(Debug)]
struct Shared {
    cancel: Mutex<CancelRequests>,
    /// Wakes the job's future when a cancel arrives.
    notify: Notify,
    /// 0 when no shell runs.
    pgid: AtomicI32,
    /// The trace sink's figures.
    trace: Arc<TraceStats>,
}

impl JobControl for Shared {
    /// Kills the step's process group (TERM, then KILL after a short grace), runs
    /// after_script, finishes with `JobStatus::Canceled { by }`. A cancel while after_script
    /// runs stops after_script too (and the job reads as canceled if its script had
    /// succeeded).
    fn cancel(&self, by: Option<String>) {
        {
            let mut requests = lock(&self.cancel);
            requests.count += 1;
            if requests.by.is_none() {
                requests.by = by;
            }
        }
        // A stored permit if the job is not waiting right now: the request is not lost.
        self.notify.notify_one();
    }

    fn pgid(&self) -> Option<i32> {
        match self.pgid.load(Ordering::Relaxed) {
            0 => None,
            pgid => Some(pgid),
        }
    }

    fn log_bytes(&self) -> u64 {
        self.trace.log_bytes()
    }

    fn peak_retained_bytes(&self) -> usize {
        self.trace.peak_retained_bytes()
    }
}

#[derive(Debug, Default)]
struct CancelRequests {
    /// Each phase acts only on requests made after it began (see [`drive`]).
    count: u64,
    /// Who asked first.
    by: Option<String>,
}

impl Shared {
    fn new(trace: Arc<TraceStats>) -> Shared {
        Shared {
            cancel: Mutex::default(),
            notify: Notify::new(),
            pgid: AtomicI32::new(0),
            trace,
        }
    }

    fn cancel_count(&self) -> u64 {
        lock(&self.cancel).count
    }

    /// `Some(by)` when a cancel arrived after the first `seen` ones.
    fn cancel_since(&self, seen: u64) -> Option<Option<String>> {
        let requests = lock(&self.cancel);
        (requests.count > seen).then(|| requests.by.clone())
    }
}

/// A poisoned lock only means a panic elsewhere mid-update of plain data: use it anyway.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the job's future owns.
struct Job {
    spec: ExecSpec,
    shell: &'static Shell,
    env: Vec<(OsString, OsString)>,
    started: Instant,
    single_command: bool,
    trace: Trace,
    shared: Arc<Shared>,
}

async fn run(mut job: Job, step: Running) -> ExecResult {
    let timeout = job.spec.timeout;
    let step_end = drive(
        step,
        &mut job.trace,
        &job.shared,
        deadline_after(job.started, timeout),
        0,
    )
    .await;
    job.trace.ensure_line_start();
    if step_end.timed_out {
        job.trace.runner(&output::warning_line(&format!(
            "WARNING: step_script could not run to completion because the timeout ({}) was exceeded",
            format_duration(timeout)
        )));
    }
    job.trace
        .runner(&output::section_end(STEP_SCRIPT, unix_now()));

    let mut status = if let Some(by) = step_end.canceled {
        JobStatus::Canceled { by }
    } else if step_end.timed_out {
        JobStatus::TimedOut { after: timeout }
    } else {
        match step_end.exit_code {
            Some(0) => JobStatus::Succeeded,
            exit_code => JobStatus::Failed { exit_code },
        }
    };

    // Owned: the job is borrowed mutably while they run.
    let after_script = job.spec.after_script.clone();
    let after_commands = commands(&after_script);
    if !after_commands.is_empty() {
        if let Some(canceled) = run_after_script(&mut job, &after_commands, &status).await {
            // A cancel during after_script: the job did not complete. A failure stays one.
            if status == JobStatus::Succeeded {
                status = JobStatus::Canceled { by: canceled };
            }
        }
    }

    job.trace.runner(&match &status {
        JobStatus::Succeeded => output::notice_line("Job succeeded"),
        JobStatus::Failed {
            exit_code: Some(code),
        } => output::error_line(&format!("ERROR: Job failed: exit code {code}")),
        JobStatus::TimedOut { after } => output::error_line(&format!(
            "ERROR: Job failed: execution took longer than {}",
            format_duration(*after)
        )),
        JobStatus::Canceled { by: Some(by) } => {
            output::error_line(&format!("ERROR: Job failed: canceled by {by}"))
        }
        JobStatus::Canceled { by: None } => output::error_line("ERROR: Job failed: canceled"),
        _ => output::error_line("ERROR: Job failed"),
    });

    let Job {
        spec,
        trace,
        single_command,
        started,
        ..
    } = job;
    let (output, log_bytes) = trace.finish(single_command);
    let duration = started.elapsed();
    // Debug: the watcher logs every job's end at info, with the same figures.
    tracing::debug!(job = %spec.job_id, status = status.name(), log_bytes, ?duration, "job ended");
    ExecResult {
        status,
        output,
        duration,
        log_bytes,
    }
}

/// Runs after_script in its own shell; `Some(by)` when a cancel stopped it. Like GitLab, it
/// gets `CI_JOB_STATUS` (`success`, `failed` or `canceled`; a timeout is a failure).
async fn run_after_script(
    job: &mut Job,
    commands: &[&str],
    status: &JobStatus,
) -> Option<Option<String>> {
    let job_status = match status {
        JobStatus::Succeeded => "success",
        JobStatus::Canceled { .. } => "canceled",
        _ => "failed",
    };
    let mut env = job.env.clone();
    env.push(("CI_JOB_STATUS".into(), job_status.into()));
    // Cancels that stopped the step are not for after_script: it runs after a cancel too.
    let seen = job.shared.cancel_count();
    job.trace.runner(&output::section_start_with_header(
        AFTER_SCRIPT,
        unix_now(),
        "Running after_script",
    ));
    job.trace
        .runner(&output::notice_line("Running after script..."));
    let spawned = spawn_script(
        job.shell,
        &script_text(job.shell, AFTER_SCRIPT, commands),
        &job.spec.scratch_dir.join("after_script.sh"),
        &job.spec.workdir,
        &env,
        job.spec.user.as_ref(),
    );
    let mut canceled = None;
    match spawned {
        Ok(running) => {
            let deadline = deadline_after(Instant::now(), AFTER_SCRIPT_TIMEOUT);
            let end = drive(running, &mut job.trace, &job.shared, deadline, seen).await;
            job.trace.ensure_line_start();
            if end.timed_out {
                job.trace.runner(&output::warning_line(&format!(
                    "WARNING: after_script timed out after {}",
                    format_duration(AFTER_SCRIPT_TIMEOUT)
                )));
            } else if let Some(by) = end.canceled {
                job.trace
                    .runner(&output::warning_line("WARNING: after_script was canceled"));
                canceled = Some(by);
            } else if end.exit_code != Some(0) {
                let code = end
                    .exit_code
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                job.trace.runner(&output::warning_line(&format!(
                    "WARNING: after_script failed, but job will continue unaffected: exit code {code}"
                )));
            }
        }
        Err(e) => {
            tracing::warn!(job = %job.spec.job_id, error = %e, "after_script could not start");
            job.trace.runner(&output::warning_line(&format!(
                "WARNING: after_script could not start: {e}"
            )));
        }
    }
    job.trace
        .runner(&output::section_end(AFTER_SCRIPT, unix_now()));
    canceled
}

/// A spawned shell with the read end of its output pipe.
struct Running {
    child: Child,
    reader: pipe::Receiver,
    pgid: i32,
    /// Armed from the spawn on: a job dropped even before its first poll leaves nothing.
    guard: GroupGuard,
}

/// How one shell ended.
#[derive(Debug, Default)]
struct ShellEnd {
    /// The shell's exit code; 128 + signal when a signal ended it; `None` if unknown.
    exit_code: Option<i32>,
    timed_out: bool,
    canceled: Option<Option<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Running,
    /// SIGTERM sent; SIGKILL when the timer fires.
    Terminating,
    /// SIGKILL sent; the shell's exit is imminent.
    Killed,
    /// The shell exited; reading what is left in the pipe until EOF or the timer.
    Draining,
}

/// Drives one shell to its end: streams its output into the trace, enforces `deadline`, and
/// acts on cancels made after the first `cancels_seen`. Returns once the shell exited, its
/// output is read and its process group is gone.
async fn drive(
    running: Running,
    trace: &mut Trace,
    shared: &Shared,
    deadline: Instant,
    cancels_seen: u64,
) -> ShellEnd {
    let Running {
        mut child,
        mut reader,
        pgid,
        mut guard,
    } = running;
    shared.pgid.store(pgid, Ordering::Relaxed);
    // What chatops wrote about this shell is on disk before the wait for its output begins.
    trace.flush();
    let mut end = ShellEnd::default();
    let mut buf = vec![0u8; READ_BUF_MIN];
    let mut eof = false;
    let mut exited = false;
    let mut stage = Stage::Running;
    // One timer serves the stage at hand: the deadline, the kill grace, the drain grace.
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        if exited && eof {
            break;
        }
        if stage == Stage::Running {
            if let Some(by) = shared.cancel_since(cancels_seen) {
                end.canceled = Some(by);
                signal_group(pgid, libc::SIGTERM);
                stage = Stage::Terminating;
                timer
                    .as_mut()
                    .reset(deadline_after(Instant::now(), KILL_GRACE).into());
            }
        }
        // Timer and cancel come first so a job flooding its output cannot starve them.
        tokio::select! {
            biased;
            () = &mut timer => match stage {
                Stage::Running => {
                    end.timed_out = true;
                    signal_group(pgid, libc::SIGTERM);
                    stage = Stage::Terminating;
                    timer.as_mut().reset(deadline_after(Instant::now(), KILL_GRACE).into());
                }
                Stage::Terminating | Stage::Killed => {
                    signal_group(pgid, libc::SIGKILL);
                    stage = Stage::Killed;
                    timer.as_mut().reset(deadline_after(Instant::now(), KILL_GRACE).into());
                }
                Stage::Draining => {
                    tracing::warn!(pgid, "a process outside the job's group still holds its output; not waiting for it");
                    break;
                }
            },
            () = shared.notify.notified(), if stage == Stage::Running => {}
            status = child.wait(), if !exited => {
                exited = true;
                end.exit_code = match status {
                    Ok(status) => exit_code(status),
                    Err(e) => {
                        tracing::warn!(pgid, error = %e, "could not wait for the job's shell");
                        None
                    }
                };
                // Whatever the job left running in its group goes with it.
                signal_group(pgid, libc::SIGKILL);
                stage = Stage::Draining;
                timer.as_mut().reset(deadline_after(Instant::now(), DRAIN_GRACE).into());
            }
            read = reader.read(&mut buf), if !eof => match read {
                Ok(0) => eof = true,
                Ok(n) => {
                    trace.output(buf.get(..n).unwrap_or_default());
                    // A full read means more is waiting: read bigger next time.
                    if n == buf.len() && buf.len() < READ_BUF_MAX {
                        buf.resize(buf.len() * 2, 0);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(pgid, error = %e, "reading the job's output failed");
                    eof = true;
                }
            },
        }
    }
    drop(reader);
    drop(child);
    wait_group_gone(pgid).await;
    guard.disarm();
    shared.pgid.store(0, Ordering::Relaxed);
    end
}

/// Kills the group if the job's future is dropped (server shutdown) before the group is known
/// to be gone.
struct GroupGuard(i32);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = 0;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 != 0 {
            kill_process_group(self.0);
        }
    }
}

/// Sends `signal` to process group `pgid`, never to group ≤ 1 or chatops' own.
fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: getpgrp has no preconditions and cannot fail.
    let own = unsafe { libc::getpgrp() };
    if pgid <= 1 || pgid == own {
        tracing::warn!(pgid, "refusing to signal this process group");
        return;
    }
    // SAFETY: kill has no memory preconditions; a negative pid addresses the group.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists and may be signalled.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Reaps exited members of `pgid` that are our children: only possible when chatops is a
/// subreaper or PID 1 (orphans then come to us). Called after the shell itself was reaped
/// by tokio, so it cannot take tokio's child.
fn reap_group(pgid: i32) {
    let Ok(id) = libc::id_t::try_from(pgid) else {
        return;
    };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; WNOHANG never blocks.
        let rc =
            unsafe { libc::waitid(libc::P_PGID, id, &mut info, libc::WEXITED | libc::WNOHANG) };
        // SAFETY: waitid succeeded, so si_pid is initialised (0 when nothing was reaped).
        if rc != 0 || unsafe { info.si_pid() } == 0 {
            return;
        }
    }
}

/// Waits (bounded) until no process of the group is left, zombies included: a killed orphan
/// stays a member until its new parent (init, or us) reaps it.
async fn wait_group_gone(pgid: i32) {
    let give_up = Instant::now() + GROUP_GONE_WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        reap_group(pgid);
        if !group_exists(pgid) {
            return;
        }
        if Instant::now() >= give_up {
            tracing::warn!(
                pgid,
                "the job's process group still has members (zombies wait for init to reap them)"
            );
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// 128 + signal for a shell ended by a signal, as shells report it.
fn exit_code(status: ExitStatus) -> Option<i32> {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
}

/// `start + d`, or a far future when that overflows (a timeout of "forever").
fn deadline_after(start: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    start
        .checked_add(d.min(FAR))
        .or_else(|| start.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(start)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The commands that run: blank ones (GitLab prints an empty line for them) are skipped.
fn commands<'a>(list: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    list.into_iter()
        .map(String::as_str)
        .filter(|c| !c.trim().is_empty())
        .collect()
}

/// The shell that runs jobs: `bash` if there is one, else `sh`.
#[derive(Debug)]
struct Shell {
    path: PathBuf,
    name: &'static str,
}

fn shell() -> &'static Shell {
    static SHELL: OnceLock<Shell> = OnceLock::new();
    SHELL.get_or_init(|| {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
        // Relative PATH entries would depend on the server's working directory: skipped.
        dirs.retain(|d| d.is_absolute());
        for name in ["bash", "sh"] {
            if let Some(path) = dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)) {
                return Shell { path, name };
            }
        }
        Shell {
            path: PathBuf::from("/bin/sh"),
            name: "sh",
        }
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The generated script for one stage. Commands come from the CI file only; each is a
/// single-quoted literal, echoed and then `eval`ed.
fn script_text(shell: &Shell, stage: &str, commands: &[&str]) -> String {
    let mut s =
        String::with_capacity(256 + commands.iter().map(|c| 2 * c.len() + 96).sum::<usize>());
    s.push_str("# Generated by chatops (");
    s.push_str(stage);
    s.push_str("). The chat input is only ever in $CHAT_INPUT.\n");
    // On SIGTERM, reap the job's background processes (they got it too) before leaving, so
    // none is left as an orphan zombie.
    s.push_str("trap 'trap - TERM; wait; exit 143' TERM\n");
    if shell.name == "bash" {
        s.push_str("set -eo pipefail\n");
    } else {
        s.push_str("set -e\n(set -o pipefail) 2>/dev/null && set -o pipefail\n");
    }
    s.push_str("set +o noclobber\n");
    for command in commands {
        let echo = output::command_echo(command);
        s.push_str("printf '%s\\n' ");
        s.push_str(&sh_quote(echo.trim_end_matches('\n')));
        s.push_str("\neval ");
        s.push_str(&sh_quote(command));
        s.push_str(
            "\n_chatops_status=$?; if [ \"$_chatops_status\" -ne 0 ]; then exit \"$_chatops_status\"; fi\n",
        );
    }
    s.push_str("exit 0\n");
    s
}

/// A POSIX single-quoted literal: nothing inside is expanded. NUL cannot be in shell text and
/// is dropped.
fn sh_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("'\\''"),
            '\0' => {}
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// The child's whole environment: the safe base of the server's, then the job's variables.
fn child_env(
    job_env: &[(String, String)],
    user: Option<&JobUser>,
    workdir: &Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| is_safe_base(name))
        .collect();
    if let Some(user) = user {
        // The server's HOME (root's) is no use to another user: theirs if it exists, else
        // the job's working directory (`nobody`'s is /nonexistent).
        let home = if user.home.is_dir() {
            user.home.as_os_str().to_owned()
        } else {
            workdir.as_os_str().to_owned()
        };
        env.retain(|(name, _)| !matches!(name.to_str(), Some("HOME" | "USER" | "LOGNAME")));
        env.push(("HOME".into(), home));
        env.push(("USER".into(), user.name.clone().into()));
        env.push(("LOGNAME".into(), user.name.clone().into()));
    }
    for (name, value) in job_env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            tracing::warn!(name = %name.escape_debug(), "skipping a variable whose name cannot be in an environment");
            continue;
        }
        // An environment value cannot hold NUL; dropping it beats failing the job.
        let value = if value.contains('\0') {
            value.replace('\0', "")
        } else {
            value.clone()
        };
        env.push((name.into(), value.into()));
    }
    env
}

fn is_safe_base(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|name| SAFE_BASE_ENV.contains(&name) || name.starts_with("LC_"))
}

/// How a shell gets its script.
#[derive(Clone, Copy, Debug)]
enum ScriptArg<'a> {
    /// The script's text, as `-c` (no file to create, write and remove).
    Inline(&'a str),
    /// A script file.
    File(&'a Path),
}

/// Starts the shell on `script`: as its `-c` argument when that fits, else from `file` (its
/// folder created). The file is written synchronously: only scripts over
/// [`INLINE_SCRIPT_MAX`] get there, which no ordinary job has.
fn spawn_script(
    shell: &Shell,
    script: &str,
    file: &Path,
    workdir: &Path,
    env: &[(OsString, OsString)],
    user: Option<&JobUser>,
) -> io::Result<Running> {
    if script.len() <= INLINE_SCRIPT_MAX {
        match spawn_shell(shell, ScriptArg::Inline(script), workdir, env, user) {
            // Arguments and environment together are bounded too (ARG_MAX): a job with huge
            // variables may not leave room for the script. The file may still fit.
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
                tracing::debug!(
                    bytes = script.len(),
                    "script too big for an argument here; using a file"
                );
            }
            spawned => return spawned,
        }
    }
    if let Some(folder) = file.parent() {
        std::fs::create_dir_all(folder)?;
    }
    std::fs::write(file, script)?;
    if let Some(user) = user {
        // The job's user must read its script (the folder is private to the server).
        for path in [folder_of(file), file] {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))?;
        }
    }
    spawn_shell(shell, ScriptArg::File(file), workdir, env, user)
}

/// The folder a file is in (`.` for a bare name).
fn folder_of(file: &Path) -> &Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Starts `shell` on `script` in `workdir`, leading a new process group, stdout and stderr on
/// one pipe, stdin on /dev/null; as `user` when given.
fn spawn_shell(
    shell: &Shell,
    script: ScriptArg<'_>,
    workdir: &Path,
    env: &[(OsString, OsString)],
    user: Option<&JobUser>,
) -> io::Result<Running> {
    let (read_end, write_end) = cloexec_pipe()?;
    // Before the spawn, so a failure here leaves no process behind.
    let reader = pipe::Receiver::from_owned_fd(read_end)?;
    let stderr_end = write_end.try_clone()?;
    let mut command = Command::new(&shell.path);
    if shell.name == "bash" {
        command.args(["--noprofile", "--norc"]);
    }
    match script {
        // `$0` is the shell's name, as for a script read from stdin by GitLab's executor.
        ScriptArg::Inline(text) => command.arg("-c").arg(text).arg(shell.name),
        ScriptArg::File(path) => command.arg(path),
    };
    command
        .current_dir(workdir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(stderr_end))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(user) = user {
        let (uid, gid) = (user.uid, user.gid);
        let groups: Vec<libc::gid_t> = user.groups.clone();
        // SAFETY: between fork and exec only async-signal-safe calls: setgroups, setgid,
        // setuid (groups first, while still privileged; the uid last). `Command::uid` is not
        // used: std would clear the supplementary groups instead of setting the user's.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = command.spawn()?;
    // The Command holds our copies of the write end: they must close for EOF to ever come.
    drop(command);
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| io::Error::other("the job's shell has no process id"))?;
    Ok(Running {
        child,
        reader,
        pgid,
        guard: GroupGuard(pgid),
    })
}

/// A pipe whose ends are not inherited by other children spawned meanwhile.
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // SAFETY: pipe2 succeeded: both are open descriptors owned by nothing else.
    Ok(unsafe {
        (
            OwnedFd::from_raw_fd(read_end),
            OwnedFd::from_raw_fd(write_end),
        )
    })
}

/// The job's trace: chatops' own lines, batched, and the shells' output, into the job's
/// [`TraceSink`].
struct Trace {
    sink: TraceSink,
    /// Whether the last byte in was a line feed (runner lines must start on their own line).
    at_line_start: bool,
    /// Runner text not yet written: the lines chatops writes come in bursts (the header, the
    /// end of a step), and one `write` per burst beats one per line. Written before the job's
    /// next output, by [`Trace::flush`] (before a shell is waited for) and at the end.
    pending: String,
}

impl Trace {
    fn new(sink: TraceSink) -> Trace {
        Trace {
            sink,
            at_line_start: true,
            pending: String::new(),
        }
    }

    /// The job's output, in order (after any pending runner text).
    fn output(&mut self, bytes: &[u8]) {
        self.flush();
        self.write(bytes);
    }

    /// Writes the pending runner text.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.write(pending.as_bytes());
        // The allocation is kept for the next burst.
        self.pending = pending;
        self.pending.clear();
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        self.at_line_start = last == b'\n';
        self.sink.write(bytes);
    }

    /// A line (or lines) of chatops' own: queued until the next output or [`Trace::flush`].
    fn runner(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// Ends a line the job's output left open, so runner lines start on their own.
    fn ensure_line_start(&mut self) {
        let at_line_start = match self.pending.as_bytes().last() {
            Some(&last) => last == b'\n',
            None => self.at_line_start,
        };
        if !at_line_start {
            self.pending.push('\n');
        }
    }

    /// Flushes what is pending and cuts the reply's output.
    fn finish(mut self, single_command: bool) -> (OutputBlock, u64) {
        self.flush();
        let end = self.sink.finish_with_stats(single_command);
        (end.output, end.log_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;
    use chatops_core::JobId;
    use std::sync::atomic::AtomicU64;

    /// A fresh folder per test: work dir, logs, scratch.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("a temp dir");
            std::fs::create_dir_all(dir.path().join("work")).expect("the work dir");
            Fixture { dir }
        }

        fn work(&self) -> PathBuf {
            self.dir.path().join("work")
        }

        fn spec(&self, script: &[&str]) -> ExecSpec {
            static IDS: AtomicU64 = AtomicU64::new(1);
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            ExecSpec {
                job_id: JobId(id),
                job_name: "test".into(),
                project: "test".into(),
                source: Source::Folder(self.work()),
                tags: Vec::new(),
                workdir: self.work(),
                env: vec![
                    ("CI".into(), "true".into()),
                    ("CI_PIPELINE_SOURCE".into(), "chat".into()),
                    ("CHAT_INPUT".into(), String::new()),
                ],
                secret_names: Vec::new(),
                before_script: Vec::new(),
                script: script.iter().map(|s| s.to_string()).collect(),
                after_script: Vec::new(),
                timeout: Duration::from_secs(60),
                log_path: self.dir.path().join("logs").join(format!("{id}.log")),
                secrets: Arc::from([]),
                scratch_dir: self.dir.path().join("scratch"),
                user: None,
            }
        }

        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.work().join(name)).unwrap_or_default()
        }
    }

    async fn run_job(spec: ExecSpec) -> (ExecResult, String) {
        let log_path = spec.log_path.clone();
        let (_handle, job) = start(spec).expect("the shell starts");
        let result = job.await;
        let log =
            String::from_utf8_lossy(&std::fs::read(log_path).expect("the log exists")).into_owned();
        (result, log)
    }

    fn pid_alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    #[tokio::test]
    async fn seed_hello_world_succeeds_with_its_output() {
        let f = Fixture::new();
        let (result, log) = run_job(f.spec(&["echo \"Hello World\""])).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert_eq!(result.output.text, "Hello World");
        assert_eq!(result.log_bytes, log.len() as u64);
        assert!(log.starts_with("Running with chatops"));
        assert!(
            log.contains("\x1b[32;1m$ echo \"Hello World\"\x1b[0;m\n"),
            "{log:?}"
        );
        assert!(log.contains("section_start:") && log.contains(":step_script\r\x1b[0K"));
        assert!(log.contains(":step_script\r\x1b[0K"));
        assert!(log.contains("\x1b[32;1mJob succeeded\x1b[0;m"));
    }

    #[tokio::test]
    async fn seed_ls_replies_only_the_listing() {
        let f = Fixture::new();
        std::fs::write(f.work().join("visible-file.txt"), "x").expect("a file");
        let mut spec = f.spec(&[
            "echo \"This command will not be shown.\"",
            "echo -e \"section_start:$( date +%s ):chat_reply\\r\\033[0K\\n$( ls -la )\\nsection_end:$( date +%s ):chat_reply\\r\\033[0K\"",
        ]);
        spec.before_script = vec!["true".into()];
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(
            result.output.text.starts_with("total "),
            "{:?}",
            result.output
        );
        assert!(result.output.text.contains("visible-file.txt"));
        assert!(!result.output.text.contains("will not be shown"));
        assert!(log.contains("This command will not be shown."));
    }

    #[tokio::test]
    async fn several_commands_reply_with_the_transcript() {
        let f = Fixture::new();
        let (result, _) = run_job(f.spec(&["echo one", "echo two >&2", "echo three"])).await;
        assert_eq!(
            result.output.text,
            "$ echo one\none\n$ echo two >&2\ntwo\n$ echo three\nthree"
        );
    }

    #[tokio::test]
    async fn failing_command_stops_the_script_and_after_script_still_runs() {
        let f = Fixture::new();
        let mut spec = f.spec(&["echo one", "false", "echo never > never.txt"]);
        spec.before_script = vec!["echo before".into()];
        spec.after_script = vec![
            "echo \"after $CI_PIPELINE_SOURCE $CI_JOB_STATUS\" > after.txt".into(),
            "exit 3".into(),
        ];
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Failed { exit_code: Some(1) });
        assert!(!f.work().join("never.txt").exists());
        assert_eq!(f.read("after.txt"), "after chat failed\n");
        assert!(
            result.output.text.ends_with("$ false"),
            "{:?}",
            result.output
        );
        assert!(!result.output.text.contains("after"));
        assert!(log.contains("ERROR: Job failed: exit code 1"));
        assert!(log.contains("after_script failed, but job will continue unaffected: exit code 3"));
        assert!(log.contains(":after_script\r\x1b[0K"));
    }

    #[tokio::test]
    async fn exit_codes_and_set_e_escapes_are_reported() {
        let f = Fixture::new();
        let (result, _) = run_job(f.spec(&["exit 7"])).await;
        assert_eq!(result.status, JobStatus::Failed { exit_code: Some(7) });
        // A command that turns errexit off still stops the script when it fails.
        let (result, _) = run_job(f.spec(&["set +e; false", "touch ran.txt"])).await;
        assert_eq!(result.status, JobStatus::Failed { exit_code: Some(1) });
        assert!(!f.work().join("ran.txt").exists());
        // A syntax error stays in its command.
        let (result, log) = run_job(f.spec(&["echo 'unterminated", "touch ran.txt"])).await;
        assert!(matches!(result.status, JobStatus::Failed { exit_code: Some(c) } if c != 0));
        assert!(!f.work().join("ran.txt").exists(), "{log}");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let f = Fixture::new();
        let mut spec = f.spec(&["sleep 30 & echo $! > bg.pid", "sleep 30"]);
        spec.timeout = Duration::from_millis(700);
        spec.after_script = vec!["echo cleaned > after.txt".into()];
        let (handle, job) = start(spec).expect("the shell starts");
        let pgid = handle.pgid().expect("a running shell has a group");
        let result = job.await;
        assert_eq!(
            result.status,
            JobStatus::TimedOut {
                after: Duration::from_millis(700)
            }
        );
        assert!(
            result.duration < Duration::from_secs(10),
            "{:?}",
            result.duration
        );
        assert!(!group_exists(pgid), "the group {pgid} is gone");
        let bg: i32 = f.read("bg.pid").trim().parse().expect("the background pid");
        assert!(!pid_alive(bg));
        assert_eq!(f.read("after.txt"), "cleaned\n");
        assert_eq!(handle.pgid(), None);
    }

    #[tokio::test]
    async fn cancel_kills_runs_after_script_and_says_who() {
        let f = Fixture::new();
        let mut spec = f.spec(&["echo started", "sleep 30", "touch never.txt"]);
        spec.after_script = vec!["echo \"cleaned $CI_JOB_STATUS\" > after.txt".into()];
        let log_path = spec.log_path.clone();
        let (handle, job) = start(spec).expect("the shell starts");
        let pgid = handle.pgid().expect("a running shell has a group");
        let task = tokio::spawn(job);
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.cancel(Some("alice".into()));
        let result = task.await.expect("the job's task completes");
        assert_eq!(
            result.status,
            JobStatus::Canceled {
                by: Some("alice".into())
            }
        );
        assert!(result.duration < Duration::from_secs(10));
        assert!(!group_exists(pgid));
        assert!(!f.work().join("never.txt").exists());
        assert_eq!(f.read("after.txt"), "cleaned canceled\n");
        let log = std::fs::read_to_string(log_path).expect("the log");
        assert!(log.contains("ERROR: Job failed: canceled by alice"));
        // Cancelling an ended job does nothing.
        handle.cancel(None);
    }

    #[tokio::test]
    async fn cancel_before_the_job_is_polled_still_cancels() {
        let f = Fixture::new();
        let (handle, job) = start(f.spec(&["sleep 30"])).expect("the shell starts");
        handle.cancel(None);
        let result = job.await;
        assert_eq!(result.status, JobStatus::Canceled { by: None });
    }

    #[tokio::test]
    async fn dropping_the_job_kills_its_group() {
        let f = Fixture::new();
        let (handle, job) = start(f.spec(&["sleep 30"])).expect("starts");
        let pgid = handle.pgid().expect("a group");
        drop(job);
        // SIGKILL went to the group; tokio reaps the shell in the background.
        let mut gone = false;
        for _ in 0..100 {
            if !group_exists(pgid) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the group {pgid} is gone");
    }

    #[tokio::test]
    async fn term_ignoring_job_is_killed_after_the_grace() {
        let f = Fixture::new();
        let mut spec = f.spec(&["trap '' TERM; sleep 30"]);
        spec.timeout = Duration::from_millis(300);
        let (handle, job) = start(spec).expect("the shell starts");
        let pgid = handle.pgid().expect("a group");
        let result = job.await;
        assert!(matches!(result.status, JobStatus::TimedOut { .. }));
        assert!(result.duration >= KILL_GRACE);
        assert!(result.duration < KILL_GRACE + Duration::from_secs(8));
        assert!(!group_exists(pgid));
    }

    #[tokio::test]
    async fn leftover_background_processes_do_not_keep_the_job_open() {
        let f = Fixture::new();
        let (handle, job) =
            start(f.spec(&["sleep 30 & echo $! > bg.pid", "echo done"])).expect("starts");
        let pgid = handle.pgid().expect("a group");
        let result = job.await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(result.duration < Duration::from_secs(10));
        assert!(!group_exists(pgid));
        let bg: i32 = f.read("bg.pid").trim().parse().expect("the background pid");
        assert!(!pid_alive(bg));
    }

    #[tokio::test]
    async fn chat_input_is_only_ever_a_variable() {
        let f = Fixture::new();
        let input = "$(touch pwned1) `touch pwned2` 'single' \"double\" \\ $HOME ; touch pwned3\nsecond line && touch pwned4 | x";
        let mut spec = f.spec(&["printf '%s' \"$CHAT_INPUT\" > input.txt"]);
        spec.env.push(("CHAT_INPUT".into(), input.into()));
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert_eq!(f.read("input.txt"), input);
        for n in 1..=4 {
            assert!(!f.work().join(format!("pwned{n}")).exists(), "pwned{n}");
        }
        assert!(!log.contains("pwned"), "the input is not echoed: {log}");
    }

    #[tokio::test]
    async fn multi_line_commands_and_quotes_run_verbatim() {
        let f = Fixture::new();
        let heredoc = "cat <<'EOF' > here.txt\nit's \"quoted\" $HOME `x` \\n\nEOF";
        let function = "greet() {\n  printf '%s\\n' \"hi $1\"\n}";
        let (result, log) = run_job(f.spec(&[heredoc, function, "greet 'o'\\''brien'"])).await;
        assert_eq!(result.status, JobStatus::Succeeded, "{log}");
        assert_eq!(f.read("here.txt"), "it's \"quoted\" $HOME `x` \\n\n");
        assert!(log.contains("$ cat <<'EOF' > here.txt # collapsed multi-line command"));
        assert!(result
            .output
            .text
            .ends_with("$ greet 'o'\\''brien'\nhi o'brien"));
    }

    #[tokio::test]
    async fn server_environment_does_not_leak() {
        std::env::set_var("SLACK_SIGNING_SECRET", "leak-me-8f3a");
        let f = Fixture::new();
        let mut spec = f.spec(&["env > env.txt"]);
        spec.env.push(("GREETING".into(), "hello".into()));
        spec.env.push(("GREETING".into(), "later wins".into()));
        spec.env.push(("BAD=NAME".into(), "x".into()));
        let (result, _) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        let env = f.read("env.txt");
        assert!(!env.contains("SLACK_SIGNING_SECRET"));
        assert!(!env.contains("leak-me-8f3a"));
        assert!(env.lines().any(|l| l == "GREETING=later wins"), "{env}");
        assert!(env.lines().any(|l| l == "CI_PIPELINE_SOURCE=chat"));
        if std::env::var_os("PATH").is_some() {
            assert!(env.lines().any(|l| l.starts_with("PATH=")));
        }
    }

    #[tokio::test]
    async fn secrets_are_masked_in_log_and_reply() {
        let f = Fixture::new();
        let mut spec =
            f.spec(&["echo \"token=$DEPLOY_TOKEN\"; printf 'split:%s' \"$DEPLOY_TOKEN\""]);
        spec.env
            .push(("DEPLOY_TOKEN".into(), "s3cr3t-t0ken-value".into()));
        spec.secrets = Arc::from(["s3cr3t-t0ken-value".to_owned()]);
        let (result, log) = run_job(spec).await;
        assert!(!log.contains("s3cr3t"), "{log}");
        assert!(log.contains("token=[MASKED]"));
        assert_eq!(result.output.text, "token=[MASKED]\nsplit:[MASKED]");
    }

    #[tokio::test]
    async fn stdin_is_empty_so_the_script_survives_a_reader() {
        let f = Fixture::new();
        let (result, _) = run_job(f.spec(&["cat", "read -r line || echo no-input"])).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(result.output.text.ends_with("no-input"));
    }

    #[tokio::test]
    async fn a_missing_workdir_fails_to_start() {
        let f = Fixture::new();
        let mut spec = f.spec(&["true"]);
        spec.workdir = f.dir.path().join("missing");
        assert!(start(spec).is_err());
    }

    #[tokio::test]
    async fn a_huge_single_line_keeps_memory_bounded() {
        let f = Fixture::new();
        let spec = f.spec(&["head -c 100000000 /dev/zero | tr '\\0' a; echo END"]);
        let log_path = spec.log_path.clone();
        let (handle, job) = start(spec).expect("starts");
        let result = job.await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(result.log_bytes > 100_000_000);
        assert_eq!(
            std::fs::metadata(log_path).expect("the log").len(),
            result.log_bytes
        );
        assert!(result.output.text.ends_with("aaaEND"));
        assert!(result.output.text.len() <= REPLY_TAIL_BYTES);
        assert!(result.output.omitted_bytes >= 100_000_000 - REPLY_TAIL_BYTES as u64);
        let peak = handle.peak_retained_bytes();
        assert!(peak > 0 && peak <= 4 * REPLY_TAIL_BYTES + 1024, "{peak}");
    }

    #[test]
    fn quoting_survives_every_quote() {
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("a\0b"), "'ab'");
        let script = script_text(
            &Shell {
                path: "/bin/sh".into(),
                name: "sh",
            },
            STEP_SCRIPT,
            &["echo 'x'"],
        );
        assert!(script.contains("eval 'echo '\\''x'\\'''\n"), "{script}");
        assert!(script.contains("set -e\n"));
    }

    #[tokio::test]
    async fn a_normal_job_creates_no_scratch_folder() {
        let f = Fixture::new();
        let mut spec = f.spec(&["echo \"$0\" > zero.txt", "nosuchcommand-8d1f"]);
        spec.before_script = vec!["echo before".into()];
        spec.after_script = vec!["echo \"after $CI_JOB_STATUS\" > after.txt".into()];
        let scratch = spec.scratch_dir.clone();
        let (result, log) = run_job(spec).await;
        assert!(
            matches!(
                result.status,
                JobStatus::Failed {
                    exit_code: Some(127)
                }
            ),
            "{log}"
        );
        assert_eq!(f.read("after.txt"), "after failed\n");
        assert!(!scratch.exists(), "{} was created", scratch.display());
        // `$0` names the shell, so messages name no server path.
        assert_eq!(f.read("zero.txt").trim(), shell().name);
        assert!(log.contains("nosuchcommand-8d1f"), "{log}");
        assert!(!log.contains(&*scratch.to_string_lossy()), "{log}");
    }

    #[tokio::test]
    async fn scripts_over_the_argument_limit_run_from_a_file() {
        let f = Fixture::new();
        // One command bigger than the limit on its own: the script cannot be an argument.
        let payload = "x".repeat(INLINE_SCRIPT_MAX + 1000);
        let big = format!("printf '%s' '{payload}' | wc -c > size.txt");
        let mut spec = f.spec(&[
            &big,
            "echo \"it's $CI_PIPELINE_SOURCE\"",
            "exit 4",
            "touch never.txt",
        ]);
        spec.after_script = vec![
            format!(": '{payload}'"),
            "echo \"after $CI_JOB_STATUS\" > after.txt".into(),
        ];
        let scratch = spec.scratch_dir.clone();
        let (result, log) = run_job(spec).await;
        assert_eq!(
            result.status,
            JobStatus::Failed { exit_code: Some(4) },
            "{log}"
        );
        assert_eq!(f.read("size.txt").trim(), payload.len().to_string());
        assert!(!f.work().join("never.txt").exists());
        assert_eq!(f.read("after.txt"), "after failed\n");
        assert!(
            log.contains("\x1b[32;1m$ echo \"it's $CI_PIPELINE_SOURCE\"\x1b[0;m\nit's chat\n"),
            "{log:?}"
        );
        assert!(log.contains("\x1b[32;1m$ exit 4\x1b[0;m\n"));
        for file in ["step_script.sh", "after_script.sh"] {
            let text = std::fs::read_to_string(scratch.join(file)).expect("the script file");
            assert!(
                text.len() > INLINE_SCRIPT_MAX,
                "{file}: {} bytes",
                text.len()
            );
        }
    }

    #[tokio::test]
    async fn a_script_the_kernel_refuses_as_an_argument_runs_from_a_file() {
        // SAFETY: sysconf has no preconditions.
        let arg_max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
        // Linux caps the real limit at 6 MiB whatever the stack limit says; past that (or
        // without a figure) the test cannot know how much to fill.
        let Some(arg_max) = usize::try_from(arg_max)
            .ok()
            .filter(|&max| max <= 6 * 1024 * 1024)
        else {
            println!("skipped: ARG_MAX is unknown or above Linux's own cap ({arg_max})");
            return;
        };
        let f = Fixture::new();
        // A script under the inline limit, and variables that leave it no room beside them
        // (but room for a file's path): the argument fails with E2BIG, the file works.
        let filler = "y".repeat(INLINE_SCRIPT_MAX - 4096);
        let mut spec = f.spec(&[&format!(": '{filler}'"), "echo ran > ran.txt"]);
        let value = "v".repeat(100 * 1024);
        let target = arg_max.saturating_sub(INLINE_SCRIPT_MAX / 2);
        let mut total = 0;
        let mut n = 0;
        while total + value.len() + 16 < target {
            spec.env.push((format!("BIG_{n}"), value.clone()));
            total += value.len() + 16;
            n += 1;
        }
        let scratch = spec.scratch_dir.clone();
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded, "{log}");
        assert_eq!(f.read("ran.txt"), "ran\n");
        assert!(scratch.join("step_script.sh").exists());
    }

    #[tokio::test]
    async fn the_log_folder_is_created_when_missing_and_a_bad_one_fails_to_start() {
        let f = Fixture::new();
        let mut spec = f.spec(&["echo hi"]);
        spec.log_path = f.dir.path().join("a").join("b").join("job.log");
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(
            log.ends_with("\x1b[32;1mJob succeeded\x1b[0;m\n"),
            "{log:?}"
        );
        // An existing log is truncated, not appended to or overwritten in place.
        let log_path = f.dir.path().join("a").join("b").join("job.log");
        std::fs::write(&log_path, "z".repeat(100_000)).expect("an old, long log");
        let mut spec = f.spec(&["echo again"]);
        spec.log_path = log_path.clone();
        let (result, again) = run_job(spec).await;
        assert_eq!(again.matches("Running with chatops").count(), 1);
        assert!(!again.contains('z'), "{again:?}");
        assert_eq!(result.log_bytes, again.len() as u64);
        // An empty log created beforehand (as the watcher does) is used as it is.
        std::fs::write(&log_path, "").expect("an empty log");
        let mut spec = f.spec(&["echo precreated"]);
        spec.log_path = log_path;
        let (result, log) = run_job(spec).await;
        assert_eq!(result.status, JobStatus::Succeeded);
        assert!(log.starts_with("Running with chatops"), "{log:?}");
        assert_eq!(result.output.text, "precreated");
        // A log whose folder is a file cannot be created: the job does not start.
        std::fs::write(f.dir.path().join("file"), "x").expect("a file");
        let mut spec = f.spec(&["touch started.txt"]);
        spec.log_path = f.dir.path().join("file").join("job.log");
        assert!(start(spec).is_err());
        assert!(!f.work().join("started.txt").exists());
    }

    #[test]
    fn runner_text_waits_for_a_flush_and_keeps_its_place() {
        let f = Fixture::new();
        let mut spec = f.spec(&["true"]);
        spec.log_path = f.dir.path().join("trace.log");
        let sink =
            TraceSink::open(&spec.log_path, Arc::from([]), REPLY_TAIL_BYTES).expect("the log");
        let stats = sink.stats();
        let mut trace = Trace::new(sink);
        let on_disk = || std::fs::read_to_string(&spec.log_path).expect("the log");

        trace.runner("header 1\n");
        trace.runner("header 2\n");
        trace.ensure_line_start();
        assert_eq!(on_disk(), "", "runner text is queued");
        assert_eq!(stats.log_bytes(), 0);
        trace.output(b"out");
        assert_eq!(on_disk(), "header 1\nheader 2\nout");
        // The output left a line open: the next runner line starts on its own.
        trace.ensure_line_start();
        trace.runner("warn\n");
        trace.ensure_line_start();
        trace.runner("end");
        trace.flush();
        assert_eq!(on_disk(), "header 1\nheader 2\nout\nwarn\nend");
        assert_eq!(stats.log_bytes(), on_disk().len() as u64);
        trace.ensure_line_start();
        trace.runner("last");
        let (_, bytes) = trace.finish(false);
        let log = on_disk();
        assert_eq!(log, "header 1\nheader 2\nout\nwarn\nend\nlast");
        assert_eq!(bytes, log.len() as u64);
    }

    #[test]
    fn refuses_to_signal_dangerous_groups() {
        // These would hit every process or chatops itself; they must be no-ops.
        kill_process_group(0);
        kill_process_group(1);
        kill_process_group(-5);
        // SAFETY: getpgrp has no preconditions.
        kill_process_group(unsafe { libc::getpgrp() });
        assert!(group_exists(unsafe { libc::getpgrp() }));
    }
}
