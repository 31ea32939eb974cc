//! Processes and the data dir (issue #9): one server per data dir, the command line beside it
//! (`run`, `play`, `cancel`, `jobs`, `log`), manual jobs that wait in the store (memory,
//! expiry), and `help` that reads no CI file for a user who may run nothing.

use crate::durability::{job_id_of, job_status};
use crate::helpers::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CI: &str = r#"
hello:
  script:
    - echo "Hello World"

manual-deploy:
  when: manual
  script:
    - echo "deployed by chat"

gate:
  script:
    - echo $$ > "$CI_PROJECT_DIR/gate.pid"
    - while [ ! -f "$CI_PROJECT_DIR/go" ]; do sleep 0.1; done; echo "passed the gate"
"#;

/// `chatops ARGS --config FILE`, with its exit status, stdout and stderr. Killed after
/// [`PATIENCE`]: a command that should end (a second `serve` that must be refused) fails the
/// test instead of hanging it.
fn cli(config: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("CHATOPS_CONFIG")
        .env("RUST_LOG", "warn")
        .env("USER", "cli-user")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chatops");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait for chatops").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "`chatops {}` did not end within {PATIENCE:?}; stderr:\n{}",
                args.join(" "),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Starts the `gate` job and waits until its shell runs; returns its id and the shell's pid.
async fn start_gate(server: &TestServer, n: u32) -> (u64, i32) {
    let (status, ack) = server.slack_command("UDEV", "run gate", n).await;
    assert_eq!(status, 200, "{ack}");
    let id = job_id_of(&ack);
    let pid_file = server.project_dir().join("gate.pid");
    eventually("the gate job runs", || {
        read(&pid_file).trim().parse::<i32>().is_ok()
    })
    .await;
    let pid = read(&pid_file).trim().parse().expect("pid");
    (id, pid)
}

#[actix_web::test]
async fn issue9_a_second_process_on_the_data_dir_leaves_the_live_servers_job_alone() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let config = server.config_path();
    let (id, shell) = start_gate(&server, 1).await;

    // A second server: refused before it recovers anything, naming who holds the data dir.
    let second = cli(&config, &["serve"]);
    let err = text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("pid {}", server.pid())), "{err}");
    assert!(
        err.contains(&server.data_dir().display().to_string()),
        "{err}"
    );
    assert!(process_alive(shell), "the live job survived a second serve");

    // `run` beside it goes through the live server.
    let run = cli(&config, &["run", "demo", "hello"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("Hello World"), "{run:?}");
    assert!(process_alive(shell), "the live job survived `chatops run`");

    // `jobs` and `log` read without disturbing it.
    assert_eq!(job_status(&server, id), "running");
    let log = cli(&config, &["log", &id.to_string()]);
    assert_eq!(log.status.code(), Some(0));
    assert!(text(&log.stdout).contains("gate.pid"), "{log:?}");
    assert!(process_alive(shell));

    // The live job ends normally, with its reply.
    std::fs::write(server.project_dir().join("go"), "").expect("open the gate");
    let replies = server.fake.wait_for("/response/1", 1).await;
    let reply = slack_text(&replies[0].body);
    assert!(
        reply.contains("passed the gate") && reply.contains("succeeded"),
        "{reply}"
    );
    eventually("the job is recorded as succeeded", || {
        job_status(&server, id) == "succeeded"
    })
    .await;
}

