//! Slack request signing (v0): `v0=` + hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}")).
//! See <https://api.slack.com/authentication/verifying-requests-from-slack>.

use crate::error::SlackError;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The request header carrying the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Requests signed further than this from now (either way) are refused as possible replays;
/// Slack's guide recommends five minutes.
pub const MAX_SKEW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; the fallback keeps
    // the function total without an unwrap.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Slack-Signature` value Slack would send for `body` signed at `timestamp`: `v0=<hex>`.
/// Public for tests and the example script that fakes Slack.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a request's signature headers (`timestamp` = `X-Slack-Request-Timestamp`,
/// `signature` = `X-Slack-Signature`, `None` when absent) against the raw `body`, at `now_unix`.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: u64,
) -> Result<(), SlackError> {
    let timestamp = timestamp.ok_or(SlackError::MissingHeader("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SlackError::MissingHeader("X-Slack-Signature"))?;
    let ts = parse_timestamp(timestamp)?;
    let skew = ts.abs_diff(now_unix);
    if skew > MAX_SKEW_SECS {
        return Err(SlackError::Stale {
            timestamp: ts,
            now: now_unix,
            skew,
        });
    }
    let digest = parse_signature(signature)?;
    // `verify_slice` compares in constant time, so the answer's timing reveals nothing about how
    // much of a forged signature was right. The MAC is over the timestamp exactly as sent.
    mac(secret, timestamp, body)
        .verify_slice(&digest)
        .map_err(|_| SlackError::BadSignature)
}

/// `X-Slack-Request-Timestamp` as Unix seconds.
pub(crate) fn parse_timestamp(timestamp: &str) -> Result<u64, SlackError> {
    timestamp
        .trim()
        .parse()
        .map_err(|_| SlackError::BadTimestamp(timestamp.chars().take(40).collect()))
}

/// The 32 bytes of an `X-Slack-Signature` (`v0=` + 64 hex digits).
pub(crate) fn parse_signature(signature: &str) -> Result<[u8; 32], SlackError> {
    signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .ok_or(SlackError::MalformedSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example (Verifying requests from Slack, "step by step"). Note the
    // token in the documented body is `xyzz0WbapA4vBCDEFasx0q6G`.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &[u8] = include_bytes!("../tests/fixtures/slack_docs_example_body.txt");
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: u64 = 1531420618;

    #[test]
    fn reproduces_slacks_documented_example() {
        assert_eq!(sign(SECRET, TIMESTAMP, BODY), EXPECTED);
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), BODY, NOW + 10),
            Ok(())
        );
    }

    #[test]
    fn skew_beyond_five_minutes_either_way_is_refused() {
        assert!(verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), BODY, NOW + 300).is_ok());
        assert!(verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), BODY, NOW - 300).is_ok());
        assert!(matches!(
            verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), BODY, NOW + 301),
            Err(SlackError::Stale { skew: 301, .. })
        ));
        assert!(matches!(
            verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), BODY, NOW - 301),
            Err(SlackError::Stale { skew: 301, .. })
        ));
    }

    #[test]
    fn tampered_body_or_secret_is_refused() {
        let mut body = BODY.to_vec();
        // Flip the last byte of the trigger id.
        if let Some(last) = body.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(EXPECTED), &body, NOW),
            Err(SlackError::BadSignature)
        );
        assert_eq!(
            verify("another secret", Some(TIMESTAMP), Some(EXPECTED), BODY, NOW),
            Err(SlackError::BadSignature)
        );
        // The timestamp is part of what is signed.
        let later = (NOW + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&later), Some(EXPECTED), BODY, NOW),
            Err(SlackError::BadSignature)
        );
    }

    #[test]
    fn missing_or_garbled_headers_are_refused() {
        assert_eq!(
            verify(SECRET, None, Some(EXPECTED), BODY, NOW),
            Err(SlackError::MissingHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), None, BODY, NOW),
            Err(SlackError::MissingHeader("X-Slack-Signature"))
        );
        assert!(matches!(
            verify(SECRET, Some("yesterday"), Some(EXPECTED), BODY, NOW),
            Err(SlackError::BadTimestamp(_))
        ));
        for garbled in ["a2114d57", "v1=a2114d57", "v0=zz", "v0=a2114d57", ""] {
            assert_eq!(
                verify(SECRET, Some(TIMESTAMP), Some(garbled), BODY, NOW),
                Err(SlackError::MalformedSignature),
                "{garbled}"
            );
        }
    }
}
