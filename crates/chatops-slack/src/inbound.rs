//! The request side: slash-command forms and `block_actions` payloads turned into
//! [`ChatCommand`]s. Verification happens before any of this (see [`crate::SlackAdapter`]).
//!
//! Slash commands: <https://api.slack.com/interactivity/slash-commands>.
//! Interactivity: <https://api.slack.com/reference/interaction-payloads/block-actions>.

use crate::error::SlackError;
use chatops_core::{ChannelId, ChatCommand, HttpReply, Inbound, PlatformId, ReplyTarget, UserId};
use serde::Deserialize;
use std::time::SystemTime;

/// The platform name (`CHAT_PLATFORM`, `members` key, route prefix).
pub const PLATFORM: &str = "slack";

/// The fields of a slash-command form that chatops reads; Slack sends more (token, team_domain,
/// enterprise_id, api_app_id, ...) and adds fields over time, so unknown ones are ignored.
#[derive(Deserialize, Default, Debug)]
struct CommandForm {
    ssl_check: Option<String>,
    team_id: Option<String>,
    channel_id: Option<String>,
    channel_name: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    command: Option<String>,
    text: Option<String>,
    response_url: Option<String>,
    trigger_id: Option<String>,
}

fn decode_form<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, SlackError> {
    // serde_urlencoded decodes `+` and `%20` alike to a space, as HTML forms define.
    serde_urlencoded::from_bytes(body)
        .map_err(|e| SlackError::Malformed(format!("the body is not a valid form: {e}")))
}

fn required(value: Option<String>, field: &str) -> Result<String, SlackError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SlackError::Malformed(format!("the `{field}` field is missing")))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Whether `body` is Slack's `ssl_check=1` probe (sent when a command URL is saved).
pub(crate) fn is_ssl_check(body: &[u8]) -> bool {
    decode_form::<CommandForm>(body)
        .map(|f| f.ssl_check.as_deref() == Some("1"))
        .unwrap_or(false)
}

/// Parses a verified `POST /slack/commands` body.
pub(crate) fn parse_command(body: &[u8], now: SystemTime) -> Result<Inbound, SlackError> {
    let form: CommandForm = decode_form(body)?;
    if form.ssl_check.as_deref() == Some("1") {
        return Ok(Inbound::Respond(HttpReply::empty()));
    }
    let command = required(form.command, "command")?;
    let channel = ChannelId::new(required(form.channel_id, "channel_id")?);
    let user = UserId::new(required(form.user_id, "user_id")?);
    let platform = PlatformId::new(PLATFORM);
    let reply_to = ReplyTarget {
        platform: platform.clone(),
        response_url: non_empty(form.response_url),
        channel: channel.clone(),
        user: user.clone(),
        extra: serde_json::Map::new(),
    };
    Ok(Inbound::Command(Box::new(ChatCommand {
        platform,
        request_id: non_empty(form.trigger_id),
        team: non_empty(form.team_id),
        channel,
        channel_name: non_empty(form.channel_name),
        user,
        user_name: non_empty(form.user_name),
        slash_command: command.trim().to_owned(),
        // Verbatim: the grammar keeps CHAT_INPUT exactly as typed.
        text: form.text.unwrap_or_default(),
        reply_to,
        received_at: now,
        via_button: false,
    })))
}

#[derive(Deserialize, Debug)]
struct ActionForm {
    payload: Option<String>,
}

#[derive(Deserialize, Debug)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<Named>,
    team: Option<Named>,
    channel: Option<Named>,
    container: Option<Container>,
    response_url: Option<String>,
    trigger_id: Option<String>,
    #[serde(default)]
    actions: Vec<ActionItem>,
}

#[derive(Deserialize, Debug)]
struct Named {
    id: Option<String>,
    /// Users have `username` (the handle) and `name`; channels and teams only `name`.
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Debug)]
struct Container {
    channel_id: Option<String>,
    message_ts: Option<String>,
    thread_ts: Option<String>,
}

