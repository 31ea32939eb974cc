//! The [`WatcherActor`]: one per job. It waits (manual or queued) until the pipeline says
//! `Start`, prepares the working copy, starts the executor in a spawned future that reports back
//! with messages (`Launched`, `Exited`), can always receive `Cancel`, and when the job ends sends
//! the formatted reply back through the adapter the command came from.
//!
//! Live progress (where the platform can edit messages, `server.live_progress`): when the job
//! starts, a progress task posts a status message and edits it with the end of the (cleaned,
//! masked) log at most every `server.progress_interval`. Edits never reorder: the task makes
//! one edit at a time, a failed progress edit is dropped (a 429's `Retry-After` delays the
//! next), and when the job ends the watcher stops the task, waits for the edit in flight, and
//! only then queues the final edit in the outbox (retried, never lost), so no progress edit
//! can land after it. The full reply goes into the status message's thread where the platform
//! has threads.

use crate::git::{self, Revision};
use crate::joblog::Follower;
use crate::messages::{self, JobRef};
use crate::metrics::{JobFinished, JobStarted};
use crate::outbox;
use crate::pipeline::{predefined_variables, JobEnded, PipelineActor, Shared};
use crate::settings::ProjectSettings;
use actix::prelude::*;
use chatops_core::{ChatAdapter, ChatCommand, JobId, JobStatus, OutputBlock, Retry, StatusMessage};
use chatops_exec::{ExecHandle, ExecResult, ExecSpec, JobUser, Source};
use chatops_store::JobUpdate;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{oneshot, watch};

/// Log lines a status message shows while the job runs (and at its end).
const PROGRESS_LINES: usize = 15;

/// How long a job runs before its status message is posted. A job that ends sooner gets only
/// its reply, as without live progress: no message to post and edit at once for an instant
/// job, and its reply is not held up by a status message it must thread under (the bench's
/// "live progress" figure, issue #11).
const STATUS_AFTER: Duration = Duration::from_secs(1);

/// Cleaned log kept in memory for the status message: enough for [`PROGRESS_LINES`] lines.
const PROGRESS_TAIL_BYTES: usize = 8 * 1024;

/// The longest a final edit waits for a platform's `Retry-After` from a progress edit;
/// a longer one is the outbox's to honour (it retries after the 429 it gets).
const MAX_FINAL_EDIT_WAIT: Duration = Duration::from_secs(30);

/// How long a finished job's live view stays in memory (after that, the store answers).
const VIEW_LINGER: Duration = Duration::from_secs(60);

/// Everything decided about a job when its pipeline was created.
pub struct JobPlan {
    pub id: JobId,
    pub job_ref: JobRef,
    pub project: ProjectSettings,
    pub job: chatops_ci::Job,
    /// The CI file's variables for this job (global, job, rules), already expanded.
    pub file_variables: Vec<(String, String)>,
    pub input: String,
    pub revision: Revision,
    pub command: ChatCommand,
    pub log_path: PathBuf,
    /// `CHATOPS_JOB`: this server's data dir and the job id. A restart finds what a crashed
    /// server left running by it ([`crate::recovery`]), and only that.
    pub marker: String,
}

/// Start the job now (sent by the pipeline when a slot is free).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Start;

/// Stop the job: kill it if it runs, drop it if it waits.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Cancel {
    pub by: Option<String>,
}

/// The executor started the job's shell.
#[derive(Message)]
#[rtype(result = "()")]
struct Launched(ExecHandle);

/// The job ended (or could not start).
#[derive(Message)]
#[rtype(result = "()")]
struct Exited(ExecResult);

pub struct WatcherActor {
    plan: Arc<JobPlan>,
    shared: Arc<Shared>,
    pipeline: Addr<PipelineActor>,
    exec: Option<ExecHandle>,
    started: Option<Instant>,
    /// A cancel that arrived while the working copy was being prepared.
    pending_cancel: Option<Option<String>>,
    finished: bool,
    /// The progress task of a live status message, while the job runs.
    live: Option<Live>,
}

