//! The fake chat platform: an HTTP server in the bench process that plays Slack's
//! `response_url` endpoints and the two Web API methods live progress uses. Every command gets
//! its own `/reply/<n>` and its own channel `CB<n>`; the fake records when the job's final reply
//! (the post naming its status) arrives, by `response_url` or as a bot post in the thread of the
//! status message (`chat.postMessage` with `thread_ts`), and counts duplicates. Status messages
//! (`chat.postMessage` without `thread_ts`) and their edits (`chat.update`) are counted apart.
//!
//! It runs on its own thread with its own actix `System` and one worker, so it neither needs
//! nor disturbs the bench's Tokio runtime; arrivals reach the load client through oneshot
//! channels, which work across runtimes.

use crate::error::BenchError;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::HashMap;
use std::net::TcpListener;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

/// The final reply for one command, as the fake received it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When the post reached the fake (its body read).
    pub at: Instant,
    /// Whether the reply says the job succeeded (else it failed, was canceled or timed out).
    pub succeeded: bool,
}

/// How the replies for a set of commands went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyCounts {
    /// Commands whose final reply arrived (once or more).
    pub received: u64,
    /// Final replies beyond the first, summed over the commands.
    pub duplicates: u64,
}

#[derive(Default)]
struct State {
    /// Who waits for which command's final reply; taken when it arrives.
    waiters: HashMap<u64, oneshot::Sender<Arrival>>,
    /// Final replies received per command.
    finals: HashMap<u64, u64>,
    /// Posts that are not a final reply (chatops posts nothing else to a `response_url` today;
    /// counted so a change shows up instead of passing for a reply).
    other_posts: u64,
    /// Live progress: status messages posted (`chat.postMessage` outside a thread).
    status_posts: u64,
    /// Live progress: edits of status messages (`chat.update`), progress and final.
    edits: u64,
}

/// The running fake platform. Stops when dropped.
pub struct FakePlatform {
    state: Arc<Mutex<State>>,
    base: String,
    host_port: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

/// Locks the state; a poisoned lock (a panic while holding it) still holds consistent counts,
/// since every update is a single insert or increment.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakePlatform {
    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start() -> Result<FakePlatform, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(BenchError::Fake)?;
        let addr = listener.local_addr().map_err(BenchError::Fake)?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fake-platform".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let result = system.block_on(async move {
                    let server = HttpServer::new(move || {
                        let state = shared.clone();
                        App::new()
                            // A reply is at most a few tens of kB; the default 256 kB cap would
                            // turn a bigger one into a 413 and a retry, not a visible failure.
                            .app_data(web::PayloadConfig::new(64 << 20))
                            .default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                                let state = state.clone();
                                async move { receive(&state, &req, &body) }
                            }))
                    })
                    .workers(1)
                    .disable_signals()
                    .listen(listener)?
                    .run();
                    let _ = tx.send(server.handle());
                    server.await
                });
                if let Err(e) = result {
                    eprintln!("chatops-bench: the fake platform stopped: {e}");
                }
            })
            .map_err(BenchError::Fake)?;
        let handle = rx.recv().map_err(|_| {
            BenchError::Fake(std::io::Error::other("the fake platform's thread ended"))
        })?;
        Ok(FakePlatform {
            state,
            base: format!("http://{addr}"),
            host_port: format!("127.0.0.1:{}", addr.port()),
            handle,
            thread: Some(thread),
        })
    }

    /// `host:port`, for the config's `response_url_hosts`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// The `response_url` for command `n`.
    pub fn reply_url(&self, n: u64) -> String {
        format!("{}/reply/{n}", self.base)
    }

    /// Registers interest in command `n`'s final reply. Call it before sending the command, so
    /// a reply faster than the ack is not missed.
    pub fn expect(&self, n: u64) -> oneshot::Receiver<Arrival> {
        let (tx, rx) = oneshot::channel();
        lock(&self.state).waiters.insert(n, tx);
        rx
    }

    /// How the final replies for commands `ids` went so far.
    pub fn counts(&self, ids: Range<u64>) -> ReplyCounts {
        let state = lock(&self.state);
        let mut c = ReplyCounts::default();
        for n in ids {
            if let Some(&k) = state.finals.get(&n) {
                c.received += 1;
                c.duplicates += k.saturating_sub(1);
            }
        }
        c
    }

    /// Posts that were not final replies, since the start.
    pub fn other_posts(&self) -> u64 {
        lock(&self.state).other_posts
    }

    /// Live progress so far: (status messages posted, edits of them).
    pub fn progress_posts(&self) -> (u64, u64) {
        let state = lock(&self.state);
        (state.status_posts, state.edits)
    }

    /// Forgets the records of commands `ids` (after they are counted), so memory stays flat
    /// over a long bench.
    pub fn forget(&self, ids: Range<u64>) {
        let mut state = lock(&self.state);
        for n in ids {
            state.finals.remove(&n);
            state.waiters.remove(&n);
        }
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        // `stop` returns a future that only reports completion; the stop itself is signalled
        // at once, and joining the thread waits for it.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive(state: &Mutex<State>, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let at = Instant::now();
    let path = req.path();
    if let Some(method) = path.strip_prefix("/api/") {
        return web_api(state, method, body, at);
    }
    let n = path
        .strip_prefix("/reply/")
        .and_then(|n| n.parse::<u64>().ok());
    let status = final_status(body);
    let mut state = lock(state);
    match (n, status) {
        (Some(n), Some(succeeded)) => state.arrived(n, Arrival { at, succeeded }),
        _ => state.other_posts += 1,
    }
    // What Slack's response_url answers.
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

impl State {
    fn arrived(&mut self, n: u64, arrival: Arrival) {
        *self.finals.entry(n).or_insert(0) += 1;
        if let Some(tx) = self.waiters.remove(&n) {
            let _ = tx.send(arrival);
        }
    }
}

/// Slack's Web API as live progress uses it (<https://api.slack.com/methods/chat.postMessage>,
/// <https://api.slack.com/methods/chat.update>): JSON in, `{"ok":true,"channel","ts"}` out.
fn web_api(state: &Mutex<State>, method: &str, body: &[u8], at: Instant) -> HttpResponse {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let channel = json["channel"].as_str().unwrap_or_default().to_owned();
    let n = crate::slack::command_of_channel(&channel);
    let mut state = lock(state);
    let ts = match method {
        "chat.postMessage" if json.get("thread_ts").is_some() => {
            match (n, final_status(body)) {
                (Some(n), Some(succeeded)) => state.arrived(n, Arrival { at, succeeded }),
                _ => state.other_posts += 1,
            }
            format!("{}.{:06}", n.unwrap_or(0), 2)
        }
        "chat.postMessage" => {
            state.status_posts += 1;
            format!("{}.{:06}", n.unwrap_or(0), 1)
        }
        "chat.update" => {
            state.edits += 1;
            json["ts"].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            state.other_posts += 1;
            return HttpResponse::Ok()
                .json(serde_json::json!({"ok": false, "error": "unknown_method"}));
        }
    };
    HttpResponse::Ok().json(serde_json::json!({"ok": true, "channel": channel, "ts": ts}))
}

/// Whether a posted Slack message is a job's final reply: `Some(true)` when it says the job
/// succeeded, `Some(false)` when it failed, was canceled or timed out, `None` otherwise.
/// Looks at every string of the message (`text` and `blocks`), wherever the renderer put it.
pub fn final_status(body: &[u8]) -> Option<bool> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    collect_strings(&json, &mut text);
    if text.contains("succeeded") {
        Some(true)
    } else if ["failed", "canceled", "timed out"]
        .iter()
        .any(|w| text.contains(w))
    {
        Some(false)
    } else {
        None
    }
}

