//! The request side: a verified interaction turned into a [`ChatCommand`] (application
//! commands and button clicks) or answered directly (PING, autocomplete).
//! <https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object>

use crate::error::DiscordError;
use chatops_core::{ChannelId, ChatCommand, HttpReply, Inbound, PlatformId, ReplyTarget, UserId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::SystemTime;

/// The platform name (`CHAT_PLATFORM`, `members` key, route prefix).
pub const PLATFORM: &str = "discord";
/// The string option that carries the command text.
pub const TEXT_OPTION: &str = "text";

const PING: u8 = 1;
const APPLICATION_COMMAND: u8 = 2;
const MESSAGE_COMPONENT: u8 = 3;
const AUTOCOMPLETE: u8 = 4;
const STRING_OPTION: u8 = 3;

#[derive(Deserialize, Debug)]
struct Interaction {
    #[serde(rename = "type")]
    kind: u8,
    id: Option<String>,
    application_id: Option<String>,
    token: Option<String>,
    guild_id: Option<String>,
    channel_id: Option<String>,
    channel: Option<Channel>,
    member: Option<Member>,
    user: Option<User>,
    data: Option<Data>,
    message: Option<Message>,
}

#[derive(Deserialize, Debug)]
struct Channel {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Debug)]
struct Member {
    user: Option<User>,
}

#[derive(Deserialize, Debug)]
struct User {
    id: String,
    username: Option<String>,
}

