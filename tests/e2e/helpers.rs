//! The end-to-end harness: the real `chatops` binary on port 0 with a temporary config, data
//! dir and project, and a small fake chat platform (an HTTP server recording what chatops posts
//! to it). The only fakes are the outside world: the chat platform.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a test waits for something that should happen (not a speed assertion: a bound so
/// a broken build fails instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const SLACK_SECRET: &str = "e2e-signing-secret";

/// A Discord user listed as a guest of the demo project (Discord ids are snowflakes).
pub const DISCORD_GUEST: &str = "80351110224678999";

/// One request the fake platform received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `POST`, `PUT`, `PATCH`.
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    pub raw: String,
    /// When it arrived.
    pub at: Instant,
}

/// A canned answer for the next request(s) to the fake.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Default)]
struct FakeState {
    received: Vec<Received>,
    script: VecDeque<Canned>,
    /// Messages created through the bot APIs, for their ids.
    created: u64,
}

/// A fake chat platform: records every request, answers from a script (default 200 `ok`, or
/// `{"ok":true}` for API paths; Slack's `chat.postMessage` answers the new message's `channel`
/// and `ts`, Mattermost's `POST /api/v4/posts` the new post's `id`, as the real ones do).
#[derive(Clone)]
pub struct FakePlatform {
    state: Arc<Mutex<FakeState>>,
    pub base: String,
    pub host_port: String,
}

impl FakePlatform {
    pub fn start() -> FakePlatform {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake platform");
        let addr = listener.local_addr().expect("fake addr");
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            let state = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move { fake_handle(state, req, body) }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen fake")
        .run();
        actix_web::rt::spawn(server);
        FakePlatform {
            state,
            base: format!("http://{addr}"),
            host_port: format!("127.0.0.1:{}", addr.port()),
        }
    }

    /// The next requests get these answers, in order (then the default).
    pub fn answer_with(&self, canned: Vec<Canned>) {
        self.state.lock().expect("fake lock").script.extend(canned);
    }

    /// Forgets the scripted answers still queued (back to the defaults).
    pub fn clear_answers(&self) {
        self.state.lock().expect("fake lock").script.clear();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("fake lock").received.clone()
    }

