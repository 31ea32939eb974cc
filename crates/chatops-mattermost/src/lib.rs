//! The Mattermost adapter: implements [`chatops_core::ChatAdapter`] for Mattermost custom slash
//! commands and interactive buttons.
//!
//! # Layout
//! - [`config`]: [`MattermostConfig`], the `mattermost:` config section.
//! - `inbound`: token checks, slash-command forms and button callbacks → [`ChatCommand`]s.
//! - [`render`]: [`Reply`] → Markdown `text` + a coloured attachment, fitted to the post limit.
//! - `deliver`: `response_url` and `POST /api/v4/posts`, failures classified for retries.
//! - [`MattermostAdapter`]: ties them together behind the trait.
//!
//! Routes: `POST /mattermost/commands` ([`RouteKind::Commands`]: form body or query string,
//! token in `Authorization: Token …` and/or the `token` field) and `POST /mattermost/actions`
//! ([`RouteKind::Actions`]: button callbacks, JSON). Mattermost does not sign button callbacks,
//! so each button's context carries an HMAC of its command line keyed with a command token.
//!
//! Buttons need two things the `mattermost:` section alone does not give: the server's public
//! URL (Mattermost posts clicks there; see [`MattermostAdapter::with_public_url`]) and a bot
//! token (a click has no `response_url`, so its reply goes through the API).

pub mod config;
mod deliver;
mod error;
mod inbound;
pub mod render;

pub use config::MattermostConfig;
pub use error::MattermostError;
pub use inbound::PLATFORM;

use chatops_core::{
    BoxFuture, Capabilities, ChannelId, ChatAdapter, ChatCommand, Clock, DeliveryError,
    HostAllowList, HttpReply, Inbound, InboundError, InboundRequest, Markup, PlatformId, Reply,
    ReplyTarget, Route, RouteKind, StatusMessage, Via,
};
use std::sync::Arc;
use std::time::Duration;

/// The path Mattermost posts button clicks to.
pub const ACTIONS_PATH: &str = "/mattermost/actions";

/// Mattermost as a chat platform. Holds no mutable state.
pub struct MattermostAdapter {
    config: MattermostConfig,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// Where `response_url` replies may go, parsed once.
    allowed: HostAllowList,
    actions_url: Option<String>,
}

impl MattermostAdapter {
    /// An adapter for `config`; `clock` stamps commands, `http` posts replies.
    /// `http` must follow no redirects (`reqwest::redirect::Policy::none()`).
    pub fn new(config: MattermostConfig, clock: Arc<dyn Clock>, http: reqwest::Client) -> Self {
        // `validate` reports a bad entry at start; should one get here anyway, an empty list
        // refuses every response_url (each refusal recorded with why).
        let allowed = config.allow_list().unwrap_or_else(|e| {
            tracing::error!(error = %e, "mattermost.response_url_hosts is unusable: replies go through the bot API only");
            HostAllowList::default()
        });
        MattermostAdapter {
            config,
            clock,
            http,
            allowed,
            actions_url: None,
        }
    }

    /// Turns buttons on: `public_url` is this server's address as Mattermost reaches it
    /// (`server.public_url`); clicks are posted to `{public_url}/mattermost/actions`. Buttons
    /// also need `bot_token`, since a click's reply can only go through the API.
    pub fn with_public_url(mut self, public_url: &str) -> Self {
        self.actions_url = Some(format!(
            "{}{ACTIONS_PATH}",
            public_url.trim_end_matches('/')
        ));
        self
    }

    /// The configuration this adapter runs with.
    pub fn config(&self) -> &MattermostConfig {
        &self.config
    }

    /// Whether buttons can work: a public URL, a token to sign with, a bot token.
    fn buttons_usable(&self) -> bool {
        self.actions_url.is_some()
            && self.config.tokens().next().is_some()
            && self.config.bot_token().is_some()
    }

    /// Button settings for a message to `channel`, when buttons can work.
    fn buttons<'a>(&'a self, channel: &'a str) -> Option<render::Buttons<'a>> {
        if !self.buttons_usable() {
            return None;
        }
        Some(render::Buttons {
            url: self.actions_url.as_deref()?,
            key: self.config.tokens().next()?,
            channel,
            expires: self
                .clock
                .unix_seconds()
                .saturating_add(inbound::BUTTON_LIFETIME_SECS),
        })
    }

    /// Renders `reply`; buttons only when the channel it goes to is known (they are bound to
    /// it).
    fn render_reply(&self, reply: &Reply, channel: Option<&ChannelId>) -> serde_json::Value {
        let buttons = channel.and_then(|c| self.buttons(c.as_str()));
        render::render_message(reply, self.config.max_message_chars, buttons)
    }
}

fn to_inbound_error(error: MattermostError) -> InboundError {
    match error {
        MattermostError::Malformed(_) | MattermostError::Config(_) => {
            InboundError::BadRequest(error.to_string())
        }
        MattermostError::MissingToken
        | MattermostError::BadToken
        | MattermostError::BadActionSignature => InboundError::Unauthorized(error.to_string()),
    }
}

