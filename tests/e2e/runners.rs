//! Issue 10, runner fleets: a project with `executor: runner` runs its chat jobs on GitLab
//! runners that poll chatops' runner API, with clients nobody here wrote: a runner built on
//! Collabora's `gitlab-runner` crate (`chatops-testrunner`, in process) and PyPI's
//! `gitlab-python-runner` (a real process; `scripts/python-runner.sh` installs it). The chat
//! side (ack, reply rules, cancel, timeout) is the same as for local jobs.

use crate::durability::{job_id_of, job_status};
use crate::helpers::*;
use chatops_testrunner::TestRunner;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const RUNNER_TOKEN: &str = "glrt-e2e-runner-token-0123456789";

const RUNNER_CI: &str = r#"
hello:
  script:
    - echo "hello $CHAT_INPUT from job $CI_JOB_ID"

reply-only:
  script:
    - echo "not shown"
    - echo -e "section_start:$( date +%s ):chat_reply\r\033[0K\nonly this\nsection_end:$( date +%s ):chat_reply\r\033[0K"

fails:
  script:
    - echo "about to fail"; exit 3

ticker:
  script:
    - 'if [ -n "$CHAT_INPUT" ]; then echo $$ > "$CHAT_INPUT"; fi'
    - 'for i in $(seq 1 600); do echo "tick $i"; sleep 0.1; done'

slow:
  timeout: 3 seconds
  script:
    - 'for i in $(seq 1 600); do echo "slow $i"; sleep 0.1; done'

where:
  script:
    - 'echo "sha=$(git rev-parse HEAD)"'
    - cat file.txt
"#;

/// A server whose `demo` project runs on runners, with short runner timeouts for the tests.
fn runner_setup(ci: &str) -> Setup {
    let mut setup = Setup::ci(ci);
    setup.project_extra = "    executor: runner\n".into();
    setup.extra_config = format!(
        "runners:\n  lost_after: 3s\n  update_interval: 1s\n  cancel_grace: 2s\n  tokens:\n    - name: e2e-runner\n      token: {RUNNER_TOKEN}\n"
    );
    setup
}

/// Sends `run ticker` (as command 1) and waits until the runner streamed a few lines of it;
/// the job's id and the pid of its shell on the runner.
async fn start_ticker(server: &TestServer) -> (u64, i32) {
    let pid_file = server.dir.path().join("ticker.pid");
    let (_, ack) = server
        .slack_command("UDEV", &format!("run ticker {}", pid_file.display()), 1)
        .await;
    let id = job_id_of(&ack);
    let log = server.data_dir().join("logs").join(format!("{id}.log"));
    eventually("the runner streams the job's trace", || {
        read(&log).contains("tick 3")
    })
    .await;
    let pid = read(&pid_file).trim().parse().expect("the job's pid");
    (id, pid)
}

/// Sends `run {job}` and waits for the reply.
async fn run_on_runner(server: &TestServer, text: &str, n: u32) -> (u64, String) {
    let (status, ack) = server.slack_command("UDEV", text, n).await;
    assert_eq!(status, 200, "ack: {ack}");
    let id = job_id_of(&ack);
    let replies = server.fake.wait_for(&format!("/response/{n}"), 1).await;
    (id, slack_text(&replies[0].body))
}

#[actix_web::test]
async fn a_chat_job_runs_on_a_rust_runner_and_replies() {
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    let runner = TestRunner::start(&server.base, RUNNER_TOKEN).expect("the test runner starts");
    let (id, text) = run_on_runner(&server, "run hello world", 1).await;
    assert!(text.contains("hello world from"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(job_status(&server, id), "succeeded");
    // The runner's trace is the job's log: `chatops log` shows it.
    let log = read(&server.data_dir().join("logs").join(format!("{id}.log")));
    assert!(log.contains("hello world from"), "{log}");

    // The chat_reply section rule applies to a runner's trace as to a local one.
    let (_, text) = run_on_runner(&server, "run reply-only", 2).await;
    assert!(text.contains("only this"), "{text}");
    assert!(!text.contains("not shown"), "{text}");

    // A failing script: the reply says so, with its output.
    let (id, text) = run_on_runner(&server, "run fails", 3).await;
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("about to fail"), "{text}");
    assert_eq!(job_status(&server, id), "failed");
    runner.kill();
}

#[actix_web::test]
async fn a_runner_job_is_canceled_from_chat_and_times_out() {
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    let runner = TestRunner::start(&server.base, RUNNER_TOKEN).expect("the test runner starts");
    let (id, pid) = start_ticker(&server).await;
    let (status, _) = server
        .slack_command("UDEV", &format!("cancel {id}"), 2)
        .await;
    assert_eq!(status, 200);
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("canceled"), "{text}");
    assert_eq!(job_status(&server, id), "canceled");
    // The runner was told, and stopped the script.
    eventually("the job's shell on the runner is gone", || {
        !process_alive(pid)
    })
    .await;

    // The job's timeout is chatops': the runner is told to stop, the user that it timed out.
    let (id, text) = run_on_runner(&server, "run slow", 3).await;
    assert!(text.contains("timed out"), "{text}");
    assert_eq!(job_status(&server, id), "timed_out");
    runner.kill();
}

