//! The Discord adapter: implements [`chatops_core::ChatAdapter`] for Discord interactions
//! (application commands and message-component buttons).
//!
//! # Layout
//! - [`config`]: [`DiscordConfig`], the `discord:` config section.
//! - [`signature`]: Ed25519 verification of `X-Signature-Ed25519` over timestamp + body.
//! - `inbound`: interactions → [`ChatCommand`]s, or a direct answer (PING → PONG).
//! - [`render`]: [`Reply`] → `content` (+ buttons, flags, allowed mentions) within 2000 chars.
//! - `deliver`: follow-up messages to the interaction webhook, failures classified.
//! - [`DiscordAdapter`]: ties them together behind the trait.
//!
//! One route: `POST /discord/interactions` ([`RouteKind::Commands`]); button clicks arrive there
//! too. The application command's name selects the project (`/demo` → `demo`), its string
//! option `text` is the command text.
//!
//! Acks: a slash command's ack is answered at once as the initial response (type 4), ephemeral
//! (flag 64) when the ack [`Reply`] is — refusals, help, "not a valid command" — and in the
//! channel otherwise. The in-channel ack is what tells the user a job's number, its page and, for
//! a manual job, how to play it, so it must not be swallowed by a deferred "thinking…" response.
//! The job's result comes later as a follow-up, which the interaction's webhook accepts for 15
//! minutes after any initial response. A button click's in-channel ack is deferred (type 6: the
//! clicked message stays as it is); an ephemeral one is answered at once like a command's.

pub mod config;
mod deliver;
mod error;
mod inbound;
pub mod render;
pub mod signature;

pub use config::DiscordConfig;
pub use error::DiscordError;
pub use inbound::{PLATFORM, TEXT_OPTION};

use chatops_core::{
    BoxFuture, Capabilities, ChatAdapter, ChatCommand, Clock, DeliveryError, HostAllowList,
    HttpReply, Inbound, InboundError, InboundRequest, Markup, PlatformId, Reply, ReplyTarget,
    Route, RouteKind, StatusMessage, Via,
};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Discord as a chat platform. Holds no mutable state.
pub struct DiscordAdapter {
    config: DiscordConfig,
    key: VerifyingKey,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// Follow-ups go only to `api_url`'s host.
    allowed: HostAllowList,
    followup_base: String,
}

impl DiscordAdapter {
    /// An adapter for `config`; fails when the public key is not a valid Ed25519 key (the
    /// message says what to fix). `clock` checks timestamps, `http` posts follow-ups (and
    /// must follow no redirects: `reqwest::redirect::Policy::none()`).
    pub fn new(
        config: DiscordConfig,
        clock: Arc<dyn Clock>,
        http: reqwest::Client,
    ) -> Result<Self, DiscordError> {
        // The application id goes into every follow-up URL: it must be the digits `validate`
        // checks (the config loader ran it already; an adapter built otherwise runs it here).
        config.validate()?;
        let key = config.verifying_key()?;
        // `validate` checked api_url; an unusable one refuses every follow-up, with why.
        let allowed = HostAllowList::for_base_url(config.api_base()).unwrap_or_default();
        let followup_base = format!(
            "{}/webhooks/{}",
            config.api_base(),
            config.application_id.trim()
        );
        Ok(DiscordAdapter {
            config,
            key,
            clock,
            http,
            allowed,
            followup_base,
        })
    }

    /// The configuration this adapter runs with.
    pub fn config(&self) -> &DiscordConfig {
        &self.config
    }
}

fn to_inbound_error(error: DiscordError) -> InboundError {
    match error {
        DiscordError::Malformed(_) | DiscordError::Config(_) => {
            InboundError::BadRequest(error.to_string())
        }
        _ => InboundError::Unauthorized(error.to_string()),
    }
}

