//! The [`PipelineActor`]: takes [`ChatCommand`]s, checks permission, resolves the job and
//! creates its one-job pipeline; owns the limits and the queue. The rest of the program talks to
//! it through the cloneable [`PipelineHandle`], never to its `Addr`.
//!
//! Handlers are quick state changes. Slow work (git, reading the CI file) happens in the future a
//! `Submit` returns, outside the actor's state; its result comes back as a `CreateJob` message.

use crate::git::Revision;
use crate::links::LinkSigner;
use crate::messages::{self, JobRef};
use crate::metrics::{CommandReceived, CommandRefused, JobFinished, Metrics, Occupancy};
use crate::outbox::Outbox;
use crate::settings::{ProjectSettings, Settings};
use crate::watcher::{JobPlan, WatcherActor};
use actix::prelude::*;
use chatops_ci::{CiConfig, Decision, Lookup, Variables, When};
use chatops_core::{
    Adapters, ChatCommand, JobId, JobName, JobStatus, ProjectName, Reply, Role, Subcommand, UserId,
};
use chatops_store::{CommandRecord, JobRecord, JobUpdate, NewJob, Outcome, Recorded, Store};
use dashmap::DashMap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// What the web pages and the CLI may know about a job, readable without asking an actor.
#[derive(Clone, Debug)]
pub struct JobView {
    pub id: JobId,
    pub project: ProjectName,
    pub job: String,
    pub user: UserId,
    pub platform: String,
    pub status: JobStatus,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub log_path: PathBuf,
    /// The process group of the running job's shell, while it runs.
    pub pgid: Option<i32>,
}

impl JobView {
    /// A past job, from the store.
    pub fn from_record(r: &JobRecord, fallback_log: PathBuf) -> JobView {
        JobView {
            id: r.id,
            project: r.project.clone(),
            job: r.job_name.to_string(),
            user: r.user.clone(),
            platform: r.platform.to_string(),
            status: r.status.clone(),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            log_path: r.log_path.clone().unwrap_or(fallback_log),
            pgid: r.pgid,
        }
    }
}

/// State shared, read-mostly, between the actors and the HTTP side.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub adapters: Adapters,
    pub links: LinkSigner,
    pub metrics: Metrics,
    /// Where jobs run; the watcher picks per project.
    pub executors: crate::executors::Executors,
    /// Every value masked in output ([`Settings::masked_values`]), worked out once: each job,
    /// page view and log stream masks with it.
    pub masked: Arc<[String]>,
    /// Job views by id. A DashMap because HTTP handlers on other threads read it while the
    /// actors (on the System's arbiter) write it; no guard is ever held across an `.await`.
    pub jobs: DashMap<JobId, JobView>,
    /// Parsed CI files, reused while the files they came from are unchanged.
    pub ci_cache: crate::cicache::CiCache,
    /// The durable ledger: commands, jobs, the outbox.
    pub store: Store,
    /// Set once the outbox lanes run (right after recovery).
    pub(crate) outbox: OnceLock<Outbox>,
    accepting: AtomicBool,
}

impl Shared {
    pub(crate) fn update_view(&self, id: JobId, f: impl FnOnce(&mut JobView)) {
        if let Some(mut view) = self.jobs.get_mut(&id) {
            f(&mut view);
        }
    }
}

/// The answer to a submitted command: the ack to show at once, and the job it created, if any.
#[derive(Clone, Debug)]
pub struct Ack {
    pub reply: Reply,
    pub job: Option<JobId>,
}

impl Ack {
    fn refused(reply: Reply) -> Ack {
        Ack { reply, job: None }
    }
}

/// A cloneable handle to the pipeline. Create it inside a running actix `System`.
#[derive(Clone)]
pub struct PipelineHandle {
    addr: Addr<PipelineActor>,
    shared: Arc<Shared>,
}

impl PipelineHandle {
    /// Starts the pipeline on `store`: first recovers what a previous run left (jobs that were
    /// running are marked interrupted, their process groups killed, their users told), then
    /// starts the outbox lanes (which deliver replies still pending) and the actor. Must run
    /// inside an actix `System`.
    pub async fn start(
        settings: Settings,
        adapters: Adapters,
        executors: crate::executors::Executors,
        store: Store,
    ) -> PipelineHandle {
        let links = LinkSigner::new(settings.link_key.clone(), &settings.public_url);
        let metrics = Metrics::for_platforms(adapters.iter().map(|a| a.platform()));
        let masked = settings.masked_values().into();
        for project in &settings.projects {
            if let Err(message) = executors.for_project(project) {
                tracing::warn!("{message}; its jobs fail until then");
            }
        }
        let shared = Arc::new(Shared {
            settings: Arc::new(settings),
            adapters,
            links,
            metrics,
            executors,
            masked,
            jobs: DashMap::new(),
            ci_cache: Default::default(),
            store,
            outbox: OnceLock::new(),
            accepting: AtomicBool::new(true),
        });
        crate::recovery::recover(&shared).await;
        let _ = shared.outbox.set(Outbox::start(&shared));
        if let Some(ttl) = shared.settings.manual_job_ttl {
            actix::spawn(expire_manual_jobs(shared.clone(), ttl));
        }
        let actor = PipelineActor {
            shared: shared.clone(),
            me: None,
            live: HashMap::new(),
            running: 0,
            running_by_project: HashMap::new(),
            running_groups: HashSet::new(),
            queue: VecDeque::new(),
        };
        PipelineHandle {
            addr: actor.start(),
            shared,
        }
    }

