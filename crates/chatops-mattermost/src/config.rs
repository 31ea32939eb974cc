//! The `mattermost:` section of the config file (contract §2).

use crate::error::MattermostError;
use chatops_core::HostAllowList;
use serde::{Deserialize, Deserializer};

/// Mattermost 5.0+ accepts posts of up to 16383 characters; older servers 4000.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 16383;
/// Below this a reply has no room left for output.
const MIN_MESSAGE_CHARS: usize = 500;

/// The `mattermost:` section of the config file. Omitting the section turns Mattermost off.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// The Mattermost server, e.g. `https://chat.example.com`; the v4 API lives under it.
    pub url: String,
    /// Slash-command tokens accepted (Integrations → Slash Commands → token), one per command.
    /// Empty entries (an unset `${VAR:-}`) are ignored.
    #[serde(deserialize_with = "tokens")]
    pub tokens: Vec<String>,
    /// Optional bot token for `POST /api/v4/posts`, so replies can still be posted after the
    /// `response_url` window (30 minutes, 5 posts). An empty string means none.
    #[serde(default, deserialize_with = "non_empty")]
    pub bot_token: Option<String>,
    /// Hosts (optionally `host:port`) that a command's `response_url` may point at; empty means
    /// the host (and port) of `url`. `https` only, on port 443 unless the entry names a port;
    /// loopback entries also accept `http`, and so does the host of an `http` `url`.
    #[serde(default)]
    pub response_url_hosts: Vec<String>,
    /// The longest post this server accepts, in characters: 16383 for Mattermost 5.0 and later,
    /// 4000 for older servers.
    #[serde(default = "default_max_message_chars")]
    pub max_message_chars: usize,
}

impl MattermostConfig {
    /// A config for `url` accepting `token`, every other field at its default.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> MattermostConfig {
        MattermostConfig {
            url: url.into(),
            tokens: vec![token.into()],
            bot_token: None,
            response_url_hosts: Vec::new(),
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
        }
    }

    /// Checks what serde cannot; the config loader calls this so that a bad section is reported
    /// at start, not at the first command.
    pub fn validate(&self) -> Result<(), MattermostError> {
        if self.base_url().is_none() {
            return Err(MattermostError::Config(format!(
                "mattermost.url `{}` is not an http(s) URL with a host: use the server's address, \
                 e.g. https://chat.example.com",
                self.url
            )));
        }
        if self.tokens.iter().all(|t| t.trim().is_empty()) {
            return Err(MattermostError::Config(
                "mattermost.tokens has no token: add the slash command's token \
                 (Integrations → Slash Commands), e.g. [\"${MATTERMOST_COMMAND_TOKEN}\"]"
                    .into(),
            ));
        }
        self.allow_list()
            .map_err(|e| MattermostError::Config(format!("mattermost.{e}")))?;
        if self.max_message_chars < MIN_MESSAGE_CHARS {
            return Err(MattermostError::Config(format!(
                "mattermost.max_message_chars is {}: use 16383 (Mattermost 5.0+) or 4000 (older)",
                self.max_message_chars
            )));
        }
        Ok(())
    }

    /// The bot token, if one is configured.
    pub fn bot_token(&self) -> Option<&str> {
        self.bot_token.as_deref().filter(|t| !t.trim().is_empty())
    }

    /// The accepted tokens, without empty entries.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + Clone {
        self.tokens
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
    }

    /// `url` without a trailing slash, if it is an http(s) URL with a host.
    pub fn base_url(&self) -> Option<&str> {
        let parsed = reqwest::Url::parse(&self.url).ok()?;
        let usable = matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some();
        usable.then(|| self.url.trim_end_matches('/'))
    }

    /// Where `response_url` replies may go: `response_url_hosts`, or else the host and port of
    /// `url`, with `http` allowed when `url` is `http` (the server the operator named).
    pub fn allow_list(&self) -> Result<HostAllowList, String> {
        if !self.response_url_hosts.is_empty() {
            return HostAllowList::parse(&self.response_url_hosts);
        }
        HostAllowList::for_base_url(&self.url).ok_or_else(|| {
            format!(
                "url `{}` has no host to allow response_urls for: set mattermost.url",
                self.url
            )
        })
    }

    /// The hosts replies may be posted to: `response_url_hosts`, or else the host of `url`
    /// (with its port when it has one).
    pub fn allowed_hosts(&self) -> Vec<String> {
        if !self.response_url_hosts.is_empty() {
            return self.response_url_hosts.clone();
        }
        let Ok(parsed) = reqwest::Url::parse(&self.url) else {
            return Vec::new();
        };
        match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => vec![format!("{host}:{port}")],
            (Some(host), None) => vec![host.to_owned()],
            _ => Vec::new(),
        }
    }
}

fn default_max_message_chars() -> usize {
    DEFAULT_MAX_MESSAGE_CHARS
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

fn tokens<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value: Vec<String> = Vec::deserialize(deserializer)?;
    Ok(value.into_iter().filter(|v| !v.trim().is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<MattermostConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_and_allowed_hosts() -> Result<(), serde_json::Error> {
        let config = parse(r#"{"url": "https://chat.example.com/", "tokens": ["t1", ""]}"#)?;
        assert_eq!(config.max_message_chars, 16383);
        assert_eq!(config.tokens, vec!["t1"]);
        assert_eq!(config.bot_token(), None);
        assert_eq!(config.allowed_hosts(), vec!["chat.example.com"]);
        assert_eq!(config.base_url(), Some("https://chat.example.com"));
        assert!(config.validate().is_ok());

        let config = parse(
            r#"{"url": "http://127.0.0.1:8065", "tokens": ["t"], "bot_token": "",
                "max_message_chars": 4000}"#,
        )?;
        assert_eq!(config.allowed_hosts(), vec!["127.0.0.1:8065"]);
        assert_eq!(config.bot_token, None);
        assert_eq!(config.max_message_chars, 4000);

        let config = parse(
            r#"{"url": "https://chat.example.com", "tokens": ["t"],
                "response_url_hosts": ["hooks.example.com"]}"#,
        )?;
        assert_eq!(config.allowed_hosts(), vec!["hooks.example.com"]);
        let bad = parse(
            r#"{"url": "https://chat.example.com", "tokens": ["t"],
                "response_url_hosts": ["https://hooks.example.com"]}"#,
        )?;
        assert!(
            matches!(bad.validate(), Err(MattermostError::Config(m)) if m.contains("mattermost.response_url_hosts"))
        );
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse(r#"{"url": "https://c.example.com", "tokens": [], "token": "x"}"#).is_err());
    }

    #[test]
    fn validate_names_the_problem() -> Result<(), serde_json::Error> {
        let no_tokens = parse(r#"{"url": "https://c.example.com", "tokens": [""]}"#)?;
        assert!(
            matches!(no_tokens.validate(), Err(MattermostError::Config(m)) if m.contains("tokens"))
        );
        let bad_url = MattermostConfig::new("chat.example.com", "t");
        assert!(matches!(bad_url.validate(), Err(MattermostError::Config(m)) if m.contains("url")));
        let mut tiny = MattermostConfig::new("https://c.example.com", "t");
        tiny.max_message_chars = 100;
        assert!(tiny.validate().is_err());
        Ok(())
    }
}
