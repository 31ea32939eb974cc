//! Opening the database file: connection settings (WAL, `synchronous=NORMAL`, busy timeout,
//! foreign keys) and schema migrations.
//!
//! Migrations are an ordered list of SQL scripts; `PRAGMA user_version` holds how many have run.
//! Opening applies the missing ones in one transaction, so a failed migration leaves the file as
//! it was. A file whose version is higher than the list is long was written by a newer chatops
//! and is refused: this binary cannot know what the newer schema means.
//!
//! To change the schema, append a script; never edit one that has shipped.

use crate::error::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another process's lock (e.g. `chatops jobs` reading while the
/// server writes) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version 1.
///
/// - `commands`: the audit log of every command, whatever its outcome. The partial unique index
///   on `(platform, request_id)` makes a second delivery of the same command impossible to record
///   as anything but a duplicate (duplicates themselves are logged, outside the index).
/// - `jobs`: one row per job; `id` is chatops' `JobId`. AUTOINCREMENT, not a plain rowid, so an
///   id is never reused, even after the newest rows are deleted: job pages, logs and `play ID`
///   buttons name jobs by id. `status` is the one-word name (for queries), `status_json` the full
///   `JobStatus`.
/// - `outbox`: replies to deliver. `target` and `reply` are JSON (`ReplyTarget`, `Reply`).
///   `platform` is copied out of `target` so each platform's deliverer can take its own work.
const V1: &str = r#"
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    project           TEXT    NOT NULL,
    job_name          TEXT    NOT NULL,
    pipeline_id       INTEGER,
    status            TEXT    NOT NULL,
    status_json       TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    exit_code         INTEGER,
    duration_ms       INTEGER,
    log_path          TEXT,
    platform          TEXT    NOT NULL,
    channel           TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    user_name         TEXT,
    input             TEXT    NOT NULL,
    reply_target      TEXT    NOT NULL,
    job_when          TEXT,
    resource_group    TEXT,
    pgid              INTEGER,
    canceled_by       TEXT,
    response_url_uses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs (status);

CREATE TABLE commands (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   INTEGER NOT NULL,
    platform      TEXT    NOT NULL,
    request_id    TEXT,
    team          TEXT,
    channel       TEXT    NOT NULL,
    channel_name  TEXT,
    user_id       TEXT    NOT NULL,
    user_name     TEXT,
    slash_command TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    via_button    INTEGER NOT NULL DEFAULT 0,
    project       TEXT,
    outcome       TEXT    NOT NULL
                  CHECK (outcome IN ('accepted', 'refused', 'invalid', 'duplicate')),
    reason        TEXT,
    job_id        INTEGER
);
CREATE UNIQUE INDEX commands_request ON commands (platform, request_id)
    WHERE request_id IS NOT NULL AND outcome <> 'duplicate';
CREATE INDEX commands_job ON commands (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          INTEGER REFERENCES jobs (id),
    created_at      INTEGER NOT NULL,
    platform        TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    reply           TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    settled_at      INTEGER,
    via             TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_job ON outbox (job_id, id) WHERE state = 'pending';
"#;

/// Schema version 2.
///
/// - `cli_requests`: commands the command line (`chatops run`, `play`, `cancel`) hands to the
///   server that holds the data dir's lock, instead of running jobs itself beside it (two
///   processes running jobs from one data dir would recover, i.e. kill, each other's). The
///   server takes `pending` rows, runs each as a console command and writes its ack (`ack`,
///   `job_id`, state `answered`), then the job's reply (`reply`) when it ends.
/// - `jobs_manual`: waiting manual jobs by age, for `server.manual_job_ttl`.
const V2: &str = r#"
CREATE TABLE cli_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    INTEGER NOT NULL,
    pid           INTEGER,
    slash_command TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    user_name     TEXT,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'taken', 'answered')),
    ack           TEXT,
    job_id        INTEGER,
    answered_at   INTEGER,
    reply         TEXT
);
CREATE INDEX cli_requests_pending ON cli_requests (id) WHERE state = 'pending';
CREATE INDEX jobs_manual ON jobs (created_at) WHERE status = 'manual';
"#;

/// Schema version 3.
///
/// - `jobs_channel`: a project's jobs per chat channel, newest first, for chat's `jobs` and
///   `status` (issue #11): without it, a channel with few jobs would scan the whole table.
const V3: &str = r#"
CREATE INDEX jobs_channel ON jobs (project, platform, channel, id);
"#;

