//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found, kept as regression tests.

use chatops_core::OutputBlock;
use chatops_exec::output::OutputCollector;

/// The reply for `trace` fed in chunks of `chunk` bytes, keeping at most `max` bytes.
fn reply(trace: &[u8], chunk: usize, max: usize) -> OutputBlock {
    let mut collector = OutputCollector::new(max);
    for part in trace.chunks(chunk.max(1)) {
        collector.feed(part);
    }
    collector.finish(false, &[])
}

/// `trace_output` found that a line longer than the reply's limit, then overwritten by a
/// `\r` (a progress bar), showed the lines before it or not depending on how the job's
/// output was split into reads: read at once, the text before the long line had already been
/// dropped to make room for it. The reply must depend on the text alone.
#[test]
fn a_long_line_overwritten_by_a_carriage_return_gives_one_reply_however_it_is_read() {
    let max = 300;
    let mut trace = b"S3CRET\n".to_vec();
    trace.extend(std::iter::repeat_n(b'w', 320));
    trace.extend_from_slice(b"\r[[0K\n");
    let at_once = reply(&trace, trace.len(), max);
    assert_eq!(at_once.text, "S3CRET\n[[0K");
    assert_eq!(at_once.omitted_bytes, 0);
    for chunk in 1..=trace.len() {
        assert_eq!(
            reply(&trace, chunk, max),
            at_once,
            "read {chunk} bytes at a time"
        );
    }
    // Longer than the window: what was dropped stays dropped, the same for every split.
    for long in [599, 600, 601, 900, 1500] {
        let mut trace = b"one\ntwo\n".to_vec();
        trace.extend(std::iter::repeat_n(b'x', long));
        trace.extend_from_slice(b"\rdone\n");
        let at_once = reply(&trace, trace.len(), max);
        for chunk in [1, 2, 3, 7, 64, 299, 300, 301, 599] {
            assert_eq!(
                reply(&trace, chunk, max),
                at_once,
                "{long} long, read by {chunk}"
            );
        }
    }
}
