//! [`Store`]: the cloneable handle the rest of chatops holds. Every method is `async`, sends its
//! request to the store's thread and awaits the answer, which comes once the change committed.

use crate::error::StoreError;
use crate::model::{
    AttemptOutcome, CliRequest, CliRequestId, CommandRecord, JobRecord, JobUpdate, NewCliRequest,
    NewJob, OutboxId, OutboxItem, Recorded, StoredCommand,
};
use crate::queries;
use crate::runner::RunnerJobRow;
use crate::schema;
use crate::worker::{self, Call, Message, Shared};
use chatops_core::{ChannelId, JobId, PlatformId, ProjectName, Reply, ReplyTarget, UserId};
use rusqlite::{Connection, TransactionBehavior};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;

/// A handle on the store. Cheap to clone; every clone talks to the same thread. The thread ends
/// when the last handle is dropped or on [`Store::close`].
///
/// The methods need no particular runtime: the answer comes over a `tokio::sync::oneshot`, which
/// any executor can await, so they work under actix's `#[actix_rt::main]` (the CLI's `jobs` and
/// `log` commands included) and in `#[tokio::test]`s. They never block the calling thread.
#[derive(Clone)]
pub struct Store {
    sender: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    path: Arc<PathBuf>,
}

/// Counters of the store's work: how well group commit batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Requests run.
    pub requests: u64,
    /// Transactions run, one per batch of one or more requests. Fewer transactions than
    /// requests means group commit is sharing commits.
    pub transactions: u64,
    /// The most requests one transaction held.
    pub largest_batch: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Store {
    /// Opens the database at `path` (creating it and its parent folders when missing), applies
    /// migrations, and starts the store's thread. Blocks the caller while it opens and migrates
    /// (a few milliseconds; it happens once, at start-up).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = schema::open(path)?;
        Store::start(conn, path, TransactionBehavior::Immediate)
    }

    /// Opens an existing database at `path` for reading only (`chatops jobs`, `chatops log`):
    /// nothing is created, migrated or written, so it is safe beside a live server. Every
    /// method that writes fails (SQLite answers "attempt to write a readonly database").
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = schema::open_read_only(path)?;
        Store::start(conn, path, TransactionBehavior::Deferred)
    }

    fn start(
        conn: Connection,
        path: &Path,
        behavior: TransactionBehavior,
    ) -> Result<Store, StoreError> {
        let shared = Arc::new(Shared::default());
        let sender = worker::spawn(conn, shared.clone(), behavior)?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store {
            sender,
            shared,
            path: Arc::new(path.to_owned()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once the store's thread has stopped (closed, or died): every request then fails
    /// with [`StoreError::Closed`]. For `/healthz`.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Counters of the work done so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            transactions: self.shared.transactions.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
        }
    }

    /// Stops the store: requests sent before are run and committed, the connection is closed
    /// (checkpointing the WAL into the file), then this returns. Every handle's later requests
    /// fail with [`StoreError::Closed`]. Closing a closed store does nothing.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Close(done)).is_err() {
            return Ok(());
        }
        // An error here means the thread died instead of closing cleanly; it is stopped either way.
        wait.await.map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the store's thread inside the next batch and returns its result once the
    /// batch committed.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Call(Box::new(Call { f, reply })))
            .map_err(|_| StoreError::Closed)?;
        // The sender is dropped without an answer only if the thread stopped before running
        // the request (closed, or panicked).
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes a runner job's row (insert or replace). The request is queued at once, before
    /// the returned future is first polled: rows written one after another from one thread are
    /// committed in that order even if their futures are awaited later, or never.
    pub fn put_runner_job(
        &self,
        row: RunnerJobRow,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let f = move |conn: &Connection| crate::runner::put(conn, &row);
        let sent = self
            .sender
            .send(Message::Call(Box::new(Call { f, reply })))
            .is_ok();
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Every runner job not finished, oldest first (the coordinator's restart).
    pub async fn open_runner_jobs(&self) -> Result<Vec<RunnerJobRow>, StoreError> {
        self.call(crate::runner::open_rows).await
    }

    /// One runner job's row, finished or not.
    pub async fn runner_job(&self, id: u64) -> Result<Option<RunnerJobRow>, StoreError> {
        self.call(move |conn| crate::runner::get(conn, id)).await
    }

    /// Records a command in the audit log and, when it creates one, its job, in one
    /// transaction: when this returns `Ok`, both are durable and the ack can be sent.
    ///
    /// A command whose `(platform, request_id)` was recorded before is logged as a duplicate and
    /// creates nothing: the answer is [`Recorded::Duplicate`] with the first delivery's job.
    pub async fn record_command(
        &self,
        cmd: CommandRecord,
        job: Option<NewJob>,
    ) -> Result<Recorded, StoreError> {
        self.call(move |conn| queries::record_command(conn, &cmd, job.as_ref()))
            .await
    }

    /// Changes a job: status, times, exit code, process group, log path, reply target. An
    /// update that carries a status for a job already in a terminal state fails with
    /// [`StoreError::JobFinished`] and changes nothing; an unknown id fails with
    /// [`StoreError::UnknownJob`].
    pub async fn update_job(&self, id: JobId, update: JobUpdate) -> Result<(), StoreError> {
        self.call(move |conn| queries::update_job(conn, id, &update))
            .await
    }

    /// One job, if it exists.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call(move |conn| queries::job(conn, id)).await
    }

    /// The newest `limit` jobs, newest first (`chatops jobs`).
    pub async fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.call(move |conn| queries::recent_jobs(conn, limit))
            .await
    }

    /// The newest `limit` jobs of a project asked for in one channel, newest first; only
    /// `user`'s when given (chat's `jobs`, and `status` without an id).
    pub async fn channel_jobs(
        &self,
        project: ProjectName,
        target: (PlatformId, ChannelId),
        user: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.call(move |conn| {
            let (platform, channel) = &target;
            let scope = (project.as_str(), platform.as_str(), channel.as_str());
            queries::channel_jobs(conn, scope, user.as_ref().map(|u| u.as_str()), limit)
        })
        .await
    }

    /// Every job whose status name ([`JobStatus::name`](chatops_core::JobStatus::name)) is one
    /// of `names`, oldest first. Restart recovery asks for `["running"]` (to mark interrupted
    /// and kill their `pgid`s), `["queued"]` and `["manual"]`.
    pub async fn jobs_with_status(&self, names: &[&str]) -> Result<Vec<JobRecord>, StoreError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        self.call(move |conn| queries::jobs_with_status(conn, &names))
            .await
    }

    /// The newest `limit` commands of the audit log, newest first.
    pub async fn recent_commands(&self, limit: usize) -> Result<Vec<StoredCommand>, StoreError> {
        self.call(move |conn| queries::recent_commands(conn, limit))
            .await
    }

    /// Counts one post through the job's `response_url`, unless `budget` posts were made
    /// already (Slack and Mattermost accept 5). Returns which use this is (1 for the first), or
    /// `None` when the budget is spent and the reply must go another way. Check and count are
    /// one step, so two replies racing for the last use cannot both get it.
    pub async fn use_response_url(
        &self,
        job: JobId,
        budget: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.call(move |conn| queries::use_response_url(conn, job, budget))
            .await
    }

    /// Puts a reply in the outbox, due at once (`at` is now). It is delivered by whoever
    /// claims it ([`Store::claim_due_replies`]); it survives restarts until then.
    pub async fn enqueue_reply(
        &self,
        job: Option<JobId>,
        target: &ReplyTarget,
        reply: &Reply,
        at: SystemTime,
    ) -> Result<OutboxId, StoreError> {
        let target = target.clone();
        let reply = reply.clone();
        self.call(move |conn| queries::enqueue_reply(conn, job, &target, &reply, at))
            .await
    }

    /// Puts a reply in the outbox already claimed for `lease` by the caller, who delivers it
    /// at once and reports with [`Store::reply_attempted`]; if the caller dies, the reply comes
    /// due when the lease ends. Returns `false` (and leaves the reply due now, for the lanes)
    /// when an older reply about the same job is still pending: replies keep their order.
    pub async fn enqueue_reply_claimed(
        &self,
        job: Option<JobId>,
        target: &ReplyTarget,
        reply: &Reply,
        at: SystemTime,
        lease: Duration,
    ) -> Result<(OutboxId, bool), StoreError> {
        let target = target.clone();
        let reply = reply.clone();
        self.call(move |conn| queries::enqueue_reply_claimed(conn, job, &target, &reply, at, lease))
            .await
    }

    /// Takes up to `limit` replies due at `now` (of `platform`, or of every platform when
    /// `None`), oldest due first, and claims them for `lease`: they are not returned again
    /// until the lease runs out, so report each with [`Store::reply_attempted`] before then
    /// (choose a lease longer than a delivery's timeout). A reply claimed by a chatops that
    /// died comes due again when its lease ends.
    ///
    /// Replies about the same job come out in the order they were enqueued: one is not due
    /// while an older one about its job is still pending.
    pub async fn claim_due_replies(
        &self,
        now: SystemTime,
        lease: Duration,
        platform: Option<&PlatformId>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let platform = platform.cloned();
        self.call(move |conn| {
            queries::claim_due_replies(conn, now, lease, platform.as_ref(), limit)
        })
        .await
    }

    /// When the earliest pending reply (of `platform`, or of any) comes due, if any is pending:
    /// a deliverer sleeps until then (or until it is told of a new reply).
    pub async fn next_reply_due(
        &self,
        platform: Option<&PlatformId>,
    ) -> Result<Option<SystemTime>, StoreError> {
        let platform = platform.cloned();
        self.call(move |conn| queries::next_reply_due(conn, platform.as_ref()))
            .await
    }

    /// One reply of the outbox, whatever its state.
    pub async fn reply(&self, id: OutboxId) -> Result<Option<OutboxItem>, StoreError> {
        self.call(move |conn| queries::reply(conn, id)).await
    }

    /// Records how a delivery attempt went: delivered (done), retry at a time, or given up
    /// (done, with the reason kept). Fails with [`StoreError::ReplyNotPending`] for a reply
    /// that is unknown or already done.
    pub async fn reply_attempted(
        &self,
        id: OutboxId,
        outcome: AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.call(move |conn| queries::reply_attempted(conn, id, &outcome))
            .await
    }

    /// Applies `update` to job `id` only if its status is still `expected` (a status name, e.g.
    /// `manual`); answers whether it did. Check and change are one step, so of two plays of
    /// one manual job only one gets `true`.
    pub async fn update_job_if(
        &self,
        id: JobId,
        expected: &'static str,
        update: JobUpdate,
    ) -> Result<bool, StoreError> {
        self.call(move |conn| queries::update_job_if(conn, id, expected, &update))
            .await
    }

    /// Marks every manual job created before `created_before` expired (finished at `at`);
    /// answers how many.
    pub async fn expire_manual_jobs(
        &self,
        created_before: SystemTime,
        at: SystemTime,
    ) -> Result<usize, StoreError> {
        self.call(move |conn| queries::expire_manual_jobs(conn, created_before, at))
            .await
    }

    /// Hands a command to the live server (the command line beside `chatops serve`).
    pub async fn submit_cli_request(
        &self,
        request: NewCliRequest,
    ) -> Result<CliRequestId, StoreError> {
        self.call(move |conn| queries::submit_cli_request(conn, &request))
            .await
    }

    /// Takes up to `limit` pending command-line requests, oldest first (the server runs them).
    pub async fn take_cli_requests(&self, limit: usize) -> Result<Vec<CliRequest>, StoreError> {
        self.call(move |conn| queries::take_cli_requests(conn, limit))
            .await
    }

    /// The server's answer to a command-line request: the ack's text and its job.
    pub async fn answer_cli_request(
        &self,
        id: CliRequestId,
        ack: String,
        job: Option<JobId>,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.call(move |conn| queries::answer_cli_request(conn, id, &ack, job, at))
            .await
    }

    /// The reply of the job a command-line request created.
    pub async fn cli_reply(&self, id: CliRequestId, reply: String) -> Result<(), StoreError> {
        self.call(move |conn| queries::cli_reply(conn, id, &reply))
            .await
    }

    /// One command-line request, as it stands.
    pub async fn cli_request(&self, id: CliRequestId) -> Result<Option<CliRequest>, StoreError> {
        self.call(move |conn| queries::cli_request(conn, id)).await
    }

    /// Runs `f` on the store's thread like any request (tests: slow or panicking requests).
    #[cfg(test)]
    pub(crate) async fn call_for_test<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.call(f).await
    }
}

#[cfg(test)]
mod tests;
