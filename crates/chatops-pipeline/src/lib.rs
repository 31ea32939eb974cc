//! chatops' actors: the pipeline that turns chat commands into one-job pipelines, and the
//! watchers that run them and reply.
//!
//! # Layout
//! - [`settings`]: the server and project settings the pipeline runs on.
//! - [`pipeline`]: [`PipelineActor`](pipeline::PipelineActor) and its cloneable
//!   [`PipelineHandle`]: permission, job lookup, limits and the queue.
//! - [`PipelineError`]: what the crate's fallible public API fails with.
//! - [`executors`]: [`Executors`], the executors a server has (local, runner), picked per project.
//! - [`watcher`]: one [`WatcherActor`](watcher::WatcherActor) per job: start, cancel, reply.
//! - [`outbox`]: replies are stored, then delivered by one lane per platform, with retries.
//! - [`recovery`]: what a restart does about jobs the previous run left.
//! - [`git`]: reading a project's repository at its branch's HEAD.
//! - [`messages`]: every message chatops says to a user, worded once.
//! - [`joblog`]: reading a job's log for people: cleaned, then masked (the only way).
//! - [`links`]: signed job-page links. [`metrics`]: typed events and the registry behind `/metrics`.

pub mod cicache;
mod error;
pub mod executors;
pub mod git;
pub mod joblog;
pub mod links;
pub mod messages;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod recovery;
pub mod settings;
pub mod watcher;

pub use error::PipelineError;
pub use executors::Executors;
pub use pipeline::{Ack, JobView, PipelineHandle};
pub use settings::{ExecutorKind, Member, ProjectSettings, Settings};
