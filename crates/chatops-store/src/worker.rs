//! The store's thread: the one owner of the SQLite connection, and group commit.
//!
//! Callers send [`Message`]s over an unbounded channel (sending never blocks, so async callers
//! never stall their runtime); each request carries a `tokio::sync::oneshot` for its answer.
//! The thread waits for one message, then drains every message already queued (up to
//! [`MAX_BATCH`]) and runs the whole batch in one transaction, each request in its own savepoint
//! so a failing request undoes only its own writes. After the commit it answers them all. Under
//! load, N concurrent requests therefore cost one commit instead of N; alone, a request costs one
//! commit and no waiting (the thread never sleeps hoping for more work).
//!
//! A request is answered only after its transaction committed: an `Ok` means the change is in
//! the WAL. If the commit fails, every request of the batch gets [`StoreError::Commit`].
//!
//! The thread ends when every [`Store`](crate::Store) handle is dropped, on a
//! [`Message::Close`], or if a request panics (a bug): then the batch's transaction rolls back,
//! its callers and everyone after get [`StoreError::Closed`], never a hang.

use crate::error::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// The most requests one transaction holds: bounds how long the first of a burst waits.
pub(crate) const MAX_BATCH: usize = 1024;

/// What handles send to the thread.
pub(crate) enum Message {
    /// Run a request in the next batch.
    Call(Box<dyn Request>),
    /// Finish the current batch, close the connection, then answer and stop.
    Close(oneshot::Sender<()>),
}

/// A request: a closure over the connection and the channel its answer goes back on.
pub(crate) trait Request: Send {
    /// Runs the request inside the batch; returns whether it succeeded (else its savepoint is
    /// rolled back) and its answer, to send once the batch's fate is known.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Box<dyn Answer>);
    /// Answers with `error` without running.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A request's result, waiting for its batch to commit.
pub(crate) trait Answer: Send {
    /// Sends the answer; `committed` is the batch's commit result.
    fn send(self: Box<Self>, committed: Result<(), StoreError>);
}

/// The one [`Request`] implementation: `f` run against the connection.
pub(crate) struct Call<F, T> {
    pub(crate) f: F,
    pub(crate) reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Done<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Request for Call<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Box<dyn Answer>) {
        let Call { f, reply } = *self;
        let result = f(conn);
        (result.is_ok(), Box::new(Done { result, reply }))
    }

    fn fail(self: Box<Self>, error: StoreError) {
        // The caller may have stopped waiting (its future was dropped): nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send + 'static> Answer for Done<T> {
    fn send(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (self.result, committed) {
            (Ok(value), Ok(())) => Ok(value),
            // The request's own error explains more than the batch's commit error.
            (Err(own), _) => Err(own),
            (Ok(_), Err(commit)) => Err(commit),
        };
        let _ = self.reply.send(answer);
    }
}

/// State shared between the handles and the thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Requests run.
    pub(crate) requests: AtomicU64,
    /// Transactions run, one per batch.
    pub(crate) transactions: AtomicU64,
    /// The largest batch so far.
    pub(crate) largest_batch: AtomicU64,
    /// Set when the thread stops, for whatever reason.
    pub(crate) closed: AtomicBool,
}

/// Marks the store closed when the thread ends, also by a panic (drop runs while unwinding).
struct ClosedOnDrop(Arc<Shared>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        if std::thread::panicking() {
            tracing::error!("the store's thread panicked; the store is closed");
        }
    }
}

/// Starts the thread that owns `conn`.
/// `behavior` is how each batch's transaction begins: `Immediate` for a store that writes,
/// `Deferred` for a read-only one (which may never take the write lock).
pub(crate) fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    behavior: TransactionBehavior,
) -> Result<mpsc::Sender<Message>, StoreError> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("chatops-store".into())
        .spawn(move || run(conn, receiver, shared, behavior))
        .map_err(StoreError::Spawn)?;
    Ok(sender)
}

