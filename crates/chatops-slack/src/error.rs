//! The crate's error type.

/// Everything that can go wrong in the Slack adapter outside delivery (delivery failures are
/// `chatops_core::DeliveryError`, classified for retries).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlackError {
    /// A signing header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// `X-Slack-Request-Timestamp` is not a Unix time in seconds.
    #[error("the X-Slack-Request-Timestamp header `{0}` is not a Unix timestamp")]
    BadTimestamp(String),
    /// The request is older (or newer) than the allowed skew: a possible replay.
    #[error("the request timestamp {timestamp} is {skew} s away from now ({now}); at most 300 s are allowed")]
    Stale { timestamp: u64, now: u64, skew: u64 },
    /// `X-Slack-Signature` is not `v0=` followed by 64 hex digits.
    #[error("the X-Slack-Signature header is not of the form v0=<64 hex digits>")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("the X-Slack-Signature does not match the request body")]
    BadSignature,
    /// The body is not a form Slack would send, or lacks a field chatops needs.
    #[error("malformed Slack request: {0}")]
    Malformed(String),
    /// The `slack:` config section is unusable.
    #[error("{0}")]
    Config(String),
}
