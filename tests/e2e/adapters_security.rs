//! Adapter security and button answers (issue #9 items 2, 4, 6, 7, 10): where replies may go,
//! replays, signed buttons, and that every click gets an answer.

use crate::helpers::*;
use crate::CI;

/// The `last_error` of every reply the outbox gave up, read from the store as an operator
/// would (read-only, beside the live server), waiting until there are `n`.
async fn given_up_replies(server: &TestServer, n: usize) -> Vec<String> {
    let path = server.data_dir().join("chatops.db");
    let mut found = Vec::new();
    eventually("replies given up in the outbox", || {
        let Ok(db) = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return false;
        };
        let rows = db
            .prepare("SELECT coalesce(last_error, '') FROM outbox WHERE state = 'failed'")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            });
        found = rows.unwrap_or_default();
        found.len() >= n
    })
    .await;
    found
}

/// Issue #9 item 2: an allowed host answering 307 to another host must not get the reply
/// forwarded; the outbox gives up and records why.
#[actix_web::test]
async fn a_redirect_from_an_allowed_host_is_not_followed() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let elsewhere = FakePlatform::start();
    server.fake.answer_with(vec![Canned {
        status: 307,
        headers: vec![(
            "location".into(),
            format!("{}/stolen/reply", elsewhere.base),
        )],
        body: String::new(),
    }]);
    let (status, ack) = server.slack_command("UDEV", "run hello-world", 1).await;
    assert_eq!(status, 200, "{ack}");
    let errors = given_up_replies(&server, 1).await;
    assert!(
        errors[0].contains("307") && errors[0].contains("redirect"),
        "{errors:?}"
    );
    assert!(
        !errors[0].contains("stolen"),
        "never the whole URL: {errors:?}"
    );
    assert_eq!(server.fake.received_at("/response/1").len(), 1);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect target got: {:#?}",
        elsewhere.received()
    );
}

