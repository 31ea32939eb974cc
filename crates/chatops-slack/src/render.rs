//! The reply side: a platform-neutral [`Reply`] rendered as a Slack message (mrkdwn `text` plus
//! Block Kit `blocks`), escaped and fitted to Slack's limits.
//!
//! - Escaping: only `&`, `<` and `>` are control characters in mrkdwn, and Slack asks that only
//!   those be escaped (<https://api.slack.com/reference/surfaces/formatting#escaping>).
//! - Tone: an emoji in front of the first summary line (`:white_check_mark:` success, `:x:`
//!   failure, `:warning:` warning, none for neutral). Emoji work in `text`, in blocks and in
//!   notifications alike, where attachment colours are a legacy feature that blocks lack.
//! - Limits (<https://api.slack.com/reference/block-kit/blocks>): a section's text holds at most
//!   3000 characters, a message at most 50 blocks, an actions block 25 elements; `text` is
//!   truncated by Slack beyond 40,000 characters. Job output is shown in up to
//!   [`OUTPUT_BUDGET`] characters (escaped), split over several preformatted sections at line
//!   breaks; longer output keeps its end and says how much was left out.
//! - `text` is always the whole message in mrkdwn (summary, note, output as one ``` block):
//!   it is what notifications, screen readers and block-less clients show. `blocks` carry the
//!   same content laid out, plus buttons, and are only sent when there is output or a button.

use chatops_core::reply::{fit_output, wrap_marked, NOTHING_PRINTED as NOTHING};
use chatops_core::{Action, Inline, Reply, Tone, Visibility};
use serde_json::{json, Value};

/// The most characters a section block's text may hold.
pub const SECTION_TEXT_MAX: usize = 3000;
/// The most blocks a message may hold.
pub const MAX_BLOCKS: usize = 50;
/// Slack truncates a message's `text` beyond this many characters; the capability figure.
pub const TEXT_MAX: usize = 40_000;
/// Escaped characters of job output shown in a reply (the end of the output).
pub const OUTPUT_BUDGET: usize = 12_000;
/// Characters of summary shown; longer summaries are cut with "…".
pub const SUMMARY_BUDGET: usize = 12_000;
/// "```\n" before and "\n```" after the output in a section.
const FENCE_OVERHEAD: usize = 8;
/// Escaped output characters per preformatted section.
const SECTION_CODE_BUDGET: usize = SECTION_TEXT_MAX - FENCE_OVERHEAD;
/// Slack's limits on buttons and their confirmation dialogs.
const MAX_BUTTONS: usize = 25;
const BUTTON_TEXT_MAX: usize = 75;
const BUTTON_VALUE_MAX: usize = 2000;
const CONFIRM_TEXT_MAX: usize = 300;

/// A zero-width space, put between two backticks in preformatted output so that output
/// containing ``` cannot close the block early (mrkdwn has no backslash escapes).
const ZWSP: char = '\u{200B}';

/// Escapes mrkdwn's three control characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// How many characters `c` takes once escaped: the cost used when fitting text to a budget, so
/// that cuts never fall inside an entity.
pub fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// The cost of `c` inside preformatted output: a backtick may gain a zero-width space.
fn code_cost(c: char) -> usize {
    if c == '`' {
        2
    } else {
        escaped_len(c)
    }
}

/// Escapes preformatted output: entities, plus a zero-width space between adjacent backticks.
fn escape_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' if previous == Some('`') => {
                out.push(ZWSP);
                out.push('`');
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
    out
}

/// A Slack user id is alphanumeric; anything else is dropped so a mention cannot inject markup.
fn clean_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn render_inline(part: &Inline, out: &mut String) {
    match part {
        Inline::Text(t) => out.push_str(&escape(t)),
        Inline::Strong(t) => wrap_marked(out, t, "*", escape),
        // Inline code cannot contain a backtick in mrkdwn; such text is shown plain instead.
        Inline::Code(t) if t.contains('`') || t.contains('\n') => out.push_str(&escape(t)),
        Inline::Code(t) => wrap_marked(out, t, "`", escape),
        Inline::Link { url, label } => {
            // `|` separates URL and label, so a literal one in the URL is percent-encoded.
            let url = escape(url).replace('|', "%7C");
            out.push('<');
            out.push_str(&url);
            if !label.trim().is_empty() {
                out.push('|');
                out.push_str(&escape(label));
            }
            out.push('>');
        }
        Inline::Mention { id, name } => {
            let id = clean_id(id.as_str());
            if id.is_empty() {
                out.push('@');
                out.push_str(&escape(name.as_deref().unwrap_or("someone")));
            } else {
                out.push_str("<@");
                out.push_str(&id);
                out.push('>');
            }
        }
        Inline::LineBreak => out.push('\n'),
    }
}

