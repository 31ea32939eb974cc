//! The [`PipelineActor`]: owns the live jobs (their watchers) and the [`Scheduler`] that says
//! which of them run. Handlers are quick state changes; a `Submit` is answered by a future
//! ([`admission`]) that does the slow work outside the actor's state and comes back with a
//! `CreateJob`.

use super::admission;
use super::scheduler::{Scheduler, Slot};
use super::{Ack, JobView, Shared};
use crate::git::Revision;
use crate::messages::{self, JobRef};
use crate::metrics::Occupancy;
use crate::watcher::{JobPlan, WatcherActor};
use actix::prelude::*;
use chatops_ci::When;
use chatops_core::{ChatCommand, JobId, JobStatus, ProjectName, UserId};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// A job's watcher, started only when needed: a queued job is a plan, not an actor.
enum Watcher {
    /// Always `Some` but while the watcher is being started.
    Pending(Option<Box<JobPlan>>),
    Started(Addr<WatcherActor>),
}

pub struct PipelineActor {
    shared: Arc<Shared>,
    /// This actor's own address, for the watchers it starts (set in `started`).
    me: Option<Addr<PipelineActor>>,
    /// The watchers of jobs not yet ended: queued or running. Never the manual jobs that
    /// wait to be played: those are rows in the store (maybe for days, maybe by the ten
    /// thousand), and `play ID` reads them back (issue #9 item 9: holding each in memory grew
    /// the server without bound).
    live: HashMap<JobId, Watcher>,
    /// Which live jobs run and which wait.
    scheduler: Scheduler,
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
pub(super) struct Submit(pub ChatCommand);

/// A job that passed every check and is recorded, ready to become a pipeline.
#[derive(Message)]
#[rtype(result = "Ack")]
pub(super) struct CreateJob {
    pub id: JobId,
    pub command: ChatCommand,
    pub project: ProjectName,
    pub job: chatops_ci::Job,
    pub when: When,
    pub file_variables: Vec<(String, String)>,
    pub input: String,
    pub revision: Revision,
    /// A manual job being played, and by whom: it starts (or queues) whatever its `when`.
    pub played_by: Option<(UserId, Option<String>)>,
}

/// `cancel ID` of a live job, after the permission check. `None` when the job is not live here
/// (it may be a manual job that waits: the caller looks in the store).
#[derive(Message)]
#[rtype(result = "Option<Ack>")]
pub(super) struct Control {
    pub id: JobId,
    pub project: ProjectName,
    pub by: UserId,
    pub by_name: Option<String>,
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
pub(super) struct CountRunning;

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct CancelAll;

impl Handler<Submit> for PipelineActor {
    type Result = ResponseFuture<Ack>;

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let addr = ctx.address();
        Box::pin(async move { admission::prepare(shared, addr, msg.0).await })
    }
}

impl PipelineActor {
    pub(super) fn new(shared: Arc<Shared>) -> PipelineActor {
        let scheduler = Scheduler::new(shared.settings.max_concurrent_jobs);
        PipelineActor {
            shared,
            me: None,
            live: HashMap::new(),
            scheduler,
        }
    }

    /// Tells the watchers of jobs the scheduler just started to start, then shows the
    /// queue as it now is (positions, the occupancy gauges).
    fn launch(&mut self, started: &[JobId]) {
        for &id in started {
            if let Some(w) = self.watcher(id) {
                w.do_send(crate::watcher::Start);
            }
        }
        for (pos, id) in self.scheduler.queued().enumerate() {
            self.shared
                .update_view(id, |v| v.status = JobStatus::Queued { position: pos + 1 });
        }
        self.shared.metrics.emit(Occupancy::of(
            self.scheduler.running(),
            self.scheduler.queue_len(),
        ));
    }

    /// The job's watcher, started now if it was only a plan.
    fn watcher(&mut self, id: JobId) -> Option<Addr<WatcherActor>> {
        let me = self.me.clone()?;
        let watcher = self.live.get_mut(&id)?;
        let addr = match watcher {
            Watcher::Started(addr) => return Some(addr.clone()),
            Watcher::Pending(plan) => {
                let plan = plan.take()?;
                WatcherActor::new(*plan, self.shared.clone(), me).start()
            }
        };
        *watcher = Watcher::Started(addr.clone());
        Some(addr)
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
        let slot = Slot {
            project: plan.project.name.clone(),
            project_limit: plan.project.max_concurrent_jobs,
            resource_group: plan.job.resource_group.clone(),
        };
        self.live.insert(id, Watcher::Pending(Some(Box::new(plan))));
        let started = self.scheduler.add(id, slot);
        self.launch(&started);
        let reply = match (self.scheduler.position(id), msg.played_by) {
            (Some(position), None) => messages::queued(&job_ref, position),
            _ => reply_played,
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
        let project = self.scheduler.project_of(msg.id)?;
        if project != &msg.project {
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
        self.live.remove(&msg.id);
        let started = self.scheduler.remove(msg.id);
        self.launch(&started);
    }
}

impl Handler<CountRunning> for PipelineActor {
    type Result = usize;

    fn handle(&mut self, _msg: CountRunning, _ctx: &mut Context<Self>) -> usize {
        self.scheduler.len()
    }
}

impl Handler<CancelAll> for PipelineActor {
    type Result = ();

    /// Cancels running and queued jobs; manual jobs keep waiting (in the store, playable after
    /// a restart).
    fn handle(&mut self, _msg: CancelAll, _ctx: &mut Context<Self>) {
        let ids = self.scheduler.ids();
        for id in ids {
            if let Some(w) = self.watcher(id) {
                w.do_send(crate::watcher::Cancel {
                    by: Some("the chatops server shutting down".into()),
                });
            }
        }
    }
}