impl ChatAdapter for MattermostAdapter {
    fn platform(&self) -> PlatformId {
        PlatformId::new(PLATFORM)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Mattermost waits longer by default, but answering as fast as Slack costs nothing
            // and keeps one promise for every platform.
            ack_deadline: Duration::from_secs(3),
            followup_window: Some(Duration::from_secs(30 * 60)),
            followup_uses: Some(5),
            max_message_chars: self.config.max_message_chars,
            markup: Markup::Markdown,
            buttons: self.buttons_usable(),
            // Status messages, their edits and threads take the v4 API: a bot token.
            message_edits: self.config.bot_token().is_some(),
            threads: self.config.bot_token().is_some(),
            ephemeral: true,
            bot_api: self.config.bot_token().is_some(),
        }
    }

    fn routes(&self) -> Vec<Route> {
        vec![
            Route {
                path: "/mattermost/commands".into(),
                kind: RouteKind::Commands,
            },
            Route {
                path: ACTIONS_PATH.into(),
                kind: RouteKind::Actions,
            },
        ]
    }

    fn inbound(&self, kind: RouteKind, request: &InboundRequest) -> Result<Inbound, InboundError> {
        let now = self.clock.now();
        match kind {
            RouteKind::Commands => inbound::parse_command(request, self.config.tokens(), now)
                .map(|c| Inbound::Command(Box::new(c))),
            RouteKind::Actions => inbound::parse_action(&request.body, self.config.tokens(), now),
        }
        .map_err(to_inbound_error)
    }

    /// Slash commands get the rendered response (200, JSON, explicit `response_type`). Button
    /// clicks get an interactive-message response: the ack as `ephemeral_text` for the clicker.
    fn ack(&self, command: &ChatCommand, ack: &Reply) -> HttpReply {
        if command.via_button {
            return render::ephemeral_answer(&render::markdown(&ack.summary));
        }
        HttpReply::json(&self.render_reply(ack, Some(&command.channel)))
    }

    /// Without a channel to bind them to, the rendered message has no buttons.
    fn render(&self, reply: &Reply) -> serde_json::Value {
        self.render_reply(reply, None)
    }

    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let message = self.render_reply(reply, Some(&target.channel));
            match via {
                Via::ResponseUrl => {
                    deliver::via_response_url(&self.http, &self.allowed, target, &message).await
                }
                Via::BotApi => {
                    let base = self.config.base_url().ok_or_else(|| {
                        DeliveryError::permanent(format!(
                            "mattermost.url `{}` is not usable",
                            self.config.url
                        ))
                    })?;
                    deliver::via_bot_api(
                        &self.http,
                        base,
                        self.config.bot_token(),
                        target,
                        reply.visibility,
                        &message,
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
            let base = self.api_base()?;
            let message = self.render_reply(reply, Some(&target.channel));
            let id =
                deliver::create_post(&self.http, base, self.config.bot_token(), target, &message)
                    .await?;
            Ok(StatusMessage {
                channel: target.channel.to_string(),
                id,
            })
        })
    }

    fn edit<'a>(
        &'a self,
        target: &'a ReplyTarget,
        message: &'a StatusMessage,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let base = self.api_base()?;
            let rendered = self.render_reply(reply, Some(&target.channel));
            deliver::patch_post(
                &self.http,
                base,
                self.config.bot_token(),
                &message.id,
                &rendered,
            )
            .await
        })
    }

    fn thread_target(&self, target: &ReplyTarget, message: &StatusMessage) -> Option<ReplyTarget> {
        let mut threaded = target.clone();
        threaded
            .extra
            .insert("root_id".into(), message.id.clone().into());
        threaded
            .extra
            .insert(StatusMessage::THREAD_KEY.into(), true.into());
        Some(threaded)
    }
}

