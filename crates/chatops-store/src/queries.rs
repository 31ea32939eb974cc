//! The SQL behind each [`Store`](crate::Store) method, as plain synchronous functions over a
//! connection. The store's thread calls them inside the batch transaction (each in its own
//! savepoint), so a function may read then write without races: it is the only writer.

use crate::error::StoreError;
use crate::model::{
    duration_ms, from_ms, parse_via, to_ms, via_name, AttemptOutcome, CliRequest, CliRequestId,
    CommandId, CommandRecord, JobRecord, JobUpdate, NewCliRequest, NewJob, OutboxId, OutboxItem,
    OutboxState, Outcome, Recorded, StoredCommand,
};
use chatops_core::{JobId, JobStatus, PlatformId, Reply, ReplyTarget};
use rusqlite::{named_params, params, params_from_iter, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Ids are `u64` in the API and `INTEGER` (i64) in SQLite. Ids the store made always fit; an id
/// a user typed (`cancel 99999999999999999999`) may not, and names no job.
fn sql_id(id: u64) -> Option<i64> {
    i64::try_from(id).ok()
}

fn api_id(id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("negative id {id}")))
}

fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json { what, source })
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

/// Paths are stored as text; chatops' paths come from its YAML config, so they are UTF-8.
fn path_text(path: &Path) -> Result<String, StoreError> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "path {} is not UTF-8; the store keeps UTF-8 paths only",
            path.display()
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Logs a command and creates its job, or logs it as a duplicate of an earlier delivery.
pub(crate) fn record_command(
    conn: &Connection,
    cmd: &CommandRecord,
    job: Option<&NewJob>,
) -> Result<Recorded, StoreError> {
    if let Some(request_id) = &cmd.request_id {
        let earlier = conn
            .prepare_cached(
                "SELECT id, job_id FROM commands
                 WHERE platform = ?1 AND request_id = ?2 AND outcome <> 'duplicate'",
            )?
            .query_row(params![cmd.platform.as_str(), request_id], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
            })
            .optional()?;
        if let Some((original, original_job)) = earlier {
            let original = CommandId(api_id(original)?);
            let job = original_job.map(api_id).transpose()?.map(JobId);
            let reason = format!("duplicate of command {original}");
            let command = insert_command(conn, cmd, Outcome::Duplicate, Some(&reason), job)?;
            return Ok(Recorded::Duplicate {
                command,
                original,
                job,
            });
        }
    }
    let created = job.map(|new| insert_job(conn, new)).transpose()?;
    let about = created.or(cmd.about);
    let command = insert_command(conn, cmd, cmd.outcome, cmd.reason.as_deref(), about)?;
    Ok(Recorded::New {
        command,
        job: created,
    })
}

fn insert_command(
    conn: &Connection,
    cmd: &CommandRecord,
    outcome: Outcome,
    reason: Option<&str>,
    job: Option<JobId>,
) -> Result<CommandId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO commands (received_at, platform, request_id, team, channel, channel_name,
             user_id, user_name, slash_command, text, via_button, project, outcome, reason, job_id)
         VALUES (:received_at, :platform, :request_id, :team, :channel, :channel_name,
             :user_id, :user_name, :slash_command, :text, :via_button, :project, :outcome,
             :reason, :job_id)",
    )?
    .execute(named_params! {
        ":received_at": to_ms(cmd.received_at),
        ":platform": cmd.platform.as_str(),
        ":request_id": cmd.request_id,
        ":team": cmd.team,
        ":channel": cmd.channel.as_str(),
        ":channel_name": cmd.channel_name,
        ":user_id": cmd.user.as_str(),
        ":user_name": cmd.user_name,
        ":slash_command": cmd.slash_command,
        ":text": cmd.text,
        ":via_button": cmd.via_button,
        ":project": cmd.project.as_ref().map(|p| p.as_str()),
        ":outcome": outcome.as_str(),
        ":reason": reason,
        // A user-typed id too large for SQLite names no job; the log keeps none.
        ":job_id": job.and_then(|j| sql_id(j.0)),
    })?;
    Ok(CommandId(api_id(conn.last_insert_rowid())?))
}