#[actix_web::test]
async fn a_runner_killed_mid_job_fails_the_job_and_says_why() {
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    let runner = TestRunner::start(&server.base, RUNNER_TOKEN).expect("the test runner starts");
    let (id, pid) = start_ticker(&server).await;
    runner.kill();
    eventually("the killed runner's job is gone", || !process_alive(pid)).await;
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("runner"), "says the runner was lost: {text}");
    assert!(text.contains("tick 3"), "shows the output so far: {text}");
    assert_eq!(job_status(&server, id), "failed");
}

#[actix_web::test]
async fn a_job_on_a_runner_survives_a_chatops_restart() {
    let mut setup = runner_setup(
        r#"
counter:
  script:
    - 'for i in $(seq 1 40); do echo "count $i"; sleep 0.1; done'
    - echo "all counted"
"#,
    );
    // The runner keeps its URL: the restarted server must listen where it did.
    setup.listen = free_local_addr();
    let server = TestServer::start(setup).await;
    let runner = TestRunner::start(&server.base, RUNNER_TOKEN).expect("the test runner starts");
    let (_, ack) = server.slack_command("UDEV", "run counter", 1).await;
    let id = job_id_of(&ack);
    let log = server.data_dir().join("logs").join(format!("{id}.log"));
    eventually("the runner streams the job's trace", || {
        read(&log).contains("count 2")
    })
    .await;
    let server = server.crash_and_restart().await;
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("all counted"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(job_status(&server, id), "succeeded");
    let log = read(&log);
    for i in 1..=40 {
        assert!(
            log.contains(&format!("count {i}\n")),
            "count {i} is in the log:\n{log}"
        );
    }
    runner.kill();
}

#[actix_web::test]
async fn a_git_project_is_fetched_by_the_runner_at_the_commit_chatops_read() {
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    let project = server.project_dir();
    std::fs::write(project.join("file.txt"), "first version\n").expect("write");
    git(&project, &["init", "-q", "-b", "main"]);
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-q", "-m", "first"]);
    let sha = git(&project, &["rev-parse", "HEAD"]);
    // Uncommitted changes are not what runs.
    std::fs::write(project.join("file.txt"), "dirty work tree\n").expect("write");
    let runner = TestRunner::start(&server.base, RUNNER_TOKEN).expect("the test runner starts");
    let (_, text) = run_on_runner(&server, "run where", 1).await;
    assert!(text.contains(&format!("sha={sha}")), "{text}");
    assert!(text.contains("first version"), "{text}");
    runner.kill();
}

#[actix_web::test]
async fn runner_api_refuses_unknown_tokens() {
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    for token in [RUNNER_TOKEN, "glrt-not-a-token-we-know"] {
        let (status, body) = server
            .request(
                server
                    .http()
                    .post(format!("{}/api/v4/runners/verify", server.base))
                    .json(&serde_json::json!({"token": token})),
            )
            .await;
        if token == RUNNER_TOKEN {
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert!(v["id"].as_u64().is_some_and(|id| id > 0), "{body}");
        } else {
            assert_eq!(status, 403, "{body}");
        }
    }
}

/// `gitlab-python-runner`'s script, from `CHATOPS_PYTHON_RUNNER` or where
/// `scripts/python-runner.sh` installs it; `None` (the test then skips, saying why) when absent.
fn python_runner() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHATOPS_PYTHON_RUNNER") {
        // Named explicitly (CI does): missing is a failure, not a skip.
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHATOPS_PYTHON_RUNNER={} is not a file (scripts/python-runner.sh installs it)",
            path.display()
        );
        return Some(path);
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/python-runner/bin/gitlab-runner.py");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: gitlab-python-runner is not installed at {} (run scripts/python-runner.sh)",
            path.display()
        );
        None
    }
}