impl MattermostAdapter {
    /// The server's base URL for API calls, or why there is none.
    fn api_base(&self) -> Result<&str, DeliveryError> {
        self.config.base_url().ok_or_else(|| {
            DeliveryError::permanent(format!(
                "mattermost.url `{}` is not usable",
                self.config.url
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{FixedClock, Inline, Tone, Visibility};
    use std::time::SystemTime;

    const SLASH: &[u8] = include_bytes!("../tests/fixtures/slash_command.txt");
    const TOKEN: &str = "xr3j5x3p4pfk7rmoepd5d4w5xq";

    fn adapter(bot: bool) -> MattermostAdapter {
        let mut config = MattermostConfig::new("https://chat.example.com", TOKEN);
        if bot {
            config.bot_token = Some("bot".into());
        }
        MattermostAdapter::new(
            config,
            Arc::new(FixedClock(SystemTime::UNIX_EPOCH)),
            reqwest::Client::new(),
        )
        .with_public_url("https://chatops.example.com/")
    }

    fn command(a: &MattermostAdapter, body: &[u8]) -> Result<ChatCommand, String> {
        let request = InboundRequest {
            body: body.to_vec(),
            ..InboundRequest::default()
        };
        match a.inbound(RouteKind::Commands, &request) {
            Ok(Inbound::Command(c)) => Ok(*c),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn verified_command_and_its_ack() -> Result<(), Box<dyn std::error::Error>> {
        let a = adapter(false);
        let cmd = command(&a, SLASH)?;
        assert_eq!(cmd.slash_command, "/demo");
        let ack = Reply::ephemeral(Tone::Neutral, vec![Inline::Text("Queued".into())]);
        let http = a.ack(&cmd, &ack);
        assert_eq!(http.status, 200);
        assert_eq!(http.content_type.as_deref(), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&http.body)?;
        assert_eq!(body["response_type"], "ephemeral");
        assert_eq!(body["text"], "Queued");
        assert_eq!(body["skip_slack_parsing"], true);
        let public = Reply::new(Visibility::InChannel, Tone::Neutral, vec![]);
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&cmd, &public).body)?;
        assert_eq!(body["response_type"], "in_channel");
        assert!(!body["text"].as_str().unwrap_or_default().is_empty());
        Ok(())
    }

    #[test]
    fn bad_tokens_are_unauthorized_and_bad_forms_bad_requests() {
        let a = adapter(false);
        let request = InboundRequest {
            body: b"token=wrong&command=%2Fdemo&user_id=U&channel_id=C".to_vec(),
            ..InboundRequest::default()
        };
        assert!(matches!(
            a.inbound(RouteKind::Commands, &request),
            Err(InboundError::Unauthorized(_))
        ));
        let request = InboundRequest {
            body: format!("token={TOKEN}&user_id=U").into_bytes(),
            ..InboundRequest::default()
        };
        assert!(matches!(
            a.inbound(RouteKind::Commands, &request),
            Err(InboundError::BadRequest(_))
        ));
        let forged = InboundRequest {
            body: br#"{"user_id":"U","channel_id":"C","context":{"command":"/demo run x","sig":"00"}}"#.to_vec(),
            ..InboundRequest::default()
        };
        assert!(matches!(
            a.inbound(RouteKind::Actions, &forged),
            Err(InboundError::Unauthorized(_))
        ));
    }

    #[test]
    fn buttons_need_a_public_url_and_a_bot_token() -> Result<(), Box<dyn std::error::Error>> {
        assert!(!adapter(false).capabilities().buttons);
        let a = adapter(true);
        let caps = a.capabilities();
        assert!(caps.buttons && caps.bot_api);
        assert_eq!(caps.max_message_chars, 16383);
        assert_eq!(caps.markup, Markup::Markdown);

        // A rendered button round-trips through /mattermost/actions.
        let mut reply = Reply::new(Visibility::InChannel, Tone::Neutral, vec![]);
        reply.actions = vec![chatops_core::Action {
            label: "Play".into(),
            command: "/demo play 7".into(),
            danger: false,
        }];
        // Buttons are bound to the channel the message goes to: none without one.
        assert!(a.render(&reply)["attachments"][0]["actions"].is_null());
        let rendered = a.render_reply(&reply, Some(&ChannelId::new("C1")));
        let button = &rendered["attachments"][0]["actions"][0];
        assert_eq!(
            button["integration"]["url"],
            "https://chatops.example.com/mattermost/actions"
        );
        let click = serde_json::json!({
            "user_id": "U1", "channel_id": "C1", "post_id": "P1", "trigger_id": "T1",
            "context": button["integration"]["context"],
        });
        let request = InboundRequest {
            body: click.to_string().into_bytes(),
            ..InboundRequest::default()
        };
        let Inbound::Command(cmd) = a.inbound(RouteKind::Actions, &request)? else {
            return Err("expected a command".into());
        };
        assert!(cmd.via_button);
        assert_eq!(cmd.text, "play 7");
        // The same context clicked in another channel does nothing, and says so.
        let mut elsewhere = click.clone();
        elsewhere["channel_id"] = "C2".into();
        let request = InboundRequest {
            body: elsewhere.to_string().into_bytes(),
            ..InboundRequest::default()
        };
        let Inbound::Respond(refused) = a.inbound(RouteKind::Actions, &request)? else {
            return Err("a click in another channel must not become a command".into());
        };
        let body: serde_json::Value = serde_json::from_slice(&refused.body)?;
        assert!(body["ephemeral_text"].is_string(), "{body}");
        let ack = Reply::ephemeral(Tone::Neutral, vec![Inline::Text("Playing #7".into())]);
        let body: serde_json::Value = serde_json::from_slice(&a.ack(&cmd, &ack).body)?;
        assert_eq!(body["ephemeral_text"], "Playing #7");
        Ok(())
    }

    #[test]
    fn routes() {
        let paths: Vec<_> = adapter(false)
            .routes()
            .into_iter()
            .map(|r| (r.path, r.kind))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("/mattermost/commands".to_owned(), RouteKind::Commands),
                ("/mattermost/actions".to_owned(), RouteKind::Actions)
            ]
        );
    }
}