/// A running progress task (see the module doc). It ends when `stop` says so or is dropped
/// (the watcher gone), after the edit in flight, and answers on `done`.
struct Live {
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<LiveEnd>,
}

/// What a progress task leaves for the final edit.
struct LiveEnd {
    /// The status message, when it could be posted.
    message: Option<StatusMessage>,
    /// The platform asked (429 `Retry-After`) for no edit before this.
    not_before: Option<Instant>,
}

impl WatcherActor {
    pub(crate) fn new(
        plan: JobPlan,
        shared: Arc<Shared>,
        pipeline: Addr<PipelineActor>,
    ) -> WatcherActor {
        WatcherActor {
            plan: Arc::new(plan),
            shared,
            pipeline,
            exec: None,
            started: None,
            pending_cancel: None,
            finished: false,
            live: None,
        }
    }

    /// Starts the progress task when live progress is on and the platform can edit messages.
    fn start_live(&mut self) {
        let Some(interval) = self.shared.settings.progress_interval else {
            return;
        };
        let Some(adapter) = self
            .shared
            .adapters
            .get(&self.plan.command.platform)
            .cloned()
        else {
            return;
        };
        if !adapter.capabilities().message_edits {
            return;
        }
        let (stop, stopped) = watch::channel(false);
        let (tell, done) = oneshot::channel();
        let (shared, plan) = (self.shared.clone(), self.plan.clone());
        actix::spawn(async move {
            let end = live_progress(shared, adapter, plan, interval, stopped).await;
            // The watcher may be gone (nobody waits): nothing to tell then.
            let _ = tell.send(end);
        });
        self.live = Some(Live { stop, done });
    }

