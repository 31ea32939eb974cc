//! What the fuzz targets share: one adapter per platform, built once, with a fixed clock and
//! fixed credentials, so that a target can sign each input as the platform would and reach
//! the parsing behind verification.
//!
//! The adapters are the real ones (`ChatAdapter::inbound`, `render`): the targets exercise
//! exactly what the web layer calls with a request's bytes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use chatops_core::adapter::FixedClock;
use chatops_core::Clock;
use chatops_discord::{DiscordAdapter, DiscordConfig};
use chatops_mattermost::{MattermostAdapter, MattermostConfig};
use chatops_slack::{SlackAdapter, SlackConfig};
use ed25519_dalek::{Signer, SigningKey};

/// The time every adapter believes it is (and every signature is made at).
pub const NOW_SECS: u64 = 1_760_000_000;
/// The Slack signing secret the targets sign with.
pub const SLACK_SECRET: &str = "fuzz-signing-secret-0123456789abcdef";
/// The Mattermost command token the targets send.
pub const MATTERMOST_TOKEN: &str = "fuzztoken1234567890abcdefg";
/// The Discord application the targets' interactions are for.
pub const DISCORD_APPLICATION: &str = "123456789012345678";

fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock(
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS),
    ))
}

fn http() -> reqwest::Client {
    // Never used to send anything: the targets do not deliver.
    reqwest::Client::new()
}

/// The Slack adapter, built once.
pub fn slack() -> &'static SlackAdapter {
    static ADAPTER: OnceLock<SlackAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| SlackAdapter::new(SlackConfig::new(SLACK_SECRET), clock(), http()))
}

/// The Mattermost adapter, built once.
pub fn mattermost() -> &'static MattermostAdapter {
    static ADAPTER: OnceLock<MattermostAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let config = MattermostConfig::new("https://chat.example.com", MATTERMOST_TOKEN);
        MattermostAdapter::new(config, clock(), http())
    })
}

/// The fixed Ed25519 key Discord interactions are signed with here.
pub fn discord_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[7u8; 32]))
}

/// The Discord adapter, built once, trusting [`discord_key`].
pub fn discord() -> &'static DiscordAdapter {
    static ADAPTER: OnceLock<DiscordAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let public = hex::encode(discord_key().verifying_key().to_bytes());
        let config = DiscordConfig::new(public, DISCORD_APPLICATION);
        match DiscordAdapter::new(config, clock(), http()) {
            Ok(adapter) => adapter,
            // A fixed, valid key: this cannot happen, and a fuzz harness may stop loudly.
            Err(e) => panic!("the fuzz key is refused: {e}"),
        }
    })
}

/// Discord's signature headers for `body`: Ed25519 over timestamp + body, hex.
pub fn discord_headers(body: &[u8]) -> Vec<(String, String)> {
    let timestamp = NOW_SECS.to_string();
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    let signature = hex::encode(discord_key().sign(&message).to_bytes());
    vec![
        ("x-signature-ed25519".into(), signature),
        ("x-signature-timestamp".into(), timestamp),
        ("content-type".into(), "application/json".into()),
    ]
}

/// Slack's signature headers for `body` (v0 HMAC-SHA256 over `v0:TS:BODY`).
pub fn slack_headers(body: &[u8]) -> Vec<(String, String)> {
    let timestamp = NOW_SECS.to_string();
    let signature = chatops_slack::sign(SLACK_SECRET, &timestamp, body);
    vec![
        (chatops_slack::signature::SIGNATURE_HEADER.into(), signature),
        (chatops_slack::signature::TIMESTAMP_HEADER.into(), timestamp),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ),
    ]
}
