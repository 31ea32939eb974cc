//! Every message chatops says to a chat user, worded once here. Adapters only render them.
//! Errors say what happened and what to do.

use chatops_core::reply::format_duration;
use chatops_core::{
    Action, Inline, JobId, JobStatus, OutputBlock, PlatformId, Reply, Role, Tone, UserId,
    Visibility,
};
use std::time::{Duration, SystemTime};

fn text(s: impl Into<String>) -> Inline {
    Inline::Text(s.into())
}
fn code(s: impl Into<String>) -> Inline {
    Inline::Code(s.into())
}
fn strong(s: impl Into<String>) -> Inline {
    Inline::Strong(s.into())
}

/// The facts every message about one job carries.
#[derive(Clone, Debug)]
pub struct JobRef {
    pub id: JobId,
    pub project: String,
    /// The project's slash command, for hints like "`/demo cancel 12`".
    pub command: String,
    pub job: String,
    pub user: UserId,
    pub user_name: Option<String>,
    pub link: String,
}

impl JobRef {
    fn mention(&self) -> Inline {
        Inline::Mention {
            id: self.user.clone(),
            name: self.user_name.clone(),
        }
    }

    /// "job `deploy` (#12) on *demo*"
    fn job_phrase(&self) -> Vec<Inline> {
        vec![
            text("job "),
            code(&self.job),
            text(format!(" (#{}) on ", self.id)),
            strong(&self.project),
        ]
    }

    fn link(&self, label: &str) -> Inline {
        Inline::Link {
            url: self.link.clone(),
            label: label.into(),
        }
    }
}

/// The usage lines shown with `help` and after an invalid command.
fn usage(command: &str) -> Vec<Inline> {
    vec![
        code(format!("{command} run JOB [INPUT]")),
        text(" runs a job, "),
        code(format!("{command} play ID")),
        text(" starts a manual job, "),
        code(format!("{command} cancel ID")),
        text(" stops one, "),
        code(format!("{command} retry ID")),
        text(" runs one again, "),
        code(format!("{command} status [ID]")),
        text(" shows one, "),
        code(format!("{command} jobs")),
        text(" lists this channel's, "),
        code(format!("{command} help")),
        text(" shows this."),
    ]
}

/// One job `help` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelpEntry {
    pub name: String,
    /// The job's effective `when` in a chat pipeline (`manual` is shown).
    pub when: String,
    /// What the job does, from the CI file (a comment above it, or `CHAT_DESCRIPTION`).
    pub description: Option<String>,
}

/// `help`: what this user may run from chat, one job a line with its description.
pub fn help(project: &str, command: &str, runnable: &[HelpEntry], role: Role) -> Reply {
    let mut s = vec![strong(format!("chatops for {project}")), Inline::LineBreak];
    s.extend(usage(command));
    s.push(Inline::LineBreak);
    if role < Role::RUN_JOBS {
        s.push(text(format!(
            "Your role here is {role}; running jobs needs {} or higher.",
            Role::RUN_JOBS
        )));
    } else if runnable.is_empty() {
        s.push(text("No job of this project can run from chat."));
    } else {
        s.push(text("Jobs you can run:"));
        for job in runnable {
            s.push(Inline::LineBreak);
            s.push(text("• "));
            s.push(code(&job.name));
            if job.when == "manual" {
                s.push(text(" (manual)"));
            }
            if let Some(d) = &job.description {
                s.push(text(format!(" — {d}")));
            }
        }
    }
    Reply::ephemeral(Tone::Neutral, s)
}

/// Anything that is not a command: "not a valid command" and the help.
pub fn invalid(reason: &str, help: Reply) -> Reply {
    let mut s = vec![
        text(format!("That is not a valid command: {reason}.")),
        Inline::LineBreak,
    ];
    s.extend(help.summary);
    Reply::ephemeral(Tone::Warning, s)
}

pub fn unknown_project(slash_command: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![
            text("No chatops project answers "),
            code(slash_command),
            text(". Ask an admin to set `command:` on a project in the chatops config."),
        ],
    )
}

/// A refusal for a role too low: names the role needed and the user's platform id, so an admin
/// can add them.
pub fn role_too_low(
    project: &str,
    platform: &PlatformId,
    user: &UserId,
    role: Role,
    needed: Role,
) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![
            text(format!(
                "You need the {needed} role (or higher) in {project} to do that; you have {role}. Ask an admin to add "
            )),
            code(format!("{{{platform}: {user}, role: {needed}}}")),
            text(format!(" to projects.{project}.members.")),
        ],
    )
}