    fn finish(&mut self, result: ExecResult, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let plan = &self.plan;
        self.shared.metrics.emit(JobFinished {
            status: &result.status,
            duration: self.started.map(|_| result.duration),
        });
        self.shared.update_view(plan.id, |v| {
            v.status = result.status.clone();
            v.finished_at = Some(SystemTime::now());
            v.pgid = None;
        });
        tracing::info!(
            job = %plan.id,
            project = %plan.project.name,
            name = %plan.job.name,
            status = result.status.name(),
            duration_ms = result.duration.as_millis() as u64,
            log_bytes = result.log_bytes,
            "job finished"
        );
        let duration = self.started.map(|_| result.duration);
        let reply = messages::finished(&plan.job_ref, &result.status, duration, result.output);
        // Record the end, then queue the reply: the outbox delivers it (and retries, and
        // survives a restart). The ledger write comes first so `chatops jobs` never shows a
        // job as running after its reply went out.
        let shared = self.shared.clone();
        let (id, target, status) = (
            plan.id,
            plan.command.reply_to.clone(),
            result.status.clone(),
        );
        let log_path = plan.log_path.clone();
        let ran = result.duration;
        // Stop the progress task; its last edit completes before `done` answers.
        let live = self.live.take().map(|live| {
            let _ = live.stop.send(true);
            live.done
        });
        let final_edit = live.as_ref().map(|_| {
            messages::final_status(
                &plan.job_ref,
                &result.status,
                duration,
                reply.output.as_ref().unwrap_or(&OutputBlock::default()),
                PROGRESS_LINES,
            )
        });
        let adapter = self.shared.adapters.get(&plan.command.platform).cloned();
        actix::spawn(async move {
            let update =
                JobUpdate::finished(status, SystemTime::now(), ran).with_log_path(log_path);
            if let Err(e) = shared.store.update_job(id, update).await {
                tracing::error!(job = %id, error = %e, "cannot record the job's end");
            }
            let end = match live {
                Some(done) => done.await.ok(),
                None => None,
            };
            let (
                Some(LiveEnd {
                    message: Some(message),
                    not_before,
                }),
                Some(final_edit),
                Some(adapter),
            ) = (end, final_edit, adapter)
            else {
                outbox::send(shared, Some(id), target, reply).await;
                return;
            };
            // The reply first (what the user waits for), in the status message's thread
            // where the platform has threads.
            let thread = adapter.thread_target(&target, &message);
            outbox::send(
                shared.clone(),
                Some(id),
                thread.unwrap_or(target.clone()),
                reply,
            )
            .await;
            // Then the final edit, after any `Retry-After` a progress edit was given.
            if let Some(wait) = not_before.map(|t| t.saturating_duration_since(Instant::now())) {
                tokio::time::sleep(wait.min(MAX_FINAL_EDIT_WAIT)).await;
            }
            outbox::send(shared, Some(id), message.edit_target(&target), final_edit).await;
        });
        self.pipeline.do_send(JobEnded { id: plan.id });
        // The live view goes once readers had a moment to see the end; the store keeps the
        // job, so a long-running server does not grow with every job it ever ran.
        let (shared, id) = (self.shared.clone(), plan.id);
        actix::spawn(async move {
            tokio::time::sleep(VIEW_LINGER).await;
            shared.jobs.remove(&id);
        });
        let scratch = self.scratch_dir();
        let checkout = self.checkout_dir();
        // Removing a checkout can take a while: not on the actor thread. A folder project
        // with a small script has neither folder: no hop at all.
        let is_git = matches!(plan.revision, Revision::Git { .. });
        if is_git || scratch.exists() {
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(scratch);
                let _ = std::fs::remove_dir_all(checkout);
            });
        }
        ctx.stop();
    }

    /// Where the platform's reply webhook closes (Slack: 30 minutes after the command) and no
    /// bot token can post after it, tells the channel shortly before that the job still runs
    /// and where to follow it, so a long job never ends in silence.
    fn schedule_window_notice(&self, ctx: &mut Context<Self>) {
        let Some(adapter) = self.shared.adapters.get(&self.plan.command.platform) else {
            return;
        };
        let caps = adapter.capabilities();
        let Some(window) = self
            .shared
            .settings
            .response_window
            .or(caps.followup_window)
        else {
            return;
        };
        if caps.bot_api || self.plan.command.reply_to.response_url.is_none() {
            return;
        }
        let age = SystemTime::now()
            .duration_since(self.plan.command.received_at)
            .unwrap_or_default();
        // A minute before the end, or a tenth of a short window.
        let margin = (window / 10).min(Duration::from_secs(60));
        let Some(after) = window.checked_sub(age + margin) else {
            return;
        };
        ctx.run_later(after, move |act, _ctx| {
            if act.finished {
                return;
            }
            let reply = messages::still_running(&act.plan.job_ref, window);
            actix::spawn(outbox::send(
                act.shared.clone(),
                Some(act.plan.id),
                act.plan.command.reply_to.clone(),
                reply,
            ));
        });
    }

    fn scratch_dir(&self) -> PathBuf {
        self.shared
            .settings
            .builds_dir()
            .join(format!("{}.tmp", self.plan.id))
    }

    fn checkout_dir(&self) -> PathBuf {
        self.shared
            .settings
            .builds_dir()
            .join(self.plan.id.to_string())
    }
}

impl Actor for WatcherActor {
    type Context = Context<Self>;
}

impl Handler<Start> for WatcherActor {
    type Result = ();

