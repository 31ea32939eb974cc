//! Ways the harness itself can fail (as opposed to chatops missing a target, which is a
//! measurement and not an error).

use std::path::PathBuf;
use std::time::Duration;

/// A harness failure: the bench cannot produce a trustworthy figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A command the bench runs (cargo, the server) could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What was being started.
        what: String,
        /// Why not.
        source: std::io::Error,
    },
    /// `cargo build --release --bin chatops` failed.
    #[error("`cargo build --release --bin chatops` failed ({0}); fix the build and rerun")]
    Build(std::process::ExitStatus),
    /// The server exited or never said where it listens.
    #[error("{what} did not start within {waited:?}; the end of its stderr:\n{stderr}")]
    NotStarted {
        /// Which server.
        what: String,
        /// How long the bench waited.
        waited: Duration,
        /// The last lines it logged.
        stderr: String,
    },
    /// A file of the bench's temporary setup could not be written.
    #[error("cannot write {0}: {1}")]
    Setup(PathBuf, std::io::Error),
    /// `/proc` could not be read (not Linux, or the process is gone).
    #[error("cannot read {0}: {1}")]
    Proc(String, std::io::Error),
    /// `/proc` said something the bench cannot parse.
    #[error("{0} is not in the format the bench expects")]
    ProcFormat(String),
    /// The fake chat platform could not listen.
    #[error("the fake chat platform cannot listen: {0}")]
    Fake(std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    /// chatops answered, but not as the bench project should make it answer (the harness's
    /// setup or the server's contract is off): the measurement would be meaningless.
    #[error("{0}")]
    Unexpected(String),
    /// A baseline's own work failed (e.g. `sh -c 'echo hi'` printed something else).
    #[error("baseline failed: {0}")]
    Baseline(String),
}