pub fn unknown_job(project: &str, job: &str, suggestions: &[String]) -> Reply {
    let mut s = vec![
        text("There is no job "),
        code(job),
        text(format!(" in {project}'s CI file.")),
    ];
    if !suggestions.is_empty() {
        s.push(text(" Did you mean "));
        for (i, name) in suggestions.iter().enumerate() {
            if i > 0 {
                s.push(text(if i + 1 == suggestions.len() {
                    " or "
                } else {
                    ", "
                }));
            }
            s.push(code(name));
        }
        s.push(text("?"));
    }
    Reply::ephemeral(Tone::Failure, s)
}

pub fn hidden_job(job: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![
            code(job),
            text(" is a hidden job (its name starts with a dot): it is a template, not something to run."),
        ],
    )
}

pub fn excluded(job: &str, reason: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![
            text("Job "),
            code(job),
            text(" does not run in chat pipelines ("),
            text(reason),
            text("). Allow it with "),
            code("rules: - if: $CI_PIPELINE_SOURCE == \"chat\""),
            text(" in the CI file."),
        ],
    )
}

/// The CI file is missing or does not load: the error names the file and line.
pub fn ci_error(project: &str, error: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![text(format!("{project}'s CI file cannot be used: {error}"))],
    )
}

pub fn internal_error(what: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![text(format!(
            "chatops could not do that: {what}. The server log has the details."
        ))],
    )
}

pub fn unknown_job_id(id: JobId) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![text(format!(
            "There is no job #{id} on this server that can be changed now (it may have finished)."
        ))],
    )
}

pub fn wrong_project(id: JobId, project: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![text(format!(
            "Job #{id} belongs to another project than {project}."
        ))],
    )
}

pub fn not_manual(id: JobId, status: &JobStatus) -> Reply {
    Reply::ephemeral(
        Tone::Warning,
        vec![text(format!(
            "Job #{id} is not waiting to be played: it {}.",
            status.describe()
        ))],
    )
}

/// `status ID` / `retry ID` for an id no job has (or one typed too large to be one).
pub fn no_such_job(id: JobId, command: &str) -> Reply {
    Reply::ephemeral(
        Tone::Failure,
        vec![
            text(format!("There is no job #{id} on this server. ")),
            code(format!("{command} jobs")),
            text(" lists this channel's recent jobs."),
        ],
    )
}

/// `retry ID` of a job that has not ended: GitLab retries finished jobs only.
pub fn not_retryable(job: &JobRef, status: &JobStatus) -> Reply {
    let mut s = vec![text(format!(
        "Job #{} {}; retry it once it has ended",
        job.id,
        status.describe()
    ))];
    if *status == JobStatus::Manual {
        s.push(text(", or play it with "));
        s.push(code(format!("{} play {}", job.command, job.id)));
    }
    s.push(text("."));
    Reply::ephemeral(Tone::Warning, s)
}

/// A stored job's facts for `status` and `jobs`.
#[derive(Clone, Debug)]
pub struct JobFacts {
    pub job: JobRef,
    pub status: JobStatus,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    /// How long it ran, once it has ended.
    pub duration: Option<Duration>,
    pub input: String,
}

impl JobFacts {
    fn who(&self) -> String {
        self.job
            .user_name
            .clone()
            .unwrap_or_else(|| self.job.user.to_string())
    }
}

/// "3m 2s ago", from `then` to `now` (a clock that went backwards reads "just now").
fn ago(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(d) if d >= Duration::from_secs(1) => {
            format!("{} ago", format_duration(Duration::from_secs(d.as_secs())))
        }
        _ => "just now".into(),
    }
}

/// Longest input `status` quotes, in characters.
const STATUS_INPUT_CHARS: usize = 80;