    /// Takes one chat command and answers with the ack (never runs the job inside this call).
    pub async fn submit(&self, command: ChatCommand) -> Ack {
        match self.addr.send(Submit(command)).await {
            Ok(ack) => ack,
            Err(_) => Ack::refused(messages::shutting_down()),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A live job's view (no I/O).
    pub fn job(&self, id: JobId) -> Option<JobView> {
        self.shared.jobs.get(&id).map(|v| v.clone())
    }

    /// Any job's view: live, else from the store.
    pub async fn job_any(&self, id: JobId) -> Option<JobView> {
        if let Some(v) = self.job(id) {
            return Some(v);
        }
        let record = self.shared.store.job(id).await.ok().flatten()?;
        Some(JobView::from_record(
            &record,
            self.shared.settings.log_path(id),
        ))
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Sends a message to a command's channel through the outbox (e.g. an ack that came too
    /// late to be the HTTP answer).
    pub async fn send_later(
        &self,
        job: Option<JobId>,
        target: chatops_core::ReplyTarget,
        reply: Reply,
    ) {
        crate::outbox::send(self.shared.clone(), job, target, reply).await;
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn links(&self) -> &LinkSigner {
        &self.shared.links
    }

    /// Whether the server can take commands: not shutting down, and its store is open.
    pub fn is_accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::SeqCst) && !self.shared.store.is_closed()
    }

    /// Stops taking commands (they are answered "restarting"), lets running jobs finish for
    /// up to the configured grace, cancels what is left (recorded as canceled by the
    /// shutdown), then gives pending replies a few seconds to go out. Manual jobs that wait
    /// are left waiting: they stay playable after the restart.
    pub async fn shutdown(&self) {
        let grace = self.shared.settings.shutdown_grace;
        self.shared.accepting.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        while self.running_jobs().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.addr.send(CancelAll).await;
        let hard = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.running_jobs().await > 0 && tokio::time::Instant::now() < hard {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Replies of the jobs that just ended are being written; give them a moment to land
        // in the outbox and go out. Whatever is still pending is sent after the restart.
        let flush = tokio::time::Instant::now() + Duration::from_secs(5);
        tokio::time::sleep(Duration::from_millis(50)).await;
        while tokio::time::Instant::now() < flush {
            match self.shared.store.next_reply_due(None).await {
                Ok(Some(due)) if due <= SystemTime::now() + Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => break,
            }
        }
        let _ = self.shared.store.close().await;
    }

    async fn running_jobs(&self) -> usize {
        self.addr.send(CountRunning).await.unwrap_or(0)
    }
}

/// Where a live job is, as the pipeline sees it. A manual job that waits to be played is not
/// live: it is a row in the store (maybe for days, maybe by the ten thousand), and `play ID`
/// reads it back (issue #9 item 9: holding each in memory grew the server without bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Queued,
    Running,
}

/// A job's watcher, started only when needed: a queued job is a plan, not an actor.
enum Watcher {
    /// Always `Some` but while the watcher is being started.
    Pending(Option<Box<JobPlan>>),
    Started(Addr<WatcherActor>),
}

struct Live {
    watcher: Watcher,
    project: ProjectName,
    stage: Stage,
    /// `resource_group:`: at most one job of a project's group runs at a time.
    resource_group: Option<String>,
}

pub struct PipelineActor {
    shared: Arc<Shared>,
    /// This actor's own address, for the watchers it starts (set in `started`).
    me: Option<Addr<PipelineActor>>,
    /// Jobs not yet ended: queued or running (never the manual jobs that wait).
    live: HashMap<JobId, Live>,
    running: usize,
    running_by_project: HashMap<ProjectName, usize>,
    /// The resource groups busy now, per project.
    running_groups: HashSet<(ProjectName, String)>,
    /// Jobs waiting for a slot, oldest first.
    queue: VecDeque<JobId>,
}

impl Actor for PipelineActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
    }
}

/// A command from chat (or the console).
#[derive(Message)]
#[rtype(result = "Ack")]
struct Submit(ChatCommand);

/// A job that passed every check and is recorded, ready to become a pipeline.
#[derive(Message)]
#[rtype(result = "Ack")]
struct CreateJob {
    id: JobId,
    command: ChatCommand,
    project: ProjectName,
    job: chatops_ci::Job,
    when: When,
    file_variables: Vec<(String, String)>,
    input: String,
    revision: Revision,
    /// A manual job being played, and by whom: it starts (or queues) whatever its `when`.
    played_by: Option<(UserId, Option<String>)>,
}

/// `cancel ID` of a live job, after the permission check. `None` when the job is not live here
/// (it may be a manual job that waits: the caller looks in the store).
#[derive(Message)]
#[rtype(result = "Option<Ack>")]
struct Control {
    id: JobId,
    project: ProjectName,
    by: UserId,
    by_name: Option<String>,
}

/// From a watcher: its job has ended (any terminal status); free its slot.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct JobEnded {
    pub id: JobId,
}

