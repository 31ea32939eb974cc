//! The reply side: a platform-neutral [`Reply`] rendered as a Discord message (`content`,
//! `components`, `flags`, `allowed_mentions`), within Discord's 2000-character limit.
//!
//! - Markdown with backslash escapes (Discord honours `\` before any punctuation).
//! - Mentions: `allowed_mentions` lets through only the users the reply mentions on purpose, so
//!   `@everyone` in a job name or output notifies no one.
//! - Output is a ``` block. Discord ends a block at the first ``` whatever the opening fence,
//!   so a zero-width space goes between adjacent backticks in the output.
//! - Tone: an emoji in front of the summary (✅ success, ❌ failure, ⚠️ warning). Plain
//!   `content` has no colour; embeds would, but the contract names `content`.
//! - Flags: `EPHEMERAL` (64) for replies only the user may see; `SUPPRESS_EMBEDS` (4) always, so
//!   the job link does not unfurl into a preview.
//! - Buttons: action rows of up to 5 buttons (25 at most); `custom_id` is the command line
//!   (at most 100 characters, longer commands get no button).

use chatops_core::reply::{fit_output, wrap_marked, NOTHING_PRINTED};
use chatops_core::{Action, Inline, Reply, Tone, Visibility};
use serde_json::{json, Value};

/// The most characters a message's `content` may hold.
pub const CONTENT_MAX: usize = 2000;
/// The summary takes at most this much, leaving the rest for output.
const SUMMARY_MAX: usize = 1000;
/// Reserved for the omitted-output note and separators.
const NOTE_RESERVE: usize = 100;
/// "```\n" before and "\n```" after the output.
const FENCE_OVERHEAD: usize = 8;
/// Message flags.
pub const EPHEMERAL: u64 = 1 << 6;
pub const SUPPRESS_EMBEDS: u64 = 1 << 2;
const BUTTONS_PER_ROW: usize = 5;
const MAX_BUTTONS: usize = 25;
const CUSTOM_ID_MAX: usize = 100;
const LABEL_MAX: usize = 80;
const ZWSP: char = '\u{200B}';

/// Escapes Markdown control characters with backslashes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at_line_start = true;
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '~' | '|' | '[' | ']' | '<' | '>' | '@' => {
                out.push('\\');
                out.push(c);
            }
            // Headings, lists and quotes only mean something at the start of a line.
            '#' | '-' if at_line_start => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        if c == '\n' {
            at_line_start = true;
        } else if !c.is_whitespace() {
            at_line_start = false;
        }
    }
    out
}

/// Output inside a ``` block: a zero-width space between adjacent backticks.
fn escape_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        if c == '`' && previous == Some('`') {
            out.push(ZWSP);
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

/// A backtick may gain a zero-width space.
fn code_cost(c: char) -> usize {
    if c == '`' {
        2
    } else {
        1
    }
}

fn render_inline(part: &Inline, out: &mut String, mentioned: &mut Vec<String>) {
    match part {
        Inline::Text(t) => out.push_str(&escape(t)),
        Inline::Strong(t) => wrap_marked(out, t, "**", escape),
        Inline::Code(t) if t.contains('`') || t.contains('\n') || t.trim().is_empty() => {
            out.push_str(&escape(t))
        }
        Inline::Code(t) => {
            out.push('`');
            out.push_str(t);
            out.push('`');
        }
        Inline::Link { url, label } => {
            let label = if label.trim().is_empty() { url } else { label };
            let url: String = url
                .chars()
                .filter(|c| !c.is_control())
                .map(|c| match c {
                    ' ' => "%20".to_owned(),
                    '(' => "%28".to_owned(),
                    ')' => "%29".to_owned(),
                    c => c.to_string(),
                })
                .collect();
            out.push('[');
            out.push_str(&escape(label));
            out.push_str("](");
            out.push_str(&url);
            out.push(')');
        }
        Inline::Mention { id, name } => {
            let id: String = id.as_str().chars().filter(char::is_ascii_digit).collect();
            if id.is_empty() {
                out.push_str(&escape(name.as_deref().unwrap_or("someone")));
            } else {
                out.push_str("<@");
                out.push_str(&id);
                out.push('>');
                if !mentioned.contains(&id) {
                    mentioned.push(id);
                }
            }
        }
        Inline::LineBreak => out.push('\n'),
    }
}

/// The summary in Markdown (without the tone emoji) and the user ids it mentions.
pub fn markdown(summary: &[Inline]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut mentioned = Vec::new();
    for part in summary {
        render_inline(part, &mut out, &mut mentioned);
    }
    (out, mentioned)
}

/// The emoji in front of the summary.
pub fn tone_emoji(tone: Tone) -> Option<&'static str> {
    match tone {
        Tone::Success => Some("✅"),
        Tone::Failure => Some("❌"),
        Tone::Warning => Some("⚠️"),
        Tone::Neutral => None,
    }
}

fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    let trailing = kept.len() - kept.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        kept.pop();
    }
    kept.push('…');
    kept
}

fn components(actions: &[Action]) -> Vec<Value> {
    let buttons: Vec<Value> = actions
        .iter()
        .filter(|a| {
            let fits = !a.command.trim().is_empty() && a.command.chars().count() <= CUSTOM_ID_MAX;
            if !fits {
                tracing::warn!(label = %a.label, "button command is empty or over Discord's 100-character custom_id; button left out");
            }
            fits
        })
        .take(MAX_BUTTONS)
        .map(|a| {
            let label = if a.label.trim().is_empty() { &a.command } else { &a.label };
            json!({
                "type": 2,
                // 4 = danger (red), 2 = secondary (grey).
                "style": if a.danger { 4 } else { 2 },
                "label": cap(label, LABEL_MAX),
                "custom_id": a.command,
            })
        })
        .collect();
    buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| json!({"type": 1, "components": row}))
        .collect()
}

/// Renders `reply` as a Discord message (interaction response `data` or follow-up body).
pub fn render_message(reply: &Reply) -> Value {
    let (summary, mentioned) = markdown(&reply.summary);
    let mut content = cap(&summary, SUMMARY_MAX);
    if let Some(emoji) = tone_emoji(reply.tone) {
        content = if content.is_empty() {
            emoji.to_owned()
        } else {
            format!("{emoji} {content}")
        };
    }
    if let Some(output) = &reply.output {
        let budget =
            CONTENT_MAX.saturating_sub(content.chars().count() + NOTE_RESERVE + FENCE_OVERHEAD + 2);
        let fitted = fit_output(output, budget, code_cost);
        if let Some(note) = &fitted.note {
            content.push('\n');
            content.push('_');
            content.push_str(&escape(note));
            content.push('_');
        }
        content.push('\n');
        match fitted.kept {
            Some(kept) => {
                content.push_str("```\n");
                content.push_str(&escape_code(kept));
                content.push_str("\n```");
            }
            None => {
                content.push('_');
                content.push_str(&escape(NOTHING_PRINTED));
                content.push('_');
            }
        }
    }
    if content.trim().is_empty() {
        // Discord refuses an empty message.
        content = "\u{200B}".into();
    }
    let mut flags = SUPPRESS_EMBEDS;
    if reply.visibility == Visibility::Ephemeral {
        flags |= EPHEMERAL;
    }
    let mut message = json!({
        "content": content,
        "flags": flags,
        "allowed_mentions": {"parse": [], "users": mentioned},
    });
    let rows = components(&reply.actions);
    if !rows.is_empty() {
        message["components"] = Value::Array(rows);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{OutputBlock, UserId};

    fn with_output(text: &str) -> Reply {
        let mut r = Reply::new(
            Visibility::InChannel,
            Tone::Success,
            vec![
                Inline::Mention {
                    id: UserId::new("80351110224678912"),
                    name: None,
                },
                Inline::Text(" ran ".into()),
                Inline::Strong("deploy".into()),
            ],
        );
        r.output = Some(OutputBlock {
            text: text.into(),
            omitted_bytes: 0,
        });
        r
    }

    fn content(m: &Value) -> &str {
        m["content"].as_str().unwrap_or_default()
    }

    #[test]
    fn summary_markup_and_mentions() {
        let m = render_message(&with_output("ok"));
        assert_eq!(
            content(&m),
            "✅ <@80351110224678912> ran **deploy**\n```\nok\n```"
        );
        assert_eq!(m["allowed_mentions"]["parse"], json!([]));
        assert_eq!(m["allowed_mentions"]["users"], json!(["80351110224678912"]));
        assert_eq!(m["flags"], json!(SUPPRESS_EMBEDS));
    }

    #[test]
    fn text_is_escaped() {
        let (text, mentioned) = markdown(&[
            Inline::Text("@everyone *x* <@1> ~~y~~ a_b `c`\n# h\n- l".into()),
            Inline::Link {
                url: "https://ci.example.com/jobs/1 (x)".into(),
                label: "job #1".into(),
            },
        ]);
        assert_eq!(
            text,
            "\\@everyone \\*x\\* \\<\\@1\\> \\~\\~y\\~\\~ a\\_b \\`c\\`\n\\# h\n\\- l\
             [job #1](https://ci.example.com/jobs/1%20%28x%29)"
        );
        assert!(mentioned.is_empty());
    }

    #[test]
    fn ephemeral_replies_set_the_flag() {
        let r = Reply::ephemeral(Tone::Failure, vec![Inline::Text("no".into())]);
        let m = render_message(&r);
        assert_eq!(m["flags"], json!(EPHEMERAL | SUPPRESS_EMBEDS));
        assert_eq!(content(&m), "❌ no");
    }

    #[test]
    fn backticks_cannot_end_the_block() {
        let m = render_message(&with_output("a ``` b"));
        assert_eq!(content(&m).matches("```").count(), 2);
    }

    #[test]
    fn long_output_fits_2000_and_keeps_the_end() {
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i:03}")).collect();
        let output = lines.join("\n");
        let m = render_message(&with_output(&output));
        let text = content(&m);
        assert!(
            text.chars().count() <= CONTENT_MAX,
            "{}",
            text.chars().count()
        );
        assert!(
            text.chars().count() > CONTENT_MAX - 200,
            "the budget is used"
        );
        assert!(text.ends_with("line 999\n```"));
        let omitted: usize = text
            .lines()
            .find(|l| l.contains("left out"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0);
        let shown = text
            .split_once("```\n")
            .map(|(_, rest)| rest.trim_end_matches("\n```"))
            .unwrap_or_default();
        assert_eq!(shown.chars().count() + omitted, output.chars().count());
    }

    #[test]
    fn empty_output_says_so() {
        let m = render_message(&with_output("\n"));
        assert!(content(&m).ends_with("_The job printed nothing._"));
    }

    #[test]
    fn buttons_in_rows_of_five() {
        let mut r = Reply::new(Visibility::InChannel, Tone::Neutral, vec![]);
        r.actions = (0..7)
            .map(|i| Action {
                label: format!("B{i}"),
                command: format!("/demo play {i}"),
                danger: i == 0,
            })
            .chain(std::iter::once(Action {
                label: "long".into(),
                command: format!("/demo run {}", "x".repeat(200)),
                danger: false,
            }))
            .collect();
        let m = render_message(&r);
        let rows = m["components"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["components"].as_array().map(Vec::len), Some(5));
        assert_eq!(rows[1]["components"].as_array().map(Vec::len), Some(2));
        assert_eq!(rows[0]["components"][0]["style"], 4);
        assert_eq!(rows[0]["components"][1]["style"], 2);
        assert_eq!(rows[0]["components"][0]["custom_id"], "/demo play 0");
        assert!(!content(&m).is_empty());
    }
}