fn collect_strings(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_status_reads_text_and_blocks() {
        let ok = br#"{"response_type":"in_channel","text":"<@U1>: job echo *succeeded* in 3 ms"}"#;
        assert_eq!(final_status(ok), Some(true));
        let failed = br#"{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"echo *failed with exit code 1*"}}]}"#;
        assert_eq!(final_status(failed), Some(false));
        let ack = br#"{"response_type":"in_channel","text":"<@U1> started job echo"}"#;
        assert_eq!(final_status(ack), None);
        assert_eq!(final_status(b"not json"), None);
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test")
    }

    #[test]
    fn tells_status_messages_and_edits_from_threaded_results() {
        rt().block_on(async {
            let fake = FakePlatform::start().expect("fake starts");
            let rx = fake.expect(9);
            let client = reqwest::Client::new();
            let base = fake.reply_url(0).replace("/reply/0", "/api");
            let call = |method: &str, body: serde_json::Value| {
                client.post(format!("{base}/{method}")).json(&body).send()
            };
            let status = call(
                "chat.postMessage",
                serde_json::json!({"channel": "CB9", "text": "running"}),
            )
            .await
            .expect("post");
            let answer: serde_json::Value = status.json().await.expect("json answer");
            assert_eq!(answer["ok"], true);
            assert_eq!(answer["channel"], "CB9");
            let ts = answer["ts"].as_str().expect("a ts").to_owned();
            call(
                "chat.update",
                serde_json::json!({"channel": "CB9", "ts": ts, "text": "job *succeeded*"}),
            )
            .await
            .expect("edit");
            let threaded =
                serde_json::json!({"channel": "CB9", "thread_ts": ts, "text": "job *succeeded*"});
            call("chat.postMessage", threaded).await.expect("result");
            let arrival = rx.await.expect("the threaded result is the arrival");
            assert!(arrival.succeeded);
            assert_eq!(fake.progress_posts(), (1, 1));
            assert_eq!(
                fake.counts(9..10),
                ReplyCounts {
                    received: 1,
                    duplicates: 0
                }
            );
            assert_eq!(fake.other_posts(), 0);
        });
    }

    #[test]
    fn records_arrivals_and_duplicates_over_http() {
        rt().block_on(async {
            let fake = FakePlatform::start().expect("fake starts");
            let rx = fake.expect(5);
            let client = reqwest::Client::new();
            let post = |n: u64, text: &'static str| {
                client
                    .post(fake.reply_url(n))
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"text":"{text}"}}"#))
                    .send()
            };
            let resp = post(5, "job *succeeded*").await.expect("post");
            assert_eq!(resp.status().as_u16(), 200);
            let arrival = rx.await.expect("arrival reported");
            assert!(arrival.succeeded);
            post(5, "job *succeeded*").await.expect("post");
            post(6, "job *failed*").await.expect("post");
            post(7, "just chatting").await.expect("post");
            assert_eq!(
                fake.counts(5..7),
                ReplyCounts {
                    received: 2,
                    duplicates: 1
                }
            );
            assert_eq!(fake.counts(7..8).received, 0);
            assert_eq!(fake.other_posts(), 1);
            fake.forget(5..7);
            assert_eq!(fake.counts(5..7), ReplyCounts::default());
        });
    }
}
