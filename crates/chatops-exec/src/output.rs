//! The job trace (GitLab-runner style) and how a reply's output is cut from it.
//!
//! # The trace
//! A job's log is what GitLab Runner would have written: ANSI colours, a green `$ command` line
//! before each command ([`command_echo`]), and `section_start` / `section_end` markers
//! ([`section_start`], [`section_end`]) around the `step_script` and `after_script` stages. A
//! marker is `section_(start|end):UNIX_TS:NAME[options]\r\e[0K`, the grammar of GitLab's
//! `build_trace_section_regex`; the name is `[A-Za-z0-9_.-]+`.
//!
//! # The reply's output (contract §5)
//! [`OutputCollector`] streams the trace in once, in chunks of any size, and keeps only bounded
//! tails of cleaned text (ANSI escapes, `\r\e[0K` and markers removed) for:
//! 1. the first complete `chat_reply` section (GitLab's `Gitlab::Chat::Output` uses the first
//!    one too), minus the line break right after its start marker;
//! 2. the `step_script` section after its first `$ command` line (a job of one command);
//! 3. the `step_script` section from its first `$ command` line on (every command with its
//!    output).
//!
//! A trace without a `step_script` section (e.g. fed raw output) counts as one whole step.
//! A lone carriage return (progress bars) overwrites its line the way a terminal shows it: the
//! text after it replaces the line. Other control characters are dropped; invalid UTF-8 is
//! replaced at the end; secret values are masked with [`MASK`] like GitLab does.
//!
//! Nothing here allocates per line: text moves in runs found eight bytes at a time, and the
//! tails compact themselves when they reach twice their size (each byte is copied at most
//! twice). About 2–3 GB/s on one core.

use chatops_core::OutputBlock;

/// The section around `before_script` + `script` (GitLab Runner ≥ 13.1).
pub const STEP_SCRIPT: &str = "step_script";
/// The section around `after_script`.
pub const AFTER_SCRIPT: &str = "after_script";
/// The section a job prints to choose its own chat reply (GitLab ChatOps).
pub const CHAT_REPLY: &str = "chat_reply";
/// The header line GitLab Runner prints first inside `step_script`; dropped from replies.
pub const STEP_SCRIPT_HEADER: &str = "Executing \"step_script\" stage of the job script";
/// What a secret value is replaced with, in logs and replies (GitLab's word).
pub const MASK: &str = "[MASKED]";

/// GitLab Runner's colours (`helpers/colors.go`).
pub const ANSI_BOLD_GREEN: &str = "\x1b[32;1m";
pub const ANSI_BOLD_RED: &str = "\x1b[31;1m";
pub const ANSI_BOLD_CYAN: &str = "\x1b[36;1m";
pub const ANSI_YELLOW: &str = "\x1b[0;33m";
pub const ANSI_RESET: &str = "\x1b[0;m";
/// "Erase in line": GitLab Runner writes it before markers so terminals show them cleanly.
pub const ANSI_CLEAR: &str = "\x1b[0K";

/// The longest marker the parser accepts; longer "markers" are ordinary text.
const MAX_MARKER_LEN: usize = 256;
/// Up to this many distinct first bytes of secrets, the masker scans eight bytes at a time.
const MAX_WORD_SCAN_BYTES: usize = 6;
/// The runner's header and `$ command` lines are short; a longer first line is output.
const MAX_HEAD_LINE: usize = 64 * 1024;
/// OSC/DCS strings (window titles, hyperlinks) longer than this end anyway, so a stray
/// `ESC ]` cannot swallow the rest of a job's output.
const MAX_STRING_ESCAPE_LEN: usize = 4096;

/// The start marker of section `name` (`\e[0Ksection_start:TS:NAME\r\e[0K`). `name` must be
/// `[A-Za-z0-9_.-]+` for GitLab (and [`OutputCollector`]) to see a section.
pub fn section_start(name: &str, unix_ts: u64) -> String {
    format!("{ANSI_CLEAR}section_start:{unix_ts}:{name}\r{ANSI_CLEAR}")
}

/// The end marker of section `name`.
pub fn section_end(name: &str, unix_ts: u64) -> String {
    format!("{ANSI_CLEAR}section_end:{unix_ts}:{name}\r{ANSI_CLEAR}")
}

/// A start marker followed by the section's cyan header line, as GitLab Runner writes it
/// (`Executing "step_script" stage of the job script`).
pub fn section_start_with_header(name: &str, unix_ts: u64, header: &str) -> String {
    format!(
        "{}{ANSI_CLEAR}{ANSI_BOLD_CYAN}{header}{ANSI_RESET}\n",
        section_start(name, unix_ts)
    )
}

/// The green `$ command` line GitLab Runner prints before running a command, with its line
/// break. The command is trimmed; a multi-line command shows its first line and
/// `# collapsed multi-line command`. Control characters in it are shown escaped, so a command
/// cannot forge markers or colours in the trace.
pub fn command_echo(command: &str) -> String {
    let command = command.trim();
    let mut lines = command.lines();
    let first = lines.next().unwrap_or("").trim_end();
    let collapsed = lines.next().is_some();
    let mut shown = String::with_capacity(first.len() + 48);
    for c in first.chars() {
        if c.is_control() && c != '\t' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if collapsed {
        shown.push_str(" # collapsed multi-line command");
    }
    format!("{ANSI_BOLD_GREEN}$ {shown}{ANSI_RESET}\n")
}

/// A line in GitLab Runner's colour for notices (green), with its line break.
pub fn notice_line(text: &str) -> String {
    format!("{ANSI_BOLD_GREEN}{text}{ANSI_RESET}\n")
}

/// A line in GitLab Runner's colour for warnings (yellow), with its line break.
pub fn warning_line(text: &str) -> String {
    format!("{ANSI_YELLOW}{text}{ANSI_RESET}\n")
}

/// A line in GitLab Runner's colour for errors (red), with its line break.
pub fn error_line(text: &str) -> String {
    format!("{ANSI_BOLD_RED}{text}{ANSI_RESET}\n")
}

/// Removes ANSI escapes, `\r\e[0K` and section markers from a trace (or any part of one, e.g.
/// the end of a log for the job page). A lone `\r` lets the text after it replace its line,
/// as a terminal would show it; other control characters except tab and line feed are dropped.
pub fn strip_ansi(text: &str) -> String {
    let mut cleaner = Cleaner::default();
    let mut plain = PlainSink(Tail::unbounded());
    cleaner.feed(text.as_bytes(), &mut plain);
    cleaner.finish(&mut plain);
    String::from_utf8_lossy(&plain.0.buf).into_owned()
}

/// Replaces every occurrence of a non-empty secret value with [`MASK`], like GitLab's masked
/// variables. Where secrets overlap, the longest match at a position wins; the replacement
/// text is never searched again.
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    let mut masker = SecretMasker::new(secrets);
    if masker.is_empty() {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(text.len());
    masker.push(text.as_bytes(), &mut out);
    masker.finish(&mut out);
    // Matches are whole secrets (valid UTF-8) aligned on the text's own characters, so the
    // result is valid UTF-8; the lossy fallback only guards that reasoning.
    text_of(out)
}

/// `bytes` as text, invalid UTF-8 replaced (without a copy when it is valid).
fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A job log made readable, in a stream: cleaned as [`strip_ansi`] cleans it (escapes,
/// `\r\e[0K` and markers removed, a lone `\r` replacing its line), *then* masked. Every path
/// that shows a log to someone (job page, `chatops log`, `chatops run`, the end of a log after
/// a crash) goes through it: a secret the job printed split by escapes (`S3cr\e[0mET`) only
/// becomes whole once cleaned, so masking the raw bytes alone cannot catch it.
#[derive(Debug, Default)]
pub struct LogView {
    cleaner: Cleaner,
    sink: ViewSink,
}

/// [`LogView`]'s sink: holds the current line back (a lone `\r` may still replace it), then
/// hands finished text to the masker.
#[derive(Debug, Default)]
struct ViewSink {
    line: Vec<u8>,
    overwrite: bool,
    masker: SecretMasker,
    out: Vec<u8>,
}

/// A line longer than this is passed on before it ends (a `\r` after that no longer replaces
/// what went out), so a job that never prints a line feed cannot grow a reader's memory.
const MAX_VIEW_LINE: usize = 64 * 1024;

impl Sink for ViewSink {
    fn text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.overwrite {
            self.overwrite = false;
            if bytes.first() != Some(&b'\n') {
                self.line.clear();
            }
        }
        match rfind_line_feed(bytes) {
            Some(i) => {
                let (done, rest) = bytes.split_at_checked(i + 1).unwrap_or((bytes, &[]));
                self.masker.push(&self.line, &mut self.out);
                self.line.clear();
                self.masker.push(done, &mut self.out);
                self.line.extend_from_slice(rest);
            }
            None => self.line.extend_from_slice(bytes),
        }
        if self.line.len() > MAX_VIEW_LINE {
            self.masker.push(&self.line, &mut self.out);
            self.line.clear();
        }
    }

    fn carriage_return(&mut self) {
        self.overwrite = true;
    }

    fn section(&mut self, _start: bool, _name: &[u8]) {}
}

impl LogView {
    /// A view masking the non-empty values among `secrets`.
    pub fn new(secrets: &[String]) -> LogView {
        LogView {
            cleaner: Cleaner::default(),
            sink: ViewSink {
                masker: SecretMasker::new(secrets),
                ..ViewSink::default()
            },
        }
    }

    /// Feeds the next raw bytes of the log (split anywhere); appends what is certain to `out`.
    /// The current line and a short masking tail are held back until more comes or [`finish`].
    ///
    /// [`finish`]: LogView::finish
    pub fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        self.cleaner.feed(raw, &mut self.sink);
        out.append(&mut self.sink.out);
    }

    /// Ends the stream: appends everything held back.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.cleaner.finish(&mut self.sink);
        let sink = &mut self.sink;
        sink.masker.push(&sink.line, &mut sink.out);
        sink.line.clear();
        sink.overwrite = false;
        sink.masker.finish(&mut sink.out);
        out.append(&mut sink.out);
    }
}

