//! Newtypes for the identifiers that cross crate boundaries. Raw strings stop at the adapter.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// A chat platform's short name: `slack`, `mattermost`, `discord`, `console`, ...
    /// It is also the value of `CHAT_PLATFORM` and the key of `members` entries.
    PlatformId
);
string_id!(
    /// A project's name as configured (`projects.<name>`), e.g. `demo`.
    ProjectName
);
string_id!(
    /// A job's name in the CI file, e.g. `deploy`.
    JobName
);
string_id!(
    /// A chat user's platform id (Slack `U024BE7LH`, Mattermost `8ajk3h...`).
    UserId
);
string_id!(
    /// A chat channel's platform id.
    ChannelId
);

/// chatops' own job id: unique on this server, monotonically increasing, stable across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for JobId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().trim_start_matches('#').parse().map(JobId)
    }
}