/// How many jobs run now (shutdown waits for them).
#[derive(Message)]
#[rtype(result = "usize")]
struct CountRunning;

#[derive(Message)]
#[rtype(result = "()")]
struct CancelAll;

impl Handler<Submit> for PipelineActor {
    type Result = ResponseFuture<Ack>;

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let addr = ctx.address();
        Box::pin(async move { prepare(shared, addr, msg.0).await })
    }
}

/// Everything a command needs before it can touch the actor's state: project, role, CI file.
async fn prepare(shared: Arc<Shared>, addr: Addr<PipelineActor>, command: ChatCommand) -> Ack {
    shared.metrics.emit(CommandReceived);
    let (ack, record) = prepare_inner(&shared, addr, &command).await;
    if ack.job.is_none() && ack.reply.tone != chatops_core::Tone::Neutral {
        shared.metrics.emit(CommandRefused);
    }
    // Every command is in the ledger; a `run` that created a job was recorded with it already.
    if let Some(outcome) = record {
        let mut rec = CommandRecord::new(&command, outcome).with_reason(ack.reply.plain_summary());
        if let Some(p) = shared.settings.project_for_command(&command.slash_command) {
            rec = rec.with_project(p.name.clone());
        }
        if let Some(job) = ack.job {
            rec = rec.with_about(job);
        }
        if let Err(e) = shared.store.record_command(rec, None).await {
            tracing::error!(error = %e, "cannot record a command in the store");
        }
    }
    ack
}

/// The outcome to record for a command that did not create a job (`None`: already recorded).
type ToRecord = Option<Outcome>;

async fn prepare_inner(
    shared: &Arc<Shared>,
    addr: Addr<PipelineActor>,
    command: &ChatCommand,
) -> (Ack, ToRecord) {
    let refused = |reply: Reply| (Ack::refused(reply), Some(Outcome::Refused));
    if !shared.accepting.load(Ordering::SeqCst) {
        return refused(messages::shutting_down());
    }
    let Some(project) = shared.settings.project_for_command(&command.slash_command) else {
        return refused(messages::unknown_project(&command.slash_command));
    };
    let project = project.clone();
    let role = project.role_of(&command.platform, &command.user);
    let refuse_role = |needed: Role| {
        refused(messages::role_too_low(
            project.name.as_str(),
            &command.platform,
            &command.user,
            role,
            needed,
        ))
    };
    match Subcommand::parse(&command.text) {
        Subcommand::Help => (
            Ack::refused(help_for(shared, &project, role, command).await),
            Some(Outcome::Accepted),
        ),
        Subcommand::Invalid { reason, .. } => {
            let help = help_for(shared, &project, role, command).await;
            (
                Ack::refused(messages::invalid(&reason, help)),
                Some(Outcome::Invalid),
            )
        }
        Subcommand::Run { job, input } => {
            if role < Role::RUN_JOBS {
                return refuse_role(Role::RUN_JOBS);
            }
            run_job(shared, addr, &project, command, job, input).await
        }
        Subcommand::Retry { job: id } => {
            if role < Role::RUN_JOBS {
                return refuse_role(Role::RUN_JOBS);
            }
            match retryable(shared, &project, id).await {
                Ok(record) => {
                    let (job, input) = (record.job_name, record.input);
                    run_job(shared, addr, &project, command, job, input).await
                }
                Err(reply) => refused(reply),
            }
        }
        Subcommand::Status { job } => {
            if role < Role::READ_JOBS {
                return refuse_role(Role::READ_JOBS);
            }
            match job_status(shared, &project, command, job, role).await {
                Ok(reply) => (Ack::refused(reply), Some(Outcome::Accepted)),
                Err(reply) => refused(reply),
            }
        }
        Subcommand::Jobs => {
            if role < Role::READ_JOBS {
                return refuse_role(Role::READ_JOBS);
            }
            match job_list(shared, &project, command).await {
                Ok(reply) => (Ack::refused(reply), Some(Outcome::Accepted)),
                Err(reply) => refused(reply),
            }
        }
        Subcommand::Play { job } | Subcommand::Cancel { job } => {
            if role < Role::RUN_JOBS {
                return refuse_role(Role::RUN_JOBS);
            }
            let play = matches!(Subcommand::parse(&command.text), Subcommand::Play { .. });
            let ack = if play {
                play_manual(shared, addr, &project, job, command).await
            } else {
                let control = Control {
                    id: job,
                    project: project.name.clone(),
                    by: command.user.clone(),
                    by_name: command.user_name.clone(),
                };
                match addr.send(control).await {
                    Ok(Some(ack)) => ack,
                    Ok(None) => cancel_manual(shared, &project, job, command).await,
                    Err(_) => Ack::refused(messages::shutting_down()),
                }
            };
            let outcome = if ack.job.is_some() {
                Outcome::Accepted
            } else {
                Outcome::Refused
            };
            (ack, Some(outcome))
        }
    }
}

