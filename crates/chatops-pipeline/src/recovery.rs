//! What a restart does about the previous run. A server that crashed or was `kill -9`ed left
//! jobs marked running (or queued) in the store and, possibly, their process groups still
//! running. On start, before taking commands:
//! - each such job's processes are killed: every process whose environment carries the job's
//!   `CHATOPS_JOB=<data dir>#<id>` marker, with its process group. The marker, not a recorded
//!   process-group id, decides: a recycled id must never take an unrelated process down, and
//!   a job that crashed before its group id reached the store is still found;
//! - the job is marked interrupted, and its user is told, with the end of its log;
//! - jobs that run elsewhere (on GitLab runners: [`chatops_exec::Executor::resume`]) are
//!   followed again instead: their runners go on and their replies come when they end;
//! - manual jobs that wait are left alone (they live in the store only): `play ID` still
//!   starts them.
//!
//! Replies still in the outbox are sent by the outbox lanes, which start right after.

use crate::joblog;
use crate::messages;
use crate::outbox;
use crate::pipeline::Shared;
use chatops_core::{JobId, JobStatus, OutputBlock};
use chatops_store::{JobRecord, JobUpdate};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// How much of an interrupted job's log its reply shows.
const TAIL_BYTES: usize = 4096;

pub(crate) async fn recover(shared: &Arc<Shared>) {
    let mut stale = match shared.store.jobs_with_status(&["running", "queued"]).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %e, "recovery: cannot read the store");
            return;
        }
    };
    if let Some(runner) = &shared.executors.runner {
        let running: Vec<(JobId, std::path::PathBuf)> = stale
            .iter()
            .map(|j| (j.id, log_path_of(shared, j)))
            .collect();
        for resumed in runner.resume(running, Arc::clone(&shared.masked)).await {
            let Some(i) = stale.iter().position(|j| j.id == resumed.job_id) else {
                continue;
            };
            let job = stale.swap_remove(i);
            actix::spawn(finish_resumed(shared.clone(), job, resumed));
        }
    }
    let markers: Vec<String> = stale
        .iter()
        .map(|j| job_marker(&shared.settings.data_dir, j.id))
        .collect();
    let killed = kill_marked_processes(&markers);
    for job in stale {
        let killed = killed
            .get(&job_marker(&shared.settings.data_dir, job.id))
            .copied()
            .unwrap_or(0);
        tracing::warn!(job = %job.id, name = %job.job_name, killed, "job interrupted by the restart");
        let reply = interrupted_reply(shared, &job);
        end_with_reply(shared, &job, JobStatus::Interrupted, reply).await;
    }
}

/// Records the end of a job a restart found, then queues its reply (the store first, so
/// `chatops jobs` never shows a job running after its reply went out).
async fn end_with_reply(
    shared: &Arc<Shared>,
    job: &JobRecord,
    status: JobStatus,
    reply: chatops_core::Reply,
) {
    let now = SystemTime::now();
    let ran_for = job
        .started_at
        .and_then(|s| now.duration_since(s).ok())
        .unwrap_or_default();
    let update = JobUpdate::finished(status, now, ran_for);
    if let Err(e) = shared.store.update_job(job.id, update).await {
        tracing::error!(job = %job.id, error = %e, "recovery: cannot record the job's end");
        return;
    }
    outbox::send(
        shared.clone(),
        Some(job.id),
        job.reply_target.clone(),
        reply,
    )
    .await;
}

/// Waits for a job an executor took up again after the restart, then records its end and
/// replies, as its watcher would have (without live progress: the status message of the run
/// before the restart stays as it was).
async fn finish_resumed(shared: Arc<Shared>, job: JobRecord, resumed: chatops_exec::Resumed) {
    let result = resumed.done.await;
    let ran_for = job
        .started_at
        .and_then(|s| SystemTime::now().duration_since(s).ok())
        .unwrap_or(result.duration);
    shared.metrics.emit(crate::metrics::JobFinished {
        status: &result.status,
        duration: Some(ran_for),
    });
    tracing::info!(job = %job.id, status = result.status.name(), "job on a runner finished after the restart");
    let job_ref = crate::pipeline::job_ref_of(&shared, &job);
    let reply = messages::finished(&job_ref, &result.status, Some(ran_for), result.output);
    end_with_reply(&shared, &job, result.status, reply).await;
}

fn log_path_of(shared: &Shared, job: &JobRecord) -> std::path::PathBuf {
    job.log_path
        .clone()
        .unwrap_or_else(|| shared.settings.log_path(job.id))
}

fn interrupted_reply(shared: &Shared, job: &JobRecord) -> chatops_core::Reply {
    let job_ref = crate::pipeline::job_ref_of(shared, job);
    let log = log_path_of(shared, job);
    let tail = joblog::read_tail(&log, TAIL_BYTES, &shared.masked).unwrap_or_default();
    messages::finished(
        &job_ref,
        &JobStatus::Interrupted,
        None,
        OutputBlock {
            text: tail.text,
            omitted_bytes: tail.skipped,
        },
    )
}

/// The value of `CHATOPS_JOB` for a job of the server whose data lives in `data_dir`.
pub fn job_marker(data_dir: &Path, id: JobId) -> String {
    format!("{}#{id}", data_dir.display())
}

/// Kills every process whose environment holds `CHATOPS_JOB=<marker>` for one of `markers`,
/// with its process group. Returns how many processes each marker had.
fn kill_marked_processes(markers: &[String]) -> HashMap<String, usize> {
    let mut found: HashMap<String, usize> = HashMap::new();
    if markers.is_empty() {
        return found;
    }
    let wanted: Vec<Vec<u8>> = markers
        .iter()
        .map(|m| format!("CHATOPS_JOB={m}").into_bytes())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut groups = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let Some(i) = environ
            .split(|b| *b == 0)
            .find_map(|kv| wanted.iter().position(|w| w.as_slice() == kv))
        else {
            continue;
        };
        *found.entry(markers[i].clone()).or_default() += 1;
        if let Some(pgid) = process_group(pid) {
            groups.push(pgid);
        }
        // SAFETY: kill(2) on a pid we just identified; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    groups.sort_unstable();
    groups.dedup();
    for pgid in groups {
        // Refuses group ids <= 1 and chatops' own group.
        chatops_exec::kill_process_group(pgid);
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
    fn finds_and_kills_only_marked_processes() {
        use std::os::unix::process::CommandExt;
        let marker = job_marker(Path::new("/tmp/recovery-test-data"), JobId(4242));
        let other = job_marker(Path::new("/tmp/other-data"), JobId(4242));
        let spawn = |m: &str| {
            std::process::Command::new("sleep")
                .arg("30")
                .env("CHATOPS_JOB", m)
                .process_group(0)
                .spawn()
                .expect("spawn sleep")
        };
        let mut ours = spawn(&marker);
        let mut theirs = spawn(&other);
        let found = kill_marked_processes(std::slice::from_ref(&marker));
        assert_eq!(found.get(&marker), Some(&1));
        let status = ours.wait().expect("wait");
        assert!(!status.success(), "killed");
        assert!(
            theirs.try_wait().expect("try_wait").is_none(),
            "another server's job lives"
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
    }
}
