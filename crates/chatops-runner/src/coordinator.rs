//! [`Coordinator`]: the table of runner jobs and their life, and [`RunnerJobHandle`].
//!
//! A job moves `pending` (queued) → `offered` (a runner got it in a `201`) → `running` (the
//! runner's first PUT or PATCH acknowledged it) → `finished`, with `canceling` between
//! `running` and `finished` for runners that cancel gracefully. Each change is written to the
//! store (`runner_jobs`) so a restarted chatops can [`Coordinator::resume`].
//!
//! One `std::sync::Mutex` guards the table: every holder does a quick state change (plus, for
//! trace PATCHes, one file write of at most a patch) and never awaits while holding it. A
//! background sweeper (one tokio task, holding only a `Weak`, so it ends with the coordinator)
//! applies the timers: ack timeout, runner lost, cancel grace, job timeout.

use crate::token;
use crate::{RunnerConfig, RunnerError, RunnerJobSpec, RunnerOutcome, RunnerToken, Source};
use chatops_store::{RunnerJobRow, Store, StoreError};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// The most trace bytes a job may send; past it the job is failed (`trace_size_exceeded`).
pub const TRACE_LIMIT: u64 = 16 * 1024 * 1024;

/// How long a finished job stays in memory, so its runner's late PUTs and PATCHes get a
/// `403` + `Job-Status` instead of an unknown-job `403` (and handles still read its trace).
const FINISHED_KEEP: Duration = Duration::from_secs(3600);

/// The coordinator: cloneable (an `Arc` inside); every clone is the same job table.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RunnerConfig,
    store: Store,
    table: Mutex<Table>,
    /// The queue version: bumped whenever a job becomes pending. Long-polling `jobs/request`s
    /// wait for it to change; runners echo it as `last_update`.
    pub(crate) version: watch::Sender<u64>,
    sweeper: AtomicBool,
}

#[derive(Default)]
pub(crate) struct Table {
    jobs: BTreeMap<u64, Entry>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Offered,
    Running,
    Canceling,
    /// Over; the `Job-Status` runners get from now on (`success`, `failed`, `canceled`).
    Finished(&'static str),
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Offered => "offered",
            Phase::Running => "running",
            Phase::Canceling => "canceling",
            Phase::Finished(_) => "finished",
        }
    }

    /// The `Job-Status` header value runners get.
    pub(crate) fn job_status(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Offered | Phase::Running => "running",
            Phase::Canceling => "canceling",
            Phase::Finished(status) => status,
        }
    }
}

pub(crate) struct Entry {
    pub(crate) spec: Arc<RunnerJobSpec>,
    spec_json: String,
    pub(crate) phase: Phase,
    token_hash: Option<String>,
    runner: Option<String>,
    attempt: u32,
    /// The runner advertised `cancel_gracefully`.
    graceful: bool,
    created: SystemTime,
    deadline: Instant,
    /// Offered at (offered), last PUT/PATCH (running, canceling), finished at (finished).
    since: Instant,
    cancel_at: Option<Instant>,
    timed_out: bool,
    pub(crate) trace_len: u64,
    /// A `412` was answered once for a trace checksum mismatch.
    checksum_retried: bool,
    done: watch::Sender<Option<RunnerOutcome>>,
}

/// Why a job endpoint refuses a request: `403` + `Job-Status`.
#[derive(Debug)]
pub(crate) struct Forbidden {
    pub(crate) job_status: &'static str,
    pub(crate) why: &'static str,
}