/// A Mattermost slash command whose `response_url` is `response_url`.
async fn mattermost_command(server: &TestServer, text: &str, response_url: &str) -> u16 {
    let body = serde_urlencoded::to_string([
        ("channel_id", "fukgjpcbpbdd9mj6jm5yzyqwxw"),
        ("command", "/demo"),
        ("response_url", response_url),
        ("team_id", "zmw7w5gg1jbexkymyrkm3nsh8o"),
        ("text", text),
        ("token", MM_TOKEN),
        ("trigger_id", &format!("trigger-{}", unix_now())),
        ("user_id", "8ajk3h1p4jfz7c9t1s6rwhcqxo"),
        ("user_name", "alice"),
    ])
    .expect("form");
    let request = server
        .http()
        .post(format!("{}/mattermost/commands", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    server.request(request).await.0
}

const MM_TOKEN: &str = "e2esecuritytoken000000000a";

/// Issue #9 item 4: an entry without a port matched any port. `127.0.0.1` allows port 80
/// only, so a response_url at the fake's port is refused: nothing posted, the reason recorded.
#[actix_web::test]
async fn a_response_url_on_another_port_than_the_entry_is_refused() {
    let mut setup = Setup::ci(CI);
    setup.extra_config = format!(
        "mattermost:\n  url: {{fake}}\n  tokens: [\"{MM_TOKEN}\"]\n  response_url_hosts: [\"127.0.0.1\"]\n"
    );
    let server = TestServer::start(setup).await;
    let url = format!("{}/hooks/refused", server.fake.base);
    assert_eq!(
        mattermost_command(&server, "run hello-world", &url).await,
        200
    );
    let errors = given_up_replies(&server, 1).await;
    assert!(
        errors[0].contains("refusing") && errors[0].contains("127.0.0.1"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("/hooks/refused"), "{errors:?}");
    assert!(
        server.fake.received().is_empty(),
        "posted to a refused response_url: {:#?}",
        server.fake.received()
    );
}

/// Issue #9 item 7: a signed Slack body without `trigger_id`, replayed within the 5-minute
/// window, ran twice. The same signed body posted twice runs one job; the replay gets a 200.
#[actix_web::test]
async fn a_replayed_slack_body_without_trigger_id_runs_once() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let form: Vec<(String, String)> = server
        .slack_form("UDEV", "run hello-world", 1)
        .into_iter()
        .filter(|(k, _)| k != "trigger_id")
        .collect();
    let body = serde_urlencoded::to_string(form).expect("form");
    let at = unix_now();
    let (status, first) = server
        .post_slack("/slack/commands", body.clone(), SLACK_SECRET, at)
        .await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("in_channel"), "taken: {first}");
    server.fake.wait_for("/response/1", 1).await;
    let (status, again) = server
        .post_slack("/slack/commands", body, SLACK_SECRET, at)
        .await;
    assert_eq!(status, 200, "a replay still gets 200: {again}");
    let again: serde_json::Value = serde_json::from_str(&again).expect("JSON");
    assert_eq!(again["response_type"], "ephemeral", "{again}");
    assert!(slack_text(&again).contains("arrived twice"), "{again}");
    assert_eq!(server.metric("chatops_jobs_started_total").await, 1);
    assert_eq!(server.metric("chatops_commands_received_total").await, 1);
    assert_eq!(server.fake.received_at("/response/1").len(), 1);
}

/// A signed Slack `block_actions` click on a button whose value is `command_line`, by `user`,
/// whose `response_url` is the fake's `/actions/{n}`.
async fn slack_click(server: &TestServer, user: &str, command_line: &str, n: u32) -> u16 {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": user, "username": format!("name-of-{user}")},
        "team": {"id": "T0001"},
        "channel": {"id": "C2147483705", "name": "ops"},
        "container": {"type": "message", "channel_id": "C2147483705", "message_ts": "1.2"},
        "response_url": format!("{}/actions/{n}", server.fake.base),
        "trigger_id": format!("click.{n}.{}", unix_now()),
        "actions": [{"type": "button", "action_id": "chatops-0", "value": command_line}],
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
    let (status, answer) = server
        .post_slack("/slack/actions", body, SLACK_SECRET, unix_now())
        .await;
    assert!(
        answer.is_empty(),
        "Slack ignores a click's answer body: {answer}"
    );
    status
}

/// The job id in a manual job's ack ("... play it with /demo play 7 ...").
fn manual_job_id(ack: &str) -> u64 {
    ack.split("/demo play ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("the ack says how to play: {ack}"))
}

/// Issue #9 item 10: a guest's Play click and a successful one posted nothing. The guest is
/// told why (only they see it), the developer's click says who played the job, in the channel.
#[actix_web::test]
async fn every_slack_click_gets_a_visible_answer() {
    let server = TestServer::start(Setup::ci(CI)).await;
    let (status, ack) = server.slack_command("UDEV", "run manual-deploy", 1).await;
    assert_eq!(status, 200, "{ack}");
    let id = manual_job_id(&ack);
    let play = format!("/demo play {id}");

    assert_eq!(slack_click(&server, "UGUEST", &play, 2).await, 200);
    let refusal = server.fake.wait_for("/actions/2", 1).await[0].body.clone();
    assert_eq!(refusal["response_type"], "ephemeral", "{refusal}");
    assert_eq!(refusal["replace_original"], false, "{refusal}");
    let said = slack_text(&refusal);
    assert!(
        said.contains("UGUEST") && said.contains("developer"),
        "{said}"
    );
    assert_eq!(server.metric("chatops_jobs_started_total").await, 0);

    assert_eq!(slack_click(&server, "UDEV", &play, 3).await, 200);
    let played = server.fake.wait_for("/actions/3", 1).await[0].body.clone();
    assert_eq!(played["response_type"], "in_channel", "{played}");
    let said = slack_text(&played);
    assert!(
        said.contains("<@UDEV>") && said.contains("played") && said.contains("manual-deploy"),
        "{said}"
    );
    let replies = server.fake.wait_for("/response/1", 1).await;
    assert!(slack_text(&replies[0].body).contains("deployed by chat"));
}

/// Posts a Mattermost button callback, as Mattermost would: the button's `context`, clicked
/// by `user` in `channel`. Returns status and body.
async fn mattermost_click(
    server: &TestServer,
    context: &serde_json::Value,
    user: &str,
    channel: &str,
) -> (u16, String) {
    let click = serde_json::json!({
        "user_id": user, "user_name": "alice", "channel_id": channel,
        "team_id": "zmw7w5gg1jbexkymyrkm3nsh8o", "post_id": "pq5t1rb6xibq7yntmhbu9xb5ua",
        "trigger_id": format!("t{}", unix_now()), "type": "", "data_source": "",
        "context": context,
    });
    let request = server
        .http()
        .post(format!("{}/mattermost/actions", server.base))
        .header("content-type", "application/json")
        .body(click.to_string());
    server.request(request).await
}

/// Issue #9 items 6 and 10: a Mattermost button's context works only in the channel its
/// message went to (a lifted context replayed elsewhere is refused with an ephemeral message
/// and no work); an altered one is a 401; every click is answered.
#[actix_web::test]
async fn mattermost_buttons_are_bound_to_their_channel() {
    const CHANNEL: &str = "fukgjpcbpbdd9mj6jm5yzyqwxw";
    const DEV: &str = "8ajk3h1p4jfz7c9t1s6rwhcqxo";
    let mut setup = Setup::ci(CI);
    // Live progress off: the played job's result comes to the response_url, as the test reads it.
    setup.server_extra = "  live_progress: false\n".into();
    setup.extra_config = format!(
        "mattermost:\n  url: {{fake}}\n  tokens: [\"{MM_TOKEN}\"]\n  bot_token: e2e-bot-token\n  response_url_hosts: [\"{{fake_host}}\"]\n"
    );
    let server = TestServer::start(setup).await;
    let url = format!("{}/hooks/commands/1", server.fake.base);
    let body = serde_urlencoded::to_string([
        ("channel_id", CHANNEL),
        ("command", "/demo"),
        ("response_url", &url),
        ("text", "run manual-deploy"),
        ("token", MM_TOKEN),
        ("user_id", DEV),
    ])
    .expect("form");
    let (status, ack) = server
        .request(
            server
                .http()
                .post(format!("{}/mattermost/commands", server.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let ack: serde_json::Value = serde_json::from_str(&ack).expect("JSON ack");
    let play = ack["attachments"][0]["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == "Play"))
        .unwrap_or_else(|| panic!("the manual job's ack has a Play button: {ack}"));
    let context = play["integration"]["context"].clone();
    assert_eq!(context["channel"], CHANNEL, "{context}");

    // Lifted into another channel: refused, visibly, and nothing runs.
    let (status, answer) =
        mattermost_click(&server, &context, DEV, "otherchannel000000000000a").await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    let said = answer["ephemeral_text"].as_str().unwrap_or_default();
    assert!(said.contains("another channel"), "{answer}");
    // Altered (another command under the same signature): verification fails.
    let mut altered = context.clone();
    altered["command"] = "/demo run hello-world".into();
    let (status, _) = mattermost_click(&server, &altered, DEV, CHANNEL).await;
    assert_eq!(status, 401);
    assert_eq!(server.metric("chatops_jobs_started_total").await, 0);

    // A guest's click in the right channel is refused with an answer; the developer's plays.
    let (status, answer) = mattermost_click(&server, &context, "UGUEST", CHANNEL).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("ephemeral_text") && answer.contains("developer"),
        "{answer}"
    );
    let (status, answer) = mattermost_click(&server, &context, DEV, CHANNEL).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("played"), "{answer}");
    let replies = server.fake.wait_for("/hooks/commands/1", 1).await;
    assert!(
        replies[0].raw.contains("deployed by chat"),
        "{}",
        replies[0].raw
    );
}

/// A Discord interaction of `kind` (2: command, 3: button) by `user` with `token`; `data` is
/// the interaction's `data`.
fn discord_interaction(kind: u8, user: &str, token: &str, data: serde_json::Value) -> String {
    use crate::conformance::{Discord, Platform, DISCORD_APP};
    serde_json::json!({
        "type": kind,
        "id": format!("1100000000{}", unix_now()),
        "application_id": DISCORD_APP,
        "token": token,
        "guild_id": "80351110224678913",
        "channel_id": Discord::CHANNEL,
        "member": {"user": {"id": user, "username": "nelly"}},
        "message": {"id": "1100000000000000800"},
        "data": data,
        "version": 1,
    })
    .to_string()
}

/// Issue #9 items 6 and 10 on Discord: a played click was deferred (type 6) and showed
/// nothing; every click is now answered in the response. A token that could steer the
/// follow-up URL is refused with 400 before any URL is built.
#[actix_web::test]
async fn discord_clicks_are_answered_and_bad_tokens_refused() {
    use crate::conformance::{Discord, Platform};
    let server = crate::conformance::scenarios::start::<Discord>().await;
    let (status, ack) = Discord::send(&server, Discord::DEV, "run manual-deploy", 1).await;
    assert_eq!(status, 200, "{ack}");
    let id = manual_job_id(&ack);
    let button = serde_json::json!({"custom_id": format!("/demo play {id}"), "component_type": 2});

    let click = discord_interaction(3, Discord::GUEST, "tok-click-1", button.clone());
    let (status, answer) = Discord::send_signed(&server, click).await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["type"], 4, "{answer}");
    assert_eq!(
        answer["data"]["flags"].as_u64().unwrap_or(0) & 64,
        64,
        "ephemeral: {answer}"
    );
    assert!(answer["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .contains("developer"));

    let click = discord_interaction(3, Discord::DEV, "tok-click-2", button);
    let (status, answer) = Discord::send_signed(&server, click).await;
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["type"], 4, "{answer}");
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("played"),
        "{answer}"
    );
    server.fake.wait_for(&Discord::reply_path(1), 1).await;

    let text = serde_json::json!({"name": "demo", "type": 1,
        "options": [{"name": "text", "type": 3, "value": "run hello-world"}]});
    let steered = discord_interaction(2, Discord::DEV, "../../../channels/1/messages", text);
    let (status, said) = Discord::send_signed(&server, steered).await;
    assert_eq!(status, 400, "{said}");
    assert!(said.contains("token"), "{said}");
    assert_eq!(server.metric("chatops_jobs_started_total").await, 1);
    // Refused before any job or URL existed, so nothing can be posted later either.
    let posts: Vec<String> = server.fake.received().into_iter().map(|r| r.path).collect();
    assert!(posts.iter().all(|p| !p.contains("channels")), "{posts:?}");
}