/// `run JOB [INPUT]` (and `retry ID`, which runs a stored job's name and input again) once the
/// role is checked: look the job up, evaluate it for a chat pipeline, record it, create it.
async fn run_job(
    shared: &Arc<Shared>,
    addr: Addr<PipelineActor>,
    project: &ProjectSettings,
    command: &ChatCommand,
    job: JobName,
    input: String,
) -> (Ack, ToRecord) {
    let refused = |reply: Reply| (Ack::refused(reply), Some(Outcome::Refused));
    let (revision, ci) = match load_ci(shared, project).await {
        Ok(loaded) => loaded,
        Err(reply) => return refused(reply),
    };
    let found = match ci.lookup(job.as_str()) {
        Lookup::Found(found) => found.clone(),
        Lookup::Hidden => return refused(messages::hidden_job(job.as_str())),
        Lookup::Missing { suggestions } => {
            return refused(messages::unknown_job(
                project.name.as_str(),
                job.as_str(),
                &suggestions,
            ))
        }
    };
    let vars = rule_variables(project, &revision, command, Some(&input));
    let (when, variables) = match ci.evaluate(&found, &vars) {
        Decision::Excluded { reason } => return refused(messages::excluded(job.as_str(), &reason)),
        Decision::Run {
            when, variables, ..
        } => (when, variables),
    };
    // The job's record exists before the ack is sent; a command delivered twice (the
    // platform retried) finds the first delivery's job instead of creating another.
    let new_job = NewJob {
        project: project.name.clone(),
        job_name: JobName::new(found.name.clone()),
        pipeline_id: None,
        status: if when == When::Manual {
            JobStatus::Manual
        } else {
            JobStatus::Queued { position: 0 }
        },
        created_at: SystemTime::now(),
        input: input.clone(),
        reply_target: command.reply_to.clone(),
        user_name: command.user_name.clone(),
        when: Some(when.as_str().to_owned()),
        resource_group: found.resource_group.clone(),
        log_path: None,
    };
    let rec = CommandRecord::new(command, Outcome::Accepted).with_project(project.name.clone());
    let id = match shared.store.record_command(rec, Some(new_job)).await {
        Ok(Recorded::New { job: Some(id), .. }) => id,
        Ok(Recorded::Duplicate { job, .. }) => {
            tracing::info!(request = ?command.request_id, ?job, "duplicate delivery ignored");
            return (Ack::refused(messages::duplicate(job)), None);
        }
        Ok(Recorded::New { job: None, .. }) => {
            return (
                Ack::refused(messages::internal_error("the job was not recorded")),
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a job");
            return refused(messages::internal_error("the job could not be recorded"));
        }
    };
    let create = CreateJob {
        id,
        project: project.name.clone(),
        job: found,
        when,
        file_variables: variables,
        input,
        revision,
        command: command.clone(),
        played_by: None,
    };
    match addr.send(create).await {
        Ok(ack) => (ack, None),
        Err(_) => (Ack::refused(messages::shutting_down()), None),
    }
}

/// How many jobs `jobs` lists.
const JOB_LIST_LIMIT: usize = 10;

/// `retry ID`: the job to run again, if it is this project's and has ended (GitLab retries
/// finished jobs only: a running one would run twice, a manual one is played instead).
async fn retryable(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    id: JobId,
) -> Result<JobRecord, Reply> {
    let record = stored_job(shared, project, id).await?;
    let status = live_status(shared, &record);
    if !status.is_terminal() {
        return Err(messages::not_retryable(
            &job_ref_of(shared, &record),
            &status,
        ));
    }
    Ok(record)
}

/// Job `id` of `project` from the store, or the refusal to answer.
async fn stored_job(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    id: JobId,
) -> Result<JobRecord, Reply> {
    match shared.store.job(id).await {
        Ok(Some(r)) if r.project != project.name => {
            Err(messages::wrong_project(id, project.name.as_str()))
        }
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(messages::no_such_job(id, &project.command)),
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot read a job from the store");
            Err(messages::internal_error("the job could not be read"))
        }
    }
}

/// A job's status: the live one while the pipeline holds it (a queued job's position), else
/// the stored one.
fn live_status(shared: &Shared, record: &JobRecord) -> JobStatus {
    shared
        .jobs
        .get(&record.id)
        .map_or_else(|| record.status.clone(), |v| v.status.clone())
}

fn facts_of(shared: &Shared, record: JobRecord) -> messages::JobFacts {
    messages::JobFacts {
        job: job_ref_of(shared, &record),
        status: live_status(shared, &record),
        created_at: record.created_at,
        started_at: record.started_at,
        duration: record.duration,
        input: record.input,
    }
}

/// `status [ID]`: job `id`, or without one the caller's latest job of this project in this
/// channel, else the channel's latest.
async fn job_status(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    command: &ChatCommand,
    id: Option<JobId>,
    role: Role,
) -> Result<Reply, Reply> {
    let record = match id {
        Some(id) => stored_job(shared, project, id).await?,
        None => {
            let mine = channel_jobs(shared, project, command, Some(command.user.clone()), 1);
            let latest = match mine.await?.pop() {
                Some(r) => Some(r),
                None => channel_jobs(shared, project, command, None, 1).await?.pop(),
            };
            match latest {
                Some(r) => r,
                None => {
                    return Ok(messages::job_list(
                        project.name.as_str(),
                        &project.command,
                        &[],
                        SystemTime::now(),
                    ))
                }
            }
        }
    };
    let facts = facts_of(shared, record);
    let control = (role >= Role::RUN_JOBS && !facts.status.is_terminal()).then(|| {
        shared
            .links
            .developer_url(facts.job.id, &command.platform, &command.user)
    });
    Ok(messages::job_status(
        &facts,
        SystemTime::now(),
        control.as_deref(),
    ))
}