/// What a trace PATCH did.
pub(crate) enum Patched {
    /// Appended: the new length and the job's status.
    Appended { len: u64, job_status: &'static str },
    /// `start` is not the stored length: the stored length.
    Mismatch { len: u64 },
}

/// What a job PUT did.
pub(crate) enum Updated {
    /// `200` + this `Job-Status`.
    Ok(&'static str),
    /// `412`: the runner's checksum or size does not match the stored trace (once).
    TraceMismatch,
    /// `400`: not a state runners send.
    BadState,
}

/// A runner's final report.
pub(crate) struct Report<'a> {
    pub(crate) state: &'a str,
    pub(crate) failure_reason: Option<String>,
    pub(crate) exit_code: Option<i32>,
    pub(crate) checksum: Option<String>,
    pub(crate) bytesize: Option<u64>,
}

/// The executor's handle on one runner job. Cheap to clone.
#[derive(Clone)]
pub struct RunnerJobHandle {
    inner: Arc<Inner>,
    id: u64,
    done: watch::Receiver<Option<RunnerOutcome>>,
}

impl std::fmt::Debug for RunnerJobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerJobHandle")
            .field("job_id", &self.id)
            .finish()
    }
}

impl RunnerJobHandle {
    /// The job's id.
    pub fn job_id(&self) -> u64 {
        self.id
    }

    /// Cancels the job: a queued job ends at once; a runner that cancels gracefully gets
    /// `Job-Status: canceling` (its `after_script` runs) and is canceled hard after
    /// `cancel_grace`; other runners get `Job-Status: canceled` and the job ends at once.
    /// Canceling a finished job does nothing.
    pub fn cancel(&self) {
        self.inner.cancel(self.id, false);
    }

    /// The job as submitted (`None` once the coordinator forgot it).
    pub fn spec(&self) -> Option<Arc<RunnerJobSpec>> {
        self.inner
            .lock()
            .jobs
            .get(&self.id)
            .map(|e| Arc::clone(&e.spec))
    }

    /// Trace bytes stored so far (the log file's length).
    pub fn trace_len(&self) -> u64 {
        self.inner
            .lock()
            .jobs
            .get(&self.id)
            .map_or(0, |e| e.trace_len)
    }

    /// The name of the runner token whose runner holds (or held) the job.
    pub fn runner(&self) -> Option<String> {
        self.inner
            .lock()
            .jobs
            .get(&self.id)
            .and_then(|e| e.runner.clone())
    }

    /// Waits for the job's end and returns it (at once when it is over).
    pub async fn wait(&self) -> RunnerOutcome {
        let mut done = self.done.clone();
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            // The coordinator is gone (shut down) with the job unfinished.
            Err(_) => None,
        };
        outcome.unwrap_or(RunnerOutcome::Lost { last_seen_secs: 0 })
    }
}

impl Coordinator {
    /// A coordinator over `store` (which keeps the `runner_jobs` table). Its timers start with
    /// the first [`Coordinator::configure`], [`Coordinator::submit`] or [`Coordinator::resume`]
    /// inside a tokio runtime.
    pub fn new(mut config: RunnerConfig, store: Store) -> Coordinator {
        config.long_poll = config.long_poll.min(crate::MAX_LONG_POLL);
        let (version, _) = watch::channel(1);
        Coordinator {
            inner: Arc::new(Inner {
                config,
                store,
                table: Mutex::new(Table::default()),
                version,
                sweeper: AtomicBool::new(false),
            }),
        }
    }

