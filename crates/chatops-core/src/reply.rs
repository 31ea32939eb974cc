//! The reply model. The core words a reply once ([`Reply`]); every adapter renders it in its
//! platform's dialect (Slack mrkdwn, Markdown, ...), escaping and fitting it to the platform's
//! limits.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who sees a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone in the channel.
    InChannel,
    /// Only the user who typed the command.
    Ephemeral,
}

/// The mood of a message; adapters map it to a colour or an emoji.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Neutral,
    Success,
    Failure,
    Warning,
}

impl Tone {
    /// The emoji shortcode Slack and Mattermost show in front of a message of this tone.
    pub fn shortcode(self) -> Option<&'static str> {
        match self {
            Tone::Success => Some(":white_check_mark:"),
            Tone::Failure => Some(":x:"),
            Tone::Warning => Some(":warning:"),
            Tone::Neutral => None,
        }
    }
}

/// Wraps `text` in an emphasis `mark` (`*`, `**`, `` ` ``), escaping it with the platform's
/// `escape`. Markdown dialects need the marks next to non-space characters, so surrounding
/// whitespace moves outside them; blank text gets no marks.
pub fn wrap_marked(out: &mut String, text: &str, mark: &str, escape: impl Fn(&str) -> String) {
    let inner = text.trim();
    if inner.is_empty() {
        out.push_str(&escape(text));
        return;
    }
    let lead = &text[..text.len() - text.trim_start().len()];
    let trail = &text[text.trim_end().len()..];
    out.push_str(&escape(lead));
    out.push_str(mark);
    out.push_str(&escape(inner));
    out.push_str(mark);
    out.push_str(&escape(trail));
}

/// A piece of inline text. Adapters escape `Text`, `Strong` and `Code` for their platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Inline {
    Text(String),
    Strong(String),
    Code(String),
    Link {
        url: String,
        label: String,
    },
    /// A mention of a chat user (`<@U123>` on Slack, `@name` on Mattermost).
    Mention {
        id: UserId,
        name: Option<String>,
    },
    LineBreak,
}

/// Preformatted job output, already cleaned (no ANSI, markers or invalid UTF-8; secrets masked)
/// but neither escaped nor cut to a platform's limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputBlock {
    pub text: String,
    /// Bytes of output before `text` that were already dropped while collecting (the server
    /// keeps only the end of very large outputs in memory; the full log stays on disk).
    pub omitted_bytes: u64,
}

/// A button under a message (where the platform has buttons).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub label: String,
    /// What the click does, parsed back by the adapter into a command (`play 42`, `cancel 42`).
    pub command: String,
    pub danger: bool,
}

/// One message to a chat platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub visibility: Visibility,
    pub tone: Tone,
    /// The message text; `LineBreak` separates lines.
    pub summary: Vec<Inline>,
    /// Job output, shown as preformatted text after the summary.
    pub output: Option<OutputBlock>,
    pub actions: Vec<Action>,
}

impl Reply {
    pub fn new(visibility: Visibility, tone: Tone, summary: Vec<Inline>) -> Reply {
        Reply {
            visibility,
            tone,
            summary,
            output: None,
            actions: Vec::new(),
        }
    }

    /// A message only the user sees, e.g. an error.
    pub fn ephemeral(tone: Tone, summary: Vec<Inline>) -> Reply {
        Reply::new(Visibility::Ephemeral, tone, summary)
    }

    /// The summary as plain text (no markup), for logs, the console and tests.
    pub fn plain_summary(&self) -> String {
        let mut out = String::new();
        for part in &self.summary {
            match part {
                Inline::Text(t) | Inline::Strong(t) | Inline::Code(t) => out.push_str(t),
                Inline::Link { url, label } => {
                    out.push_str(label);
                    out.push_str(" (");
                    out.push_str(url);
                    out.push(')');
                }
                Inline::Mention { id, name } => {
                    out.push('@');
                    out.push_str(name.as_deref().unwrap_or(id.as_str()));
                }
                Inline::LineBreak => out.push('\n'),
            }
        }
        out
    }
}

/// Where a job is in its life. Terminal states never change again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum JobStatus {
    /// Waiting for a free slot (server, project or `resource_group` limit).
    Queued {
        position: usize,
    },
    /// A `when: manual` job waiting to be played.
    Manual,
    Running,
    Succeeded,
    Failed {
        exit_code: Option<i32>,
    },
    Canceled {
        by: Option<String>,
    },
    TimedOut {
        after: Duration,
    },
    /// The server stopped (crash or restart) while the job ran.
    Interrupted,
    /// A `when: manual` job nobody played within `server.manual_job_ttl`.
    Expired,
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            JobStatus::Queued { .. } | JobStatus::Manual | JobStatus::Running
        )
    }

    /// A stable one-word name (`succeeded`, `failed`, `timed_out`, ...), for the store and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Queued { .. } => "queued",
            JobStatus::Manual => "manual",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed { .. } => "failed",
            JobStatus::Canceled { .. } => "canceled",
            JobStatus::TimedOut { .. } => "timed_out",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Expired => "expired",
        }
    }

    /// How the status reads in a sentence: "succeeded", "failed with exit code 3", ...
    pub fn describe(&self) -> String {
        match self {
            JobStatus::Queued { position } => format!("is queued (position {position})"),
            JobStatus::Manual => "is waiting to be played (when: manual)".into(),
            JobStatus::Running => "is running".into(),
            JobStatus::Succeeded => "succeeded".into(),
            JobStatus::Failed {
                exit_code: Some(code),
            } => format!("failed with exit code {code}"),
            JobStatus::Failed { exit_code: None } => "failed".into(),
            JobStatus::Canceled { by: Some(by) } => format!("was canceled by {by}"),
            JobStatus::Canceled { by: None } => "was canceled".into(),
            JobStatus::TimedOut { after } => {
                format!("timed out after {}", format_duration(*after))
            }
            JobStatus::Interrupted => "was interrupted: the chatops server restarted".into(),
            JobStatus::Expired => {
                "expired: it waited to be played longer than server.manual_job_ttl".into()
            }
        }
    }

    pub fn tone(&self) -> Tone {
        match self {
            JobStatus::Succeeded => Tone::Success,
            JobStatus::Failed { .. } | JobStatus::TimedOut { .. } | JobStatus::Interrupted => {
                Tone::Failure
            }
            JobStatus::Canceled { .. } | JobStatus::Expired => Tone::Warning,
            _ => Tone::Neutral,
        }
    }
}