impl ChatAdapter for DiscordAdapter {
    fn platform(&self) -> PlatformId {
        PlatformId::new(PLATFORM)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ack_deadline: Duration::from_secs(3),
            followup_window: Some(Duration::from_secs(15 * 60)),
            // Follow-ups are not counted, only timed.
            followup_uses: None,
            max_message_chars: render::CONTENT_MAX,
            markup: Markup::Markdown,
            buttons: true,
            // The ack (the interaction's original response) becomes the status message; the
            // interaction's token edits it, no bot token needed.
            message_edits: true,
            threads: false,
            ephemeral: true,
            bot_api: false,
        }
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route {
            path: "/discord/interactions".into(),
            kind: RouteKind::Commands,
        }]
    }

    fn inbound(&self, _kind: RouteKind, request: &InboundRequest) -> Result<Inbound, InboundError> {
        signature::verify(
            &self.key,
            request.header(signature::TIMESTAMP_HEADER),
            request.header(signature::SIGNATURE_HEADER),
            &request.body,
            self.clock.unix_seconds(),
        )
        .map_err(to_inbound_error)?;
        inbound::parse(
            &request.body,
            self.config.application_id.trim(),
            &self.followup_base,
            self.clock.now(),
        )
        .map_err(to_inbound_error)
    }

    /// Every answer is type 4 (CHANNEL_MESSAGE_WITH_SOURCE) carrying the ack: a command's
    /// in-channel ack must be seen (a manual job's "play it with /demo play N"), and so must a
    /// click's ("played by ...", a refusal for the clicker). Deferring a click (type 6) left
    /// the clicker with no answer at all (issue #9 item 10).
    fn ack(&self, _command: &ChatCommand, ack: &Reply) -> HttpReply {
        HttpReply::json(&json!({"type": 4, "data": render::render_message(ack)}))
    }

    fn render(&self, reply: &Reply) -> serde_json::Value {
        render::render_message(reply)
    }

    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            match via {
                Via::ResponseUrl => {
                    let message = render::render_message(reply);
                    deliver::followup(&self.http, &self.allowed, target, &message).await
                }
                Via::BotApi => Err(DeliveryError::permanent(
                    "Discord replies go only through the interaction's follow-up webhook \
                     (15 minutes); there is no bot token to post later",
                )),
            }
        })
    }

    /// The status message is the command's ack, already posted: the first edit makes it one.
    fn post_status<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<StatusMessage, DeliveryError>> {
        Box::pin(async move {
            let message = StatusMessage {
                channel: target.channel.to_string(),
                id: "@original".into(),
            };
            self.edit(target, &message, reply).await?;
            Ok(message)
        })
    }

    fn edit<'a>(
        &'a self,
        target: &'a ReplyTarget,
        _message: &'a StatusMessage,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let message = render::render_message(reply);
            deliver::edit_original(&self.http, &self.allowed, target, &message).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{FixedClock, Inline, Tone, Visibility};
    use std::time::SystemTime;

    const NOW: u64 = 1_700_000_000;
    const GUILD: &[u8] = include_bytes!("../tests/fixtures/guild_command.json");
    const BUTTON: &[u8] = include_bytes!("../tests/fixtures/button_click.json");

    fn adapter() -> Result<DiscordAdapter, DiscordError> {
        let public = hex::encode(signature::tests::signing_key().verifying_key().to_bytes());
        DiscordAdapter::new(
            DiscordConfig::new(public, "1100000000000000001"),
            Arc::new(FixedClock(
                SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
            )),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn an_application_id_that_is_not_digits_is_refused_before_any_url_is_built() {
        let public = hex::encode(signature::tests::signing_key().verifying_key().to_bytes());
        let built = DiscordAdapter::new(
            DiscordConfig::new(public, "1/../../channels/9"),
            Arc::new(FixedClock(SystemTime::UNIX_EPOCH)),
            reqwest::Client::new(),
        );
        assert!(
            matches!(&built, Err(DiscordError::Config(m)) if m.contains("application_id")),
            "{:?}",
            built.err()
        );
    }

    fn signed(body: &[u8]) -> InboundRequest {
        let ts = NOW.to_string();
        InboundRequest {
            query: String::new(),
            headers: vec![
                (signature::TIMESTAMP_HEADER.into(), ts.clone()),
                (
                    signature::SIGNATURE_HEADER.into(),
                    signature::tests::sign(&ts, body),
                ),
            ],
            body: body.to_vec(),
        }
    }

    fn command(a: &DiscordAdapter, body: &[u8]) -> Result<ChatCommand, String> {
        match a.inbound(RouteKind::Commands, &signed(body)) {
            Ok(Inbound::Command(c)) => Ok(*c),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn ping_gets_pong_only_when_signed() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter()?;
        let ping = br#"{"type":1,"application_id":"1100000000000000001","id":"1","token":"t"}"#;
        match a.inbound(RouteKind::Commands, &signed(ping))? {
            Inbound::Respond(r) => {
                let body: serde_json::Value = serde_json::from_slice(&r.body)?;
                assert_eq!(body, json!({"type": 1}));
                assert_eq!(r.content_type.as_deref(), Some("application/json"));
            }
            other => return Err(format!("expected PONG, got {other:?}").into()),
        }
        let mut forged = signed(ping);
        forged.body =
            br#"{"type":1,"application_id":"1100000000000000001","id":"2","token":"t"}"#.to_vec();
        assert!(matches!(
            a.inbound(RouteKind::Commands, &forged),
            Err(InboundError::Unauthorized(_))
        ));
        let unsigned = InboundRequest {
            body: ping.to_vec(),
            ..InboundRequest::default()
        };
        assert!(matches!(
            a.inbound(RouteKind::Commands, &unsigned),
            Err(InboundError::Unauthorized(_))
        ));
        Ok(())
    }

    #[test]
    fn acks_answer_commands_and_defer_clicks() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter()?;
        let cmd = command(&a, GUILD)?;
        assert_eq!(
            cmd.reply_to.response_url.as_deref().map(|u| u.starts_with(
                "https://discord.com/api/v10/webhooks/1100000000000000001/"
            )),
            Some(true)
        );
        // An in-channel ack is shown at once, in the channel (a manual job's play hint).
        let accepted = Reply::new(
            Visibility::InChannel,
            Tone::Neutral,
            vec![Inline::Code("/demo play 7".into())],
        );
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&cmd, &accepted).body)?;
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["flags"], json!(render::SUPPRESS_EMBEDS));
        assert_eq!(body["data"]["content"], "`/demo play 7`");

        let refused = Reply::ephemeral(Tone::Failure, vec![Inline::Text("not allowed".into())]);
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&cmd, &refused).body)?;
        assert_eq!(body["type"], 4);
        assert_eq!(
            body["data"]["flags"],
            json!(render::EPHEMERAL | render::SUPPRESS_EMBEDS)
        );
        assert_eq!(body["data"]["content"], "❌ not allowed");

        // A click is answered in the channel too (a deferred update showed nothing).
        let click = command(&a, BUTTON)?;
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&click, &accepted).body)?;
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["content"], "`/demo play 7`");
        Ok(())
    }

    #[tokio::test]
    async fn bot_api_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter()?;
        let cmd = command(&a, GUILD)?;
        let reply = Reply::new(Visibility::InChannel, Tone::Neutral, vec![]);
        let err = a
            .deliver(&cmd.reply_to, &reply, Via::BotApi)
            .await
            .err()
            .ok_or("expected an error")?;
        assert_eq!(err.retry, chatops_core::Retry::Never);
        Ok(())
    }

    #[test]
    fn capabilities_and_routes() -> Result<(), DiscordError> {
        let a = adapter()?;
        let caps = a.capabilities();
        assert_eq!(caps.followup_window, Some(Duration::from_secs(900)));
        assert_eq!(caps.max_message_chars, 2000);
        assert!(!caps.bot_api);
        assert_eq!(a.platform().as_str(), "discord");
        assert_eq!(a.routes()[0].path, "/discord/interactions");
        assert!(DiscordAdapter::new(
            DiscordConfig::new("00", "1"),
            Arc::new(chatops_core::SystemClock),
            reqwest::Client::new()
        )
        .is_err());
        Ok(())
    }
}
