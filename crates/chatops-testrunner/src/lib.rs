//! A GitLab runner for chatops' tests and bench, built on Collabora's `gitlab-runner` client
//! crate (an independent implementation of the runner side of the protocol).
//!
//! [`TestRunner::start`] polls a coordinator on its own tokio runtime (its own threads). Each
//! job gets a fresh temp dir: left empty for `GIT_STRATEGY=none`, else a `git clone` of the
//! job's `CI_REPOSITORY_URL` checked out at `CI_COMMIT_SHA` (with the git CLI). Every script
//! line runs with `bash -c` in its own process group, echoed first as gitlab-runner does
//! (`$ cmd` in bold green), inside `section_start:…:step_script` / `section_end` markers
//! (`after_script` for that step), output streamed to the trace. A cancel from the coordinator
//! kills the process group. [`TestRunner::kill`] is a runner host's SIGKILL.

use gitlab_runner::job::Job;
use gitlab_runner::{CancellableJobHandler, GitlabLayer, JobResult, Phase, RunnerBuilder};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Process groups of the job commands running now.
type Groups = Arc<Mutex<HashSet<i32>>>;

/// A runner polling one coordinator until [`TestRunner::kill`] or drop.
pub struct TestRunner {
    runtime: Option<tokio::runtime::Runtime>,
    groups: Groups,
}

impl TestRunner {
    /// Starts polling `url` (the coordinator's base URL) with runner token `token`.
    pub fn start(url: &str, token: &str) -> std::io::Result<TestRunner> {
        let url = url::Url::parse(url)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("testrunner")
            .build()?;
        let groups = Groups::default();
        let builds = tempfile::Builder::new().prefix("testrunner").tempdir()?;
        let token = token.to_owned();
        let job_groups = groups.clone();
        runtime.spawn(async move {
            // The layer would route `tracing` output into job traces; jobs write their
            // trace directly, so it is not installed.
            let (_layer, jobs) = GitlabLayer::new::<tracing_subscriber::Registry>();
            let mut runner = RunnerBuilder::new(url, token, builds.path(), jobs)
                .build()
                .await;
            loop {
                let groups = job_groups.clone();
                let got = runner
                    .request_job(move |job| async move { Ok(Shell::new(job, groups).await) })
                    .await;
                match got {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = ?e, "test runner: no job"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(TestRunner {
            runtime: Some(runtime),
            groups,
        })
    }

    /// Like a SIGKILL of the runner's host: every job process is killed and all HTTP stops at
    /// once (no final trace, no final PUT).
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        kill_groups(&self.groups);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // A command started while the runtime stopped.
        kill_groups(&self.groups);
    }
}

impl Drop for TestRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_groups(groups: &Groups) {
    let groups = groups.lock().unwrap_or_else(|p| p.into_inner());
    for pgid in groups.iter() {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// One job: its directory and variables.
struct Shell {
    job: Job,
    dir: Option<tempfile::TempDir>,
    workdir: PathBuf,
    env: Vec<(String, String)>,
    groups: Groups,
    prepared: bool,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shell {
    async fn new(job: Job, groups: Groups) -> Shell {
        let env: Vec<(String, String)> = job
            .variables()
            .map(|v| (v.key().to_owned(), v.value().to_owned()))
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("testrunner-job")
            .tempdir()
            .ok();
        let workdir = dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .unwrap_or_default();
        Shell {
            job,
            dir,
            workdir,
            env,
            groups,
            prepared: false,
        }
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Gets the sources: nothing for `GIT_STRATEGY=none`, else clone and check out the sha.
    async fn prepare(&mut self, cancel: &CancellationToken) -> JobResult {
        self.prepared = true;
        if self.dir.is_none() {
            self.job.trace("cannot create a build directory\n");
            return Err(());
        }
        if self.var("GIT_STRATEGY") == Some("none") {
            self.job.trace("Skipping Git repository setup\n");
            return Ok(());
        }
        let (Some(url), Some(sha)) = (self.var("CI_REPOSITORY_URL"), self.var("CI_COMMIT_SHA"))
        else {
            self.job.trace("no CI_REPOSITORY_URL or CI_COMMIT_SHA\n");
            return Err(());
        };
        let (url, sha) = (url.to_owned(), sha.to_owned());
        let clone =
            format!("git clone -q --no-checkout \"$CHATOPS_REPO\" . && git checkout -q -f {sha}");
        self.job.trace("Fetching changes with git\n");
        self.run(&clone, &[("CHATOPS_REPO", url.as_str())], cancel)
            .await
    }

    /// Runs one command line with `bash -c` in its own process group, output to the trace.
    async fn run(
        &self,
        line: &str,
        extra: &[(&str, &str)],
        cancel: &CancellationToken,
    ) -> JobResult {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!("exec 2>&1\n{line}"))
            .current_dir(&self.workdir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.job.trace(format!("cannot start bash: {e}\n"));
                return Err(());
            }
        };
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        if let Some(pgid) = pgid {
            self.groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pgid);
        }
        let mut out = child.stdout.take();
        let mut buf = vec![0u8; 8192];
        let result = loop {
            let read = async {
                match out.as_mut() {
                    Some(o) => o.read(&mut buf).await,
                    None => Ok(0),
                }
            };
            tokio::select! {
                n = read => match n {
                    Ok(0) | Err(_) => break child.wait().await.map(|s| s.success()).unwrap_or(false),
                    Ok(n) => self.job.trace(&buf[..n]),
                },
                () = cancel.cancelled() => {
                    if let Some(pgid) = pgid {
                        // SAFETY: signals a process group; no memory is involved.
                        unsafe { libc::kill(-pgid, libc::SIGKILL); }
                    }
                    let _ = child.wait().await;
                    break false;
                }
            }
        };
        if let Some(pgid) = pgid {
            self.groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pgid);
        }
        if result {
            Ok(())
        } else {
            Err(())
        }
    }
}

#[async_trait::async_trait]
impl CancellableJobHandler for Shell {
    async fn step(
        &mut self,
        script: &[String],
        phase: Phase,
        cancel: &CancellationToken,
    ) -> JobResult {
        if !self.prepared {
            self.prepare(cancel).await?;
        }
        let section = match phase {
            Phase::Script => "step_script",
            Phase::AfterScript => "after_script",
        };
        self.job
            .trace(format!("section_start:{}:{section}\r\x1b[0K", now_secs()));
        let mut result = Ok(());
        for line in script {
            if cancel.is_cancelled() {
                result = Err(());
                break;
            }
            self.job.trace(format!("\x1b[32;1m$ {line}\x1b[0;m\n"));
            if self.run(line, &[], cancel).await.is_err() {
                result = Err(());
                break;
            }
        }
        self.job
            .trace(format!("section_end:{}:{section}\r\x1b[0K", now_secs()));
        result
    }

    async fn cleanup(&mut self) {
        self.dir.take();
    }
}
