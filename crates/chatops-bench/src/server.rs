//! The servers under test as child processes: `chatops serve` with a temporary config, data
//! dir and project, and the bare actix-web baseline (this binary's hidden `baseline-server`).
//! Both say where they listen on stderr ("... listening on http://ADDR"), which the bench reads.

use crate::error::BenchError;
use crate::slack;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of a server's stderr kept for error messages.
const TAIL_LINES: usize = 40;

/// The project's CI file. Sizes come in as `CHAT_INPUT` (the bench always passes them), with
/// the issue's figures as defaults.
pub const CI_FILE: &str = r#"# The chatops benchmark project (crates/chatops-bench).
manual-job:
  when: manual
  script:
    - echo played

echo:
  script:
    - echo hi

sleep:
  script:
    - sleep "${CHAT_INPUT:-20}"

# A job that prints a line every quarter second for about 3 s: long enough for live progress
# to edit its status message at the default 2 s interval.
ticker:
  script:
    - for i in $(seq 1 "${CHAT_INPUT:-12}"); do echo "tick $i"; sleep 0.25; done

# One long line of x's, as `head -c N /dev/zero | tr '\0' x`: the hardest shape for a
# line-oriented log pipeline. The shell baseline writes the same bytes to a file.
big:
  script:
    - head -c "${CHAT_INPUT:-200000000}" /dev/zero | tr '\0' x
"#;

/// The shell command the big-output baseline runs: the `big` job's pipeline, to `file`.
pub fn big_baseline_script(bytes: u64, file: &Path) -> String {
    format!(
        "head -c {bytes} /dev/zero | tr '\\0' x > '{}'",
        file.display()
    )
}

/// How a server is set up: how it posts its replies, where it runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No bot token: the reply goes to the command's `response_url` (the other measurements).
    ResponseUrl,
    /// A bot token, `live_progress: false`: as above, the baseline of the live measurement.
    BotQuiet,
    /// A bot token and live progress: a status message edited while the job runs, the result
    /// in its thread.
    BotLive,
    /// Replies by `response_url`; the project's jobs run on a GitLab runner polling the
    /// server (`executor: runner`, token [`RUNNER_TOKEN`]).
    OnRunner,
}

/// The runner token the [`Variant::OnRunner`] config accepts.
pub const RUNNER_TOKEN: &str = "glrt-chatops-bench-runner-token";

/// The bench config (contract §2) for a server in `dir`, replying to the fake at `fake_host`.
pub fn config_text(dir: &Path, fake_host: &str, variant: Variant) -> String {
    let d = dir.display();
    let (live, bot) = match variant {
        Variant::ResponseUrl => ("", ""),
        Variant::BotQuiet => ("\n  live_progress: false", "\n  bot_token: xoxb-bench"),
        Variant::BotLive => ("\n  live_progress: true", "\n  bot_token: xoxb-bench"),
        Variant::OnRunner => ("", ""),
    };
    let (executor, runners) = match variant {
        Variant::OnRunner => (
            "\n    executor: runner",
            format!(
                "\nrunners:\n  tokens:\n    - name: bench\n      token: {RUNNER_TOKEN}\n  update_interval: 1s\n"
            ),
        ),
        _ => ("", String::new()),
    };
    format!(
        r#"# Written by chatops-bench.
server:
  listen: 127.0.0.1:0
  data_dir: "{d}/data"
  max_concurrent_jobs: 2000
  shutdown_grace: 1s{live}

slack:
  signing_secret: "{secret}"
  api_url: "http://{fake_host}/api"
  response_url_hosts: ["{fake_host}"]{bot}

projects:
  bench:
    command: {command}
    repository: "{d}/project"
    timeout: 10m
    max_concurrent_jobs: 2000
    default_role: developer{executor}
{runners}"#,
        secret = slack::SECRET,
        command = slack::COMMAND,
    )
}

/// A running server process. Killed when dropped; [`ServerProcess::stop`] stops it politely.
pub struct ServerProcess {
    child: Child,
    what: String,
    base: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The temporary config, data dir and project; removed after the server is gone.
    dir: Option<TempDir>,
}

impl ServerProcess {
    /// Starts `chatops serve` (the binary at `bin`) on a fresh temporary setup, replying by
    /// `response_url`.
    pub async fn chatops(bin: &Path, fake_host: &str) -> Result<ServerProcess, BenchError> {
        Self::chatops_with(bin, fake_host, Variant::ResponseUrl).await
    }

