//! Project roles, GitLab's ladder: `none < guest < reporter < developer < maintainer < owner`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    None,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    /// The role a chat user needs to run (or play, or cancel) a job, as in GitLab ChatOps.
    pub const RUN_JOBS: Role = Role::Developer;

    /// The role a chat user needs to read jobs (`status`, `jobs`): GitLab lets reporters (not
    /// guests) see a private project's jobs and their logs.
    pub const READ_JOBS: Role = Role::Reporter;

    pub const ALL: [Role; 6] = [
        Role::None,
        Role::Guest,
        Role::Reporter,
        Role::Developer,
        Role::Maintainer,
        Role::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Guest => "guest",
            Role::Reporter => "reporter",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown role `{0}` (expected one of: none, guest, reporter, developer, maintainer, owner)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_is_ordered_and_parses() {
        assert!(Role::Developer >= Role::RUN_JOBS);
        assert!(Role::Reporter < Role::RUN_JOBS);
        assert_eq!("Maintainer".parse::<Role>().unwrap(), Role::Maintainer);
        assert!("admin".parse::<Role>().is_err());
    }
}