/// A whole log (or the start of one) cleaned and masked with [`LogView`]; invalid UTF-8 is
/// replaced.
pub fn render_log(raw: &[u8], secrets: &[String]) -> String {
    let mut view = LogView::new(secrets);
    let mut out = Vec::with_capacity(raw.len());
    view.push(raw, &mut out);
    view.finish(&mut out);
    text_of(out)
}

/// A job log made readable *with its colours*, for the job page: the text is cleaned exactly
/// as [`LogView`] cleans it and masked on that cleaned text, and only then are the colour
/// escapes put back, at the positions they had in the cleaned text, in a normalised form
/// (`ESC [ digits;digits m`, nothing else). So a secret printed split by escapes
/// (`S3cr\e[0mETVALUE`) is whole when masked, and an escape that fell inside a secret is put
/// back after its [`MASK`]. The output holds no control character but `\n`, `\t` and those
/// escapes; an HTML renderer of ANSI colours (which must escape the text) makes it a page.
///
/// Each piece [`push`](ColourLogView::push) appends is whole lines and starts with the colour
/// state in force at its start, so any run of pieces renders on its own (a page's tail, a
/// stream's next event). A secret with a line break is masked piece by piece (each of its
/// lines is masked wherever it appears: more than needed, never less).
#[derive(Debug, Default)]
pub struct ColourLogView {
    cleaner: Cleaner,
    sink: ColourSink,
}

/// The SGR state carried from line to line is capped: older codes are dropped (a colour may be
/// lost on an absurd line, a secret never shown).
const MAX_SGR_STATE: usize = 16;

#[derive(Debug, Default)]
struct ColourSink {
    /// The current line's cleaned text (held back: a lone `\r` may still replace it).
    line: Vec<u8>,
    /// Colour escapes (their parameters) at positions in `line`.
    codes: Vec<(usize, Vec<u8>)>,
    /// The colour escapes in force when `line` starts (since the last reset).
    state: Vec<Vec<u8>>,
    overwrite: bool,
    /// Longest first: the longest secret matching at a position wins.
    secrets: Vec<Vec<u8>>,
    out: Vec<u8>,
}

impl ColourSink {
    fn longest(&self) -> usize {
        self.secrets.first().map_or(0, Vec::len)
    }

    /// Adds `code` to the colour state: a reset (`0`, or nothing) clears it first.
    fn apply(state: &mut Vec<Vec<u8>>, code: &[u8]) {
        let first = code.split(|&b| b == b';').next().unwrap_or_default();
        if first.is_empty() || first.iter().all(|&b| b == b'0') {
            state.clear();
        }
        if code.iter().any(|&b| b != b'0' && b != b';') {
            state.push(code.to_vec());
            if state.len() > MAX_SGR_STATE {
                state.remove(0);
            }
        }
    }

    fn write_code(out: &mut Vec<u8>, code: &[u8]) {
        out.extend_from_slice(b"\x1b[");
        out.extend_from_slice(code);
        out.push(b'm');
    }

    /// Masks and emits `line[..end]` (or more, when a secret runs past `end`), with its colours;
    /// keeps the rest as the start of the line. `all`: the line is complete, emit everything.
    fn flush(&mut self, all: bool) {
        let line = std::mem::take(&mut self.line);
        let codes = std::mem::take(&mut self.codes);
        // Matches may start before `cut`; one starting later could continue past the line's
        // known end, so it waits for more text.
        let cut = if all {
            line.len()
        } else {
            line.len().saturating_sub(self.longest().saturating_sub(1))
        };
        let mut masked: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < cut {
            let here = line.get(i..).unwrap_or_default();
            match self.secrets.iter().find(|s| here.starts_with(s)) {
                Some(secret) => {
                    masked.push((i, i + secret.len()));
                    i += secret.len();
                }
                None => i += 1,
            }
        }
        let end = i.min(line.len());
        let out = &mut self.out;
        for code in &self.state {
            Self::write_code(out, code);
        }
        let mut codes_iter = codes.into_iter().peekable();
        let mut ranges = masked.into_iter().peekable();
        let mut pos = 0;
        while pos < end {
            while let Some((_, code)) = codes_iter.next_if(|(at, _)| *at <= pos) {
                Self::write_code(out, &code);
                Self::apply(&mut self.state, &code);
            }
            if let Some((_, stop)) = ranges.next_if(|(start, _)| *start == pos) {
                // Escapes inside a secret go after its mask: the colours still change, no
                // part of the secret shows.
                out.extend_from_slice(MASK.as_bytes());
                while let Some((_, code)) = codes_iter.next_if(|(at, _)| *at < stop) {
                    Self::write_code(out, &code);
                    Self::apply(&mut self.state, &code);
                }
                pos = stop;
                continue;
            }
            let next_mask = ranges.peek().map_or(end, |r| r.0);
            let next_code = codes_iter.peek().map_or(end, |c| c.0);
            let stop = next_mask.min(next_code).min(end).max(pos + 1);
            out.extend_from_slice(line.get(pos..stop).unwrap_or_default());
            pos = stop;
        }
        // What was not emitted stays: the rest of the line and its escapes.
        self.line = line.get(end..).unwrap_or_default().to_vec();
        let rest: Vec<(usize, Vec<u8>)> = codes_iter
            .map(|(at, c)| (at.saturating_sub(end), c))
            .collect();
        if all {
            // End of a line: escapes after the last character still change the state.
            for (_, code) in &rest {
                Self::apply(&mut self.state, code);
            }
            self.line.clear();
        } else {
            self.codes = rest;
        }
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        self.line.extend_from_slice(bytes);
        while self.line.len() > MAX_VIEW_LINE {
            let before = self.line.len();
            self.flush(false);
            if self.line.len() == before {
                break;
            }
        }
    }
}

impl Sink for ColourSink {
    fn text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.overwrite {
            self.overwrite = false;
            if bytes.first() != Some(&b'\n') {
                // The line is replaced, but its colours stay in force.
                for (_, code) in std::mem::take(&mut self.codes) {
                    Self::apply(&mut self.state, &code);
                }
                self.line.clear();
            }
        }
        let mut rest = bytes;
        while let Some(i) = find_line_feed(rest) {
            let (done, after) = rest.split_at_checked(i + 1).unwrap_or((rest, &[]));
            self.line.extend_from_slice(done);
            self.flush(true);
            rest = after;
        }
        self.push_line_bytes(rest);
    }

    fn carriage_return(&mut self) {
        self.overwrite = true;
    }

    fn section(&mut self, _start: bool, _name: &[u8]) {}

    fn sgr(&mut self, params: &[u8]) {
        // Only plain SGR parameters are kept: digits and separators (`38;5;208`, `38:2:1:2:3`).
        if params
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b';' || b == b':')
        {
            self.codes.push((self.line.len(), params.to_vec()));
        }
    }
}

impl ColourLogView {
    /// A view masking the non-empty values among `secrets` (each line of a multi-line one).
    pub fn new(secrets: &[String]) -> ColourLogView {
        let mut list: Vec<Vec<u8>> = secrets
            .iter()
            .flat_map(|s| s.split('\n'))
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        list.dedup();
        ColourLogView {
            cleaner: Cleaner::default(),
            sink: ColourSink {
                secrets: list,
                ..ColourSink::default()
            },
        }
    }

    /// Feeds the next raw bytes of the log (split anywhere); appends the lines now complete
    /// (cleaned, masked, coloured) to `out`.
    pub fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        self.cleaner.feed(raw, &mut self.sink);
        out.append(&mut self.sink.out);
    }

    /// Ends the stream: appends the last line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.cleaner.finish(&mut self.sink);
        let sink = &mut self.sink;
        if !sink.line.is_empty() {
            sink.flush(true);
        }
        sink.overwrite = false;
        out.append(&mut sink.out);
    }
}

/// A whole log rendered with [`ColourLogView`]; invalid UTF-8 is replaced.
pub fn render_coloured_log(raw: &[u8], secrets: &[String]) -> String {
    let mut view = ColourLogView::new(secrets);
    let mut out = Vec::with_capacity(raw.len());
    view.push(raw, &mut out);
    view.finish(&mut out);
    text_of(out)
}

/// Masks secret values in a byte stream that arrives in chunks (the job's log). It holds back
/// the end of a chunk that could still become a secret (a proper prefix of one) until the next
/// chunk (or [`finish`]), so a secret split across two reads is still masked, and nothing else
/// waits.
///
/// [`finish`]: SecretMasker::finish
#[derive(Debug, Default)]
pub struct SecretMasker {
    /// Longest first, so the longest secret matching at a position wins.
    secrets: Vec<Vec<u8>>,
    /// Whether a byte starts some secret: the scan skips everything else quickly.
    first_bytes: Vec<bool>,
    /// The distinct first bytes, when few enough to look for eight bytes at a time.
    few_first_bytes: Vec<u8>,
    longest: usize,
    carry: Vec<u8>,
    /// Reused buffer holding `carry + chunk`.
    work: Vec<u8>,
}

impl SecretMasker {
    /// A masker for the non-empty values among `secrets`.
    pub fn new(secrets: &[String]) -> SecretMasker {
        let mut list: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        list.dedup();
        let mut first_bytes = vec![false; 256];
        for secret in &list {
            if let Some(flag) = secret
                .first()
                .and_then(|&b| first_bytes.get_mut(usize::from(b)))
            {
                *flag = true;
            }
        }
        let longest = list.first().map_or(0, Vec::len);
        let mut few_first_bytes: Vec<u8> = list.iter().filter_map(|s| s.first().copied()).collect();
        few_first_bytes.sort_unstable();
        few_first_bytes.dedup();
        if few_first_bytes.len() > MAX_WORD_SCAN_BYTES {
            few_first_bytes.clear();
        }
        SecretMasker {
            secrets: list,
            first_bytes,
            few_first_bytes,
            longest,
            carry: Vec::new(),
            work: Vec::new(),
        }
    }

