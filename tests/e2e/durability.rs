//! Nothing lost (issue #5): the store, the outbox, restarts, the reply window, limits, cancel,
//! duplicates. Every test drives the real binary; crashes are real `kill -9`s.

use crate::helpers::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const CI: &str = r#"
hello:
  script:
    - echo "Hello World"

manual-deploy:
  when: manual
  script:
    - echo "deployed by chat"

long:
  script:
    - echo started
    - sleep 300 & echo $! > "$CI_PROJECT_DIR/bg.pid"; sleep 300

slow:
  script:
    - sleep 3
    - echo "late result"

short:
  script:
    - sleep 1
    - echo "finished in time"

conc:
  script:
    - mkdir -p "$CI_PROJECT_DIR/running" && touch "$CI_PROJECT_DIR/running/$CI_JOB_ID" && ls "$CI_PROJECT_DIR/running" | wc -l >> "$CI_PROJECT_DIR/conc.log" && sleep 0.02 && rm "$CI_PROJECT_DIR/running/$CI_JOB_ID"

rg:
  resource_group: production
  script:
    - echo "start $CI_JOB_ID" >> "$CI_PROJECT_DIR/order.log"; sleep 0.2; echo "end $CI_JOB_ID" >> "$CI_PROJECT_DIR/order.log"
"#;

/// The job id an ack names: "(#12)".
pub(crate) fn job_id_of(ack: &str) -> u64 {
    ack.split("(#")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no job id in ack: {ack}"))
}

pub(crate) fn chatops_cli(server: &TestServer, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(args)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .expect("run chatops");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub(crate) fn job_status(server: &TestServer, id: u64) -> String {
    let (code, out) = chatops_cli(server, &["jobs", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("jobs JSON");
    v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == id)
        .map(|j| j["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("job {id} not listed: {out}"))
}

/// Runs the `long` job and waits until it runs; returns its id and its background child's pid.
async fn start_long_job(server: &TestServer) -> (u64, i32) {
    let (_, ack) = server.slack_command("UDEV", "run long", 1).await;
    let id = job_id_of(&ack);
    let pid_file = server.project_dir().join("bg.pid");
    eventually("the job runs", || {
        read(&pid_file).trim().parse::<i32>().is_ok()
    })
    .await;
    let bg: i32 = read(&pid_file).trim().parse().expect("pid");
    (id, bg)
}

#[actix_web::test]
async fn kill_9_mid_job_then_restart_reports_interrupted_and_leaves_no_orphan() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (id, bg) = start_long_job(&server).await;
    assert!(process_alive(bg));
    let server = server.crash_and_restart().await;
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("interrupted"), "{text}");
    assert!(text.contains("started"), "shows the end of its log: {text}");
    eventually("the orphaned job is killed", || !process_alive(bg)).await;
    assert_eq!(job_status(&server, id), "interrupted");
}

#[actix_web::test]
async fn the_outbox_survives_a_restart() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let failing: Vec<Canned> = (0..200)
        .map(|_| Canned {
            status: 500,
            headers: vec![],
            body: "down".into(),
        })
        .collect();
    server.fake.answer_with(failing);
    server.slack_command("UDEV", "run hello", 1).await;
    server.fake.wait_for("/response/1", 2).await;
    let server = server.crash_and_restart().await;
    server.fake.clear_answers();
    eventually_async(
        &server,
        "the stored reply is delivered after the restart",
        |m| m >= 1,
    )
    .await;
    let last = server.fake.received_at("/response/1");
    let text = slack_text(&last.last().expect("posts").body);
    assert!(text.contains("Hello World"), "{text}");
}

/// Polls `chatops_replies_delivered_total` until `ok` holds.
async fn eventually_async(server: &TestServer, what: &str, ok: impl Fn(u64) -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if ok(server.metric("chatops_replies_delivered_total").await) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "waited for: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_reply_after_the_window_goes_through_the_bot_api() {
    let mut setup = Setup::ci(CI);
    // Live progress off: this is about the result itself outliving the response_url window.
    setup.server_extra = "  response_window: 2s\n  live_progress: false\n".into();
    setup.slack_extra = "  bot_token: xoxb-test-token\n".into();
    let server = TestServer::start(setup).await;
    server.slack_command("UDEV", "run slow", 1).await;
    let posts = server.fake.wait_for("/api/chat.postMessage", 1).await;
    let post = &posts[0];
    assert_eq!(post.body["channel"], "C2147483705", "{}", post.raw);
    assert!(
        slack_text(&post.body).contains("late result"),
        "{}",
        post.raw
    );
    assert!(
        post.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer xoxb-test-token"),
        "{:?}",
        post.headers
    );
    assert!(
        server
            .fake
            .received_at("/response/1")
            .iter()
            .all(|r| !slack_text(&r.body).contains("late result")),
        "not through the expired response_url"
    );
}

#[actix_web::test]
async fn without_a_bot_token_the_channel_is_told_before_the_window_closes() {
    let mut setup = Setup::ci(CI);
    setup.server_extra = "  response_window: 2s\n".into();
    let server = TestServer::start(setup).await;
    server.slack_command("UDEV", "run slow", 1).await;
    let posts = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&posts[0].body);
    assert!(text.contains("still running"), "{text}");
    assert!(text.contains("/jobs/"), "links the job page: {text}");
    assert!(
        server.stderr().contains("no bot token"),
        "warned at start: {}",
        server.stderr()
    );
}

