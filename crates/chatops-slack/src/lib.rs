//! The Slack adapter: implements [`chatops_core::ChatAdapter`] for Slack slash commands and
//! Block Kit buttons.
//!
//! # Layout
//! - [`config`]: [`SlackConfig`], the `slack:` config section.
//! - [`signature`]: v0 request signing ([`sign`], [`verify`]).
//! - `inbound`: slash-command forms and `block_actions` payloads → [`ChatCommand`]s.
//! - [`render`]: [`Reply`] → mrkdwn `text` + Block Kit `blocks`, escaped and fitted to limits.
//! - `deliver`: `response_url` and `chat.postMessage` posting, failures classified for retries.
//! - `replay`: the `(timestamp, signature)` of every verified request within the signing
//!   window, so that a replayed body is answered once.
//! - [`SlackAdapter`]: ties them together behind the trait.
//!
//! Routes: `POST /slack/commands` ([`RouteKind::Commands`]) and `POST /slack/actions`
//! ([`RouteKind::Actions`]). Every request is verified before it is parsed; the one exception
//! is Slack's `ssl_check` probe when it arrives without signature headers (it causes no work and
//! reveals nothing, and Slack does not document it as signed).

pub mod config;
mod deliver;
mod error;
mod inbound;
pub mod render;
mod replay;
pub mod signature;

pub use config::SlackConfig;
pub use error::SlackError;
pub use inbound::PLATFORM;
pub use signature::{sign, verify};

use chatops_core::{
    BoxFuture, Capabilities, ChatAdapter, ChatCommand, Clock, DeliveryError, HostAllowList,
    HttpReply, Inbound, InboundError, InboundRequest, Inline, Markup, PlatformId, Reply,
    ReplyTarget, Route, RouteKind, StatusMessage, Tone, Via, Visibility,
};
use std::sync::Arc;
use std::time::Duration;

/// Slack as a chat platform. Cheap to share behind an `Arc`; its only mutable state is the
/// replay guard (behind a mutex).
pub struct SlackAdapter {
    config: SlackConfig,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// `response_url_hosts`, parsed once.
    allowed: HostAllowList,
    replays: replay::ReplayGuard,
}

impl SlackAdapter {
    /// An adapter for `config`; `clock` checks request timestamps, `http` posts replies (and
    /// must follow no redirects: `reqwest::redirect::Policy::none()`).
    pub fn new(config: SlackConfig, clock: Arc<dyn Clock>, http: reqwest::Client) -> Self {
        // `SlackConfig::validate` reports a bad entry at start; should one get here anyway, an
        // empty list refuses every response_url (and each refusal is recorded with why).
        let allowed = config.allow_list().unwrap_or_else(|e| {
            tracing::error!(error = %e, "slack.response_url_hosts is unusable: replies go through the bot API only");
            HostAllowList::default()
        });
        SlackAdapter {
            config,
            clock,
            http,
            allowed,
            replays: replay::ReplayGuard::default(),
        }
    }

    /// The configuration this adapter runs with.
    pub fn config(&self) -> &SlackConfig {
        &self.config
    }

    /// Verifies the signature; returns the signature's bytes, and whether this exact signed
    /// request was seen before (a replay, or Slack retrying the very same body).
    fn verify_request(&self, request: &InboundRequest) -> Result<([u8; 32], bool), SlackError> {
        let now = self.clock.unix_seconds();
        let timestamp = request.header(signature::TIMESTAMP_HEADER);
        let sent = request.header(signature::SIGNATURE_HEADER);
        verify(
            &self.config.signing_secret,
            timestamp,
            sent,
            &request.body,
            now,
        )?;
        // Both parse: `verify` just accepted them.
        let ts = signature::parse_timestamp(timestamp.unwrap_or_default())?;
        let digest = signature::parse_signature(sent.unwrap_or_default())?;
        Ok((digest, !self.replays.first_time(ts, digest, now)))
    }
}

/// The answer to a signed request that came before: 200 (Slack retries anything else, and a
/// retry must not run the command again), ephemeral, no work.
fn already_received(kind: RouteKind) -> Inbound {
    if kind == RouteKind::Actions {
        return Inbound::Respond(HttpReply::empty());
    }
    let reply = Reply::ephemeral(
        Tone::Neutral,
        vec![Inline::Text(
            "This request arrived twice (the same signed body); chatops acts on it once.".into(),
        )],
    );
    Inbound::Respond(HttpReply::json(&render::render_message(&reply)))
}

