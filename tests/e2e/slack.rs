//! Slack end to end: signed slash commands in, replies at the fake `response_url`.

use crate::helpers::*;
use crate::CI;

fn ack_text(ack: &serde_json::Value) -> String {
    slack_text(ack)
}

#[actix_web::test]
async fn hello_world_replies_hello_world() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (ack, reply) = server.run_and_reply("run hello-world", 1).await;
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    assert!(ack_text(&ack).contains("hello-world"), "{ack}");
    assert_eq!(reply["response_type"], "in_channel", "{reply}");
    let text = slack_text(&reply);
    assert!(text.contains("Hello World"), "{text}");
    assert!(
        !text.contains("$ echo"),
        "single command: only its output: {text}"
    );
    assert!(text.contains("succeeded"), "{text}");
    assert!(text.contains("<@UDEV>"), "names the user: {text}");
    assert!(text.contains("/jobs/"), "links the job page: {text}");
}

#[actix_web::test]
async fn ls_replies_only_the_chat_reply_section() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run ls", 1).await;
    let text = slack_text(&reply);
    assert!(text.contains("README.txt"), "the listing: {text}");
    assert!(text.contains(".gitlab-ci.yml"), "the listing: {text}");
    assert!(!text.contains("This command will not be shown"), "{text}");
    assert!(!text.contains("section_start"), "{text}");
    assert!(!text.contains("\u{1b}"), "no ANSI: {text:?}");
}

#[actix_web::test]
async fn multi_command_job_shows_the_transcript() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run multi", 1).await;
    let text = slack_text(&reply);
    for needle in [
        "$ echo \"before one\"",
        "before one",
        "$ echo \"first\"",
        "first",
        "$ echo \"second\"",
        "second",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    let order: Vec<_> = ["before one", "first", "second"]
        .iter()
        .map(|n| text.rfind(n).expect("present"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {text}");
}

#[actix_web::test]
async fn chat_variables_reach_the_job_and_server_secrets_do_not() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run vars", 1).await;
    let text = slack_text(&reply);
    assert!(text.contains("channel=C2147483705"), "{text}");
    assert!(text.contains("user=UDEV"), "{text}");
    assert!(text.contains("platform=slack"), "{text}");
    assert!(
        text.contains("leak=none"),
        "the server's environment stays out: {text}"
    );
}

#[actix_web::test]
async fn input_reaches_the_job_verbatim_and_is_never_executed() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let input = "a $(touch pwned1) `touch pwned2` ; touch pwned3 && echo \"q\" 'q' | x\n  line two\t<b>&amp;";
    let (_, reply) = server.run_and_reply(&format!("run echo {input}"), 1).await;
    let written = read(&server.project_dir().join("input.txt"));
    assert_eq!(written, input, "CHAT_INPUT verbatim");
    for f in ["pwned1", "pwned2", "pwned3"] {
        assert!(!server.project_dir().join(f).exists(), "{f} must not exist");
    }
    let text = slack_text(&reply);
    assert!(
        text.contains("&lt;b&gt;&amp;amp;"),
        "escaped for Slack: {text}"
    );
}

#[actix_web::test]
async fn bad_signatures_get_401_and_cause_no_work() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let body =
        serde_urlencoded::to_string(server.slack_form("UDEV", "run hello-world", 1)).expect("form");
    // Wrong secret.
    let (status, _) = server
        .post_slack("/slack/commands", body.clone(), "wrong-secret", unix_now())
        .await;
    assert_eq!(status, 401);
    // Stale timestamp (more than 300 s of skew), correctly signed for it.
    let (status, _) = server
        .post_slack(
            "/slack/commands",
            body.clone(),
            SLACK_SECRET,
            unix_now() - 301,
        )
        .await;
    assert_eq!(status, 401);
    // From the future, too.
    let (status, _) = server
        .post_slack(
            "/slack/commands",
            body.clone(),
            SLACK_SECRET,
            unix_now() + 301,
        )
        .await;
    assert_eq!(status, 401);
    // Missing headers.
    let (status, _) = server
        .request(
            server
                .http()
                .post(format!("{}/slack/commands", server.base))
                .body(body.clone()),
        )
        .await;
    assert_eq!(status, 401);
    // Body tampered after signing.
    let ts = unix_now().to_string();
    let sig = slack_signature(SLACK_SECRET, &ts, body.as_bytes());
    let (status, _) = server
        .request(
            server
                .http()
                .post(format!("{}/slack/commands", server.base))
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig)
                .body(body.replace("hello-world", "fails")),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(server.metric("chatops_commands_received_total").await, 0);
    assert_eq!(server.metric("chatops_jobs_started_total").await, 0);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        server.fake.received().is_empty(),
        "no reply for refused requests"
    );
}

