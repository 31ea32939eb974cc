//! The [`PipelineActor`]: takes [`ChatCommand`]s, checks permission, resolves the job and
//! creates its one-job pipeline; owns the limits and the queue. The rest of the program talks to
//! it through the cloneable [`PipelineHandle`], never to its `Addr`.
//!
//! Handlers are quick state changes. Slow work (git, reading the CI file) happens in the future a
//! `Submit` returns, outside the actor's state; its result comes back as a `CreateJob` message.

use crate::git::{self, GitSource, Revision};
use crate::links::LinkSigner;
use crate::messages::{self, JobRef};
use crate::metrics::Metrics;
use crate::settings::{ProjectSettings, Settings};
use crate::watcher::{JobPlan, WatcherActor};
use actix::prelude::*;
use chatops_ci::{CiConfig, Decision, DirSource, Lookup, Variables, When};
use chatops_core::{
    Adapters, ChatCommand, JobId, JobStatus, ProjectName, Reply, Role, Subcommand, UserId,
};
use dashmap::DashMap;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// State shared, read-mostly, between the actors and the HTTP side.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub adapters: Adapters,
    pub links: LinkSigner,
    pub metrics: Metrics,
    /// Job views by id. A DashMap because HTTP handlers on other threads read it while the
    /// actors (on the System's arbiter) write it; no guard is ever held across an `.await`.
    pub jobs: DashMap<JobId, JobView>,
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
    /// Starts the pipeline actor. `first_job_id` is the id the next job gets (the store or the
    /// log folder knows which ids are taken).
    pub fn start(settings: Settings, adapters: Adapters) -> PipelineHandle {
        let first_id = next_free_job_id(&settings);
        let links = LinkSigner::new(settings.link_key.clone(), &settings.public_url);
        let shared = Arc::new(Shared {
            settings: Arc::new(settings),
            adapters,
            links,
            metrics: Metrics::default(),
            jobs: DashMap::new(),
            accepting: AtomicBool::new(true),
        });
        let actor = PipelineActor {
            shared: shared.clone(),
            next_id: first_id,
            live: HashMap::new(),
            running: 0,
            running_by_project: HashMap::new(),
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

    pub fn job(&self, id: JobId) -> Option<JobView> {
        self.shared.jobs.get(&id).map(|v| v.clone())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn links(&self) -> &LinkSigner {
        &self.shared.links
    }

    pub fn is_accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::SeqCst)
    }

    /// Stops taking commands, lets running jobs finish for up to `grace`, cancels what is left
    /// and waits (a little) for their replies to go out.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        while self.live_jobs().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.addr.send(CancelAll).await;
        let hard = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.live_jobs().await > 0 && tokio::time::Instant::now() < hard {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn live_jobs(&self) -> usize {
        self.addr.send(CountLive).await.unwrap_or(0)
    }
}

/// The first job id not used by a log file in `data_dir/logs`, so that ids never repeat across
/// restarts (a later store takes this over).
fn next_free_job_id(settings: &Settings) -> u64 {
    let Ok(entries) = std::fs::read_dir(settings.logs_dir()) else {
        return 1;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .map_or(1, |m| m + 1)
}

/// Where a job is, as the pipeline sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Manual,
    Queued,
    Running,
}

struct Live {
    watcher: Addr<WatcherActor>,
    project: ProjectName,
    stage: Stage,
    job: JobRef,
}

pub struct PipelineActor {
    shared: Arc<Shared>,
    next_id: u64,
    /// Jobs not yet ended: manual, queued or running.
    live: HashMap<JobId, Live>,
    running: usize,
    running_by_project: HashMap<ProjectName, usize>,
    /// Jobs waiting for a slot, oldest first.
    queue: VecDeque<JobId>,
}

impl Actor for PipelineActor {
    type Context = Context<Self>;
}

/// A command from chat (or the console).
#[derive(Message)]
#[rtype(result = "Ack")]
struct Submit(ChatCommand);

/// A job that passed every check, ready to become a pipeline.
#[derive(Message)]
#[rtype(result = "Ack")]
struct CreateJob {
    command: ChatCommand,
    project: ProjectName,
    job: chatops_ci::Job,
    when: When,
    file_variables: Vec<(String, String)>,
    input: String,
    revision: Revision,
}

/// `play ID` / `cancel ID`, after the permission check.
#[derive(Message)]
#[rtype(result = "Ack")]
struct Control {
    id: JobId,
    project: ProjectName,
    by: UserId,
    by_name: Option<String>,
    play: bool,
}

/// From a watcher: its job has ended (any terminal status); free its slot.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct JobEnded {
    pub id: JobId,
}

/// From a watcher: its job really started (the slot is in use).
#[derive(Message)]
#[rtype(result = "usize")]
struct CountLive;

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
    Metrics::inc(&shared.metrics.commands_received);
    let ack = prepare_inner(&shared, addr, command).await;
    if ack.job.is_none() && ack.reply.tone != chatops_core::Tone::Neutral {
        Metrics::inc(&shared.metrics.commands_refused);
    }
    ack
}