    /// Starts `chatops serve` on a fresh temporary setup, as `variant` says.
    pub async fn chatops_with(
        bin: &Path,
        fake_host: &str,
        variant: Variant,
    ) -> Result<ServerProcess, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("chatops-bench.")
            .tempdir()
            .map_err(|e| BenchError::Setup(std::env::temp_dir(), e))?;
        let project = dir.path().join("project");
        write(&project.join(".gitlab-ci.yml"), CI_FILE)?;
        let config = dir.path().join("chatops.yaml");
        write(&config, &config_text(dir.path(), fake_host, variant))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            // INFO is the server's default level and the one that logs the listen address.
            .env("RUST_LOG", "info")
            .env_remove("CHATOPS_CONFIG");
        Self::spawn("chatops serve", cmd, Some(dir)).await
    }

    /// Starts the bare actix-web baseline (this executable's `baseline-server`).
    pub async fn baseline() -> Result<ServerProcess, BenchError> {
        let exe = std::env::current_exe().map_err(|e| BenchError::Spawn {
            what: "the baseline server (own executable)".into(),
            source: e,
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("baseline-server");
        Self::spawn("the bare actix-web baseline", cmd, None).await
    }

    async fn spawn(
        what: &str,
        mut cmd: Command,
        dir: Option<TempDir>,
    ) -> Result<ServerProcess, BenchError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Spawn {
                what: what.into(),
                source: e,
            })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        if let Some(stderr) = child.stderr.take() {
            let sink = tail.clone();
            // Drains stderr for the server's whole life (a full pipe would block its logging,
            // and so the server) on a plain thread, off the bench's runtime; passes on the
            // listen address once. Ends at EOF, when the server exits.
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split("listening on http://").nth(1) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr.trim().to_owned());
                        }
                    }
                    let mut t = sink.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let mut server = ServerProcess {
            child,
            what: what.into(),
            base: String::new(),
            tail,
            dir,
        };
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(addr)) => {
                server.base = format!("http://{addr}");
                Ok(server)
            }
            _ => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                // The drain thread may still be copying the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(BenchError::NotStarted {
                    what: what.into(),
                    waited: START_TIMEOUT,
                    stderr: server.stderr_tail(),
                })
            }
        }
    }

    /// `http://ADDR` of the server.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data dir of a chatops server (`None` for the baseline).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("data"))
    }

    /// The last lines the server logged.
    pub fn stderr_tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM, then waits for the exit (killing it after [`STOP_TIMEOUT`]). Returns whether it
    /// exited on its own.
    pub async fn stop(mut self) -> bool {
        // SAFETY: sending a signal to our own child, whose pid cannot have been reused while
        // we have not waited for it.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    let tail = self.stderr_tail();
                    let last: Vec<&str> = tail.lines().rev().take(5).collect();
                    eprintln!(
                        "chatops-bench: {} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed. \
                         Its last log lines:\n  {}",
                        self.what,
                        last.into_iter().rev().collect::<Vec<_>>().join("\n  ")
                    );
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // After `stop` this finds the child reaped already; on an error path it makes sure no
        // server outlives the bench.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| BenchError::Setup(parent.into(), e))?;
    }
    std::fs::write(path, text).map_err(|e| BenchError::Setup(path.into(), e))
}

/// Bytes in the files under `dir` (the job logs kept on disk).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_slack_at_the_fake_and_the_project_at_the_dir() {
        let text = config_text(Path::new("/tmp/x"), "127.0.0.1:4567", Variant::ResponseUrl);
        assert!(text.contains("listen: 127.0.0.1:0"), "{text}");
        assert!(
            text.contains(r#"response_url_hosts: ["127.0.0.1:4567"]"#),
            "{text}"
        );
        assert!(text.contains(r#"repository: "/tmp/x/project""#), "{text}");
        assert!(text.contains("command: /bench"), "{text}");
        assert!(text.contains(slack::SECRET), "{text}");
    }

    #[test]
    fn live_configs_give_slack_a_bot_token_and_say_whether_progress_is_live() {
        let dir = Path::new("/tmp/x");
        let quiet = config_text(dir, "h:1", Variant::BotQuiet);
        let live = config_text(dir, "h:1", Variant::BotLive);
        for (text, on) in [(&quiet, "false"), (&live, "true")] {
            assert!(text.contains("\n  bot_token: xoxb-bench\n"), "{text}");
            let server = text.split("\nslack:").next().unwrap_or_default();
            assert!(
                server.contains(&format!("\n  live_progress: {on}\n")),
                "{text}"
            );
        }
        let plain = config_text(dir, "h:1", Variant::ResponseUrl);
        assert!(
            !plain.contains("bot_token") && !plain.contains("live_progress"),
            "{plain}"
        );
    }

    #[test]
    fn the_runner_config_sends_the_project_to_runners_with_the_bench_token() {
        let text = config_text(Path::new("/tmp/x"), "h:1", Variant::OnRunner);
        assert!(text.contains("\n    executor: runner\n"), "{text}");
        assert!(text.contains(&format!("token: {RUNNER_TOKEN}")), "{text}");
        let plain = config_text(Path::new("/tmp/x"), "h:1", Variant::ResponseUrl);
        assert!(
            !plain.contains("executor") && !plain.contains("runners:"),
            "{plain}"
        );
    }

    #[test]
    fn ci_file_has_the_jobs() {
        for job in ["manual-job:", "echo:", "sleep:", "ticker:", "big:"] {
            assert!(CI_FILE.lines().any(|l| l == job), "{job} missing");
        }
        assert!(CI_FILE.contains("when: manual"));
    }

    #[test]
    fn big_baseline_writes_the_jobs_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("out");
        let status = Command::new("sh")
            .arg("-c")
            .arg(big_baseline_script(1000, &file))
            .status()
            .expect("sh runs");
        assert!(status.success());
        let bytes = std::fs::read(&file).expect("written");
        assert_eq!(bytes.len(), 1000);
        assert!(bytes.iter().all(|&b| b == b'x'));
        assert_eq!(dir_bytes(dir.path()), 1000);
    }
}