#[actix_web::test]
async fn ssl_check_gets_an_empty_200() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let body = "ssl_check=1&token=abc".to_owned();
    let (status, text) = server
        .post_slack("/slack/commands", body, SLACK_SECRET, unix_now())
        .await;
    assert_eq!(status, 200);
    assert!(text.is_empty(), "{text}");
}

/// Sends `text`, expects an ephemeral refusal and no job.
async fn expect_refusal(server: &TestServer, user: &str, text: &str, needles: &[&str]) {
    let (status, ack) = server.slack_command(user, text, 99).await;
    assert_eq!(status, 200, "{ack}");
    let ack: serde_json::Value = serde_json::from_str(&ack).expect("JSON ack");
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    let said = slack_text(&ack);
    for n in needles {
        assert!(said.contains(n), "missing {n:?} in {said}");
    }
}

#[actix_web::test]
async fn refusals_name_their_cause() {
    let server = TestServer::start(Setup::ci(CI)).await;
    expect_refusal(
        &server,
        "UDEV",
        "run hello-wrld",
        &["hello-world", "no job"],
    )
    .await;
    expect_refusal(&server, "UDEV", "run build", &["except: chat"]).await;
    expect_refusal(&server, "UDEV", "run nightly", &["rules"]).await;
    expect_refusal(&server, "UDEV", "run .hidden-template", &["hidden"]).await;
    expect_refusal(
        &server,
        "UDEV",
        "deploy everything",
        &["not a valid command", "run JOB"],
    )
    .await;
    expect_refusal(
        &server,
        "UGUEST",
        "run hello-world",
        &["developer", "UGUEST", "guest"],
    )
    .await;
    assert_eq!(server.metric("chatops_jobs_started_total").await, 0);
    let help = server.slack_command("UDEV", "help", 98).await.1;
    let help = slack_text(&serde_json::from_str(&help).expect("JSON"));
    assert!(
        help.contains("hello-world") && help.contains("manual-deploy"),
        "{help}"
    );
    assert!(
        !help.contains("build`") && !help.contains("nightly"),
        "help lists runnable jobs only: {help}"
    );
}

#[actix_web::test]
async fn role_default_none_refuses_unlisted_users() {
    let mut setup = Setup::ci(CI);
    setup.default_role = "none".into();
    let server = TestServer::start(setup).await;
    expect_refusal(
        &server,
        "USTRANGER",
        "run hello-world",
        &["developer", "USTRANGER", "none"],
    )
    .await;
    // A listed maintainer may.
    let (status, ack) = server
        .slack_command("UMAINTAINER", "run hello-world", 5)
        .await;
    assert_eq!(status, 200);
    assert!(ack.contains("in_channel"), "{ack}");
    server.fake.wait_for("/response/5", 1).await;
}

#[actix_web::test]
async fn broken_yaml_is_reported_with_file_and_line() {
    let server = TestServer::start(Setup::ci(
        "hello:\n  script:\n    - echo hi\n  bad: [unclosed\n",
    ))
    .await;
    expect_refusal(&server, "UDEV", "run hello", &[".gitlab-ci.yml", "line"]).await;
}

#[actix_web::test]
async fn manual_job_waits_until_played() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (status, ack) = server.slack_command("UDEV", "run manual-deploy", 1).await;
    assert_eq!(status, 200);
    let ack: serde_json::Value = serde_json::from_str(&ack).expect("JSON");
    let said = slack_text(&ack);
    assert!(said.contains("manual"), "{said}");
    let id: u64 = said
        .split("/demo play ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("the ack says how to play: {said}"));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        server.metric("chatops_jobs_started_total").await,
        0,
        "waits"
    );
    assert!(server.fake.received_at("/response/1").is_empty());
    let (status, played) = server.slack_command("UDEV", &format!("play {id}"), 2).await;
    assert_eq!(status, 200, "{played}");
    // The job's reply goes to the channel of the command that created it.
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("deployed by chat"), "{text}");
}