/// `jobs`: this project's newest jobs in the command's channel.
async fn job_list(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    command: &ChatCommand,
) -> Result<Reply, Reply> {
    let records = channel_jobs(shared, project, command, None, JOB_LIST_LIMIT).await?;
    let facts: Vec<_> = records.into_iter().map(|r| facts_of(shared, r)).collect();
    Ok(messages::job_list(
        project.name.as_str(),
        &project.command,
        &facts,
        SystemTime::now(),
    ))
}

async fn channel_jobs(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    command: &ChatCommand,
    user: Option<UserId>,
    limit: usize,
) -> Result<Vec<JobRecord>, Reply> {
    let target = (command.platform.clone(), command.channel.clone());
    shared
        .store
        .channel_jobs(project.name.clone(), target, user, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot list a channel's jobs");
            messages::internal_error("the jobs could not be read")
        })
}

/// Whether a manual job created at `created_at` has outlived `server.manual_job_ttl`.
fn outlived(shared: &Shared, created_at: SystemTime) -> bool {
    shared.settings.manual_job_ttl.is_some_and(|ttl| {
        SystemTime::now()
            .duration_since(created_at)
            .is_ok_and(|age| age >= ttl)
    })
}

/// The facts every message about a stored job carries.
pub(crate) fn job_ref_of(shared: &Shared, job: &JobRecord) -> JobRef {
    let command = shared
        .settings
        .project(&job.project)
        .map(|p| p.command.clone())
        .unwrap_or_else(|| format!("/{}", job.project));
    JobRef {
        id: job.id,
        project: job.project.to_string(),
        command,
        job: job.job_name.to_string(),
        user: job.user.clone(),
        user_name: job.user_name.clone(),
        link: shared.links.url(job.id),
    }
}

/// A manual job that waits, from the store; or the refusal to answer instead.
async fn waiting_manual(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    id: JobId,
) -> Result<JobRecord, Ack> {
    let record = match shared.store.job(id).await {
        Ok(Some(r)) if r.project != project.name => {
            return Err(Ack::refused(messages::wrong_project(
                id,
                project.name.as_str(),
            )))
        }
        Ok(Some(r)) => r,
        _ => return Err(Ack::refused(messages::unknown_job_id(id))),
    };
    if record.status == JobStatus::Manual && outlived(shared, record.created_at) {
        // The sweep has not reached it yet; it expired all the same.
        let expired = JobUpdate::finished(JobStatus::Expired, SystemTime::now(), Duration::ZERO);
        let _ = shared.store.update_job_if(id, "manual", expired).await;
        return Err(Ack::refused(messages::not_manual(id, &JobStatus::Expired)));
    }
    if record.status != JobStatus::Manual {
        return Err(Ack::refused(messages::not_manual(id, &record.status)));
    }
    Ok(record)
}

/// `play ID`: a manual job waits in the store, not in memory. Its record says which job it
/// was; the CI file is read again (as GitLab plays a manual job of a pipeline created earlier,
/// and as after a restart) and the job joins the pipeline as if just created.
async fn play_manual(
    shared: &Arc<Shared>,
    addr: Addr<PipelineActor>,
    project: &ProjectSettings,
    id: JobId,
    command: &ChatCommand,
) -> Ack {
    let record = match waiting_manual(shared, project, id).await {
        Ok(r) => r,
        Err(ack) => return ack,
    };
    let (revision, ci) = match load_ci(shared, project).await {
        Ok(loaded) => loaded,
        Err(reply) => return Ack::refused(reply),
    };
    let Lookup::Found(found) = ci.lookup(record.job_name.as_str()) else {
        return Ack::refused(messages::unknown_job(
            project.name.as_str(),
            record.job_name.as_str(),
            &[],
        ));
    };
    let found = found.clone();
    // The job keeps its original command's reply target and user.
    let original = ChatCommand {
        platform: record.platform.clone(),
        request_id: None,
        team: None,
        channel: record.channel.clone(),
        channel_name: None,
        user: record.user.clone(),
        user_name: record.user_name.clone(),
        slash_command: project.command.clone(),
        text: format!("run {} {}", record.job_name, record.input),
        reply_to: record.reply_target.clone(),
        received_at: record.created_at,
        via_button: false,
    };
    let vars = rule_variables(project, &revision, &original, Some(&record.input));
    let Decision::Run { variables, .. } = ci.evaluate(&found, &vars) else {
        return Ack::refused(messages::excluded(
            record.job_name.as_str(),
            "the CI file changed since it was created",
        ));
    };
    // Manual → queued in one step: of two plays racing (two clicks, chat and the command
    // line), one wins; the other is told the job no longer waits.
    let claim = JobUpdate::status(JobStatus::Queued { position: 0 });
    match shared.store.update_job_if(id, "manual", claim).await {
        Ok(true) => {}
        Ok(false) => {
            let status = shared
                .store
                .job(id)
                .await
                .ok()
                .flatten()
                .map_or(JobStatus::Running, |r| r.status);
            return Ack::refused(messages::not_manual(id, &status));
        }
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot record that a manual job was played");
            return Ack::refused(messages::internal_error("the play could not be recorded"));
        }
    }
    let create = CreateJob {
        id,
        project: project.name.clone(),
        job: found,
        when: When::Manual,
        file_variables: variables,
        input: record.input.clone(),
        revision,
        command: original,
        played_by: Some((command.user.clone(), command.user_name.clone())),
    };
    let ack = match addr.send(create).await {
        Ok(ack) => ack,
        Err(_) => Ack::refused(messages::shutting_down()),
    };
    if ack.job.is_none() {
        // Not started (the server is stopping): it waits again, playable after the restart.
        let back = JobUpdate::status(JobStatus::Manual);
        let _ = shared.store.update_job_if(id, "queued", back).await;
    }
    ack
}

