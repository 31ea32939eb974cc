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

/// A message chatops posted and may edit later: a job's live status message (Slack `channel` +
/// `ts`, a Mattermost post id, Discord's `@original` interaction response).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusMessage {
    /// The channel the message is in.
    pub channel: String,
    /// The platform's id of the message.
    pub id: String,
}

impl StatusMessage {
    /// The [`ReplyTarget::extra`] key that turns an outbox reply into an edit of this message:
    /// the final edit goes through the outbox (retried, never lost) like any reply.
    pub const EDIT_KEY: &'static str = "edit_status_message";
    /// The [`ReplyTarget::extra`] key marking a reply meant for the status message's thread:
    /// only the bot API can post into a thread, so the outbox prefers it.
    pub const THREAD_KEY: &'static str = "in_status_thread";

    /// `target`, made to edit this message rather than post a new one.
    pub fn edit_target(&self, target: &ReplyTarget) -> ReplyTarget {
        let mut target = target.clone();
        if let Ok(me) = serde_json::to_value(self) {
            target.extra.insert(Self::EDIT_KEY.into(), me);
        }
        target
    }

    /// The message a target made by [`Self::edit_target`] edits.
    pub fn edited_by(target: &ReplyTarget) -> Option<StatusMessage> {
        let value = target.extra.get(Self::EDIT_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// Whether `target` asks for the status message's thread.
    pub fn wants_thread(target: &ReplyTarget) -> bool {
        target.extra.contains_key(Self::THREAD_KEY)
    }
}

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

    /// A 3xx answer. chatops follows no redirects (its HTTP client is built with
    /// `redirect::Policy::none()`): a redirect from an allowed host to any other would carry
    /// the reply past the allow-list. So a redirect is a permanent failure, recorded with
    /// the host of `location` (the `Location` header; never the whole URL) when it names one.
    pub fn redirected(status: u16, location: Option<&str>) -> DeliveryError {
        let host = location
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let to = match host {
            Some(host) => format!(" to `{host}`"),
            None => String::new(),
        };
        DeliveryError::permanent(format!(
            "platform answered HTTP {status}, a redirect{to}: chatops follows no redirects (a \
             reply must not leave the allowed hosts); configure the final address instead"
        ))
    }

    /// `Err(redirected(..))` when `status` is a 3xx: adapters call it on every answer.
    pub fn refuse_redirect(status: u16, location: Option<&str>) -> Result<(), DeliveryError> {
        if (300..400).contains(&status) {
            return Err(DeliveryError::redirected(status, location));
        }
        Ok(())
    }

    /// Classifies an HTTP status the platform answered (not 2xx) with its optional
    /// `Retry-After` seconds.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> DeliveryError {
        if (300..400).contains(&status) {
            return DeliveryError::redirected(status, None);
        }
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
    /// chatops can post a status message and edit it ([`ChatAdapter::post_status`],
    /// [`ChatAdapter::edit`]): live progress. Slack and Mattermost need a bot token for it.
    pub message_edits: bool,
    /// Replies can go into a status message's thread ([`ChatAdapter::thread_target`]).
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

    /// For a platform that ignores the body of a button click's HTTP answer (Slack's
    /// `block_actions`): the ack to post as a message instead, through the click's reply
    /// channel, so every click gets a visible answer. `None` (the default): [`Self::ack`]'s
    /// HTTP answer shows it.
    fn click_answer(&self, command: &ChatCommand, ack: &Reply) -> Option<Reply> {
        let _ = (command, ack);
        None
    }

    /// Renders a reply to the platform's message JSON (what `deliver` would post).
    fn render(&self, reply: &Reply) -> serde_json::Value;

    /// Posts `reply` to the channel of `target` through `via`.
    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
        via: Via,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// Posts a job's status message, to be edited with its progress. Only called when
    /// [`Capabilities::message_edits`]; the default says the platform cannot.
    fn post_status<'a>(
        &'a self,
        target: &'a ReplyTarget,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<StatusMessage, DeliveryError>> {
        let _ = (target, reply);
        Box::pin(async { Err(unsupported(self.platform(), "post a status message")) })
    }

    /// Replaces the content of `message` (posted by [`Self::post_status`]) with `reply`.
    fn edit<'a>(
        &'a self,
        target: &'a ReplyTarget,
        message: &'a StatusMessage,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        let _ = (target, message, reply);
        Box::pin(async { Err(unsupported(self.platform(), "edit messages")) })
    }

    /// Where a reply goes to land in the thread of `message`: `target` with the platform's
    /// thread field set and [`StatusMessage::THREAD_KEY`] marked. `None` (the default): the
    /// platform has no threads (the reply goes to `target` as before).
    fn thread_target(&self, target: &ReplyTarget, message: &StatusMessage) -> Option<ReplyTarget> {
        let _ = (target, message);
        None
    }
}

