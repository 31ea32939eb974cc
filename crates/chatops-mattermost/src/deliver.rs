//! Delivery: posting a rendered message through a command's `response_url` or the v4 API
//! (`POST /api/v4/posts`, `POST /api/v4/posts/ephemeral`), and classifying failures.
//!
//! - `response_url`: takes the slash-command response format; 5 posts within 30 minutes.
//! - `POST /api/v4/posts` (<https://api.mattermost.com/#tag/posts/operation/CreatePost>):
//!   `channel_id`, `message`, `props` (attachments); answers `201 Created`.

use chatops_core::{DeliveryError, HostAllowList, ReplyTarget, Visibility};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::{json, Value};
use std::time::Duration;

/// How long one delivery attempt may take; the outbox retries after a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The host of a URL for messages; never the whole URL, whose path is a credential.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "an unparsable URL".into())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(), DeliveryError> {
    send_json(http, reqwest::Method::POST, url, bearer, body)
        .await
        .map(drop)
}

/// Sends `body` as JSON; `Ok` holds the answer's body (a created post, for its id).
async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<String, DeliveryError> {
    let mut request = http
        .request(method, url)
        .timeout(REQUEST_TIMEOUT)
        .json(body);
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
    if (200..300).contains(&status) {
        // A body that cannot be read is only a post without an id (the caller says so).
        return Ok(response.text().await.unwrap_or_default());
    }
    let location = response.headers().get(LOCATION);
    DeliveryError::refuse_redirect(status, location.and_then(|v| v.to_str().ok()))?;
    let wait = retry_after(response.headers());
    // A body that cannot be read is only a worse error message.
    let text = response.text().await.unwrap_or_default();
    let mut error = DeliveryError::from_status(status, wait, &text);
    if status == 401 || status == 403 {
        error
            .reason
            .push_str(" (check mattermost.bot_token and the bot's channel membership)");
    }
    Err(error)
}

/// Posts `message` to the command's `response_url`, if its host is allowed.
pub(crate) async fn via_response_url(
    http: &reqwest::Client,
    allowed: &HostAllowList,
    target: &ReplyTarget,
    message: &Value,
) -> Result<(), DeliveryError> {
    let url = target
        .response_url
        .as_deref()
        .ok_or_else(|| DeliveryError::permanent("the command has no response_url to reply to"))?;
    if let Err(why) = allowed.check(url) {
        return Err(DeliveryError::permanent(format!(
            "refusing to post to the response_url host `{}`: {why} \
             (mattermost.response_url_hosts, or the host of mattermost.url when empty)",
            host_of(url),
        )));
    }
    post_json(http, url, None, message).await
}

/// Turns a rendered response into a v4 post: `message` and `props.attachments`.
fn as_post(message: &Value, channel: &str) -> Value {
    let mut post = json!({
        "channel_id": channel,
        "message": message["text"].clone(),
    });
    if let Some(attachments) = message.get("attachments") {
        post["props"] = json!({ "attachments": attachments });
    }
    post
}

/// Posts `message` with the bot token: `POST /api/v4/posts`, or `/posts/ephemeral` for a reply
/// only the user may see.
pub(crate) async fn via_bot_api(
    http: &reqwest::Client,
    base_url: &str,
    bot_token: Option<&str>,
    target: &ReplyTarget,
    visibility: Visibility,
    message: &Value,
) -> Result<(), DeliveryError> {
    let token = bot_token.ok_or_else(|| {
        DeliveryError::permanent(
            "no mattermost.bot_token is configured, so the reply cannot be posted through the API",
        )
    })?;
    let mut post = as_post(message, target.channel.as_str());
    // A reply in a thread names the thread's root post.
    if let Some(root) = target.extra.get("root_id") {
        post["root_id"] = root.clone();
    }
    let (path, body) = match visibility {
        Visibility::InChannel => ("/api/v4/posts", post),
        Visibility::Ephemeral => (
            "/api/v4/posts/ephemeral",
            json!({ "user_id": target.user.as_str(), "post": post }),
        ),
    };
    post_json(http, &format!("{base_url}{path}"), Some(token), &body).await
}

/// Posts `message` as the bot (`POST /api/v4/posts`) and returns the new post's id.
pub(crate) async fn create_post(
    http: &reqwest::Client,
    base_url: &str,
    bot_token: Option<&str>,
    target: &ReplyTarget,
    message: &Value,
) -> Result<String, DeliveryError> {
    let token = bot_token.ok_or_else(|| {
        DeliveryError::permanent(
            "no mattermost.bot_token is configured, so a status message cannot be posted",
        )
    })?;
    let post = as_post(message, target.channel.as_str());
    let url = format!("{base_url}/api/v4/posts");
    let answer = send_json(http, reqwest::Method::POST, &url, Some(token), &post).await?;
    serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            DeliveryError::permanent("POST /api/v4/posts answered without the new post's id")
        })
}