/// `cancel ID` for a job that is not live here: a manual job that waits, in the store. It is
/// marked canceled and its channel told, as a canceled running job's would be.
async fn cancel_manual(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    id: JobId,
    command: &ChatCommand,
) -> Ack {
    let record = match waiting_manual(shared, project, id).await {
        Ok(r) => r,
        Err(ack) => return ack,
    };
    let by = command
        .user_name
        .clone()
        .unwrap_or_else(|| command.user.to_string());
    let status = JobStatus::Canceled { by: Some(by) };
    let update = JobUpdate::finished(status.clone(), SystemTime::now(), Duration::ZERO);
    match shared.store.update_job_if(id, "manual", update).await {
        Ok(true) => {}
        Ok(false) => return Ack::refused(messages::unknown_job_id(id)),
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot record a cancel");
            return Ack::refused(messages::internal_error("the cancel could not be recorded"));
        }
    }
    shared.metrics.emit(JobFinished::unstarted(&status));
    let reply = messages::finished(
        &job_ref_of(shared, &record),
        &status,
        None,
        chatops_core::OutputBlock::default(),
    );
    crate::outbox::send(shared.clone(), Some(id), record.reply_target.clone(), reply).await;
    Ack {
        reply: messages::cancel_requested(id),
        job: Some(id),
    }
}

/// Marks manual jobs older than `ttl` expired, now and then, until the store closes. The
/// sweep is one indexed `UPDATE`; `play` also checks a job's age itself, so a job never starts
/// late for want of a sweep.
async fn expire_manual_jobs(shared: Arc<Shared>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    loop {
        let now = SystemTime::now();
        let Some(before) = now.checked_sub(ttl) else {
            return;
        };
        match shared.store.expire_manual_jobs(before, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                expired = n,
                ttl_s = ttl.as_secs(),
                "manual jobs expired unplayed (server.manual_job_ttl)"
            ),
            Err(chatops_store::StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot expire manual jobs"),
        }
        tokio::time::sleep(every).await;
    }
}

/// `help`: the jobs this user could run from chat now. A user who may run nothing learns so
/// without the CI file being read: anyone in the workspace can type `help`, and reading (a
/// large, or hostile) CI file on their behalf is work they have no right to cause (issue #9
/// item 3).
async fn help_for(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
    role: Role,
    command: &ChatCommand,
) -> Reply {
    if role < Role::RUN_JOBS {
        return messages::help(project.name.as_str(), &project.command, &[], role);
    }
    let runnable: Vec<messages::HelpEntry> = match load_ci(shared, project).await {
        Ok((revision, ci)) => {
            let vars = rule_variables(project, &revision, command, None);
            ci.jobs()
                .iter()
                .filter_map(|job| match ci.evaluate(job, &vars) {
                    Decision::Run { when, .. } if when != When::Never => {
                        Some(messages::HelpEntry {
                            name: job.name.clone(),
                            when: when.as_str().to_owned(),
                            description: job.description.clone(),
                        })
                    }
                    _ => None,
                })
                .collect()
        }
        Err(reply) => return reply,
    };
    messages::help(project.name.as_str(), &project.command, &runnable, role)
}

/// Resolves the project's revision and loads its CI file, off the actor thread (git and file
/// I/O block).
async fn load_ci(
    shared: &Arc<Shared>,
    project: &ProjectSettings,
) -> Result<(Revision, Arc<CiConfig>), Reply> {
    if let Some(hit) = shared.ci_cache.get(project) {
        return Ok(hit);
    }
    let (shared2, project2) = (shared.clone(), project.clone());
    let loaded = tokio::task::spawn_blocking(move || shared2.ci_cache.load(&project2)).await;
    match loaded {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(message)) => Err(messages::ci_error(project.name.as_str(), &message)),
        Err(join) => {
            tracing::error!(error = %join, "CI loading task failed");
            Err(messages::internal_error("reading the CI file failed"))
        }
    }
}

/// Blocking, uncached: resolves the revision and loads the CI file from it (`chatops check`).
pub fn load_ci_blocking(project: &ProjectSettings) -> Result<(Revision, Arc<CiConfig>), String> {
    crate::cicache::CiCache::default().load(project)
}

