//! The trace cleaner and the reply's output: a job's raw log (anything a job prints) through
//! `OutputCollector`, `strip_ansi`, the secret masker, and each platform's rendering of the
//! resulting reply.
//!
//! Input: a flags byte (bit 0: the job ran one command; the rest: a chunk size), then up to
//! three secrets separated by `\n` and ended by a NUL, then the trace.
//!
//! Beyond "no panic, no hang", it checks what the module promises: feeding the trace in
//! chunks gives exactly what feeding it at once gives, the collector's memory stays bounded,
//! streaming masking equals one-shot masking, and cleaned text holds no escape or control
//! character but tab and line feed.
#![no_main]

use chatops_exec::output::{mask_secrets, strip_ansi, OutputCollector, SecretMasker};
use chatops_core::{ChatAdapter, Inline, Reply, Tone};
use libfuzzer_sys::fuzz_target;

/// Small, so that the tails compact and drop text often.
const MAX_KEPT: usize = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let single_command = flags & 1 == 1;
    let chunk = usize::from(flags >> 1) + 1;
    let (secrets, trace) = match rest.iter().position(|&b| b == 0) {
        Some(nul) if nul <= 64 => {
            let head = String::from_utf8_lossy(rest.get(..nul).unwrap_or_default());
            let secrets: Vec<String> = head.split('\n').take(3).map(str::to_string).collect();
            (secrets, rest.get(nul + 1..).unwrap_or_default())
        }
        _ => (Vec::new(), rest),
    };

    // The collector: at once, then in chunks.
    let mut whole = OutputCollector::new(MAX_KEPT);
    whole.feed(trace);
    let peak = whole.peak_retained_bytes();
    let at_once = whole.finish(single_command, &secrets);
    let mut pieces = OutputCollector::new(MAX_KEPT);
    for part in trace.chunks(chunk) {
        pieces.feed(part);
    }
    let peak = peak.max(pieces.peak_retained_bytes());
    let chunked = pieces.finish(single_command, &secrets);
    assert_eq!(
        at_once, chunked,
        "the output depends on how the trace was split"
    );
    // "≤ 4 × max_kept_bytes plus a few hundred bytes"; a first line may be held whole up to
    // 64 KiB while it could still be the runner's header.
    assert!(
        peak <= 4 * MAX_KEPT + 64 * 1024 + 4096,
        "the collector held {peak} bytes"
    );

    // Cleaning alone.
    let text = String::from_utf8_lossy(trace);
    let clean = strip_ansi(&text);
    assert!(
        !clean
            .chars()
            .any(|c| (c < ' ' && c != '\t' && c != '\n') || c == '\u{7f}'),
        "a control character survived cleaning: {clean:?}"
    );

    // Masking: one shot equals streaming in chunks.
    let masked = mask_secrets(&text, &secrets);
    let mut masker = SecretMasker::new(&secrets);
    let mut streamed = Vec::new();
    for part in text.as_bytes().chunks(chunk) {
        masker.push(part, &mut streamed);
    }
    masker.finish(&mut streamed);
    assert_eq!(
        masked.as_bytes(),
        streamed.as_slice(),
        "masking depends on how the text was split"
    );

    // The reply as each platform renders it (escaping, limits).
    let mut reply = Reply::new(
        chatops_core::Visibility::InChannel,
        Tone::Failure,
        vec![Inline::Code(clean.chars().take(200).collect())],
    );
    reply.output = Some(at_once);
    let _ = chatops_fuzz::slack().render(&reply);
    let _ = chatops_fuzz::mattermost().render(&reply);
    let _ = chatops_fuzz::discord().render(&reply);
});
