//! Delivery: posting a rendered message as a follow-up to the interaction's webhook
//! (`POST {api_url}/webhooks/{application_id}/{token}`, valid 15 minutes), and classifying
//! failures. <https://discord.com/developers/docs/interactions/receiving-and-responding#create-followup-message>
//!
//! Rate limits answer 429 with `Retry-After` (seconds, possibly fractional) and a JSON body
//! whose `retry_after` says the same (<https://discord.com/developers/docs/topics/rate-limits>).

use chatops_core::{DeliveryError, HostAllowList, ReplyTarget};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

/// How long one delivery attempt may take; the outbox retries after a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The host of a URL for messages; never the whole URL, whose path holds the interaction token.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "an unparsable URL".into())
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(3600.0)))
}

/// `Retry-After` from the header, else the body's `retry_after`.
fn retry_after(headers: &HeaderMap, body: &str) -> Option<Duration> {
    let header = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(seconds);
    header.or_else(|| {
        serde_json::from_str::<Value>(body)
            .ok()?
            .get("retry_after")?
            .as_f64()
            .and_then(seconds)
    })
}

/// Posts `message` as a follow-up to the interaction of `target`.
pub(crate) async fn followup(
    http: &reqwest::Client,
    allowed: &HostAllowList,
    target: &ReplyTarget,
    message: &Value,
) -> Result<(), DeliveryError> {
    let url = webhook(allowed, target)?;
    send(http, reqwest::Method::POST, url, message).await
}

/// Replaces the interaction's original response (the command's ack) with `message`:
/// `PATCH {webhook}/messages/@original`, which needs no bot token and works while the
/// interaction's token lives (15 minutes).
/// <https://discord.com/developers/docs/interactions/receiving-and-responding#edit-original-interaction-response>
pub(crate) async fn edit_original(
    http: &reqwest::Client,
    allowed: &HostAllowList,
    target: &ReplyTarget,
    message: &Value,
) -> Result<(), DeliveryError> {
    let url = format!("{}/messages/@original", webhook(allowed, target)?);
    // `flags` (ephemeral) cannot change on an edit; the rest replaces the message.
    let mut message = message.clone();
    if let Some(fields) = message.as_object_mut() {
        fields.remove("flags");
        fields
            .entry("components")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    send(http, reqwest::Method::PATCH, &url, &message).await
}

/// The interaction's webhook URL, if its host is allowed.
fn webhook<'t>(allowed: &HostAllowList, target: &'t ReplyTarget) -> Result<&'t str, DeliveryError> {
    let url = target.response_url.as_deref().ok_or_else(|| {
        DeliveryError::permanent("the interaction has no follow-up webhook to reply to")
    })?;
    if let Err(why) = allowed.check(url) {
        return Err(DeliveryError::permanent(format!(
            "refusing to post a follow-up to `{}`: {why} (discord.api_url's host)",
            host_of(url),
        )));
    }
    Ok(url)
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    message: &Value,
) -> Result<(), DeliveryError> {
    let response = http
        .request(method, url)
        .timeout(REQUEST_TIMEOUT)
        .json(message)
        .send()
        .await
        .map_err(|e| {
            DeliveryError::transient(format!(
                "could not reach {}: {}",
                host_of(url),
                e.without_url()
            ))
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let location = response.headers().get(LOCATION);
    DeliveryError::refuse_redirect(status, location.and_then(|v| v.to_str().ok()))?;
    let headers = response.headers().clone();
    // A body that cannot be read is only a worse error message.
    let body = response.text().await.unwrap_or_default();
    let mut error = DeliveryError::from_status(status, retry_after(&headers, &body), &body);
    if status == 404 || status == 401 {
        error
            .reason
            .push_str(" (an interaction's follow-up webhook lasts 15 minutes)");
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{ChannelId, PlatformId, Retry, UserId};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

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

    fn target(url: String) -> ReplyTarget {
        ReplyTarget {
            platform: PlatformId::new("discord"),
            response_url: Some(url),
            channel: ChannelId::new("1"),
            user: UserId::new("2"),
            extra: serde_json::Map::new(),
        }
    }

    fn hosts(base: &str) -> HostAllowList {
        HostAllowList::for_base_url(base).unwrap_or_default()
    }

    #[tokio::test]
    async fn followup_posts_the_message() -> Result<(), Box<dyn std::error::Error>> {
        let (base, seen) = fake(
            "200 OK",
            "content-type: application/json\r\n",
            "{\"id\":\"9\"}",
        )
        .await?;
        let http = reqwest::Client::new();
        let message = json!({"content": "hi", "flags": 4});
        followup(
            &http,
            &hosts(&base),
            &target(format!("{base}/webhooks/1/tok")),
            &message,
        )
        .await?;
        let (head, body) = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(head.starts_with("POST /webhooks/1/tok "), "{head}");
        assert_eq!(serde_json::from_str::<Value>(&body)?, message);
        Ok(())
    }

    #[tokio::test]
    async fn failures_are_classified() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        for (status, headers, body, expected) in [
            ("500 Internal Server Error", "", "", Retry::Backoff),
            (
                "429 Too Many Requests",
                "retry-after: 2\r\n",
                "{\"retry_after\": 2.0}",
                Retry::After(Duration::from_secs(2)),
            ),
            (
                "429 Too Many Requests",
                "",
                "{\"retry_after\": 0.5, \"global\": false}",
                Retry::After(Duration::from_millis(500)),
            ),
            (
                "404 Not Found",
                "",
                "{\"message\": \"Unknown Webhook\", \"code\": 10015}",
                Retry::Never,
            ),
            // Issue #9 item 2: a redirect is never followed nor retried.
            (
                "307 Temporary Redirect",
                "location: https://elsewhere.example/webhooks/1/tok\r\n",
                "",
                Retry::Never,
            ),
        ] {
            let (base, _) = fake(status, headers, body).await?;
            let err = followup(
                &http,
                &hosts(&base),
                &target(format!("{base}/webhooks/1/tok")),
                &json!({}),
            )
            .await
            .err()
            .ok_or("expected an error")?;
            assert_eq!(err.retry, expected, "{status} {body}");
            assert!(!err.reason.contains("tok"), "{}", err.reason);
        }
        Ok(())
    }

    #[tokio::test]
    async fn foreign_hosts_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let http = reqwest::Client::new();
        let err = followup(
            &http,
            &hosts("https://discord.com/api/v10"),
            &target("https://evil.example.net/webhooks/1/tok".into()),
            &json!({}),
        )
        .await
        .err()
        .ok_or("expected an error")?;
        assert_eq!(err.retry, Retry::Never);
        assert!(err.reason.contains("evil.example.net"));
        Ok(())
    }
}