#[actix_web::test]
async fn failing_job_reports_exit_code_and_its_output() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run fails", 1).await;
    let text = slack_text(&reply);
    assert!(text.contains("failed with exit code 3"), "{text}");
    assert!(text.contains("about to fail"), "{text}");
    assert!(
        !text.contains("never printed"),
        "stops at the first failing command: {text}"
    );
}

#[actix_web::test]
async fn timeout_kills_the_whole_process_group() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run sleeper", 1).await;
    let text = slack_text(&reply);
    assert!(text.contains("timed out"), "{text}");
    let pid: i32 = read(&server.project_dir().join("bg.pid"))
        .trim()
        .parse()
        .expect("the job wrote its background pid");
    eventually("the background child is gone", || !process_alive(pid)).await;
}

#[actix_web::test]
async fn a_job_printing_100_mb_keeps_the_server_small() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run big", 1).await;
    let text = slack_text(&reply);
    assert!(
        text.contains("done after 100 MB"),
        "keeps the end: {}",
        &text[text.len().saturating_sub(500)..]
    );
    assert!(text.contains("left out"), "says what was cut");
    assert!(text.len() < 50_000, "fits Slack: {} chars", text.len());
    let log_len = std::fs::metadata(server.data_dir().join("logs"))
        .map(|_| ())
        .is_ok();
    assert!(log_len, "the log folder exists");
    let peak_mib = peak_rss_kib(server.pid()) / 1024;
    eprintln!("server peak RSS after 100 MB of output: {peak_mib} MiB");
    assert!(
        peak_mib < 80,
        "server peak RSS {peak_mib} MiB for 100 MB of output"
    );
}

#[actix_web::test]
async fn health_and_metrics() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (status, body) = server
        .request(server.http().get(format!("{}/healthz", server.base)))
        .await;
    assert_eq!((status, body.trim()), (200, "ok"));
    server.run_and_reply("run hello-world", 1).await;
    eventually("metrics count the job", || true).await;
    assert_eq!(server.metric("chatops_jobs_succeeded_total").await, 1);
    assert_eq!(server.metric("chatops_commands_received_total").await, 1);
}

#[actix_web::test]
async fn job_page_needs_the_signed_link() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (_, reply) = server.run_and_reply("run hello-world", 1).await;
    let text = slack_text(&reply);
    let link = slack_links(&text)
        .into_iter()
        .find(|s| s.contains("/jobs/"))
        .expect("a job link");
    let (status, page) = server.request(server.http().get(&link)).await;
    assert_eq!(status, 200, "{link}");
    assert!(
        page.contains("Hello World") && page.contains("succeeded"),
        "{page}"
    );
    let forged = format!(
        "{}?t=00000000000000000000000000000000",
        link.split('?').next().expect("path")
    );
    let (status, _) = server.request(server.http().get(&forged)).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn sigterm_shuts_down_cleanly() {
    let mut server = TestServer::start(Setup::ci(CI)).await;
    server.run_and_reply("run hello-world", 1).await;
    let status = server.terminate();
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("shut down cleanly"),
        "{}",
        server.stderr()
    );
}

#[actix_web::test]
async fn replies_survive_platform_500s_and_honour_429_retry_after() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let fail = |status: u16, headers: Vec<(String, String)>| Canned {
        status,
        headers,
        body: "try later".into(),
    };
    server.fake.answer_with(vec![
        fail(500, vec![]),
        fail(503, vec![]),
        fail(429, vec![("retry-after".into(), "1".into())]),
    ]);
    let (status, _) = server.slack_command("UDEV", "run hello-world", 1).await;
    assert_eq!(status, 200);
    let posts = server.fake.wait_for("/response/1", 4).await;
    let last = posts.last().expect("four posts");
    assert!(
        slack_text(&last.body).contains("Hello World"),
        "{}",
        last.raw
    );
    assert!(
        last.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "{:?}",
        last.headers
    );
    // Delivered once: nothing more arrives after the 200.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(server.fake.received_at("/response/1").len(), 4);
    assert_eq!(server.metric("chatops_replies_delivered_total").await, 1);
}