#[derive(Deserialize, Debug)]
struct Message {
    id: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
struct Data {
    name: Option<String>,
    #[serde(default)]
    options: Vec<CommandOption>,
    custom_id: Option<String>,
}

#[derive(Deserialize, Debug)]
struct CommandOption {
    name: String,
    #[serde(rename = "type")]
    kind: u8,
    value: Option<Value>,
    #[serde(default)]
    options: Vec<CommandOption>,
}

/// The `text` string option, looked for through subcommand groups too.
fn text_option(options: &[CommandOption]) -> Option<String> {
    options.iter().find_map(|o| {
        if o.name == TEXT_OPTION && o.kind == STRING_OPTION {
            o.value.as_ref().and_then(Value::as_str).map(str::to_owned)
        } else {
            text_option(&o.options)
        }
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The longest interaction token accepted. Discord's are a couple of hundred characters.
const TOKEN_MAX: usize = 1024;

/// Whether `token` looks like an interaction token Discord issues: URL-safe characters only.
fn is_token(token: &str) -> bool {
    (1..=TOKEN_MAX).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits a button's `custom_id` (`/demo play 42`) into the slash command and its text.
fn split_command_line(value: &str) -> Result<(String, String), DiscordError> {
    let line = value.trim_start();
    if !line.starts_with('/') {
        return Err(DiscordError::Malformed(
            "the button's custom_id is not a command line".into(),
        ));
    }
    Ok(match line.find(char::is_whitespace) {
        Some(i) => (line[..i].to_owned(), line[i..].trim_start().to_owned()),
        None => (line.to_owned(), String::new()),
    })
}

/// Parses a verified interaction body. `followup_base` is `{api_url}/webhooks/{application_id}`.
pub(crate) fn parse(
    body: &[u8],
    application_id: &str,
    followup_base: &str,
    now: SystemTime,
) -> Result<Inbound, DiscordError> {
    let interaction: Interaction = serde_json::from_slice(body)
        .map_err(|e| DiscordError::Malformed(format!("the body is not an interaction: {e}")))?;
    if let Some(app) = non_empty(interaction.application_id.clone()) {
        if app != application_id || !app.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DiscordError::WrongApplication(app));
        }
    }
    let (slash_command, text, via_button) = match interaction.kind {
        PING => return Ok(Inbound::Respond(HttpReply::json(&json!({"type": 1})))),
        // chatops registers no autocompletion; an empty list keeps Discord's UI quiet.
        AUTOCOMPLETE => {
            return Ok(Inbound::Respond(HttpReply::json(
                &json!({"type": 8, "data": {"choices": []}}),
            )))
        }
        APPLICATION_COMMAND => {
            let data = interaction.data.as_ref();
            let name = data
                .and_then(|d| non_empty(d.name.clone()))
                .ok_or_else(|| DiscordError::Malformed("the command has no name".into()))?;
            let text = data
                .and_then(|d| text_option(&d.options))
                .unwrap_or_default();
            (format!("/{}", name.trim()), text, false)
        }
        MESSAGE_COMPONENT => {
            let custom_id = interaction
                .data
                .as_ref()
                .and_then(|d| non_empty(d.custom_id.clone()))
                .ok_or_else(|| DiscordError::Malformed("the component has no custom_id".into()))?;
            let (command, text) = split_command_line(&custom_id)?;
            (command, text, true)
        }
        other => {
            return Err(DiscordError::Malformed(format!(
                "interaction type {other} is not one chatops handles"
            )))
        }
    };

    // In a guild the user is `member.user`; in a DM, `user`.
    let user = interaction
        .member
        .and_then(|m| m.user)
        .or(interaction.user)
        .ok_or_else(|| DiscordError::Malformed("the interaction names no user".into()))?;
    let channel_name = interaction
        .channel
        .as_ref()
        .and_then(|c| non_empty(c.name.clone()));
    let channel = non_empty(interaction.channel_id)
        .or_else(|| interaction.channel.and_then(|c| non_empty(c.id)))
        .ok_or_else(|| DiscordError::Malformed("the interaction names no channel".into()))?;
    let token = non_empty(interaction.token)
        .ok_or_else(|| DiscordError::Malformed("the interaction has no token".into()))?;
    // The token becomes a path segment of the follow-up URL: only characters Discord's tokens
    // use, so that no `/`, `?`, `..` or `%` can steer the post elsewhere on the API host.
    if !is_token(&token) {
        return Err(DiscordError::Malformed(format!(
            "the interaction token is not one Discord issues (1 to {TOKEN_MAX} of A-Z a-z 0-9 . _ -)"
        )));
    }

    let platform = PlatformId::new(PLATFORM);
    let channel = ChannelId::new(channel);
    let user_id = UserId::new(user.id);
    let mut extra = serde_json::Map::new();
    if let Some(id) = non_empty(interaction.id.clone()) {
        extra.insert("interaction_id".into(), id.into());
    }
    if let Some(id) = interaction.message.and_then(|m| non_empty(m.id)) {
        extra.insert("message_id".into(), id.into());
    }
    Ok(Inbound::Command(Box::new(ChatCommand {
        platform: platform.clone(),
        request_id: non_empty(interaction.id),
        team: non_empty(interaction.guild_id),
        channel: channel.clone(),
        channel_name,
        user: user_id.clone(),
        user_name: non_empty(user.username),
        slash_command,
        text,
        reply_to: ReplyTarget {
            platform,
            response_url: Some(format!("{followup_base}/{token}")),
            channel,
            user: user_id,
            extra,
        },
        received_at: now,
        via_button,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const APP: &str = "1100000000000000001";
    const BASE: &str = "https://discord.com/api/v10/webhooks/1100000000000000001";
    const GUILD: &[u8] = include_bytes!("../tests/fixtures/guild_command.json");
    const DM: &[u8] = include_bytes!("../tests/fixtures/dm_command.json");
    const BUTTON: &[u8] = include_bytes!("../tests/fixtures/button_click.json");

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn command(body: &[u8]) -> Result<ChatCommand, String> {
        match parse(body, APP, BASE, now()) {
            Ok(Inbound::Command(c)) => Ok(*c),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn ping_is_answered_with_pong() -> Result<(), DiscordError> {
        match parse(
            br#"{"type":1,"id":"1","application_id":"1100000000000000001"}"#,
            APP,
            BASE,
            now(),
        )? {
            Inbound::Respond(r) => {
                assert_eq!(r.status, 200);
                assert_eq!(r.body, br#"{"type":1}"#);
            }
            other => panic!("expected a PONG, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn guild_command_uses_member_user_and_text_option() -> Result<(), String> {
        let cmd = command(GUILD)?;
        assert_eq!(cmd.platform.as_str(), "discord");
        assert_eq!(cmd.slash_command, "/demo");
        assert_eq!(cmd.text, "run deploy  staging\nnow");
        assert_eq!(cmd.user.as_str(), "80351110224678912");
        assert_eq!(cmd.user_name.as_deref(), Some("nelly"));
        assert_eq!(cmd.channel.as_str(), "1100000000000000100");
        assert_eq!(cmd.channel_name.as_deref(), Some("deploys"));
        assert_eq!(cmd.team.as_deref(), Some("80351110224678913"));
        assert_eq!(cmd.request_id.as_deref(), Some("1100000000000000400"));
        assert_eq!(
            cmd.reply_to.response_url.as_deref(),
            Some("https://discord.com/api/v10/webhooks/1100000000000000001/aW50ZXJhY3Rpb246MTEwMDAwMDAwMDAwMDAwMDQwMDpzZWNyZXQtdG9rZW4")
        );
        assert!(!cmd.via_button);
        assert_eq!(cmd.received_at, now());
        Ok(())
    }

    #[test]
    fn dm_command_uses_user_and_may_lack_text() -> Result<(), String> {
        let cmd = command(DM)?;
        assert_eq!(cmd.user.as_str(), "80351110224678912");
        assert_eq!(cmd.text, "");
        assert_eq!(cmd.team, None);
        assert_eq!(cmd.channel.as_str(), "1100000000000000500");
        Ok(())
    }

    #[test]
    fn button_click_becomes_a_button_command() -> Result<(), String> {
        let cmd = command(BUTTON)?;
        assert!(cmd.via_button);
        assert_eq!(cmd.slash_command, "/demo");
        assert_eq!(cmd.text, "play 42");
        assert_eq!(
            cmd.reply_to.extra.get("message_id"),
            Some(&Value::from("1100000000000000800"))
        );
        Ok(())
    }

    /// Issue #9 item 6: the token went into the follow-up URL unchecked.
    #[test]
    fn tokens_that_could_steer_the_follow_up_url_are_refused() -> Result<(), String> {
        let interaction = |token: &str| {
            json!({"type": 2, "id": "1", "application_id": APP, "token": token,
                   "channel_id": "2", "user": {"id": "3"}, "data": {"name": "demo"}})
            .to_string()
        };
        let long = "a".repeat(TOKEN_MAX + 1);
        for token in [
            "../../channels/1/messages",
            "tok?wait=true",
            "tok/extra",
            "tok%2F..",
            "tok#x",
            "tok en",
            "tök",
            long.as_str(),
        ] {
            match parse(interaction(token).as_bytes(), APP, BASE, now()) {
                Err(DiscordError::Malformed(m)) => assert!(m.contains("token"), "{m}"),
                other => return Err(format!("{token:?} gave {other:?}")),
            }
        }
        let fine = "aW50ZXJhY3Rpb246MTE.x_y-Z";
        let cmd = command(interaction(fine).as_bytes())?;
        assert_eq!(cmd.reply_to.response_url, Some(format!("{BASE}/{fine}")));
        // The application id must be this one's digits.
        let spoofed = interaction(fine).replace(APP, &format!("{APP}/x"));
        assert!(matches!(
            parse(spoofed.as_bytes(), APP, BASE, now()),
            Err(DiscordError::WrongApplication(_))
        ));
        Ok(())
    }

    #[test]
    fn text_option_is_found_in_subcommands() {
        let options: Vec<CommandOption> = serde_json::from_value(json!([
            {"name": "ops", "type": 1, "options": [{"name": "text", "type": 3, "value": "help"}]}
        ]))
        .unwrap_or_default();
        assert_eq!(text_option(&options).as_deref(), Some("help"));
    }

    #[test]
    fn unusable_interactions_are_malformed() {
        for body in [
            &b"not json"[..],
            br#"{"type":2,"token":"t","channel_id":"c","user":{"id":"u"},"data":{}}"#,
            br#"{"type":2,"token":"t","channel_id":"c","data":{"name":"demo"}}"#,
            br#"{"type":2,"channel_id":"c","user":{"id":"u"},"data":{"name":"demo"}}"#,
            br#"{"type":3,"token":"t","channel_id":"c","user":{"id":"u"},"data":{"custom_id":"play 1"}}"#,
            br#"{"type":5,"token":"t"}"#,
        ] {
            assert!(
                matches!(parse(body, APP, BASE, now()), Err(DiscordError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse(br#"{"type":1,"application_id":"999"}"#, APP, BASE, now()),
            Err(DiscordError::WrongApplication(_))
        ));
    }
}
