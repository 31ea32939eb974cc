//! Discord interactions, each signed with the fixed test key the adapter trusts, so every
//! input reaches the interaction JSON parsing (PING, application commands, components).
#![no_main]

use chatops_core::{ChatAdapter, Inbound, InboundRequest, RouteKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let adapter = chatops_fuzz::discord();
    let request = InboundRequest {
        query: String::new(),
        headers: chatops_fuzz::discord_headers(body),
        body: body.to_vec(),
    };
    if let Ok(Inbound::Command(command)) = adapter.inbound(RouteKind::Commands, &request) {
        let ack = chatops_core::Reply::ephemeral(
            chatops_core::Tone::Neutral,
            vec![chatops_core::Inline::Text(command.text.clone())],
        );
        let _ = adapter.ack(&command, &ack);
    }
});
