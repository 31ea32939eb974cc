//! Issue #11's subcommands through the real server (Slack fake): `status [ID]`, `jobs`,
//! `retry ID`, `help` with job descriptions; and the command line's `completions` and the
//! `finished in` line of `run`.

use crate::helpers::*;
use crate::CI;
use std::process::Command;

/// A CI file whose jobs carry descriptions both ways.
const DESCRIBED: &str = "# Deploys to the given env\ndeploy:\n  script: [echo deploying]\n\nrestart:\n  variables:\n    CHAT_DESCRIPTION: {value: x, description: Restarts the web tier}\n  script: [echo restarting]\n\nplain:\n  script: [echo plain]\n";

fn ack_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).expect("ack is JSON")
}

#[actix_web::test]
async fn help_shows_each_jobs_description() {
    let server = TestServer::start(Setup::ci(DESCRIBED)).await;
    let (status, body) = server.slack_command("UDEV", "help", 1).await;
    assert_eq!(status, 200);
    let ack = ack_of(&body);
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    let text = slack_text(&ack);
    assert!(text.contains("— Deploys to the given env"), "{text}");
    assert!(text.contains("— Restarts the web tier"), "{text}");
    assert!(text.contains("plain"), "{text}");
    assert!(
        text.contains("status [ID]") && text.contains("retry ID"),
        "{text}"
    );
}

#[actix_web::test]
async fn status_jobs_and_retry_through_the_server() {
    let mut setup = Setup::ci(CI);
    setup.default_role = "reporter".into();
    let server = TestServer::start(setup).await;
    // A maintainer runs a job with input; it ends.
    let (status, body) = server
        .slack_command("UMAINTAINER", "run echo first input", 1)
        .await;
    assert_eq!(status, 200, "{body}");
    server.fake.wait_for("/response/1", 1).await;
    let id = server
        .fake
        .received_at("/response/1")
        .iter()
        .find_map(|r| {
            let t = slack_text(&r.body);
            t.split("(#").nth(1)?.split(')').next()?.parse::<u64>().ok()
        })
        .expect("the reply names the job id");

    // A reporter reads it: status with and without an id, and jobs; all ephemeral.
    let (_, body) = server
        .slack_command("UREPORTER", &format!("status {id}"), 2)
        .await;
    let ack = ack_of(&body);
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    let text = slack_text(&ack);
    assert!(text.contains(&format!("(#{id})")), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    assert!(text.contains("first input"), "{text}");
    assert!(text.contains("/jobs/"), "links the page: {text}");

    let (_, body) = server.slack_command("UMAINTAINER", "status", 3).await;
    let text = slack_text(&ack_of(&body));
    assert!(text.contains(&format!("(#{id})")), "latest job: {text}");

    let (_, body) = server.slack_command("UREPORTER", "jobs", 4).await;
    let ack = ack_of(&body);
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    let text = slack_text(&ack);
    assert!(
        text.contains(&format!("#{id}")) && text.contains("echo"),
        "{text}"
    );

    // Another channel has no jobs of this project.
    let mut form = server.slack_form("UREPORTER", "jobs", 5);
    for (k, v) in form.iter_mut() {
        if k == "channel_id" {
            *v = "COTHER".into();
        }
    }
    let body = serde_urlencoded::to_string(form).expect("form");
    let (_, body) = server
        .post_slack("/slack/commands", body, SLACK_SECRET, unix_now())
        .await;
    let text = slack_text(&ack_of(&body));
    assert!(text.contains("No job of demo"), "{text}");

    // Reading needs reporter; retrying needs developer.
    let (_, body) = server.slack_command("UGUEST", "jobs", 6).await;
    let text = slack_text(&ack_of(&body));
    assert!(text.contains("reporter role"), "{text}");
    let (_, body) = server
        .slack_command("UREPORTER", &format!("retry {id}"), 7)
        .await;
    let text = slack_text(&ack_of(&body));
    assert!(text.contains("developer role"), "{text}");

    // Unknown ids are refused.
    let (_, body) = server.slack_command("UMAINTAINER", "retry 999999", 8).await;
    let text = slack_text(&ack_of(&body));
    assert!(text.contains("no job #999999"), "{text}");

    // A maintainer retries: the same job and input, as the maintainer.
    let (_, body) = server
        .slack_command("UMAINTAINER", &format!("retry {id}"), 9)
        .await;
    let ack = ack_of(&body);
    assert_eq!(ack["response_type"], "in_channel", "a started job: {ack}");
    let replies = server.fake.wait_for("/response/9", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(text.contains("first input"), "same input: {text}");
    assert!(text.contains("<@UMAINTAINER>"), "as the caller: {text}");
    assert!(!text.contains(&format!("(#{id})")), "a new job: {text}");
}

fn chatops() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatops"));
    c.env_remove("CHATOPS_CONFIG").env("RUST_LOG", "warn");
    c
}

#[test]
fn completions_bash_is_a_script_naming_the_subcommands() {
    let out = chatops()
        .args(["completions", "bash"])
        .output()
        .expect("run completions");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("complete -F"), "{script}");
    for sub in ["serve", "check", "run", "jobs", "log", "completions"] {
        assert!(script.contains(sub), "{sub} missing");
    }
}

#[test]
fn run_ends_with_the_finished_in_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).expect("dir");
    std::fs::write(project.join(".gitlab-ci.yml"), CI).expect("ci");
    let config = dir.path().join("chatops.yaml");
    std::fs::write(
        &config,
        "server:\n  data_dir: data\nprojects:\n  demo:\n    repository: project\n    default_role: developer\n",
    )
    .expect("config");
    let out = chatops()
        .args(["run", "--config"])
        .arg(&config)
        .args(["demo", "hello-world"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("finished in "), "{stderr}");
    assert!(
        !stderr.contains("running…"),
        "no status line on a pipe: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello World"));
}
