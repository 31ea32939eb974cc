//! Slack slash commands as Slack sends them: form fields and v0 request signing
//! (<https://api.slack.com/authentication/verifying-requests-from-slack>).
//!
//! Written here rather than borrowed from `chatops-slack`, so the bench checks the server
//! against Slack's documented scheme, not against itself.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// The slash command the bench project answers to (`projects.bench` → `/bench`).
pub const COMMAND: &str = "/bench";
/// The signing secret written into the bench config.
pub const SECRET: &str = "chatops-bench-signing-secret";
/// The user every command comes from (the project's `default_role: developer` lets it run jobs).
pub const USER: &str = "UBENCH";
/// Command `n` comes from channel `CB{n}`: a bot post (a status message, a threaded result)
/// names only its channel, so the fake platform tells commands apart by it.
pub fn channel(n: u64) -> String {
    format!("CB{n}")
}

/// The command number of a channel named by [`channel`].
pub fn command_of_channel(channel: &str) -> Option<u64> {
    channel.strip_prefix("CB")?.parse().ok()
}

/// `v0=` + hex(HMAC-SHA256(secret, `v0:{timestamp}:{body}`)): the `X-Slack-Signature` value.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the fallback to an empty
    // key keeps this total without an unwrap (and would only make the server answer 401).
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds since the Unix epoch, as Slack puts in `X-Slack-Request-Timestamp`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A signed slash-command request, ready to post to `/slack/commands`.
#[derive(Debug, Clone)]
pub struct SignedCommand {
    /// The `application/x-www-form-urlencoded` body.
    pub body: String,
    /// `X-Slack-Request-Timestamp`.
    pub timestamp: String,
    /// `X-Slack-Signature`.
    pub signature: String,
}

/// The slash command `/bench {text}` with its reply going to `response_url`; `n` makes the
/// `trigger_id` unique, as Slack's are.
pub fn command(text: &str, response_url: &str, n: u64) -> SignedCommand {
    let trigger = format!("{n}.{}.bench", unix_now());
    let channel = channel(n);
    let fields: [(&str, &str); 12] = [
        ("token", "legacy-verification-token-unused"),
        ("team_id", "TBENCH"),
        ("team_domain", "bench"),
        ("channel_id", &channel),
        ("channel_name", "bench"),
        ("user_id", USER),
        ("user_name", "bench"),
        ("command", COMMAND),
        ("text", text),
        ("api_app_id", "ABENCH"),
        ("response_url", response_url),
        ("trigger_id", &trigger),
    ];
    // Encoding a fixed list of string pairs cannot fail; an empty body would only get a 401.
    let body = serde_urlencoded::to_string(fields).unwrap_or_default();
    let timestamp = unix_now().to_string();
    let signature = sign(SECRET, &timestamp, body.as_bytes());
    SignedCommand {
        body,
        timestamp,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_slacks_documented_example() {
        // The worked example of Slack's "Verifying requests from Slack" guide.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(
                "8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn command_form_decodes_to_slacks_fields() {
        let c = command("run echo a&b=c", "http://127.0.0.1:9/reply/7", 7);
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_str(&c.body).expect("a valid form");
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("command"), Some("/bench"));
        assert_eq!(get("text"), Some("run echo a&b=c"));
        assert_eq!(get("response_url"), Some("http://127.0.0.1:9/reply/7"));
        assert_eq!(get("user_id"), Some(USER));
        assert_eq!(get("channel_id").and_then(command_of_channel), Some(7));
        assert!(get("trigger_id").is_some_and(|t| t.starts_with("7.")));
        assert_eq!(c.signature, sign(SECRET, &c.timestamp, c.body.as_bytes()));
    }

    #[test]
    fn trigger_ids_differ_per_request() {
        let a = command("run echo", "http://h/reply/1", 1);
        let b = command("run echo", "http://h/reply/2", 2);
        assert_ne!(a.body, b.body);
        assert_ne!(a.signature, b.signature);
    }
}
