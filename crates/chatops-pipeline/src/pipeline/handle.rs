//! [`PipelineHandle`]: the cloneable handle the rest of the program uses; actix stays behind
//! it.

use super::actor::{CancelAll, CountRunning, PipelineActor, Submit};
use super::{Ack, JobView, Shared};
use crate::executors::Executors;
use crate::links::LinkSigner;
use crate::messages;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::settings::Settings;
use actix::prelude::*;
use chatops_core::{Adapters, ChatCommand, JobId, Reply};
use chatops_store::Store;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

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
        executors: Executors,
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
        PipelineHandle {
            addr: PipelineActor::new(shared.clone()).start(),
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