/// The newest `limit` commands, newest first.
pub(crate) fn recent_commands(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<StoredCommand>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_at, platform, request_id, team, channel, channel_name, user_id,
                user_name, slash_command, text, via_button, project, outcome, reason, job_id
         FROM commands ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_and_then([limit], command_from_row)?;
    rows.collect()
}

fn command_from_row(row: &Row<'_>) -> Result<StoredCommand, StoreError> {
    let outcome: String = row.get("outcome")?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown command outcome `{outcome}`")))?;
    Ok(StoredCommand {
        id: CommandId(api_id(row.get("id")?)?),
        record: CommandRecord {
            received_at: from_ms(row.get("received_at")?),
            platform: PlatformId::new(row.get::<_, String>("platform")?),
            request_id: row.get("request_id")?,
            team: row.get("team")?,
            channel: row.get::<_, String>("channel")?.into(),
            channel_name: row.get("channel_name")?,
            user: row.get::<_, String>("user_id")?.into(),
            user_name: row.get("user_name")?,
            slash_command: row.get("slash_command")?,
            text: row.get("text")?,
            via_button: row.get("via_button")?,
            project: row.get::<_, Option<String>>("project")?.map(Into::into),
            outcome,
            reason: row.get("reason")?,
            about: row
                .get::<_, Option<i64>>("job_id")?
                .map(api_id)
                .transpose()?
                .map(JobId),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Jobs

fn insert_job(conn: &Connection, job: &NewJob) -> Result<JobId, StoreError> {
    let log_path = job.log_path.as_deref().map(path_text).transpose()?;
    conn.prepare_cached(
        "INSERT INTO jobs (project, job_name, pipeline_id, status, status_json, created_at,
             log_path, platform, channel, user_id, user_name, input, reply_target, job_when,
             resource_group)
         VALUES (:project, :job_name, :pipeline_id, :status, :status_json, :created_at,
             :log_path, :platform, :channel, :user_id, :user_name, :input, :reply_target, :when,
             :resource_group)",
    )?
    .execute(named_params! {
        ":project": job.project.as_str(),
        ":job_name": job.job_name.as_str(),
        ":pipeline_id": job.pipeline_id.and_then(sql_id),
        ":status": job.status.name(),
        ":status_json": to_json("a job status", &job.status)?,
        ":created_at": to_ms(job.created_at),
        ":log_path": log_path,
        ":platform": job.reply_target.platform.as_str(),
        ":channel": job.reply_target.channel.as_str(),
        ":user_id": job.reply_target.user.as_str(),
        ":user_name": job.user_name,
        ":input": job.input,
        ":reply_target": to_json("a reply target", &job.reply_target)?,
        ":when": job.when,
        ":resource_group": job.resource_group,
    })?;
    Ok(JobId(api_id(conn.last_insert_rowid())?))
}

/// Columns of a job row, in the order [`job_from_row`] reads them by name.
const JOB_COLUMNS: &str = "id, project, job_name, COALESCE(pipeline_id, id) AS pipeline_id,
    status_json, created_at, started_at, finished_at, exit_code, duration_ms, log_path,
    platform, channel, user_id, user_name, input, reply_target, job_when, resource_group, pgid,
    canceled_by, response_url_uses";

fn job_from_row(row: &Row<'_>) -> Result<JobRecord, StoreError> {
    let status: String = row.get("status_json")?;
    let target: String = row.get("reply_target")?;
    let uses: i64 = row.get("response_url_uses")?;
    Ok(JobRecord {
        id: JobId(api_id(row.get("id")?)?),
        project: row.get::<_, String>("project")?.into(),
        job_name: row.get::<_, String>("job_name")?.into(),
        pipeline_id: api_id(row.get("pipeline_id")?)?,
        status: from_json("a job status", &status)?,
        created_at: from_ms(row.get("created_at")?),
        started_at: row.get::<_, Option<i64>>("started_at")?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>("finished_at")?.map(from_ms),
        exit_code: row.get("exit_code")?,
        duration: row
            .get::<_, Option<i64>>("duration_ms")?
            .map(|ms| Duration::from_millis(ms.unsigned_abs())),
        log_path: row.get::<_, Option<String>>("log_path")?.map(PathBuf::from),
        platform: row.get::<_, String>("platform")?.into(),
        channel: row.get::<_, String>("channel")?.into(),
        user: row.get::<_, String>("user_id")?.into(),
        user_name: row.get("user_name")?,
        input: row.get("input")?,
        reply_target: from_json("a reply target", &target)?,
        when: row.get("job_when")?,
        resource_group: row.get("resource_group")?,
        pgid: row.get("pgid")?,
        canceled_by: row.get("canceled_by")?,
        response_url_uses: u32::try_from(uses).unwrap_or(u32::MAX),
    })
}

pub(crate) fn job(conn: &Connection, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    let Some(id) = sql_id(id.0) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
    let mut rows = stmt.query_and_then([id], job_from_row)?;
    rows.next().transpose()
}

/// The newest `limit` jobs, newest first.
pub(crate) fn recent_jobs(conn: &Connection, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_and_then([limit], job_from_row)?;
    rows.collect()
}

/// The newest `limit` jobs of `project` asked for in one channel, newest first; only `user`'s
/// when given (chat's `jobs` and `status` without an id). Served by the `jobs_channel` index.
pub(crate) fn channel_jobs(
    conn: &Connection,
    (project, platform, channel): (&str, &str, &str),
    user: Option<&str>,
    limit: usize,
) -> Result<Vec<JobRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE project = ?1 AND platform = ?2 AND channel = ?3 AND (?4 IS NULL OR user_id = ?4)
         ORDER BY id DESC LIMIT ?5"
    ))?;
    let rows = stmt.query_and_then(
        params![project, platform, channel, user, limit],
        job_from_row,
    )?;
    rows.collect()
}