/// `status [ID]`: one job, to the asker only. Names the user as text, not a mention: a
/// status check should not notify anyone.
/// `control`: for a developer asking about a job that has not ended, their own signed link to
/// the job page, which shows a Cancel button (the reply is ephemeral: nobody else sees it).
pub fn job_status(facts: &JobFacts, now: SystemTime, control: Option<&str>) -> Reply {
    let job = &facts.job;
    let mut s = vec![
        text("Job "),
        code(&job.job),
        text(format!(" (#{}) on ", job.id)),
        strong(&job.project),
        text(" "),
        strong(facts.status.describe()),
    ];
    match (facts.duration, facts.started_at) {
        // A timed-out job's status already says how long it ran.
        (Some(d), _)
            if facts.status.is_terminal()
                && !matches!(facts.status, JobStatus::TimedOut { .. }) =>
        {
            s.push(text(format!(" in {}", format_duration(d))));
        }
        (_, Some(started)) if facts.status == JobStatus::Running => {
            let running = now.duration_since(started).unwrap_or_default();
            s.push(text(format!(
                " for {}",
                format_duration(Duration::from_secs(running.as_secs()))
            )));
        }
        _ => {}
    }
    s.push(Inline::LineBreak);
    s.push(text(format!(
        "Asked by {} {}",
        facts.who(),
        ago(facts.created_at, now)
    )));
    if !facts.input.is_empty() {
        let mut input: String = facts.input.chars().take(STATUS_INPUT_CHARS).collect();
        if input.len() < facts.input.len() {
            input.push('…');
        }
        s.push(text(" with input "));
        s.push(code(input.replace('\n', " ")));
    }
    s.push(text(" · "));
    s.push(job.link("view job"));
    if let Some(url) = control {
        s.push(text(" · "));
        s.push(Inline::Link {
            url: url.to_owned(),
            label: "open with Cancel (your link, 12 h)".into(),
        });
    }
    Reply::ephemeral(facts.status.tone(), s)
}

/// `jobs`: the project's recent jobs in this channel, newest first, to the asker only.
pub fn job_list(project: &str, command: &str, jobs: &[JobFacts], now: SystemTime) -> Reply {
    if jobs.is_empty() {
        return Reply::ephemeral(
            Tone::Neutral,
            vec![text(format!(
                "No job of {project} has been asked for in this channel yet."
            ))],
        );
    }
    let mut s = vec![strong(format!("Recent jobs of {project} in this channel"))];
    for facts in jobs {
        s.push(Inline::LineBreak);
        s.push(text(format!("#{} ", facts.job.id)));
        s.push(code(&facts.job.job));
        s.push(text(format!(
            " {} · {} · {} · ",
            facts.status.name(),
            facts.who(),
            ago(facts.created_at, now)
        )));
        s.push(facts.job.link("view"));
    }
    s.push(Inline::LineBreak);
    s.push(code(format!("{command} status ID")));
    s.push(text(" shows one, "));
    s.push(code(format!("{command} retry ID")));
    s.push(text(" runs one again."));
    Reply::ephemeral(Tone::Neutral, s)
}

/// A command the platform delivered twice (e.g. a retried slash command): it ran once.
pub fn duplicate(job: Option<JobId>) -> Reply {
    let what = match job {
        Some(id) => format!("job #{id}"),
        None => "it".to_owned(),
    };
    Reply::ephemeral(
        Tone::Neutral,
        vec![text(format!(
            "This command arrived twice; chatops runs it once ({what})."
        ))],
    )
}

/// Sent before the reply webhook's window closes when no bot token can post later.
pub fn still_running(job: &JobRef, window: Duration) -> Reply {
    let mut s = vec![job.mention(), text(": ")];
    s.extend(job.job_phrase());
    s.push(text(format!(
        " is still running. The platform accepts replies for {} only and chatops has no bot token here, so its result will not be posted: follow it on ",
        format_duration(window)
    )));
    s.push(job.link("its page"));
    s.push(text("."));
    Reply::new(Visibility::InChannel, Tone::Warning, s)
}

/// The ack when the real answer takes longer than the platform waits for an ack.
pub fn working_on_it() -> Reply {
    Reply::ephemeral(
        Tone::Neutral,
        vec![text(
            "Working on it: reading the project's CI file takes a moment. The answer follows here.",
        )],
    )
}

pub fn shutting_down() -> Reply {
    Reply::ephemeral(
        Tone::Warning,
        vec![text(
            "chatops is restarting and takes no new commands right now; try again in a minute.",
        )],
    )
}

/// The ack for a job that starts now.
pub fn started(job: &JobRef) -> Reply {
    let mut s = vec![job.mention(), text(" started ")];
    s.extend(job.job_phrase());
    s.push(text(" · "));
    s.push(job.link("view job"));
    let mut reply = Reply::new(Visibility::InChannel, Tone::Neutral, s);
    reply.actions.push(Action {
        label: "Cancel".into(),
        command: format!("{} cancel {}", job.command, job.id),
        danger: true,
    });
    reply
}

