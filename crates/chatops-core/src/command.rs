//! The one message every adapter produces: [`ChatCommand`], and the command-text grammar.

use crate::ids::{ChannelId, JobId, JobName, PlatformId, UserId};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// A slash command as chatops understands it, whatever platform it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatCommand {
    pub platform: PlatformId,
    /// The platform's id for this delivery (Slack `trigger_id`, Discord interaction id), used to
    /// run a command delivered twice only once. `None` when the platform gives none.
    pub request_id: Option<String>,
    pub team: Option<String>,
    pub channel: ChannelId,
    pub channel_name: Option<String>,
    pub user: UserId,
    pub user_name: Option<String>,
    /// The slash command as typed, e.g. `/demo`; it selects the project.
    pub slash_command: String,
    /// Everything after the slash command, verbatim.
    pub text: String,
    /// Where the job's reply goes.
    pub reply_to: ReplyTarget,
    /// When the platform sent the command (the start of its follow-up window).
    pub received_at: SystemTime,
    /// True when the command comes from a button click rather than a typed slash command.
    #[serde(default)]
    pub via_button: bool,
}

/// Where and how a reply can reach the channel a command came from. Serializable: the outbox
/// keeps it until the reply is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTarget {
    pub platform: PlatformId,
    /// The platform's reply webhook for this command (Slack/Mattermost `response_url`, Discord's
    /// interaction follow-up URL), if any.
    pub response_url: Option<String>,
    /// The channel, for posting through the platform's bot API.
    pub channel: ChannelId,
    /// The user the reply names (mentions).
    pub user: UserId,
    /// Platform-specific extras an adapter needs to deliver (e.g. a thread id).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What the user asked for, parsed from [`ChatCommand::text`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subcommand {
    /// `run JOB [INPUT]`: INPUT is everything after the job name and the whitespace that follows
    /// it, verbatim (newlines too).
    Run { job: JobName, input: String },
    /// `play ID`: start a `when: manual` job that waits.
    Play { job: JobId },
    /// `cancel ID`: stop a running or queued job.
    Cancel { job: JobId },
    /// `status [ID]`: one job's status; without an id, the caller's latest job in this channel
    /// (else the channel's latest).
    Status { job: Option<JobId> },
    /// `jobs`: the project's recent jobs in this channel.
    Jobs,
    /// `retry ID`: run that job again, same job and input, as the caller.
    Retry { job: JobId },
    /// `help` (or nothing at all).
    Help,
    /// Anything else; the text is kept for the error message.
    Invalid { text: String, reason: String },
}