/// Every job whose status name is one of `names`, oldest first.
pub(crate) fn jobs_with_status(
    conn: &Connection,
    names: &[String],
) -> Result<Vec<JobRecord>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; names.len()].join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({placeholders}) ORDER BY id"
    ))?;
    let rows = stmt.query_and_then(params_from_iter(names), job_from_row)?;
    rows.collect()
}

pub(crate) fn update_job(
    conn: &Connection,
    id: JobId,
    update: &JobUpdate,
) -> Result<(), StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Err(StoreError::UnknownJob(id));
    };
    let current = conn
        .prepare_cached("SELECT status_json, reply_target FROM jobs WHERE id = ?1")?
        .query_row([key], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    let Some((status_json, target_json)) = current else {
        return Err(StoreError::UnknownJob(id));
    };
    if update.status.is_some() {
        let status: JobStatus = from_json("a job status", &status_json)?;
        if status.is_terminal() {
            return Err(StoreError::JobFinished {
                job: id,
                status: status.describe(),
            });
        }
    }
    // Keep the columns in step with the status the update carries.
    let exit_code = update.exit_code.or(match &update.status {
        Some(JobStatus::Succeeded) => Some(0),
        Some(JobStatus::Failed { exit_code }) => *exit_code,
        _ => None,
    });
    let canceled_by = update.canceled_by.clone().or(match &update.status {
        Some(JobStatus::Canceled { by }) => by.clone(),
        _ => None,
    });
    let reset_uses = match &update.reply_target {
        Some(new) => {
            let old: ReplyTarget = from_json("a reply target", &target_json)?;
            old.response_url != new.response_url
        }
        None => false,
    };
    conn.prepare_cached(
        "UPDATE jobs SET
             status = COALESCE(:status, status),
             status_json = COALESCE(:status_json, status_json),
             started_at = COALESCE(:started_at, started_at),
             finished_at = COALESCE(:finished_at, finished_at),
             exit_code = COALESCE(:exit_code, exit_code),
             duration_ms = COALESCE(:duration_ms, duration_ms),
             log_path = COALESCE(:log_path, log_path),
             pgid = COALESCE(:pgid, pgid),
             canceled_by = COALESCE(:canceled_by, canceled_by),
             reply_target = COALESCE(:reply_target, reply_target),
             response_url_uses = CASE WHEN :reset_uses THEN 0 ELSE response_url_uses END
         WHERE id = :id",
    )?
    .execute(named_params! {
        ":id": key,
        ":status": update.status.as_ref().map(JobStatus::name),
        ":status_json": update.status.as_ref().map(|s| to_json("a job status", s)).transpose()?,
        ":started_at": update.started_at.map(to_ms),
        ":finished_at": update.finished_at.map(to_ms),
        ":exit_code": exit_code,
        ":duration_ms": update.duration.map(duration_ms),
        ":log_path": update.log_path.as_deref().map(path_text).transpose()?,
        ":pgid": update.pgid,
        ":canceled_by": canceled_by,
        ":reply_target": update
            .reply_target
            .as_ref()
            .map(|t| to_json("a reply target", t))
            .transpose()?,
        ":reset_uses": reset_uses,
    })?;
    Ok(())
}

