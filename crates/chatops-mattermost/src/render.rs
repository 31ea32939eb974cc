//! The reply side: a platform-neutral [`Reply`] rendered as a Mattermost message: Markdown
//! `text`, and an attachment carrying the output (its colour shows the status) and buttons.
//!
//! - Markdown, not Slack mrkdwn: `**bold**`, `[label](url)`, backslash escapes.
//!   `skip_slack_parsing: true` stops Mattermost from rewriting `<...>` and `<!channel>` in logs
//!   (<https://developers.mattermost.com/integrate/slash-commands/custom/>).
//! - `@` in text gets a zero-width space after it, so no text (a job name, echoed input) can
//!   notify `@channel`, `@all` or anyone; only [`Inline::Mention`] mentions.
//! - Output is a fenced code block whose fence is longer than any backtick run in the output,
//!   so output containing ``` cannot close it (CommonMark fences close only on an equally long
//!   fence).
//! - Tone: an attachment colour (green success, red failure, amber warning, blue neutral), plus
//!   an emoji in front of the summary so the status does not rest on colour alone.
//! - Size: the summary, note and output together stay within `max_message_chars` (16383 on
//!   Mattermost 5.0+, 4000 on older servers); over it, output keeps its end and says what was
//!   cut.

use chatops_core::reply::{fit_output, wrap_marked, NOTHING_PRINTED};
use chatops_core::{Action, HttpReply, Inline, Reply, Tone, Visibility};
use serde_json::{json, Value};

/// Room kept free for separators and rounding.
const MARGIN: usize = 32;
/// The attachment `fallback` (notifications) is cut to this.
const FALLBACK_MAX: usize = 300;
/// Mattermost shows at most this many buttons usefully; more are left out.
const MAX_BUTTONS: usize = 10;

/// Where buttons post back, the key their context is signed with, and what the signature
/// binds besides the command (see `inbound::Binding`). Without it replies carry no buttons
/// (the adapter knows no public URL to give Mattermost, or not the channel).
#[derive(Clone, Copy, Debug)]
pub struct Buttons<'a> {
    /// The absolute URL of `POST /mattermost/actions` on this server.
    pub url: &'a str,
    /// The command token the context is signed with.
    pub key: &'a str,
    /// The channel the message goes to: a click elsewhere is refused.
    pub channel: &'a str,
    /// When the buttons stop working, Unix seconds.
    pub expires: u64,
}

/// An interactive-message answer showing `text` (Markdown) to the clicker only.
pub fn ephemeral_answer(text: &str) -> HttpReply {
    HttpReply::json(&if text.trim().is_empty() {
        json!({})
    } else {
        json!({"ephemeral_text": text, "skip_slack_parsing": true})
    })
}

/// Escapes Markdown control characters with backslashes, and defuses `@` mentions.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at_line_start = true;
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' | '&' => {
                out.push('\\');
                out.push(c);
            }
            // Headings and list markers only mean something at the start of a line.
            '#' | '-' | '+' if at_line_start => {
                out.push('\\');
                out.push(c);
            }
            '@' => {
                out.push('@');
                out.push('\u{200B}');
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

/// Percent-encodes what would end or break a Markdown link destination.
fn link_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn render_inline(part: &Inline, out: &mut String) {
    match part {
        Inline::Text(t) => out.push_str(&escape(t)),
        Inline::Strong(t) => wrap_marked(out, t, "**", escape),
        Inline::Code(t) if t.contains('`') || t.contains('\n') || t.trim().is_empty() => {
            out.push_str(&escape(t))
        }
        // Inside a code span nothing is interpreted, so the text goes in as it is.
        Inline::Code(t) => {
            out.push('`');
            out.push_str(t);
            out.push('`');
        }
        Inline::Link { url, label } => {
            let label = if label.trim().is_empty() { url } else { label };
            out.push('[');
            out.push_str(&escape(label));
            out.push_str("](");
            out.push_str(&link_url(url));
            out.push(')');
        }
        Inline::Mention { id, name } => {
            // Mattermost mentions by username; an id alone cannot mention anyone.
            let username: String = name
                .as_deref()
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .collect();
            if username.is_empty() {
                out.push_str(&escape(id.as_str()));
            } else {
                out.push('@');
                out.push_str(&username);
            }
        }
        Inline::LineBreak => out.push('\n'),
    }
}

/// The summary in Markdown, without the tone emoji.
pub fn markdown(summary: &[Inline]) -> String {
    let mut out = String::new();
    for part in summary {
        render_inline(part, &mut out);
    }
    out
}

/// The emoji in front of the summary: the tone's shortcode.
pub fn tone_emoji(tone: Tone) -> Option<&'static str> {
    tone.shortcode()
}

