//! The coordinator, tested through its real HTTP API: an actix-web server on port 0 with the
//! coordinator mounted, a real SQLite store in a temp dir, real git, real runner processes.
//!
//! - `runner`: Collabora's client (`chatops-testrunner`) runs jobs end to end.
//! - `git`: runners fetch git projects through `/git/...` with their job token.
//! - `protocol`: the wire edge cases, with raw HTTP.
//! - `restart`: a new coordinator on the same store resumes jobs runners still hold.

mod git;
mod protocol;
mod restart;
mod runner;
mod support;