fn run(
    mut conn: Connection,
    receiver: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    behavior: TransactionBehavior,
) {
    let _closed = ClosedOnDrop(shared.clone());
    let mut closers = Vec::new();
    // `recv` fails once every handle is gone: nobody can ask anything any more.
    while let Ok(first) = receiver.recv() {
        let mut requests = Vec::new();
        let mut take = |message| match message {
            Message::Call(request) => requests.push(request),
            Message::Close(done) => closers.push(done),
        };
        take(first);
        for _ in 1..MAX_BATCH {
            match receiver.try_recv() {
                Ok(message) => take(message),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, requests, &shared, behavior);
        if !closers.is_empty() {
            break;
        }
    }
    // Requests still queued are dropped with the receiver; their callers get `Closed`.
    drop(receiver);
    // Closed from here on, before `close()` callers hear back (the drop guard also covers panics).
    shared.closed.store(true, Ordering::SeqCst);
    // Closing the last connection checkpoints the WAL into the database file.
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing the store failed");
    }
    for done in closers {
        let _ = done.send(());
    }
}

fn run_batch(
    conn: &mut Connection,
    mut requests: Vec<Box<dyn Request>>,
    shared: &Shared,
    behavior: TransactionBehavior,
) {
    if requests.is_empty() {
        return;
    }
    let count = requests.len();
    // IMMEDIATE takes the write lock up front (waiting up to the busy timeout for another
    // process), so a batch never fails halfway on a lock upgrade. A read-only store defers.
    let mut tx = match conn.transaction_with_behavior(behavior) {
        Ok(tx) => tx,
        Err(error) => {
            let message = error.to_string();
            tracing::error!(%message, "the store could not begin a transaction");
            for request in requests {
                request.fail(StoreError::Commit(message.clone()));
            }
            return;
        }
    };
    // A request alone needs no savepoint: if it fails, rolling back the transaction undoes it.
    // (The common case under light load; it saves two statements.)
    if count == 1 {
        if let Some(request) = requests.pop() {
            let (ok, answer) = request.run(&tx);
            // On failure the request's own error is its answer; there is nothing to commit.
            let ended = if ok { tx.commit() } else { tx.rollback() };
            finish_batch(
                vec![answer],
                ended.map_err(|error| error.to_string()),
                shared,
            );
        }
        return;
    }
    let mut answers = Vec::with_capacity(count);
    let mut poisoned: Option<String> = None;
    for request in requests {
        if let Some(message) = &poisoned {
            request.fail(StoreError::Commit(message.clone()));
            continue;
        }
        let savepoint = match tx.savepoint() {
            Ok(savepoint) => savepoint,
            Err(error) => {
                poisoned = Some(error.to_string());
                request.fail(StoreError::Sqlite(error));
                continue;
            }
        };
        let (ok, answer) = request.run(&savepoint);
        if ok {
            // RELEASE keeps the request's writes in the batch.
            if let Err(error) = savepoint.commit() {
                poisoned = Some(error.to_string());
            }
        } else if let Err(error) = savepoint.finish() {
            // `finish` rolls back to the savepoint (its drop behaviour) and releases it.
            poisoned = Some(error.to_string());
        }
        answers.push(answer);
    }
    let committed = match poisoned {
        // A savepoint that would not release or roll back leaves the batch in an unknown
        // state: drop it all (dropping `tx` rolls back) rather than commit half a request.
        Some(message) => {
            drop(tx);
            Err(message)
        }
        None => tx.commit().map_err(|error| error.to_string()),
    };
    finish_batch(answers, committed, shared);
}

/// Counts the batch and answers its requests with the commit's outcome.
fn finish_batch(answers: Vec<Box<dyn Answer>>, committed: Result<(), String>, shared: &Shared) {
    let count = answers.len();
    shared
        .requests
        .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
    shared.transactions.fetch_add(1, Ordering::Relaxed);
    shared
        .largest_batch
        .fetch_max(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
    if let Err(message) = &committed {
        tracing::error!(%message, requests = count, "the store could not commit a batch");
    }
    for answer in answers {
        answer.send(committed.clone().map_err(StoreError::Commit));
    }
}
