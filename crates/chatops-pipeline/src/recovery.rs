//! What a restart does about the previous run. A server that crashed or was `kill -9`ed left
//! jobs marked running (or queued) in the store and, possibly, their process groups still
//! running. On start, before taking commands:
//! - each such job's processes are killed, but only processes that really are that job's
//!   (their environment says `CI_JOB_ID=<id>` and `CI_PIPELINE_SOURCE=chat`): a recycled
//!   process-group id must never take an unrelated process down;
//! - the job is marked interrupted, and its user is told, with the end of its log;
//! - manual jobs that wait are left alone: `play ID` still starts them.
//!
//! Replies still in the outbox are sent by the outbox lanes, which start right after.

use crate::messages::{self, JobRef};
use crate::outbox;
use crate::pipeline::Shared;
use chatops_core::output::strip_ansi;
use chatops_core::{JobId, JobStatus, OutputBlock};
use chatops_store::{JobRecord, JobUpdate};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// How much of an interrupted job's log its reply shows.
const TAIL_BYTES: u64 = 4096;

pub(crate) async fn recover(shared: &Arc<Shared>) {
    let stale = match shared.store.jobs_with_status(&["running", "queued"]).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %e, "recovery: cannot read the store");
            return;
        }
    };
    for job in stale {
        let killed = kill_job_processes(job.id, job.pgid);
        let now = SystemTime::now();
        let ran_for = job
            .started_at
            .and_then(|s| now.duration_since(s).ok())
            .unwrap_or_default();
        if let Err(e) = shared
            .store
            .update_job(
                job.id,
                JobUpdate::finished(JobStatus::Interrupted, now, ran_for),
            )
            .await
        {
            tracing::error!(job = %job.id, error = %e, "recovery: cannot mark the job interrupted");
            continue;
        }
        tracing::warn!(job = %job.id, name = %job.job_name, killed, "job interrupted by the restart");
        let reply = interrupted_reply(shared, &job);
        outbox::send(
            shared.clone(),
            Some(job.id),
            job.reply_target.clone(),
            reply,
        )
        .await;
    }
}

fn interrupted_reply(shared: &Shared, job: &JobRecord) -> chatops_core::Reply {
    let command = shared
        .settings
        .project(&job.project)
        .map(|p| p.command.clone())
        .unwrap_or_else(|| format!("/{}", job.project));
    let job_ref = JobRef {
        id: job.id,
        project: job.project.to_string(),
        command,
        job: job.job_name.to_string(),
        user: job.user.clone(),
        user_name: job.user_name.clone(),
        link: shared.links.url(job.id),
    };
    let log = job
        .log_path
        .clone()
        .unwrap_or_else(|| shared.settings.log_path(job.id));
    let (text, omitted) = log_tail(&log);
    messages::finished(
        &job_ref,
        &JobStatus::Interrupted,
        None,
        OutputBlock {
            text,
            omitted_bytes: omitted,
        },
    )
}

/// The end of a log, cleaned for a reply.
fn log_tail(path: &Path) -> (String, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let skip = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(skip)).is_err() || f.read_to_end(&mut buf).is_err() {
        return (String::new(), 0);
    }
    (strip_ansi(&String::from_utf8_lossy(&buf)), skip)
}

/// Kills what is left of a job: every process whose process group is `pgid` and whose
/// environment marks it as this job's. Returns how many processes it found.
fn kill_job_processes(id: JobId, pgid: Option<i32>) -> usize {
    let Some(pgid) = pgid.filter(|p| *p > 1) else {
        return 0;
    };
    let marker = format!("CI_JOB_ID={id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut found = 0;
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if process_group(pid) != Some(pgid) {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let is_ours = environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
            && environ
                .split(|b| *b == 0)
                .any(|kv| kv == b"CI_PIPELINE_SOURCE=chat");
        if is_ours {
            found += 1;
        }
    }
    if found > 0 {
        crate::executor::kill_process_group(pgid);
    }
    found
}

/// The process group of `pid`, from `/proc/<pid>/stat` (field 5, after the parenthesised name).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process_group() {
        let me = std::process::id() as i32;
        // SAFETY: getpgrp has no preconditions.
        let pgrp = unsafe { libc::getpgrp() };
        assert_eq!(process_group(me), Some(pgrp));
    }

    #[test]
    fn never_kills_processes_that_are_not_the_job() {
        // Our own group holds no CI_JOB_ID=424242 process: nothing is found, nothing killed.
        // SAFETY: getpgrp has no preconditions.
        let pgrp = unsafe { libc::getpgrp() };
        assert_eq!(kill_job_processes(JobId(424242), Some(pgrp)), 0);
        assert_eq!(kill_job_processes(JobId(1), None), 0);
    }
}
