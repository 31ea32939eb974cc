//! The job page (issue 11): coloured log, live Server-Sent Events, masking on every byte the
//! page and the stream send, and the Cancel button of developer links.

use crate::helpers::{slack_links, slack_text, Setup, TestServer};
use chatops_core::{JobId, PlatformId, UserId};
use chatops_pipeline::links::LinkSigner;

const PAGE_CI: &str = r#"
colours:
  script:
    - for i in 1 2 3 4 5 6; do printf '\033[32mline %s\033[0m \033[31m%s\033[0m%s\n' "$i" S3c rETVALUE; sleep 0.4; done

slow:
  script:
    - echo started; sleep 60
"#;

async fn server() -> TestServer {
    let mut setup = Setup::ci(PAGE_CI);
    setup.project_extra = "    secrets: {DEPLOY_TOKEN: S3crETVALUE}\n".into();
    TestServer::start(setup).await
}

/// The secret, whole or as the job printed it (split by a colour escape), is on no line of
/// output (the `$ command` line shows the job's source, not its output).
fn secret_absent(text: &str) -> bool {
    !text.contains("S3crETVALUE")
        && text
            .lines()
            .filter(|l| l.contains("line "))
            .filter(|l| !l.contains("$ for"))
            .all(|l| l.contains("[MASKED]") && !l.contains("VALUE") && !l.contains("S3c"))
}

/// The `/jobs/ID?t=...` part of the link in a reply or ack.
fn page_path(text: &str) -> String {
    let at = text.find("/jobs/").expect("a job page link");
    text[at..]
        .split(['|', '>', ')', '"', ' '])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[actix_rt::test]
async fn the_job_page_streams_a_coloured_masked_log_live() {
    let server = server().await;
    let (status, ack) = server.slack_command("UDEV", "run colours", 1).await;
    assert_eq!(status, 200, "{ack}");
    let path = page_path(&ack);
    let page_url = format!("{}{}", server.base, path);
    let (code, page) = server.request(server.http().get(&page_url)).await;
    assert_eq!(code, 200, "{page}");
    assert!(secret_absent(&page), "{page}");
    assert!(page.contains("Job #"), "{page}");
    // The stream from the start: log events while it runs, then the status, then its end.
    let events_url = page_url.replacen("?t=", "/events?t=", 1);
    let (code, stream) = server.request(server.http().get(&events_url)).await;
    assert_eq!(code, 200, "{stream}");
    assert!(
        stream.matches("event: log").count() >= 2,
        "live, line by line: {stream}"
    );
    assert!(stream.contains("event: status"), "{stream}");
    assert!(stream.contains("\"succeeded\""), "{stream}");
    assert!(
        stream.contains("<span style='color:var(--green"),
        "coloured: {stream}"
    );
    assert!(stream.contains("line 6"), "{stream}");
    assert!(stream.contains("[MASKED]"), "{stream}");
    assert!(secret_absent(&stream), "{stream}");
    // Resuming at the last event id sends nothing of the log again.
    let last_id = stream
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .expect("an event id")
        .to_owned();
    let (_, rest) = server
        .request(
            server
                .http()
                .get(&events_url)
                .header("Last-Event-ID", last_id),
        )
        .await;
    assert!(!rest.contains("event: log"), "{rest}");
    assert!(rest.contains("event: status"), "{rest}");
    // The finished page holds the whole coloured, masked log.
    let (_, page) = server.request(server.http().get(&page_url)).await;
    assert!(
        page.contains("line 6") && page.contains("[MASKED]"),
        "{page}"
    );
    assert!(page.contains("<span style="), "{page}");
    assert!(secret_absent(&page), "{page}");
}

#[actix_rt::test]
async fn a_developer_link_cancels_and_a_view_link_cannot() {
    let server = server().await;
    let (status, ack) = server.slack_command("UDEV", "run slow", 1).await;
    assert_eq!(status, 200, "{ack}");
    let path = page_path(&ack);
    let id: u64 = path["/jobs/".len()..]
        .split('?')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("job id");
    let token = path.split("t=").nth(1).unwrap_or_default().to_owned();
    let cancel_url = format!("{}/jobs/{id}/cancel", server.base);
    // The view link alone shows no button and cannot cancel.
    let (_, page) = server
        .request(server.http().get(format!("{}{}", server.base, path)))
        .await;
    assert!(!page.contains("Cancel job"), "{page}");
    let (code, _) = server
        .request(
            server
                .http()
                .post(&cancel_url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    serde_urlencoded::to_string([("t", token.as_str()), ("d", "")])
                        .unwrap_or_default(),
                ),
        )
        .await;
    assert_eq!(code, 403);
    // The developer asks `status ID` and gets their own link, in an answer only they see.
    let (_, answer) = server
        .slack_command("UDEV", &format!("status {id}"), 2)
        .await;
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON ack");
    assert_eq!(answer["response_type"], "ephemeral", "{answer}");
    let text = slack_text(&answer);
    let dev = slack_links(&text)
        .into_iter()
        .find(|url| url.contains("&d="))
        .unwrap_or_else(|| panic!("a developer link in the status answer: {text}"));
    // It is the link the server signs for that user.
    let key = chatops::link_key(&server.data_dir()).expect("link key");
    let signer = LinkSigner::new(key, &server.base);
    let signed = signer.developer_url(JobId(id), &PlatformId::new("slack"), &UserId::new("UDEV"));
    assert_eq!(dev.split("&d=").next(), signed.split("&d=").next(), "{dev}");
    let (_, page) = server.request(server.http().get(&dev)).await;
    assert!(page.contains("Cancel job"), "{page}");
    let grant = dev.split("&d=").nth(1).unwrap_or_default().to_owned();
    // A cross-site post is refused even with the grant.
    let (code, _) = server
        .request(
            server
                .http()
                .post(&cancel_url)
                .header("Origin", "https://evil.example")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    serde_urlencoded::to_string([("t", token.as_str()), ("d", grant.as_str())])
                        .unwrap_or_default(),
                ),
        )
        .await;
    assert_eq!(code, 403);
    let (code, body) = server
        .request(
            server
                .http()
                .post(&cancel_url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    serde_urlencoded::to_string([("t", token.as_str()), ("d", grant.as_str())])
                        .unwrap_or_default(),
                ),
        )
        .await;
    assert!(code == 303 || code == 200, "{code} {body}");
    let page_url = format!("{}{}", server.base, path);
    let http = server.http().clone();
    let mut canceled = false;
    for _ in 0..300 {
        let page = http
            .get(&page_url)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .unwrap_or_default();
        if page.contains("canceled") {
            canceled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(canceled, "the job was canceled from its page");
}

/// Chromium's flags for a throwaway headless run.
fn chromium(profile: &std::path::Path) -> Option<std::process::Command> {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "SKIPPED: chromium is not installed (.ci/run installs it: apt-get install chromium)"
        );
        return None;
    }
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    Some(cmd)
}