/// The attachment colour for a tone.
pub fn tone_color(tone: Tone) -> &'static str {
    match tone {
        Tone::Success => "#2EB886",
        Tone::Failure => "#D0021B",
        Tone::Warning => "#DAA038",
        Tone::Neutral => "#439FE0",
    }
}

/// A fence longer than any run of backticks in `text` (at least three).
pub fn fence_for(text: &str) -> String {
    let mut longest = 0usize;
    let mut run = 0usize;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// The first `max` chars of `text`, with "…" when cut; never ends in a lone escaping backslash.
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

fn buttons(actions: &[Action], config: Buttons<'_>) -> Vec<Value> {
    actions
        .iter()
        .filter(|a| !a.command.trim().is_empty())
        .take(MAX_BUTTONS)
        .enumerate()
        .map(|(i, a)| {
            let name = if a.label.trim().is_empty() {
                &a.command
            } else {
                &a.label
            };
            json!({
                // Mattermost wants plain alphanumeric ids.
                "id": format!("chatops{i}"),
                "name": name,
                "type": "button",
                "style": if a.danger { "danger" } else { "default" },
                "integration": {
                    "url": config.url,
                    "context": {
                        "command": a.command,
                        "channel": config.channel,
                        "expires": config.expires,
                        "sig": crate::inbound::sign_action(config.key, crate::inbound::Binding {
                            command: &a.command,
                            channel: config.channel,
                            expires: config.expires,
                        }),
                    },
                },
            })
        })
        .collect()
}

/// `ephemeral` or `in_channel`, always explicit (contract §3).
pub fn response_type(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Ephemeral => "ephemeral",
        Visibility::InChannel => "in_channel",
    }
}