/// [`update_job`] if the job's status name is still `expected`; whether it was applied.
pub(crate) fn update_job_if(
    conn: &Connection,
    id: JobId,
    expected: &str,
    update: &JobUpdate,
) -> Result<bool, StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Ok(false);
    };
    let current: Option<String> = conn
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    if current.as_deref() != Some(expected) {
        return Ok(false);
    }
    update_job(conn, id, update)?;
    Ok(true)
}

pub(crate) fn expire_manual_jobs(
    conn: &Connection,
    created_before: SystemTime,
    at: SystemTime,
) -> Result<usize, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET status = 'expired', status_json = ?1, finished_at = ?2
             WHERE status = 'manual' AND created_at < ?3",
        )?
        .execute(params![
            to_json("a job status", &JobStatus::Expired)?,
            to_ms(at),
            to_ms(created_before)
        ])?;
    Ok(changed)
}

/// Counts one post through the job's `response_url` if fewer than `budget` were made; returns
/// the number of this use (1-based), or `None` when the budget is spent.
pub(crate) fn use_response_url(
    conn: &Connection,
    id: JobId,
    budget: u32,
) -> Result<Option<u32>, StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Err(StoreError::UnknownJob(id));
    };
    let used = conn
        .prepare_cached(
            "UPDATE jobs SET response_url_uses = response_url_uses + 1
             WHERE id = ?1 AND response_url_uses < ?2
             RETURNING response_url_uses",
        )?
        .query_row(params![key, budget], |row| row.get::<_, i64>(0))
        .optional()?;
    match used {
        Some(n) => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        None => {
            let exists = conn
                .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")?
                .query_row([key], |_| Ok(()))
                .optional()?;
            match exists {
                Some(()) => Ok(None),
                None => Err(StoreError::UnknownJob(id)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outbox

pub(crate) fn enqueue_reply(
    conn: &Connection,
    job: Option<JobId>,
    target: &ReplyTarget,
    reply: &Reply,
    at: SystemTime,
) -> Result<OutboxId, StoreError> {
    let key = match job {
        Some(j) => Some(sql_id(j.0).ok_or(StoreError::UnknownJob(j))?),
        None => None,
    };
    let result = conn
        .prepare_cached(
            "INSERT INTO outbox (job_id, created_at, platform, target, reply, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?2)",
        )?
        .execute(params![
            key,
            to_ms(at),
            target.platform.as_str(),
            to_json("a reply target", target)?,
            to_json("a reply", reply)?,
        ]);
    match result {
        Ok(_) => Ok(OutboxId(api_id(conn.last_insert_rowid())?)),
        // The only foreign key is `job_id`: say which job, not "FOREIGN KEY constraint failed".
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(job.map_or(
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, None)),
                StoreError::UnknownJob,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Enqueues a reply already claimed for `lease` by the caller, who delivers it right away
/// (saving a claim round trip) — unless an older reply about the same job is still pending:
/// then it is enqueued due now, to go out after that one, and `false` says "not yours".
pub(crate) fn enqueue_reply_claimed(
    conn: &Connection,
    job: Option<JobId>,
    target: &ReplyTarget,
    reply: &Reply,
    at: SystemTime,
    lease: Duration,
) -> Result<(OutboxId, bool), StoreError> {
    let waits_its_turn: bool = match job.and_then(|j| sql_id(j.0)) {
        Some(key) => conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM outbox WHERE job_id = ?1 AND state = 'pending')",
            )?
            .query_row([key], |row| row.get(0))?,
        None => false,
    };
    let id = enqueue_reply(conn, job, target, reply, at)?;
    if !waits_its_turn {
        if let Some(key) = sql_id(id.0) {
            let until = at.checked_add(lease).unwrap_or(at);
            conn.prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1")?
                .execute(params![key, to_ms(until)])?;
        }
    }
    Ok((id, !waits_its_turn))
}

const OUTBOX_COLUMNS: &str = "id, job_id, created_at, target, reply, state, attempts,
    next_attempt_at, last_error, settled_at, via";

fn outbox_from_row(row: &Row<'_>) -> Result<OutboxItem, StoreError> {
    let target: String = row.get("target")?;
    let reply: String = row.get("reply")?;
    let state: String = row.get("state")?;
    let via: Option<String> = row.get("via")?;
    let attempts: i64 = row.get("attempts")?;
    Ok(OutboxItem {
        id: OutboxId(api_id(row.get("id")?)?),
        job: row
            .get::<_, Option<i64>>("job_id")?
            .map(api_id)
            .transpose()?
            .map(JobId),
        created_at: from_ms(row.get("created_at")?),
        target: from_json("a reply target", &target)?,
        reply: from_json("a reply", &reply)?,
        state: OutboxState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown outbox state `{state}`")))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: from_ms(row.get("next_attempt_at")?),
        last_error: row.get("last_error")?,
        settled_at: row.get::<_, Option<i64>>("settled_at")?.map(from_ms),
        via: match via {
            Some(name) => Some(
                parse_via(&name)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery via `{name}`")))?,
            ),
            None => None,
        },
    })
}

pub(crate) fn reply(conn: &Connection, id: OutboxId) -> Result<Option<OutboxItem>, StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"
    ))?;
    let mut rows = stmt.query_and_then([key], outbox_from_row)?;
    rows.next().transpose()
}

/// Takes up to `limit` pending replies due at `now` (of `platform`, or of every platform), oldest
/// due first, and claims them until `now + lease`: a second call does not return them again
/// while a deliverer works on them, and if chatops dies mid-delivery they come due again when
/// the claim runs out.
///
/// Replies about one job go out in the order they were enqueued: a reply is not due while an
/// older reply about the same job is still pending (so "finished" never overtakes "started"
/// that is waiting for a retry). Replies about no job are independent.
pub(crate) fn claim_due_replies(
    conn: &Connection,
    now: SystemTime,
    lease: Duration,
    platform: Option<&PlatformId>,
    limit: usize,
) -> Result<Vec<OutboxItem>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let now_ms = to_ms(now);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox AS o
         WHERE o.state = 'pending' AND o.next_attempt_at <= :now
           AND (:platform IS NULL OR o.platform = :platform)
           AND (o.job_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM outbox AS e
               WHERE e.job_id = o.job_id AND e.state = 'pending' AND e.id < o.id))
         ORDER BY o.next_attempt_at, o.id
         LIMIT :limit"
    ))?;
    let items: Vec<OutboxItem> = stmt
        .query_and_then(
            named_params! {
                ":now": now_ms,
                ":platform": platform.map(|p| p.as_str()),
                ":limit": limit,
            },
            outbox_from_row,
        )?
        .collect::<Result<_, _>>()?;
    let until = now.checked_add(lease).unwrap_or(now);
    let mut claim = conn.prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
    let mut claimed = Vec::with_capacity(items.len());
    for mut item in items {
        if let Some(key) = sql_id(item.id.0) {
            claim.execute(params![key, to_ms(until)])?;
        }
        item.next_attempt_at = from_ms(to_ms(until));
        claimed.push(item);
    }
    Ok(claimed)
}