/// The summary in mrkdwn, without the tone emoji.
pub fn mrkdwn(summary: &[Inline]) -> String {
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

/// The first `max` chars of rendered mrkdwn, backing off so that no entity is cut in half
/// (every `&` in rendered text starts an entity, since literal ones are escaped).
fn cut_mrkdwn(text: &str, max: usize) -> &str {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let kept = &text[..end];
    match kept.rfind('&') {
        Some(amp) if end < text.len() && !kept[amp..].contains(';') => &kept[..amp],
        _ => kept,
    }
}

/// Groups lines into pieces of at most `max` chars each, cutting over-long lines.
fn group_lines(text: &str, max: usize) -> Vec<String> {
    let mut groups = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    for line in text.split('\n') {
        let mut line_len = line.chars().count();
        let line = if line_len > max {
            let cut = cut_mrkdwn(line, max - 1);
            line_len = cut.chars().count() + 1;
            format!("{cut}…")
        } else {
            line.to_owned()
        };
        let needed = if current.is_empty() {
            line_len
        } else {
            current_len + 1 + line_len
        };
        if needed > max && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if !current.is_empty() {
            current.push('\n');
            current_len += 1;
        }
        current.push_str(&line);
        current_len += line_len;
    }
    if !current.trim().is_empty() {
        groups.push(current);
    }
    groups.retain(|g| !g.trim().is_empty());
    groups
}

/// Splits `text` into consecutive pieces whose cost is at most `budget` each, at line breaks
/// where possible. Every char lands in exactly one piece, in order.
fn chunk_lines(text: &str, budget: usize, cost: impl Fn(char) -> usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut spent = 0usize;
    for line in text.split_inclusive('\n') {
        // Byte offset of this line in `text`: split_inclusive yields contiguous slices.
        let line_start = line.as_ptr() as usize - text.as_ptr() as usize;
        let line_cost: usize = line.chars().map(&cost).sum();
        if spent + line_cost <= budget {
            spent += line_cost;
            continue;
        }
        if line_start > start {
            chunks.push(&text[start..line_start]);
        }
        start = line_start;
        spent = 0;
        if line_cost <= budget {
            spent = line_cost;
            continue;
        }
        // A line longer than a whole piece is cut at char boundaries.
        for (i, c) in line.char_indices() {
            let c_cost = cost(c);
            if spent + c_cost > budget && line_start + i > start {
                chunks.push(&text[start..line_start + i]);
                start = line_start + i;
                spent = 0;
            }
            spent += c_cost;
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

fn fence(escaped: &str) -> String {
    format!("```\n{escaped}\n```")
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate_chars(text, max), "emoji": true})
}

/// Buttons as one `actions` block; a `danger` button asks for confirmation before it fires.
fn actions_block(actions: &[Action]) -> Option<Value> {
    let elements: Vec<Value> = actions
        .iter()
        .filter(|a| {
            // A cut value would run a different command; such a button is left out instead.
            let fits = !a.command.trim().is_empty() && a.command.len() <= BUTTON_VALUE_MAX;
            if !fits {
                tracing::warn!(label = %a.label, "button command is empty or too long for Slack; button left out");
            }
            fits
        })
        .take(MAX_BUTTONS)
        .enumerate()
        .map(|(i, a)| {
            let label = if a.label.trim().is_empty() {
                a.command.as_str()
            } else {
                a.label.as_str()
            };
            let mut button = json!({
                "type": "button",
                "action_id": format!("chatops-{i}"),
                "text": plain(label, BUTTON_TEXT_MAX),
                "value": a.command,
            });
            if a.danger {
                button["style"] = json!("danger");
                button["confirm"] = json!({
                    "title": plain("Are you sure?", 100),
                    "text": plain(&format!("{label}: {}", a.command), CONFIRM_TEXT_MAX),
                    "confirm": plain(label, 30),
                    "deny": plain("Back", 30),
                    "style": "danger",
                });
            }
            button
        })
        .collect();
    (!elements.is_empty())
        .then(|| json!({"type": "actions", "block_id": "chatops-actions", "elements": elements}))
}

/// `ephemeral` or `in_channel`, always explicit (contract §3).
pub fn response_type(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Ephemeral => "ephemeral",
        Visibility::InChannel => "in_channel",
    }
}

/// Renders `reply` as a Slack message: `{"response_type", "text", "blocks"?}`.
pub fn render_message(reply: &Reply) -> Value {
    let mut summary = mrkdwn(&reply.summary);
    if summary.chars().count() > SUMMARY_BUDGET {
        summary = format!("{}…", cut_mrkdwn(&summary, SUMMARY_BUDGET - 1));
    }
    if let Some(emoji) = tone_emoji(reply.tone) {
        summary = if summary.is_empty() {
            emoji.to_owned()
        } else {
            format!("{emoji} {summary}")
        };
    }

    let fitted = reply
        .output
        .as_ref()
        .map(|o| fit_output(o, OUTPUT_BUDGET, code_cost));
    let nothing_printed = format!("_{NOTHING}_");
    let note = fitted
        .as_ref()
        .and_then(|f| f.note.as_deref())
        .map(|n| format!("_{}_", escape(n)));

    // `text`: the whole message.
    let mut text_parts: Vec<String> = Vec::new();
    if !summary.is_empty() {
        text_parts.push(summary.clone());
    }
    if let Some(note) = &note {
        text_parts.push(note.clone());
    }
    if let Some(f) = &fitted {
        text_parts.push(match f.kept {
            Some(kept) => fence(&escape_code(kept)),
            None => nothing_printed.clone(),
        });
    }
    let mut text = text_parts.join("\n");
    if text.is_empty() {
        // Slack refuses a message without text or blocks.
        text = " ".into();
    }

    let mut message = json!({
        "response_type": response_type(reply.visibility),
        "text": text,
    });
    if fitted.is_none() && reply.actions.is_empty() {
        return message;
    }

    // `blocks`: the same, laid out in sections of at most 3000 chars, then the buttons.
    let mut tail_blocks: Vec<Value> = Vec::new();
    if let Some(note) = note {
        tail_blocks
            .push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}));
    }
    if let Some(f) = &fitted {
        match f.kept {
            Some(kept) => {
                for chunk in chunk_lines(kept, SECTION_CODE_BUDGET, code_cost) {
                    let chunk = chunk.strip_suffix('\n').unwrap_or(chunk);
                    tail_blocks.push(section(fence(&escape_code(chunk))));
                }
            }
            None => tail_blocks.push(section(nothing_printed)),
        }
    }
    if let Some(actions) = actions_block(&reply.actions) {
        tail_blocks.push(actions);
    }
    let room = MAX_BLOCKS.saturating_sub(tail_blocks.len());
    let mut blocks: Vec<Value> = group_lines(&summary, SECTION_TEXT_MAX)
        .into_iter()
        .take(room)
        .map(section)
        .collect();
    blocks.extend(tail_blocks);
    blocks.truncate(MAX_BLOCKS);
    message["blocks"] = Value::Array(blocks);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::{OutputBlock, UserId};

    fn reply(summary: Vec<Inline>) -> Reply {
        Reply::new(Visibility::InChannel, Tone::Neutral, summary)
    }

    fn text_of(message: &Value) -> &str {
        message["text"].as_str().unwrap_or_default()
    }

    fn blocks(message: &Value) -> Vec<Value> {
        message["blocks"].as_array().cloned().unwrap_or_default()
    }

    fn block_texts(message: &Value) -> Vec<String> {
        blocks(message)
            .iter()
            .filter_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .or_else(|| b["elements"][0]["text"].as_str())
                    .map(str::to_owned)
            })
            .collect()
    }

    fn with_output(text: &str) -> Reply {
        let mut r = reply(vec![Inline::Text("done".into())]);
        r.output = Some(OutputBlock {
            text: text.into(),
            omitted_bytes: 0,
        });
        r
    }

    #[test]
    fn escapes_only_the_three_control_characters() {
        assert_eq!(
            escape("a & b < c > d \"e\" 'f' *g*"),
            "a &amp; b &lt; c &gt; d \"e\" 'f' *g*"
        );
        let m = render_message(&reply(vec![
            Inline::Text("<!channel> & ".into()),
            Inline::Strong("x<y".into()),
            Inline::Text(" ".into()),
            Inline::Code("a&b".into()),
        ]));
        assert_eq!(text_of(&m), "&lt;!channel&gt; &amp; *x&lt;y* `a&amp;b`");
        assert_eq!(m["response_type"], "in_channel");
        assert!(m.get("blocks").is_none(), "a plain message needs no blocks");
    }

    #[test]
    fn inline_markup() {
        let text = mrkdwn(&[
            Inline::Strong(" deploy ".into()),
            Inline::LineBreak,
            Inline::Link {
                url: "https://ci.example.com/jobs/1?a=1&b=|".into(),
                label: "job <1>".into(),
            },
            Inline::Text(" by ".into()),
            Inline::Mention {
                id: UserId::new("U024BE7LH"),
                name: None,
            },
            Inline::Text(" ".into()),
            Inline::Mention {
                id: UserId::new("><!here"),
                name: Some("mallory".into()),
            },
            Inline::Text(" ".into()),
            Inline::Code("has ` tick".into()),
        ]);
        assert_eq!(
            text,
            " *deploy* \n<https://ci.example.com/jobs/1?a=1&amp;b=%7C|job &lt;1&gt;> by <@U024BE7LH> <@here> has ` tick"
        );
    }

    #[test]
    fn tone_is_an_emoji_and_visibility_is_explicit() {
        let mut r = Reply::ephemeral(Tone::Failure, vec![Inline::Text("no".into())]);
        let m = render_message(&r);
        assert_eq!(text_of(&m), ":x: no");
        assert_eq!(m["response_type"], "ephemeral");
        r.tone = Tone::Success;
        assert!(text_of(&render_message(&r)).starts_with(":white_check_mark: "));
    }

    #[test]
    fn output_is_preformatted_and_escaped() {
        let m = render_message(&with_output("\n$ echo <b>&\n<b>&\n\n"));
        assert_eq!(
            text_of(&m),
            "done\n```\n$ echo &lt;b&gt;&amp;\n&lt;b&gt;&amp;\n```"
        );
        let texts = block_texts(&m);
        assert_eq!(
            texts,
            vec!["done", "```\n$ echo &lt;b&gt;&amp;\n&lt;b&gt;&amp;\n```"]
        );
    }

    #[test]
    fn backticks_in_output_cannot_close_the_block() {
        let m = render_message(&with_output("```\nnot code\n```"));
        let text = text_of(&m);
        // Only the fences we add contain three backticks in a row.
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert!(text.contains("`\u{200B}`\u{200B}`"));
    }

    #[test]
    fn empty_output_says_nothing_was_printed() {
        for empty in ["", "\n\n", "  \n"] {
            let m = render_message(&with_output(empty));
            let expected = "_The job printed nothing._";
            assert!(text_of(&m).ends_with(expected), "{empty:?}");
            assert!(block_texts(&m).contains(&expected.to_owned()));
        }
    }

    #[test]
    fn long_output_keeps_the_end_and_says_what_was_left_out() {
        // 3000 numbered lines, with entities so that escaped lengths matter.
        let lines: Vec<String> = (0..3000).map(|i| format!("line {i:04} <&>")).collect();
        let output = lines.join("\n");
        let m = render_message(&with_output(&output));
        let text = text_of(&m);
        assert!(
            text.contains("line 2999 &lt;&amp;&gt;\n```"),
            "the end is kept"
        );
        assert!(!text.contains("line 0000"), "the start is dropped");

        // What is shown plus what is reported left out is the whole output.
        let shown_start = text.find("```\n").map(|i| i + 4).unwrap_or(0);
        let shown_end = text.rfind("\n```").unwrap_or(text.len());
        let shown = &text[shown_start..shown_end];
        let first_shown_line = shown.lines().next().unwrap_or_default();
        assert!(first_shown_line.starts_with("line "), "{first_shown_line}");
        let unescaped_len = shown
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
            .chars()
            .count();
        let note_line = text
            .lines()
            .find(|l| l.contains("left out"))
            .unwrap_or_default();
        let omitted: usize = note_line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or(0);
        assert_eq!(unescaped_len + omitted, output.chars().count());
        assert!(shown.chars().count() <= OUTPUT_BUDGET);

        // Every block fits a section, and all the shown output is in the blocks, in order.
        let texts = block_texts(&m);
        assert!(texts.iter().all(|t| t.chars().count() <= SECTION_TEXT_MAX));
        assert!(texts.iter().any(|t| t.contains("left out")));
        let from_blocks: Vec<&str> = texts
            .iter()
            .filter_map(|t| {
                t.strip_prefix("```\n")
                    .and_then(|t| t.strip_suffix("\n```"))
            })
            .collect();
        assert!(from_blocks.len() >= 4, "output spans several sections");
        assert_eq!(from_blocks.join("\n"), shown);
    }

    #[test]
    fn omitted_bytes_from_collection_are_reported() {
        let mut r = with_output("tail");
        if let Some(o) = r.output.as_mut() {
            o.omitted_bytes = 4096;
        }
        let text = text_of(&render_message(&r)).to_owned();
        assert!(
            text.contains("4096 bytes of earlier output left out"),
            "{text}"
        );
    }

    #[test]
    fn a_single_huge_line_is_split_without_cutting_entities() {
        let output = "<".repeat(5000);
        let m = render_message(&with_output(&output));
        for t in block_texts(&m) {
            assert!(t.chars().count() <= SECTION_TEXT_MAX);
            if let Some(body) = t
                .strip_prefix("```\n")
                .and_then(|t| t.strip_suffix("\n```"))
            {
                assert_eq!(body.replace("&lt;", ""), "", "whole entities only");
            }
        }
    }

    #[test]
    fn chunks_cover_the_text_in_order() {
        let text = "aaaa\nbb\ncccccccccc\nd";
        let chunks = chunk_lines(text, 4, |_| 1);
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| c.chars().count() <= 5));
        assert_eq!(chunks[0], "aaaa");
    }

    #[test]
    fn buttons_become_an_actions_block() {
        let mut r = reply(vec![Inline::Text("deploy is waiting".into())]);
        r.actions = vec![
            Action {
                label: "Play".into(),
                command: "/demo play 42".into(),
                danger: false,
            },
            Action {
                label: "Cancel".into(),
                command: "/demo cancel 42".into(),
                danger: true,
            },
            Action {
                label: "Too long".into(),
                command: format!("/demo run x {}", "y".repeat(3000)),
                danger: false,
            },
        ];
        let m = render_message(&r);
        let blocks = blocks(&m);
        let actions = blocks.last().cloned().unwrap_or_default();
        assert_eq!(actions["type"], "actions");
        let buttons = actions["elements"].as_array().cloned().unwrap_or_default();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["value"], "/demo play 42");
        assert_eq!(buttons[0]["text"]["text"], "Play");
        assert!(buttons[0].get("style").is_none());
        assert_eq!(buttons[1]["style"], "danger");
        assert!(buttons[1]["confirm"].is_object());
        assert_ne!(buttons[0]["action_id"], buttons[1]["action_id"]);
        assert_eq!(blocks[0]["text"]["text"], "deploy is waiting");
    }

    #[test]
    fn long_summaries_are_split_into_sections() {
        let mut summary = Vec::new();
        for i in 0..500 {
            summary.push(Inline::Text(format!("job-{i:03} & more words here")));
            summary.push(Inline::LineBreak);
        }
        let mut r = reply(summary);
        r.output = Some(OutputBlock::default());
        let m = render_message(&r);
        let blocks = blocks(&m);
        assert!(blocks.len() > 2 && blocks.len() <= MAX_BLOCKS);
        for b in &blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= SECTION_TEXT_MAX);
                assert!(!t.ends_with("&am"), "no cut entity");
            }
        }
        assert!(text_of(&m).chars().count() <= TEXT_MAX);
    }

    #[test]
    fn cut_mrkdwn_never_splits_an_entity() {
        assert_eq!(cut_mrkdwn("ab&amp;cd", 4), "ab");
        assert_eq!(cut_mrkdwn("ab&amp;cd", 7), "ab&amp;");
        assert_eq!(cut_mrkdwn("ab", 7), "ab");
    }
}
