//! Slack requests, signed with the configured secret so that every input reaches the parsing
//! of slash-command forms and `block_actions` payloads. The first byte picks the route and
//! whether the request is signed (unsigned ones exercise the `ssl_check` path and refusal).
#![no_main]

use chatops_core::{ChatAdapter, Inbound, InboundRequest, RouteKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let adapter = chatops_fuzz::slack();
    let kind = if selector & 1 == 0 {
        RouteKind::Commands
    } else {
        RouteKind::Actions
    };
    let headers = if selector & 2 == 0 {
        chatops_fuzz::slack_headers(body)
    } else {
        Vec::new()
    };
    let request = InboundRequest {
        query: String::new(),
        headers,
        body: body.to_vec(),
    };
    if let Ok(Inbound::Command(command)) = adapter.inbound(kind, &request) {
        // What the web layer does next with a parsed command: ack it.
        let ack = chatops_core::Reply::ephemeral(
            chatops_core::Tone::Neutral,
            vec![chatops_core::Inline::Text(command.text.clone())],
        );
        let _ = adapter.ack(&command, &ack);
    }
});
