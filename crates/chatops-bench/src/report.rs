//! The results as the table the issue asks for: medians over the runs against its targets.

use crate::scenarios::{Fig, Results, Sizes};
use crate::stats::median;
use crate::table::{Goal, On, Row, Target};

const fn at_least(bound: f64, on: On, unit: &'static str) -> Option<Target> {
    Some(Target {
        goal: Goal::AtLeast(bound),
        on,
        unit,
    })
}

const fn at_most(bound: f64, on: On, unit: &'static str) -> Option<Target> {
    Some(Target {
        goal: Goal::AtMost(bound),
        on,
        unit,
    })
}

/// A figure's label (with its unit) and the target for it.
pub fn describe(fig: Fig, sizes: &Sizes) -> (String, Option<Target>) {
    let jobs = sizes.many_jobs;
    let secs = sizes.many_sleep;
    let big = format!("{:.0} MB", sizes.big_bytes as f64 / 1e6);
    match fig {
        Fig::AckRate1 => ("ack c=1: requests/s".into(), None),
        Fig::AckP50c1 => ("ack c=1: p50 latency, ms".into(), None),
        Fig::AckP99c1 => ("ack c=1: p99 latency, ms".into(), None),
        Fig::AckRate16 => ("ack c=16: requests/s".into(), at_least(0.5, On::Ratio, "")),
        Fig::AckP50c16 => ("ack c=16: p50 latency, ms".into(), None),
        Fig::AckP99c16 => (
            "ack c=16: p99 latency, ms".into(),
            at_most(2.0, On::Chatops, "ms"),
        ),
        Fig::ReplyP50 => (
            "command→reply c=1: p50, ms".into(),
            at_most(5.0, On::Chatops, "ms"),
        ),
        Fig::ReplyP99 => ("command→reply c=1: p99, ms".into(), None),
        Fig::ReplyP50Bash => (
            "command→reply c=1: p50, ms, vs direct bash spawn".into(),
            None,
        ),
        Fig::ReplyRate16Bash => (
            "command→reply c=16: jobs/s, vs direct bash spawn".into(),
            None,
        ),
        Fig::ReplyRate16 => (
            "command→reply c=16: jobs/s".into(),
            at_least(0.6, On::Ratio, ""),
        ),
        Fig::ManyAckP99 => (
            format!("{jobs} × sleep {secs}: ack p99 (16 senders), ms"),
            None,
        ),
        Fig::ManyRss => (
            format!("{jobs} × sleep {secs}: server RSS while waiting, MB"),
            None,
        ),
        Fig::ManyPeak => (
            format!("{jobs} × sleep {secs}: server peak RSS, MB"),
            at_most(64.0, On::Chatops, "MB"),
        ),
        Fig::ManyCpu => (
            format!("{jobs} × sleep {secs}: server CPU while waiting, % of a core"),
            at_most(2.0, On::Chatops, "%"),
        ),
        Fig::ManyWall => (
            format!("{jobs} × sleep {secs}: first command → last reply, s"),
            None,
        ),
        Fig::BigWall => (
            format!("{big} output: command → reply, s"),
            at_most(1.5, On::Ratio, ""),
        ),
        Fig::BigPeak => (
            format!("{big} output: server peak RSS, MB"),
            at_most(64.0, On::Chatops, "MB"),
        ),
        Fig::LiveEchoP50 => (
            "live progress: `echo` command→reply p50, ms, vs live off".into(),
            at_most(1.1, On::Ratio, ""),
        ),
        Fig::RunnerEchoP50 => (
            "on a runner: `echo` command→reply c=1 p50, ms, vs the local shell".into(),
            None,
        ),
        Fig::RunnerEchoP99 => (
            "on a runner: `echo` command→reply c=1 p99, ms, vs the local shell".into(),
            None,
        ),
        Fig::LiveTickerP50 => (
            "live progress: 3 s `ticker` command→reply p50, ms, vs live off".into(),
            at_most(1.1, On::Ratio, ""),
        ),
    }
}

/// The table's rows: one per measured figure (medians over the runs; the ratio is the median
/// of the per-run ratios), then the failure counts (totals over all runs).
pub fn rows(results: &Results, sizes: &Sizes) -> Vec<Row> {
    let mut rows: Vec<Row> = results
        .series
        .iter()
        .map(|(&fig, s)| {
            let (figure, target) = describe(fig, sizes);
            Row {
                figure,
                baseline: median(&s.baseline),
                chatops: median(&s.chatops),
                ratio: median(&s.ratios),
                target,
            }
        })
        .collect();
    let e = &results.errors;
    let zero = at_most(0.0, On::Chatops, "");
    for (label, n) in [
        ("acks not 200 JSON (total)", e.acks_failed),
        ("replies lost (total)", e.replies_lost),
        ("replies duplicated (total)", e.replies_duplicated),
        ("jobs not succeeded (total)", e.jobs_not_succeeded),
    ] {
        rows.push(Row {
            figure: label.into(),
            baseline: None,
            chatops: Some(n as f64),
            ratio: None,
            target: zero,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_medians_and_judge_targets() {
        let mut r = Results::default();
        for (b, c) in [(10000.0, 4000.0), (12000.0, 7000.0), (11000.0, 6000.0)] {
            r.record(Fig::AckRate16, Some(b), Some(c));
        }
        r.errors.replies_lost = 2;
        let rows = rows(&r, &Sizes::full());
        let ack = rows
            .iter()
            .find(|row| row.figure.starts_with("ack c=16: requests/s"))
            .expect("the ack row");
        assert_eq!(ack.baseline, Some(11000.0));
        assert_eq!(ack.chatops, Some(6000.0));
        // Per-run ratios 0.4, 0.583, 0.545: the median is 0.545, which meets ≥ 0.5.
        let ratio = ack.ratio.expect("a ratio");
        assert!((ratio - 6000.0 / 11000.0).abs() < 1e-9, "{ratio}");
        assert_eq!(ack.met(), Some(true));
        let lost = rows
            .iter()
            .find(|row| row.figure.starts_with("replies lost"))
            .expect("the lost row");
        assert_eq!(lost.met(), Some(false));
        assert_eq!(rows.len(), 1 + 4, "unmeasured figures are left out");
    }

    #[test]
    fn labels_follow_the_sizes() {
        let (label, target) = describe(Fig::ManyPeak, &Sizes::quick());
        assert!(label.starts_with("50 × sleep 5"), "{label}");
        assert_eq!(target, at_most(64.0, On::Chatops, "MB"));
        let (label, _) = describe(Fig::BigWall, &Sizes::full());
        assert!(label.starts_with("200 MB output"), "{label}");
    }
}