async fn prepare_inner(
    shared: &Arc<Shared>,
    addr: Addr<PipelineActor>,
    command: ChatCommand,
) -> Ack {
    if !shared.accepting.load(Ordering::SeqCst) {
        return Ack::refused(messages::shutting_down());
    }
    let Some(project) = shared.settings.project_for_command(&command.slash_command) else {
        return Ack::refused(messages::unknown_project(&command.slash_command));
    };
    let project = project.clone();
    let role = project.role_of(&command.platform, &command.user);
    let refuse_role = |needed: Role| {
        Ack::refused(messages::role_too_low(
            project.name.as_str(),
            &command.platform,
            &command.user,
            role,
            needed,
        ))
    };
    match Subcommand::parse(&command.text) {
        Subcommand::Help => Ack::refused(help_for(&project, role, &command).await),
        Subcommand::Invalid { reason, .. } => {
            let help = help_for(&project, role, &command).await;
            Ack::refused(messages::invalid(&reason, help))
        }
        Subcommand::Run { job, input } => {
            if role < Role::RUN_JOBS {
                return refuse_role(Role::RUN_JOBS);
            }
            let loaded = match load_ci(&project).await {
                Ok(loaded) => loaded,
                Err(reply) => return Ack::refused(reply),
            };
            let (revision, ci) = loaded;
            let found = match ci.lookup(job.as_str()) {
                Lookup::Found(found) => found.clone(),
                Lookup::Hidden => return Ack::refused(messages::hidden_job(job.as_str())),
                Lookup::Missing { suggestions } => {
                    return Ack::refused(messages::unknown_job(
                        project.name.as_str(),
                        job.as_str(),
                        &suggestions,
                    ))
                }
            };
            let vars = rule_variables(&project, &revision, &command, Some(&input));
            match ci.evaluate(&found, &vars) {
                Decision::Excluded { reason } => {
                    Ack::refused(messages::excluded(job.as_str(), &reason))
                }
                Decision::Run {
                    when, variables, ..
                } => {
                    let create = CreateJob {
                        project: project.name.clone(),
                        job: found,
                        when,
                        file_variables: variables,
                        input,
                        revision,
                        command,
                    };
                    match addr.send(create).await {
                        Ok(ack) => ack,
                        Err(_) => Ack::refused(messages::shutting_down()),
                    }
                }
            }
        }
        Subcommand::Play { job } | Subcommand::Cancel { job } => {
            if role < Role::RUN_JOBS {
                return refuse_role(Role::RUN_JOBS);
            }
            let play = matches!(Subcommand::parse(&command.text), Subcommand::Play { .. });
            let control = Control {
                id: job,
                project: project.name.clone(),
                by: command.user.clone(),
                by_name: command.user_name.clone(),
                play,
            };
            match addr.send(control).await {
                Ok(ack) => ack,
                Err(_) => Ack::refused(messages::shutting_down()),
            }
        }
    }
}