    fn handle(&mut self, _msg: Start, ctx: &mut Context<Self>) {
        if self.finished || self.started.is_some() {
            return;
        }
        self.started = Some(Instant::now());
        self.shared.metrics.emit(JobStarted);
        self.shared.update_view(self.plan.id, |v| {
            v.status = JobStatus::Running;
            v.started_at = Some(SystemTime::now());
        });
        self.schedule_window_notice(ctx);
        self.start_live();
        let plan = self.plan.clone();
        let checkout = self.checkout_dir();
        let scratch = self.scratch_dir();
        let addr = ctx.address();
        let started = Instant::now();
        // Every project's secrets and the server's own: a job can print more than its
        // project's (issue #9: another project's secrets, the server's tokens).
        let secrets = Arc::clone(&self.shared.masked);
        let executor = self.shared.executors.for_project(&plan.project);
        actix::spawn(async move {
            let executor = match executor {
                Ok(executor) => executor,
                Err(e) => {
                    addr.do_send(Exited(setup_failure(&plan, &e.to_string(), started)));
                    return;
                }
            };
            let checkout = executor.needs_workdir().then_some(checkout);
            let spec = match build_spec(&plan, checkout, scratch, secrets).await {
                Ok(spec) => spec,
                Err(message) => {
                    addr.do_send(Exited(setup_failure(&plan, &message, started)));
                    return;
                }
            };
            match executor.start(spec) {
                Ok((handle, done)) => {
                    addr.do_send(Launched(handle));
                    let result = done.await;
                    addr.do_send(Exited(result));
                }
                Err(e) => {
                    let message = format!("could not start the job's {}: {e}", executor.name());
                    addr.do_send(Exited(setup_failure(&plan, &message, started)));
                }
            }
        });
    }
}

impl Handler<Launched> for WatcherActor {
    type Result = ();

    fn handle(&mut self, msg: Launched, _ctx: &mut Context<Self>) {
        let handle = msg.0;
        let pgid = handle.pgid();
        self.shared.update_view(self.plan.id, |v| v.pgid = pgid);
        // The process group goes to the ledger so that a restart after a crash can find and
        // kill what the job left running.
        let store = self.shared.store.clone();
        let (id, log_path) = (self.plan.id, self.plan.log_path.clone());
        actix::spawn(async move {
            let update = JobUpdate::started(SystemTime::now(), pgid).with_log_path(log_path);
            if let Err(e) = store.update_job(id, update).await {
                tracing::error!(job = %id, error = %e, "cannot record the job's start");
            }
        });
        if let Some(by) = self.pending_cancel.take() {
            handle.cancel(by);
        }
        self.exec = Some(handle);
    }
}

impl Handler<Exited> for WatcherActor {
    type Result = ();

    fn handle(&mut self, msg: Exited, ctx: &mut Context<Self>) {
        self.finish(msg.0, ctx);
    }
}

impl Handler<Cancel> for WatcherActor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        match (&self.exec, self.started) {
            (Some(exec), _) => exec.cancel(msg.by),
            (None, Some(_)) => self.pending_cancel = Some(msg.by),
            (None, None) => {
                // Never started (manual or queued): nothing runs, so it ends here.
                let result = ExecResult {
                    status: JobStatus::Canceled { by: msg.by },
                    output: OutputBlock::default(),
                    duration: Duration::ZERO,
                    log_bytes: 0,
                };
                self.finish(result, ctx);
            }
        }
    }
}

