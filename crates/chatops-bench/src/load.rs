//! The load client: closed-loop workers (each sends, waits for its answer, sends again), for a
//! fixed time or a fixed number of operations, recording each operation's latency.
//!
//! Closed loop on purpose: with 2 cores shared by client and server, an open-loop generator
//! would measure its own queue. The client is kept cheap: one `reqwest` client with keep-alive
//! HTTP/1.1 connections shared by the workers, bodies built and signed in place.

use crate::fake::FakePlatform;
use crate::slack;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why one operation did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered the command with another status than 200.
    Status(u16),
    /// The request failed (connection refused or reset, timeout).
    Transport(String),
    /// The ack was not the JSON chatops' contract promises (`response_type` set).
    BadAck(String),
    /// The job's final reply did not arrive in time.
    Lost,
    /// The final reply arrived but says the job did not succeed.
    NotSucceeded,
    /// A baseline's own work failed.
    Baseline(String),
}

/// What a run of operations gave.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Latencies of the operations that counted.
    pub latencies: Vec<Duration>,
    /// Why operations failed (the first few, for the message).
    pub failures: Vec<Failure>,
    /// Total failed operations.
    pub failed: u64,
    /// Of those, replies that did not arrive in time.
    pub lost: u64,
    /// Of those, replies saying the job did not succeed.
    pub not_succeeded: u64,
    /// The measured window (fixed-time runs) or the whole run (fixed-count runs).
    pub elapsed: Duration,
}

impl Outcome {
    /// Counted operations per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.latencies.len() as f64 / s
        } else {
            0.0
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
        self.lost += other.lost;
        self.not_succeeded += other.not_succeeded;
        for f in other.failures {
            if self.failures.len() < 5 {
                self.failures.push(f);
            }
        }
    }

    /// Counts a failed operation.
    pub fn fail(&mut self, f: Failure) {
        self.failed += 1;
        match f {
            Failure::Lost => self.lost += 1,
            Failure::NotSucceeded => self.not_succeeded += 1,
            _ => {}
        }
        if self.failures.len() < 5 {
            self.failures.push(f);
        }
    }
}

