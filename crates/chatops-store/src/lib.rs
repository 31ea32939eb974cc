//! chatops' durable ledger: every command, every job and every reply to send, in one SQLite
//! file under `data_dir` (job logs stay files beside it). chatops must never lose a command, a
//! job or a reply: the pipeline writes through this store before it acks, and the outbox keeps
//! replies until they are delivered or given up.
//!
//! # Layout
//! - [`store`]: [`Store`], the cloneable handle with `async` methods the rest of chatops uses.
//! - `worker`: the dedicated thread that owns the `rusqlite::Connection`, and group commit.
//! - `schema`: connection settings and migrations (`PRAGMA user_version`).
//! - `queries`: the SQL behind each method.
//! - [`model`]: the records and requests ([`CommandRecord`], [`NewJob`], [`JobUpdate`],
//!   [`JobRecord`], [`OutboxItem`], [`AttemptOutcome`], [`CliRequest`], ...).
//! - [`runner`]: [`RunnerJobRow`], jobs handed to GitLab runners (`runner_jobs`).
//! - [`error`]: [`StoreError`], what can go wrong and what to do about it.
//!
//! # Group commit
//! One thread owns the connection. Requests queue on a channel; the thread takes every request
//! already queued and runs them in one transaction (each in its own savepoint), commits once,
//! then answers them all. Sixteen concurrent acks cost one commit, not sixteen; a lone request
//! is committed at once, without waiting for company.
//!
//! # Durability
//! WAL mode with `synchronous=NORMAL`. A method answers `Ok` only after its transaction
//! committed, i.e. after the change was written to the WAL file (without `fsync`). So:
//! - a process crash, `kill -9`, or a panic elsewhere loses nothing that was answered `Ok`;
//! - a power loss or kernel crash can lose the last commits before the next WAL checkpoint
//!   (SQLite syncs the WAL there), but never corrupts the file.
//!
//! `fsync` per command (`synchronous=FULL`) would cap acks at the disk's sync rate; chat
//! commands lost to a power cut are re-typed by their users, so the trade is the right one here.
//!
//! # Ids
//! Job ids are SQLite `AUTOINCREMENT` keys: unique and increasing across restarts, never reused
//! even if rows are deleted.

pub mod error;
pub mod model;
mod queries;
pub mod runner;
mod schema;
pub mod store;
mod worker;

pub use error::StoreError;
pub use model::{
    AttemptOutcome, CliRequest, CliRequestId, CommandId, CommandRecord, JobRecord, JobUpdate,
    NewCliRequest, NewJob, OutboxId, OutboxItem, OutboxState, Outcome, Recorded, StoredCommand,
};
pub use runner::RunnerJobRow;
pub use store::{Store, StoreStats};

/// The schema version this build writes (the number of migrations it knows).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();