/// The ack for a job that waits for a free slot.
pub fn queued(job: &JobRef, position: usize) -> Reply {
    let mut s = vec![job.mention(), text(" queued ")];
    s.extend(job.job_phrase());
    s.push(text(format!(
        ": queued, position {position}; it starts when a slot frees up · "
    )));
    s.push(job.link("view job"));
    let mut reply = Reply::new(Visibility::InChannel, Tone::Neutral, s);
    reply.actions.push(Action {
        label: "Cancel".into(),
        command: format!("{} cancel {}", job.command, job.id),
        danger: true,
    });
    reply
}

/// The ack for a `when: manual` job: created, waiting to be played.
pub fn manual(job: &JobRef) -> Reply {
    let mut s = vec![job.mention(), text(" created ")];
    s.extend(job.job_phrase());
    s.push(text(
        ". It is a manual job (when: manual) and waits: play it with ",
    ));
    s.push(code(format!("{} play {}", job.command, job.id)));
    s.push(text(" · "));
    s.push(job.link("view job"));
    let mut reply = Reply::new(Visibility::InChannel, Tone::Neutral, s);
    reply.actions.push(Action {
        label: "Play".into(),
        command: format!("{} play {}", job.command, job.id),
        danger: false,
    });
    reply.actions.push(Action {
        label: "Cancel".into(),
        command: format!("{} cancel {}", job.command, job.id),
        danger: true,
    });
    reply
}

/// The ack for `cancel ID`.
pub fn cancel_requested(id: JobId) -> Reply {
    Reply::ephemeral(Tone::Neutral, vec![text(format!("Canceling job #{id}…"))])
}

/// The ack for `play ID`.
pub fn play_requested(job: &JobRef, by: &UserId, by_name: Option<&str>) -> Reply {
    let mut s = vec![
        Inline::Mention {
            id: by.clone(),
            name: by_name.map(str::to_owned),
        },
        text(" played "),
    ];
    s.extend(job.job_phrase());
    s.push(text(" · "));
    s.push(job.link("view job"));
    Reply::new(Visibility::InChannel, Tone::Neutral, s)
}

/// The job's result, posted to the channel when it ends.
pub fn finished(
    job: &JobRef,
    status: &JobStatus,
    duration: Option<Duration>,
    output: OutputBlock,
) -> Reply {
    let mut s = vec![job.mention(), text(": ")];
    s.extend(job.job_phrase());
    s.push(text(" "));
    s.push(strong(status.describe()));
    if let Some(d) = duration {
        if !matches!(status, JobStatus::TimedOut { .. }) {
            s.push(text(format!(" in {}", format_duration(d))));
        }
    }
    s.push(text(" · "));
    s.push(job.link("view job"));
    let mut reply = Reply::new(Visibility::InChannel, status.tone(), s);
    reply.output = Some(output);
    reply
}

/// A running job's live status message: who, what, for how long, and the end of its log
/// (`tail`, cleaned and masked) while it runs, with a Cancel button.
pub fn progress(job: &JobRef, elapsed: Duration, tail: &str) -> Reply {
    let mut s = vec![job.mention(), text(": ")];
    s.extend(job.job_phrase());
    s.push(text(" "));
    s.push(strong("running"));
    s.push(text(format!(" for {}", format_duration(elapsed))));
    s.push(text(" · "));
    s.push(job.link("view job"));
    let mut reply = Reply::new(Visibility::InChannel, Tone::Neutral, s);
    if !tail.is_empty() {
        reply.output = Some(OutputBlock {
            text: tail.to_owned(),
            omitted_bytes: 0,
        });
    }
    reply.actions.push(Action {
        label: "Cancel".into(),
        command: format!("{} cancel {}", job.command, job.id),
        danger: true,
    });
    reply
}

/// The status message's last edit: the job's outcome for the whole channel, with the end of
/// its output; the full reply goes in the message's thread.
pub fn final_status(
    job: &JobRef,
    status: &JobStatus,
    duration: Option<Duration>,
    output: &OutputBlock,
    lines: usize,
) -> Reply {
    let tail = last_lines(&output.text, lines);
    let omitted = output.omitted_bytes + (output.text.len() - tail.len()) as u64;
    finished(
        job,
        status,
        duration,
        OutputBlock {
            text: tail.to_owned(),
            omitted_bytes: omitted,
        },
    )
}

