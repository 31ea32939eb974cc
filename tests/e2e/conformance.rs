//! The adapter conformance suite (issue #3): one set of scenarios run against every chat
//! platform, through the real server (`chatops serve`) and the fake platform.
//!
//! A platform is described by a [`Platform`]: how to send it a verified command and badly
//! verified ones, what its HTTP answer says, where its replies land on the fake, how to read
//! them, and its limits. [`conformance!`] expands every scenario into a test module for one
//! platform, so a new adapter joins the suite with one line at the bottom of this file.

use crate::helpers::*;
use crate::CI;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the HTTP answer to a command tells the user.
#[derive(Debug)]
pub enum Ack {
    /// A message in the channel, with its text.
    Public(String),
    /// A message only the user sees, with its text.
    Ephemeral(String),
    /// No message yet: the platform shows a placeholder until the first follow-up.
    Deferred,
}

/// One chat platform as the suite drives it. Everything is an associated function: a platform
/// has no state beyond the server and fake it is handed.
pub trait Platform {
    /// `CHAT_PLATFORM`, the `members` key.
    const NAME: &'static str;
    /// A user not listed in `members`, so a developer (the test config's `default_role`).
    const DEV: &'static str;
    /// A user listed as a guest (see the members in `TestServer::start`).
    const GUEST: &'static str;
    /// The channel commands come from (`CHAT_CHANNEL`).
    const CHANNEL: &'static str;

    /// The platform's top-level config section, pointed at the fake (`{fake}`, `{fake_host}`).
    fn config() -> String;
    /// Sends `text` to `/demo` as `user`, verified as the platform does it; `n` (1–9) tells
    /// the commands of one test apart. Returns the HTTP status and body.
    async fn send(server: &TestServer, user: &str, text: &str, n: u32) -> (u16, String);
    /// Sends `text` once per way the platform's verification can fail; returns what each
    /// attempt was and the status it got.
    async fn send_forged(server: &TestServer, text: &str) -> Vec<(&'static str, u16)>;
    /// The path on the fake where the replies to command `n` arrive.
    fn reply_path(n: u32) -> String;
    /// What an HTTP answer to a command says.
    fn ack(body: &str) -> Ack;
    /// All the text of a posted message.
    fn text(message: &Value) -> String;
    /// How a reply names [`Self::DEV`].
    fn dev_mention() -> String;
    /// Asserts `message` is a succeeded job's reply in the platform's own dialect.
    fn assert_success_shape(message: &Value);
    /// Whether `message` is within every size limit of the platform; `Err` says which not.
    fn within_limits(message: &Value) -> Result<(), String>;
}

/// A number no other request of this test run used (request ids, interaction ids).
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

// ---------------------------------------------------------------------------------------------
// Slack: form bodies signed with HMAC-SHA256 (v0), replies at the command's response_url.

pub struct Slack;

impl Platform for Slack {
    const NAME: &'static str = "slack";
    const DEV: &'static str = "UDEV";
    const GUEST: &'static str = "UGUEST";
    const CHANNEL: &'static str = "C2147483705";

    fn config() -> String {
        // The test config always has a `slack:` section.
        String::new()
    }

    async fn send(server: &TestServer, user: &str, text: &str, n: u32) -> (u16, String) {
        server.slack_command(user, text, n).await
    }

    async fn send_forged(server: &TestServer, text: &str) -> Vec<(&'static str, u16)> {
        let body =
            serde_urlencoded::to_string(server.slack_form(Self::DEV, text, 1)).expect("form");
        let post = |b: &str, secret: &'static str, ts: u64| {
            server.post_slack("/slack/commands", b.to_owned(), secret, ts)
        };
        let now = unix_now();
        let ts = now.to_string();
        let signature = slack_signature(SLACK_SECRET, &ts, body.as_bytes());
        let raw = |headers: Vec<(&'static str, String)>, b: String| {
            let mut req = server
                .http()
                .post(format!("{}/slack/commands", server.base))
                .header("content-type", "application/x-www-form-urlencoded");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            server.request(req.body(b))
        };
        vec![
            ("wrong secret", post(&body, "wrong-secret", now).await.0),
            (
                "stale timestamp",
                post(&body, SLACK_SECRET, now - 301).await.0,
            ),
            (
                "future timestamp",
                post(&body, SLACK_SECRET, now + 301).await.0,
            ),
            ("no signature headers", raw(vec![], body.clone()).await.0),
            (
                "body changed after signing",
                raw(
                    vec![
                        ("x-slack-request-timestamp", ts.clone()),
                        ("x-slack-signature", signature.clone()),
                    ],
                    body.replace("hello-world", "fails"),
                )
                .await
                .0,
            ),
        ]
    }