#[actix_web::test]
async fn five_hundred_commands_against_four_slots_all_reply_once() {
    let mut setup = Setup::ci(CI);
    setup.server_extra = "  max_concurrent_jobs: 4\n".into();
    let server = TestServer::start(setup).await;
    let total = 500u32;
    let mut queued = 0;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(25) {
        let sends = chunk
            .iter()
            .map(|n| server.slack_command("UDEV", "run conc", *n));
        for (status, ack) in futures_util::future::join_all(sends).await {
            assert_eq!(status, 200, "{ack}");
            if ack.contains("queued, position") {
                queued += 1;
            }
        }
    }
    assert!(queued > 0, "some commands were queued, not refused");
    let posts = server.fake.wait_for("/response/", total as usize).await;
    let mut per_target: HashMap<String, usize> = HashMap::new();
    for p in &posts {
        *per_target.entry(p.path.clone()).or_default() += 1;
    }
    assert_eq!(
        per_target.len(),
        total as usize,
        "every command got its reply"
    );
    assert!(per_target.values().all(|n| *n == 1), "none twice");
    let max = read(&server.project_dir().join("conc.log"))
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .max()
        .expect("jobs ran");
    assert!(max <= 4, "at most 4 jobs at once, saw {max}");
}

#[actix_web::test]
async fn resource_group_runs_one_job_at_a_time_in_order() {
    let server = TestServer::start(Setup::ci(CI)).await;
    for n in 1..=3 {
        let (status, _) = server.slack_command("UDEV", "run rg", n).await;
        assert_eq!(status, 200);
    }
    for n in 1..=3 {
        server.fake.wait_for(&format!("/response/{n}"), 1).await;
    }
    let log = read(&server.project_dir().join("order.log"));
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    let mut ids = Vec::new();
    for pair in lines.chunks(2) {
        let start = pair[0].strip_prefix("start ").expect("a start");
        let end = pair[1].strip_prefix("end ").expect("then its end");
        assert_eq!(start, end, "never interleaved: {log}");
        ids.push(start.parse::<u64>().expect("id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {log}");
}

#[actix_web::test]
async fn cancel_stops_a_running_job_and_says_by_whom() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (id, bg) = start_long_job(&server).await;
    let (status, _) = server
        .slack_command("UDEV", &format!("cancel {id}"), 2)
        .await;
    assert_eq!(status, 200);
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("canceled by ada"), "{text}");
    eventually("the job's processes are gone", || !process_alive(bg)).await;
    assert_eq!(job_status(&server, id), "canceled");
    // A guest may not cancel.
    let (_, refused) = server.slack_command("UGUEST", "cancel 1", 3).await;
    assert!(
        refused.contains("ephemeral") && refused.contains("developer"),
        "{refused}"
    );
}

#[actix_web::test]
async fn a_command_delivered_twice_runs_once() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let body =
        serde_urlencoded::to_string(server.slack_form("UDEV", "run hello", 1)).expect("form");
    let (s1, first) = server
        .post_slack("/slack/commands", body.clone(), SLACK_SECRET, unix_now())
        .await;
    let (s2, second) = server
        .post_slack("/slack/commands", body, SLACK_SECRET, unix_now())
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert!(first.contains("in_channel"), "{first}");
    assert!(
        second.contains("ephemeral") && second.contains("twice"),
        "{second}"
    );
    server.fake.wait_for("/response/1", 1).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.fake.received_at("/response/1").len(), 1);
    assert_eq!(server.metric("chatops_jobs_started_total").await, 1);
}

#[actix_web::test]
async fn a_manual_job_stays_playable_after_a_restart() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, ack) = server.slack_command("UDEV", "run manual-deploy", 1).await;
    let id = job_id_of(&ack);
    let server = server.crash_and_restart().await;
    let (status, played) = server.slack_command("UDEV", &format!("play {id}"), 2).await;
    assert_eq!(status, 200, "{played}");
    let replies = server.fake.wait_for("/response/1", 1).await;
    assert!(slack_text(&replies[0].body).contains("deployed by chat"));
    assert_eq!(job_status(&server, id), "succeeded");
}

#[actix_web::test]
async fn sigterm_lets_running_jobs_finish_and_refuses_new_commands() {
    let mut server = TestServer::start(Setup::ci(CI)).await;
    server.slack_command("UDEV", "run short", 1).await;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    eventually("the server stops taking commands", || {
        server.stderr().contains("shutting down")
    })
    .await;
    let (status, ack) = server.slack_command("UDEV", "run hello", 2).await;
    assert_eq!(status, 200);
    assert!(ack.contains("restarting"), "{ack}");
    let status = server.child.wait().expect("exit");
    assert!(status.success(), "{}", server.stderr());
    let replies = server.fake.received_at("/response/1");
    assert!(
        replies
            .iter()
            .any(|r| slack_text(&r.body).contains("finished in time")),
        "the running job finished and replied before exit: {replies:?}"
    );
}

#[actix_web::test]
async fn jobs_and_log_read_the_store() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, ack) = server.slack_command("UDEV", "run hello", 1).await;
    let id = job_id_of(&ack);
    server.fake.wait_for("/response/1", 1).await;
    eventually("the job is recorded as succeeded", || {
        job_status(&server, id) == "succeeded"
    })
    .await;
    let (code, log) = chatops_cli(&server, &["log", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(
        log.contains("$ echo \"Hello World\"") && log.contains("Job succeeded"),
        "{log}"
    );
    let (code, _) = chatops_cli(&server, &["log", "999999"]);
    assert_eq!(code, 1);
    let (code, table) = chatops_cli(&server, &["jobs"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("hello") && table.contains("succeeded"),
        "{table}"
    );
}
