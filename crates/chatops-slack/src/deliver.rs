//! Delivery: posting a rendered message through a command's `response_url` or the Web API
//! (`chat.postMessage` / `chat.postEphemeral`), and classifying failures for the outbox's
//! retries.
//!
//! - `response_url` (<https://api.slack.com/interactivity/handling#message_responses>): answers
//!   `200 ok`; `404 expired_url` / `used_url` after 30 minutes or 5 posts.
//! - Web API (<https://api.slack.com/web#responses>): answers `200` with `{"ok": false,
//!   "error": "..."}` on failure, `429` with `Retry-After` when rate-limited.

use chatops_core::{DeliveryError, HostAllowList, ReplyTarget, Retry, Visibility};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

/// How long one delivery attempt may take; the outbox retries after a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Web API errors that say Slack had a problem, not the request: worth a retry.
const TRANSIENT_API_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// The host of a URL for messages: never the whole URL, whose path is a credential (anyone
/// holding a `response_url` can post to the channel).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "an unparsable URL".into())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The answer to one POST: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    message: &Value,
) -> Result<Answer, DeliveryError> {
    let body = serde_json::to_vec(message)
        .map_err(|e| DeliveryError::permanent(format!("could not encode the message: {e}")))?;
    // Slack warns about JSON posted without a charset.
    let mut request = http
        .post(url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .timeout(REQUEST_TIMEOUT)
        .body(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        DeliveryError::transient(format!(
            "could not reach {}: {}",
            host_of(url),
            e.without_url()
        ))
    })?;
    let status = response.status().as_u16();
    let location = response.headers().get(LOCATION);
    DeliveryError::refuse_redirect(status, location.and_then(|v| v.to_str().ok()))?;
    let retry_after = retry_after(response.headers());
    // A body that cannot be read is only a worse error message.
    let body = response.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// Posts `message` to the command's `response_url`, if its host is allowed.
pub(crate) async fn via_response_url(
    http: &reqwest::Client,
    allowed: &HostAllowList,
    target: &ReplyTarget,
    mut message: Value,
) -> Result<(), DeliveryError> {
    let url = target
        .response_url
        .as_deref()
        .ok_or_else(|| DeliveryError::permanent("the command has no response_url to reply to"))?;
    if let Err(why) = allowed.check(url) {
        return Err(DeliveryError::permanent(format!(
            "refusing to post to the response_url host `{}`: {why} (slack.response_url_hosts)",
            host_of(url),
        )));
    }
    // A follow-up is a new message; it must not overwrite the command's ack.
    message["replace_original"] = Value::Bool(false);
    let answer = post_json(http, url, None, &message).await?;
    if (200..300).contains(&answer.status) {
        return Ok(());
    }
    let mut error = DeliveryError::from_status(answer.status, answer.retry_after, &answer.body);
    if answer.body.contains("expired_url") || answer.body.contains("used_url") {
        error.retry = Retry::Never;
        error.reason = format!(
            "{} (a response_url takes 5 posts within 30 minutes; a bot token lets replies go out later)",
            error.reason
        );
    }
    Err(error)
}

/// Posts `message` with the bot token: `chat.postMessage`, or `chat.postEphemeral` for a reply
/// only the user may see.
pub(crate) async fn via_bot_api(
    http: &reqwest::Client,
    api_url: &str,
    bot_token: Option<&str>,
    target: &ReplyTarget,
    visibility: Visibility,
    message: Value,
) -> Result<(), DeliveryError> {
    post_message(http, api_url, bot_token, target, visibility, message)
        .await
        .map(drop)
}

/// Posts `message` as the bot and returns Slack's answer (`channel`, `ts` of the new message).
/// <https://api.slack.com/methods/chat.postMessage>: `thread_ts` puts it in a thread.
pub(crate) async fn post_message(
    http: &reqwest::Client,
    api_url: &str,
    bot_token: Option<&str>,
    target: &ReplyTarget,
    visibility: Visibility,
    mut message: Value,
) -> Result<Value, DeliveryError> {
    // `response_type` belongs to response_url; the Web API names the channel (and user) instead.
    if let Some(fields) = message.as_object_mut() {
        fields.remove("response_type");
        fields.insert("channel".into(), target.channel.as_str().into());
        if let Some(thread) = target.extra.get("thread_ts") {
            fields.insert("thread_ts".into(), thread.clone());
        }
    }
    let method = match visibility {
        Visibility::InChannel => "chat.postMessage",
        Visibility::Ephemeral => {
            message["user"] = target.user.as_str().into();
            "chat.postEphemeral"
        }
    };
    call(http, api_url, bot_token, method, &message).await
}

/// Replaces the message `ts` in `channel` with `message`: `chat.update`
/// (<https://api.slack.com/methods/chat.update>). Blocks and attachments the new message does
/// not have are cleared (Slack keeps the old ones when the field is missing).
pub(crate) async fn update_message(
    http: &reqwest::Client,
    api_url: &str,
    bot_token: Option<&str>,
    channel: &str,
    ts: &str,
    mut message: Value,
) -> Result<(), DeliveryError> {
    if let Some(fields) = message.as_object_mut() {
        fields.remove("response_type");
        fields.remove("replace_original");
        fields.insert("channel".into(), channel.into());
        fields.insert("ts".into(), ts.into());
        for field in ["blocks", "attachments"] {
            fields
                .entry(field)
                .or_insert_with(|| Value::Array(Vec::new()));
        }
    }
    call(http, api_url, bot_token, "chat.update", &message)
        .await
        .map(drop)
}

/// One Web API call with the bot token; `Ok` holds the answer of an `"ok": true` call.
async fn call(
    http: &reqwest::Client,
    api_url: &str,
    bot_token: Option<&str>,
    method: &str,
    message: &Value,
) -> Result<Value, DeliveryError> {
    let token = bot_token.ok_or_else(|| {
        DeliveryError::permanent(format!(
            "no slack.bot_token is configured, so {method} cannot be called: set slack.bot_token"
        ))
    })?;
    let url = format!("{}/{method}", api_url.trim_end_matches('/'));
    let answer = post_json(http, &url, Some(token), message).await?;
    if !(200..300).contains(&answer.status) {
        return Err(DeliveryError::from_status(
            answer.status,
            answer.retry_after,
            &answer.body,
        ));
    }
    let parsed: Value = serde_json::from_str(&answer.body).map_err(|_| {
        DeliveryError::transient(format!(
            "{method} answered something that is not JSON: {}",
            answer.body.chars().take(200).collect::<String>()
        ))
    })?;
    if parsed["ok"].as_bool() == Some(true) {
        return Ok(parsed);
    }
    let code = parsed["error"].as_str().unwrap_or("unknown_error");
    Err(api_error(method, code, answer.retry_after))
}

/// Classifies a Web API `{"ok": false, "error": code}`, with a hint for the usual mistakes.
fn api_error(method: &str, code: &str, retry_after: Option<Duration>) -> DeliveryError {
    let hint = match code {
        "not_in_channel" => ": invite the bot to the channel",
        "channel_not_found" => ": the bot cannot see this channel (private? invite the bot)",
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired" => {
            ": check slack.bot_token"
        }
        "missing_scope" => ": the bot token needs the chat:write scope",
        _ => "",
    };
    let reason = format!("{method} failed: {code}{hint}");
    let retry = if code == "ratelimited" || code == "rate_limited" {
        Retry::After(retry_after.unwrap_or(Duration::from_secs(1)))
    } else if TRANSIENT_API_ERRORS.contains(&code) {
        Retry::Backoff
    } else {
        Retry::Never
    };
    DeliveryError { retry, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{ChannelId, PlatformId, UserId};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// One request as the fake server saw it.
    #[derive(Debug, Default, Clone)]
    struct Seen {
        head: String,
        body: String,
    }

    /// A one-shot HTTP server on 127.0.0.1 that records the request and answers `response`
    /// (a full HTTP/1.1 response). Returns its base URL and the recorded request.
    async fn fake(response: String) -> std::io::Result<(String, Arc<Mutex<Seen>>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let Ok(n) = socket.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        if let Ok(mut s) = record.lock() {
                            s.head = text[..end].to_owned();
                            s.body = text[end + 4..].to_owned();
                        }
                        break;
                    }
                }
            }
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
        Ok((format!("http://{addr}"), seen))
    }

    fn target(response_url: Option<String>) -> ReplyTarget {
        ReplyTarget {
            platform: PlatformId::new("slack"),
            response_url,
            channel: ChannelId::new("C123"),
            user: UserId::new("U123"),
            extra: serde_json::Map::new(),
        }
    }

    fn hosts_for(base: &str) -> HostAllowList {
        HostAllowList::parse(&[base.trim_start_matches("http://").to_owned()]).unwrap_or_default()
    }

    fn message() -> Value {
        json!({"response_type": "in_channel", "text": "hello"})
    }

    fn seen(s: &Arc<Mutex<Seen>>) -> Seen {
        s.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A complete HTTP/1.1 response with a correct Content-Length.
    fn answer(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// Posts to `{base}/r` (allowed) and returns the error it must end with.
    async fn response_url_error(
        http: &reqwest::Client,
        base: &str,
    ) -> Result<DeliveryError, &'static str> {
        let target = target(Some(format!("{base}/r")));
        via_response_url(http, &hosts_for(base), &target, message())
            .await
            .err()
            .ok_or("expected an error")
    }

    #[tokio::test]
    async fn response_url_ok() -> Result<(), Box<dyn std::error::Error>> {
        let (base, seen_req) = fake(answer("200 OK", "content-type: text/plain\r\n", "ok")).await?;
        let url = format!("{base}/commands/T1/2/secret");
        let http = reqwest::Client::new();
        via_response_url(&http, &hosts_for(&base), &target(Some(url)), message()).await?;
        let s = seen(&seen_req);
        assert!(
            s.head.starts_with("POST /commands/T1/2/secret "),
            "{}",
            s.head
        );
        assert!(s
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json; charset=utf-8"));
        let body: Value = serde_json::from_str(&s.body)?;
        assert_eq!(body["response_type"], "in_channel");
        assert_eq!(body["replace_original"], false);
        assert_eq!(body["text"], "hello");
        Ok(())
    }

    #[tokio::test]
    async fn response_url_500_is_transient() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = fake(answer("500 Internal Server Error", "", "oops")).await?;
        let http = reqwest::Client::new();
        let err = response_url_error(&http, &base).await?;
        assert_eq!(err.retry, Retry::Backoff);
        assert!(err.reason.contains("500"), "{}", err.reason);
        Ok(())
    }

    #[tokio::test]
    async fn response_url_429_retries_after() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = fake(answer("429 Too Many Requests", "retry-after: 7\r\n", "")).await?;
        let http = reqwest::Client::new();
        let err = response_url_error(&http, &base).await?;
        assert_eq!(err.retry, Retry::After(Duration::from_secs(7)));
        Ok(())
    }

    #[tokio::test]
    async fn used_response_url_is_permanent() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = fake(answer("404 Not Found", "", "used_url")).await?;
        let http = reqwest::Client::new();
        let err = response_url_error(&http, &base).await?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("used_url"), "{}", err.reason);
        Ok(())
    }

    /// Issue #9 item 2: a 3xx is a permanent failure that names where it pointed.
    #[tokio::test]
    async fn a_redirect_is_permanent_and_not_followed() -> Result<(), Box<dyn std::error::Error>> {
        let (elsewhere, elsewhere_seen) = fake(answer("200 OK", "", "ok")).await?;
        let (base, _) = fake(answer(
            "307 Temporary Redirect",
            &format!("location: {elsewhere}/stolen\r\n"),
            "",
        ))
        .await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let err = response_url_error(&http, &base).await?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("307"), "{}", err.reason);
        assert!(err.reason.contains("redirect"), "{}", err.reason);
        assert!(!err.reason.contains("stolen"), "{}", err.reason);
        assert!(seen(&elsewhere_seen).head.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn refused_host_is_permanent_and_named() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let err = via_response_url(
            &http,
            &HostAllowList::parse(&["hooks.slack.com".to_owned()])?,
            &target(Some("https://evil.example.net/steal/secret-path".into())),
            message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("evil.example.net"), "{}", err.reason);
        assert!(!err.reason.contains("secret-path"), "{}", err.reason);
        let err = via_response_url(&http, &HostAllowList::default(), &target(None), message())
            .await
            .err()
            .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_host_is_transient() -> Result<(), Box<dyn std::error::Error>> {
        // Bind and drop a listener so that nothing answers on its port.
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let err = via_response_url(
            &http,
            &hosts_for(&base),
            &target(Some(format!("{base}/secret"))),
            message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Backoff);
        assert!(!err.reason.contains("/secret"), "{}", err.reason);
        Ok(())
    }

    #[tokio::test]
    async fn post_message_ok() -> Result<(), Box<dyn std::error::Error>> {
        let (base, seen_req) = fake(answer(
            "200 OK",
            "content-type: application/json\r\n",
            "{\"ok\":true,\"channel\":\"C123\",\"ts\":\"1\"}",
        ))
        .await?;
        let http = reqwest::Client::new();
        via_bot_api(
            &http,
            &format!("{base}/api/"),
            Some("xoxb-test"),
            &target(None),
            Visibility::InChannel,
            message(),
        )
        .await?;
        let s = seen(&seen_req);
        assert!(
            s.head.starts_with("POST /api/chat.postMessage "),
            "{}",
            s.head
        );
        assert!(s
            .head
            .to_ascii_lowercase()
            .contains("authorization: bearer xoxb-test"));
        let body: Value = serde_json::from_str(&s.body)?;
        assert_eq!(body["channel"], "C123");
        assert_eq!(body["text"], "hello");
        assert!(body.get("response_type").is_none());
        Ok(())
    }

    #[tokio::test]
    async fn ephemeral_bot_replies_use_post_ephemeral() -> Result<(), Box<dyn std::error::Error>> {
        let (base, seen_req) = fake(answer("200 OK", "", "{\"ok\":true}")).await?;
        let http = reqwest::Client::new();
        via_bot_api(
            &http,
            &base,
            Some("xoxb-test"),
            &target(None),
            Visibility::Ephemeral,
            message(),
        )
        .await?;
        let s = seen(&seen_req);
        assert!(
            s.head.starts_with("POST /chat.postEphemeral "),
            "{}",
            s.head
        );
        let body: Value = serde_json::from_str(&s.body)?;
        assert_eq!(body["user"], "U123");
        Ok(())
    }

    #[tokio::test]
    async fn post_message_ok_false_is_permanent() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = fake(answer(
            "200 OK",
            "content-type: application/json\r\n",
            "{\"ok\":false,\"error\":\"not_in_channel\"}",
        ))
        .await?;
        let http = reqwest::Client::new();
        let err = via_bot_api(
            &http,
            &base,
            Some("xoxb-test"),
            &target(None),
            Visibility::InChannel,
            message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("not_in_channel"), "{}", err.reason);
        assert!(err.reason.contains("invite the bot"), "{}", err.reason);
        Ok(())
    }

    #[tokio::test]
    async fn post_message_rate_limits_retry_after() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = fake(answer(
            "429 Too Many Requests",
            "retry-after: 30\r\n",
            "{\"ok\":false,\"error\":\"ratelimited\"}",
        ))
        .await?;
        let http = reqwest::Client::new();
        let err = via_bot_api(
            &http,
            &base,
            Some("xoxb-test"),
            &target(None),
            Visibility::InChannel,
            message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::After(Duration::from_secs(30)));
        Ok(())
    }

    #[tokio::test]
    async fn no_bot_token_is_permanent() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let err = via_bot_api(
            &http,
            "http://127.0.0.1:9",
            None,
            &target(None),
            Visibility::InChannel,
            message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("bot_token"), "{}", err.reason);
        Ok(())
    }

    #[test]
    fn api_errors_classify() {
        assert_eq!(
            api_error(
                "chat.postMessage",
                "ratelimited",
                Some(Duration::from_secs(5))
            )
            .retry,
            Retry::After(Duration::from_secs(5))
        );
        assert_eq!(
            api_error("chat.postMessage", "internal_error", None).retry,
            Retry::Backoff
        );
        assert_eq!(
            api_error("chat.postMessage", "invalid_auth", None).retry,
            Retry::Never
        );
    }
}
