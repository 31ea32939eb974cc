//! Issue 11, live progress and threads: with a bot token (Slack, Mattermost) or an interaction
//! token (Discord), a job's status message is posted when it starts, edited with the end of its
//! log while it runs, and edited a last time with the result, which itself goes into the status
//! message's thread. Without a bot token, nothing changes.

use crate::conformance::{Discord, Mattermost, Platform};
use crate::helpers::*;
use std::time::Duration;

/// A job that prints a line every 0.3 s for a couple of seconds.
const TICKER_CI: &str = r#"
ticker:
  script:
    - 'for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 0.3; done'
"#;

const BOT: &str = "  bot_token: xoxb-live-test-token\n";

/// Edits at most every second, so a 2.4-second job gets at least one.
const FAST_EDITS: &str = "  progress_interval: 1s\n";

fn slack_setup() -> Setup {
    let mut setup = Setup::ci(TICKER_CI);
    setup.server_extra = FAST_EDITS.into();
    setup.slack_extra = BOT.into();
    setup
}

/// Waits until a `chat.update` says the job ended, and returns every `chat.update`.
async fn wait_for_final_update(server: &TestServer) -> Vec<Received> {
    eventually("a final chat.update with the job's status", || {
        server
            .fake
            .received_at("/api/chat.update")
            .iter()
            .any(|r| slack_text(&r.body).contains("succeeded"))
    })
    .await;
    server.fake.received_at("/api/chat.update")
}

#[actix_web::test]
async fn slack_status_message_is_edited_with_progress_then_the_result_and_the_reply_is_threaded() {
    let server = TestServer::start(slack_setup()).await;
    let (status, _) = server.slack_command("UDEV", "run ticker", 1).await;
    assert_eq!(status, 200);
    // The status message, then the reply in its thread.
    let posts = server.fake.wait_for("/api/chat.postMessage", 2).await;
    let status_post = &posts[0];
    assert_eq!(
        status_post.body["channel"], "C2147483705",
        "{}",
        status_post.raw
    );
    assert!(
        slack_text(&status_post.body).contains("running"),
        "{}",
        status_post.raw
    );
    assert!(
        status_post.body.get("thread_ts").is_none(),
        "{}",
        status_post.raw
    );
    let reply = posts
        .iter()
        .find(|p| slack_text(&p.body).contains("tick 8"))
        .unwrap_or_else(|| panic!("the result was posted: {posts:#?}"));
    assert_eq!(
        reply.body["thread_ts"], "1700000000.000001",
        "the reply is in the status message's thread: {}",
        reply.raw
    );
    assert!(
        slack_text(&reply.body).contains("succeeded"),
        "{}",
        reply.raw
    );

    let updates = wait_for_final_update(&server).await;
    for update in &updates {
        assert_eq!(update.body["ts"], "1700000000.000001", "{}", update.raw);
        assert_eq!(update.body["channel"], "C2147483705", "{}", update.raw);
        assert!(
            update
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer xoxb-live-test-token"),
            "{:?}",
            update.headers
        );
    }
    let progress: Vec<_> = updates
        .iter()
        .filter(|u| slack_text(&u.body).contains("running"))
        .collect();
    assert!(
        progress
            .iter()
            .any(|u| slack_text(&u.body).contains("tick ")),
        "at least one progress edit shows the log: {updates:#?}"
    );
    let last = updates
        .last()
        .map(|u| slack_text(&u.body))
        .unwrap_or_default();
    assert!(
        last.contains("succeeded") && last.contains("tick 8"),
        "the last edit is the final one, with the result: {last}"
    );
    assert_eq!(
        updates
            .iter()
            .filter(|u| slack_text(&u.body).contains("succeeded"))
            .count(),
        1,
        "one final edit"
    );
    // The response_url carried nothing after the ack: the reply went into the thread.
    assert!(server.fake.received_at("/response/1").is_empty());
}

#[actix_web::test]
async fn a_429_on_an_edit_is_honoured_and_the_final_edit_is_the_last_one() {
    let server = TestServer::start(slack_setup()).await;
    // The status message is posted, the first edit is rate-limited for 2 seconds.
    server.fake.answer_with(vec![
        Canned {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"ok":true,"channel":"C2147483705","ts":"1700000000.000042"}"#.into(),
        },
        Canned {
            status: 429,
            headers: vec![("retry-after".into(), "2".into())],
            body: r#"{"ok":false,"error":"ratelimited"}"#.into(),
        },
    ]);
    server.slack_command("UDEV", "run ticker", 1).await;
    let updates = wait_for_final_update(&server).await;
    let limited = &updates[0];
    for later in &updates[1..] {
        assert!(
            later.at.duration_since(limited.at) >= Duration::from_millis(1900),
            "an edit came {:?} after a 429 asking for 2 s",
            later.at.duration_since(limited.at)
        );
    }
    assert!(updates.len() >= 2, "{updates:#?}");
    let last = slack_text(&updates[updates.len() - 1].body);
    assert!(last.contains("succeeded"), "the final edit is last: {last}");
    for u in &updates {
        assert_eq!(u.body["ts"], "1700000000.000042", "{}", u.raw);
    }
    // The reply still arrives, in the thread.
    let posts = server.fake.wait_for("/api/chat.postMessage", 2).await;
    assert_eq!(
        posts[1].body["thread_ts"], "1700000000.000042",
        "{}",
        posts[1].raw
    );
}