fn to_inbound_error(error: SlackError) -> InboundError {
    match error {
        SlackError::Malformed(_) | SlackError::Config(_) => {
            InboundError::BadRequest(error.to_string())
        }
        _ => InboundError::Unauthorized(error.to_string()),
    }
}

impl ChatAdapter for SlackAdapter {
    fn platform(&self) -> PlatformId {
        PlatformId::new(PLATFORM)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ack_deadline: Duration::from_secs(3),
            followup_window: Some(Duration::from_secs(30 * 60)),
            followup_uses: Some(5),
            max_message_chars: render::TEXT_MAX,
            markup: Markup::SlackMrkdwn,
            buttons: true,
            // Editing and threading the status message take the Web API (`chat.update`,
            // `chat.postMessage` with `thread_ts`): a bot token.
            message_edits: self.config.bot_token().is_some(),
            threads: self.config.bot_token().is_some(),
            ephemeral: true,
            bot_api: self.config.bot_token().is_some(),
        }
    }

    fn routes(&self) -> Vec<Route> {
        vec![
            Route {
                path: "/slack/commands".into(),
                kind: RouteKind::Commands,
            },
            Route {
                path: "/slack/actions".into(),
                kind: RouteKind::Actions,
            },
        ]
    }

    fn inbound(&self, kind: RouteKind, request: &InboundRequest) -> Result<Inbound, InboundError> {
        let unsigned = request.header(signature::TIMESTAMP_HEADER).is_none()
            && request.header(signature::SIGNATURE_HEADER).is_none();
        if unsigned && kind == RouteKind::Commands && inbound::is_ssl_check(&request.body) {
            return Ok(Inbound::Respond(HttpReply::empty()));
        }
        let (digest, replayed) = self.verify_request(request).map_err(to_inbound_error)?;
        if replayed {
            tracing::warn!(
                route = ?kind,
                retry = request.header("x-slack-retry-num").unwrap_or("none"),
                "slack: a signed request came again; answered without acting on it"
            );
            return Ok(already_received(kind));
        }
        let now = self.clock.now();
        let mut inbound = match kind {
            RouteKind::Commands => inbound::parse_command(&request.body, now),
            RouteKind::Actions => inbound::parse_action(&request.body, now),
        }
        .map_err(to_inbound_error)?;
        // A body without `trigger_id` gets its signature as the request id, so the store's
        // duplicate check also catches a replay the guard above no longer remembers (after a
        // restart, or past its capacity).
        if let Inbound::Command(command) = &mut inbound {
            if command.request_id.is_none() {
                command.request_id = Some(format!("v0={}", hex::encode(digest)));
            }
        }
        Ok(inbound)
    }

    /// Slash commands get the rendered ack; button clicks an empty 200, since Slack ignores the
    /// body of a `block_actions` answer (what the click caused is posted to its `response_url`).
    fn ack(&self, command: &ChatCommand, ack: &Reply) -> HttpReply {
        if command.via_button {
            return HttpReply::empty();
        }
        HttpReply::json(&render::render_message(ack))
    }

    /// A click's ack (an ephemeral refusal for the clicker, or "played by ..." in the channel)
    /// is posted to the click's `response_url`: the answer's body would be ignored.
    /// <https://api.slack.com/interactivity/handling#message_responses>
    fn click_answer(&self, command: &ChatCommand, ack: &Reply) -> Option<Reply> {
        command.via_button.then(|| ack.clone())
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
            let message = render::render_message(reply);
            match via {
                Via::ResponseUrl => {
                    deliver::via_response_url(&self.http, &self.allowed, target, message).await
                }
                Via::BotApi => {
                    deliver::via_bot_api(
                        &self.http,
                        &self.config.api_url,
                        self.config.bot_token(),
                        target,
                        reply.visibility,
                        message,
                    )
                    .await
                }
            }
        })
    }

    fn post_status<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<StatusMessage, DeliveryError>> {
        Box::pin(async move {
            let message = render::render_message(reply);
            let answer = deliver::post_message(
                &self.http,
                &self.config.api_url,
                self.config.bot_token(),
                target,
                Visibility::InChannel,
                message,
            )
            .await?;
            // chat.update needs the channel id Slack answers with and the message's `ts`.
            let channel = answer["channel"]
                .as_str()
                .unwrap_or(target.channel.as_str());
            let ts = answer["ts"].as_str().ok_or_else(|| {
                DeliveryError::permanent("chat.postMessage answered ok without the message's ts")
            })?;
            Ok(StatusMessage {
                channel: channel.to_owned(),
                id: ts.to_owned(),
            })
        })
    }

    fn edit<'a>(
        &'a self,
        _target: &'a ReplyTarget,
        message: &'a StatusMessage,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            deliver::update_message(
                &self.http,
                &self.config.api_url,
                self.config.bot_token(),
                &message.channel,
                &message.id,
                render::render_message(reply),
            )
            .await
        })
    }

    /// The status message's thread; a command typed in a thread keeps its thread (Slack
    /// threads do not nest).
    fn thread_target(&self, target: &ReplyTarget, message: &StatusMessage) -> Option<ReplyTarget> {
        let mut threaded = target.clone();
        threaded
            .extra
            .entry("thread_ts")
            .or_insert_with(|| message.id.clone().into());
        threaded
            .extra
            .insert(StatusMessage::THREAD_KEY.into(), true.into());
        Some(threaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{FixedClock, Inline, Tone, Visibility};
    use std::time::SystemTime;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: u64 = 1_700_000_000;
    const SLASH: &[u8] = include_bytes!("../tests/fixtures/slash_command.txt");
    const BLOCK_ACTIONS: &str = include_str!("../tests/fixtures/block_actions.json");

    fn adapter() -> SlackAdapter {
        let clock = FixedClock(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
        SlackAdapter::new(
            SlackConfig::new(SECRET),
            Arc::new(clock),
            reqwest::Client::new(),
        )
    }

    fn signed(body: &[u8], at: u64) -> InboundRequest {
        let ts = at.to_string();
        InboundRequest {
            query: String::new(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                (signature::TIMESTAMP_HEADER.into(), ts.clone()),
                (signature::SIGNATURE_HEADER.into(), sign(SECRET, &ts, body)),
            ],
            body: body.to_vec(),
        }
    }

    fn actions_body() -> Vec<u8> {
        serde_urlencoded::to_string([("payload", BLOCK_ACTIONS)])
            .unwrap_or_default()
            .into_bytes()
    }

    #[test]
    fn signed_command_is_accepted() -> Result<(), InboundError> {
        let a = adapter();
        match a.inbound(RouteKind::Commands, &signed(SLASH, NOW - 5))? {
            Inbound::Command(cmd) => {
                assert_eq!(cmd.slash_command, "/demo");
                assert_eq!(
                    cmd.received_at,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
                );
            }
            other => panic!("expected a command, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn verification_failures_are_unauthorized() {
        let a = adapter();
        let stale = signed(SLASH, NOW - 301);
        let mut tampered = signed(SLASH, NOW);
        tampered.body.extend_from_slice(b"&text=run+rm");
        let mut unsigned = signed(SLASH, NOW);
        unsigned.headers.truncate(1);
        let mut no_signature = signed(SLASH, NOW);
        no_signature.headers.truncate(2);
        for (name, request) in [
            ("stale", stale),
            ("tampered", tampered),
            ("unsigned", unsigned),
            ("no signature", no_signature),
        ] {
            for kind in [RouteKind::Commands, RouteKind::Actions] {
                assert!(
                    matches!(
                        a.inbound(kind, &request),
                        Err(InboundError::Unauthorized(_))
                    ),
                    "{name} {kind:?}"
                );
            }
        }
    }

    /// Issue #9 item 7: a signed body without `trigger_id`, posted again within the window,
    /// ran twice.
    #[test]
    fn a_replayed_signed_request_is_answered_once() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter();
        let body = b"command=%2Fdemo&user_id=U1&channel_id=C1&text=run+deploy";
        let first = a.inbound(RouteKind::Commands, &signed(body, NOW - 10))?;
        let Inbound::Command(cmd) = first else {
            return Err(format!("expected a command, got {first:?}").into());
        };
        // No trigger_id: the signature stands in, so the store's duplicate check applies too.
        let id = cmd.request_id.unwrap_or_default();
        assert!(id.starts_with("v0=") && id.len() == 67, "{id}");
        for _ in 0..2 {
            match a.inbound(RouteKind::Commands, &signed(body, NOW - 10))? {
                Inbound::Respond(r) => {
                    assert_eq!(r.status, 200);
                    let said: serde_json::Value = serde_json::from_slice(&r.body)?;
                    assert_eq!(said["response_type"], "ephemeral");
                    assert!(said["text"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("arrived twice"));
                }
                other => return Err(format!("a replay made {other:?}").into()),
            }
        }
        assert!(matches!(
            a.inbound(RouteKind::Actions, &signed(&actions_body(), NOW))?,
            Inbound::Command(_)
        ));
        assert_eq!(
            a.inbound(RouteKind::Actions, &signed(&actions_body(), NOW))
                .map_err(|e| e.to_string())
                .and_then(|i| match i {
                    Inbound::Respond(r) => Ok(r),
                    other => Err(format!("{other:?}")),
                })?,
            HttpReply::empty()
        );
        // The same body signed at another time is another request (Slack re-signs retries).
        assert!(matches!(
            a.inbound(RouteKind::Commands, &signed(body, NOW - 9))?,
            Inbound::Command(_)
        ));
        Ok(())
    }

    #[test]
    fn malformed_but_signed_is_bad_request() {
        let a = adapter();
        let err = a.inbound(RouteKind::Commands, &signed(b"text=hello", NOW));
        assert!(matches!(err, Err(InboundError::BadRequest(_))), "{err:?}");
    }

    #[test]
    fn ssl_check_gets_an_empty_200_signed_or_not() -> Result<(), InboundError> {
        let a = adapter();
        let body = b"ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO";
        let unsigned = InboundRequest {
            body: body.to_vec(),
            ..InboundRequest::default()
        };
        for request in [unsigned, signed(body, NOW)] {
            match a.inbound(RouteKind::Commands, &request)? {
                Inbound::Respond(r) => assert_eq!(r, HttpReply::empty()),
                other => panic!("expected an empty 200, got {other:?}"),
            }
        }
        // A signed ssl_check with a bad signature is still refused.
        let mut forged = signed(body, NOW);
        forged.headers[2].1 = sign("wrong", &NOW.to_string(), body);
        assert!(a.inbound(RouteKind::Commands, &forged).is_err());
        Ok(())
    }

    #[test]
    fn button_click_acks_empty_and_command_acks_json() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter();
        let ack = Reply::ephemeral(Tone::Neutral, vec![Inline::Text("Queued".into())]);
        let click = match a.inbound(RouteKind::Actions, &signed(&actions_body(), NOW))? {
            Inbound::Command(c) => *c,
            other => return Err(format!("expected a command, got {other:?}").into()),
        };
        assert!(click.via_button);
        assert_eq!(a.ack(&click, &ack), HttpReply::empty());

        let typed = match a.inbound(RouteKind::Commands, &signed(SLASH, NOW))? {
            Inbound::Command(c) => *c,
            other => return Err(format!("expected a command, got {other:?}").into()),
        };
        let http = a.ack(&typed, &ack);
        assert_eq!(http.status, 200);
        assert_eq!(http.content_type.as_deref(), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&http.body)?;
        assert_eq!(body["response_type"], "ephemeral");
        assert_eq!(body["text"], "Queued");

        let public = Reply::new(Visibility::InChannel, Tone::Neutral, vec![]);
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&typed, &public).body)?;
        assert_eq!(body["response_type"], "in_channel");
        assert!(body["text"].is_string());
        Ok(())
    }

    #[test]
    fn capabilities_follow_the_config() {
        let a = adapter();
        let caps = a.capabilities();
        assert_eq!(caps.ack_deadline, Duration::from_secs(3));
        assert_eq!(caps.followup_window, Some(Duration::from_secs(1800)));
        assert_eq!(caps.followup_uses, Some(5));
        assert_eq!(caps.markup, Markup::SlackMrkdwn);
        assert!(!caps.bot_api);
        let mut config = SlackConfig::new(SECRET);
        config.bot_token = Some("xoxb-1".into());
        let with_bot = SlackAdapter::new(
            config,
            Arc::new(chatops_core::SystemClock),
            reqwest::Client::new(),
        );
        assert!(with_bot.capabilities().bot_api);
        assert_eq!(a.platform().as_str(), "slack");
        let paths: Vec<_> = a.routes().into_iter().map(|r| (r.path, r.kind)).collect();
        assert_eq!(
            paths,
            vec![
                ("/slack/commands".to_owned(), RouteKind::Commands),
                ("/slack/actions".to_owned(), RouteKind::Actions)
            ]
        );
    }
}