#[derive(Deserialize, Debug)]
struct ActionItem {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

/// Splits a button's value (`/demo play 42`) into the slash command and its text.
fn split_command_line(value: &str) -> Result<(String, String), SlackError> {
    let line = value.trim_start();
    if !line.starts_with('/') {
        return Err(SlackError::Malformed(format!(
            "the button value `{}` is not a command line (`/project subcommand`)",
            line.chars().take(80).collect::<String>()
        )));
    }
    let (command, rest) = match line.find(char::is_whitespace) {
        Some(i) => line.split_at(i),
        None => (line, ""),
    };
    Ok((command.to_owned(), rest.trim_start().to_owned()))
}

/// Parses a verified `POST /slack/actions` body (`payload=<JSON>`). Interactions that are not
/// a click on one of our buttons get an empty 200: Slack shows an error for anything else, and
/// there is nothing for chatops to do.
pub(crate) fn parse_action(body: &[u8], now: SystemTime) -> Result<Inbound, SlackError> {
    let form: ActionForm = decode_form(body)?;
    let payload = required(form.payload, "payload")?;
    let interaction: Interaction = serde_json::from_str(&payload)
        .map_err(|e| SlackError::Malformed(format!("the payload is not valid JSON: {e}")))?;
    if interaction.kind != "block_actions" {
        return Ok(Inbound::Respond(HttpReply::empty()));
    }
    let Some(value) = interaction
        .actions
        .into_iter()
        .filter(|a| a.kind.as_deref().is_none_or(|k| k == "button"))
        .find_map(|a| a.value)
    else {
        return Ok(Inbound::Respond(HttpReply::empty()));
    };
    let (slash_command, text) = split_command_line(&value)?;
    let user_named = interaction.user;
    let user = UserId::new(required(
        user_named.as_ref().and_then(|u| u.id.clone()),
        "user.id",
    )?);
    // A click in a message has both; `container` is the documented one for message buttons.
    let channel_named = interaction.channel;
    let container = interaction.container;
    let channel = ChannelId::new(required(
        channel_named
            .as_ref()
            .and_then(|c| c.id.clone())
            .or_else(|| container.as_ref().and_then(|c| c.channel_id.clone())),
        "channel.id",
    )?);
    let mut extra = serde_json::Map::new();
    // The clicked message and its thread, so a reply can be threaded or the message updated.
    if let Some(c) = &container {
        if let Some(ts) = non_empty(c.message_ts.clone()) {
            extra.insert("message_ts".into(), ts.into());
        }
        if let Some(ts) = non_empty(c.thread_ts.clone()) {
            extra.insert("thread_ts".into(), ts.into());
        }
    }
    let platform = PlatformId::new(PLATFORM);
    let reply_to = ReplyTarget {
        platform: platform.clone(),
        response_url: non_empty(interaction.response_url),
        channel: channel.clone(),
        user: user.clone(),
        extra,
    };
    Ok(Inbound::Command(Box::new(ChatCommand {
        platform,
        request_id: non_empty(interaction.trigger_id),
        team: interaction.team.and_then(|t| non_empty(t.id)),
        channel,
        channel_name: channel_named.and_then(|c| non_empty(c.name)),
        user,
        user_name: user_named.and_then(|u| non_empty(u.username).or_else(|| non_empty(u.name))),
        slash_command,
        text,
        reply_to,
        received_at: now,
        via_button: true,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SLASH: &[u8] = include_bytes!("../tests/fixtures/slash_command.txt");
    const BLOCK_ACTIONS: &str = include_str!("../tests/fixtures/block_actions.json");

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn command(inbound: Inbound) -> Result<ChatCommand, String> {
        match inbound {
            Inbound::Command(c) => Ok(*c),
            Inbound::Respond(r) => Err(format!("expected a command, got {r:?}")),
        }
    }

    fn action_body(payload: &str) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", payload)])
            .unwrap_or_default()
            .into_bytes()
    }

    #[test]
    fn slash_command_fixture_parses() -> Result<(), Box<dyn std::error::Error>> {
        let cmd = command(parse_command(SLASH, now())?)?;
        assert_eq!(cmd.platform.as_str(), "slack");
        assert_eq!(cmd.slash_command, "/demo");
        // `+` and `%20` both decode to a space.
        assert_eq!(cmd.text, "run deploy staging now");
        assert_eq!(cmd.user.as_str(), "U2147483697");
        assert_eq!(cmd.user_name.as_deref(), Some("Steve"));
        assert_eq!(cmd.channel.as_str(), "C2147483705");
        assert_eq!(cmd.channel_name.as_deref(), Some("test"));
        assert_eq!(cmd.team.as_deref(), Some("T0001"));
        assert_eq!(
            cmd.request_id.as_deref(),
            Some("13345224609.738474920.8088930838d88f008e0")
        );
        assert_eq!(
            cmd.reply_to.response_url.as_deref(),
            Some("https://hooks.slack.com/commands/1234/5678")
        );
        assert_eq!(cmd.reply_to.channel, cmd.channel);
        assert_eq!(cmd.reply_to.user, cmd.user);
        assert!(cmd.reply_to.extra.is_empty());
        assert_eq!(cmd.received_at, now());
        assert!(!cmd.via_button);
        Ok(())
    }

    #[test]
    fn text_is_kept_verbatim_with_newlines_and_spaces() -> Result<(), Box<dyn std::error::Error>> {
        let body = b"command=%2Fdemo&user_id=U1&channel_id=C1&text=run+deploy+%20a%0A++b%26c%3D1+";
        let cmd = command(parse_command(body, now())?)?;
        assert_eq!(cmd.text, "run deploy  a\n  b&c=1 ");
        Ok(())
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_ones_may_be_absent(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let body = b"brand_new_field=1&command=%2Fdemo&user_id=U1&channel_id=C1&is_enterprise_install=false";
        let cmd = command(parse_command(body, now())?)?;
        assert_eq!(cmd.text, "");
        assert_eq!(cmd.request_id, None);
        assert_eq!(cmd.reply_to.response_url, None);
        Ok(())
    }

    #[test]
    fn missing_required_fields_are_malformed() {
        for (body, field) in [
            (&b"user_id=U1&channel_id=C1&text=help"[..], "command"),
            (b"command=%2Fdemo&channel_id=C1", "user_id"),
            (b"command=%2Fdemo&user_id=U1&channel_id=", "channel_id"),
        ] {
            match parse_command(body, now()) {
                Err(SlackError::Malformed(msg)) => assert!(msg.contains(field), "{msg}"),
                other => panic!("expected Malformed for {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn ssl_check_is_answered_empty() -> Result<(), SlackError> {
        let body = b"ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO";
        assert!(is_ssl_check(body));
        assert!(!is_ssl_check(SLASH));
        match parse_command(body, now())? {
            Inbound::Respond(reply) => assert_eq!(reply, HttpReply::empty()),
            Inbound::Command(c) => panic!("ssl_check made a command: {c:?}"),
        }
        Ok(())
    }

    #[test]
    fn block_actions_fixture_becomes_a_button_command() -> Result<(), Box<dyn std::error::Error>> {
        let cmd = command(parse_action(&action_body(BLOCK_ACTIONS), now())?)?;
        assert!(cmd.via_button);
        assert_eq!(cmd.slash_command, "/demo");
        assert_eq!(cmd.text, "play 42");
        assert_eq!(cmd.user.as_str(), "U2147483697");
        assert_eq!(cmd.user_name.as_deref(), Some("steve"));
        assert_eq!(cmd.channel.as_str(), "C2147483705");
        assert_eq!(cmd.team.as_deref(), Some("T0001"));
        assert_eq!(
            cmd.request_id.as_deref(),
            Some("12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3")
        );
        assert_eq!(
            cmd.reply_to.response_url.as_deref(),
            Some("https://hooks.slack.com/actions/T0001/548261231/TaNSJcq47hTnJ0ye7kuQ6d1E")
        );
        assert_eq!(
            cmd.reply_to.extra.get("message_ts"),
            Some(&serde_json::Value::from("1548261231.000200"))
        );
        Ok(())
    }

    #[test]
    fn action_channel_falls_back_to_the_container() -> Result<(), Box<dyn std::error::Error>> {
        let payload = r#"{"type":"block_actions","user":{"id":"U9"},
            "container":{"type":"message","channel_id":"C9"},
            "actions":[{"type":"button","value":"/ops   cancel 7"}]}"#;
        let cmd = command(parse_action(&action_body(payload), now())?)?;
        assert_eq!(cmd.channel.as_str(), "C9");
        assert_eq!(cmd.slash_command, "/ops");
        assert_eq!(cmd.text, "cancel 7");
        Ok(())
    }

    #[test]
    fn other_interactions_get_an_empty_ack() -> Result<(), SlackError> {
        for payload in [
            r#"{"type":"view_closed","user":{"id":"U1"}}"#,
            r#"{"type":"block_actions","user":{"id":"U1"},"channel":{"id":"C1"},"actions":[]}"#,
        ] {
            assert!(matches!(
                parse_action(&action_body(payload), now())?,
                Inbound::Respond(_)
            ));
        }
        Ok(())
    }

    #[test]
    fn broken_action_payloads_are_malformed() {
        let cases: [&[u8]; 4] = [
            b"nothing=here",
            b"payload=%7Bnot+json",
            // A button whose value is not a command line.
            &action_body(
                r#"{"type":"block_actions","user":{"id":"U1"},"channel":{"id":"C1"},
                "actions":[{"type":"button","value":"play 42"}]}"#,
            ),
            // No user.
            &action_body(
                r#"{"type":"block_actions","channel":{"id":"C1"},
                "actions":[{"type":"button","value":"/demo play 42"}]}"#,
            ),
        ];
        for body in cases {
            assert!(
                matches!(parse_action(body, now()), Err(SlackError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
