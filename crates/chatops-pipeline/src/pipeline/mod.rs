//! The pipeline: takes chat commands, checks permission, resolves the job and creates its
//! one-job pipeline; owns the limits and the queue. The rest of the program talks to it
//! through the cloneable [`PipelineHandle`], never to the actor's `Addr`.
//!
//! # Layout
//! - `handle`: [`PipelineHandle`], the public API (start, submit, views, shutdown).
//! - `admission`: what a command may do (role, subcommand, CI lookup, rules), off the actor.
//! - `scheduler`: which live jobs run and which wait (limits, resource groups, the queue):
//!   plain data, unit-tested without actix.
//! - `actor`: the `PipelineActor`, its messages and handlers (quick state changes).

mod actor;
mod admission;
mod handle;
mod scheduler;

pub(crate) use actor::{JobEnded, PipelineActor};
pub(crate) use admission::job_ref_of;
pub use admission::{load_ci_blocking, predefined_variables, rule_variables};
pub use handle::PipelineHandle;

use crate::links::LinkSigner;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::settings::Settings;
use chatops_core::{Adapters, JobId, JobStatus, ProjectName, Reply, UserId};
use chatops_store::{JobRecord, Store};
use dashmap::DashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// What the web pages and the CLI may know about a job, readable without asking an actor.
#[derive(Clone, Debug)]
pub struct JobView {
    pub id: JobId,
    pub project: ProjectName,
    pub job: String,
    pub user: UserId,
    pub platform: String,
    pub status: JobStatus,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub log_path: PathBuf,
    /// The process group of the running job's shell, while it runs.
    pub pgid: Option<i32>,
}

impl JobView {
    /// A past job, from the store.
    pub fn from_record(r: &JobRecord, fallback_log: PathBuf) -> JobView {
        JobView {
            id: r.id,
            project: r.project.clone(),
            job: r.job_name.to_string(),
            user: r.user.clone(),
            platform: r.platform.to_string(),
            status: r.status.clone(),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            log_path: r.log_path.clone().unwrap_or(fallback_log),
            pgid: r.pgid,
        }
    }
}

/// State shared, read-mostly, between the actors and the HTTP side.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub adapters: Adapters,
    pub links: LinkSigner,
    pub metrics: Metrics,
    /// Where jobs run; the watcher picks per project.
    pub executors: crate::executors::Executors,
    /// Every value masked in output ([`Settings::masked_values`]), worked out once: each job,
    /// page view and log stream masks with it.
    pub masked: Arc<[String]>,
    /// Job views by id. A DashMap because HTTP handlers on other threads read it while the
    /// actors (on the System's arbiter) write it; no guard is ever held across an `.await`.
    pub jobs: DashMap<JobId, JobView>,
    /// Parsed CI files, reused while the files they came from are unchanged.
    pub ci_cache: crate::cicache::CiCache,
    /// The durable ledger: commands, jobs, the outbox.
    pub store: Store,
    /// Set once the outbox lanes run (right after recovery).
    pub(crate) outbox: OnceLock<Outbox>,
    accepting: AtomicBool,
}

impl Shared {
    pub(crate) fn update_view(&self, id: JobId, f: impl FnOnce(&mut JobView)) {
        if let Some(mut view) = self.jobs.get_mut(&id) {
            f(&mut view);
        }
    }
}

/// The answer to a submitted command: the ack to show at once, and the job it created, if any.
#[derive(Clone, Debug)]
pub struct Ack {
    pub reply: Reply,
    pub job: Option<JobId>,
}

impl Ack {
    fn refused(reply: Reply) -> Ack {
        Ack { reply, job: None }
    }
}