/// Schema version 4.
///
/// - `runner_jobs`: jobs handed to GitLab runners (issue #10), so a restarted chatops knows
///   which jobs runners are still running and accepts their trace and status updates. `id` is
///   chatops' job id (no foreign key: the runner crate's tests run without `jobs` rows). `spec`
///   is the coordinator's JSON job spec; `token_hash` the SHA-256 (hex) of the current attempt's
///   job token, never the token itself; `state` one of `pending`, `offered`, `running`,
///   `canceling`, `finished`.
const V4: &str = r#"
CREATE TABLE runner_jobs (
    id          INTEGER PRIMARY KEY,
    spec        TEXT    NOT NULL,
    state       TEXT    NOT NULL
                CHECK (state IN ('pending', 'offered', 'running', 'canceling', 'finished')),
    token_hash  TEXT,
    runner      TEXT,
    attempt     INTEGER NOT NULL DEFAULT 0,
    graceful    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX runner_jobs_open ON runner_jobs (id) WHERE state <> 'finished';
"#;

/// Every migration, in order; the schema version is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// Opens (creating when missing, with its parent folders) and migrates the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    configure(&conn).map_err(open_err)?;
    migrate(&mut conn, path, MIGRATIONS)?;
    Ok(conn)
}

/// Opens the database at `path` for reading only: no file is created, no migration runs, no
/// write lock is ever taken (`chatops jobs` and `chatops log` beside a live server). A file of
/// an older schema reads fine (the tables these commands read exist since version 1); one
/// written by a newer chatops is refused.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > supported {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    Ok(conn)
}

/// Connection settings. Why these:
/// - WAL: readers (the CLI, the job page) never block the writer, and a commit appends to the
///   log instead of rewriting pages.
/// - `synchronous=NORMAL`: in WAL mode a commit is a `write()` to the log without `fsync`; the log
///   is synced at checkpoints. A commit survives the process dying (crash, `kill -9`): the data is
///   in the kernel. A power loss or OS crash can drop the last commits since the last checkpoint,
///   never corrupt the file. `FULL` would fsync every commit, which group commit makes affordable
///   but which the ack path does not need.
/// - foreign keys: SQLite leaves them off by default.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Only an in-memory database or an odd file system says no; it still works, slower.
        tracing::warn!(mode, "the store could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Every query is `prepare_cached`; the default 16 slots would evict some of the ~20.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings the schema of `conn` up to `migrations.len()`, in one immediate transaction (so two
/// processes opening the file at once cannot both migrate it). Returns the new version.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<i64, StoreError> {
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    if found > supported {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    let done = usize::try_from(found).map_err(|_| {
        StoreError::Corrupt(format!(
            "{} has a negative schema version ({found})",
            path.display()
        ))
    })?;
    for (index, sql) in migrations.iter().enumerate().skip(done) {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                version,
                source,
            })?;
        tracing::info!(path = %path.display(), version, "store schema migrated");
    }
    tx.commit().map_err(open_err)?;
    Ok(supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap_or(-1)
    }

    #[test]
    fn opens_in_wal_mode_with_current_schema_in_new_folders() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("nested/data/chatops.db");
        let conn = open(&path)?;
        assert!(path.exists());
        assert_eq!(version(&conn), i64::try_from(MIGRATIONS.len()).unwrap_or(0));
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        assert_eq!(mode, "wal");
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
        assert_eq!(fk, 1);
        // synchronous: 1 = NORMAL.
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        assert_eq!(sync, 1);
        Ok(())
    }

    #[test]
    fn a_later_migration_runs_once_and_keeps_data() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("m.db");
        let v1 = ["CREATE TABLE t (x INTEGER)"];
        let v2 = [
            "CREATE TABLE t (x INTEGER)",
            "ALTER TABLE t ADD COLUMN y TEXT",
        ];
        {
            let mut conn = Connection::open(&path)?;
            assert_eq!(migrate(&mut conn, &path, &v1)?, 1);
            conn.execute("INSERT INTO t (x) VALUES (7)", [])?;
        }
        let mut conn = Connection::open(&path)?;
        assert_eq!(migrate(&mut conn, &path, &v2)?, 2);
        // Running again applies nothing (re-adding the column would fail).
        assert_eq!(migrate(&mut conn, &path, &v2)?, 2);
        let (x, y): (i64, Option<String>) =
            conn.query_row("SELECT x, y FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        assert_eq!((x, y), (7, None));
        Ok(())
    }

    #[test]
    fn a_failing_migration_leaves_the_file_as_it_was() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path)?;
        let bad = ["CREATE TABLE t (x INTEGER)", "THIS IS NOT SQL"];
        match migrate(&mut conn, &path, &bad) {
            Err(StoreError::Migrate { version, .. }) => assert_eq!(version, 2),
            other => panic!("expected a migration error, got {other:?}"),
        }
        assert_eq!(version(&conn), 0);
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 't'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(tables, 0, "the first script was rolled back too");
        Ok(())
    }

    #[test]
    fn a_newer_database_is_refused_with_a_clear_error() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("future.db");
        {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "user_version", 99)?;
        }
        let err = match open(&path) {
            Err(e) => e,
            Ok(_) => panic!("a database from the future was opened"),
        };
        assert!(
            matches!(err, StoreError::TooNew { found: 99, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("schema version 99"), "{message}");
        assert!(message.contains("future.db"), "{message}");
        assert!(message.contains("newer chatops"), "{message}");
        Ok(())
    }
}