    /// True when there is nothing to mask (every chunk passes through untouched).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Masks `chunk`, appending what is certain to `out`; a short tail is held back.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.secrets.is_empty() {
            out.extend_from_slice(chunk);
            return;
        }
        let mut work = std::mem::take(&mut self.work);
        work.clear();
        work.extend_from_slice(&self.carry);
        work.extend_from_slice(chunk);
        // A match starting before `limit` lies entirely inside `work`; later starts must wait.
        let limit = work.len().saturating_sub(self.longest - 1);
        let stop = self.scan(&work, limit, out);
        self.carry.clear();
        self.carry
            .extend_from_slice(work.get(stop..).unwrap_or_default());
        self.work = work;
    }

    /// Masks and appends what was held back. The masker is then ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let carry = std::mem::take(&mut self.carry);
        let stop = self.scan(&carry, carry.len(), out);
        out.extend_from_slice(carry.get(stop..).unwrap_or_default());
        self.carry = carry;
        self.carry.clear();
    }

    /// The first position in `window` where some secret may start.
    fn find_candidate(&self, window: &[u8]) -> Option<usize> {
        let is_first = |b: u8| self.first_bytes.get(usize::from(b)) == Some(&true);
        if self.few_first_bytes.is_empty() {
            return window.iter().position(|&b| is_first(b));
        }
        let mut groups = window.chunks_exact(8);
        let mut offset = 0;
        for group in groups.by_ref() {
            let Ok(array) = <[u8; 8]>::try_from(group) else {
                break;
            };
            let x = u64::from_le_bytes(array);
            let found = self
                .few_first_bytes
                .iter()
                .fold(0, |acc, &b| acc | bytes_equal(x, b));
            if found != 0 {
                return Some(offset + found.trailing_zeros() as usize / 8);
            }
            offset += 8;
        }
        groups
            .remainder()
            .iter()
            .position(|&b| is_first(b))
            .map(|i| offset + i)
    }

    /// Emits `work[..stop]` masked and returns `stop`. Below `limit` every secret that can
    /// match lies inside `work`, so the scan skips quickly to candidates. From `limit` on it
    /// stops only where the rest of `work` is a proper prefix of some secret (the next chunk
    /// decides there); elsewhere it decides at once, as a later scan would, so a live view
    /// (`chatops run`, progress edits, the page) lags by a partial secret at most.
    fn scan(&self, work: &[u8], limit: usize, out: &mut Vec<u8>) -> usize {
        let mut emitted = 0;
        let mut i = 0;
        while i < work.len() {
            if i < limit {
                let window = work.get(i..limit).unwrap_or_default();
                let Some(skip) = self.find_candidate(window) else {
                    i = limit;
                    continue;
                };
                i += skip;
            } else {
                let rest = work.get(i..).unwrap_or_default();
                if self
                    .secrets
                    .iter()
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
                {
                    break;
                }
            }
            let here = work.get(i..).unwrap_or_default();
            match self.secrets.iter().find(|s| here.starts_with(s)) {
                Some(secret) => {
                    out.extend_from_slice(work.get(emitted..i).unwrap_or_default());
                    out.extend_from_slice(MASK.as_bytes());
                    i += secret.len();
                    emitted = i;
                }
                None => i += 1,
            }
        }
        out.extend_from_slice(work.get(emitted..i).unwrap_or_default());
        i
    }
}

/// Streams a trace in; keeps only bounded tails in memory and cuts the reply's output from
/// them when the job ends (see the module docs for the three rules).
#[derive(Debug)]
pub struct OutputCollector {
    cleaner: Cleaner,
    routes: Routes,
    peak_retained: usize,
}

impl OutputCollector {
    /// A collector whose reply text is at most `max_kept_bytes` long (the end of the output;
    /// what came before is counted in `omitted_bytes`). Its memory,
    /// [`retained_bytes`](Self::retained_bytes), stays ≤ 4 × `max_kept_bytes` plus a few hundred
    /// bytes however much the job prints.
    pub fn new(max_kept_bytes: usize) -> Self {
        OutputCollector {
            cleaner: Cleaner::default(),
            routes: Routes::new(max_kept_bytes),
            peak_retained: 0,
        }
    }

    /// Feeds the next chunk of the trace (any size, split anywhere).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.cleaner.feed(chunk, &mut self.routes);
        self.peak_retained = self.peak_retained.max(self.retained_bytes());
    }

    /// Bytes of memory the collector holds right now (buffer capacities).
    pub fn retained_bytes(&self) -> usize {
        self.routes.transcript.buf.capacity()
            + self.routes.chat.buf.capacity()
            + self.cleaner.candidate.capacity()
    }

    /// The most [`retained_bytes`](Self::retained_bytes) has been after any `feed`.
    pub fn peak_retained_bytes(&self) -> usize {
        self.peak_retained
    }

    /// The reply output per the three rules. `single_command` = script has exactly one command
    /// and before_script is empty. Masks `secrets` (non-empty values only). Leading blank lines
    /// and trailing whitespace are trimmed; a job that printed nothing gives an empty text.
    pub fn finish(mut self, single_command: bool, secrets: &[String]) -> OutputBlock {
        self.cleaner.finish(&mut self.routes);
        let routes = &self.routes;
        if routes.chat_state == ChatState::Complete {
            return routes.chat.extract(0, secrets);
        }
        let from = if single_command {
            routes.first_command_end.unwrap_or(routes.content_start)
        } else {
            routes.content_start
        };
        routes.transcript.extract(from, secrets)
    }
}

/// What the [`Cleaner`] reports: cleaned text (line feeds included), lone carriage returns and
/// section markers.
trait Sink {
    fn text(&mut self, bytes: &[u8]);
    fn carriage_return(&mut self);
    fn section(&mut self, start: bool, name: &[u8]);
    /// A colour escape (`ESC [ params m`) the cleaner removed; only [`ColourLogView`] keeps it.
    fn sgr(&mut self, _params: &[u8]) {}
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum CleanState {
    #[default]
    Text,
    /// After ESC.
    Esc,
    /// ESC followed by intermediate bytes (`ESC ( B`), until a final byte.
    EscIntermediate,
    /// ESC [ parameters, until a final byte.
    Csi,
    /// OSC/DCS/SOS/PM/APC string, until BEL or ESC \.
    Str,
    /// ESC inside such a string.
    StrEsc,
    /// After `\r`: a line break (`\r\n`), `\r\e[0K` (removed) or a lone carriage return?
    Cr,
    CrEsc,
    CrCsi,
    CrCsi0,
    /// Collecting what may be a section marker in `candidate`.
    Marker,
}

/// The streaming trace cleaner: a byte state machine whose state survives chunk boundaries.
/// Plain text moves through in runs; only control characters and markers stop a run.
#[derive(Debug, Default)]
struct Cleaner {
    state: CleanState,
    candidate: Vec<u8>,
    string_len: usize,
    /// The parameters of the CSI sequence being read (capped at [`MAX_CSI_PARAMS`]), for
    /// sinks that keep colours.
    csi: Vec<u8>,
}

/// Longer CSI parameter strings are cut (no colour needs more).
const MAX_CSI_PARAMS: usize = 64;

/// Control characters other than tab and line feed: they end a plain-text run.
fn is_control(b: u8) -> bool {
    b == 0x7f || (b < 0x20 && b != b'\t' && b != b'\n')
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// For each of the eight bytes of `x`, the high bit set iff that byte is zero. Exact per byte
/// (no carry crosses bytes), so the lowest set bit finds the first match.
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOWS) + LOWS) | x) & HIGHS
}

/// For each byte of `x`, the high bit set iff that byte equals `b`.
fn bytes_equal(x: u64, b: u8) -> u64 {
    zero_bytes(x ^ (ONES * u64::from(b)))
}

/// For each byte of `x`, the high bit set iff that byte is below 0x20.
fn bytes_below_space(x: u64) -> u64 {
    !(((x & LOWS) + ONES * 0x60) | x) & HIGHS
}

