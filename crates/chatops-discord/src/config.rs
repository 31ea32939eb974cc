//! The `discord:` section of the config file (contract §2).

use crate::error::DiscordError;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

/// The `discord:` section of the config file. Omitting the section turns Discord off.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key, hex (Developer Portal → General Information);
    /// every interaction's `X-Signature-Ed25519` is checked against it.
    pub public_key: String,
    /// The application id (a snowflake, quoted so YAML keeps it a string); follow-ups go to
    /// `{api_url}/webhooks/{application_id}/{interaction token}`.
    pub application_id: String,
    /// Base URL of Discord's HTTP API; tests point it at a local fake.
    #[serde(default = "default_api_url")]
    pub api_url: String,
}

impl DiscordConfig {
    /// A config with every field given and the default API URL.
    pub fn new(public_key: impl Into<String>, application_id: impl Into<String>) -> DiscordConfig {
        DiscordConfig {
            public_key: public_key.into(),
            application_id: application_id.into(),
            api_url: default_api_url(),
        }
    }

    /// The public key, parsed. Fails with a message saying what to fix.
    pub fn verifying_key(&self) -> Result<VerifyingKey, DiscordError> {
        let bad = || {
            DiscordError::Config(
                "discord.public_key is not a 64-hex-digit Ed25519 public key: copy the \
                 application's Public Key from the Developer Portal (General Information)"
                    .into(),
            )
        };
        let bytes: [u8; 32] = hex::decode(self.public_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
    }

    /// Checks what serde cannot; the config loader calls this so that a bad section is reported
    /// at start, not at the first interaction.
    pub fn validate(&self) -> Result<(), DiscordError> {
        self.verifying_key()?;
        let id = self.application_id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(DiscordError::Config(format!(
                "discord.application_id `{id}` is not a snowflake: copy the Application ID from \
                 the Developer Portal and quote it in YAML"
            )));
        }
        let usable = reqwest::Url::parse(&self.api_url)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .unwrap_or(false);
        if !usable {
            return Err(DiscordError::Config(format!(
                "discord.api_url `{}` is not an http(s) URL: use https://discord.com/api/v10",
                self.api_url
            )));
        }
        Ok(())
    }

    /// `api_url` without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    /// The host (with its port when it has one) follow-ups may be posted to: `api_url`'s.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let Ok(parsed) = reqwest::Url::parse(&self.api_url) else {
            return Vec::new();
        };
        match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => vec![format!("{host}:{port}")],
            (Some(host), None) => vec![host.to_owned()],
            _ => Vec::new(),
        }
    }
}

fn default_api_url() -> String {
    "https://discord.com/api/v10".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 test 1 public key: a valid curve point.
    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn parses_and_validates() -> Result<(), serde_json::Error> {
        let config: DiscordConfig = serde_json::from_str(&format!(
            r#"{{"public_key": "{KEY}", "application_id": "1100000000000000001"}}"#
        ))?;
        assert_eq!(config.api_url, "https://discord.com/api/v10");
        assert_eq!(config.allowed_hosts(), vec!["discord.com"]);
        assert!(config.validate().is_ok());
        Ok(())
    }

    #[test]
    fn bad_values_are_named() {
        let bad_key = DiscordConfig::new("abc", "1");
        assert!(
            matches!(bad_key.validate(), Err(DiscordError::Config(m)) if m.contains("public_key"))
        );
        let bad_id = DiscordConfig::new(KEY, "my-app");
        assert!(
            matches!(bad_id.validate(), Err(DiscordError::Config(m)) if m.contains("application_id"))
        );
        let mut bad_url = DiscordConfig::new(KEY, "1");
        bad_url.api_url = "discord.com".into();
        assert!(
            matches!(bad_url.validate(), Err(DiscordError::Config(m)) if m.contains("api_url"))
        );
        let unknown: Result<DiscordConfig, _> =
            serde_json::from_str(r#"{"public_key": "k", "application_id": "1", "bot_token": "x"}"#);
        assert!(unknown.is_err());
    }
}
