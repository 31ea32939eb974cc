//! chatops as a GitLab Runner coordinator (issue #10): stock `gitlab-runner` processes (and
//! other clients of the runner API) long-poll chatops for chat jobs, exactly as they poll
//! GitLab, run them, stream their trace back and report how they ended.
//!
//! # Layout
//! - this file: the configuration ([`RunnerConfig`], [`RunnerToken`]), the job the server
//!   submits ([`RunnerJobSpec`]) and what becomes of it ([`RunnerOutcome`]), errors.
//! - [`coordinator`]: [`Coordinator`], the cloneable handle holding the job table, and
//!   [`RunnerJobHandle`], what the executor holds for one job.
//! - `api`: the runner API routes under `/api/v4/` (`runners/verify`, `jobs/request`,
//!   `PUT jobs/:id`, `PATCH jobs/:id/trace`).
//! - `response`: the `201` JobResponse JSON a runner gets with a job.
//! - `git`: `git http-backend` behind job-token Basic auth, under `/git/`, so runners can fetch
//!   git projects at the submitted sha.
//! - [`executor`]: [`RunnerExecutor`], the `runner` executor the job watcher drives: it
//!   submits jobs here and follows their trace into the job's log.
//! - `token`: runner and job tokens (random, hashed, compared in constant time).
//!
//! The wire protocol follows `runner-protocol.md` (the project's notes on GitLab's runner API).

mod api;
pub mod coordinator;
pub mod executor;
mod git;
mod response;
mod token;

pub use chatops_exec::Source;
pub use coordinator::{Coordinator, RunnerJobHandle};
pub use executor::RunnerExecutor;
pub use token::new_runner_token;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The coordinator's settings (the server builds them from the `runners:` config section).
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The runner authentication tokens chatops accepts; any other gets `403`.
    pub tokens: Vec<RunnerToken>,
    /// chatops' public base URL (`server.public_url`): the base of `repo_url`, `CI_SERVER_URL`.
    pub public_url: String,
    /// How long `jobs/request` is held while nothing is queued (capped at 50 s).
    pub long_poll: Duration,
    /// A job offered (`201`) without any PUT or PATCH from the runner within this is offered
    /// again once, with a fresh token; after a second miss it ends [`RunnerOutcome::NotPicked`].
    pub ack_timeout: Duration,
    /// A job taken whose runner sends no PUT or PATCH for this long ends [`RunnerOutcome::Lost`].
    pub lost_after: Duration,
    /// `X-GitLab-Trace-Update-Interval` sent to runners: how often they send trace (and so see
    /// a cancel).
    pub update_interval: Duration,
    /// How long a runner that cancels gracefully gets (`Job-Status: canceling`, `after_script`
    /// runs) before the job is canceled hard.
    pub cancel_grace: Duration,
}

impl RunnerConfig {
    /// Settings with the documented defaults for everything but the tokens and the URL.
    pub fn new(tokens: Vec<RunnerToken>, public_url: impl Into<String>) -> RunnerConfig {
        RunnerConfig {
            tokens,
            public_url: public_url.into(),
            long_poll: Duration::from_secs(50),
            ack_timeout: Duration::from_secs(60),
            lost_after: Duration::from_secs(90),
            update_interval: Duration::from_secs(2),
            cancel_grace: Duration::from_secs(60),
        }
    }
}

/// The longest a `jobs/request` is held, whatever the config says: GitLab's documented 50 s,
/// under the runner's own request timeout.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(50);

/// A runner authentication token chatops accepts, and what its runners may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerToken {
    /// A name for logs and [`RunnerJobHandle::runner`].
    pub name: String,
    /// The token (`glrt-…`, see [`new_runner_token`]).
    pub token: String,
    /// The runner's tags: it takes a tagged job only if the job's tags are all among these.
    pub tags: Vec<String>,
    /// Whether it takes jobs without tags.
    pub run_untagged: bool,
}

/// A CI/CD variable as runners receive it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub key: String,
    pub value: String,
    /// Redacted from the trace by the runner.
    #[serde(default)]
    pub masked: bool,
    /// Not `$VAR`-expanded by the runner (chat input).
    #[serde(default)]
    pub raw: bool,
    /// Written to a file whose path becomes the value.
    #[serde(default)]
    pub file: bool,
    /// Also given to service containers.
    #[serde(default = "yes")]
    pub public: bool,
}

fn yes() -> bool {
    true
}

impl Variable {
    /// A plain public variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Variable {
        Variable {
            key: key.into(),
            value: value.into(),
            masked: false,
            raw: false,
            file: false,
            public: true,
        }
    }
}

/// A job to run on a runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerJobSpec {
    /// chatops' job id; runners see the same id.
    pub job_id: u64,
    pub job_name: String,
    pub stage: String,
    /// The project's name; git projects are served at `/git/<project>.git`.
    pub project: String,
    pub source: Source,
    /// The job's variables (`CHAT_*` included); the coordinator adds the `CI_*` ones runners
    /// need.
    pub variables: Vec<Variable>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Counted from [`Coordinator::submit`]: then the job is canceled and ends
    /// [`RunnerOutcome::TimedOut`].
    pub timeout: Duration,
    /// Only runners with all of these tags take it; none: only runners with `run_untagged`.
    pub tags: Vec<String>,
    /// The trace runners send is appended here, raw bytes at their exact offsets.
    pub log_path: PathBuf,
}

/// How a runner job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunnerOutcome {
    /// The runner reported `success`.
    Succeeded,
    /// The runner reported `failed` (`reason` is its `failure_reason`), or chatops failed the
    /// job (trace too large).
    Failed {
        exit_code: Option<i32>,
        reason: String,
    },
    /// Canceled through [`RunnerJobHandle::cancel`].
    Canceled,
    /// Its `timeout` passed.
    TimedOut,
    /// Its runner stopped talking for `lost_after`; `last_seen_secs` ago it last did.
    Lost { last_seen_secs: u64 },
    /// Offered twice and never acknowledged by a runner.
    NotPicked,
}

/// What can go wrong submitting or resuming jobs.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A job with this id is already known to the coordinator.
    #[error("runner job {0} is already queued or running; job ids must be unique")]
    Duplicate(u64),
    /// The store failed.
    #[error("the runner job table could not be read or written: {0}")]
    Store(#[from] chatops_store::StoreError),
    /// A stored job spec does not read back.
    #[error("runner job {id} has an unreadable stored spec ({source}); it cannot be resumed")]
    Spec { id: u64, source: serde_json::Error },
}