/// Runs `op` in `concurrency` closed-loop workers for `warmup + measure`; counts only the
/// operations that start after the warm-up and end within the window. Failures count whenever
/// they happen (a refused command is wrong during warm-up too).
pub async fn run_for<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
    op: F,
) -> Outcome
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, Failure>> + Send + 'static,
{
    let op = Arc::new(op);
    let from = Instant::now() + warmup;
    let until = from + measure;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut out = Outcome::default();
                loop {
                    let t0 = Instant::now();
                    if t0 >= until {
                        break;
                    }
                    let r = op().await;
                    let t1 = Instant::now();
                    match r {
                        Ok(lat) if t0 >= from && t1 <= until => out.latencies.push(lat),
                        Ok(_) => {}
                        Err(f) => out.fail(f),
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome {
        elapsed: measure,
        ..Outcome::default()
    };
    for w in workers {
        match w.await {
            Ok(out) => total.merge(out),
            Err(e) => total.fail(Failure::Transport(format!("a worker panicked: {e}"))),
        }
    }
    total
}

/// Runs `op(i)` for `i` in `0..count` in `concurrency` closed-loop workers; `elapsed` is the
/// whole run's wall time.
pub async fn run_count<F, Fut>(concurrency: usize, count: u64, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, Failure>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let op = op.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut out = Outcome::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    match op(i).await {
                        Ok(lat) => out.latencies.push(lat),
                        Err(f) => out.fail(f),
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome::default();
    for w in workers {
        match w.await {
            Ok(out) => total.merge(out),
            Err(e) => total.fail(Failure::Transport(format!("a worker panicked: {e}"))),
        }
    }
    total.elapsed = t0.elapsed();
    total
}

/// What every operation needs: the HTTP client, the fake platform, the command numbering.
pub struct Client {
    http: reqwest::Client,
    /// The fake chat platform replies go to.
    pub fake: FakePlatform,
    next_id: AtomicU64,
    /// Accepted commands (200 acks) since the start, to tell lost replies from refused commands.
    accepted: AtomicU64,
    /// The first failing ack's body, for the error message.
    first_bad_ack: Mutex<Option<String>>,
}

impl Client {
    /// A client with keep-alive connections for up to 64 concurrent requests per server.
    pub fn new(fake: FakePlatform) -> Result<Client, crate::error::BenchError> {
        let http = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(crate::error::BenchError::Client)?;
        Ok(Client {
            http,
            fake,
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            first_bad_ack: Mutex::new(None),
        })
    }

    /// The number the next command will get (its `/reply/<n>`).
    pub fn peek_id(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Commands answered 200 so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Takes a number for a new command.
    pub fn take_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Posts the signed slash command `/bench {text}` (reply to `/reply/{n}`) to
    /// `{base}/slack/commands` and reads the whole ack. Returns the ack's body.
    pub async fn command(&self, base: &str, text: &str, n: u64) -> Result<String, Failure> {
        let c = slack::command(text, &self.fake.reply_url(n), n);
        let resp = self
            .http
            .post(format!("{base}/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", c.timestamp)
            .header("x-slack-signature", c.signature)
            .body(c.body)
            .send()
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        if status != 200 {
            self.note_bad_ack(&body);
            return Err(Failure::Status(status));
        }
        // A substring test, not a JSON parse: the client must stay cheap. The sanity check
        // before each load parses the first ack fully.
        if !body.contains("\"response_type\"") {
            self.note_bad_ack(&body);
            return Err(Failure::BadAck(body.chars().take(200).collect()));
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(body)
    }

    /// One ack: posts a command and returns how long the answer took.
    pub async fn ack(&self, base: &str, text: &str) -> Result<Duration, Failure> {
        let n = self.take_id();
        let t0 = Instant::now();
        self.command(base, text, n).await?;
        Ok(t0.elapsed())
    }

    /// One command → reply: posts a command and waits (up to `patience`) for its final reply at
    /// the fake; returns the time from sending to the reply's arrival.
    pub async fn command_to_reply(
        &self,
        base: &str,
        text: &str,
        patience: Duration,
    ) -> Result<Duration, Failure> {
        let n = self.take_id();
        let arrival = self.fake.expect(n);
        let t0 = Instant::now();
        self.command(base, text, n).await?;
        match tokio::time::timeout(patience, arrival).await {
            Ok(Ok(a)) if a.succeeded => Ok(a.at.saturating_duration_since(t0)),
            Ok(Ok(_)) => Err(Failure::NotSucceeded),
            _ => Err(Failure::Lost),
        }
    }

    /// The body of the first ack that was not a 200 JSON, if any.
    pub fn first_bad_ack(&self) -> Option<String> {
        self.first_bad_ack
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note_bad_ack(&self, body: &str) {
        let mut first = self.first_bad_ack.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(body.chars().take(500).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the test")
    }

    #[test]
    fn run_count_runs_each_index_once() {
        rt().block_on(async {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = seen.clone();
            let out = run_count(4, 50, move |i| {
                let s = s.clone();
                async move {
                    s.lock().expect("test lock").push(i);
                    if i % 10 == 0 {
                        Err(Failure::Lost)
                    } else {
                        Ok(Duration::from_millis(1))
                    }
                }
            })
            .await;
            let mut seen = seen.lock().expect("test lock").clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..50).collect::<Vec<_>>());
            assert_eq!(out.latencies.len(), 45);
            assert_eq!(out.failed, 5);
            assert_eq!(out.lost, 5);
            assert_eq!(out.failures.len(), 5);
            assert!(out.rate() > 0.0);
        });
    }

    #[test]
    fn run_for_counts_only_the_window() {
        rt().block_on(async {
            let calls = Arc::new(AtomicU64::new(0));
            let c = calls.clone();
            let out = run_for(
                2,
                Duration::from_millis(100),
                Duration::from_millis(300),
                move || {
                    let c = c.clone();
                    async move {
                        c.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(Duration::from_millis(10))
                    }
                },
            )
            .await;
            let total = calls.load(Ordering::Relaxed);
            let counted = out.latencies.len() as u64;
            // ~2 workers × 40 calls over 400 ms; the warm-up's ~20 must not count.
            assert!(counted < total, "counted {counted} of {total}");
            assert!(counted >= 20, "counted {counted}");
            assert_eq!(out.failed, 0);
            let rate = out.rate();
            assert!((50.0..=250.0).contains(&rate), "rate {rate}");
        });
    }
}
