//! Interaction verification: Ed25519 over `X-Signature-Timestamp` + raw body, checked with the
//! application's public key
//! (<https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers>).

use crate::error::DiscordError;
use ed25519_dalek::{Signature, VerifyingKey};

/// The request header carrying the signature (hex).
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// The request header carrying the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";
/// Requests signed further than this from now are refused as possible replays. Discord does
/// not require the check; it costs nothing and matches what Slack asks for.
pub const MAX_SKEW_SECS: u64 = 300;

/// Checks an interaction's signature headers (`None` when absent) against the raw `body`.
pub fn verify(
    key: &VerifyingKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: u64,
) -> Result<(), DiscordError> {
    let timestamp = timestamp.ok_or(DiscordError::MissingHeader("X-Signature-Timestamp"))?;
    let signature = signature.ok_or(DiscordError::MissingHeader("X-Signature-Ed25519"))?;
    let bytes: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(DiscordError::MalformedSignature)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    // Strict verification also refuses malleable signatures and weak keys.
    key.verify_strict(&message, &Signature::from_bytes(&bytes))
        .map_err(|_| DiscordError::BadSignature)?;
    // Checked after the signature, which covers the timestamp: a forged time cannot pass.
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| DiscordError::BadTimestamp(timestamp.chars().take(40).collect()))?;
    let skew = ts.abs_diff(now_unix);
    if skew > MAX_SKEW_SECS {
        return Err(DiscordError::Stale {
            timestamp: ts,
            now: now_unix,
            skew,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// A fixed test key pair (never a real application's).
    pub(crate) fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// What Discord would send in `X-Signature-Ed25519`.
    pub(crate) fn sign(timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(signing_key().sign(&message).to_bytes())
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_valid_signature_verifies() {
        let key = signing_key().verifying_key();
        let body = br#"{"type":1}"#;
        let ts = NOW.to_string();
        assert_eq!(
            verify(&key, Some(&ts), Some(&sign(&ts, body)), body, NOW),
            Ok(())
        );
    }

    #[test]
    fn tampering_and_missing_headers_fail() {
        let key = signing_key().verifying_key();
        let body = br#"{"type":1}"#;
        let ts = NOW.to_string();
        let sig = sign(&ts, body);
        assert_eq!(
            verify(&key, Some(&ts), Some(&sig), br#"{"type":2}"#, NOW),
            Err(DiscordError::BadSignature)
        );
        let other_ts = (NOW + 1).to_string();
        assert_eq!(
            verify(&key, Some(&other_ts), Some(&sig), body, NOW),
            Err(DiscordError::BadSignature)
        );
        assert_eq!(
            verify(&key, None, Some(&sig), body, NOW),
            Err(DiscordError::MissingHeader("X-Signature-Timestamp"))
        );
        assert_eq!(
            verify(&key, Some(&ts), None, body, NOW),
            Err(DiscordError::MissingHeader("X-Signature-Ed25519"))
        );
        assert_eq!(
            verify(&key, Some(&ts), Some("abcd"), body, NOW),
            Err(DiscordError::MalformedSignature)
        );
        let other_key = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            verify(&other_key, Some(&ts), Some(&sig), body, NOW),
            Err(DiscordError::BadSignature)
        );
    }

    #[test]
    fn stale_signatures_fail() {
        let key = signing_key().verifying_key();
        let body = b"{}";
        let old = (NOW - 301).to_string();
        assert!(matches!(
            verify(&key, Some(&old), Some(&sign(&old, body)), body, NOW),
            Err(DiscordError::Stale { skew: 301, .. })
        ));
        let edge = (NOW - 300).to_string();
        assert!(verify(&key, Some(&edge), Some(&sign(&edge, body)), body, NOW).is_ok());
    }
}