/// The variables `rules:`/`only:` see (contract §1 and §4): predefined ones and the project's,
/// with `CHAT_INPUT` only for a real command.
pub fn rule_variables(
    project: &ProjectSettings,
    revision: &Revision,
    command: &ChatCommand,
    input: Option<&str>,
) -> Variables {
    let mut vars = predefined_variables(project, revision);
    vars.push(("CHAT_CHANNEL".into(), command.channel.to_string()));
    vars.push(("CHAT_USER_ID".into(), command.user.to_string()));
    vars.push(("CHAT_PLATFORM".into(), command.platform.to_string()));
    if let Some(input) = input {
        vars.push(("CHAT_INPUT".into(), input.to_owned()));
    }
    vars.extend(project.variables.iter().cloned());
    vars.extend(project.secrets.iter().cloned());
    vars.into_iter().collect()
}

/// `CI=true`, `CI_PIPELINE_SOURCE=chat`, project and commit variables (no job ids).
pub fn predefined_variables(
    project: &ProjectSettings,
    revision: &Revision,
) -> Vec<(String, String)> {
    let mut vars = vec![
        ("CI".to_owned(), "true".to_owned()),
        ("CI_PIPELINE_SOURCE".to_owned(), "chat".to_owned()),
        ("CI_PROJECT_NAME".to_owned(), project.name.to_string()),
    ];
    match revision {
        Revision::Git {
            sha,
            branch,
            default_branch,
            ..
        } => {
            vars.push(("CI_COMMIT_SHA".into(), sha.clone()));
            vars.push(("CI_COMMIT_BRANCH".into(), branch.clone()));
            vars.push(("CI_COMMIT_REF_NAME".into(), branch.clone()));
            vars.push(("CI_DEFAULT_BRANCH".into(), default_branch.clone()));
        }
        Revision::Folder { .. } => {
            let branch = project.branch.clone().unwrap_or_else(|| "main".into());
            vars.push(("CI_COMMIT_BRANCH".into(), branch.clone()));
            vars.push(("CI_COMMIT_REF_NAME".into(), branch.clone()));
            vars.push(("CI_DEFAULT_BRANCH".into(), branch));
        }
    }
    vars
}

impl PipelineActor {
    fn running_in(&self, project: &ProjectName) -> usize {
        self.running_by_project.get(project).copied().unwrap_or(0)
    }

    /// Whether job `id` could start now: a server slot, a project slot, and its resource
    /// group free.
    fn has_slot(&self, id: JobId) -> bool {
        let Some(live) = self.live.get(&id) else {
            return false;
        };
        let project = &live.project;
        let limit = self
            .shared
            .settings
            .project(project)
            .map_or(1, |p| p.max_concurrent_jobs.max(1));
        let group_free = live
            .resource_group
            .as_ref()
            .is_none_or(|g| !self.running_groups.contains(&(project.clone(), g.clone())));
        self.running < self.shared.settings.max_concurrent_jobs.max(1)
            && self.running_in(project) < limit
            && group_free
    }

    /// Marks a job running and tells its watcher to start.
    fn launch(&mut self, id: JobId) {
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        live.stage = Stage::Running;
        self.running += 1;
        *self
            .running_by_project
            .entry(live.project.clone())
            .or_default() += 1;
        if let Some(g) = &live.resource_group {
            self.running_groups
                .insert((live.project.clone(), g.clone()));
        }
        self.shared
            .metrics
            .emit(Occupancy::of(self.running, self.queue.len()));
        if let Some(w) = self.watcher(id) {
            w.do_send(crate::watcher::Start);
        }
    }

    /// The job's watcher, started now if it was only a plan.
    fn watcher(&mut self, id: JobId) -> Option<Addr<WatcherActor>> {
        let me = self.me.clone()?;
        let live = self.live.get_mut(&id)?;
        let addr = match &mut live.watcher {
            Watcher::Started(addr) => return Some(addr.clone()),
            Watcher::Pending(plan) => {
                let plan = plan.take()?;
                WatcherActor::new(*plan, self.shared.clone(), me).start()
            }
        };
        live.watcher = Watcher::Started(addr.clone());
        Some(addr)
    }

    /// Puts a job in the queue and returns its 1-based position.
    fn enqueue(&mut self, id: JobId) -> usize {
        if let Some(live) = self.live.get_mut(&id) {
            live.stage = Stage::Queued;
        }
        self.queue.push_back(id);
        self.shared
            .metrics
            .emit(Occupancy::of(self.running, self.queue.len()));
        self.shared.update_view(id, |v| {
            v.status = JobStatus::Queued {
                position: self.queue.len(),
            }
        });
        self.queue.len()
    }

    /// Starts queued jobs while slots are free, oldest first (a job of a project at its own
    /// limit, or of a busy resource group, does not hold back the others).
    fn drain_queue(&mut self) {
        let mut i = 0;
        while i < self.queue.len() {
            let id = self.queue[i];
            if !self.live.contains_key(&id) {
                self.queue.remove(i);
                self.shared
                    .metrics
                    .emit(Occupancy::of(self.running, self.queue.len()));
                continue;
            }
            if self.has_slot(id) {
                self.queue.remove(i);
                self.shared
                    .metrics
                    .emit(Occupancy::of(self.running, self.queue.len()));
                self.launch(id);
            } else {
                i += 1;
            }
        }
        for (pos, id) in self.queue.iter().enumerate() {
            self.shared
                .update_view(*id, |v| v.status = JobStatus::Queued { position: pos + 1 });
        }
    }
}

impl Handler<CreateJob> for PipelineActor {
    type Result = MessageResult<CreateJob>;

