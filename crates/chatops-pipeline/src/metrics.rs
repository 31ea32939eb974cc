//! Counters the server exposes on `/metrics` (Prometheus text format). Plain atomics: they are
//! bumped from actor handlers and read by HTTP handlers without any lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub commands_received: AtomicU64,
    pub commands_refused: AtomicU64,
    pub jobs_started: AtomicU64,
    pub jobs_succeeded: AtomicU64,
    pub jobs_failed: AtomicU64,
    pub jobs_canceled: AtomicU64,
    pub jobs_timed_out: AtomicU64,
    pub jobs_running: AtomicU64,
    pub jobs_queued: AtomicU64,
    pub replies_delivered: AtomicU64,
    pub replies_failed: AtomicU64,
    pub delivery_attempts: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(counter: &AtomicU64) {
        // Saturating: a gauge never wraps below zero even if a decrement races a reset.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP chatops_{name} {help}");
            let _ = writeln!(out, "# TYPE chatops_{name} {kind}");
            let _ = writeln!(out, "chatops_{name} {}", v.load(Ordering::Relaxed));
        };
        put(
            "commands_received_total",
            "counter",
            "Verified chat commands received.",
            &self.commands_received,
        );
        put(
            "commands_refused_total",
            "counter",
            "Commands refused (unknown job, role, rules...).",
            &self.commands_refused,
        );
        put(
            "jobs_started_total",
            "counter",
            "Jobs whose script started.",
            &self.jobs_started,
        );
        put(
            "jobs_succeeded_total",
            "counter",
            "Jobs that succeeded.",
            &self.jobs_succeeded,
        );
        put(
            "jobs_failed_total",
            "counter",
            "Jobs that failed.",
            &self.jobs_failed,
        );
        put(
            "jobs_canceled_total",
            "counter",
            "Jobs canceled.",
            &self.jobs_canceled,
        );
        put(
            "jobs_timed_out_total",
            "counter",
            "Jobs killed at their timeout.",
            &self.jobs_timed_out,
        );
        put(
            "jobs_running",
            "gauge",
            "Jobs running now.",
            &self.jobs_running,
        );
        put(
            "jobs_queued",
            "gauge",
            "Jobs waiting for a free slot.",
            &self.jobs_queued,
        );
        put(
            "replies_delivered_total",
            "counter",
            "Replies the chat platform accepted.",
            &self.replies_delivered,
        );
        put(
            "replies_failed_total",
            "counter",
            "Replies given up on.",
            &self.replies_failed,
        );
        put(
            "reply_delivery_attempts_total",
            "counter",
            "Reply delivery attempts.",
            &self.delivery_attempts,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.jobs_started);
        Metrics::inc(&m.jobs_running);
        Metrics::dec(&m.jobs_running);
        Metrics::dec(&m.jobs_running);
        let text = m.render();
        assert!(text.contains("chatops_jobs_started_total 1\n"));
        assert!(text.contains("chatops_jobs_running 0\n"));
        assert!(text.contains("# TYPE chatops_jobs_running gauge"));
    }
}