#[actix_web::test]
async fn without_a_bot_token_there_are_no_edits_and_the_reply_is_as_before() {
    let mut setup = Setup::ci(TICKER_CI);
    setup.server_extra = FAST_EDITS.into();
    let server = TestServer::start(setup).await;
    server.slack_command("UDEV", "run ticker", 1).await;
    let replies = server.fake.wait_for("/response/1", 1).await;
    let text = slack_text(&replies[0].body);
    assert!(
        text.contains("tick 8") && text.contains("succeeded"),
        "{text}"
    );
    assert!(
        replies[0].body.get("thread_ts").is_none(),
        "{}",
        replies[0].raw
    );
    assert!(
        server
            .fake
            .received()
            .iter()
            .all(|r| !r.path.starts_with("/api/")),
        "no Web API call without a bot token: {:#?}",
        server.fake.received()
    );
}

#[actix_web::test]
async fn live_progress_can_be_turned_off_with_a_bot_token() {
    let mut setup = slack_setup();
    setup.server_extra = "  live_progress: false\n".into();
    let server = TestServer::start(setup).await;
    server.slack_command("UDEV", "run ticker", 1).await;
    let replies = server.fake.wait_for("/response/1", 1).await;
    assert!(slack_text(&replies[0].body).contains("tick 8"));
    assert!(server.fake.received_at("/api/").is_empty());
}

#[actix_web::test]
async fn mattermost_status_post_is_patched_and_the_reply_has_its_root_id() {
    let mut setup = Setup::ci(TICKER_CI);
    setup.server_extra = FAST_EDITS.into();
    setup.extra_config = format!("{}  bot_token: mm-live-bot-token\n", Mattermost::config());
    let server = TestServer::start(setup).await;
    let (status, body) = Mattermost::send(&server, Mattermost::DEV, "run ticker", 1).await;
    assert_eq!(status, 200, "{body}");
    let posts = server.fake.wait_for("/api/v4/posts", 2).await;
    assert_eq!(
        posts[0].body["channel_id"],
        Mattermost::CHANNEL,
        "{}",
        posts[0].raw
    );
    let root = "post0000000000000000000001";
    let reply = posts
        .iter()
        .find(|p| p.raw.contains("tick 8"))
        .unwrap_or_else(|| panic!("the result was posted: {posts:#?}"));
    assert_eq!(reply.body["root_id"], root, "{}", reply.raw);
    let patch_path = format!("/api/v4/posts/{root}/patch");
    eventually("a final patch with the job's status", || {
        server
            .fake
            .edits_at("PUT", &patch_path)
            .iter()
            .any(|r| r.raw.contains("succeeded"))
    })
    .await;
    let patches = server.fake.edits_at("PUT", &patch_path);
    assert!(
        patches
            .iter()
            .any(|p| p.raw.contains("running") && p.raw.contains("tick ")),
        "{patches:#?}"
    );
    let last = &patches[patches.len() - 1];
    assert!(last.raw.contains("succeeded"), "{}", last.raw);
    assert!(
        last.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer mm-live-bot-token"),
        "{:?}",
        last.headers
    );
}

#[actix_web::test]
async fn discord_edits_the_original_response_and_follows_up_with_the_result() {
    let mut setup = Setup::ci(TICKER_CI);
    setup.server_extra = FAST_EDITS.into();
    setup.extra_config = Discord::config();
    let server = TestServer::start(setup).await;
    let (status, body) = Discord::send(&server, Discord::DEV, "run ticker", 1).await;
    assert_eq!(status, 200, "{body}");
    let original = format!("{}/messages/@original", Discord::reply_path(1));
    eventually("a final edit of the original response", || {
        server
            .fake
            .edits_at("PATCH", &original)
            .iter()
            .any(|r| Discord::text(&r.body).contains("succeeded"))
    })
    .await;
    let edits = server.fake.edits_at("PATCH", &original);
    assert!(
        edits
            .iter()
            .any(|e| Discord::text(&e.body).contains("tick ")
                && Discord::text(&e.body).contains("running")),
        "{edits:#?}"
    );
    let last = Discord::text(&edits[edits.len() - 1].body);
    assert!(last.contains("succeeded"), "{last}");
    let replies = server.fake.wait_for(&Discord::reply_path(1), 1).await;
    assert!(Discord::text(&replies[0].body).contains("tick 8"));
}

#[actix_web::test]
async fn a_job_done_within_a_second_gets_its_reply_alone() {
    let mut setup = slack_setup();
    setup.ci = "quick:\n  script:\n    - echo quick answer\n".into();
    let server = TestServer::start(setup).await;
    let (ack, reply) = server.run_and_reply("run quick", 1).await;
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    let text = slack_text(&reply);
    assert!(
        text.contains("quick answer") && text.contains("succeeded"),
        "{text}"
    );
    // No status message to post and edit for an instant job: the reply is the only message.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        server.fake.received_at("/api/chat.postMessage").is_empty()
            && server.fake.received_at("/api/chat.update").is_empty(),
        "{:#?}",
        server.fake.received()
    );
}
