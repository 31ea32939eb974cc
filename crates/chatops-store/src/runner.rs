//! Jobs handed to GitLab runners (issue #10): the `runner_jobs` table.
//!
//! The runner coordinator (`chatops-runner`) writes a row when it queues a job and again at each
//! change of state, so a restarted chatops can resume the jobs runners still hold. The spec is
//! the coordinator's own JSON: the store keeps it opaque.

use crate::error::StoreError;
use crate::model::{from_ms, to_ms};
use rusqlite::{named_params, Connection};
use std::time::SystemTime;

/// One row of `runner_jobs`: the coordinator's durable view of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerJobRow {
    /// chatops' job id, also the id runners see.
    pub id: u64,
    /// The coordinator's job spec, JSON.
    pub spec: String,
    /// `pending`, `offered`, `running`, `canceling` or `finished`.
    pub state: String,
    /// SHA-256 (lowercase hex) of the current attempt's job token; `None` while no runner holds
    /// the job. The token itself is never stored.
    pub token_hash: Option<String>,
    /// The name of the runner token whose runner took the job.
    pub runner: Option<String>,
    /// How many times the job was offered.
    pub attempt: u32,
    /// Whether the runner that holds it cancels gracefully (`Job-Status: canceling`).
    pub graceful: bool,
    /// When the job was queued.
    pub created_at: SystemTime,
    /// When the row last changed.
    pub updated_at: SystemTime,
}

fn sql_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("runner job id {id} is too large")))
}

/// Inserts the row, or replaces the one with its id.
pub(crate) fn put(conn: &Connection, row: &RunnerJobRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO runner_jobs (id, spec, state, token_hash, runner, attempt, graceful,
             created_at, updated_at)
         VALUES (:id, :spec, :state, :token_hash, :runner, :attempt, :graceful, :created_at,
             :updated_at)
         ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, state = excluded.state,
             token_hash = excluded.token_hash, runner = excluded.runner,
             attempt = excluded.attempt, graceful = excluded.graceful,
             updated_at = excluded.updated_at",
    )?
    .execute(named_params! {
        ":id": sql_id(row.id)?,
        ":spec": row.spec,
        ":state": row.state,
        ":token_hash": row.token_hash,
        ":runner": row.runner,
        ":attempt": row.attempt,
        ":graceful": row.graceful,
        ":created_at": to_ms(row.created_at),
        ":updated_at": to_ms(row.updated_at),
    })?;
    Ok(())
}

const SELECT: &str =
    "SELECT id, spec, state, token_hash, runner, attempt, graceful, created_at, updated_at
     FROM runner_jobs";

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunnerJobRow> {
    let id: i64 = r.get(0)?;
    let id = u64::try_from(id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })?;
    Ok(RunnerJobRow {
        id,
        spec: r.get(1)?,
        state: r.get(2)?,
        token_hash: r.get(3)?,
        runner: r.get(4)?,
        attempt: r.get(5)?,
        graceful: r.get(6)?,
        created_at: from_ms(r.get(7)?),
        updated_at: from_ms(r.get(8)?),
    })
}

/// Every row not `finished`, oldest id first.
pub(crate) fn open_rows(conn: &Connection) -> Result<Vec<RunnerJobRow>, StoreError> {
    let sql = format!("{SELECT} WHERE state <> 'finished' ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], row_of)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// One row, finished or not.
pub(crate) fn get(conn: &Connection, id: u64) -> Result<Option<RunnerJobRow>, StoreError> {
    let sql = format!("{SELECT} WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let row = stmt.query_map([sql_id(id)?], row_of)?.next().transpose()?;
    Ok(row)
}
