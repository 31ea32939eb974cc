//! The `slack:` section of the config file (contract §2).

use crate::error::SlackError;
use chatops_core::HostAllowList;
use serde::{Deserialize, Deserializer};

/// The `slack:` section of the config file. Omitting the section turns Slack off.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret (Basic Information → App Credentials); every inbound request's
    /// `X-Slack-Signature` is checked against it. Usually `${SLACK_SIGNING_SECRET}`.
    pub signing_secret: String,
    /// Optional bot token (`xoxb-…`) for `chat.postMessage`, so replies can still be posted after
    /// the 30-minute `response_url` window. An empty string (from `${SLACK_BOT_TOKEN:-}`) means
    /// none.
    #[serde(default, deserialize_with = "non_empty")]
    pub bot_token: Option<String>,
    /// Base URL of Slack's Web API; tests point it at a local fake.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Hosts (optionally `host:port`) that a command's `response_url` may point at; replies are
    /// never posted anywhere else. `https` only, on port 443 unless the entry names a port;
    /// loopback entries (`127.0.0.1:8090`, for local fakes) also accept `http`.
    #[serde(default = "default_response_url_hosts")]
    pub response_url_hosts: Vec<String>,
}

impl SlackConfig {
    /// A config with the given secret and every other field at its default.
    pub fn new(signing_secret: impl Into<String>) -> SlackConfig {
        SlackConfig {
            signing_secret: signing_secret.into(),
            bot_token: None,
            api_url: default_api_url(),
            response_url_hosts: default_response_url_hosts(),
        }
    }

    /// Checks what serde cannot: a usable secret and an absolute API URL. The config loader calls
    /// this so that a bad section is reported at start, not at the first command.
    pub fn validate(&self) -> Result<(), SlackError> {
        if self.signing_secret.trim().is_empty() {
            return Err(SlackError::Config(
                "slack.signing_secret is empty: set it to the app's signing secret \
                 (Basic Information → App Credentials), e.g. ${SLACK_SIGNING_SECRET}"
                    .into(),
            ));
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(SlackError::Config(format!(
                "slack.api_url `{}` is not an http(s) URL: use https://slack.com/api",
                self.api_url
            )));
        }
        self.allow_list()
            .map_err(|e| SlackError::Config(format!("slack.{e}")))?;
        Ok(())
    }

    /// `response_url_hosts` as an allow-list; an error names the bad entry.
    pub fn allow_list(&self) -> Result<HostAllowList, String> {
        HostAllowList::parse(&self.response_url_hosts)
    }

    /// The bot token, if one is configured.
    pub fn bot_token(&self) -> Option<&str> {
        self.bot_token.as_deref().filter(|t| !t.trim().is_empty())
    }
}

fn default_api_url() -> String {
    "https://slack.com/api".into()
}

fn default_response_url_hosts() -> Vec<String> {
    vec!["hooks.slack.com".into()]
}

/// `""` (an unset `${SLACK_BOT_TOKEN:-}`) and whitespace mean "no token".
fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SlackConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_apply() -> Result<(), serde_json::Error> {
        let config = parse(r#"{"signing_secret": "s3cret"}"#)?;
        assert_eq!(config.api_url, "https://slack.com/api");
        assert_eq!(config.response_url_hosts, vec!["hooks.slack.com"]);
        assert_eq!(config.bot_token(), None);
        assert!(config.validate().is_ok());
        Ok(())
    }

    #[test]
    fn empty_bot_token_means_none() -> Result<(), serde_json::Error> {
        let config = parse(r#"{"signing_secret": "s", "bot_token": ""}"#)?;
        assert_eq!(config.bot_token, None);
        let config = parse(r#"{"signing_secret": "s", "bot_token": "xoxb-1"}"#)?;
        assert_eq!(config.bot_token(), Some("xoxb-1"));
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse(r#"{"signing_secret": "s", "signing_secrets": "t"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn validate_rejects_empty_secret_and_bad_url() {
        assert!(SlackConfig::new("").validate().is_err());
        let mut config = SlackConfig::new("s");
        config.api_url = "slack.com/api".into();
        assert!(config.validate().is_err());
        let mut config = SlackConfig::new("s");
        config.response_url_hosts = vec!["https://hooks.slack.com".into()];
        assert!(
            matches!(config.validate(), Err(SlackError::Config(m)) if m.contains("slack.response_url_hosts"))
        );
    }
}
