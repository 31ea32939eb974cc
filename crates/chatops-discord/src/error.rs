//! The crate's error type.

/// Everything that can go wrong in the Discord adapter outside delivery (delivery failures are
/// `chatops_core::DeliveryError`, classified for retries).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiscordError {
    /// A signature header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// `X-Signature-Ed25519` is not 64 bytes of hex.
    #[error("the X-Signature-Ed25519 header is not 128 hex digits")]
    MalformedSignature,
    /// `X-Signature-Timestamp` is not a Unix time in seconds.
    #[error("the X-Signature-Timestamp header `{0}` is not a Unix timestamp")]
    BadTimestamp(String),
    /// The request was signed too long ago (or in the future): a possible replay.
    #[error("the request timestamp {timestamp} is {skew} s away from now ({now}); at most 300 s are allowed")]
    Stale { timestamp: u64, now: u64, skew: u64 },
    /// The signature does not verify with the application's public key.
    #[error("the Ed25519 signature does not match the request")]
    BadSignature,
    /// The interaction is for another application.
    #[error("the interaction is for application {0}, not this one")]
    WrongApplication(String),
    /// The body is not an interaction chatops can use.
    #[error("malformed Discord interaction: {0}")]
    Malformed(String),
    /// The `discord:` config section is unusable.
    #[error("{0}")]
    Config(String),
}
