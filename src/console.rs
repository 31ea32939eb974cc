//! The console adapter: `chatops run` goes through the same pipeline as a chat command, and its
//! reply arrives here instead of at a chat platform.
//!
//! Two sinks: the command line's own pipeline hands replies to the CLI over a channel; a
//! server relays the replies of commands the CLI handed it ([`crate::remote`]) into the store,
//! where that CLI reads them.

use chatops_core::reply::{omitted_note, tail_within};
use chatops_core::{
    BoxFuture, Capabilities, ChannelId, ChatAdapter, ChatCommand, DeliveryError, HttpReply,
    Inbound, InboundError, InboundRequest, Markup, PlatformId, Reply, ReplyTarget, Route,
    RouteKind, UserId, Via,
};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

pub const PLATFORM: &str = "console";

/// The key of [`ReplyTarget::extra`] naming the command-line request a reply answers.
pub const CLI_REQUEST: &str = "cli_request";

enum Sink {
    /// The CLI's own pipeline: the CLI reads this channel.
    Channel(mpsc::UnboundedSender<Reply>),
    /// A server: the reply goes into the store, to the request named by the target.
    Store(chatops_store::Store),
}

/// Delivers console replies to the CLI.
pub struct ConsoleAdapter {
    sink: Sink,
}

impl ConsoleAdapter {
    pub fn new() -> (ConsoleAdapter, mpsc::UnboundedReceiver<Reply>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            ConsoleAdapter {
                sink: Sink::Channel(tx),
            },
            rx,
        )
    }

    /// The server's console: replies to commands a CLI handed over are written to the store.
    pub fn relay(store: chatops_store::Store) -> ConsoleAdapter {
        ConsoleAdapter {
            sink: Sink::Store(store),
        }
    }
}

/// A command typed on the command line by `user`, to the project answering `project_command`.
pub fn command(project_command: &str, user: &str, text: String) -> ChatCommand {
    let platform = PlatformId::new(PLATFORM);
    ChatCommand {
        platform: platform.clone(),
        request_id: None,
        team: None,
        channel: ChannelId::new("console"),
        channel_name: Some("console".into()),
        user: UserId::new(user),
        user_name: Some(user.to_owned()),
        slash_command: project_command.to_owned(),
        text,
        reply_to: ReplyTarget {
            platform,
            response_url: None,
            channel: ChannelId::new("console"),
            user: UserId::new(user),
            extra: Default::default(),
        },
        received_at: SystemTime::now(),
        via_button: false,
    }
}

/// A reply as plain text: the summary, then the output, cut to 1 MiB from its end.
pub fn plain_text(reply: &Reply) -> String {
    let mut out = reply.plain_summary();
    if let Some(output) = &reply.output {
        out.push('\n');
        let (kept, omitted) = tail_within(&output.text, 1 << 20, |c| c.len_utf8());
        if let Some(note) = omitted_note(omitted, output.omitted_bytes) {
            out.push_str(&note);
            out.push('\n');
        }
        if kept.is_empty() {
            out.push_str("(the job printed nothing)");
        } else {
            out.push_str(kept);
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

impl ChatAdapter for ConsoleAdapter {
    fn platform(&self) -> PlatformId {
        PlatformId::new(PLATFORM)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ack_deadline: Duration::from_secs(3600),
            followup_window: None,
            followup_uses: None,
            max_message_chars: usize::MAX,
            markup: Markup::Plain,
            buttons: false,
            message_edits: false,
            threads: false,
            ephemeral: false,
            bot_api: false,
        }
    }

    fn routes(&self) -> Vec<Route> {
        Vec::new()
    }

    fn inbound(
        &self,
        _kind: RouteKind,
        _request: &InboundRequest,
    ) -> Result<Inbound, InboundError> {
        Err(InboundError::BadRequest(
            "the console has no HTTP side".into(),
        ))
    }

    fn ack(&self, _command: &ChatCommand, _ack: &Reply) -> HttpReply {
        HttpReply::empty()
    }

    fn render(&self, reply: &Reply) -> serde_json::Value {
        serde_json::json!({ "text": plain_text(reply) })
    }

    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        _via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        match &self.sink {
            Sink::Channel(replies) => {
                let sent = replies.send(reply.clone());
                Box::pin(async move {
                    sent.map_err(|_| DeliveryError::permanent("the console is gone"))
                })
            }
            Sink::Store(store) => {
                let request = target.extra.get(CLI_REQUEST).and_then(|v| v.as_u64());
                let text = plain_text(reply);
                Box::pin(async move {
                    // A console job whose CLI is gone (created by an earlier `chatops run`)
                    // has nobody to tell: delivered to nobody is still done.
                    let Some(id) = request else { return Ok(()) };
                    store
                        .cli_reply(chatops_store::CliRequestId(id), text)
                        .await
                        .map_err(|e| DeliveryError::permanent(e.to_string()))
                })
            }
        }
    }
}