    fn handle(&mut self, msg: CreateJob, _ctx: &mut Context<Self>) -> Self::Result {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return MessageResult(Ack::refused(messages::shutting_down()));
        }
        let Some(project) = shared.settings.project(&msg.project).cloned() else {
            return MessageResult(Ack::refused(messages::internal_error("project vanished")));
        };
        let id = msg.id;
        let job_ref = JobRef {
            id,
            project: project.name.to_string(),
            command: project.command.clone(),
            job: msg.job.name.clone(),
            user: msg.command.user.clone(),
            user_name: msg.command.user_name.clone(),
            link: shared.links.url(id),
        };
        let reply_played = match &msg.played_by {
            Some((by, by_name)) => messages::play_requested(&job_ref, by, by_name.as_deref()),
            // A manual job waits in the store only: nothing of it stays in memory.
            None if msg.when == When::Manual => {
                return MessageResult(Ack {
                    reply: messages::manual(&job_ref),
                    job: Some(id),
                })
            }
            None => messages::started(&job_ref),
        };
        if self.live.contains_key(&id) {
            return MessageResult(Ack::refused(messages::not_manual(id, &JobStatus::Running)));
        }
        let log_path = shared.settings.log_path(id);
        shared.jobs.insert(
            id,
            JobView {
                id,
                project: project.name.clone(),
                job: msg.job.name.clone(),
                user: msg.command.user.clone(),
                platform: msg.command.platform.to_string(),
                status: JobStatus::Queued { position: 0 },
                created_at: SystemTime::now(),
                started_at: None,
                finished_at: None,
                log_path: log_path.clone(),
                pgid: None,
            },
        );
        let plan = JobPlan {
            id,
            job_ref: job_ref.clone(),
            project,
            job: msg.job,
            file_variables: msg.file_variables,
            input: msg.input,
            revision: msg.revision,
            command: msg.command,
            log_path,
            marker: crate::recovery::job_marker(&shared.settings.data_dir, id),
        };
        let resource_group = plan.job.resource_group.clone();
        let watcher = Watcher::Pending(Some(Box::new(plan)));
        self.live.insert(
            id,
            Live {
                watcher,
                project: msg.project.clone(),
                stage: Stage::Queued,
                resource_group,
            },
        );
        let reply = if self.has_slot(id) && self.queue.is_empty() {
            self.launch(id);
            reply_played
        } else {
            let position = self.enqueue(id);
            // A slot may be free for this project even with others queued.
            self.drain_queue();
            match (self.live.get(&id).map(|l| l.stage), msg.played_by) {
                (Some(Stage::Running), _) | (_, Some(_)) => reply_played,
                _ => messages::queued(&job_ref, position),
            }
        };
        MessageResult(Ack {
            reply,
            job: Some(id),
        })
    }
}

impl Handler<Control> for PipelineActor {
    type Result = MessageResult<Control>;

    fn handle(&mut self, msg: Control, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.control(msg))
    }
}

impl PipelineActor {
    fn control(&mut self, msg: Control) -> Option<Ack> {
        let live = self.live.get(&msg.id)?;
        if live.project != msg.project {
            return Some(Ack::refused(messages::wrong_project(
                msg.id,
                msg.project.as_str(),
            )));
        }
        let by = msg.by_name.unwrap_or_else(|| msg.by.to_string());
        if let Some(w) = self.watcher(msg.id) {
            w.do_send(crate::watcher::Cancel { by: Some(by) });
        }
        Some(Ack {
            reply: messages::cancel_requested(msg.id),
            job: Some(msg.id),
        })
    }
}

impl Handler<JobEnded> for PipelineActor {
    type Result = ();

    fn handle(&mut self, msg: JobEnded, _ctx: &mut Context<Self>) {
        if let Some(live) = self.live.remove(&msg.id) {
            match live.stage {
                Stage::Running => {
                    self.running = self.running.saturating_sub(1);
                    if let Some(n) = self.running_by_project.get_mut(&live.project) {
                        *n = n.saturating_sub(1);
                    }
                    if let Some(g) = live.resource_group {
                        self.running_groups.remove(&(live.project.clone(), g));
                    }
                    self.shared
                        .metrics
                        .emit(Occupancy::of(self.running, self.queue.len()));
                }
                Stage::Queued => {
                    self.queue.retain(|id| *id != msg.id);
                    self.shared
                        .metrics
                        .emit(Occupancy::of(self.running, self.queue.len()));
                }
            }
        }
        self.drain_queue();
    }
}

impl Handler<CountRunning> for PipelineActor {
    type Result = usize;

    fn handle(&mut self, _msg: CountRunning, _ctx: &mut Context<Self>) -> usize {
        self.live.len()
    }
}

impl Handler<CancelAll> for PipelineActor {
    type Result = ();

    /// Cancels running and queued jobs; manual jobs keep waiting (in the store, playable after
    /// a restart).
    fn handle(&mut self, _msg: CancelAll, _ctx: &mut Context<Self>) {
        let ids: Vec<JobId> = self.live.keys().copied().collect();
        for id in ids {
            if let Some(w) = self.watcher(id) {
                w.do_send(crate::watcher::Cancel {
                    by: Some("the chatops server shutting down".into()),
                });
            }
        }
    }
}
