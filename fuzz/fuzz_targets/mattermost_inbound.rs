//! Mattermost requests with the configured command token in the `Authorization` header, so
//! every input reaches the parsing of slash-command forms (body, or query string when the
//! body is blank) and interactive-message JSON. The first byte picks the route and where the
//! input goes.
#![no_main]

use chatops_core::{ChatAdapter, Inbound, InboundRequest, RouteKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let adapter = chatops_fuzz::mattermost();
    let kind = if selector & 1 == 0 {
        RouteKind::Commands
    } else {
        RouteKind::Actions
    };
    let (query, body) = if selector & 2 == 0 {
        (String::new(), input.to_vec())
    } else {
        (String::from_utf8_lossy(input).into_owned(), Vec::new())
    };
    let request = InboundRequest {
        query,
        headers: vec![
            (
                "authorization".into(),
                format!("Token {}", chatops_fuzz::MATTERMOST_TOKEN),
            ),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body,
    };
    if let Ok(Inbound::Command(command)) = adapter.inbound(kind, &request) {
        let ack = chatops_core::Reply::ephemeral(
            chatops_core::Tone::Neutral,
            vec![chatops_core::Inline::Text(command.text.clone())],
        );
        let _ = adapter.ack(&command, &ack);
    }
});
