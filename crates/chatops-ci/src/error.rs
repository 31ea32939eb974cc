//! The crate's error type: every way loading a CI file can fail, worded for the person who
//! has to fix the file.

use std::fmt;

/// Why a CI file could not be loaded, or a duration not read.
///
/// `Display` is what the user reads: it names the file, the line where it is known, what is
/// wrong and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiError {
    /// The CI file (or a file it includes) does not exist.
    #[error("{file}: not found; {hint}")]
    NotFound {
        /// The repository-relative path that was looked for.
        file: String,
        /// What to do about it.
        hint: String,
    },
    /// The file exists but could not be read.
    #[error("{file}: cannot read it: {reason}")]
    Read {
        /// The repository-relative path.
        file: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file is not valid YAML (or YAML that cannot be accepted: too large, too deep).
    #[error("{}: {message}", Where(file, *line))]
    Yaml {
        /// The file holding the error.
        file: String,
        /// 1-based line, where the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The YAML is well formed but is not a valid CI configuration.
    #[error("{}: {message}", Where(file, *line))]
    Invalid {
        /// The file holding the error.
        file: String,
        /// 1-based line, where it could be found.
        line: Option<usize>,
        /// What is wrong, in GitLab's words where GitLab has them.
        message: String,
    },
    /// A duration (`timeout`, `start_in`) that is not in one of GitLab's forms.
    #[error("invalid duration {text:?}: {message} (write it like \"1h 30m\", \"10 minutes\" or \"90 seconds\")")]
    Duration {
        /// The text as written.
        text: String,
        /// What is wrong with it.
        message: String,
    },
}

impl CiError {
    /// The file the error is about, where there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            CiError::NotFound { file, .. }
            | CiError::Read { file, .. }
            | CiError::Yaml { file, .. }
            | CiError::Invalid { file, .. } => Some(file),
            CiError::Duration { .. } => None,
        }
    }

    /// The 1-based line the error is about, where it is known.
    pub fn line(&self) -> Option<usize> {
        match self {
            CiError::Yaml { line, .. } | CiError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// A semantic error in `file` at `line`.
    pub(crate) fn invalid(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        CiError::Invalid {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// Formats `file` or `file:line` for the messages above.
struct Where<'a>(&'a String, Option<usize>);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(line) => write!(f, "{}:{}", self.0, line),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_error_names_file_and_line() {
        let e = CiError::Yaml {
            file: ".gitlab-ci.yml".into(),
            line: Some(12),
            message: "mapping values are not allowed here".into(),
        };
        assert_eq!(
            e.to_string(),
            ".gitlab-ci.yml:12: mapping values are not allowed here"
        );
        assert_eq!(e.line(), Some(12));
        assert_eq!(e.file(), Some(".gitlab-ci.yml"));
    }

    #[test]
    fn invalid_without_line_names_file_only() {
        let e = CiError::invalid("ci/a.yml", None, "jobs:x config can't be blank");
        assert_eq!(e.to_string(), "ci/a.yml: jobs:x config can't be blank");
    }
}
