//! [`StoreError`]: everything that can go wrong opening or using the store. Messages say what
//! happened and, where an operator can act, what to do.

use crate::model::OutboxId;
use chatops_core::JobId;
use std::path::PathBuf;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder for the database file could not be created.
    #[error("cannot create the store's folder {path}: {source}; check `server.data_dir` and its permissions")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    /// SQLite could not open or configure the database file.
    #[error("cannot open the store {path}: {source}; check `server.data_dir`, its permissions and free space")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// The database was written by a newer chatops: its schema is one this binary does not know.
    #[error(
        "the store {path} has schema version {found}, newer than this chatops understands \
         (up to {supported}); run the newer chatops that wrote it, or point `server.data_dir` elsewhere"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A schema migration failed; the database is left at the version before it.
    #[error("cannot migrate the store {path} to schema version {version}: {source}")]
    Migrate {
        path: PathBuf,
        version: i64,
        source: rusqlite::Error,
    },

    /// The store's thread could not be started.
    #[error("cannot start the store's thread: {0}")]
    Spawn(std::io::Error),

    /// A query failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A value could not be turned into JSON for storage, or stored JSON does not read back.
    #[error("store JSON for {what} is unreadable: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },

    /// A stored row holds a value this binary does not understand.
    #[error("store row is corrupt: {0}")]
    Corrupt(String),

    /// The transaction that held this request could not be committed: nothing of it was saved.
    #[error("the store could not commit: {0}; the change was not saved")]
    Commit(String),

    /// No job has this id.
    #[error("no job #{0} in the store")]
    UnknownJob(JobId),

    /// The job already ended; a finished job's status never changes again.
    #[error("job #{job} already {status}; its status cannot change")]
    JobFinished { job: JobId, status: String },

    /// The outbox has no pending reply with this id (unknown, or already delivered or given up).
    #[error("no pending reply #{0} in the outbox")]
    ReplyNotPending(OutboxId),

    /// The store's thread has stopped (closed, or died): nothing can be recorded any more.
    #[error("the store is closed (its thread has stopped); restart chatops")]
    Closed,
}
