//! A complete, tiny chat-platform adapter to copy when adding a platform to chatops.
//!
//! "Echo" is an in-memory platform: commands arrive as JSON on `POST /echo/commands` with a
//! shared token in a header, and replies are "delivered" into a list. Everything a real adapter
//! does is here in miniature:
//!
//! 1. `inbound`: verify the request (before reading it), then parse it into a `ChatCommand`.
//!    Failing verification is `InboundError::Unauthorized` (the web layer answers 401, no work).
//! 2. `ack`: the HTTP answer within the platform's deadline, carrying the pipeline's ack reply.
//! 3. `render`: the platform-neutral `Reply` in the platform's dialect, escaped, within limits
//!    (core's `fit_output` keeps the end of long output and says what was cut).
//! 4. `deliver`: post a reply to where the command came from; classify failures with
//!    `DeliveryError` so the outbox knows whether retrying helps.
//! 5. `capabilities`: what the platform can do, as data (deadlines, limits, markup, buttons).
//!
//! A real platform lives in its own crate (`crates/chatops-<name>/`: `config.rs`, `inbound.rs`,
//! `render.rs`, `deliver.rs`, tests from fixture bytes) and is registered in the binary with
//! `Adapters::register`. Run this one with `cargo run --example echo_adapter`.

use chatops_core::reply::{fit_output, NOTHING_PRINTED};
use chatops_core::{
    Adapters, BoxFuture, Capabilities, ChannelId, ChatAdapter, ChatCommand, Clock, DeliveryError,
    HttpReply, Inbound, InboundError, InboundRequest, Inline, Markup, OutputBlock, PlatformId,
    Reply, ReplyTarget, Route, RouteKind, SystemClock, Tone, UserId, Via, Visibility,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest message Echo accepts; small, so that the example shows output being cut.
const MAX_MESSAGE_CHARS: usize = 300;

/// The Echo platform. A real adapter holds its config, a clock and an HTTP client.
struct EchoAdapter {
    /// The shared secret requests must carry in `X-Echo-Token`.
    token: String,
    clock: Arc<dyn Clock>,
    /// Where "delivered" messages go. A real adapter POSTs them; the lock is held only to push.
    delivered: Mutex<Vec<(ReplyTarget, Value)>>,
}

impl EchoAdapter {
    fn new(token: &str, clock: Arc<dyn Clock>) -> EchoAdapter {
        EchoAdapter {
            token: token.to_owned(),
            clock,
            delivered: Mutex::new(Vec::new()),
        }
    }

    /// Compares without stopping at the first difference, so that response times do not reveal
    /// how much of a guessed token was right. (Real adapters use the `subtle` crate.)
    fn token_ok(&self, given: &str) -> bool {
        let (a, b) = (given.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Reads a required string field of the JSON body.
fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, InboundError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| InboundError::BadRequest(format!("the `{name}` field is missing")))
}

impl ChatAdapter for EchoAdapter {
    fn platform(&self) -> PlatformId {
        PlatformId::new("echo")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ack_deadline: Duration::from_secs(3),
            followup_window: None,
            followup_uses: None,
            max_message_chars: MAX_MESSAGE_CHARS,
            markup: Markup::Plain,
            buttons: false,
            message_edits: false,
            threads: false,
            ephemeral: false,
            bot_api: false,
        }
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route {
            path: "/echo/commands".into(),
            kind: RouteKind::Commands,
        }]
    }

    fn inbound(&self, _kind: RouteKind, request: &InboundRequest) -> Result<Inbound, InboundError> {
        // 1. Verify first, over the raw request; say why in the error (it is logged, never sent).
        let given = request
            .header("x-echo-token")
            .ok_or_else(|| InboundError::Unauthorized("no X-Echo-Token header".into()))?;
        if !self.token_ok(given) {
            return Err(InboundError::Unauthorized("wrong X-Echo-Token".into()));
        }
        // 2. Then parse. Unknown fields are ignored: platforms add fields over time.
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|e| InboundError::BadRequest(format!("the body is not JSON: {e}")))?;
        // A platform's health probe is answered without doing any work.
        if body.get("ping").is_some() {
            return Ok(Inbound::Respond(HttpReply::json(&json!({"pong": true}))));
        }
        let platform = self.platform();
        let channel = ChannelId::new(field(&body, "channel")?);
        let user = UserId::new(field(&body, "user")?);
        Ok(Inbound::Command(Box::new(ChatCommand {
            platform: platform.clone(),
            request_id: body.get("id").and_then(Value::as_str).map(str::to_owned),
            team: None,
            channel: channel.clone(),
            channel_name: None,
            user: user.clone(),
            user_name: body
                .get("user_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            slash_command: field(&body, "command")?.to_owned(),
            // The command text stays verbatim: it becomes CHAT_INPUT.
            text: body
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            reply_to: ReplyTarget {
                platform,
                response_url: None,
                channel,
                user,
                extra: serde_json::Map::new(),
            },
            received_at: self.clock.now(),
            via_button: false,
        })))
    }

    fn ack(&self, _command: &ChatCommand, ack: &Reply) -> HttpReply {
        HttpReply::json(&self.render(ack))
    }

    fn render(&self, reply: &Reply) -> Value {
        // Plain text needs no escaping; a Markdown platform would escape here.
        let mut text = reply.plain_summary();
        if let Some(output) = &reply.output {
            let budget = MAX_MESSAGE_CHARS.saturating_sub(text.chars().count() + 80);
            let fitted = fit_output(output, budget, |_| 1);
            if let Some(note) = fitted.note {
                text.push('\n');
                text.push_str(&note);
            }
            text.push('\n');
            text.push_str(fitted.kept.unwrap_or(NOTHING_PRINTED));
        }
        json!({
            "text": text,
            "visible_to": match reply.visibility {
                Visibility::Ephemeral => "user",
                Visibility::InChannel => "channel",
            },
        })
    }

    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            if via == Via::BotApi {
                // Permanent: retrying cannot create a bot. Network errors and 5xx would be
                // `DeliveryError::transient`, other statuses `DeliveryError::from_status`.
                return Err(DeliveryError::permanent("echo has no bot API"));
            }
            let message = self.render(reply);
            self.delivered
                .lock()
                .map_err(|_| DeliveryError::permanent("the delivered list is poisoned"))?
                .push((target.clone(), message));
            Ok(())
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let echo = Arc::new(EchoAdapter::new("s3cret", Arc::new(SystemClock)));
    // The server registers every configured platform the same way.
    let mut adapters = Adapters::new();
    adapters.register(echo.clone());
    let platform = PlatformId::new("echo");
    let adapter = adapters
        .get(&platform)
        .ok_or_else(|| anyhow::anyhow!("echo is not registered"))?;

    // What the web layer does with `POST /echo/commands`: raw bytes and headers in.
    let request = InboundRequest {
        query: String::new(),
        headers: vec![("x-echo-token".into(), "s3cret".into())],
        body: br#"{"id": "r1", "user": "U1", "channel": "C1", "command": "/demo",
                   "text": "run hello-world  a b"}"#
            .to_vec(),
    };
    let Inbound::Command(command) = adapter.inbound(RouteKind::Commands, &request)? else {
        anyhow::bail!("expected a command");
    };
    println!(
        "command: {} {:?} from {} in {}",
        command.slash_command, command.text, command.user, command.channel
    );

    // The pipeline answers with an ack reply; the adapter shapes the HTTP answer.
    let ack = Reply::new(
        Visibility::InChannel,
        Tone::Neutral,
        vec![
            Inline::Text("Running ".into()),
            Inline::Strong("hello-world".into()),
        ],
    );
    let http = adapter.ack(&command, &ack);
    println!(
        "ack: HTTP {} {}",
        http.status,
        String::from_utf8_lossy(&http.body)
    );

    // Later the watcher delivers the job's reply; long output keeps its end.
    let mut reply = Reply::new(
        Visibility::InChannel,
        Tone::Success,
        vec![
            Inline::Mention {
                id: command.user.clone(),
                name: None,
            },
            Inline::Text(": hello-world succeeded".into()),
        ],
    );
    reply.output = Some(OutputBlock {
        text: (1..=40).map(|i| format!("line {i}\n")).collect(),
        omitted_bytes: 0,
    });
    adapter
        .deliver(&command.reply_to, &reply, Via::ResponseUrl)
        .await?;
    for (target, message) in echo
        .delivered
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
    {
        println!("delivered to {}:\n{}", target.channel, message["text"]);
    }

    // A request without the token is refused before anything is read.
    let forged = InboundRequest {
        headers: Vec::new(),
        ..request
    };
    let refused = adapter.inbound(RouteKind::Commands, &forged);
    anyhow::ensure!(matches!(refused, Err(InboundError::Unauthorized(_))));
    println!(
        "forged request: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(())
}
