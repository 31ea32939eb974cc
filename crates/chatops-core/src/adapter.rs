//! The plug-in point for chat platforms. A platform is a crate that implements [`ChatAdapter`]:
//! it verifies and parses inbound HTTP requests into [`ChatCommand`]s, renders acks and replies in
//! its dialect, and delivers replies. What differs between platforms beyond that is data:
//! [`Capabilities`].

use crate::command::{ChatCommand, ReplyTarget};
use crate::ids::PlatformId;
use crate::reply::Reply;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed, sendable future (adapters are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An inbound HTTP request as the web layer hands it over: raw bytes, so that signatures can be
/// checked over exactly what the platform sent.
#[derive(Clone, Debug, Default)]
pub struct InboundRequest {
    /// The raw query string (without `?`).
    pub query: String,
    /// Header names lower-cased; a repeated header appears once per value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl InboundRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of endpoint a route is. The web layer mounts each route an adapter declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Slash commands (and, for platforms with one endpoint, everything).
    Commands,
    /// Interactive-message callbacks (button clicks).
    Actions,
}

/// One HTTP route an adapter serves: `POST {path}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub kind: RouteKind,
}

/// A complete HTTP response, platform-shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(value: &serde_json::Value) -> HttpReply {
        HttpReply {
            status: 200,
            content_type: Some("application/json".into()),
            body: value.to_string().into_bytes(),
        }
    }

    /// `200` with no body (Slack's `ssl_check`, Slack action acks).
    pub fn empty() -> HttpReply {
        HttpReply {
            status: 200,
            content_type: None,
            body: Vec::new(),
        }
    }
}

/// What an adapter made of an inbound request.
#[derive(Debug)]
pub enum Inbound {
    /// A command for the pipeline; the web layer submits it and acks with [`ChatAdapter::ack`].
    Command(Box<ChatCommand>),
    /// Answer with this response and do nothing else (`ssl_check`, Discord's PING).
    Respond(HttpReply),
}

/// Why an inbound request was refused. Verification failures are `Unauthorized` (HTTP 401) and
/// cause no work; the reason is logged, never sent back.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("verification failed: {0}")]
    Unauthorized(String),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl InboundError {
    pub fn status(&self) -> u16 {
        match self {
            InboundError::Unauthorized(_) => 401,
            InboundError::BadRequest(_) => 400,
        }
    }
}

/// Which of a platform's reply channels a delivery uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The command's reply webhook (`response_url`, Discord's follow-up), within its window.
    ResponseUrl,
    /// The platform's bot API (`chat.postMessage`, `POST /api/v4/posts`), needs a bot token.
    BotApi,
}

/// A failed delivery, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    pub retry: Retry,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Network error or 5xx: retry with backoff.
    Backoff,
    /// 429: retry after this long (the platform's `Retry-After`).
    After(Duration),
    /// 4xx, a refused host, a missing token: retrying would not help.
    Never,
}

impl DeliveryError {
    pub fn permanent(reason: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retry: Retry::Never,
            reason: reason.into(),
        }
    }

    pub fn transient(reason: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retry: Retry::Backoff,
            reason: reason.into(),
        }
    }

    /// Classifies an HTTP status the platform answered (not 2xx) with its optional
    /// `Retry-After` seconds.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> DeliveryError {
        let snippet: String = body.chars().take(200).collect();
        let reason = format!("platform answered HTTP {status}: {snippet}");
        let retry = match status {
            429 => Retry::After(retry_after.unwrap_or(Duration::from_secs(1))),
            500..=599 | 408 => Retry::Backoff,
            _ => Retry::Never,
        };
        DeliveryError { retry, reason }
    }
}

/// The markup a platform's messages use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Markup {
    /// Slack's mrkdwn: `*bold*`, `<url|label>`, `&`, `<`, `>` escaped.
    SlackMrkdwn,
    /// CommonMark-ish Markdown (Mattermost, Discord).
    Markdown,
    /// Plain text (the console).
    Plain,
}