#[actix_rt::test]
async fn chromium_shows_lines_appended_live_in_colour_without_the_secret() {
    let server = server().await;
    let (status, ack) = server.slack_command("UDEV", "run colours", 1).await;
    assert_eq!(status, 200, "{ack}");
    let page_url = format!("{}{}", server.base, page_path(&ack));
    let (_, first) = server.request(server.http().get(&page_url)).await;
    assert!(
        !first.contains("line 6"),
        "the job is still running at load: {first}"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let Some(mut cmd) = chromium(profile.path()) else {
        return;
    };
    let shot = server.data_dir().join("job-page.png");
    let url = page_url.clone();
    let dom = tokio::task::spawn_blocking(move || {
        cmd.args(["--dump-dom", "--virtual-time-budget=15000", &url])
            .output()
    })
    .await
    .expect("join")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    // Loaded while the job ran, the DOM now holds the lines the stream appended, in colour.
    assert!(dom.contains("line 6"), "live append: {dom}");
    assert!(dom.contains("color:var(--green"), "colours: {dom}");
    assert!(dom.contains("[MASKED]") && secret_absent(&dom), "{dom}");
    assert!(dom.contains("succeeded"), "the final status: {dom}");
    // A screenshot of the finished page (docs/job-page.png comes from here).
    let profile2 = tempfile::tempdir().expect("profile dir");
    if let Some(mut cmd) = chromium(profile2.path()) {
        let target = shot.clone();
        let out = tokio::task::spawn_blocking(move || {
            cmd.arg(format!("--screenshot={}", target.display()))
                .args(["--window-size=900,560", &page_url])
                .output()
        })
        .await
        .expect("join")
        .expect("chromium runs");
        assert!(shot.exists(), "{}", String::from_utf8_lossy(&out.stderr));
        if let Ok(dir) = std::env::var("CHATOPS_PAGE_SCREENSHOT") {
            let _ = std::fs::copy(&shot, dir);
        }
    }
}