impl Subcommand {
    /// Parses the text after the slash command (contract §3).
    pub fn parse(text: &str) -> Subcommand {
        let trimmed = text.trim_start();
        let (verb, rest) = split_word(trimmed);
        match verb {
            "" | "help" if rest.trim().is_empty() => Subcommand::Help,
            "run" => {
                let rest = rest.trim_start();
                let (job, after) = split_word(rest);
                if job.is_empty() {
                    return Subcommand::Invalid {
                        text: text.to_owned(),
                        reason: "`run` needs a job name: `run JOB [INPUT]`".into(),
                    };
                }
                // Drop exactly the whitespace that separates job and input; keep the input as
                // typed. Trailing whitespace after a bare job name leaves an empty input.
                let input = after.trim_start_matches(|c: char| c.is_whitespace());
                Subcommand::Run {
                    job: JobName::new(job),
                    input: input.to_owned(),
                }
            }
            "play" | "cancel" | "retry" => {
                let arg = rest.trim();
                match arg.parse::<JobId>() {
                    Ok(id) if !arg.is_empty() => match verb {
                        "play" => Subcommand::Play { job: id },
                        "cancel" => Subcommand::Cancel { job: id },
                        _ => Subcommand::Retry { job: id },
                    },
                    _ => Subcommand::Invalid {
                        text: text.to_owned(),
                        reason: format!("`{verb}` needs a job id: `{verb} ID`"),
                    },
                }
            }
            "status" => {
                let arg = rest.trim();
                if arg.is_empty() {
                    return Subcommand::Status { job: None };
                }
                match arg.parse::<JobId>() {
                    Ok(id) => Subcommand::Status { job: Some(id) },
                    Err(_) => Subcommand::Invalid {
                        text: text.to_owned(),
                        reason: "`status` takes a job id or nothing: `status [ID]`".into(),
                    },
                }
            }
            "jobs" if rest.trim().is_empty() => Subcommand::Jobs,
            _ => Subcommand::Invalid {
                text: text.to_owned(),
                reason: format!("`{}` is not a valid command", text.trim()),
            },
        }
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(job: &str, input: &str) -> Subcommand {
        Subcommand::Run {
            job: JobName::new(job),
            input: input.into(),
        }
    }

    #[test]
    fn run_keeps_input_verbatim() {
        assert_eq!(
            Subcommand::parse("run deploy staging"),
            run("deploy", "staging")
        );
        assert_eq!(
            Subcommand::parse("run deploy  a  b \n c\n"),
            run("deploy", "a  b \n c\n")
        );
        assert_eq!(
            Subcommand::parse("run deploy\nline2"),
            run("deploy", "line2")
        );
        assert_eq!(Subcommand::parse("  run   deploy"), run("deploy", ""));
    }

    #[test]
    fn bare_job_with_trailing_space_is_fine() {
        assert_eq!(
            Subcommand::parse("run hello-world "),
            run("hello-world", "")
        );
        assert_eq!(
            Subcommand::parse("run hello-world \t\n"),
            run("hello-world", "")
        );
    }

    #[test]
    fn help_and_invalid() {
        assert_eq!(Subcommand::parse("help"), Subcommand::Help);
        assert_eq!(Subcommand::parse(""), Subcommand::Help);
        assert_eq!(Subcommand::parse("   "), Subcommand::Help);
        assert!(matches!(
            Subcommand::parse("deploy"),
            Subcommand::Invalid { .. }
        ));
        assert!(matches!(
            Subcommand::parse("run"),
            Subcommand::Invalid { .. }
        ));
        assert!(matches!(
            Subcommand::parse("help me"),
            Subcommand::Invalid { .. }
        ));
        assert!(matches!(
            Subcommand::parse("runx y"),
            Subcommand::Invalid { .. }
        ));
    }

    #[test]
    fn status_jobs_and_retry() {
        assert_eq!(
            Subcommand::parse("status"),
            Subcommand::Status { job: None }
        );
        assert_eq!(
            Subcommand::parse("status  #12 "),
            Subcommand::Status {
                job: Some(JobId(12))
            }
        );
        assert!(matches!(
            Subcommand::parse("status deploy"),
            Subcommand::Invalid { .. }
        ));
        assert_eq!(Subcommand::parse("jobs"), Subcommand::Jobs);
        assert_eq!(Subcommand::parse(" jobs \n"), Subcommand::Jobs);
        assert!(matches!(
            Subcommand::parse("jobs all"),
            Subcommand::Invalid { .. }
        ));
        assert_eq!(
            Subcommand::parse("retry 7"),
            Subcommand::Retry { job: JobId(7) }
        );
        assert!(matches!(
            Subcommand::parse("retry"),
            Subcommand::Invalid { .. }
        ));
        assert!(matches!(
            Subcommand::parse("retry deploy"),
            Subcommand::Invalid { .. }
        ));
    }

    #[test]
    fn play_and_cancel_take_ids() {
        assert_eq!(
            Subcommand::parse("cancel 42"),
            Subcommand::Cancel { job: JobId(42) }
        );
        assert_eq!(
            Subcommand::parse("play #7"),
            Subcommand::Play { job: JobId(7) }
        );
        assert!(matches!(
            Subcommand::parse("cancel x"),
            Subcommand::Invalid { .. }
        ));
        assert!(matches!(
            Subcommand::parse("cancel"),
            Subcommand::Invalid { .. }
        ));
    }
}