/// The earliest time a pending reply (of `platform`, or of any) is due, to sleep until then.
pub(crate) fn next_reply_due(
    conn: &Connection,
    platform: Option<&PlatformId>,
) -> Result<Option<SystemTime>, StoreError> {
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM outbox
             WHERE state = 'pending' AND (?1 IS NULL OR platform = ?1)",
        )?
        .query_row([platform.map(|p| p.as_str())], |row| row.get(0))?;
    Ok(next.map(from_ms))
}

pub(crate) fn reply_attempted(
    conn: &Connection,
    id: OutboxId,
    outcome: &AttemptOutcome,
) -> Result<(), StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Err(StoreError::ReplyNotPending(id));
    };
    let changed = match outcome {
        AttemptOutcome::Delivered { via, at } => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,
                     settled_at = ?2, via = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![key, to_ms(*at), via_name(*via)])?,
        AttemptOutcome::RetryAt { when, error } => conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![key, to_ms(*when), error])?,
        AttemptOutcome::GaveUp { at, error } => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1,
                     settled_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![key, to_ms(*at), error])?,
    };
    if changed == 0 {
        return Err(StoreError::ReplyNotPending(id));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Command-line requests

pub(crate) fn submit_cli_request(
    conn: &Connection,
    request: &NewCliRequest,
) -> Result<CliRequestId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO cli_requests (created_at, pid, slash_command, text, user_id, user_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        to_ms(request.created_at),
        request.pid,
        request.slash_command,
        request.text,
        request.user.as_str(),
        request.user_name
    ])?;
    Ok(CliRequestId(api_id(conn.last_insert_rowid())?))
}