/// The progress task: posts the status message, then edits it with the end of the log while
/// the log changes, one edit at a time, until `stop`.
async fn live_progress(
    shared: Arc<Shared>,
    adapter: Arc<dyn ChatAdapter>,
    plan: Arc<JobPlan>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> LiveEnd {
    let started = Instant::now();
    let quiet = LiveEnd {
        message: None,
        not_before: None,
    };
    tokio::select! {
        // Over (or the watcher gone) within the delay: the reply goes out alone.
        _ = stop.changed() => return quiet,
        _ = tokio::time::sleep(STATUS_AFTER) => {}
    }
    if *stop.borrow() {
        return quiet;
    }
    let target = &plan.command.reply_to;
    let first = messages::progress(&plan.job_ref, started.elapsed(), "");
    let message = match adapter.post_status(target, &first).await {
        Ok(message) => message,
        Err(e) => {
            // Not fatal: the reply comes at the end, as without live progress.
            tracing::warn!(job = %plan.id, error = %e, "cannot post the job's status message; replying at the end only");
            return quiet;
        }
    };
    let mut follower = Some(Follower::new(&shared.masked));
    let mut tail = String::new();
    let mut shown = String::new();
    let mut not_before: Option<Instant> = None;
    loop {
        let wait = not_before
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
            .max(interval);
        tokio::select! {
            // A closed channel (the watcher gone) stops the task too.
            _ = stop.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            break;
        }
        // Reading the log is file I/O: on the blocking pool, not the actor thread.
        let Some(mut f) = follower.take() else { break };
        let path = plan.log_path.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let polled = f.poll(&path, &mut out);
            (f, out, polled)
        })
        .await;
        let Ok((f, out, polled)) = read else { break };
        follower = Some(f);
        if let Err(e) = polled {
            tracing::debug!(job = %plan.id, error = %e, "cannot read the log for progress");
        }
        push_tail(&mut tail, &out);
        let lines = messages::last_lines(&tail, PROGRESS_LINES);
        if lines == shown {
            continue;
        }
        let reply = messages::progress(&plan.job_ref, started.elapsed(), lines);
        match adapter.edit(target, &message, &reply).await {
            Ok(()) => shown = lines.to_owned(),
            Err(e) => {
                // Dropped, not retried: the next edit shows newer lines anyway.
                if let Retry::After(after) = e.retry {
                    not_before = Some(Instant::now() + after);
                }
                tracing::debug!(job = %plan.id, error = %e, "progress edit dropped");
            }
        }
    }
    LiveEnd {
        message: Some(message),
        not_before,
    }
}