    fn reply_path(n: u32) -> String {
        format!("/response/{n}")
    }

    fn ack(body: &str) -> Ack {
        let ack = json_of(body);
        match ack["response_type"].as_str() {
            Some("ephemeral") => Ack::Ephemeral(slack_text(&ack)),
            Some("in_channel") => Ack::Public(slack_text(&ack)),
            _ => panic!("a Slack ack sets response_type: {body}"),
        }
    }

    fn text(message: &Value) -> String {
        slack_text(message)
    }

    fn dev_mention() -> String {
        format!("<@{}>", Self::DEV)
    }

    fn assert_success_shape(message: &Value) {
        assert_eq!(message["response_type"], "in_channel", "{message}");
        let blocks = message["blocks"]
            .as_array()
            .expect("Slack replies use blocks");
        assert!(!blocks.is_empty(), "{message}");
        let text = slack_text(message);
        assert!(text.contains("```"), "output is preformatted: {text}");
        // mrkdwn links: <url|label>.
        assert!(text.contains("/jobs/") && text.contains('|'), "{text}");
    }

    fn within_limits(message: &Value) -> Result<(), String> {
        // https://api.slack.com/reference/block-kit/blocks#section: 3000 per section text,
        // 50 blocks per message; `text` is cut by Slack past 40,000 characters.
        if chars(&message["text"]) > 40_000 {
            return Err(format!("text has {} chars", chars(&message["text"])));
        }
        let blocks = message["blocks"].as_array().cloned().unwrap_or_default();
        if blocks.len() > 50 {
            return Err(format!("{} blocks", blocks.len()));
        }
        for block in &blocks {
            if chars(&block["text"]["text"]) > 3000 {
                return Err(format!(
                    "a section has {} chars",
                    chars(&block["text"]["text"])
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Mattermost: form bodies with the slash command's token (header and field), replies at the
// command's response_url.

pub struct Mattermost;

const MATTERMOST_TOKEN: &str = "e2emattermosttoken0000000a";

impl Mattermost {
    fn form(server: &TestServer, user: &str, text: &str, n: u32, token: &str) -> String {
        let user_name = if user == Self::DEV {
            "alice"
        } else {
            "mallory"
        };
        serde_urlencoded::to_string([
            ("channel_id", Self::CHANNEL.to_owned()),
            ("channel_name", "town-square".into()),
            ("command", "/demo".into()),
            (
                "response_url",
                format!("{}/hooks/commands/{n}", server.fake.base),
            ),
            ("team_domain", "ops".into()),
            ("team_id", "zmw7w5gg1jbexkymyrkm3nsh8o".into()),
            ("text", text.into()),
            ("token", token.into()),
            ("trigger_id", format!("trigger{}", unique())),
            ("user_id", user.into()),
            ("user_name", user_name.into()),
        ])
        .expect("form")
    }

    async fn post(server: &TestServer, authorization: Option<&str>, body: String) -> u16 {
        let mut req = server
            .http()
            .post(format!("{}/mattermost/commands", server.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        server.request(req.body(body)).await.0
    }
}

impl Platform for Mattermost {
    const NAME: &'static str = "mattermost";
    const DEV: &'static str = "8ajk3h1p4jfz7c9t1s6rwhcqxo";
    const GUEST: &'static str = "UGUEST";
    const CHANNEL: &'static str = "fukgjpcbpbdd9mj6jm5yzyqwxw";

    fn config() -> String {
        format!(
            "mattermost:\n  url: {{fake}}\n  tokens: [\"{MATTERMOST_TOKEN}\"]\n  response_url_hosts: [\"{{fake_host}}\"]\n"
        )
    }

    async fn send(server: &TestServer, user: &str, text: &str, n: u32) -> (u16, String) {
        // Mattermost sends the token both ways.
        let body = Self::form(server, user, text, n, MATTERMOST_TOKEN);
        server
            .request(
                server
                    .http()
                    .post(format!("{}/mattermost/commands", server.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", format!("Token {MATTERMOST_TOKEN}"))
                    .body(body),
            )
            .await
    }

    async fn send_forged(server: &TestServer, text: &str) -> Vec<(&'static str, u16)> {
        let good = format!("Token {MATTERMOST_TOKEN}");
        let form = |token: &str| Self::form(server, Self::DEV, text, 1, token);
        let prefix = &MATTERMOST_TOKEN[..10];
        vec![
            (
                "wrong token",
                Self::post(server, Some("Token guessed"), form("guessed")).await,
            ),
            (
                "no token anywhere",
                Self::post(server, None, form("")).await,
            ),
            (
                "good header, wrong field",
                Self::post(server, Some(&good), form("guessed")).await,
            ),
            (
                "a prefix of the token",
                Self::post(server, None, form(prefix)).await,
            ),
            (
                "the token under another scheme",
                Self::post(
                    server,
                    Some(&format!("Bearer {MATTERMOST_TOKEN}")),
                    form(""),
                )
                .await,
            ),
        ]
    }

    fn reply_path(n: u32) -> String {
        format!("/hooks/commands/{n}")
    }

    fn ack(body: &str) -> Ack {
        let ack = json_of(body);
        match ack["response_type"].as_str() {
            Some("ephemeral") => Ack::Ephemeral(slack_text(&ack)),
            Some("in_channel") => Ack::Public(slack_text(&ack)),
            _ => panic!("a Mattermost ack sets response_type: {body}"),
        }
    }

    fn text(message: &Value) -> String {
        // `text` and `attachments[].text`, the same keys Slack uses.
        slack_text(message)
    }

    fn dev_mention() -> String {
        // Mattermost mentions by username.
        "@alice".into()
    }

    fn assert_success_shape(message: &Value) {
        assert_eq!(message["response_type"], "in_channel", "{message}");
        assert_eq!(message["skip_slack_parsing"], true, "{message}");
        let summary = message["text"].as_str().unwrap_or_default();
        assert!(summary.starts_with(":white_check_mark:"), "{summary}");
        // Markdown links: [label](url).
        assert!(
            summary.contains("](") && summary.contains("/jobs/"),
            "{summary}"
        );
        let attachment = &message["attachments"][0];
        assert_eq!(
            attachment["color"], "#2EB886",
            "green for success: {message}"
        );
        let output = attachment["text"].as_str().unwrap_or_default();
        assert!(output.starts_with("```"), "output is fenced: {output}");
    }

    fn within_limits(message: &Value) -> Result<(), String> {
        // A post holds at most 16383 characters (Mattermost 5.0+), attachments included.
        let attachments: usize = message["attachments"]
            .as_array()
            .map(|a| a.iter().map(|x| chars(&x["text"])).sum())
            .unwrap_or(0);
        let total = chars(&message["text"]) + attachments;
        if total > 16_383 {
            return Err(format!("{total} chars"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Discord: JSON interactions signed with Ed25519 over timestamp + body; replies are follow-ups
// to the interaction's webhook.

pub struct Discord;

pub(crate) const DISCORD_APP: &str = "1100000000000000001";

/// The test application's key pair, from a fixed seed (never a real application's).
fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

impl Discord {
    /// Posts any interaction `body`, signed now with the test application's key.
    pub(crate) async fn send_signed(server: &TestServer, body: String) -> (u16, String) {
        let headers = Self::signed_headers(&discord_key(), unix_now(), &body);
        Self::post(server, headers, body).await
    }

    fn interaction(user: &str, text: &str, n: u32) -> String {
        json!({
            "type": 2,
            "id": format!("11000000000{:08}", unique()),
            "application_id": DISCORD_APP,
            "token": format!("tok-{n}"),
            "guild_id": "80351110224678913",
            "channel_id": Self::CHANNEL,
            "channel": {"id": Self::CHANNEL, "name": "deploys", "type": 0},
            "member": {"user": {"id": user, "username": "nelly", "global_name": "Nelly"}},
            "data": {
                "id": "1100000000000000300",
                "name": "demo",
                "type": 1,
                "options": [{"name": "text", "type": 3, "value": text}],
            },
            "version": 1,
        })
        .to_string()
    }

    fn sign(key: &SigningKey, timestamp: &str, body: &str) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body.as_bytes());
        hex::encode(key.sign(&message).to_bytes())
    }

    async fn post(
        server: &TestServer,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> (u16, String) {
        let mut req = server
            .http()
            .post(format!("{}/discord/interactions", server.base))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        server.request(req.body(body)).await
    }

    fn signed_headers(key: &SigningKey, timestamp: u64, body: &str) -> Vec<(&'static str, String)> {
        let ts = timestamp.to_string();
        vec![
            ("x-signature-ed25519", Self::sign(key, &ts, body)),
            ("x-signature-timestamp", ts),
        ]
    }
}

impl Platform for Discord {
    const NAME: &'static str = "discord";
    const DEV: &'static str = "80351110224678912";
    const GUEST: &'static str = DISCORD_GUEST;
    const CHANNEL: &'static str = "1100000000000000100";

    fn config() -> String {
        format!(
            "discord:\n  public_key: {}\n  application_id: \"{DISCORD_APP}\"\n  api_url: {{fake}}/api/v10\n",
            hex::encode(discord_key().verifying_key().to_bytes())
        )
    }

    async fn send(server: &TestServer, user: &str, text: &str, n: u32) -> (u16, String) {
        Self::send_signed(server, Self::interaction(user, text, n)).await
    }

    async fn send_forged(server: &TestServer, text: &str) -> Vec<(&'static str, u16)> {
        let body = Self::interaction(Self::DEV, text, 1);
        let key = discord_key();
        let now = unix_now();
        let other_key = SigningKey::from_bytes(&[43u8; 32]);
        let mut later = Self::signed_headers(&key, now, &body);
        later[1].1 = (now + 1).to_string();
        vec![
            (
                "signed by another key",
                Self::post(
                    server,
                    Self::signed_headers(&other_key, now, &body),
                    body.clone(),
                )
                .await
                .0,
            ),
            (
                "body changed after signing",
                Self::post(
                    server,
                    Self::signed_headers(&key, now, &body),
                    body.replace("hello-world", "fails"),
                )
                .await
                .0,
            ),
            (
                "timestamp changed after signing",
                Self::post(server, later, body.clone()).await.0,
            ),
            (
                "stale timestamp",
                Self::post(
                    server,
                    Self::signed_headers(&key, now - 301, &body),
                    body.clone(),
                )
                .await
                .0,
            ),
            (
                "no signature headers",
                Self::post(server, vec![], body.clone()).await.0,
            ),
            (
                "signature not hex",
                Self::post(
                    server,
                    vec![
                        ("x-signature-ed25519", "not-a-signature".into()),
                        ("x-signature-timestamp", now.to_string()),
                    ],
                    body.clone(),
                )
                .await
                .0,
            ),
        ]
    }

    fn reply_path(n: u32) -> String {
        format!("/api/v10/webhooks/{DISCORD_APP}/tok-{n}")
    }

    fn ack(body: &str) -> Ack {
        let ack = json_of(body);
        match ack["type"].as_u64() {
            Some(4) => {
                let content = ack["data"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if ack["data"]["flags"].as_u64().unwrap_or(0) & 64 != 0 {
                    Ack::Ephemeral(content)
                } else {
                    Ack::Public(content)
                }
            }
            Some(5) | Some(6) => Ack::Deferred,
            _ => panic!("not an interaction response: {body}"),
        }
    }

    fn text(message: &Value) -> String {
        message["content"].as_str().unwrap_or_default().to_owned()
    }

    fn dev_mention() -> String {
        format!("<@{}>", Self::DEV)
    }

    fn assert_success_shape(message: &Value) {
        let content = message["content"].as_str().unwrap_or_default();
        assert!(content.starts_with('✅'), "{content}");
        assert!(
            content.contains("```\n"),
            "output is preformatted: {content}"
        );
        assert!(
            content.contains("](") && content.contains("/jobs/"),
            "{content}"
        );
        let flags = message["flags"].as_u64().unwrap_or(0);
        assert_eq!(flags & 64, 0, "in the channel, not ephemeral: {message}");
        // Only the user named on purpose may be notified; `@everyone` in output never.
        assert_eq!(message["allowed_mentions"]["parse"], json!([]), "{message}");
        assert_eq!(
            message["allowed_mentions"]["users"],
            json!([Self::DEV]),
            "{message}"
        );
    }

    fn within_limits(message: &Value) -> Result<(), String> {
        // A message's content holds at most 2000 characters.
        let n = chars(&message["content"]);
        if n > 2000 {
            return Err(format!("content has {n} chars"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios, generic over the platform.

pub mod scenarios {
    use super::*;

    /// A server with the platform configured and the test CI file.
    pub async fn start<P: Platform>() -> TestServer {
        let mut setup = Setup::ci(CI);
        setup.extra_config = P::config();
        TestServer::start(setup).await
    }

    /// Sends `text` as the developer, expects it accepted, and returns the job's reply (checked
    /// against the platform's limits).
    pub async fn run<P: Platform>(server: &TestServer, text: &str, n: u32) -> Value {
        let (status, body) = P::send(server, P::DEV, text, n).await;
        assert_eq!(status, 200, "{}: {body}", P::NAME);
        if let Ack::Ephemeral(said) = P::ack(&body) {
            panic!("{}: `{text}` was refused: {said}", P::NAME);
        }
        let replies = server.fake.wait_for(&P::reply_path(n), 1).await;
        let reply = replies[0].body.clone();
        if let Err(e) = P::within_limits(&reply) {
            panic!(
                "{}: the reply is over the platform's limits ({e}): {reply}",
                P::NAME
            );
        }
        reply
    }

    /// Sends `text` as `user`, expects an ephemeral refusal naming every needle, and no job.
    pub async fn expect_refusal<P: Platform>(
        server: &TestServer,
        user: &str,
        text: &str,
        needles: &[&str],
    ) {
        let (status, body) = P::send(server, user, text, 9).await;
        assert_eq!(status, 200, "{}: {body}", P::NAME);
        let Ack::Ephemeral(said) = P::ack(&body) else {
            panic!("{}: expected an ephemeral refusal: {body}", P::NAME);
        };
        for needle in needles {
            assert!(
                said.contains(needle),
                "{}: missing {needle:?} in {said}",
                P::NAME
            );
        }
        assert_eq!(server.metric("chatops_jobs_started_total").await, 0);
    }

    pub async fn verification_failures_get_401_and_cause_no_work<P: Platform>() {
        let server = start::<P>().await;
        let attempts = P::send_forged(&server, "run hello-world").await;
        assert!(!attempts.is_empty());
        for (what, status) in &attempts {
            assert_eq!(*status, 401, "{}: {what}", P::NAME);
        }
        assert_eq!(server.metric("chatops_commands_received_total").await, 0);
        assert_eq!(server.metric("chatops_jobs_started_total").await, 0);
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        assert!(
            server.fake.received().is_empty(),
            "{}: nothing posted for refused requests",
            P::NAME
        );
        // The same request, verified, is taken: the refusals above were about verification.
        let reply = run::<P>(&server, "run hello-world", 1).await;
        assert!(P::text(&reply).contains("Hello World"), "{reply}");
    }

    /// GitLab's first ChatOps example: one command, only its output.
    pub async fn hello_world_replies_hello_world<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run hello-world", 1).await;
        let text = P::text(&reply);
        assert!(text.contains("Hello World"), "{text}");
        assert!(
            !text.contains("$ echo"),
            "single command: only its output: {text}"
        );
        assert!(text.contains("succeeded"), "{text}");
        assert!(text.contains("hello-world"), "names the job: {text}");
        assert!(text.contains(&P::dev_mention()), "names the user: {text}");
        assert!(text.contains("/jobs/"), "links the job page: {text}");
        P::assert_success_shape(&reply);
    }

    /// GitLab's second example: only the `chat_reply` section.
    pub async fn ls_replies_only_the_chat_reply_section<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run ls", 1).await;
        let text = P::text(&reply);
        assert!(text.contains("README.txt"), "the listing: {text}");
        assert!(text.contains(".gitlab-ci.yml"), "the listing: {text}");
        assert!(!text.contains("This command will not be shown"), "{text}");
        assert!(!text.contains("section_start"), "{text}");
        assert!(!text.contains('\u{1b}'), "no ANSI: {text:?}");
    }

    pub async fn multi_command_job_shows_the_transcript<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run multi", 1).await;
        let text = P::text(&reply);
        let needles = [
            "$ echo \"before one\"",
            "before one",
            "$ echo \"first\"",
            "first",
            "$ echo \"second\"",
            "second",
        ];
        for needle in needles {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        let order: Vec<_> = ["before one", "first", "second"]
            .iter()
            .map(|n| text.rfind(n).unwrap_or(0))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {text}");
    }

    pub async fn chat_variables_name_the_platform<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run vars", 1).await;
        let text = P::text(&reply);
        assert!(text.contains(&format!("channel={}", P::CHANNEL)), "{text}");
        assert!(text.contains(&format!("user={}", P::DEV)), "{text}");
        assert!(text.contains(&format!("platform={}", P::NAME)), "{text}");
        assert!(
            text.contains("leak=none"),
            "the server's environment stays out: {text}"
        );
    }

    pub async fn input_reaches_the_job_verbatim<P: Platform>() {
        let server = start::<P>().await;
        let input = "a $(touch pwned1) `touch pwned2` ; touch pwned3 && echo \"q\" 'q' | x\n  line two\t<b>&amp; @everyone";
        run::<P>(&server, &format!("run echo {input}"), 1).await;
        let written = read(&server.project_dir().join("input.txt"));
        assert_eq!(written, input, "{}: CHAT_INPUT verbatim", P::NAME);
        for f in ["pwned1", "pwned2", "pwned3"] {
            assert!(!server.project_dir().join(f).exists(), "{f} must not exist");
        }
    }

    pub async fn unknown_job_is_refused_with_close_names<P: Platform>() {
        let server = start::<P>().await;
        expect_refusal::<P>(
            &server,
            P::DEV,
            "run hello-wrld",
            &["hello-world", "no job"],
        )
        .await;
    }

    pub async fn role_too_low_is_refused<P: Platform>() {
        let server = start::<P>().await;
        expect_refusal::<P>(
            &server,
            P::GUEST,
            "run hello-world",
            &["developer", P::GUEST, "guest"],
        )
        .await;
    }

    pub async fn manual_job_waits_until_played<P: Platform>() {
        let server = start::<P>().await;
        let (status, body) = P::send(&server, P::DEV, "run manual-deploy", 1).await;
        assert_eq!(status, 200, "{body}");
        let said = match P::ack(&body) {
            Ack::Public(said) => said,
            other => panic!(
                "{}: the user must see how to play the job: {other:?}",
                P::NAME
            ),
        };
        assert!(said.contains("manual"), "{said}");
        let id: u64 = said
            .split("/demo play ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{}: the ack says how to play: {said}", P::NAME));
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            server.metric("chatops_jobs_started_total").await,
            0,
            "waits"
        );
        assert!(server.fake.received_at(&P::reply_path(1)).is_empty());
        let (status, played) = P::send(&server, P::DEV, &format!("play {id}"), 2).await;
        assert_eq!(status, 200, "{played}");
        // The job's reply goes where the command that created it would be answered.
        let replies = server.fake.wait_for(&P::reply_path(1), 1).await;
        let text = P::text(&replies[0].body);
        assert!(text.contains("deployed by chat"), "{text}");
        assert!(text.contains("succeeded"), "{text}");
    }

    pub async fn failing_job_shows_the_end_of_its_output<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run fails", 1).await;
        let text = P::text(&reply);
        assert!(text.contains("failed with exit code 3"), "{text}");
        assert!(text.contains("about to fail"), "{text}");
        assert!(
            !text.contains("never printed"),
            "stops at the first failing command: {text}"
        );
    }

    /// ~57 KB of output: more than every platform takes in one message.
    pub async fn output_over_the_limit_keeps_its_end<P: Platform>() {
        let server = start::<P>().await;
        let reply = run::<P>(&server, "run wide", 1).await;
        let text = P::text(&reply);
        assert!(
            text.contains("line 2000 of the wide output"),
            "keeps the end: {text}"
        );
        assert!(
            !text.contains("line 1 of the wide output"),
            "cuts the start"
        );
        assert!(text.contains("left out"), "says what was cut: {text}");
        assert!(text.contains("succeeded"), "the summary survives: {text}");
    }
}

/// Expands every scenario into `mod $name` for the platform `$platform`.
macro_rules! conformance {
    ($name:ident, $platform:ty) => {
        mod $name {
            use super::*;

            conformance!(@tests $platform;
                verification_failures_get_401_and_cause_no_work,
                hello_world_replies_hello_world,
                ls_replies_only_the_chat_reply_section,
                multi_command_job_shows_the_transcript,
                chat_variables_name_the_platform,
                input_reaches_the_job_verbatim,
                unknown_job_is_refused_with_close_names,
                role_too_low_is_refused,
                manual_job_waits_until_played,
                failing_job_shows_the_end_of_its_output,
                output_over_the_limit_keeps_its_end,
            );
        }
    };
    (@tests $platform:ty; $($scenario:ident),* $(,)?) => {
        $(
            #[actix_web::test]
            async fn $scenario() {
                scenarios::$scenario::<$platform>().await;
            }
        )*
    };
}

conformance!(slack, Slack);
conformance!(mattermost, Mattermost);
conformance!(discord, Discord);