/// The last `n` lines of `text` (a trailing line break does not count as a line).
pub fn last_lines(text: &str, n: usize) -> &str {
    let trimmed = text.trim_end_matches('\n');
    let start = trimmed
        .char_indices()
        .rev()
        .filter(|&(_, c)| c == '\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    if n == 0 {
        return "";
    }
    &trimmed[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobRef {
        JobRef {
            id: JobId(12),
            project: "demo".into(),
            command: "/demo".into(),
            job: "deploy".into(),
            user: UserId::new("U1"),
            user_name: Some("ada".into()),
            link: "http://x/jobs/12?t=ab".into(),
        }
    }

    #[test]
    fn role_refusal_names_the_role_and_the_id() {
        let r = role_too_low(
            "demo",
            &PlatformId::new("slack"),
            &UserId::new("U9"),
            Role::Reporter,
            Role::Developer,
        );
        let t = r.plain_summary();
        assert!(t.contains("developer role"), "{t}");
        assert!(t.contains("{slack: U9, role: developer}"), "{t}");
        assert_eq!(r.visibility, Visibility::Ephemeral);
    }

    #[test]
    fn unknown_job_suggests() {
        let t = unknown_job("demo", "helo", &["hello".into(), "help-me".into()]).plain_summary();
        assert!(t.contains("Did you mean hello or help-me?"), "{t}");
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("a\nb", 0), "");
        assert_eq!(last_lines("", 3), "");
        let r = progress(&job(), Duration::from_secs(3), "step 2");
        assert!(
            r.plain_summary().contains("running for 3"),
            "{}",
            r.plain_summary()
        );
        assert_eq!(r.actions.len(), 1);
    }

    #[test]
    fn finished_reads_well() {
        let r = finished(
            &job(),
            &JobStatus::Failed { exit_code: Some(3) },
            Some(Duration::from_millis(1500)),
            OutputBlock::default(),
        );
        assert_eq!(
            r.plain_summary(),
            "@ada: job deploy (#12) on demo failed with exit code 3 in 1.5s · view job (http://x/jobs/12?t=ab)"
        );
        assert_eq!(r.tone, Tone::Failure);
        assert_eq!(r.visibility, Visibility::InChannel);
    }

    #[test]
    fn help_lists_one_job_a_line_with_its_description() {
        let entry = |name: &str, when: &str, d: Option<&str>| HelpEntry {
            name: name.into(),
            when: when.into(),
            description: d.map(Into::into),
        };
        let r = help(
            "demo",
            "/demo",
            &[
                entry("deploy", "manual", Some("Deploys to the given env")),
                entry("ls", "on_success", None),
            ],
            Role::Developer,
        );
        let t = r.plain_summary();
        assert!(
            t.contains("deploy (manual) — Deploys to the given env"),
            "{t}"
        );
        assert!(
            t.contains("/demo status [ID]") && t.contains("/demo retry ID"),
            "{t}"
        );
        assert_eq!(r.visibility, Visibility::Ephemeral);
    }

    #[test]
    fn status_and_list_read_well_and_stay_ephemeral() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let facts = JobFacts {
            job: job(),
            status: JobStatus::Succeeded,
            created_at: now - Duration::from_secs(125),
            started_at: Some(now - Duration::from_secs(124)),
            duration: Some(Duration::from_millis(1500)),
            input: "staging\nnow".into(),
        };
        let r = job_status(&facts, now, None);
        assert_eq!(
            r.plain_summary(),
            "Job deploy (#12) on demo succeeded in 1.5s\nAsked by ada 2m 5s ago with input staging now · view job (http://x/jobs/12?t=ab)"
        );
        assert_eq!(r.visibility, Visibility::Ephemeral);
        let running = JobFacts {
            status: JobStatus::Running,
            duration: None,
            ..facts.clone()
        };
        assert!(job_status(&running, now, None)
            .plain_summary()
            .contains("is running for 2m 4s"));
        let list = job_list("demo", "/demo", &[facts], now);
        let t = list.plain_summary();
        assert!(
            t.contains("#12 deploy succeeded · ada · 2m 5s ago · view"),
            "{t}"
        );
        assert_eq!(list.visibility, Visibility::Ephemeral);
        let empty = job_list("demo", "/demo", &[], now).plain_summary();
        assert!(empty.contains("No job of demo"), "{empty}");
    }

    #[test]
    fn manual_offers_play() {
        let r = manual(&job());
        assert!(r.plain_summary().contains("/demo play 12"));
        assert_eq!(r.actions[0].command, "/demo play 12");
    }
}
