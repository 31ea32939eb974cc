//! The results table: figure, baseline, chatops, ratio, target, met?

use std::fmt::Write as _;

/// Which way a figure must go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Goal {
    fn holds(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(t) => value >= t,
            Goal::AtMost(t) => value <= t,
        }
    }
}

/// The column a target is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum On {
    /// chatops / baseline.
    Ratio,
    /// chatops' own figure.
    Chatops,
}

/// A target from the issue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The bound.
    pub goal: Goal,
    /// What it bounds.
    pub on: On,
    /// Unit shown after the bound (empty for ratios and counts).
    pub unit: &'static str,
}

/// One line of the table. Values are medians over the runs, except counts of errors, which are
/// totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is measured, with its unit (e.g. `ack c=16: p99 latency, ms`).
    pub figure: String,
    /// The machine's limit for the same work, when there is one.
    pub baseline: Option<f64>,
    /// chatops' figure.
    pub chatops: Option<f64>,
    /// chatops / baseline (the median of the per-run ratios, so each ratio pairs runs made
    /// back to back and the machine's drift cancels).
    pub ratio: Option<f64>,
    /// The target for this figure, if it has one.
    pub target: Option<Target>,
}

impl Row {
    /// Whether the target is met: `None` when the row has no target or the value is missing.
    pub fn met(&self) -> Option<bool> {
        let target = self.target?;
        let value = match target.on {
            On::Ratio => self.ratio?,
            On::Chatops => self.chatops?,
        };
        Some(target.goal.holds(value))
    }
}

/// A number for the table: about three significant digits, no exponent.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "—".into())
}

fn fmt_target(t: Option<Target>) -> String {
    let Some(t) = t else {
        return String::new();
    };
    if t.goal == Goal::AtMost(0.0) && t.unit.is_empty() {
        return "= 0".into();
    }
    let (sign, bound) = match t.goal {
        Goal::AtLeast(b) => ("≥", b),
        Goal::AtMost(b) => ("≤", b),
    };
    let what = match t.on {
        On::Ratio => "ratio ",
        On::Chatops => "",
    };
    let unit = if t.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", t.unit)
    };
    // `Display` for f64 prints the bound as written in the issue: 0.5, 2, 64.
    format!("{what}{sign} {bound}{unit}")
}

/// Renders `rows` as an aligned plain-text table (also valid Markdown: pipes and a rule).
pub fn render(rows: &[Row]) -> String {
    let header = ["figure", "baseline", "chatops", "ratio", "target", "met?"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                fmt_opt(r.baseline),
                fmt_opt(r.chatops),
                fmt_opt(r.ratio),
                fmt_target(r.target),
                match r.met() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        out.push('|');
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            // Text left, numbers right: the figure column is text, the target column reads
            // better left-aligned too.
            let pad = w - c.chars().count();
            if i == 0 || i >= 4 {
                let _ = write!(out, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{c} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &header.map(String::from));
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if i == 0 || i >= 4 {
            let _ = write!(out, "-{dashes}-|");
        } else {
            let _ = write!(out, "-{dashes}:|");
        }
    }
    out.push('\n');
    for row in &cells {
        line(&mut out, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ratio: Option<f64>, chatops: Option<f64>, target: Option<Target>) -> Row {
        Row {
            figure: "f".into(),
            baseline: Some(10.0),
            chatops,
            ratio,
            target,
        }
    }

    #[test]
    fn ratio_targets_check_the_ratio_column() {
        let t = Some(Target {
            goal: Goal::AtLeast(0.5),
            on: On::Ratio,
            unit: "",
        });
        assert_eq!(row(Some(0.6), Some(1.0), t).met(), Some(true));
        assert_eq!(row(Some(0.4), Some(100.0), t).met(), Some(false));
        assert_eq!(row(None, Some(100.0), t).met(), None);
    }

    #[test]
    fn chatops_targets_check_chatops_own_figure() {
        let t = Some(Target {
            goal: Goal::AtMost(2.0),
            on: On::Chatops,
            unit: "ms",
        });
        assert_eq!(row(Some(99.0), Some(2.0), t).met(), Some(true));
        assert_eq!(row(Some(0.1), Some(2.1), t).met(), Some(false));
        assert_eq!(row(Some(0.1), Some(2.1), None).met(), None);
    }

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(fmt_num(12345.6), "12346");
        assert_eq!(fmt_num(42.25), "42.2");
        assert_eq!(fmt_num(1.5), "1.50");
        assert_eq!(fmt_num(0.0312), "0.031");
        assert_eq!(fmt_num(0.0), "0");
    }

    #[test]
    fn render_aligns_columns_and_marks_misses() {
        let rows = vec![
            Row {
                figure: "ack c=16: requests/s".into(),
                baseline: Some(20000.0),
                chatops: Some(8000.0),
                ratio: Some(0.4),
                target: Some(Target {
                    goal: Goal::AtLeast(0.5),
                    on: On::Ratio,
                    unit: "",
                }),
            },
            Row {
                figure: "x".into(),
                baseline: None,
                chatops: Some(3.0),
                ratio: None,
                target: None,
            },
        ];
        let text = render(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{text}");
        assert!(lines[2].contains("ratio ≥ 0.5 "), "{text}");
        assert!(lines[2].contains("NO"), "{text}");
        assert!(
            lines[3].contains("—"),
            "missing baseline shown as a dash: {text}"
        );
    }
}