const CLI_COLUMNS: &str =
    "id, created_at, pid, slash_command, text, user_id, user_name, state, ack, job_id, reply";

fn cli_from_row(row: &Row<'_>) -> Result<CliRequest, StoreError> {
    Ok(CliRequest {
        id: CliRequestId(api_id(row.get("id")?)?),
        request: NewCliRequest {
            created_at: from_ms(row.get("created_at")?),
            pid: row.get::<_, Option<u32>>("pid")?.unwrap_or(0),
            slash_command: row.get("slash_command")?,
            text: row.get("text")?,
            user: row.get::<_, String>("user_id")?.into(),
            user_name: row.get("user_name")?,
        },
        ack: row.get("ack")?,
        job: row
            .get::<_, Option<i64>>("job_id")?
            .map(api_id)
            .transpose()?
            .map(JobId),
        answered: row.get::<_, String>("state")? == "answered",
        reply: row.get("reply")?,
    })
}

pub(crate) fn take_cli_requests(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<CliRequest>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let taken: Vec<CliRequest> = conn
        .prepare_cached(&format!(
            "SELECT {CLI_COLUMNS} FROM cli_requests WHERE state = 'pending' ORDER BY id LIMIT ?1"
        ))?
        .query_and_then([limit], cli_from_row)?
        .collect::<Result<_, _>>()?;
    let mut take = conn.prepare_cached("UPDATE cli_requests SET state = 'taken' WHERE id = ?1")?;
    for request in &taken {
        if let Some(key) = sql_id(request.id.0) {
            take.execute([key])?;
        }
    }
    Ok(taken)
}

pub(crate) fn answer_cli_request(
    conn: &Connection,
    id: CliRequestId,
    ack: &str,
    job: Option<JobId>,
    at: SystemTime,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE cli_requests SET state = 'answered', ack = ?2, job_id = ?3, answered_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![
        sql_id(id.0),
        ack,
        job.and_then(|j| sql_id(j.0)),
        to_ms(at)
    ])?;
    Ok(())
}

pub(crate) fn cli_reply(
    conn: &Connection,
    id: CliRequestId,
    reply: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE cli_requests SET reply = ?2 WHERE id = ?1")?
        .execute(params![sql_id(id.0), reply])?;
    Ok(())
}

pub(crate) fn cli_request(
    conn: &Connection,
    id: CliRequestId,
) -> Result<Option<CliRequest>, StoreError> {
    let Some(key) = sql_id(id.0) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLI_COLUMNS} FROM cli_requests WHERE id = ?1"
    ))?;
    let mut rows = stmt.query_and_then([key], cli_from_row)?;
    rows.next().transpose()
}
