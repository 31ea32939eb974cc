//! `/metrics` through the real server: jobs run from the Slack fake move the histograms
//! (ack, command→reply, job duration by status) and the per-platform delivery counters; a 429
//! from the platform is counted.

use crate::helpers::{Canned, Setup, TestServer, PATIENCE};
use crate::CI;
use std::time::{Duration, Instant};

/// The value of one series in the exposition text: `name{labels}` exactly as rendered
/// (`chatops_jobs_started_total`, `chatops_ack_duration_seconds_count{platform="slack"}`).
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn scrape(server: &TestServer) -> String {
    let (status, text) = server
        .request(server.http().get(format!("{}/metrics", server.base)))
        .await;
    assert_eq!(status, 200, "GET /metrics: {text}");
    text
}

/// Scrapes until every series in `want` is at least its value (the server records a delivery
/// just after the fake platform has seen it, so a first scrape may be early).
async fn scrape_until(server: &TestServer, want: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(server).await;
        let short: Vec<_> = want
            .iter()
            .filter(|(name, min)| series(&text, name).is_none_or(|v| v < *min))
            .collect();
        if short.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {short:?} in:\n{text}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_slack_job_moves_the_histograms() {
    let server = TestServer::start(Setup::ci(CI)).await;
    // Before any command: the configured platform's series exist, at zero.
    let before = scrape(&server).await;
    assert_eq!(
        series(
            &before,
            "chatops_ack_duration_seconds_count{platform=\"slack\"}"
        ),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        series(
            &before,
            "chatops_reply_rate_limited_total{platform=\"slack\"}"
        ),
        Some(0.0)
    );

    server.run_and_reply("run hello-world", 1).await;
    server.run_and_reply("run fails", 2).await;

    let text = scrape_until(
        &server,
        &[
            (
                "chatops_ack_duration_seconds_count{platform=\"slack\"}",
                2.0,
            ),
            (
                "chatops_command_reply_duration_seconds_count{platform=\"slack\"}",
                2.0,
            ),
            (
                "chatops_job_duration_seconds_count{status=\"succeeded\"}",
                1.0,
            ),
            ("chatops_job_duration_seconds_count{status=\"failed\"}", 1.0),
            (
                "chatops_reply_delivery_attempts_total{platform=\"slack\"}",
                2.0,
            ),
            ("chatops_replies_delivered_total", 2.0),
        ],
    )
    .await;
    // The observations landed in buckets: `+Inf` holds them all, and the sums are real
    // durations (positive).
    for (histogram, labels) in [
        ("chatops_ack_duration_seconds", "platform=\"slack\""),
        (
            "chatops_command_reply_duration_seconds",
            "platform=\"slack\"",
        ),
        ("chatops_job_duration_seconds", "status=\"succeeded\""),
    ] {
        let count = series(&text, &format!("{histogram}_count{{{labels}}}"));
        let inf = series(
            &text,
            &format!("{histogram}_bucket{{{labels},le=\"+Inf\"}}"),
        );
        assert_eq!(inf, count, "{histogram} +Inf bucket vs count in:\n{text}");
        let sum = series(&text, &format!("{histogram}_sum{{{labels}}}"));
        assert!(sum.is_some_and(|s| s > 0.0), "{histogram} sum {sum:?}");
    }
    // The existing counters still answer under their names.
    assert_eq!(series(&text, "chatops_jobs_succeeded_total"), Some(1.0));
    assert_eq!(series(&text, "chatops_jobs_failed_total"), Some(1.0));
    assert_eq!(series(&text, "chatops_commands_received_total"), Some(2.0));
    assert_eq!(series(&text, "chatops_jobs_running"), Some(0.0));
    assert_eq!(series(&text, "chatops_jobs_queued"), Some(0.0));
    assert_eq!(
        series(
            &text,
            "chatops_reply_rate_limited_total{platform=\"slack\"}"
        ),
        Some(0.0)
    );
}

#[actix_web::test]
async fn a_429_from_the_platform_is_counted() {
    let server = TestServer::start(Setup::ci(CI)).await;
    // The job's reply is the first thing chatops posts to the fake: refuse it once.
    server.fake.answer_with(vec![Canned {
        status: 429,
        headers: vec![("retry-after".into(), "1".into())],
        body: "rate limited".into(),
    }]);
    let (status, _) = server.slack_command("UDEV", "run hello-world", 1).await;
    assert_eq!(status, 200);
    // Refused once, then delivered after Retry-After.
    let posts = server.fake.wait_for("/response/1", 2).await;
    assert_eq!(
        posts[0].body, posts[1].body,
        "the retry posts the same reply"
    );
    let text = scrape_until(
        &server,
        &[
            ("chatops_reply_rate_limited_total{platform=\"slack\"}", 1.0),
            (
                "chatops_reply_delivery_attempts_total{platform=\"slack\"}",
                2.0,
            ),
            (
                "chatops_command_reply_duration_seconds_count{platform=\"slack\"}",
                1.0,
            ),
        ],
    )
    .await;
    assert_eq!(
        series(
            &text,
            "chatops_reply_rate_limited_total{platform=\"slack\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(series(&text, "chatops_replies_delivered_total"), Some(1.0));
    assert_eq!(series(&text, "chatops_replies_failed_total"), Some(0.0));
    // The wait for Retry-After is part of command→reply.
    let reply_sum = series(
        &text,
        "chatops_command_reply_duration_seconds_sum{platform=\"slack\"}",
    );
    assert!(
        reply_sum.is_some_and(|s| s >= 1.0),
        "command→reply {reply_sum:?} s includes the 1 s Retry-After"
    );
}