/// Appends cleaned log bytes to `tail`, keeping its last [`PROGRESS_TAIL_BYTES`] (from a
/// character boundary).
fn push_tail(tail: &mut String, out: &[u8]) {
    tail.push_str(&String::from_utf8_lossy(out));
    if tail.len() > PROGRESS_TAIL_BYTES * 2 {
        let mut cut = tail.len() - PROGRESS_TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

/// The job's environment (contract §4), later entries winning: the CI file's variables, the
/// project's variables and secrets, then the predefined and chat variables, which a CI file or
/// config cannot override.
pub fn job_environment(plan: &JobPlan, workdir: &std::path::Path) -> Vec<(String, String)> {
    let mut env = plan.file_variables.clone();
    env.extend(plan.project.variables.iter().cloned());
    env.extend(plan.project.secrets.iter().cloned());
    env.extend(predefined_variables(&plan.project, &plan.revision));
    let cmd = &plan.command;
    env.extend([
        ("CHAT_INPUT".to_owned(), plan.input.clone()),
        ("CHAT_CHANNEL".to_owned(), cmd.channel.to_string()),
        ("CHAT_USER_ID".to_owned(), cmd.user.to_string()),
        ("CHAT_PLATFORM".to_owned(), cmd.platform.to_string()),
        ("CI_JOB_ID".to_owned(), plan.id.to_string()),
        ("CI_JOB_NAME".to_owned(), plan.job.name.clone()),
        ("CI_PIPELINE_ID".to_owned(), plan.id.to_string()),
        (
            "CI_PROJECT_DIR".to_owned(),
            workdir.to_string_lossy().into_owned(),
        ),
        ("CHATOPS_JOB".to_owned(), plan.marker.clone()),
    ]);
    env
}

/// Prepares the working copy (a fresh checkout for git, at `checkout`) and the executor's
/// spec. `checkout` is `None` for an executor that needs no working copy here: the spec's
/// `workdir` is empty then.
async fn build_spec(
    plan: &JobPlan,
    checkout: Option<PathBuf>,
    scratch: PathBuf,
    secrets: Arc<[String]>,
) -> Result<ExecSpec, String> {
    // Creating a file allocates an inode, which on a busy ext4 took a sixth of the server's
    // time in the benchmark's profile; done here, on the blocking pool, the executor then only
    // reopens the file, and the actor thread (which also acks commands) never waits on it.
    let log_path = plan.log_path.clone();
    let precreated = tokio::task::spawn_blocking(move || {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::File::create(&log_path).map(drop)
    })
    .await;
    if let Ok(Err(e)) = precreated {
        return Err(format!(
            "could not create the job log {}: {e}",
            plan.log_path.display()
        ));
    }
    let workdir = match (&plan.revision, checkout) {
        (_, None) => PathBuf::new(),
        (Revision::Folder { root }, Some(_)) => root.clone(),
        (Revision::Git { repo, sha, .. }, Some(checkout)) => {
            git::checkout(repo, sha, &checkout)
                .await
                .map_err(|e| format!("could not check out {sha}: {e}"))?;
            if let Some(user) = plan.project.job_user.clone() {
                let dir = checkout.clone();
                tokio::task::spawn_blocking(move || give_to(&dir, &user))
                    .await
                    .map_err(|e| format!("could not hand the checkout to the job's user: {e}"))?
                    .map_err(|e| {
                        format!(
                            "could not hand the checkout {} to the job's user: {e}",
                            checkout.display()
                        )
                    })?;
            }
            checkout
        }
    };
    let mut env = job_environment(plan, &workdir);
    if workdir.as_os_str().is_empty() {
        // The executor knows where the job's folder is; an empty one would mislead.
        env.retain(|(key, _)| key != "CI_PROJECT_DIR");
    }
    Ok(ExecSpec {
        job_id: plan.id,
        job_name: plan.job.name.clone(),
        project: plan.project.name.to_string(),
        source: source_of(&plan.revision),
        tags: plan.project.tags.clone(),
        workdir,
        env,
        secret_names: plan
            .project
            .secrets
            .iter()
            .map(|(k, _)| k.clone())
            .collect(),
        before_script: plan.job.before_script.clone(),
        script: plan.job.script.clone(),
        after_script: plan.job.after_script.clone(),
        timeout: plan.job.timeout.unwrap_or(plan.project.timeout),
        log_path: plan.log_path.clone(),
        secrets,
        scratch_dir: scratch,
        user: plan.project.job_user.clone(),
    })
}

/// What the job's files are, for the executor.
fn source_of(revision: &Revision) -> Source {
    match revision {
        Revision::Folder { root } => Source::Folder(root.clone()),
        Revision::Git {
            repo, sha, branch, ..
        } => Source::Git {
            repo: repo.clone(),
            sha: sha.clone(),
            branch: branch.clone(),
        },
    }
}

/// Makes a fresh checkout the job user's (it was made by the server, private to it), and lets
/// that user through the builds folder above it (`--x`, no listing): `data_dir` and `builds`
/// are 0711 when a job user is configured, everything else in `data_dir` stays private.
fn give_to(dir: &std::path::Path, user: &JobUser) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(builds) = dir.parent() {
        let mode = std::fs::metadata(builds)?.permissions().mode() & 0o7777;
        std::fs::set_permissions(builds, std::fs::Permissions::from_mode(mode | 0o711))?;
    }
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        std::os::unix::fs::lchown(&path, Some(user.uid), Some(user.gid))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                todo.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// A job that could not start: failed, with the reason as its output (and in its log).
fn setup_failure(plan: &JobPlan, message: &str, started: Instant) -> ExecResult {
    tracing::error!(job = %plan.id, error = message, "job could not start");
    if let Some(parent) = plan.log_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&plan.log_path, format!("ERROR: {message}\n"));
    ExecResult {
        status: JobStatus::Failed { exit_code: None },
        output: OutputBlock {
            text: format!("ERROR: {message}"),
            omitted_bytes: 0,
        },
        duration: started.elapsed(),
        log_bytes: message.len() as u64 + 8,
    }
}