    /// Mounts the runner API (`/api/v4/...`) and the git remote (`/git/...`) on an actix-web
    /// app: `App::new().configure(|cfg| coordinator.configure(cfg))`.
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        self.inner.start_sweeper();
        crate::api::configure(self.clone(), cfg);
        crate::git::configure(self.clone(), cfg);
    }

    /// Queues a job for runners and wakes waiting `jobs/request`s.
    pub fn submit(&self, spec: RunnerJobSpec) -> Result<RunnerJobHandle, RunnerError> {
        self.inner.start_sweeper();
        let id = spec.job_id;
        let spec_json =
            serde_json::to_string(&spec).map_err(|source| RunnerError::Spec { id, source })?;
        let now = Instant::now();
        let mut table = self.inner.lock();
        if table.jobs.contains_key(&id) {
            return Err(RunnerError::Duplicate(id));
        }
        let (done, _) = watch::channel(None);
        let entry = Entry {
            deadline: now + spec.timeout,
            spec: Arc::new(spec),
            spec_json,
            phase: Phase::Pending,
            token_hash: None,
            runner: None,
            attempt: 0,
            graceful: false,
            created: SystemTime::now(),
            since: now,
            cancel_at: None,
            timed_out: false,
            trace_len: 0,
            checksum_retried: false,
            done,
        };
        self.inner.persist(id, &entry);
        let handle = self.inner.handle(id, &entry);
        table.jobs.insert(id, entry);
        drop(table);
        self.inner.version.send_modify(|v| *v += 1);
        tracing::info!(job = id, "runner job queued");
        Ok(handle)
    }

    /// Loads the jobs a previous chatops left queued, offered or running on runners and
    /// returns a handle for every unfinished job (those already known included). Their
    /// runners' PUTs and PATCHes with the same job tokens are accepted; the trace continues
    /// at the log file's length. Timers restart from now.
    pub async fn resume(&self) -> Result<Vec<RunnerJobHandle>, RunnerError> {
        self.inner.start_sweeper();
        let rows = self.inner.store.open_runner_jobs().await?;
        let now = Instant::now();
        let mut table = self.inner.lock();
        let mut queued = false;
        for row in rows {
            if table.jobs.contains_key(&row.id) {
                continue;
            }
            let spec: RunnerJobSpec = serde_json::from_str(&row.spec)
                .map_err(|source| RunnerError::Spec { id: row.id, source })?;
            let phase = match row.state.as_str() {
                "offered" => Phase::Offered,
                "running" => Phase::Running,
                "canceling" => Phase::Canceling,
                _ => Phase::Pending,
            };
            queued |= phase == Phase::Pending;
            let elapsed = SystemTime::now()
                .duration_since(row.created_at)
                .unwrap_or_default();
            let trace_len = std::fs::metadata(&spec.log_path).map_or(0, |m| m.len());
            let (done, _) = watch::channel(None);
            let entry = Entry {
                deadline: now + spec.timeout.saturating_sub(elapsed),
                spec: Arc::new(spec),
                spec_json: row.spec,
                phase,
                token_hash: row.token_hash,
                runner: row.runner,
                attempt: row.attempt,
                graceful: row.graceful,
                created: row.created_at,
                since: now,
                cancel_at: (phase == Phase::Canceling).then_some(now),
                timed_out: false,
                trace_len,
                checksum_retried: false,
                done,
            };
            tracing::info!(job = row.id, state = row.state, "runner job resumed");
            table.jobs.insert(row.id, entry);
        }
        let handles = table
            .jobs
            .iter()
            .filter(|(_, e)| !matches!(e.phase, Phase::Finished(_)))
            .map(|(id, e)| self.inner.handle(*id, e))
            .collect();
        drop(table);
        if queued {
            self.inner.version.send_modify(|v| *v += 1);
        }
        Ok(handles)
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves a consistent table (every change is a few
        // assignments): keep serving.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn handle(self: &Arc<Self>, id: u64, entry: &Entry) -> RunnerJobHandle {
        RunnerJobHandle {
            inner: self.clone(),
            id,
            done: entry.done.subscribe(),
        }
    }

    /// The runner token `token` is, if chatops accepts it (constant-time compares).
    pub(crate) fn runner_token(&self, token: &str) -> Option<(usize, &RunnerToken)> {
        // Every token is compared, so timing says nothing about which one was close.
        let mut found = None;
        for (i, t) in self.config.tokens.iter().enumerate() {
            if token::same(&t.token, token) && found.is_none() {
                found = Some((i, t));
            }
        }
        found
    }

    /// Writes the job's row. The write is queued now (so rows keep their order); it is
    /// awaited in the background and a failure logged: the job goes on in memory either way.
    fn persist(&self, id: u64, entry: &Entry) {
        let row = RunnerJobRow {
            id,
            spec: entry.spec_json.clone(),
            state: entry.phase.name().to_owned(),
            token_hash: entry.token_hash.clone(),
            runner: entry.runner.clone(),
            attempt: entry.attempt,
            graceful: entry.graceful,
            created_at: entry.created,
            updated_at: SystemTime::now(),
        };
        let write = self.store.put_runner_job(row);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = write.await {
                    log_store_error(id, &e);
                }
            });
        }
    }

    /// Offers the oldest pending job `runner` may take: a fresh job token, state `offered`.
    pub(crate) fn offer(
        &self,
        runner: &RunnerToken,
        graceful: bool,
    ) -> Option<(Arc<RunnerJobSpec>, String)> {
        let mut table = self.lock();
        let (id, entry) = table
            .jobs
            .iter_mut()
            .find(|(_, e)| e.phase == Phase::Pending && tags_match(&e.spec.tags, runner))?;
        let job_token = token::new_job_token();
        entry.phase = Phase::Offered;
        entry.token_hash = Some(token::hash(&job_token));
        entry.runner = Some(runner.name.clone());
        entry.attempt += 1;
        entry.graceful = graceful;
        entry.since = Instant::now();
        self.persist(*id, entry);
        tracing::info!(
            job = id,
            runner = runner.name,
            attempt = entry.attempt,
            "runner job offered"
        );
        Some((entry.spec.clone(), job_token))
    }

    /// Checks a job token for job `id`: the entry when it is the job's live token.
    fn authorized<'t>(
        table: &'t mut Table,
        id: u64,
        job_token: Option<&str>,
    ) -> Result<&'t mut Entry, Forbidden> {
        let Some(entry) = table.jobs.get_mut(&id) else {
            return Err(Forbidden {
                job_status: "failed",
                why: "unknown job",
            });
        };
        let valid = match (&entry.token_hash, job_token) {
            (Some(hash), Some(t)) => token::matches(t, hash),
            _ => false,
        };
        if let Phase::Finished(status) = entry.phase {
            return Err(Forbidden {
                job_status: status,
                why: "job is over",
            });
        }
        if !valid {
            return Err(Forbidden {
                job_status: entry.phase.job_status(),
                why: "wrong job token",
            });
        }
        Ok(entry)
    }

    /// A PUT or PATCH from the job's runner: acknowledges an offer, refreshes `last_seen`.
    fn contact(&self, id: u64, entry: &mut Entry) {
        entry.since = Instant::now();
        if entry.phase == Phase::Offered {
            entry.phase = Phase::Running;
            self.persist(id, entry);
            tracing::info!(job = id, runner = ?entry.runner, "runner job started");
        }
    }

    /// Ends a job: final status for runners, outcome for the handle, token revoked.
    fn finish(&self, id: u64, entry: &mut Entry, status: &'static str, outcome: RunnerOutcome) {
        entry.phase = Phase::Finished(status);
        entry.token_hash = None;
        entry.since = Instant::now();
        self.persist(id, entry);
        tracing::info!(job = id, ?outcome, "runner job finished");
        entry.done.send_replace(Some(outcome));
    }

    /// The outcome of a job canceled now.
    fn canceled(entry: &Entry) -> RunnerOutcome {
        if entry.timed_out {
            RunnerOutcome::TimedOut
        } else {
            RunnerOutcome::Canceled
        }
    }

    pub(crate) fn cancel(&self, id: u64, timed_out: bool) {
        let mut table = self.lock();
        let Some(entry) = table.jobs.get_mut(&id) else {
            return;
        };
        match entry.phase {
            Phase::Pending => {
                entry.timed_out = timed_out;
                let outcome = Self::canceled(entry);
                self.finish(id, entry, "canceled", outcome);
            }
            Phase::Offered | Phase::Running => {
                entry.timed_out = timed_out;
                if entry.graceful && entry.phase == Phase::Running {
                    entry.phase = Phase::Canceling;
                    entry.cancel_at = Some(Instant::now());
                    self.persist(id, entry);
                    tracing::info!(job = id, "runner job canceling");
                } else {
                    let outcome = Self::canceled(entry);
                    self.finish(id, entry, "canceled", outcome);
                }
            }
            Phase::Canceling | Phase::Finished(_) => {}
        }
    }

    /// A trace PATCH: `body` at byte `start`.
    pub(crate) fn patch_trace(
        &self,
        id: u64,
        job_token: Option<&str>,
        start: u64,
        body: &[u8],
    ) -> Result<Patched, Forbidden> {
        let mut table = self.lock();
        let entry = Self::authorized(&mut table, id, job_token)?;
        self.contact(id, entry);
        if start != entry.trace_len {
            return Ok(Patched::Mismatch {
                len: entry.trace_len,
            });
        }
        let end = start + body.len() as u64;
        if end > TRACE_LIMIT {
            let outcome = RunnerOutcome::Failed {
                exit_code: None,
                reason: "trace_size_exceeded".into(),
            };
            self.finish(id, entry, "failed", outcome);
            return Err(Forbidden {
                job_status: "failed",
                why: "trace too large",
            });
        }
        if let Err(e) = write_at(&entry.spec.log_path, start, body) {
            // Nothing stored: the runner is told the old length and sends again later.
            tracing::error!(job = id, path = %entry.spec.log_path.display(), error = %e,
                "cannot write the runner job's trace; check the data dir's permissions and free space");
            return Ok(Patched::Mismatch {
                len: entry.trace_len,
            });
        }
        entry.trace_len = end;
        Ok(Patched::Appended {
            len: end,
            job_status: entry.phase.job_status(),
        })
    }

    /// A job PUT: heartbeat (`running`) or final report.
    pub(crate) fn update(
        &self,
        id: u64,
        job_token: Option<&str>,
        report: Report<'_>,
    ) -> Result<Updated, Forbidden> {
        let mut table = self.lock();
        let entry = Self::authorized(&mut table, id, job_token)?;
        self.contact(id, entry);
        match report.state {
            "running" | "pending" => return Ok(Updated::Ok(entry.phase.job_status())),
            "success" | "failed" => {}
            _ => return Ok(Updated::BadState),
        }
        if !entry.checksum_retried && !trace_matches(entry, &report) {
            entry.checksum_retried = true;
            // The runner re-sends its whole trace from 0: start over.
            if let Err(e) = write_at(&entry.spec.log_path, 0, b"") {
                tracing::warn!(job = id, error = %e, "cannot truncate the runner job's trace");
            } else {
                entry.trace_len = 0;
            }
            return Ok(Updated::TraceMismatch);
        }
        let (status, outcome) = if entry.phase == Phase::Canceling {
            ("canceled", Self::canceled(entry))
        } else if report.state == "success" {
            ("success", RunnerOutcome::Succeeded)
        } else {
            let reason = report
                .failure_reason
                .unwrap_or_else(|| "unknown_failure".to_owned());
            let outcome = RunnerOutcome::Failed {
                exit_code: report.exit_code,
                reason,
            };
            ("failed", outcome)
        };
        self.finish(id, entry, status, outcome);
        Ok(Updated::Ok(status))
    }

    /// The repository of a git job of `project` that `job_token` is the live token of.
    pub(crate) fn git_repo(&self, project: &str, job_token: &str) -> Option<PathBuf> {
        let table = self.lock();
        table.jobs.values().find_map(|e| {
            let live = matches!(e.phase, Phase::Offered | Phase::Running | Phase::Canceling);
            let mine = e
                .token_hash
                .as_deref()
                .is_some_and(|h| token::matches(job_token, h));
            match &e.spec.source {
                Source::Git { repo, .. } if live && mine && e.spec.project == project => {
                    Some(repo.clone())
                }
                _ => None,
            }
        })
    }

    fn start_sweeper(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeper.swap(true, Ordering::SeqCst) {
            return;
        }
        let c = &self.config;
        let tick = (c.ack_timeout.min(c.lost_after).min(c.cancel_grace) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let weak: Weak<Inner> = Arc::downgrade(self);
        rt.spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                // Ends when the coordinator is dropped.
                let Some(inner) = weak.upgrade() else { break };
                inner.sweep(Instant::now());
            }
        });
    }

    /// Applies the timers at `now`.
    fn sweep(&self, now: Instant) {
        let expired: Vec<u64> = {
            let table = self.lock();
            table
                .jobs
                .iter()
                .filter(|(_, e)| {
                    !e.timed_out && !matches!(e.phase, Phase::Finished(_)) && now >= e.deadline
                })
                .map(|(id, _)| *id)
                .collect()
        };
        for id in expired {
            tracing::info!(job = id, "runner job timed out");
            self.cancel(id, true);
        }
        let c = &self.config;
        let mut requeued = false;
        let mut table = self.lock();
        let mut forget = Vec::new();
        for (id, entry) in table.jobs.iter_mut() {
            let idle = now.saturating_duration_since(entry.since);
            match entry.phase {
                Phase::Offered if idle >= c.ack_timeout => {
                    if entry.attempt < 2 {
                        tracing::warn!(job = id, runner = ?entry.runner,
                            "runner took no action on the offered job; offering it again");
                        entry.phase = Phase::Pending;
                        entry.token_hash = None;
                        entry.runner = None;
                        self.persist(*id, entry);
                        requeued = true;
                    } else {
                        self.finish(*id, entry, "failed", RunnerOutcome::NotPicked);
                    }
                }
                Phase::Running | Phase::Canceling if idle >= c.lost_after => {
                    let outcome = RunnerOutcome::Lost {
                        last_seen_secs: idle.as_secs(),
                    };
                    self.finish(*id, entry, "failed", outcome);
                }
                Phase::Canceling
                    if entry
                        .cancel_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= c.cancel_grace) =>
                {
                    let outcome = Self::canceled(entry);
                    self.finish(*id, entry, "canceled", outcome);
                }
                Phase::Finished(_) if idle >= FINISHED_KEEP => forget.push(*id),
                _ => {}
            }
        }
        for id in forget {
            table.jobs.remove(&id);
        }
        drop(table);
        if requeued {
            self.version.send_modify(|v| *v += 1);
        }
    }
}