/// `help`: the jobs this user could run from chat now.
async fn help_for(project: &ProjectSettings, role: Role, command: &ChatCommand) -> Reply {
    let runnable: Vec<(String, String)> = match load_ci(project).await {
        Ok((revision, ci)) => {
            let vars = rule_variables(project, &revision, command, None);
            ci.jobs()
                .iter()
                .filter_map(|job| match ci.evaluate(job, &vars) {
                    Decision::Run { when, .. } if when != When::Never => {
                        Some((job.name.clone(), when.as_str().to_owned()))
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
async fn load_ci(project: &ProjectSettings) -> Result<(Revision, CiConfig), Reply> {
    let project = project.clone();
    let name = project.name.to_string();
    let loaded = tokio::task::spawn_blocking(move || load_ci_blocking(&project)).await;
    match loaded {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(message)) => Err(messages::ci_error(&name, &message)),
        Err(join) => {
            tracing::error!(error = %join, "CI loading task failed");
            Err(messages::internal_error("reading the CI file failed"))
        }
    }
}

/// Blocking: resolves the revision and loads the CI file from it.
pub fn load_ci_blocking(project: &ProjectSettings) -> Result<(Revision, CiConfig), String> {
    let revision =
        git::resolve(&project.repository, project.branch.as_deref()).map_err(|e| e.to_string())?;
    let ci = match &revision {
        Revision::Folder { root } => chatops_ci::load(&DirSource::new(root), &project.ci_file),
        Revision::Git { repo, sha, .. } => {
            chatops_ci::load(&GitSource::new(repo, sha.clone()), &project.ci_file)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((revision, ci))
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

    fn has_slot(&self, project: &ProjectName) -> bool {
        let limit = self
            .shared
            .settings
            .project(project)
            .map_or(1, |p| p.max_concurrent_jobs.max(1));
        self.running < self.shared.settings.max_concurrent_jobs.max(1)
            && self.running_in(project) < limit
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
        Metrics::inc(&self.shared.metrics.jobs_running);
        live.watcher.do_send(crate::watcher::Start);
    }

    /// Puts a job in the queue and returns its 1-based position.
    fn enqueue(&mut self, id: JobId) -> usize {
        if let Some(live) = self.live.get_mut(&id) {
            live.stage = Stage::Queued;
        }
        self.queue.push_back(id);
        Metrics::inc(&self.shared.metrics.jobs_queued);
        self.shared.update_view(id, |v| {
            v.status = JobStatus::Queued {
                position: self.queue.len(),
            }
        });
        self.queue.len()
    }

    /// Starts queued jobs while slots are free, oldest first (a job of a project at its own limit
    /// does not hold back other projects' jobs).
    fn drain_queue(&mut self) {
        let mut i = 0;
        while i < self.queue.len() {
            let id = self.queue[i];
            let project = match self.live.get(&id) {
                Some(live) => live.project.clone(),
                None => {
                    self.queue.remove(i);
                    Metrics::dec(&self.shared.metrics.jobs_queued);
                    continue;
                }
            };
            if self.has_slot(&project) {
                self.queue.remove(i);
                Metrics::dec(&self.shared.metrics.jobs_queued);
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

    fn handle(&mut self, msg: CreateJob, ctx: &mut Context<Self>) -> Self::Result {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return MessageResult(Ack::refused(messages::shutting_down()));
        }
        let Some(project) = shared.settings.project(&msg.project).cloned() else {
            return MessageResult(Ack::refused(messages::internal_error("project vanished")));
        };
        let id = JobId(self.next_id);
        self.next_id += 1;
        let job_ref = JobRef {
            id,
            project: project.name.to_string(),
            command: project.command.clone(),
            job: msg.job.name.clone(),
            user: msg.command.user.clone(),
            user_name: msg.command.user_name.clone(),
            link: shared.links.url(id),
        };
        let log_path = shared.settings.log_path(id);
        shared.jobs.insert(
            id,
            JobView {
                id,
                project: project.name.clone(),
                job: msg.job.name.clone(),
                user: msg.command.user.clone(),
                platform: msg.command.platform.to_string(),
                status: JobStatus::Manual,
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
        };
        let watcher = WatcherActor::new(plan, self.shared.clone(), ctx.address()).start();
        self.live.insert(
            id,
            Live {
                watcher,
                project: msg.project.clone(),
                stage: Stage::Manual,
                job: job_ref.clone(),
            },
        );
        let reply = if msg.when == When::Manual {
            messages::manual(&job_ref)
        } else if self.has_slot(&msg.project) && self.queue.is_empty() {
            self.launch(id);
            messages::started(&job_ref)
        } else {
            let position = self.enqueue(id);
            // A slot may be free for this project even with others queued.
            self.drain_queue();
            match self.live.get(&id).map(|l| l.stage) {
                Some(Stage::Running) => messages::started(&job_ref),
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
        let Some(live) = self.live.get(&msg.id) else {
            return MessageResult(Ack::refused(messages::unknown_job_id(msg.id)));
        };
        if live.project != msg.project {
            return MessageResult(Ack::refused(messages::wrong_project(
                msg.id,
                msg.project.as_str(),
            )));
        }
        if msg.play {
            if live.stage != Stage::Manual {
                let status = self
                    .shared
                    .jobs
                    .get(&msg.id)
                    .map(|v| v.status.clone())
                    .unwrap_or(JobStatus::Running);
                return MessageResult(Ack::refused(messages::not_manual(msg.id, &status)));
            }
            let job_ref = live.job.clone();
            if self.has_slot(&msg.project) && self.queue.is_empty() {
                self.launch(msg.id);
            } else {
                self.enqueue(msg.id);
                self.drain_queue();
            }
            return MessageResult(Ack {
                reply: messages::play_requested(&job_ref, &msg.by),
                job: Some(msg.id),
            });
        }
        let by = msg.by_name.unwrap_or_else(|| msg.by.to_string());
        live.watcher
            .do_send(crate::watcher::Cancel { by: Some(by) });
        MessageResult(Ack {
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
                    Metrics::dec(&self.shared.metrics.jobs_running);
                }
                Stage::Queued => {
                    self.queue.retain(|id| *id != msg.id);
                    Metrics::dec(&self.shared.metrics.jobs_queued);
                }
                Stage::Manual => {}
            }
        }
        self.drain_queue();
    }
}

impl Handler<CountLive> for PipelineActor {
    type Result = usize;

    fn handle(&mut self, _msg: CountLive, _ctx: &mut Context<Self>) -> usize {
        self.live.len()
    }
}

impl Handler<CancelAll> for PipelineActor {
    type Result = ();

    fn handle(&mut self, _msg: CancelAll, _ctx: &mut Context<Self>) {
        for live in self.live.values() {
            live.watcher.do_send(crate::watcher::Cancel {
                by: Some("the chatops server shutting down".into()),
            });
        }
    }
}