/// Where a plain-text run ends: at a control character, or at the `_` of a `section_`
/// (markers are found by their underscore, rarer in output than their `s`). Eight bytes at a
/// time.
fn find_run_end(bytes: &[u8]) -> Option<usize> {
    let is_end = |b: u8| is_control(b) || b == b'_';
    let mut groups = bytes.chunks_exact(8);
    let mut offset = 0;
    for group in groups.by_ref() {
        let Ok(array) = <[u8; 8]>::try_from(group) else {
            break;
        };
        let x = u64::from_le_bytes(array);
        let controls = bytes_below_space(x) & !bytes_equal(x, b'\n') & !bytes_equal(x, b'\t');
        let ends = controls | bytes_equal(x, 0x7f) | bytes_equal(x, b'_');
        if ends != 0 {
            return Some(offset + ends.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    groups
        .remainder()
        .iter()
        .position(|&b| is_end(b))
        .map(|i| offset + i)
}

/// The position of the first line feed in `bytes`, eight bytes at a time.
fn find_line_feed(bytes: &[u8]) -> Option<usize> {
    let mut groups = bytes.chunks_exact(8);
    let mut offset = 0;
    for group in groups.by_ref() {
        let Ok(array) = <[u8; 8]>::try_from(group) else {
            break;
        };
        let found = bytes_equal(u64::from_le_bytes(array), b'\n');
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    groups
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// The position of the last line feed in `bytes`, eight bytes at a time.
fn rfind_line_feed(bytes: &[u8]) -> Option<usize> {
    let mut groups = bytes.rchunks_exact(8);
    let remainder_len = groups.remainder().len();
    let mut end = bytes.len();
    for group in groups.by_ref() {
        end -= 8;
        let Ok(array) = <[u8; 8]>::try_from(group) else {
            break;
        };
        let found = bytes_equal(u64::from_le_bytes(array), b'\n');
        if found != 0 {
            return Some(end + 7 - found.leading_zeros() as usize / 8);
        }
    }
    bytes
        .get(..remainder_len)
        .and_then(|head| head.iter().rposition(|&b| b == b'\n'))
}

/// How many bytes at the end of `run` could be the start of a marker cut by the chunk's end.
fn marker_prefix_at_end(run: &[u8]) -> usize {
    const PREFIX: &[u8] = b"section";
    (1..=PREFIX.len())
        .rev()
        .find(|&k| PREFIX.get(..k).is_some_and(|p| run.ends_with(p)))
        .unwrap_or(0)
}

enum MarkerStatus {
    Partial,
    Invalid,
    Complete { start: bool, name_len: usize },
}

/// Checks `lit` at `at`: `Ok(next)`, or `Err(status)` when the input ends early or differs.
fn literal(c: &[u8], at: usize, lit: &[u8]) -> Result<usize, MarkerStatus> {
    let avail = c.get(at..).unwrap_or_default();
    let n = avail.len().min(lit.len());
    if avail.get(..n) != lit.get(..n) {
        return Err(MarkerStatus::Invalid);
    }
    if n < lit.len() {
        return Err(MarkerStatus::Partial);
    }
    Ok(at + lit.len())
}

/// Counts bytes from `at` satisfying `ok`: `Ok(end)` when a byte that doesn't follows,
/// `Err(Partial)` when the input ends first.
fn span(c: &[u8], at: usize, ok: impl Fn(u8) -> bool) -> Result<usize, MarkerStatus> {
    let avail = c.get(at..).unwrap_or_default();
    match avail.iter().position(|&b| !ok(b)) {
        Some(n) => Ok(at + n),
        None => Err(MarkerStatus::Partial),
    }
}

/// Where `c` stands against GitLab's marker grammar:
/// `section_(start|end):\d+:[A-Za-z0-9_.-]+(\[\w+=\w+(, ?\w+=\w+)*\])?\r\e[0K`.
fn marker_status(c: &[u8]) -> MarkerStatus {
    match parse_marker(c) {
        Ok(status) | Err(status) => status,
    }
}

fn parse_marker(c: &[u8]) -> Result<MarkerStatus, MarkerStatus> {
    let at = literal(c, 0, b"section_")?;
    let (start, at) = match c.get(at) {
        None => return Ok(MarkerStatus::Partial),
        Some(b's') => (true, literal(c, at, b"start:")?),
        Some(b'e') => (false, literal(c, at, b"end:")?),
        Some(_) => return Ok(MarkerStatus::Invalid),
    };
    let digits_end = span(c, at, |b| b.is_ascii_digit())?;
    if digits_end == at {
        return Ok(MarkerStatus::Invalid);
    }
    let name_at = literal(c, digits_end, b":")?;
    let name_end = span(c, name_at, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
    })?;
    if name_end == name_at {
        return Ok(MarkerStatus::Invalid);
    }
    let mut at = name_end;
    if c.get(at) == Some(&b'[') {
        at = parse_options(c, at + 1)?;
    }
    let end = literal(c, at, b"\r\x1b[0K")?;
    if end != c.len() {
        return Ok(MarkerStatus::Invalid);
    }
    Ok(MarkerStatus::Complete {
        start,
        name_len: name_end - name_at,
    })
}

/// A marker's options after its `[`, up to and including the `]`: GitLab's
/// `\[(?:\w+=\w+)(?:, ?(?:\w+=\w+))*\]` (`logs_section_options_regex`). So `[]`, a lone key,
/// or two spaces after a comma make the whole thing text, not a marker.
fn parse_options(c: &[u8], mut at: usize) -> Result<usize, MarkerStatus> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    loop {
        let key_end = span(c, at, word)?;
        if key_end == at {
            return Err(MarkerStatus::Invalid);
        }
        let value_at = literal(c, key_end, b"=")?;
        let value_end = span(c, value_at, word)?;
        if value_end == value_at {
            return Err(MarkerStatus::Invalid);
        }
        match c.get(value_end) {
            None => return Err(MarkerStatus::Partial),
            Some(b']') => return Ok(value_end + 1),
            Some(b',') => {
                at = value_end + 1;
                if c.get(at) == Some(&b' ') {
                    at += 1;
                }
            }
            Some(_) => return Err(MarkerStatus::Invalid),
        }
    }
}

/// Where a complete marker's name starts: after `section_start:TS:` / `section_end:TS:`.
fn marker_name(c: &[u8], name_len: usize) -> &[u8] {
    let after_prefix = c.get(8..).unwrap_or_default();
    let after_kind = after_prefix
        .iter()
        .position(|&b| b == b':')
        .and_then(|i| after_prefix.get(i + 1..))
        .unwrap_or_default();
    let after_ts = after_kind
        .iter()
        .position(|&b| b == b':')
        .and_then(|i| after_kind.get(i + 1..))
        .unwrap_or_default();
    after_ts.get(..name_len).unwrap_or_default()
}

impl Cleaner {
    fn feed(&mut self, input: &[u8], sink: &mut impl Sink) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.state == CleanState::Text {
                rest = self.text_run(rest, sink);
                continue;
            }
            let Some((&b, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            self.step(b, sink);
        }
    }

    /// The fast path: passes plain text on in one run, up to a control character or a
    /// marker; returns what is left.
    fn text_run<'a>(&mut self, input: &'a [u8], sink: &mut impl Sink) -> &'a [u8] {
        let mut from = 0;
        loop {
            let scanned = input.get(from..).unwrap_or_default();
            let Some(at) = find_run_end(scanned).map(|i| from + i) else {
                // The chunk ends in text; its last bytes may begin a marker the next chunk
                // finishes: keep them aside.
                let held = marker_prefix_at_end(input);
                let (run, start) = input
                    .split_at_checked(input.len() - held)
                    .unwrap_or((input, &[]));
                if !run.is_empty() {
                    sink.text(run);
                }
                if !start.is_empty() {
                    self.candidate.clear();
                    self.candidate.extend_from_slice(start);
                    self.state = CleanState::Marker;
                }
                return &[];
            };
            let (run, tail) = input.split_at_checked(at).unwrap_or((input, &[]));
            let Some((&b, after)) = tail.split_first() else {
                return &[];
            };
            if b == b'_' {
                match at
                    .checked_sub(7)
                    .filter(|&s| input.get(s..at) == Some(b"section"))
                {
                    Some(start) => {
                        let text = input.get(..start).unwrap_or_default();
                        if !text.is_empty() {
                            sink.text(text);
                        }
                        self.candidate.clear();
                        self.candidate.extend_from_slice(b"section_");
                        self.state = CleanState::Marker;
                        return after;
                    }
                    // An underscore like any other: the run goes on.
                    None => {
                        from = at + 1;
                        continue;
                    }
                }
            }
            if !run.is_empty() {
                sink.text(run);
            }
            self.text_byte(b, sink);
            return after;
        }
    }

    /// Ends the stream: a pending marker candidate was text after all; a pending `\r` is a
    /// lone carriage return; an unfinished escape is dropped.
    fn finish(&mut self, sink: &mut impl Sink) {
        // Replaying a candidate can leave a shorter candidate pending: loop until none is.
        while self.state == CleanState::Marker {
            self.reject_candidate(sink);
        }
        if matches!(
            self.state,
            CleanState::Cr | CleanState::CrEsc | CleanState::CrCsi | CleanState::CrCsi0
        ) {
            sink.carriage_return();
        }
        self.state = CleanState::Text;
    }

    /// One byte in the text state (the slow path).
    fn text_byte(&mut self, b: u8, sink: &mut impl Sink) {
        match b {
            b'\r' => self.state = CleanState::Cr,
            0x1b => self.state = CleanState::Esc,
            b's' => {
                self.candidate.clear();
                self.candidate.push(b's');
                self.state = CleanState::Marker;
            }
            // Bell, backspace, form feed, ...: nothing a chat message can show.
            _ if is_control(b) => {}
            _ => sink.text(&[b]),
        }
    }

    fn step(&mut self, b: u8, sink: &mut impl Sink) {
        use CleanState as S;
        match self.state {
            S::Text => self.text_byte(b, sink),
            S::Esc => match b {
                b'[' => {
                    self.csi.clear();
                    self.state = S::Csi;
                }
                b']' | b'P' | b'X' | b'^' | b'_' => {
                    self.string_len = 0;
                    self.state = S::Str;
                }
                0x1b => {}
                0x20..=0x2f => self.state = S::EscIntermediate,
                0x30..=0x7e => self.state = S::Text,
                // Not an escape sequence after all: drop the ESC, keep the byte.
                _ => {
                    self.state = S::Text;
                    self.text_byte(b, sink);
                }
            },
            S::EscIntermediate => match b {
                0x20..=0x2f => {}
                0x30..=0x7e => self.state = S::Text,
                _ => {
                    self.state = S::Text;
                    self.text_byte(b, sink);
                }
            },
            S::Csi => match b {
                0x20..=0x3f => {
                    if self.csi.len() < MAX_CSI_PARAMS {
                        self.csi.push(b);
                    }
                }
                0x40..=0x7e => {
                    if b == b'm' {
                        sink.sgr(&self.csi);
                    }
                    self.state = S::Text;
                }
                _ => {
                    self.state = S::Text;
                    self.text_byte(b, sink);
                }
            },
            S::Str => match b {
                0x07 => self.state = S::Text,
                0x1b => self.state = S::StrEsc,
                _ => {
                    self.string_len += 1;
                    if self.string_len > MAX_STRING_ESCAPE_LEN {
                        self.state = S::Text;
                    }
                }
            },
            S::StrEsc => match b {
                b'\\' => self.state = S::Text,
                0x1b => {}
                _ => self.state = S::Str,
            },
            S::Cr => match b {
                b'\n' => {
                    self.state = S::Text;
                    sink.text(b"\n");
                }
                0x1b => self.state = S::CrEsc,
                b'\r' => sink.carriage_return(),
                _ => {
                    sink.carriage_return();
                    self.state = S::Text;
                    self.text_byte(b, sink);
                }
            },
            S::CrEsc => {
                if b == b'[' {
                    self.state = S::CrCsi;
                } else {
                    sink.carriage_return();
                    self.state = S::Esc;
                    self.step(b, sink);
                }
            }
            S::CrCsi => {
                if b == b'0' {
                    self.state = S::CrCsi0;
                } else {
                    sink.carriage_return();
                    self.csi.clear();
                    self.state = S::Csi;
                    self.step(b, sink);
                }
            }
            S::CrCsi0 => {
                if b == b'K' {
                    // `\r\e[0K`: GitLab Runner's "clear line"; the contract removes it.
                    self.state = S::Text;
                } else {
                    sink.carriage_return();
                    self.csi.clear();
                    self.csi.push(b'0');
                    self.state = S::Csi;
                    self.step(b, sink);
                }
            }
            S::Marker => {
                self.candidate.push(b);
                match marker_status(&self.candidate) {
                    MarkerStatus::Partial if self.candidate.len() < MAX_MARKER_LEN => {}
                    MarkerStatus::Complete { start, name_len } => {
                        sink.section(start, marker_name(&self.candidate, name_len));
                        self.candidate.clear();
                        self.state = S::Text;
                    }
                    MarkerStatus::Partial | MarkerStatus::Invalid => self.reject_candidate(sink),
                }
            }
        }
    }

    /// The candidate is not a marker: its first byte is text, the rest is scanned again (it
    /// may hold escapes or the start of a real marker). Bounded by [`MAX_MARKER_LEN`].
    fn reject_candidate(&mut self, sink: &mut impl Sink) {
        let candidate = std::mem::take(&mut self.candidate);
        self.state = CleanState::Text;
        if let Some((first, rest)) = candidate.split_first() {
            sink.text(std::slice::from_ref(first));
            self.feed(rest, sink);
        }
    }
}

/// The end of a stream of cleaned text, in absolute byte offsets so that positions recorded
/// early (where the first command's output starts) stay meaningful after the front is dropped.
#[derive(Debug)]
struct Tail {
    buf: Vec<u8>,
    /// Bytes dropped from the front since the last reset: `buf[0]` is at this offset.
    dropped: u64,
    /// Offset where the current line starts.
    line_start: u64,
    /// A lone `\r` was seen: the next text replaces the current line.
    overwrite: bool,
    max: usize,
}

impl Tail {
    fn new(max: usize) -> Tail {
        Tail {
            buf: Vec::new(),
            dropped: 0,
            line_start: 0,
            overwrite: false,
            max,
        }
    }

    /// A tail that never drops anything (for [`strip_ansi`], whose input is in memory anyway).
    fn unbounded() -> Tail {
        Tail::new(usize::MAX / 2)
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.dropped = 0;
        self.line_start = 0;
        self.overwrite = false;
    }

    fn len(&self) -> u64 {
        self.dropped + self.buf.len() as u64
    }

    fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.overwrite {
            self.overwrite = false;
            // `\r\n` arrives as a line feed, so a line feed here ends the line instead.
            if bytes.first() != Some(&b'\n') {
                self.truncate_line();
            }
        }
        let before = self.len();
        self.append(bytes);
        // The exact start, even when it was dropped: whether a `\r` can keep the text before
        // the line then depends on the text alone, not on how it was split into chunks.
        if let Some(i) = rfind_line_feed(bytes) {
            self.line_start = before + i as u64 + 1;
        }
    }

    fn carriage_return(&mut self) {
        self.overwrite = true;
    }

    /// The current (unfinished) line, if its start is still held.
    fn current_line(&self) -> Option<&[u8]> {
        let start = usize::try_from(self.line_start.checked_sub(self.dropped)?).ok()?;
        self.buf.get(start..)
    }

    fn truncate_line(&mut self) {
        match self.line_start.checked_sub(self.dropped) {
            Some(start) => self
                .buf
                .truncate(usize::try_from(start).unwrap_or(usize::MAX)),
            None => {
                // The line began before what is kept: all of what is kept goes.
                self.buf.clear();
                self.line_start = self.dropped;
            }
        }
    }

    /// Appends `bytes`, dropping from the front what is out of the window. The window starts
    /// at the last multiple of `max` that leaves at least `max` bytes (so it holds `max` to
    /// `2 × max` bytes), and never moves back: where it starts is a function of the stream
    /// position alone. Were it to depend on the chunks (keep `max` after a large chunk, up
    /// to `2 × max` after small ones), a later `\r` overwriting a long line would reveal more
    /// or less of the text before it, and the reply would depend on how the job's output
    /// happened to be read (found by fuzzing). The window moves by at least `max` at a time,
    /// so each byte is moved at most once.
    fn append(&mut self, bytes: &[u8]) {
        let max = self.max.max(1) as u64;
        let end = self.len() + bytes.len() as u64;
        let start = (end.saturating_sub(max) / max * max).max(self.dropped);
        let held = self.len();
        if start >= held {
            // Everything held goes, and the front of `bytes` too.
            let cut = usize::try_from(start - held).unwrap_or(usize::MAX);
            self.buf.clear();
            self.dropped = start;
            let kept = bytes.get(cut..).unwrap_or_default();
            self.reserve(kept.len());
            self.buf.extend_from_slice(kept);
            return;
        }
        if start > self.dropped {
            let excess = usize::try_from(start - self.dropped).unwrap_or(usize::MAX);
            self.buf.drain(..excess.min(self.buf.len()));
            self.dropped = start;
        }
        self.reserve(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// Grows geometrically but never past `2 × max`, so capacity stays bounded.
    fn reserve(&mut self, additional: usize) {
        let needed = self.buf.len() + additional;
        if needed <= self.buf.capacity() {
            return;
        }
        let limit = self.max.saturating_mul(2).max(needed);
        let target = needed.max(self.buf.capacity().saturating_mul(2)).min(limit);
        self.buf.reserve_exact(target - self.buf.len());
    }

    /// The text from offset `from` on, masked, cleaned up for a reply.
    fn extract(&self, from: u64, secrets: &[String]) -> OutputBlock {
        let (skip, mut omitted) = match from.checked_sub(self.dropped) {
            Some(skip) => (usize::try_from(skip).unwrap_or(usize::MAX), 0),
            None => (0, self.dropped - from),
        };
        let mut bytes = self.buf.get(skip..).unwrap_or_default();
        // The buffer holds up to twice `max` between compactions: the reply gets `max`.
        if let Some(over) = bytes.len().checked_sub(self.max).filter(|&n| n > 0) {
            bytes = bytes.get(over..).unwrap_or_default();
            omitted += over as u64;
        }
        if omitted > 0 {
            // A secret cut in two by the drop would show its second half: drop what could be
            // part of one. Then start on a whole character.
            let longest = secrets.iter().map(String::len).max().unwrap_or(0);
            let guard = longest.saturating_sub(1).min(bytes.len());
            bytes = bytes.get(guard..).unwrap_or_default();
            omitted += guard as u64;
            let partial = bytes.iter().take_while(|&&b| b & 0xc0 == 0x80).count();
            bytes = bytes.get(partial..).unwrap_or_default();
            omitted += partial as u64;
        }
        let text = String::from_utf8_lossy(bytes);
        let text = mask_secrets(&text, secrets);
        // Blank lines around the output (the line feed after a marker, the last line's end)
        // carry nothing in a chat message.
        OutputBlock {
            text: text.trim_start_matches('\n').trim_end().to_owned(),
            omitted_bytes: omitted,
        }
    }
}

/// [`strip_ansi`]'s sink: all text, markers ignored.
struct PlainSink(Tail);

impl Sink for PlainSink {
    fn text(&mut self, bytes: &[u8]) {
        self.0.push(bytes);
    }
    fn carriage_return(&mut self) {
        self.0.carriage_return();
    }
    fn section(&mut self, _start: bool, _name: &[u8]) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepState {
    NotSeen,
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChatState {
    None,
    /// `skip_line_feed`: nothing came after the start marker yet, so a line feed now is the
    /// one GitLab's documented example puts there.
    Open {
        skip_line_feed: bool,
    },
    Complete,
}

/// Which of the first lines of the step we are still looking at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadState {
    /// The first line: the runner's header, or already the first `$ command`.
    Header,
    /// The line after the header: the first `$ command`?
    Echo,
    Done,
}

/// The collector's sink: routes cleaned text to the step transcript and the chat section.
#[derive(Debug)]
struct Routes {
    transcript: Tail,
    chat: Tail,
    step: StepState,
    chat_state: ChatState,
    head: HeadState,
    /// Where the transcript's content starts (after the runner's header line).
    content_start: u64,
    /// Where the output of the first command starts (after its `$ command` line).
    first_command_end: Option<u64>,
}

impl Routes {
    fn new(max: usize) -> Routes {
        Routes {
            transcript: Tail::new(max),
            chat: Tail::new(max),
            step: StepState::NotSeen,
            chat_state: ChatState::None,
            head: HeadState::Header,
            content_start: 0,
            first_command_end: None,
        }
    }

    fn recording_step(&self) -> bool {
        self.step != StepState::Closed
    }

    /// Feeds the transcript line by line while the first lines are being classified.
    fn push_head(&mut self, mut bytes: &[u8]) {
        while self.head != HeadState::Done {
            let Some(nl) = find_line_feed(bytes) else {
                self.transcript.push(bytes);
                // A line this long is neither the header nor an echo: stop looking (and
                // scanning every chunk of a job that never prints a line feed).
                if self
                    .transcript
                    .current_line()
                    .is_none_or(|l| l.len() > MAX_HEAD_LINE)
                {
                    self.head = HeadState::Done;
                }
                return;
            };
            let (line, rest) = bytes.split_at_checked(nl).unwrap_or((bytes, &[]));
            self.transcript.push(line);
            let current = self.transcript.current_line().unwrap_or_default();
            let is_header =
                self.head == HeadState::Header && current == STEP_SCRIPT_HEADER.as_bytes();
            let is_echo = current.starts_with(b"$ ");
            self.transcript.push(b"\n");
            let end = self.transcript.len();
            if is_header {
                self.content_start = end;
                self.head = HeadState::Echo;
            } else {
                if is_echo {
                    self.first_command_end = Some(end);
                }
                self.head = HeadState::Done;
            }
            bytes = rest.get(1..).unwrap_or_default();
            if !bytes.is_empty() && self.head == HeadState::Done {
                self.transcript.push(bytes);
            }
        }
    }
}

impl Sink for Routes {
    fn text(&mut self, bytes: &[u8]) {
        if self.recording_step() {
            if self.head == HeadState::Done {
                self.transcript.push(bytes);
            } else {
                self.push_head(bytes);
            }
        }
        if let ChatState::Open { skip_line_feed } = &mut self.chat_state {
            let mut bytes = bytes;
            if *skip_line_feed {
                *skip_line_feed = false;
                if let Some((b'\n', rest)) = bytes.split_first() {
                    bytes = rest;
                }
            }
            self.chat.push(bytes);
        }
    }

    fn carriage_return(&mut self) {
        if self.recording_step() {
            self.transcript.carriage_return();
        }
        if let ChatState::Open { skip_line_feed } = &mut self.chat_state {
            *skip_line_feed = false;
            self.chat.carriage_return();
        }
    }

    fn section(&mut self, start: bool, name: &[u8]) {
        if name == STEP_SCRIPT.as_bytes() {
            match (start, self.step) {
                // What came before the step (the runner's preamble) is not output.
                (true, StepState::NotSeen) => {
                    self.transcript.reset();
                    self.step = StepState::Open;
                    self.head = HeadState::Header;
                    self.content_start = 0;
                    self.first_command_end = None;
                }
                (false, StepState::Open) => self.step = StepState::Closed,
                _ => {}
            }
        } else if name == CHAT_REPLY.as_bytes() {
            match (start, self.chat_state) {
                (true, ChatState::None | ChatState::Open { .. }) => {
                    self.chat.reset();
                    self.chat_state = ChatState::Open {
                        skip_line_feed: true,
                    };
                }
                (false, ChatState::Open { .. }) => self.chat_state = ChatState::Complete,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_masker_holds_back_only_what_could_still_be_a_secret() {
        let secrets = ["S3crETVALUE".to_owned(), "x".repeat(64)];
        let mut masker = SecretMasker::new(&secrets);
        let mut out = Vec::new();
        masker.push(b"tick 1\ntick 2\n", &mut out);
        assert_eq!(out, b"tick 1\ntick 2\n", "nothing here can become a secret");
        out.clear();
        masker.push(b"done S3cr", &mut out);
        assert_eq!(out, b"done ", "a secret's start waits for the next chunk");
        out.clear();
        masker.push(b"ETVALUE and S3cr", &mut out);
        masker.push(b"ap", &mut out);
        assert_eq!(out, b"[MASKED] and S3crap");
    }

    use super::*;

    /// The trace the executor writes around a step: preamble, header, commands, footer.
    fn trace(commands: &[(&str, &str)]) -> String {
        let mut t = String::from("Running with chatops 0.1.0\n");
        t.push_str(&section_start_with_header(
            STEP_SCRIPT,
            1_700_000_000,
            STEP_SCRIPT_HEADER,
        ));
        for (command, output) in commands {
            t.push_str(&command_echo(command));
            t.push_str(output);
        }
        t.push_str(&section_end(STEP_SCRIPT, 1_700_000_001));
        t.push_str(&notice_line("Job succeeded"));
        t
    }

    fn collect(trace: &[u8], single: bool) -> OutputBlock {
        let mut c = OutputCollector::new(1 << 16);
        c.feed(trace);
        c.finish(single, &[])
    }

    /// Feeds `trace` split at every possible point (and byte by byte): the result must not
    /// depend on where reads happened to end.
    fn collect_every_split(trace: &[u8], single: bool) -> OutputBlock {
        let whole = collect(trace, single);
        for cut in 0..=trace.len() {
            let (a, b) = trace.split_at(cut);
            let mut c = OutputCollector::new(1 << 16);
            c.feed(a);
            c.feed(b);
            assert_eq!(c.finish(single, &[]), whole, "split at {cut}");
        }
        let mut c = OutputCollector::new(1 << 16);
        for b in trace {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.finish(single, &[]), whole, "byte by byte");
        whole
    }

    #[test]
    fn word_scans_agree_with_byte_scans() {
        // Every byte value at every position of a group, with neighbours that could carry.
        for fill in [0u8, b'a', 0x1f, 0x20, 0x7f, 0x80, 0xff, b'\n'] {
            for len in 0..20 {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut v = vec![fill; len];
                        v[pos] = b;
                        let want_end = v.iter().position(|&c| is_control(c) || c == b'_');
                        assert_eq!(find_run_end(&v), want_end, "{v:?}");
                        let want_lf = v.iter().rposition(|&c| c == b'\n');
                        assert_eq!(rfind_line_feed(&v), want_lf, "{v:?}");
                        let want_lf = v.iter().position(|&c| c == b'\n');
                        assert_eq!(find_line_feed(&v), want_lf, "{v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn markers_and_echo_have_gitlab_runner_format() {
        assert_eq!(
            section_start("step_script", 1_600_000_000),
            "\x1b[0Ksection_start:1600000000:step_script\r\x1b[0K"
        );
        assert_eq!(
            section_end("chat_reply", 7),
            "\x1b[0Ksection_end:7:chat_reply\r\x1b[0K"
        );
        assert_eq!(command_echo("  echo hi  "), "\x1b[32;1m$ echo hi\x1b[0;m\n");
        assert_eq!(
            command_echo("if true; then\n  echo yes\nfi"),
            "\x1b[32;1m$ if true; then # collapsed multi-line command\x1b[0;m\n"
        );
        // Control characters cannot smuggle escapes or markers into the trace.
        let forged = command_echo("echo \x1b[31mred\r");
        assert!(!forged.contains("\x1b[31m"), "{forged:?}");
        assert!(forged.contains("\\u{1b}[31mred"), "{forged:?}");
    }

    #[test]
    fn seed_hello_world_replies_hello_world() {
        // GitLab's documented example: one command, no before_script.
        let t = trace(&[("echo \"Hello World\"", "Hello World\n")]);
        let out = collect_every_split(t.as_bytes(), true);
        assert_eq!(out.text, "Hello World");
        assert_eq!(out.omitted_bytes, 0);
    }

    #[test]
    fn seed_ls_replies_only_the_chat_reply_section() {
        let second = "echo -e \"section_start:$( date +%s ):chat_reply\\r\\033[0K\\n$( ls -la )\\nsection_end:$( date +%s ):chat_reply\\r\\033[0K\"";
        // What bash's `echo -e` prints for the second command.
        let listing = "total 8\ndrwxr-xr-x 2 u u 4096 Jan  1 00:00 .\n-rw-r--r-- 1 u u   12 Jan  1 00:00 .gitlab-ci.yml";
        let printed = format!(
            "section_start:1700000000:chat_reply\r\x1b[0K\n{listing}\nsection_end:1700000001:chat_reply\r\x1b[0K\n"
        );
        let t = trace(&[
            (
                "echo \"This command will not be shown.\"",
                "This command will not be shown.\n",
            ),
            (second, &printed),
        ]);
        for single in [false, true] {
            let out = collect_every_split(t.as_bytes(), single);
            assert_eq!(out.text, listing);
            assert!(!out.text.contains("will not be shown"));
        }
    }

    #[test]
    fn several_commands_give_the_transcript() {
        let t = trace(&[
            ("echo one", "one\n"),
            ("printf '\\033[31mtwo\\033[0m\\n'", "\x1b[31mtwo\x1b[0m\n"),
        ]);
        let out = collect_every_split(t.as_bytes(), false);
        assert_eq!(
            out.text,
            "$ echo one\none\n$ printf '\\033[31mtwo\\033[0m\\n'\ntwo"
        );
    }

    #[test]
    fn before_script_means_transcript_even_for_one_script_command() {
        // The caller says single_command = false when before_script is not empty.
        let t = trace(&[("cd sub", ""), ("echo hi", "hi\n")]);
        assert_eq!(collect(t.as_bytes(), false).text, "$ cd sub\n$ echo hi\nhi");
    }

    #[test]
    fn single_command_output_without_trailing_newline() {
        let t = trace(&[("printf done", "done\n")]);
        assert_eq!(collect(t.as_bytes(), true).text, "done");
        let t = trace(&[("true", "")]);
        assert_eq!(collect(t.as_bytes(), true).text, "");
        assert_eq!(collect(t.as_bytes(), false).text, "$ true");
    }

    #[test]
    fn incomplete_chat_reply_falls_back() {
        let t = trace(&[
            ("echo a", "a\n"),
            ("echo b", "section_start:1:chat_reply\r\x1b[0K\nonly b\n"),
        ]);
        let out = collect_every_split(t.as_bytes(), false);
        assert_eq!(out.text, "$ echo a\na\n$ echo b\n\nonly b");
        let t = trace(&[("echo b", "section_start:1:chat_reply\r\x1b[0K\nonly b\n")]);
        assert_eq!(collect(t.as_bytes(), true).text, "only b");
        // An end without a start is no section either.
        let t = trace(&[("echo c", "c\nsection_end:1:chat_reply\r\x1b[0K")]);
        assert_eq!(collect(t.as_bytes(), true).text, "c");
    }

    #[test]
    fn first_complete_chat_reply_wins_and_keeps_inner_lines() {
        let t = trace(&[(
            "./report",
            "noise\nsection_start:1:chat_reply[collapsed=true]\r\x1b[0Kfirst line\n\nsecond\nsection_end:2:chat_reply\r\x1b[0K\nsection_start:3:chat_reply\r\x1b[0K\nlater\nsection_end:4:chat_reply\r\x1b[0K",
        )]);
        // No line feed right after the marker: nothing is skipped.
        assert_eq!(
            collect_every_split(t.as_bytes(), true).text,
            "first line\n\nsecond"
        );
    }

    #[test]
    fn strip_ansi_removes_escapes_clear_line_and_markers() {
        let raw = "\x1b[0Ksection_start:1:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting\x1b[0;m\n\
                   \x1b]0;title\x07plain \x1b(Bcharset\r\x1b[0K kept\n\
                   section_end:1:step_script\r\x1b[0Ksession stays";
        assert_eq!(
            strip_ansi(raw),
            "Executing\nplain charset kept\nsession stays"
        );
        // Not markers: no timestamp, bad name, missing clear-line.
        for text in [
            "section_start::x\r",
            "section_start:1:bad name",
            "section_end:12:ok",
            "sections and sectors",
        ] {
            assert_eq!(strip_ansi(text), text.replace('\r', ""));
        }
    }

    #[test]
    fn carriage_returns_overwrite_like_a_terminal() {
        assert_eq!(strip_ansi("10%\r50%\r100%\ndone\r\n"), "100%\ndone\n");
        // A trailing `\r` leaves the line as the terminal shows it.
        assert_eq!(strip_ansi("100%\r"), "100%");
        assert_eq!(strip_ansi("a\x08b\x07c\td"), "abc\td");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut t = trace(&[("cat blob", "")]).into_bytes();
        // Put invalid bytes inside the step, before its end marker.
        let end = String::from_utf8_lossy(&t)
            .find("\x1b[0Ksection_end")
            .expect("the test trace has an end marker");
        t.splice(end..end, b"ok \xff\xfe bytes\n".iter().copied());
        let out = collect_every_split(&t, true);
        assert_eq!(out.text, "ok \u{fffd}\u{fffd} bytes");
    }

    #[test]
    fn secrets_are_masked_in_replies() {
        let t = trace(&[("echo $TOKEN", "token is hunter22!\n")]);
        let mut c = OutputCollector::new(1 << 16);
        c.feed(t.as_bytes());
        let out = c.finish(true, &["hunter22".to_owned(), String::new()]);
        assert_eq!(out.text, "token is [MASKED]!");
    }

    #[test]
    fn mask_prefers_longest_and_never_rescans() {
        let secrets = ["abc".to_owned(), "abcdef".to_owned(), "A".to_owned()];
        assert_eq!(
            mask_secrets("xabcdefx abc A", &secrets),
            "x[MASKED]x [MASKED] [MASKED]"
        );
        assert_eq!(mask_secrets("nothing", &[]), "nothing");
        assert_eq!(mask_secrets("ab", &["abc".to_owned()]), "ab");
    }

    #[test]
    fn masking_with_many_secrets_uses_the_table_scan_correctly() {
        let secrets: Vec<String> = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            mask_secrets("an alpha, a golf and a foxtrots; no gol", &secrets),
            "an [MASKED], a [MASKED] and a [MASKED]s; no gol"
        );
    }

    #[test]
    fn stream_masking_works_across_every_chunk_boundary() {
        let secrets = ["s3cr3t-value".to_owned(), "tok".to_owned()];
        let text = b"a s3cr3t-value b tok s3cr3t-valu tok".to_vec();
        let expected = b"a [MASKED] b [MASKED] s3cr3t-valu [MASKED]".to_vec();
        for cut1 in 0..=text.len() {
            for cut2 in cut1..=text.len() {
                let mut m = SecretMasker::new(&secrets);
                let mut out = Vec::new();
                m.push(&text[..cut1], &mut out);
                m.push(&text[cut1..cut2], &mut out);
                m.push(&text[cut2..], &mut out);
                m.finish(&mut out);
                assert_eq!(out, expected, "cuts {cut1} {cut2}");
            }
        }
    }

    #[test]
    fn huge_line_keeps_memory_bounded_and_the_end() {
        let max = 4096;
        let mut c = OutputCollector::new(max);
        let mut head = trace(&[]).into_bytes();
        // Keep the preamble and header, drop the end marker and footer.
        let end = String::from_utf8_lossy(&head)
            .find("\x1b[0Ksection_end")
            .expect("the test trace has an end marker");
        head.truncate(end);
        c.feed(&head);
        c.feed(command_echo("yes | head").as_bytes());
        let chunk = vec![b'y'; 65536];
        let total: u64 = 100 * 1024 * 1024;
        let mut fed = 0u64;
        while fed < total {
            c.feed(&chunk);
            fed += chunk.len() as u64;
            assert!(
                c.retained_bytes() <= 4 * max + 1024,
                "{}",
                c.retained_bytes()
            );
        }
        c.feed(b"END\n");
        assert!(c.peak_retained_bytes() <= 4 * max + 1024);
        let out = c.finish(true, &[]);
        // The last `max` bytes are kept ("END\n" included); the line feed is trimmed.
        assert_eq!(out.text.len(), max - 1);
        assert!(out.text.ends_with("yyyEND"));
        assert_eq!(out.omitted_bytes, total + 4 - max as u64);
    }

    #[test]
    fn cut_output_drops_a_possibly_split_secret_and_partial_characters() {
        let text = "SECRETXYéééé end";
        let mut c = OutputCollector::new(16);
        c.feed(text.as_bytes());
        // Kept: "ETXYéééé end" (the cut is inside the secret); the 7 bytes that could belong
        // to a secret go, then the half character they leave.
        let out = c.finish(false, &["SECRETXY".to_owned()]);
        assert_eq!(out.text, "éé end");
        assert_eq!(out.omitted_bytes, 12);
        assert_eq!(out.text.len() as u64 + out.omitted_bytes, text.len() as u64);
    }

    #[test]
    fn trace_without_sections_is_one_step() {
        let raw = "$ echo hi\nhi\n";
        assert_eq!(collect(raw.as_bytes(), true).text, "hi");
        assert_eq!(collect(b"just output\n", true).text, "just output");
        assert_eq!(collect(b"", true), OutputBlock::default());
    }

    #[test]
    fn after_script_and_footer_are_not_output() {
        let mut t = trace(&[("echo main", "main\n")]);
        t.push_str(&section_start_with_header(
            AFTER_SCRIPT,
            2,
            "Running after_script",
        ));
        t.push_str(&command_echo("echo cleanup"));
        t.push_str("cleanup\n");
        t.push_str(&section_end(AFTER_SCRIPT, 3));
        t.push_str(&error_line("ERROR: Job failed: exit code 1"));
        assert_eq!(collect(t.as_bytes(), false).text, "$ echo main\nmain");
    }
    #[test]
    fn section_options_follow_gitlabs_grammar() {
        // Markers: `key=value` pairs, a comma and at most one space between them.
        for options in [
            "[collapsed=true]",
            "[a=b,c=d]",
            "[a=b, c=d]",
            "[hide_duration=1]",
        ] {
            let t = format!("x\nsection_start:1:chat_reply{options}\r\x1b[0K\nin\nsection_end:2:chat_reply\r\x1b[0K\n");
            assert_eq!(
                collect_every_split(t.as_bytes(), true).text,
                "in",
                "{options}"
            );
        }
        // Not markers (GitLab's `logs_section_options_regex` does not match): shown as text.
        for options in [
            "[]",
            "[a=b,  c=d]",
            "[collapsed]",
            "[a=b ]",
            "[a=b,]",
            "[ a=b]",
            "[=b]",
            "[a=]",
            "[a=b;c=d]",
        ] {
            let marker = format!("section_start:1:chat_reply{options}\r\x1b[0K");
            assert_eq!(
                strip_ansi(&marker),
                format!("section_start:1:chat_reply{options}")
            );
            let t = format!("x\n{marker}\nin\nsection_end:2:chat_reply\r\x1b[0K\n");
            let out = collect_every_split(t.as_bytes(), false);
            assert!(
                out.text.contains("section_start:1:chat_reply"),
                "{options}: {out:?}"
            );
        }
    }

    #[test]
    fn log_view_masks_a_secret_split_by_escapes_across_every_chunk_boundary() {
        let secrets = ["S3crETVALUE".to_owned()];
        let raw =
            b"pre S3cr\x1b[0mETVALUE mid S3\r\x1b[0KcrET\x1b]0;t\x07VALUE\nnext S3crETVALUE\n";
        let want = "pre [MASKED] mid [MASKED]\nnext [MASKED]\n";
        assert_eq!(render_log(raw, &secrets), want);
        for cut in 0..=raw.len() {
            let mut view = LogView::new(&secrets);
            let mut out = Vec::new();
            view.push(&raw[..cut], &mut out);
            view.push(&raw[cut..], &mut out);
            view.finish(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), want, "cut at {cut}");
        }
        // Cleaning as strip_ansi does: carriage returns replace their line.
        assert_eq!(render_log(b"10%\r50%\r100%\ndone\r\n", &[]), "100%\ndone\n");
        assert_eq!(
            render_log(b"secret\rshown", &["secret".to_owned()]),
            "shown"
        );
    }

    #[test]
    fn log_view_passes_a_huge_line_on_before_it_ends() {
        let mut view = LogView::new(&["tok".to_owned()]);
        let mut out = Vec::new();
        view.push(&vec![b'y'; 3 * MAX_VIEW_LINE], &mut out);
        assert!(out.len() >= 2 * MAX_VIEW_LINE, "{}", out.len());
        view.finish(&mut out);
        assert_eq!(out.len(), 3 * MAX_VIEW_LINE);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Escapes, clear-line codes and markers a job may print between a secret's characters.
        const NOISE: &[&str] = &[
            "",
            "\x1b[0m",
            "\x1b[31;1m",
            "\x1b[0;m",
            "\r\x1b[0K",
            "\x1b[0K",
            "\x1b]0;title\x07",
            "\x1b(B",
            "\x07",
            "\x08",
            "\x1b[0Ksection_start:1:chat_reply\r\x1b[0K",
            "section_end:2:step_script\r\x1b[0K",
        ];

        fn secret() -> impl Strategy<Value = String> {
            proptest::collection::vec(0usize..36, 3..16).prop_map(|v| {
                v.into_iter()
                    .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[i]))
                    .collect()
            })
        }

        /// Plain output: letters, digits, spaces and line feeds.
        fn plain() -> impl Strategy<Value = String> {
            proptest::collection::vec(0usize..40, 0..64).prop_map(|v| {
                v.into_iter()
                    .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789 \n S"[i]))
                    .collect()
            })
        }

        /// The secret with a piece of noise before each of its characters.
        fn disguised(secret: &str, noise: &[usize]) -> String {
            let mut s = String::new();
            for (i, c) in secret.chars().enumerate() {
                let pick = noise.get(i).copied().unwrap_or(0) % NOISE.len();
                s.push_str(NOISE[pick]);
                s.push(c);
            }
            s
        }

        fn view_in_chunks(raw: &[u8], cuts: &[usize], secrets: &[String]) -> String {
            let mut view = LogView::new(secrets);
            let mut out = Vec::new();
            let mut from = 0;
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (raw.len() + 1)).collect();
            cuts.sort_unstable();
            for cut in cuts {
                view.push(&raw[from..cut], &mut out);
                from = cut;
            }
            view.push(&raw[from..], &mut out);
            view.finish(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            #[test]
            fn cleaning_arbitrary_bytes_never_panics_and_leaves_no_escape(
                raw in proptest::collection::vec(any::<u8>(), 0..600),
                cuts in proptest::collection::vec(any::<usize>(), 0..4),
            ) {
                let text = strip_ansi(&String::from_utf8_lossy(&raw));
                prop_assert!(!text.contains('\x1b'));
                prop_assert!(!text.contains('\r'));
                let viewed = view_in_chunks(&raw, &cuts, &[]);
                prop_assert!(!viewed.contains('\x1b'));
                // The stream view cleans as strip_ansi does when lines are short.
                prop_assert_eq!(viewed, render_log(&raw, &[]));
                let mut c = OutputCollector::new(256);
                c.feed(&raw);
                let out = c.finish(false, &[]);
                prop_assert!(!out.text.contains('\x1b'));
            }

            #[test]
            fn a_disguised_secret_never_shows_in_log_views_or_replies(
                secret in secret(),
                before in plain(),
                after in plain(),
                noise in proptest::collection::vec(any::<usize>(), 0..16),
                cuts in proptest::collection::vec(any::<usize>(), 0..4),
            ) {
                let raw = format!("{before}{}{after}", disguised(&secret, &noise));
                let secrets = vec![secret.clone()];
                let viewed = view_in_chunks(raw.as_bytes(), &cuts, &secrets);
                prop_assert!(!viewed.contains(&secret), "{:?} in {:?}", secret, viewed);
                prop_assert!(viewed.contains(MASK), "{:?} from {:?}", viewed, raw);
                for single in [false, true] {
                    let mut c = OutputCollector::new(1 << 12);
                    let mut from = 0;
                    for &cut in &cuts {
                        let cut = (cut % (raw.len() + 1)).max(from);
                        c.feed(&raw.as_bytes()[from..cut]);
                        from = cut;
                    }
                    c.feed(&raw.as_bytes()[from..]);
                    let out = c.finish(single, &secrets);
                    prop_assert!(!out.text.contains(&secret), "{:?}", out.text);
                }
            }

            #[test]
            fn a_disguised_secret_in_arbitrary_bytes_never_shows(
                secret in secret(),
                before in proptest::collection::vec(any::<u8>(), 0..200),
                after in proptest::collection::vec(any::<u8>(), 0..200),
                noise in proptest::collection::vec(any::<usize>(), 0..16),
                cuts in proptest::collection::vec(any::<usize>(), 0..4),
            ) {
                let mut raw = before;
                raw.extend_from_slice(disguised(&secret, &noise).as_bytes());
                raw.extend_from_slice(&after);
                let secrets = vec![secret.clone()];
                let viewed = view_in_chunks(&raw, &cuts, &secrets);
                prop_assert!(!viewed.contains(&secret), "{:?} in {:?}", secret, viewed);
                let mut c = OutputCollector::new(1 << 12);
                c.feed(&raw);
                let out = c.finish(false, &secrets);
                prop_assert!(!out.text.contains(&secret), "{:?}", out.text);
            }

            #[test]
            fn masking_is_idempotent_and_streams_like_the_whole(
                secrets in proptest::collection::vec(secret(), 1..4),
                parts in proptest::collection::vec((plain(), 0usize..4), 0..8),
                cuts in proptest::collection::vec(any::<usize>(), 0..4),
            ) {
                let mut text = String::new();
                for (filler, pick) in &parts {
                    text.push_str(filler);
                    if let Some(s) = secrets.get(*pick) {
                        text.push_str(s);
                    }
                }
                let once = mask_secrets(&text, &secrets);
                prop_assert_eq!(mask_secrets(&once, &secrets), once.clone());
                for s in &secrets {
                    prop_assert!(!once.contains(s.as_str()));
                }
                let mut masker = SecretMasker::new(&secrets);
                let mut out = Vec::new();
                let raw = text.as_bytes();
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (raw.len() + 1)).collect();
                cuts.sort_unstable();
                let mut from = 0;
                for cut in cuts {
                    masker.push(&raw[from..cut], &mut out);
                    from = cut;
                }
                masker.push(&raw[from..], &mut out);
                masker.finish(&mut out);
                prop_assert_eq!(String::from_utf8_lossy(&out), once);
            }
        }
    }

    /// Removes the normalised colour escapes [`ColourLogView`] writes (bytes: an escape may
    /// sit inside a character the job split).
    fn without_colours(text: &[u8]) -> String {
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(b"\x1b[") {
                let params = text[i + 2..]
                    .iter()
                    .take_while(|&&b| b.is_ascii_digit() || b == b';' || b == b':')
                    .count();
                if text.get(i + 2 + params) == Some(&b'm') {
                    i += params + 3;
                    continue;
                }
            }
            out.push(text[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_coloured_view_masks_a_secret_split_by_escapes_and_keeps_colours() {
        let secrets = ["S3crETVALUE".to_owned()];
        let raw = b"\x1b[32;1m$ echo\x1b[0;m\n\x1b[31mS3cr\x1b[0mETVALUE and S3crETVALUE\n\x1b[33mplain\n";
        let out = render_coloured_log(raw, &secrets);
        assert!(!out.contains("S3cr"), "{out:?}");
        assert_eq!(
            out,
            "\x1b[32;1m$ echo\x1b[0;m\n\x1b[31m[MASKED]\x1b[0m and [MASKED]\n\x1b[33mplain\n"
        );
        assert_eq!(without_colours(out.as_bytes()), render_log(raw, &secrets));
    }

    #[test]
    fn a_coloured_view_carries_colours_across_lines_and_pieces() {
        let mut view = ColourLogView::new(&[]);
        let mut out = Vec::new();
        view.push(b"\x1b[1m\x1b[34mblue\nstill", &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "\x1b[1m\x1b[34mblue\n");
        out.clear();
        view.push(b" blue\x1b[0m\ndone\rnot\n", &mut out);
        view.finish(&mut out);
        // Each piece starts with the colours in force; a line replaced after a `\r` goes.
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\x1b[1m\x1b[34mstill blue\x1b[0m\nnot\n"
        );
    }

    #[test]
    fn a_coloured_view_keeps_only_plain_colour_escapes() {
        let out = render_coloured_log(b"\x1b]0;title\x07\x1b[2Ja\x1b[?25lb\x1b[38;5;208mc\n", &[]);
        assert_eq!(out, "ab\x1b[38;5;208mc\n");
    }

    mod coloured_props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Without its colours, the coloured view is exactly the plain view: the same
            /// cleaning, the same masking, whatever the bytes and wherever they are cut.
            #[test]
            fn the_coloured_view_shows_what_the_plain_view_shows(
                parts in proptest::collection::vec(
                    prop_oneof![
                        Just(b"S3crET".to_vec()),
                        Just(b"VALUE".to_vec()),
                        Just(b"\x1b[31m".to_vec()),
                        Just(b"\x1b[0m".to_vec()),
                        Just(b"\r".to_vec()),
                        Just(b"\n".to_vec()),
                        Just(b"\r\x1b[0K".to_vec()),
                        proptest::collection::vec(any::<u8>(), 0..6),
                    ],
                    0..40,
                ),
                cut in any::<usize>(),
            ) {
                let raw: Vec<u8> = parts.concat();
                let secrets = ["S3crETVALUE".to_owned()];
                let cut = cut % (raw.len() + 1);
                let mut view = ColourLogView::new(&secrets);
                let mut out = Vec::new();
                view.push(&raw[..cut], &mut out);
                view.push(&raw[cut..], &mut out);
                view.finish(&mut out);
                let plain = without_colours(&out);
                prop_assert_eq!(&plain, &render_log(&raw, &secrets));
                prop_assert!(!plain.contains('\x1b'));
            }
        }
    }
}