/// What a platform can do, as data: the core reads this instead of special-casing platforms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The ack must reach the platform within this (Slack 3 s).
    pub ack_deadline: Duration,
    /// How long the reply webhook accepts posts after the command (Slack 30 min), if limited.
    pub followup_window: Option<Duration>,
    /// How many posts the reply webhook accepts (Slack and Mattermost 5), if limited.
    pub followup_uses: Option<u32>,
    /// The longest message the platform accepts, in characters.
    pub max_message_chars: usize,
    pub markup: Markup,
    pub buttons: bool,
    pub message_edits: bool,
    pub threads: bool,
    pub ephemeral: bool,
    /// True when a bot token is configured, so replies can go out after the webhook window.
    pub bot_api: bool,
}

/// A chat platform. Implementations live in their own crates (`chatops-slack`, ...); the core
/// and the pipeline only ever see `Arc<dyn ChatAdapter>`.
pub trait ChatAdapter: Send + Sync + 'static {
    /// The platform's name (`slack`): `CHAT_PLATFORM`, the `members` key, the route prefix.
    fn platform(&self) -> PlatformId;

    fn capabilities(&self) -> Capabilities;

    /// The HTTP routes this platform posts to. Empty for adapters with no HTTP side (console).
    fn routes(&self) -> Vec<Route>;

    /// Verifies and parses one inbound request. Must not block: no I/O.
    fn inbound(&self, kind: RouteKind, request: &InboundRequest) -> Result<Inbound, InboundError>;

    /// The HTTP answer to a command, carrying `ack` (accepted, queued, or an error for the user).
    fn ack(&self, command: &ChatCommand, ack: &Reply) -> HttpReply;

    /// Renders a reply to the platform's message JSON (what `deliver` would post).
    fn render(&self, reply: &Reply) -> serde_json::Value;

    /// Posts `reply` to the channel of `target` through `via`.
    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// The adapters this server runs, by platform name.
#[derive(Clone, Default)]
pub struct Adapters {
    by_platform: HashMap<PlatformId, Arc<dyn ChatAdapter>>,
}

impl Adapters {
    pub fn new() -> Adapters {
        Adapters::default()
    }

    pub fn register(&mut self, adapter: Arc<dyn ChatAdapter>) {
        self.by_platform.insert(adapter.platform(), adapter);
    }

    pub fn get(&self, platform: &PlatformId) -> Option<&Arc<dyn ChatAdapter>> {
        self.by_platform.get(platform)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ChatAdapter>> {
        self.by_platform.values()
    }
}

/// Wall-clock time, injectable so that timestamp checks can be tested.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// Seconds since the Unix epoch.
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stuck at one instant, for tests.
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Whether `url` is an `https` (or, for local fakes, `http`) URL whose host is one of `hosts`
/// (exact, case-insensitive). Replies go only to allowed hosts: a forged `response_url` must not
/// make chatops post job output anywhere else.
pub fn url_host_allowed(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "https" | "http") {
        return false;
    }
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let with_port = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&with_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allow_list() {
        let hosts = vec!["hooks.slack.com".to_string(), "127.0.0.1:9000".to_string()];
        assert!(url_host_allowed(
            "https://hooks.slack.com/commands/1/2/3",
            &hosts
        ));
        assert!(url_host_allowed("http://127.0.0.1:9000/r", &hosts));
        assert!(!url_host_allowed("http://127.0.0.1:9001/r", &hosts));
        assert!(!url_host_allowed(
            "https://hooks.slack.com.evil.com/x",
            &hosts
        ));
        assert!(!url_host_allowed("file:///etc/passwd", &hosts));
        assert!(!url_host_allowed("not a url", &hosts));
    }

    #[test]
    fn delivery_errors_classify_status() {
        assert_eq!(
            DeliveryError::from_status(500, None, "").retry,
            Retry::Backoff
        );
        assert_eq!(
            DeliveryError::from_status(429, Some(Duration::from_secs(3)), "").retry,
            Retry::After(Duration::from_secs(3))
        );
        assert_eq!(
            DeliveryError::from_status(404, None, "").retry,
            Retry::Never
        );
    }
}
