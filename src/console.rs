//! The console adapter: `chatops run` goes through the same pipeline as a chat command, and its
//! reply arrives here instead of at a chat platform.

use chatops_core::reply::{omitted_note, tail_within};
use chatops_core::{
    BoxFuture, Capabilities, ChatAdapter, ChatCommand, DeliveryError, HttpReply, Inbound,
    InboundError, InboundRequest, Markup, PlatformId, Reply, ReplyTarget, Route, RouteKind, Via,
};
use std::time::Duration;
use tokio::sync::mpsc;

pub const PLATFORM: &str = "console";

/// Delivers replies to a channel the CLI reads.
pub struct ConsoleAdapter {
    replies: mpsc::UnboundedSender<Reply>,
}

impl ConsoleAdapter {
    pub fn new() -> (ConsoleAdapter, mpsc::UnboundedReceiver<Reply>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ConsoleAdapter { replies: tx }, rx)
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
        _target: &'a ReplyTarget,
        reply: &'a Reply,
        _via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        let sent = self.replies.send(reply.clone());
        Box::pin(async move { sent.map_err(|_| DeliveryError::permanent("the console is gone")) })
    }
}
