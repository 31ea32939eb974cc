//! The request side: slash-command token checks and forms, and interactive-button callbacks,
//! turned into [`ChatCommand`]s.
//!
//! Slash commands: <https://developers.mattermost.com/integrate/slash-commands/custom/>.
//! Buttons: <https://developers.mattermost.com/integrate/plugins/interactive-messages/>.

use crate::error::MattermostError;
use crate::render::ephemeral_answer;
use chatops_core::{
    ChannelId, ChatCommand, Inbound, InboundRequest, PlatformId, ReplyTarget, UserId,
};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The platform name (`CHAT_PLATFORM`, `members` key, route prefix).
pub const PLATFORM: &str = "mattermost";

/// A decoded form. Mattermost repeats keys for lists (`user_mentions=a&user_mentions=b`), so
/// the form is kept as pairs rather than decoded into a struct (which would refuse duplicates).
struct Form(Vec<(String, String)>);

impl Form {
    fn decode(bytes: &[u8]) -> Result<Form, MattermostError> {
        // `+` and `%20` both decode to a space.
        serde_urlencoded::from_bytes(bytes)
            .map(Form)
            .map_err(|e| MattermostError::Malformed(format!("the form does not decode: {e}")))
    }

    /// The first non-empty value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str) -> Result<&str, MattermostError> {
        self.get(key)
            .ok_or_else(|| MattermostError::Malformed(format!("the `{key}` field is missing")))
    }
}

/// Whether `candidate` is one of `tokens`, in time independent of where they differ (every
/// token is compared, none short-circuits).
fn token_matches<'a>(candidate: &str, tokens: impl Iterator<Item = &'a str>) -> bool {
    let mut matched = subtle::Choice::from(0u8);
    for token in tokens {
        matched |= candidate.as_bytes().ct_eq(token.as_bytes());
    }
    matched.into()
}

/// The token from `Authorization: Token <t>`, if the header has that form.
fn header_token(request: &InboundRequest) -> Option<&str> {
    let value = request.header("authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("token")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the command token (header and/or form field: every one present must be valid) and
/// parses the form (body, or the query string for GET-style commands).
pub(crate) fn parse_command<'a>(
    request: &InboundRequest,
    tokens: impl Iterator<Item = &'a str> + Clone,
    now: SystemTime,
) -> Result<ChatCommand, MattermostError> {
    let raw: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
        request.query.as_bytes()
    } else {
        &request.body
    };
    // A form that does not decode still gets the header checked first: an unauthenticated
    // request must be told 401, never 400.
    let form = Form::decode(raw);
    let field = form.as_ref().ok().and_then(|f| f.get("token"));
    let header = header_token(request);
    if header.is_none() && field.is_none() {
        return Err(MattermostError::MissingToken);
    }
    for candidate in [header, field].into_iter().flatten() {
        if !token_matches(candidate, tokens.clone()) {
            return Err(MattermostError::BadToken);
        }
    }
    let form = form?;

    let channel = ChannelId::new(form.required("channel_id")?);
    let user = UserId::new(form.required("user_id")?);
    let command = form.required("command")?.trim().to_owned();
    let platform = PlatformId::new(PLATFORM);
    let reply_to = ReplyTarget {
        platform: platform.clone(),
        response_url: form.get("response_url").map(str::to_owned),
        channel: channel.clone(),
        user: user.clone(),
        extra: serde_json::Map::new(),
    };
    Ok(ChatCommand {
        platform,
        request_id: form.get("trigger_id").map(str::to_owned),
        team: form.get("team_id").map(str::to_owned),
        channel,
        channel_name: form.get("channel_name").map(str::to_owned),
        user,
        user_name: form.get("user_name").map(str::to_owned),
        slash_command: command,
        // Verbatim (not `get`, which skips blank values): CHAT_INPUT is kept as typed.
        text: form
            .0
            .iter()
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        reply_to,
        received_at: now,
        via_button: false,
    })
}

type HmacSha256 = Hmac<Sha256>;

/// How long a button works after its message was rendered. Later, typing the command (the
/// message shows it) still works; the button is refused with a message saying so.
pub const BUTTON_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// What a button's signature binds. Mattermost does not sign button callbacks, so the
/// context we hand out carries an HMAC (keyed with a command token, a secret shared only with
/// Mattermost's admins) over the command line, the channel the message was posted to, and
/// when the button expires: without it anyone who can reach `/mattermost/actions` could run
/// any command line; without the channel and expiry, a context lifted from one message could
/// be replayed in another channel, forever. (The post id is not bound: it exists only after
/// the post, which would take a second request to edit the buttons in.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Binding<'a> {
    pub command: &'a str,
    pub channel: &'a str,
    /// Unix seconds.
    pub expires: u64,
}