/// Renders `reply` as a slash-command response / `response_url` post:
/// `{"response_type", "text", "skip_slack_parsing": true, "attachments"?}`, with summary, note
/// and output within `max_chars`.
pub fn render_message(
    reply: &Reply,
    max_chars: usize,
    button_config: Option<Buttons<'_>>,
) -> Value {
    let mut summary = cap(&markdown(&reply.summary), max_chars / 2);
    if let Some(emoji) = tone_emoji(reply.tone) {
        summary = if summary.is_empty() {
            emoji.to_owned()
        } else {
            format!("{emoji} {summary}")
        };
    }
    if summary.trim().is_empty() {
        // Mattermost refuses an empty response; a blank message still needs a character.
        summary = "\u{200B}".into();
    }

    let mut attachment_text: Option<String> = None;
    if let Some(output) = &reply.output {
        let fence = fence_for(&output.text);
        // The note is at most ~80 chars; reserve it before fitting the output.
        let reserved = summary.chars().count() + 2 * fence.len() + 100 + MARGIN;
        let fitted = fit_output(output, max_chars.saturating_sub(reserved), |_| 1);
        let mut parts = Vec::new();
        if let Some(note) = &fitted.note {
            parts.push(format!("_{}_", escape(note)));
        }
        parts.push(match fitted.kept {
            Some(kept) => format!("{fence}\n{kept}\n{fence}"),
            None => format!("_{}_", escape(NOTHING_PRINTED)),
        });
        attachment_text = Some(parts.join("\n"));
    }
    let actions = button_config
        .map(|config| buttons(&reply.actions, config))
        .unwrap_or_default();

    let mut message = json!({
        "response_type": response_type(reply.visibility),
        "text": summary,
        "skip_slack_parsing": true,
    });
    if attachment_text.is_some() || !actions.is_empty() {
        let mut attachment = json!({
            "color": tone_color(reply.tone),
            "fallback": cap(&reply.plain_summary(), FALLBACK_MAX),
            "text": attachment_text.unwrap_or_default(),
        });
        if !actions.is_empty() {
            attachment["actions"] = Value::Array(actions);
        }
        message["attachments"] = json!([attachment]);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{OutputBlock, UserId};

    fn reply(summary: Vec<Inline>) -> Reply {
        Reply::new(Visibility::InChannel, Tone::Neutral, summary)
    }

    fn with_output(text: &str, tone: Tone) -> Reply {
        let mut r = Reply::new(
            Visibility::InChannel,
            tone,
            vec![Inline::Text("done".into())],
        );
        r.output = Some(OutputBlock {
            text: text.into(),
            omitted_bytes: 0,
        });
        r
    }

    fn attachment_text(message: &Value) -> String {
        message["attachments"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn total_chars(message: &Value) -> usize {
        message["text"].as_str().unwrap_or_default().chars().count()
            + attachment_text(message).chars().count()
    }

    #[test]
    fn markdown_is_escaped_and_mentions_defused() {
        let text = markdown(&[
            Inline::Text(
                "*not bold* _x_ [y](z) <!channel> @channel a&b #7\n- item\n# title".into(),
            ),
            Inline::LineBreak,
            Inline::Strong(" deploy ".into()),
            Inline::Text(" by ".into()),
            Inline::Mention {
                id: UserId::new("8ajk3h1p4jfz7c9t1s6rwhcqxo"),
                name: Some("alice".into()),
            },
            Inline::Text(" ".into()),
            Inline::Code("a*b".into()),
            Inline::Text(" ".into()),
            Inline::Link {
                url: "https://ci.example.com/jobs/1 (x)".into(),
                label: "job [1]".into(),
            },
        ]);
        assert_eq!(
            text,
            "\\*not bold\\* \\_x\\_ \\[y\\](z) \\<!channel\\> @\u{200B}channel a\\&b #7\n\\- item\n\\# title\n \
             **deploy**  by @alice `a*b` [job \\[1\\]](https://ci.example.com/jobs/1%20%28x%29)"
        );
    }

    #[test]
    fn responses_set_type_text_and_skip_slack_parsing() {
        let m = render_message(
            &Reply::ephemeral(Tone::Failure, vec![Inline::Text("No such job".into())]),
            16383,
            None,
        );
        assert_eq!(m["response_type"], "ephemeral");
        assert_eq!(m["text"], ":x: No such job");
        assert_eq!(m["skip_slack_parsing"], true);
        assert!(m.get("attachments").is_none());
        let empty = render_message(&reply(vec![]), 16383, None);
        assert!(!empty["text"].as_str().unwrap_or_default().is_empty());
    }

    #[test]
    fn output_goes_in_a_coloured_attachment_it_cannot_break_out_of() {
        let m = render_message(
            &with_output("a\n```\n<b>\n````x", Tone::Failure),
            16383,
            None,
        );
        assert_eq!(m["attachments"][0]["color"], "#D0021B");
        assert_eq!(m["attachments"][0]["fallback"], "done");
        assert_eq!(attachment_text(&m), "`````\na\n```\n<b>\n````x\n`````");
        let m = render_message(&with_output("ok", Tone::Success), 16383, None);
        assert_eq!(m["attachments"][0]["color"], "#2EB886");
        assert_eq!(attachment_text(&m), "```\nok\n```");
    }

    #[test]
    fn empty_output_says_so() {
        let m = render_message(&with_output("\n \n", Tone::Success), 16383, None);
        assert_eq!(attachment_text(&m), "_The job printed nothing._");
    }

    #[test]
    fn long_output_keeps_the_end_within_the_limit() {
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i:04}")).collect();
        let output = lines.join("\n");
        for max in [16383usize, 4000] {
            let m = render_message(&with_output(&output, Tone::Success), max, None);
            let text = attachment_text(&m);
            assert!(total_chars(&m) <= max, "{} > {max}", total_chars(&m));
            assert!(text.ends_with("line 4999\n```"));
            assert!(!text.contains("line 0000"));
            let note = text.lines().next().unwrap_or_default();
            let omitted: usize = note
                .split_whitespace()
                .find_map(|w| w.parse().ok())
                .unwrap_or(0);
            let shown = text
                .split_once("```\n")
                .map(|(_, rest)| rest.trim_end_matches("\n```"))
                .unwrap_or_default();
            assert_eq!(shown.chars().count() + omitted, output.chars().count());
            // The budget is used, not wasted.
            assert!(total_chars(&m) > max - 300, "{}", total_chars(&m));
        }
    }

    #[test]
    fn buttons_carry_a_signed_command() {
        let mut r = with_output("x", Tone::Neutral);
        r.actions = vec![Action {
            label: "Cancel".into(),
            command: "/demo cancel 42".into(),
            danger: true,
        }];
        let none = render_message(&r, 16383, None);
        assert!(none["attachments"][0].get("actions").is_none());
        let config = Buttons {
            url: "https://chatops.example.com/mattermost/actions",
            key: "k",
            channel: "C1",
            expires: 1_700_000_000,
        };
        let m = render_message(&r, 16383, Some(config));
        let button = &m["attachments"][0]["actions"][0];
        assert_eq!(button["name"], "Cancel");
        assert_eq!(button["style"], "danger");
        assert_eq!(button["integration"]["url"], config.url);
        assert_eq!(
            button["integration"]["context"]["command"],
            "/demo cancel 42"
        );
        assert_eq!(button["integration"]["context"]["channel"], "C1");
        assert_eq!(button["integration"]["context"]["expires"], 1_700_000_000);
        let binding = crate::inbound::Binding {
            command: "/demo cancel 42",
            channel: "C1",
            expires: 1_700_000_000,
        };
        assert_eq!(
            button["integration"]["context"]["sig"],
            crate::inbound::sign_action("k", binding)
        );
    }

    #[test]
    fn fences_outgrow_backtick_runs() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("``````"), "```````");
    }
}