/// Starts gitlab-python-runner for one job (`--once`) against `server`.
fn start_python_runner(script: &PathBuf, server: &TestServer) -> Child {
    let dir = server.dir.path().join("python-runner");
    std::fs::create_dir_all(&dir).expect("runner dir");
    let config = dir.join("gitlab-runner.yml");
    std::fs::write(
        &config,
        format!(
            "server: {}\ntoken: {RUNNER_TOKEN}\nexecutor: shell\nshell: /bin/bash\ndir: {}\n",
            server.base,
            dir.display()
        ),
    )
    .expect("runner config");
    Command::new(script)
        .arg("--start")
        .arg(&config)
        .arg("--once")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gitlab-python-runner")
}

#[actix_web::test]
async fn a_chat_job_runs_on_gitlab_python_runner() {
    let Some(script) = python_runner() else {
        return;
    };
    let server = TestServer::start(runner_setup(RUNNER_CI)).await;
    let project = server.project_dir();
    std::fs::write(project.join("file.txt"), "from git\n").expect("write");
    git(&project, &["init", "-q", "-b", "main"]);
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-q", "-m", "first"]);
    let sha = git(&project, &["rev-parse", "HEAD"]);
    // The job is queued before the runner's first poll: it sleeps 40 s after an empty one.
    let (status, ack) = server.slack_command("UDEV", "run where", 1).await;
    assert_eq!(status, 200, "{ack}");
    let id = job_id_of(&ack);
    let mut child = start_python_runner(&script, &server);
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains(&format!("sha={sha}")), "{text}");
    assert!(text.contains("from git"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(job_status(&server, id), "succeeded");
    let _ = child.wait();

    // A second job, killed with its runner: the job fails as lost.
    let (_, ack) = server.slack_command("UDEV", "run ticker", 2).await;
    let id = job_id_of(&ack);
    let mut child = start_python_runner(&script, &server);
    let log = server.data_dir().join("logs").join(format!("{id}.log"));
    eventually("the python runner streams the trace", || {
        read(&log).contains("tick 2")
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let replies = server.fake.wait_for("/response/2", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("failed") && text.contains("runner"), "{text}");
}

/// A free `127.0.0.1:port` (bound, then released) for a server that must keep its address.
fn free_local_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[actix_web::test]
async fn runner_token_create_makes_a_token_the_server_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args([
            "runner-token",
            "create",
            "--name",
            "fleet-a",
            "--tag",
            "linux",
        ])
        .args(["--url", "https://chatops.example.com"])
        .output()
        .expect("run chatops runner-token create");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text
        .split('"')
        .find(|w| w.starts_with("glrt-"))
        .unwrap_or_else(|| panic!("a glrt- token in:\n{text}"))
        .to_owned();
    assert!(token.len() >= 25, "{token}");
    assert!(
        text.contains("url = \"https://chatops.example.com\"") && text.contains("tags: [linux]"),
        "{text}"
    );
    // Two tokens are never the same.
    let again = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(["runner-token", "create"])
        .output()
        .expect("run chatops runner-token create");
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&token));

    // The printed entry, pasted into the config, is a runner the server knows.
    let yaml_start = text.find("runners:").expect("the YAML entry");
    let yaml: String = text[yaml_start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let mut setup = Setup::ci(RUNNER_CI);
    setup.project_extra = "    executor: runner\n    tags: [linux]\n".into();
    setup.extra_config = yaml;
    let server = TestServer::start(setup).await;
    let (status, body) = server
        .request(
            server
                .http()
                .post(format!("{}/api/v4/runners/verify", server.base))
                .json(&serde_json::json!({"token": token})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let runner = TestRunner::start(&server.base, &token).expect("the test runner starts");
    let (_, text) = run_on_runner(&server, "run hello tagged", 1).await;
    assert!(text.contains("hello tagged from job"), "{text}");
    runner.kill();
}

#[test]
fn a_bad_runners_section_stops_the_server_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("chatops.yaml");
    std::fs::write(
        &config,
        "server:\n  listen: 127.0.0.1:0\n  data_dir: data\nrunners:\n  tokens:\n    - name: a\n      token: guessable\n",
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run chatops check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("chatops.yaml:5") && err.contains("runner-token create"),
        "{err}"
    );
}
