//! Admission: what a chat command may do. Finds the project, checks the user's role, parses
//! the subcommand, reads the CI file and evaluates the job for a chat pipeline, records it;
//! answers refusals with a reply that names the cause. Runs in the future a `Submit` returns,
//! outside the actor's state; a job that passes goes back to the actor as a `CreateJob`.

use super::actor::{Control, CreateJob, PipelineActor};
use super::{Ack, Shared};
use crate::error::PipelineError;
use crate::git::Revision;
use crate::messages::{self, JobRef};
use crate::metrics::{CommandReceived, CommandRefused, JobFinished};
use crate::settings::ProjectSettings;
use actix::prelude::*;
use chatops_ci::{CiConfig, Decision, Lookup, Variables, When};
use chatops_core::{ChatCommand, JobId, JobName, JobStatus, Reply, Role, Subcommand, UserId};
use chatops_store::{CommandRecord, JobRecord, JobUpdate, NewJob, Outcome, Recorded};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Everything a command needs before it can touch the actor's state: project, role, CI file.
pub(super) async fn prepare(
    shared: Arc<Shared>,
    addr: Addr<PipelineActor>,
    command: ChatCommand,
) -> Ack {
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
        Ok(Err(e)) => Err(messages::ci_error(project.name.as_str(), &e.to_string())),
        Err(join) => {
            tracing::error!(error = %join, "CI loading task failed");
            Err(messages::internal_error("reading the CI file failed"))
        }
    }
}

/// Blocking, uncached: resolves the revision and loads the CI file from it (`chatops check`).
pub fn load_ci_blocking(
    project: &ProjectSettings,
) -> Result<(Revision, Arc<CiConfig>), PipelineError> {
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
