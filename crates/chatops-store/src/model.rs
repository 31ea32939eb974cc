//! The records the store keeps and the requests that change them: commands ([`CommandRecord`]),
//! jobs ([`NewJob`], [`JobUpdate`], [`JobRecord`]) and replies to send ([`OutboxItem`],
//! [`AttemptOutcome`]).
//!
//! Times are `SystemTime`s kept as unix milliseconds: what goes in comes back rounded down to the
//! millisecond. The store never reads the clock itself; every time is the caller's, so a test
//! clock (`chatops_core::Clock`) drives it.

use chatops_core::{
    ChannelId, ChatCommand, JobId, JobName, JobStatus, PlatformId, ProjectName, Reply, ReplyTarget,
    UserId, Via,
};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The id of a recorded command (a row of the audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of a reply in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(pub u64);

impl fmt::Display for OutboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What became of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Understood and allowed (a job was created, played, canceled, or help was shown).
    Accepted,
    /// Understood but not allowed: role too low, job excluded from chat pipelines, unknown job...
    Refused,
    /// Not understood: unknown project or subcommand, missing argument.
    Invalid,
    /// Delivered before under the same platform request id; set by the store, which records the
    /// second delivery with this outcome and runs nothing for it.
    Duplicate,
}

impl Outcome {
    /// The name stored in the `commands.outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
            Outcome::Duplicate => "duplicate",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Accepted,
            Outcome::Refused,
            Outcome::Invalid,
            Outcome::Duplicate,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One command as the audit log keeps it: who, where, what, when, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub received_at: SystemTime,
    pub platform: PlatformId,
    /// The platform's delivery id (Slack `trigger_id`, Discord interaction id): a second command
    /// with the same `(platform, request_id)` is a duplicate.
    pub request_id: Option<String>,
    pub team: Option<String>,
    pub channel: ChannelId,
    pub channel_name: Option<String>,
    pub user: UserId,
    pub user_name: Option<String>,
    pub slash_command: String,
    pub text: String,
    pub via_button: bool,
    /// The project the slash command addressed, when one was found.
    pub project: Option<ProjectName>,
    pub outcome: Outcome,
    /// Why the command was refused or invalid (the text the user was shown).
    pub reason: Option<String>,
    /// The job the command is about: the job it created (filled in by the store when read back),
    /// or the job a `play`/`cancel` named. Not checked against the jobs table: a user may name a
    /// job that does not exist, and the log keeps what they asked.
    pub about: Option<JobId>,
}

impl CommandRecord {
    /// The record of `cmd` with `outcome`; set `project`, `reason` and `about` as known.
    pub fn new(cmd: &ChatCommand, outcome: Outcome) -> CommandRecord {
        CommandRecord {
            received_at: cmd.received_at,
            platform: cmd.platform.clone(),
            request_id: cmd.request_id.clone(),
            team: cmd.team.clone(),
            channel: cmd.channel.clone(),
            channel_name: cmd.channel_name.clone(),
            user: cmd.user.clone(),
            user_name: cmd.user_name.clone(),
            slash_command: cmd.slash_command.clone(),
            text: cmd.text.clone(),
            via_button: cmd.via_button,
            project: None,
            outcome,
            reason: None,
            about: None,
        }
    }

    /// Sets the project the command addressed.
    pub fn with_project(mut self, project: ProjectName) -> CommandRecord {
        self.project = Some(project);
        self
    }

    /// Sets why the command was refused or invalid.
    pub fn with_reason(mut self, reason: impl Into<String>) -> CommandRecord {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the existing job the command is about (`play 42`, `cancel 42`).
    pub fn with_about(mut self, job: JobId) -> CommandRecord {
        self.about = Some(job);
        self
    }
}

/// A command read back from the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCommand {
    pub id: CommandId,
    /// As recorded; `about` holds the job the command created, if it created one.
    pub record: CommandRecord,
}

/// What [`Store::record_command`](crate::Store::record_command) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new command; `job` is the job created with it, if one was.
    New {
        command: CommandId,
        job: Option<JobId>,
    },
    /// The platform delivered this command before (same request id): it was logged as a
    /// duplicate and nothing else happened. `job` is the job the first delivery created (or,
    /// for a `play`/`cancel`, named), so the caller can ack with it.
    Duplicate {
        command: CommandId,
        original: CommandId,
        job: Option<JobId>,
    },
}

impl Recorded {
    /// The job the command created; for a duplicate, the job of its first delivery.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Recorded::New { job, .. } | Recorded::Duplicate { job, .. } => *job,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, Recorded::Duplicate { .. })
    }
}

/// A job to create together with the command that asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub project: ProjectName,
    pub job_name: JobName,
    /// `CI_PIPELINE_ID`; `None` uses the job's own id (a chat pipeline holds one job).
    pub pipeline_id: Option<u64>,
    /// Usually `Queued`, `Manual` or `Running`.
    pub status: JobStatus,
    pub created_at: SystemTime,
    /// `CHAT_INPUT`.
    pub input: String,
    /// Where replies about the job go; its platform, channel and user are the job's.
    pub reply_target: ReplyTarget,
    pub user_name: Option<String>,
    /// The job's effective `when` (`on_success`, `manual`, ...).
    pub when: Option<String>,
    pub resource_group: Option<String>,
    /// The job's log file, when known at creation (else set it with [`JobUpdate::log_path`]).
    pub log_path: Option<PathBuf>,
}