#[actix_web::test]
async fn issue9_cli_play_and_cancel_go_through_the_live_server() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let config = server.config_path();

    // Play a manual job created from chat: it runs, its reply goes to the chat channel.
    let (_, ack) = server.slack_command("UDEV", "run manual-deploy", 1).await;
    let id = job_id_of(&ack);
    let play = cli(&config, &["play", &id.to_string()]);
    assert_eq!(play.status.code(), Some(0), "{}", text(&play.stderr));
    assert!(text(&play.stdout).contains("succeeded"), "{play:?}");
    let replies = server.fake.wait_for("/response/1", 1).await;
    assert!(slack_text(&replies[0].body).contains("deployed by chat"));

    // Cancel one: canceled, and its channel told.
    let (_, ack) = server.slack_command("UDEV", "run manual-deploy", 2).await;
    let id = job_id_of(&ack);
    let cancel = cli(&config, &["cancel", &id.to_string()]);
    assert_eq!(cancel.status.code(), Some(0), "{}", text(&cancel.stderr));
    assert_eq!(job_status(&server, id), "canceled");
    let replies = server.fake.wait_for("/response/2", 1).await;
    let told = slack_text(&replies[0].body);
    assert!(told.contains("canceled by cli-user"), "{told}");
    // A canceled job is not played.
    let again = cli(&config, &["play", &id.to_string()]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(text(&again.stderr).contains("not waiting"), "{again:?}");

    // A manual job created by `chatops run` beside the server is not stranded.
    let run = cli(&config, &["run", "demo", "manual-deploy"]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let hint = text(&run.stderr);
    assert!(hint.contains("chatops play"), "{hint}");
    let id = job_id_of(&hint);
    let play = cli(&config, &["play", &id.to_string()]);
    assert_eq!(play.status.code(), Some(0), "{play:?}");
    assert_eq!(job_status(&server, id), "succeeded");

    let unknown = cli(&config, &["play", "999999"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");

    // A running job is canceled by the server that runs it.
    let (id, shell) = start_gate(&server, 3).await;
    let cancel = cli(&config, &["cancel", &id.to_string()]);
    assert_eq!(cancel.status.code(), Some(0), "{cancel:?}");
    eventually("the running job is killed", || !process_alive(shell)).await;
    let replies = server.fake.wait_for("/response/3", 1).await;
    let told = slack_text(&replies[0].body);
    assert!(told.contains("canceled by cli-user"), "{told}");
}

/// A config with one plain-folder project `demo` holding [`CI`], and no server.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).expect("dir");
    std::fs::write(project.join(".gitlab-ci.yml"), CI).expect("ci");
    std::fs::write(
        dir.path().join("chatops.yaml"),
        "server:\n  data_dir: data\nprojects:\n  demo:\n    repository: project\n    default_role: developer\n",
    )
    .expect("config");
    dir
}

fn status_in(config: &Path, id: u64) -> String {
    let out = cli(config, &["jobs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("jobs JSON");
    v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == id)
        .and_then(|j| j["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn issue9_cli_play_and_cancel_without_a_server() {
    let dir = workspace();
    let config = dir.path().join("chatops.yaml");
    let run = cli(&config, &["run", "demo", "manual-deploy"]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let id = job_id_of(&text(&run.stderr));
    assert_eq!(status_in(&config, id), "manual");
    let play = cli(&config, &["play", &id.to_string()]);
    assert_eq!(play.status.code(), Some(0), "{play:?}");
    assert!(
        text(&play.stdout).contains("deployed by chat"),
        "the console job's reply: {play:?}"
    );
    assert!(
        text(&play.stderr).contains("$ echo \"deployed by chat\""),
        "the log streams: {play:?}"
    );
    assert_eq!(status_in(&config, id), "succeeded");

    let run = cli(&config, &["run", "demo", "manual-deploy"]);
    let id = job_id_of(&text(&run.stderr));
    let cancel = cli(&config, &["cancel", &id.to_string()]);
    assert_eq!(cancel.status.code(), Some(0), "{cancel:?}");
    assert_eq!(status_in(&config, id), "canceled");
    let play = cli(&config, &["play", &id.to_string()]);
    assert_eq!(play.status.code(), Some(2), "{play:?}");
    let bad = cli(&config, &["cancel", "not-a-number"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

/// Resident memory (VmRSS) of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Sends `run manual-deploy` for every n in `range`, 32 at a time; returns the last ack.
async fn manual_jobs(server: &TestServer, range: std::ops::Range<u32>) -> String {
    let mut last = String::new();
    for chunk in range.collect::<Vec<_>>().chunks(32) {
        let sends = chunk
            .iter()
            .map(|n| server.slack_command("UDEV", "run manual-deploy", *n));
        for (status, ack) in futures_util::future::join_all(sends).await {
            assert_eq!(status, 200, "{ack}");
            assert!(ack.contains("manual job"), "{ack}");
            last = ack;
        }
    }
    last
}

#[actix_web::test]
async fn issue9_waiting_manual_jobs_cost_the_server_no_memory() {
    let server = TestServer::start(Setup::ci(CI)).await;
    // Warm up: the CI cache, the store's page cache, the allocator's arenas.
    manual_jobs(&server, 1..501).await;
    let before = rss_kib(server.pid());
    let started = Instant::now();
    let last = manual_jobs(&server, 501..20_501).await;
    let after = rss_kib(server.pid());
    let grown = after.saturating_sub(before);
    eprintln!(
        "20,000 manual jobs in {:?}: VmRSS {before} KiB -> {after} KiB (+{grown} KiB)",
        started.elapsed()
    );
    // Held in memory, 20,000 waiting jobs took ~50 MB here; in the store they take none.
    assert!(
        grown < 16 * 1024,
        "20,000 waiting manual jobs grew the server by {grown} KiB"
    );
    // And they are still playable.
    let id = job_id_of(&last);
    let (_, played) = server.slack_command("UDEV", &format!("play {id}"), 1).await;
    assert!(played.contains("played"), "{played}");
    let replies = server.fake.wait_for("/response/20500", 1).await;
    assert!(slack_text(&replies[0].body).contains("deployed by chat"));
}

#[actix_web::test]
async fn issue9_manual_jobs_expire_after_the_ttl() {
    let mut setup = Setup::ci(CI);
    setup.server_extra = "  manual_job_ttl: 1s\n".into();
    let server = TestServer::start(setup).await;
    let (_, ack) = server.slack_command("UDEV", "run manual-deploy", 1).await;
    let id = job_id_of(&ack);
    eventually("the manual job expires", || {
        job_status(&server, id) == "expired"
    })
    .await;
    let (status, played) = server.slack_command("UDEV", &format!("play {id}"), 2).await;
    assert_eq!(status, 200);
    assert!(played.contains("expired"), "{played}");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.fake.received_at("/response/1").is_empty(),
        "an expired job never runs"
    );
}

#[actix_web::test]
async fn issue9_help_from_a_user_without_a_role_reads_no_ci_file() {
    // A CI file that does not load: reading it shows in the answer.
    let mut setup = Setup::ci("job:\n  script: [echo\n");
    setup.default_role = "none".into();
    let server = TestServer::start(setup).await;
    let started = Instant::now();
    let (status, help) = server.slack_command("USTRANGER", "help", 1).await;
    assert_eq!(status, 200, "{help}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(help.contains("Your role here is none"), "{help}");
    assert!(
        !help.contains("gitlab-ci") && !help.contains("CI file"),
        "the CI file was read for a user who may run nothing: {help}"
    );
    // The same file, for a member who may run jobs, is read (and its error shown).
    let (_, help) = server.slack_command("UMAINTAINER", "help", 2).await;
    assert!(help.contains("CI file"), "{help}");
}
