//! chatops' executors: where a job runs, behind one seam the job watcher drives, and the job
//! trace every executor writes. No actor runtime here: plain Tokio futures.
//!
//! # Layout
//! - [`Executor`]: the seam. `start(spec)` gives an [`ExecHandle`] (cancel, progress) and a
//!   future that drives the job to its end and resolves with an [`ExecResult`].
//! - [`spec`]: [`ExecSpec`], everything an executor needs to run one job, here or elsewhere.
//! - [`local`]: [`LocalExecutor`], the shell executor on the chatops host (process groups,
//!   timeout, after_script, a GitLab-runner-style trace).
//! - [`trace`]: [`TraceSink`], the one way a job's trace bytes reach its log file and the reply
//!   collector (masked), for the local executor and for one whose trace arrives as bytes.
//! - [`output`]: the trace format (sections, colours), the cleaner, the [`output::SecretMasker`],
//!   the [`output::OutputCollector`] that cuts a reply's output, and the log views for people.
//!
//! # The contract an executor keeps
//! - It writes the job's trace to `spec.log_path` as it comes (the job page, its live stream
//!   and live progress read that file), through a [`TraceSink`], which masks every secret.
//! - Its future resolves once the job is over; [`ExecResult::output`] is cut by the sink's
//!   collector (contract §5), so every executor replies alike.
//! - [`ExecHandle::cancel`] may come at any time, even before the job really started, and
//!   more than once; after the end it does nothing.

pub mod local;
pub mod output;
pub mod spec;
pub mod trace;

pub use local::{kill_process_group, LocalExecutor, AFTER_SCRIPT_TIMEOUT, KILL_GRACE};
pub use spec::{ExecSpec, JobUser, Source, Variable};
pub use trace::{single_command, TraceEnd, TraceSink, TraceStats, REPLY_TAIL_BYTES};

use chatops_core::{JobId, JobStatus, OutputBlock};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future an executor returns: `Send`, so it can run on any runtime (the watcher
/// spawns it on actix's).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a job runs. The watcher holds one per kind (`local`, `runner`) and picks per project.
pub trait Executor: Send + Sync + 'static {
    /// Short name for logs and the trace ("shell", "runner").
    fn name(&self) -> &'static str;

    /// Does the watcher need to prepare a local working copy (checkout) first? When `false`,
    /// the watcher skips the checkout and `spec.workdir` is empty.
    fn needs_workdir(&self) -> bool {
        true
    }

    /// Starts the job; the future drives it to the end and resolves with how it ended. An
    /// error means the job could not be started at all (the watcher reports it as a failed
    /// job, with the error as its output).
    fn start(
        &self,
        spec: ExecSpec,
    ) -> std::io::Result<(ExecHandle, BoxFuture<'static, ExecResult>)>;

    /// After a restart: of `jobs` (the ones the store still says run, with their log files),
    /// those this executor still runs elsewhere and can follow again, each with a handle and
    /// a future to its end as [`Executor::start`] gives. The log is written again from the
    /// start, masked with `secrets`. Jobs not returned are over: the server marks them
    /// interrupted. The local executor returns none (a restart ends its shells).
    fn resume(
        &self,
        jobs: Vec<(JobId, PathBuf)>,
        secrets: Arc<[String]>,
    ) -> BoxFuture<'static, Vec<Resumed>> {
        let _ = (jobs, secrets);
        Box::pin(async { Vec::new() })
    }
}

/// A job an executor took up again after a restart ([`Executor::resume`]).
pub struct Resumed {
    pub job_id: JobId,
    pub handle: ExecHandle,
    pub done: BoxFuture<'static, ExecResult>,
}

/// A running job as its executor controls it: what an [`ExecHandle`] forwards to.
pub trait JobControl: Send + Sync + 'static {
    /// Asks the job to stop (see [`ExecHandle::cancel`]).
    fn cancel(&self, by: Option<String>);

    /// The local process group running right now, if the job runs here.
    fn pgid(&self) -> Option<i32> {
        None
    }

    /// Bytes of trace written to the log so far.
    fn log_bytes(&self) -> u64;

    /// The most memory the reply collector held for this job.
    fn peak_retained_bytes(&self) -> usize;
}

/// A running job, seen from outside: cancel it, see its progress. Cheap to clone and `Send`,
/// so it can travel in actor messages.
#[derive(Clone)]
pub struct ExecHandle {
    control: Arc<dyn JobControl>,
}

impl ExecHandle {
    /// Wraps an executor's control of one job.
    pub fn new(control: Arc<dyn JobControl>) -> ExecHandle {
        ExecHandle { control }
    }

    /// Cancel: the job stops (locally: its process group gets TERM, then KILL after a short
    /// grace), after_script runs, and the job finishes as `JobStatus::Canceled { by }`. After
    /// the job ended it does nothing.
    pub fn cancel(&self, by: Option<String>) {
        self.control.cancel(by);
    }

    /// The process group of the running shell, for tests and restart recovery; `None` between
    /// shells, after the end, and for jobs that do not run on this host.
    pub fn pgid(&self) -> Option<i32> {
        self.control.pgid()
    }

    /// Bytes of trace written to the log so far (a live log can read the file up to here).
    pub fn log_bytes(&self) -> u64 {
        self.control.log_bytes()
    }

    /// The most memory the reply collector held for this job (known once the job ended).
    pub fn peak_retained_bytes(&self) -> usize {
        self.control.peak_retained_bytes()
    }
}

impl fmt::Debug for ExecHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecHandle")
            .field("pgid", &self.pgid())
            .field("log_bytes", &self.log_bytes())
            .finish()
    }
}

/// How a job ended.
#[derive(Clone, Debug)]
pub struct ExecResult {
    /// Succeeded | Failed{exit_code} | TimedOut{after} | Canceled{by}
    pub status: JobStatus,
    pub output: OutputBlock,
    pub duration: Duration,
    pub log_bytes: u64,
}
