//! The crate's error type.

/// Everything that can go wrong in the Mattermost adapter outside delivery (delivery failures
/// are `chatops_core::DeliveryError`, classified for retries).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MattermostError {
    /// Neither `Authorization: Token …` nor a `token` field came with the request.
    #[error("the request carries no slash-command token")]
    MissingToken,
    /// A token came, but it is not one of `mattermost.tokens`.
    #[error("the slash-command token is not one of mattermost.tokens")]
    BadToken,
    /// A button callback whose context was not signed by this server.
    #[error("the button callback's context is not signed by this server")]
    BadActionSignature,
    /// The request is not what Mattermost sends, or lacks a field chatops needs.
    #[error("malformed Mattermost request: {0}")]
    Malformed(String),
    /// The `mattermost:` config section is unusable.
    #[error("{0}")]
    Config(String),
}