fn action_mac(key: &str, binding: Binding<'_>) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback only keeps this total without an unwrap.
    let mut mac = HmacSha256::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(b"chatops-mattermost-action:v2:");
    // Length-prefixed, so that no two bindings encode alike.
    for field in [binding.command, binding.channel] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac.update(&binding.expires.to_be_bytes());
    mac
}

/// The signature a button's context carries (see [`Binding`]).
pub(crate) fn sign_action(key: &str, binding: Binding<'_>) -> String {
    hex::encode(action_mac(key, binding).finalize().into_bytes())
}

#[derive(Deserialize, Debug)]
struct ActionRequest {
    user_id: Option<String>,
    user_name: Option<String>,
    channel_id: Option<String>,
    channel_name: Option<String>,
    team_id: Option<String>,
    trigger_id: Option<String>,
    post_id: Option<String>,
    #[serde(default)]
    context: ActionContext,
}

#[derive(Deserialize, Debug, Default)]
struct ActionContext {
    command: Option<String>,
    channel: Option<String>,
    expires: Option<u64>,
    sig: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Parses a button callback (`POST /mattermost/actions`, JSON) whose context we signed. A
/// context not signed by us (forged, altered, or from before buttons were bound to a channel)
/// is an error (401); a genuine button clicked in another channel than its message's, or after
/// it expired, is answered with an ephemeral refusal and does nothing.
pub(crate) fn parse_action<'a>(
    body: &[u8],
    tokens: impl Iterator<Item = &'a str>,
    now: SystemTime,
) -> Result<Inbound, MattermostError> {
    let request: ActionRequest = serde_json::from_slice(body).map_err(|_| {
        // Unreadable bodies carry no valid signature either.
        MattermostError::BadActionSignature
    })?;
    let context = request.context;
    let (Some(command_line), Some(bound_channel), Some(expires), Some(sig)) = (
        context.command,
        context.channel,
        context.expires,
        context.sig,
    ) else {
        return Err(MattermostError::BadActionSignature);
    };
    let binding = Binding {
        command: &command_line,
        channel: &bound_channel,
        expires,
    };
    let digest = hex::decode(sig.trim()).map_err(|_| MattermostError::BadActionSignature)?;
    let mut valid = false;
    for key in tokens {
        // `verify_slice` compares in constant time.
        valid |= action_mac(key, binding).verify_slice(&digest).is_ok();
    }
    if !valid {
        return Err(MattermostError::BadActionSignature);
    }
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let typed = command_line.trim();
    if request.channel_id.as_deref().map(str::trim) != Some(bound_channel.as_str()) {
        tracing::warn!(
            bound = %bound_channel,
            clicked_in = request.channel_id.as_deref().unwrap_or("none"),
            "mattermost: a button's context came from another channel; refused"
        );
        return Ok(refusal(format!(
            "This button belongs to a message in another channel, so chatops did nothing. \
             Type the command here instead: `{typed}`"
        )));
    }
    if now_secs > expires {
        return Ok(refusal(format!(
            "This button has expired (buttons work for {} days), so chatops did nothing. \
             Type the command instead: `{typed}`",
            BUTTON_LIFETIME_SECS / 86_400
        )));
    }
    let channel_id = non_empty(request.channel_id)
        .ok_or_else(|| MattermostError::Malformed("the `channel_id` field is missing".into()))?;
    let user_id = non_empty(request.user_id)
        .ok_or_else(|| MattermostError::Malformed("the `user_id` field is missing".into()))?;
    let line = command_line.trim_start();
    let (slash_command, text) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    };
    if !slash_command.starts_with('/') {
        return Err(MattermostError::Malformed(
            "the button's command is not a command line".into(),
        ));
    }
    let platform = PlatformId::new(PLATFORM);
    let channel = ChannelId::new(channel_id);
    let user = UserId::new(user_id);
    let mut extra = serde_json::Map::new();
    if let Some(post) = non_empty(request.post_id) {
        extra.insert("post_id".into(), post.into());
    }
    Ok(Inbound::Command(Box::new(ChatCommand {
        platform: platform.clone(),
        request_id: non_empty(request.trigger_id),
        team: non_empty(request.team_id),
        channel: channel.clone(),
        channel_name: non_empty(request.channel_name),
        user: user.clone(),
        user_name: non_empty(request.user_name),
        slash_command: slash_command.to_owned(),
        text: text.to_owned(),
        // Button callbacks come without a response_url: replies go through the bot API.
        reply_to: ReplyTarget {
            platform,
            response_url: None,
            channel,
            user,
            extra,
        },
        received_at: now,
        via_button: true,
    })))
}