fn log_store_error(id: u64, e: &StoreError) {
    tracing::error!(job = id, error = %e,
        "cannot record the runner job's state; after a restart it may not resume");
}

/// GitLab's rule: a tagged job needs all its tags on the runner; an untagged one a runner
/// that runs untagged jobs.
fn tags_match(job_tags: &[String], runner: &RunnerToken) -> bool {
    if job_tags.is_empty() {
        runner.run_untagged
    } else {
        job_tags.iter().all(|t| runner.tags.contains(t))
    }
}

/// Writes `bytes` at `offset` of `path`, dropping anything stored beyond `offset` first.
fn write_at(path: &std::path::Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Whether the runner's `output` (size and `crc32:%08x` checksum, when sent) describes the
/// stored trace.
fn trace_matches(entry: &Entry, report: &Report<'_>) -> bool {
    if let Some(size) = report.bytesize {
        if size != entry.trace_len {
            return false;
        }
    }
    let Some(checksum) = &report.checksum else {
        return true;
    };
    let Ok(bytes) = std::fs::read(&entry.spec.log_path) else {
        // Nothing stored yet (no trace sent): an empty trace.
        return checksum == &format!("crc32:{:08x}", crc32fast::hash(b""));
    };
    checksum == &format!("crc32:{:08x}", crc32fast::hash(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(tags: &[&str], run_untagged: bool) -> RunnerToken {
        RunnerToken {
            name: "r".into(),
            token: "glrt-x".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            run_untagged,
        }
    }

    #[test]
    fn tags_match_as_gitlab() {
        let tagged = ["linux".to_owned(), "big".to_owned()];
        assert!(tags_match(&tagged, &runner(&["big", "linux", "x"], false)));
        assert!(!tags_match(&tagged, &runner(&["linux"], true)));
        assert!(tags_match(&[], &runner(&["linux"], true)));
        assert!(!tags_match(&[], &runner(&["linux"], false)));
    }
}