fn unsupported(platform: PlatformId, what: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "the {platform} adapter cannot {what} (capabilities().message_edits is false)"
    ))
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

/// Where replies may be posted: the `response_url` allow-lists (`slack.response_url_hosts`,
/// `mattermost.response_url_hosts`). A forged `response_url` must not make chatops post job
/// output anywhere else.
///
/// An entry is `host` or `host:port` (IPv6 in brackets: `[::1]:9000`). A URL is allowed when
/// its host is an entry's host (case-insensitive), its scheme is `https`, and its port is the
/// entry's port, or the scheme's default port when the entry names none (`hooks.slack.com`
/// allows `https://hooks.slack.com/...`, not `:8443`). Plain `http` is accepted only for
/// loopback hosts (`127.0.0.0/8`, `::1`, `localhost`: local fakes in tests), or for a rule made
/// by [`HostAllowList::for_base_url`] from a server address the operator configured as `http`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAllowList {
    rules: Vec<HostRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostRule {
    /// The entry as written, for messages.
    entry: String,
    /// The host as the URL parser normalises it (lower case, `[::1]`), so it compares with a
    /// parsed URL's `host_str()`.
    host: String,
    /// The port the entry names; `None`: the URL's scheme's default port only.
    port: Option<u16>,
    /// Whether `http` is accepted besides `https` for this host even if it is not loopback.
    http: bool,
}

impl HostAllowList {
    /// Parses allow-list entries; an error names the entry and says what to write instead.
    pub fn parse(entries: &[String]) -> Result<HostAllowList, String> {
        let rules = entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<_, _>>()?;
        Ok(HostAllowList { rules })
    }

