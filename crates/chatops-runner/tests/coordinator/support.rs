//! The test harness: a server with a coordinator on a temp store, polling helpers.

use chatops_runner::{Coordinator, RunnerConfig, RunnerJobSpec, RunnerToken, Source, Variable};
use chatops_store::Store;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Generous bound for anything a test waits for (2-core CI machines are slow).
pub const WAIT: Duration = Duration::from_secs(60);

pub const TOKEN: &str = "glrt-untagged-runner-token-0001";
pub const TAGGED_TOKEN: &str = "glrt-tagged-runner-token-00002";

/// A running server with a coordinator.
pub struct App {
    pub coordinator: Coordinator,
    pub url: String,
    server: actix_web::dev::ServerHandle,
}

pub fn tokens() -> Vec<RunnerToken> {
    vec![
        RunnerToken {
            name: "shell-1".into(),
            token: TOKEN.into(),
            tags: vec![],
            run_untagged: true,
        },
        RunnerToken {
            name: "big-1".into(),
            token: TAGGED_TOKEN.into(),
            tags: vec!["big".into(), "linux".into()],
            run_untagged: false,
        },
    ]
}

/// Short timers, so timeouts are reached in test time.
pub fn config(url: &str) -> RunnerConfig {
    let mut c = RunnerConfig::new(tokens(), url);
    c.long_poll = Duration::from_secs(5);
    c.update_interval = Duration::from_secs(1);
    c
}

impl App {
    /// Starts a server on port 0 over the store in `dir` (created when missing).
    pub async fn start(dir: &Path, tune: impl FnOnce(&mut RunnerConfig)) -> std::io::Result<App> {
        App::start_on(dir, 0, tune).await
    }

    pub async fn start_on(
        dir: &Path,
        port: u16,
        tune: impl FnOnce(&mut RunnerConfig),
    ) -> std::io::Result<App> {
        let store = Store::open(&dir.join("chatops.db")).map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let mut cfg = config(&url);
        tune(&mut cfg);
        let coordinator = Coordinator::new(cfg, store);
        let c = coordinator.clone();
        let server = actix_web::HttpServer::new(move || {
            let c = c.clone();
            actix_web::App::new().configure(move |cfg| c.configure(cfg))
        })
        .workers(2)
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(App {
            coordinator,
            url,
            server: handle,
        })
    }

    /// Stops the server (connections dropped).
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// A folder job running `script`, logging to `dir/<id>.log`.
pub fn spec(dir: &Path, id: u64, script: &[&str]) -> RunnerJobSpec {
    RunnerJobSpec {
        job_id: id,
        job_name: "hello".into(),
        stage: "chatops".into(),
        project: "demo".into(),
        source: Source::Folder(dir.to_owned()),
        variables: vec![Variable {
            raw: true,
            ..Variable::new("CHAT_INPUT", "hello $world")
        }],
        before_script: vec![],
        script: script.iter().map(|s| (*s).to_owned()).collect(),
        after_script: vec![],
        timeout: Duration::from_secs(600),
        tags: vec![],
        log_path: dir.join(format!("logs/{id}.log")),
    }
}

/// Polls `check` until it is true or `WAIT` passes.
pub async fn until<F, Fut>(what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("timed out waiting for {what}"))
}

/// Waits for a handle's outcome, at most `WAIT`.
pub async fn outcome(
    handle: &chatops_runner::RunnerJobHandle,
) -> Result<chatops_runner::RunnerOutcome, String> {
    tokio::time::timeout(WAIT, handle.wait())
        .await
        .map_err(|_| format!("job {} did not end", handle.job_id()))
}

pub fn log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// A raw HTTP client standing in for a runner.
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST jobs/request` once with runner token `token` and `last_update` (if any).
pub async fn request(
    url: &str,
    token: &str,
    last_update: Option<&str>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut body = serde_json::json!({"token": token, "info": {"features": {}}});
    if let Some(v) = last_update {
        body["last_update"] = v.into();
    }
    client()
        .post(format!("{url}/api/v4/jobs/request"))
        .json(&body)
        .send()
        .await
}

/// Takes the next job as runner `token` (the runner's JobResponse).
pub async fn take(url: &str, token: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        let resp = request(url, token, None).await?;
        if resp.status() == 201 {
            return Ok(resp.json().await?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no job was offered".into())
}

/// The job token of a JobResponse.
pub fn job_token(job: &serde_json::Value) -> String {
    job["token"].as_str().unwrap_or_default().to_owned()
}

/// Runs git with `args` in `dir` (no prompts, no user config); its stdout, or an error with
/// its stderr.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