fn refusal(text: String) -> Inbound {
    Inbound::Respond(ephemeral_answer(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SLASH: &[u8] = include_bytes!("../tests/fixtures/slash_command.txt");
    const TOKEN: &str = "xr3j5x3p4pfk7rmoepd5d4w5xq";

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn tokens() -> std::array::IntoIter<&'static str, 2> {
        ["another-token", TOKEN].into_iter()
    }

    fn request(body: &[u8], authorization: Option<&str>) -> InboundRequest {
        InboundRequest {
            query: String::new(),
            headers: authorization
                .map(|a| vec![("authorization".to_owned(), a.to_owned())])
                .unwrap_or_default(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn fixture_with_header_and_field_parses() -> Result<(), MattermostError> {
        let cmd = parse_command(
            &request(SLASH, Some(&format!("Token {TOKEN}"))),
            tokens(),
            now(),
        )?;
        assert_eq!(cmd.platform.as_str(), "mattermost");
        assert_eq!(cmd.slash_command, "/demo");
        assert_eq!(cmd.text, "run deploy staging\nnow");
        assert_eq!(cmd.user.as_str(), "8ajk3h1p4jfz7c9t1s6rwhcqxo");
        assert_eq!(cmd.user_name.as_deref(), Some("alice"));
        assert_eq!(cmd.channel.as_str(), "fukgjpcbpbdd9mj6jm5yzyqwxw");
        assert_eq!(cmd.channel_name.as_deref(), Some("town-square"));
        assert_eq!(cmd.team.as_deref(), Some("zmw7w5gg1jbexkymyrkm3nsh8o"));
        assert!(cmd.request_id.is_some());
        assert_eq!(
            cmd.reply_to.response_url.as_deref(),
            Some("https://chat.example.com/hooks/commands/qbg7thg6tfr3xbx4wy9sw1rbza")
        );
        assert_eq!(cmd.received_at, now());
        assert!(!cmd.via_button);
        Ok(())
    }

    #[test]
    fn token_in_either_place_is_enough() -> Result<(), MattermostError> {
        let body = b"command=%2Fdemo&user_id=U&channel_id=C&text=help";
        parse_command(
            &request(body, Some(&format!("token {TOKEN}"))),
            tokens(),
            now(),
        )?;
        let with_field = format!("token={TOKEN}&command=%2Fdemo&user_id=U&channel_id=C");
        parse_command(&request(with_field.as_bytes(), None), tokens(), now())?;
        Ok(())
    }

    #[test]
    fn query_string_works_when_the_body_is_empty() -> Result<(), MattermostError> {
        let mut req = request(b"", None);
        req.query = format!("token={TOKEN}&command=%2Fdemo&user_id=U&channel_id=C&text=run+a%20b");
        let cmd = parse_command(&req, tokens(), now())?;
        assert_eq!(cmd.text, "run a b");
        Ok(())
    }

    #[test]
    fn wrong_or_missing_tokens_are_refused() {
        let body = b"command=%2Fdemo&user_id=U&channel_id=C";
        assert_eq!(
            parse_command(&request(body, None), tokens(), now()).err(),
            Some(MattermostError::MissingToken)
        );
        assert_eq!(
            parse_command(&request(body, Some("Token nope")), tokens(), now()).err(),
            Some(MattermostError::BadToken)
        );
        assert_eq!(
            parse_command(
                &request(body, Some(&format!("Bearer {TOKEN}"))),
                tokens(),
                now()
            )
            .err(),
            Some(MattermostError::MissingToken)
        );
        // A valid header does not excuse a wrong field, nor the other way round.
        let mixed = b"token=nope&command=%2Fdemo&user_id=U&channel_id=C";
        assert_eq!(
            parse_command(
                &request(mixed, Some(&format!("Token {TOKEN}"))),
                tokens(),
                now()
            )
            .err(),
            Some(MattermostError::BadToken)
        );
        // A prefix of a valid token is not valid.
        assert_eq!(
            parse_command(&request(body, Some("Token xr3j5")), tokens(), now()).err(),
            Some(MattermostError::BadToken)
        );
    }

    #[test]
    fn missing_fields_are_malformed_after_the_token_check() {
        for (body, field) in [
            ("command=%2Fdemo&user_id=U", "channel_id"),
            ("command=%2Fdemo&channel_id=C", "user_id"),
            ("user_id=U&channel_id=C", "command"),
        ] {
            let body = format!("token={TOKEN}&{body}");
            match parse_command(&request(body.as_bytes(), None), tokens(), now()) {
                Err(MattermostError::Malformed(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("expected Malformed for {field}, got {other:?}"),
            }
        }
    }

    /// When the test buttons expire: a day after `now()`.
    const EXPIRES: u64 = 1_700_000_000 + 86_400;

    fn action_body(command: &str, key: &str) -> Vec<u8> {
        action_in("C1", command, "C1", EXPIRES, key)
    }

    /// A click in `clicked_in` on a button signed for `bound` until `expires`.
    fn action_in(clicked_in: &str, command: &str, bound: &str, expires: u64, key: &str) -> Vec<u8> {
        let binding = Binding {
            command,
            channel: bound,
            expires,
        };
        serde_json::json!({
            "user_id": "8ajk3h1p4jfz7c9t1s6rwhcqxo",
            "user_name": "alice",
            "channel_id": clicked_in,
            "channel_name": "town-square",
            "team_id": "zmw7w5gg1jbexkymyrkm3nsh8o",
            "team_domain": "ops",
            "post_id": "pq5t1rb6xibq7yntmhbu9xb5ua",
            "trigger_id": "dHJpZ2dlcg==",
            "type": "",
            "data_source": "",
            "context": {
                "command": command,
                "channel": bound,
                "expires": expires,
                "sig": sign_action(key, binding),
            }
        })
        .to_string()
        .into_bytes()
    }

    fn clicked(body: &[u8]) -> Result<ChatCommand, String> {
        match parse_action(body, tokens(), now()) {
            Ok(Inbound::Command(c)) => Ok(*c),
            other => Err(format!("expected a command, got {other:?}")),
        }
    }

    /// The ephemeral text a click was refused with (and so caused no command).
    fn refused_with(body: &[u8]) -> Result<String, String> {
        match parse_action(body, tokens(), now()) {
            Ok(Inbound::Respond(r)) => {
                assert_eq!(r.status, 200);
                let v: serde_json::Value =
                    serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                Ok(v["ephemeral_text"].as_str().unwrap_or_default().to_owned())
            }
            other => Err(format!("expected a refusal, got {other:?}")),
        }
    }

    #[test]
    fn signed_button_callback_becomes_a_command() -> Result<(), String> {
        let body = action_body("/demo play 42", TOKEN);
        let cmd = clicked(&body)?;
        assert!(cmd.via_button);
        assert_eq!(cmd.slash_command, "/demo");
        assert_eq!(cmd.text, "play 42");
        assert_eq!(cmd.user.as_str(), "8ajk3h1p4jfz7c9t1s6rwhcqxo");
        assert_eq!(cmd.reply_to.response_url, None);
        assert_eq!(
            cmd.reply_to.extra.get("post_id"),
            Some(&serde_json::Value::from("pq5t1rb6xibq7yntmhbu9xb5ua"))
        );
        Ok(())
    }

    /// Issue #9 item 6: the signature covered only the command line.
    #[test]
    fn a_button_works_only_in_its_channel_and_until_it_expires() -> Result<(), String> {
        let elsewhere = action_in("C2", "/demo play 42", "C1", EXPIRES, TOKEN);
        let said = refused_with(&elsewhere)?;
        assert!(said.contains("another channel"), "{said}");
        assert!(said.contains("/demo play 42"), "says what to type: {said}");
        let expired = action_in("C1", "/demo play 42", "C1", 1_700_000_000 - 1, TOKEN);
        let said = refused_with(&expired)?;
        assert!(said.contains("expired"), "{said}");
        // The last second still works.
        clicked(&action_in(
            "C1",
            "/demo play 42",
            "C1",
            1_700_000_000,
            TOKEN,
        ))?;
        Ok(())
    }

    #[test]
    fn forged_button_callbacks_are_refused() {
        let wrong_key = action_body("/demo play 42", "guessed");
        let original: serde_json::Value =
            serde_json::from_slice(&action_body("/demo play 42", TOKEN)).unwrap_or_default();
        let altered = |field: &str, value: serde_json::Value| {
            let mut v = original.clone();
            v["context"][field] = value;
            v.to_string().into_bytes()
        };
        // A context moved to another channel together with the click, or given more time.
        let mut moved = original.clone();
        moved["channel_id"] = "C2".into();
        moved["context"]["channel"] = "C2".into();
        let mut unbound = original.clone();
        if let Some(context) = unbound["context"].as_object_mut() {
            context.remove("channel");
            context.remove("expires");
        }
        for body in [
            wrong_key,
            altered("command", "/demo run deploy".into()),
            altered("expires", (EXPIRES + 1).into()),
            moved.to_string().into_bytes(),
            unbound.to_string().into_bytes(),
            b"{}".to_vec(),
            b"not json".to_vec(),
        ] {
            assert_eq!(
                parse_action(&body, tokens(), now()).err(),
                Some(MattermostError::BadActionSignature),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