    /// One rule for the host (and port, if it names one) of a server address such as
    /// `mattermost.url`; `http` is allowed when the address itself is `http`. `None` when
    /// `url` is not an http(s) URL with a host.
    pub fn for_base_url(url: &str) -> Option<HostAllowList> {
        let parsed = url::Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return None;
        }
        let host = parsed.host_str()?.to_owned();
        let entry = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        Some(HostAllowList {
            rules: vec![HostRule {
                entry,
                host,
                port: parsed.port(),
                http: parsed.scheme() == "http",
            }],
        })
    }

    /// Whether replies may be posted to `url`; `Err` says why not, naming the host but never
    /// the whole URL (whose path is a credential).
    pub fn check(&self, url: &str) -> Result<(), String> {
        let parsed =
            url::Url::parse(url).map_err(|_| "the response_url is not a URL".to_owned())?;
        let Some(host) = parsed.host_str() else {
            return Err("the response_url has no host".into());
        };
        let scheme = parsed.scheme();
        if !matches!(scheme, "https" | "http") {
            return Err(format!("the response_url's scheme `{scheme}` is not https"));
        }
        let port_ok = |rule: &HostRule| match rule.port {
            Some(p) => parsed.port_or_known_default() == Some(p),
            None => parsed.port().is_none(),
        };
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(host) && port_ok(r))
        else {
            let at = match parsed.port() {
                Some(p) => format!("`{host}` port {p}"),
                None => format!("`{host}`"),
            };
            return Err(format!(
                "the host {at} is not in the allow-list ({})",
                self.describe()
            ));
        };
        if scheme == "http" && !rule.http && !is_loopback(&parsed) {
            return Err(format!(
                "the response_url to `{host}` is plain http; only https is accepted (http only \
                 for loopback hosts)"
            ));
        }
        Ok(())
    }

    /// The entries, comma-separated, for messages.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            return "empty".into();
        }
        self.rules
            .iter()
            .map(|r| r.entry.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn parse_entry(entry: &str) -> Result<HostRule, String> {
    let trimmed = entry.trim();
    let bad = || {
        format!(
            "response_url_hosts entry `{entry}` is not a host or host:port: write e.g. \
             hooks.slack.com (https on port 443) or chat.example.com:8443"
        )
    };
    if trimmed.is_empty()
        || trimmed
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | '\\'))
    {
        return Err(bad());
    }
    // `host:port`, `[v6]:port`, `[v6]`, `host`; a bare IPv6 address has several colons.
    let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, "")) => (format!("[{v6}]"), None),
            Some((v6, tail)) => match tail.strip_prefix(':') {
                Some(p) => (format!("[{v6}]"), Some(p)),
                None => return Err(bad()),
            },
            None => return Err(bad()),
        }
    } else if trimmed.matches(':').count() > 1 {
        (format!("[{trimmed}]"), None)
    } else {
        match trimmed.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (trimmed.to_owned(), None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| bad()))
        .transpose()?;
    let parsed = url::Url::parse(&format!("https://{host}/")).map_err(|_| bad())?;
    let host = parsed.host_str().ok_or_else(bad)?.to_owned();
    Ok(HostRule {
        entry: trimmed.to_owned(),
        host,
        port,
        http: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowList {
        HostAllowList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn host_allow_list() {
        let hosts = list(&["hooks.slack.com", "127.0.0.1:9000"]);
        assert_eq!(
            hosts.check("https://hooks.slack.com/commands/1/2/3"),
            Ok(())
        );
        assert!(hosts.check("http://127.0.0.1:9000/r").is_ok());
        assert!(hosts.check("http://127.0.0.1:9001/r").is_err());
        assert!(hosts.check("https://hooks.slack.com.evil.com/x").is_err());
        assert!(hosts.check("file:///etc/passwd").is_err());
        assert!(hosts.check("not a url").is_err());
    }

    /// Issue #9 item 4: an entry without a port matched any port, and http was accepted.
    #[test]
    fn an_entry_without_a_port_allows_only_the_default_port_and_https() {
        let hosts = list(&["Hooks.Slack.com"]);
        assert!(hosts.check("https://hooks.slack.com/x").is_ok());
        assert!(hosts.check("https://HOOKS.slack.com:443/x").is_ok());
        let other_port = hosts.check("https://hooks.slack.com:8443/x");
        assert!(
            other_port.as_ref().is_err_and(|e| e.contains("8443")),
            "{other_port:?}"
        );
        let http = hosts.check("http://hooks.slack.com/x");
        assert!(
            http.as_ref().is_err_and(|e| e.contains("https")),
            "{http:?}"
        );
        assert!(hosts.check("http://hooks.slack.com:443/x").is_err());
        assert!(hosts.check("ftp://hooks.slack.com/x").is_err());
        // A named port is that port only, https still required off loopback.
        let hosts = list(&["chat.example.com:8443"]);
        assert!(hosts.check("https://chat.example.com:8443/hooks/1").is_ok());
        assert!(hosts.check("https://chat.example.com/hooks/1").is_err());
        assert!(hosts.check("http://chat.example.com:8443/hooks/1").is_err());
    }

    #[test]
    fn loopback_entries_may_use_http() {
        let hosts = list(&[
            "127.0.0.1:9000",
            "localhost:8065",
            "[::1]:7000",
            "127.0.0.2",
        ]);
        assert!(hosts.check("http://127.0.0.1:9000/r").is_ok());
        assert!(hosts.check("http://localhost:8065/r").is_ok());
        assert!(hosts.check("http://[::1]:7000/r").is_ok());
        assert!(hosts.check("https://[::1]:7000/r").is_ok());
        assert!(hosts.check("http://127.0.0.2/r").is_ok());
        assert!(hosts.check("http://127.0.0.2:81/r").is_err());
        assert!(hosts.check("http://[::1]:7001/r").is_err());
        assert!(hosts.check("http://localhost:8066/r").is_err());
    }

    #[test]
    fn bad_entries_are_named() {
        for entry in [
            "https://hooks.slack.com",
            "hooks.slack.com/x",
            "",
            "host:port",
            "host:99999",
            "user@host",
            "[::1",
        ] {
            let err = HostAllowList::parse(&[entry.to_owned()]);
            assert!(
                err.as_ref().is_err_and(|e| e.contains(entry)),
                "{entry}: {err:?}"
            );
        }
        assert!(HostAllowList::parse(&["::1".to_owned()]).is_ok());
        assert_eq!(HostAllowList::default().describe(), "empty");
        assert!(HostAllowList::default()
            .check("https://a.example/x")
            .is_err());
    }

    #[test]
    fn a_base_url_rule_follows_the_configured_scheme_and_port() {
        let https = HostAllowList::for_base_url("https://chat.example.com/").unwrap_or_default();
        assert!(https.check("https://chat.example.com/hooks/x").is_ok());
        assert!(https.check("http://chat.example.com/hooks/x").is_err());
        assert!(https
            .check("https://chat.example.com:8443/hooks/x")
            .is_err());
        let http = HostAllowList::for_base_url("http://mm.internal:8065").unwrap_or_default();
        assert!(http.check("http://mm.internal:8065/hooks/x").is_ok());
        assert!(http.check("http://mm.internal/hooks/x").is_err());
        assert_eq!(http.describe(), "mm.internal:8065");
        assert!(HostAllowList::for_base_url("chat.example.com").is_none());
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
        // Issue #9 item 2: a redirect is never followed, nor retried.
        let redirect = DeliveryError::from_status(307, None, "");
        assert_eq!(redirect.retry, Retry::Never);
        assert!(redirect.reason.contains("redirect"), "{}", redirect.reason);
        let named = DeliveryError::redirected(302, Some("https://evil.example/secret-path"));
        assert!(named.reason.contains("`evil.example`"), "{}", named.reason);
        assert!(!named.reason.contains("secret-path"), "{}", named.reason);
    }
}