    /// Received POSTs whose path starts with `prefix` (new messages; edits are
    /// [`Self::edits_at`]).
    pub fn received_at(&self, prefix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with(prefix))
            .collect()
    }

    /// Received requests of `method` whose path starts with `prefix`: Mattermost's
    /// `PUT /api/v4/posts/{id}/patch`, Discord's `PATCH .../messages/@original`.
    pub fn edits_at(&self, method: &str, prefix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// Waits until `n` requests to `prefix` have arrived.
    pub async fn wait_for(&self, prefix: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.received_at(prefix);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {n} posts to {prefix}, got {}: {got:#?}",
                got.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fake_handle(state: Arc<Mutex<FakeState>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let path = req.path().to_owned();
    let mut state = state.lock().expect("fake lock");
    let method = req.method().to_string();
    let created = (method == "POST"
        && (path == "/api/chat.postMessage" || path == "/api/v4/posts"))
        .then(|| {
            state.created += 1;
            state.created
        });
    state.received.push(Received {
        method,
        path: path.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: json.clone(),
        raw,
        at: Instant::now(),
    });
    let canned = state.script.pop_front().unwrap_or_else(|| {
        if let Some(n) = created {
            let body = if path == "/api/v4/posts" {
                serde_json::json!({"id": format!("post{n:022}"), "channel_id": json["channel_id"]})
            } else {
                serde_json::json!({"ok": true, "channel": json["channel"], "ts": format!("1700000000.{n:06}")})
            };
            Canned {
                status: if path == "/api/v4/posts" { 201 } else { 200 },
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string(),
            }
        } else if path.starts_with("/api/") {
            Canned {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: r#"{"ok":true}"#.into(),
            }
        } else {
            Canned {
                status: 200,
                headers: vec![],
                body: "ok".into(),
            }
        }
    });
    let mut resp =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(canned.status).expect("status"));
    for (k, v) in &canned.headers {
        resp.insert_header((k.as_str(), v.as_str()));
    }
    resp.body(canned.body)
}

/// A project folder with a CI file, in a temp dir that lives as long as the server.
pub struct TestServer {
    pub child: Child,
    pub base: String,
    /// Shared so that a restarted server keeps the same folder (config, project, data).
    pub dir: Arc<tempfile::TempDir>,
    pub fake: FakePlatform,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
}

/// What a test server is made of.
pub struct Setup {
    pub ci: String,
    /// Extra YAML under `projects.demo` (indented 4 spaces), e.g. `    timeout: 5s\n`.
    pub project_extra: String,
    /// Extra YAML under `server:` (indented 2 spaces).
    pub server_extra: String,
    /// Extra YAML under `slack:` (indented 2 spaces).
    pub slack_extra: String,
    pub default_role: String,
    /// Extra top-level YAML appended to the config (e.g. a `mattermost:` section); `{fake}` in it
    /// becomes the fake platform's base URL and `{fake_host}` its `host:port`.
    pub extra_config: String,
    /// Extra variables in the server's environment (e.g. for `${NAME}` in the config).
    pub env: Vec<(String, String)>,
    /// `server.listen`; default `127.0.0.1:0` (a fresh port, also after a restart).
    pub listen: String,
}

impl Setup {
    pub fn ci(ci: &str) -> Setup {
        Setup {
            ci: ci.to_owned(),
            project_extra: String::new(),
            server_extra: String::new(),
            slack_extra: String::new(),
            default_role: "developer".into(),
            extra_config: String::new(),
            env: Vec::new(),
            listen: "127.0.0.1:0".into(),
        }
    }
}

impl TestServer {
    pub async fn start(setup: Setup) -> TestServer {
        let fake = FakePlatform::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).expect("project dir");
        std::fs::write(project.join(".gitlab-ci.yml"), &setup.ci).expect("ci file");
        std::fs::write(project.join("README.txt"), "a file in the project\n").expect("file");
        let config = format!(
            "server:\n  listen: {listen}\n  data_dir: data\n{server}\nslack:\n  signing_secret: {secret}\n  api_url: {base}/api\n  response_url_hosts: [\"{host}\"]\n{slack}\nprojects:\n  demo:\n    repository: project\n    default_role: {role}\n    members:\n      - {{slack: UMAINTAINER, role: maintainer}}\n      - {{slack: UGUEST, role: guest}}\n      - {{mattermost: UGUEST, role: guest}}\n      - {{discord: \"{discord_guest}\", role: guest}}\n{project}\n{extra}",
            listen = setup.listen,
            server = setup.server_extra,
            secret = SLACK_SECRET,
            base = fake.base,
            host = fake.host_port,
            slack = setup.slack_extra,
            role = setup.default_role,
            project = setup.project_extra,
            discord_guest = DISCORD_GUEST,
            extra = setup
                .extra_config
                .replace("{fake}", &fake.base)
                .replace("{fake_host}", &fake.host_port),
        );
        let config_path = dir.path().join("chatops.yaml");
        std::fs::write(&config_path, config).expect("config");
        std::fs::write(
            dir.path().join("server.env"),
            serde_json::to_string(&setup.env).expect("env"),
        )
        .expect("env file");
        Self::spawn(Arc::new(dir), config_path, fake).await
    }

    async fn spawn(
        dir: Arc<tempfile::TempDir>,
        config_path: PathBuf,
        fake: FakePlatform,
    ) -> TestServer {
        Self::spawn_with(dir, config_path, fake, &[]).await
    }

    /// `chatops serve --config CONFIG ARGS...` on a config the test wrote itself.
    pub async fn spawn_with(
        dir: Arc<tempfile::TempDir>,
        config_path: PathBuf,
        fake: FakePlatform,
        args: &[&str],
    ) -> TestServer {
        // The server's extra environment, kept beside the config so a restart gets it too.
        let env: Vec<(String, String)> =
            serde_json::from_str(&read(&dir.path().join("server.env"))).unwrap_or_default();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatops"))
            .envs(env)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "info")
            .env("SLACK_SIGNING_SECRET", "must-not-reach-jobs")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatops serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // Drain stderr for the server's whole life (a full pipe would block it), and pass on
        // the line that says where it listens.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                let mut s = sink.lock().expect("log lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let base = match rx.recv_timeout(PATIENCE) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "chatops serve did not start; its stderr:\n{}",
                    log.lock().expect("log lock")
                );
            }
        };
        TestServer {
            child,
            base,
            dir,
            fake,
            stderr: log,
            http: reqwest::Client::new(),
        }
    }

    /// `kill -9` the server (no chance to clean up), then start it again on the same config,
    /// data and fake platform.
    pub async fn crash_and_restart(mut self) -> TestServer {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let dir = self.dir.clone();
        let fake = self.fake.clone();
        drop(self);
        let config = dir.path().join("chatops.yaml");
        TestServer::spawn(dir, config, fake).await
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("chatops.yaml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn project_dir(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// A slash command's form fields, Slack-shaped; `response_url` points at the fake.
    pub fn slack_form(&self, user: &str, text: &str, n: u32) -> Vec<(String, String)> {
        vec![
            ("token".into(), "legacy-token-ignored".into()),
            ("team_id".into(), "T0001".into()),
            ("team_domain".into(), "example".into()),
            ("channel_id".into(), "C2147483705".into()),
            ("channel_name".into(), "ops".into()),
            ("user_id".into(), user.into()),
            ("user_name".into(), "ada".into()),
            ("command".into(), "/demo".into()),
            ("text".into(), text.into()),
            ("api_app_id".into(), "A123".into()),
            ("is_enterprise_install".into(), "false".into()),
            (
                "response_url".into(),
                format!("{}/response/{n}", self.fake.base),
            ),
            ("trigger_id".into(), format!("trigger.{n}.{}", nanos())),
        ]
    }

    /// Sends a correctly signed slash command; returns status and body.
    pub async fn slack_command(&self, user: &str, text: &str, n: u32) -> (u16, String) {
        let body = serde_urlencoded::to_string(self.slack_form(user, text, n)).expect("form");
        self.post_slack("/slack/commands", body, SLACK_SECRET, unix_now())
            .await
    }

    /// Posts a body to a Slack route signed with `secret` at `timestamp`.
    pub async fn post_slack(
        &self,
        path: &str,
        body: String,
        secret: &str,
        timestamp: u64,
    ) -> (u16, String) {
        let signature = slack_signature(secret, &timestamp.to_string(), body.as_bytes());
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .expect("post to chatops");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// Any request to chatops.
    pub async fn request(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        let resp = req.send().await.expect("request to chatops");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `text` and waits for the job's reply at the fake's `/response/n`.
    pub async fn run_and_reply(
        &self,
        text: &str,
        n: u32,
    ) -> (serde_json::Value, serde_json::Value) {
        let (status, ack) = self.slack_command("UDEV", text, n).await;
        assert_eq!(status, 200, "ack: {ack}");
        let ack: serde_json::Value = serde_json::from_str(&ack).expect("ack is JSON");
        let replies = self.fake.wait_for(&format!("/response/{n}"), 1).await;
        (ack, replies[0].body.clone())
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self
            .request(self.http.get(format!("{}/metrics", self.base)))
            .await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not in:\n{text}"))
    }

    /// SIGTERM, and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait for chatops")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// All the text of a Slack message (text and blocks), for assertions that don't care where
/// the adapter put it.
/// The URLs of the Slack links (`<url|label>`) in mrkdwn `text`, `&amp;` unescaped.
pub fn slack_links(text: &str) -> Vec<String> {
    text.split('<')
        .skip(1)
        .filter_map(|part| part.split(['|', '>']).next())
        .filter(|url| url.starts_with("http"))
        .map(|url| url.replace("&amp;", "&"))
        .collect()
}

pub fn slack_text(message: &serde_json::Value) -> String {
    let mut out = String::new();
    collect_text(message, &mut out);
    out
}

fn collect_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "text"
                    || k == "blocks"
                    || k == "elements"
                    || k == "attachments"
                    || k == "fields"
                {
                    collect_text(x, out);
                }
            }
        }
        _ => {}
    }
}

/// Whether a process exists (a zombie counts as gone: it runs nothing).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

/// Runs git in `repo` (with a fixed identity); its trimmed stdout. Panics when git fails.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `f` until it holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