/// Replaces a post's message and attachments: `PUT /api/v4/posts/{id}/patch`
/// (<https://api.mattermost.com/#tag/posts/operation/PatchPost>).
pub(crate) async fn patch_post(
    http: &reqwest::Client,
    base_url: &str,
    bot_token: Option<&str>,
    post_id: &str,
    message: &Value,
) -> Result<(), DeliveryError> {
    let token = bot_token.ok_or_else(|| {
        DeliveryError::permanent("no mattermost.bot_token is configured, so posts cannot be edited")
    })?;
    // Attachments the new message lacks are cleared, not kept from the old one.
    let attachments = message
        .get("attachments")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let patch = json!({
        "message": message["text"].clone(),
        "props": { "attachments": attachments },
    });
    // The id comes from Mattermost's own answer; still, it must stay one path segment.
    let id: String = post_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let url = format!("{base_url}/api/v4/posts/{id}/patch");
    send_json(http, reqwest::Method::PUT, &url, Some(token), &patch)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{ChannelId, PlatformId, Retry, UserId};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// The request the fake server saw: head and body.
    type Seen = Arc<Mutex<(String, String)>>;

    /// A one-shot HTTP server on 127.0.0.1 answering `status` with `body`.
    async fn fake(
        status: &'static str,
        headers: &'static str,
        body: &'static str,
    ) -> std::io::Result<(String, Seen)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let seen: Seen = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = socket.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let length: usize = text[..end]
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    if let Ok(mut s) = record.lock() {
                        *s = (text[..end].to_owned(), text[end + 4..].to_owned());
                    }
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
        Ok((base, seen))
    }

    fn target(response_url: Option<String>) -> ReplyTarget {
        ReplyTarget {
            platform: PlatformId::new("mattermost"),
            response_url,
            channel: ChannelId::new("chan1"),
            user: UserId::new("user1"),
            extra: serde_json::Map::new(),
        }
    }

    fn message() -> Value {
        json!({"response_type": "in_channel", "text": "hi", "skip_slack_parsing": true,
               "attachments": [{"color": "#2EB886", "text": "```\nok\n```"}]})
    }

    fn seen(s: &Seen) -> (String, String) {
        s.lock().map(|s| s.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn response_url_posts_the_response() -> Result<(), Box<dyn std::error::Error>> {
        let (base, s) = fake("200 OK", "", "").await?;
        let hosts = HostAllowList::for_base_url(&base).unwrap_or_default();
        let http = reqwest::Client::new();
        via_response_url(
            &http,
            &hosts,
            &target(Some(format!("{base}/hooks/commands/x"))),
            &message(),
        )
        .await?;
        let (head, body) = seen(&s);
        assert!(head.starts_with("POST /hooks/commands/x "), "{head}");
        assert_eq!(serde_json::from_str::<Value>(&body)?, message());
        Ok(())
    }

    #[tokio::test]
    async fn failures_are_classified() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        for (status, headers, expected) in [
            ("500 Internal Server Error", "", Retry::Backoff),
            (
                "429 Too Many Requests",
                "retry-after: 4\r\n",
                Retry::After(Duration::from_secs(4)),
            ),
            ("404 Not Found", "", Retry::Never),
            // Issue #9 item 2: a redirect is never followed nor retried.
            (
                "307 Temporary Redirect",
                "location: https://elsewhere.example/hooks/x\r\n",
                Retry::Never,
            ),
        ] {
            let (base, _) = fake(status, headers, "{\"id\":\"x\"}").await?;
            let hosts = HostAllowList::for_base_url(&base).unwrap_or_default();
            let err = via_response_url(
                &http,
                &hosts,
                &target(Some(format!("{base}/h"))),
                &message(),
            )
            .await
            .err()
            .ok_or("expected an error")?;
            assert_eq!(err.retry, expected, "{status}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn foreign_hosts_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let err = via_response_url(
            &http,
            &HostAllowList::parse(&["chat.example.com".to_owned()])?,
            &target(Some("https://elsewhere.example.net/hooks/secret".into())),
            &message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("elsewhere.example.net"));
        assert!(!err.reason.contains("secret"));
        Ok(())
    }

    #[tokio::test]
    async fn bot_api_creates_a_post() -> Result<(), Box<dyn std::error::Error>> {
        let (base, s) = fake(
            "201 Created",
            "content-type: application/json\r\n",
            "{\"id\":\"p1\"}",
        )
        .await?;
        let http = reqwest::Client::new();
        via_bot_api(
            &http,
            &base,
            Some("bot-token"),
            &target(None),
            Visibility::InChannel,
            &message(),
        )
        .await?;
        let (head, body) = seen(&s);
        assert!(head.starts_with("POST /api/v4/posts "), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("authorization: bearer bot-token"));
        let body: Value = serde_json::from_str(&body)?;
        assert_eq!(body["channel_id"], "chan1");
        assert_eq!(body["message"], "hi");
        assert_eq!(body["props"]["attachments"][0]["color"], "#2EB886");
        Ok(())
    }

    #[tokio::test]
    async fn ephemeral_bot_posts_name_the_user() -> Result<(), Box<dyn std::error::Error>> {
        let (base, s) = fake("201 Created", "", "{}").await?;
        let http = reqwest::Client::new();
        via_bot_api(
            &http,
            &base,
            Some("t"),
            &target(None),
            Visibility::Ephemeral,
            &message(),
        )
        .await?;
        let (head, body) = seen(&s);
        assert!(head.starts_with("POST /api/v4/posts/ephemeral "), "{head}");
        let body: Value = serde_json::from_str(&body)?;
        assert_eq!(body["user_id"], "user1");
        assert_eq!(body["post"]["channel_id"], "chan1");
        Ok(())
    }

    #[tokio::test]
    async fn bot_api_errors() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let err = via_bot_api(
            &http,
            "http://127.0.0.1:9",
            None,
            &target(None),
            Visibility::InChannel,
            &message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("bot_token"));
        let (base, _) = fake("403 Forbidden", "", "{\"message\":\"no permission\"}").await?;
        let err = via_bot_api(
            &http,
            &base,
            Some("t"),
            &target(None),
            Visibility::InChannel,
            &message(),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("bot_token"), "{}", err.reason);
        Ok(())
    }
}