/// A change to a job. Fields left `None` stay as they are. Build it with the constructors and
/// `with_*` methods, or as a struct literal with `..Default::default()`.
///
/// A job whose status is terminal keeps it: an update that carries a status for such a job is
/// refused with [`StoreError::JobFinished`](crate::StoreError::JobFinished) and changes nothing.
/// `exit_code` and `canceled_by` are filled from a `Failed`/`Succeeded`/`Canceled` status when
/// not given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobUpdate {
    pub status: Option<JobStatus>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub duration: Option<Duration>,
    pub log_path: Option<PathBuf>,
    /// The job's process group, so that a restart can kill what a crash left running.
    pub pgid: Option<i32>,
    pub canceled_by: Option<String>,
    /// A new reply target (a button click brings a fresh `response_url`). When its
    /// `response_url` differs from the job's, the `response_url` use count starts again at 0.
    pub reply_target: Option<ReplyTarget>,
}

impl JobUpdate {
    /// Only a new status.
    pub fn status(status: JobStatus) -> JobUpdate {
        JobUpdate {
            status: Some(status),
            ..JobUpdate::default()
        }
    }

    /// The job started now, in process group `pgid`.
    pub fn started(at: SystemTime, pgid: Option<i32>) -> JobUpdate {
        JobUpdate {
            status: Some(JobStatus::Running),
            started_at: Some(at),
            pgid,
            ..JobUpdate::default()
        }
    }

    /// The job ended with `status` at `at`, having run for `duration`.
    pub fn finished(status: JobStatus, at: SystemTime, duration: Duration) -> JobUpdate {
        JobUpdate {
            status: Some(status),
            finished_at: Some(at),
            duration: Some(duration),
            ..JobUpdate::default()
        }
    }

    /// Also sets the log file.
    pub fn with_log_path(mut self, path: PathBuf) -> JobUpdate {
        self.log_path = Some(path);
        self
    }
}

/// A job as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub project: ProjectName,
    pub job_name: JobName,
    pub pipeline_id: u64,
    pub status: JobStatus,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub duration: Option<Duration>,
    pub log_path: Option<PathBuf>,
    pub platform: PlatformId,
    pub channel: ChannelId,
    pub user: UserId,
    pub user_name: Option<String>,
    pub input: String,
    pub reply_target: ReplyTarget,
    pub when: Option<String>,
    pub resource_group: Option<String>,
    pub pgid: Option<i32>,
    pub canceled_by: Option<String>,
    /// Posts made through the current `response_url` so far.
    pub response_url_uses: u32,
}

/// The id of a command-line request handed to the live server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CliRequestId(pub u64);

impl fmt::Display for CliRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A command the command line asks the live server to run for it (`chatops play 12` beside a
/// running `chatops serve`): the server runs it as a console command of `user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCliRequest {
    pub created_at: SystemTime,
    /// The asking process, for the server's log.
    pub pid: u32,
    /// The project's slash command (`/demo`).
    pub slash_command: String,
    /// The command text (`run deploy staging`, `play 12`, `cancel 12`).
    pub text: String,
    pub user: UserId,
    pub user_name: Option<String>,
}

/// Where a command-line request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliRequest {
    pub id: CliRequestId,
    pub request: NewCliRequest,
    /// Set once the server answered: the ack's text.
    pub ack: Option<String>,
    /// The job the command created or named, when the ack has one.
    pub job: Option<JobId>,
    pub answered: bool,
    /// The job's reply, when it was addressed to this request.
    pub reply: Option<String>,
}

/// Where a reply is in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Not delivered yet; due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: `last_error` says why.
    Failed,
}

impl OutboxState {
    /// The name stored in the `outbox.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<OutboxState> {
        [
            OutboxState::Pending,
            OutboxState::Delivered,
            OutboxState::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// A reply in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub job: Option<JobId>,
    pub created_at: SystemTime,
    pub target: ReplyTarget,
    pub reply: Reply,
    pub state: OutboxState,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (for a claimed item: when its claim runs out).
    pub next_attempt_at: SystemTime,
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub settled_at: Option<SystemTime>,
    /// How it was delivered.
    pub via: Option<Via>,
}

/// How a delivery attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Posted. The reply is done.
    Delivered { via: Via, at: SystemTime },
    /// Failed in a way worth retrying; try again at `when`.
    RetryAt { when: SystemTime, error: String },
    /// Failed for good (permanent error, or retried for too long). The reply is done.
    GaveUp { at: SystemTime, error: String },
}

pub(crate) fn via_name(via: Via) -> &'static str {
    match via {
        Via::ResponseUrl => "response_url",
        Via::BotApi => "bot_api",
    }
}

pub(crate) fn parse_via(s: &str) -> Option<Via> {
    match s {
        "response_url" => Some(Via::ResponseUrl),
        "bot_api" => Some(Via::BotApi),
        _ => None,
    }
}

/// Unix milliseconds; times before 1970 go negative, absurdly far ones saturate.
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis())
            .map(|ms| -ms)
            .unwrap_or(i64::MIN),
    }
}

/// The inverse of [`to_ms`]; out-of-range values (only a corrupt row holds them) clamp to the
/// epoch rather than panic.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    let t = if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// Milliseconds of a duration, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(to_ms(t), 1_700_000_000_123);
        assert_eq!(
            from_ms(to_ms(t)),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(to_ms(before), -1500);
        assert_eq!(from_ms(-1500), before);
    }

    #[test]
    fn names_parse_back() {
        for o in [
            Outcome::Accepted,
            Outcome::Refused,
            Outcome::Invalid,
            Outcome::Duplicate,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("maybe"), None);
        for s in [
            OutboxState::Pending,
            OutboxState::Delivered,
            OutboxState::Failed,
        ] {
            assert_eq!(OutboxState::parse(s.as_str()), Some(s));
        }
        for v in [Via::ResponseUrl, Via::BotApi] {
            assert_eq!(parse_via(via_name(v)), Some(v));
        }
    }
}