#[actix_web::test]
async fn git_projects_run_the_default_branch_head_in_a_fresh_checkout() {
    let server = TestServer::start(Setup::ci("placeholder: {script: [echo no]}\n")).await;
    let repo = server.project_dir();
    let committed = "where:\n  script:\n    - 'echo \"sha=$CI_COMMIT_SHA branch=$CI_COMMIT_BRANCH\"; pwd; cat marker.txt'\n";
    std::fs::write(repo.join(".gitlab-ci.yml"), committed).expect("ci");
    std::fs::write(repo.join("marker.txt"), "committed marker\n").expect("marker");
    let git = |args: &[&str]| git(&repo, args);
    git(&["init", "-q", "-b", "trunk"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "ci"]);
    let sha = git(&["rev-parse", "HEAD"]);
    // Uncommitted changes are not what the default branch holds: chatops must not see them.
    std::fs::write(repo.join("marker.txt"), "dirty work tree\n").expect("dirty");
    std::fs::write(
        repo.join(".gitlab-ci.yml"),
        "where:\n  script: [echo dirty]\n",
    )
    .expect("dirty ci");
    let (_, reply) = server.run_and_reply("run where", 1).await;
    let text = slack_text(&reply);
    assert!(text.contains(&format!("sha={sha} branch=trunk")), "{text}");
    assert!(text.contains("committed marker"), "{text}");
    assert!(!text.contains("dirty"), "{text}");
    let builds = server.data_dir().join("builds");
    assert!(
        text.contains(&builds.to_string_lossy().to_string()),
        "runs in a checkout under data_dir/builds: {text}"
    );
    eventually("the checkout is removed after the job", || {
        std::fs::read_dir(&builds)
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    })
    .await;
}

#[actix_web::test]
async fn a_slow_command_still_gets_an_ack_in_time_and_the_answer_later() {
    let server = TestServer::start(Setup::ci(CI)).await;
    // Another process holds the store's write lock, as a slow disk or a backup might: the
    // command cannot be recorded for a while, longer than Slack waits for an ack.
    let db = rusqlite::Connection::open(server.data_dir().join("chatops.db")).expect("open db");
    db.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let (status, ack) = server.slack_command("UDEV", "run hello-world", 1).await;
    db.execute_batch("ROLLBACK").expect("unlock");
    assert_eq!(status, 200);
    assert!(ack.contains("Working on it"), "{ack}");
    // The real ack follows as a message, then the job's reply.
    let posts = server.fake.wait_for("/response/1", 2).await;
    let all: Vec<_> = posts.iter().map(|p| slack_text(&p.body)).collect();
    assert!(all[0].contains("started"), "{all:?}");
    assert!(all[1].contains("Hello World"), "{all:?}");
}

#[actix_web::test]
async fn signed_but_malformed_payloads_get_a_clear_400_and_no_work() {
    let server = TestServer::start(Setup::ci(CI)).await;
    // No `command`, `user_id` or `channel_id`: correctly signed, but not a slash command.
    let (status, body) = server
        .post_slack(
            "/slack/commands",
            "text=run+hello-world&team_id=T1".into(),
            SLACK_SECRET,
            unix_now(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.is_empty(), "says what is wrong");
    // Button payload that is not JSON.
    let (status, body) = server
        .post_slack(
            "/slack/actions",
            "payload=%7Bnot+json".into(),
            SLACK_SECRET,
            unix_now(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Invalid UTF-8 in a signed form.
    let (status, _) = server
        .post_slack(
            "/slack/commands",
            "command=%2Fdemo&text=%FF%FE&user_id=U&channel_id=C".into(),
            SLACK_SECRET,
            unix_now(),
        )
        .await;
    assert!(status == 400 || status == 200, "never a 5xx: {status}");
    assert_eq!(server.metric("chatops_jobs_started_total").await, 0);
}