/// `1h 2m 3s`, `4.2s`, `12ms`: short and human.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h {}m {}s", secs / 3600, secs % 3600 / 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs >= 10 {
        format!("{secs}s")
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The end of `text` whose cost (summed per char, e.g. its escaped length) fits `budget`.
/// Returns the kept suffix and the number of chars left out. When it cuts, it starts the kept
/// part at a line start if one is near, so the first line shown is whole.
pub fn tail_within(text: &str, budget: usize, cost: impl Fn(char) -> usize) -> (&str, usize) {
    let mut spent = 0usize;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        let next = spent + cost(c);
        if next > budget {
            break;
        }
        spent = next;
        start = i;
    }
    if start == 0 {
        return (text, 0);
    }
    let mut kept = &text[start..];
    // Prefer a whole first line when a line break is close to the cut.
    if let Some(nl) = kept.find('\n') {
        if nl < 200 && nl + 1 < kept.len() {
            kept = &kept[nl + 1..];
        }
    }
    let omitted = text[..text.len() - kept.len()].chars().count();
    (kept, omitted)
}

/// The user-facing note for output that was cut: "… 1234 characters of output left out".
pub fn omitted_note(omitted_chars: usize, omitted_bytes: u64) -> Option<String> {
    match (omitted_chars, omitted_bytes) {
        (0, 0) => None,
        (c, 0) => Some(format!("… {c} characters of earlier output left out")),
        (0, b) => Some(format!("… {b} bytes of earlier output left out")),
        (c, b) => Some(format!(
            "… {b} bytes and {c} characters of earlier output left out"
        )),
    }
}

/// What a reply says instead of an empty block when the job printed nothing.
pub const NOTHING_PRINTED: &str = "The job printed nothing.";

/// Job output fitted to a platform's budget, as every adapter shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FittedOutput<'a> {
    /// The kept end of the output, unescaped; `None` when the job printed nothing.
    pub kept: Option<&'a str>,
    /// What was left out ([`omitted_note`]), if anything.
    pub note: Option<String>,
}

/// Fits `output` into `budget` (costs per char, e.g. escaped lengths) keeping its end. Blank
/// lines at either end are dropped first: in a preformatted block they only cost space.
pub fn fit_output(
    output: &OutputBlock,
    budget: usize,
    cost: impl Fn(char) -> usize,
) -> FittedOutput<'_> {
    let text = output
        .text
        .trim_start_matches(['\n', '\r'])
        .trim_end_matches(char::is_whitespace);
    let (kept, omitted) = tail_within(text, budget, cost);
    FittedOutput {
        kept: (!kept.trim().is_empty()).then_some(kept),
        note: omitted_note(omitted, output.omitted_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_moves_spaces_outside_the_marks() {
        let mut out = String::new();
        wrap_marked(&mut out, " bold <b> ", "**", |t| t.replace('<', "&lt;"));
        assert_eq!(out, " **bold &lt;b>** ");
        let mut blank = String::new();
        wrap_marked(&mut blank, "  ", "*", str::to_owned);
        assert_eq!(blank, "  ");
    }

    #[test]
    fn tail_keeps_the_end() {
        let (kept, omitted) = tail_within("abcdef", 3, |_| 1);
        assert_eq!(kept, "def");
        assert_eq!(omitted, 3);
        let (kept, omitted) = tail_within("abc", 10, |_| 1);
        assert_eq!((kept, omitted), ("abc", 0));
    }

    #[test]
    fn tail_respects_costs_and_char_boundaries() {
        let (kept, omitted) = tail_within("a&b&é", 7, |c| if c == '&' { 5 } else { 1 });
        assert_eq!(kept, "b&é");
        assert_eq!(omitted, 2);
    }

    #[test]
    fn tail_prefers_line_start() {
        let text = "line one\nline two\nline three";
        let (kept, omitted) = tail_within(text, 15, |_| 1);
        assert_eq!(kept, "line three");
        assert_eq!(omitted, text.len() - "line three".len());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(format_duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h 2m 3s");
    }

    #[test]
    fn fit_output_trims_blank_edges_and_notes_cuts() {
        let output = OutputBlock {
            text: "\n\nfirst\nsecond\nthird\n\n".into(),
            omitted_bytes: 0,
        };
        let all = fit_output(&output, 100, |_| 1);
        assert_eq!(all.kept, Some("first\nsecond\nthird"));
        assert_eq!(all.note, None);
        let cut = fit_output(&output, 8, |_| 1);
        assert_eq!(cut.kept, Some("third"));
        assert_eq!(
            cut.note.as_deref(),
            Some("… 13 characters of earlier output left out")
        );
        let blank = OutputBlock {
            text: " \n\n".into(),
            omitted_bytes: 0,
        };
        let empty = fit_output(&blank, 10, |_| 1);
        assert_eq!(
            empty,
            FittedOutput {
                kept: None,
                note: None
            }
        );
    }
}
