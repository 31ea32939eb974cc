//! What the server counts and measures, for `/metrics` in the Prometheus text format (0.0.4),
//! kept and rendered by `prometheus-client`.
//!
//! Telemetry is typed events, as in vector's `internal_events`: a call site says what happened
//! (`metrics.emit(JobFinished { status, duration })`) and the event's [`Event::record`] is the
//! one place that decides which metrics move. No call site touches a metric.
//!
//! The handles are shared atomics (counters, gauges) and a small mutex per histogram series:
//! events are emitted from actor handlers, HTTP handlers and outbox tasks without any lock of
//! ours, and `/metrics` reads them the same way.
//!
//! Every metric is named `chatops_*`; the README's "Metrics" section lists them.

use crate::pipeline::Shared;
use chatops_core::{DeliveryError, JobId, JobStatus, PlatformId, Retry};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::{Duration, SystemTime};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Bounds (seconds) of the ack-latency buckets: an ack takes milliseconds, and a platform gives
/// up after a few seconds (Slack: 3 s), so nothing above 5 s needs telling apart.
const ACK_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Bounds (seconds) for what lasts as long as a job: its run, and command→reply. From a few
/// milliseconds (`echo`) to the two hours after which the outbox gives a reply up.
const JOB_BUCKETS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0,
];

fn ack_histogram() -> Histogram {
    Histogram::new(ACK_BUCKETS)
}

fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

/// `platform="slack"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlatformLabel {
    platform: String,
}

impl PlatformLabel {
    fn of(platform: &PlatformId) -> PlatformLabel {
        PlatformLabel {
            platform: platform.as_str().to_owned(),
        }
    }
}

/// `status="succeeded"` ([`JobStatus::name`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

type ByPlatform<M> = Family<PlatformLabel, M>;
type HistogramBy<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's metrics and the registry that renders them. One per server, in [`Shared`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    commands_received: Counter,
    commands_refused: Counter,
    ack_seconds: HistogramBy<PlatformLabel>,
    jobs_started: Counter,
    jobs_succeeded: Counter,
    jobs_failed: Counter,
    jobs_canceled: Counter,
    jobs_timed_out: Counter,
    job_seconds: HistogramBy<StatusLabel>,
    jobs_running: Gauge,
    jobs_queued: Gauge,
    replies_delivered: Counter,
    replies_failed: Counter,
    delivery_attempts: ByPlatform<Counter>,
    rate_limited: ByPlatform<Counter>,
    command_reply_seconds: HistogramBy<PlatformLabel>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered under the `chatops_` prefix. Unlabelled ones show at zero from
    /// the start; a labelled one shows once it has a series (see [`Metrics::for_platforms`]).
    /// Counters get their `_total` suffix from the encoder.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("chatops"),
            commands_received: Counter::default(),
            commands_refused: Counter::default(),
            ack_seconds: Family::new_with_constructor(ack_histogram),
            jobs_started: Counter::default(),
            jobs_succeeded: Counter::default(),
            jobs_failed: Counter::default(),
            jobs_canceled: Counter::default(),
            jobs_timed_out: Counter::default(),
            job_seconds: Family::new_with_constructor(job_histogram),
            jobs_running: Gauge::default(),
            jobs_queued: Gauge::default(),
            replies_delivered: Counter::default(),
            replies_failed: Counter::default(),
            delivery_attempts: Family::default(),
            rate_limited: Family::default(),
            command_reply_seconds: Family::new_with_constructor(job_histogram),
        };
        // The handles are shared (`Arc` inside): the registry keeps clones to render. Counters
        // are named without `_total`: the encoder adds it.
        macro_rules! register {
            ($($field:ident: $name:literal, $help:literal;)*) => {
                $(m.registry.register($name, $help, m.$field.clone());)*
            };
        }
        register! {
            commands_received: "commands_received", "Verified chat commands received";
            commands_refused: "commands_refused", "Commands refused (unknown job, role, rules...)";
            ack_seconds: "ack_duration_seconds",
                "From a platform's command reaching its route to the ack being ready, by platform";
            jobs_started: "jobs_started", "Jobs whose script started";
            jobs_succeeded: "jobs_succeeded", "Jobs that succeeded";
            jobs_failed: "jobs_failed", "Jobs that failed (or were interrupted)";
            jobs_canceled: "jobs_canceled", "Jobs canceled";
            jobs_timed_out: "jobs_timed_out", "Jobs killed at their timeout";
            job_seconds: "job_duration_seconds", "How long jobs that started ran, by final status";
            jobs_running: "jobs_running", "Jobs running now";
            jobs_queued: "jobs_queued", "Jobs waiting for a free slot (the queue's length)";
            replies_delivered: "replies_delivered", "Replies the chat platform accepted";
            replies_failed: "replies_failed", "Replies given up on";
            delivery_attempts: "reply_delivery_attempts", "Reply delivery attempts, by platform";
            rate_limited: "reply_rate_limited",
                "Deliveries rate-limited (HTTP 429, Slack `ratelimited`), by platform";
            command_reply_seconds: "command_reply_duration_seconds",
                "From a command to its job's result reply accepted by the platform, by platform";
        }
        m
    }

    /// [`Metrics::new`] with every per-platform series present at zero for these platforms
    /// (and the job-duration series for the usual statuses), so that a rate over them works
    /// from the server's start rather than from the first event.
    pub fn for_platforms(platforms: impl IntoIterator<Item = PlatformId>) -> Metrics {
        let m = Metrics::new();
        // Creating a series is all that is wanted: the read guards are dropped at once.
        for platform in platforms {
            let label = PlatformLabel::of(&platform);
            let _ = m.ack_seconds.get_or_create(&label);
            let _ = m.command_reply_seconds.get_or_create(&label);
            let _ = m.delivery_attempts.get_or_create(&label);
            let _ = m.rate_limited.get_or_create(&label);
        }
        for status in ["succeeded", "failed", "canceled", "timed_out"] {
            let _ = m.job_seconds.get_or_create(&StatusLabel { status });
        }
        m
    }

    /// Records one event: see [`Event`].
    pub fn emit(&self, event: impl Event) {
        event.record(self);
    }

    /// The Prometheus exposition text (format 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error would be the encoder's bug. Serve what
        // was written rather than nothing.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot render the metrics");
        }
        out
    }
}

/// Something that happened, which moves one or more metrics. Each event decides in one place
/// (its `record`) which; call sites only say what happened.
pub trait Event {
    fn record(self, metrics: &Metrics);
}

/// A verified command reached the pipeline (any subcommand, any platform).
pub struct CommandReceived;

impl Event for CommandReceived {
    fn record(self, m: &Metrics) {
        m.commands_received.inc();
    }
}

/// A command was refused (unknown job, role too low, excluded by rules...).
pub struct CommandRefused;

impl Event for CommandRefused {
    fn record(self, m: &Metrics) {
        m.commands_refused.inc();
    }
}

/// A platform's command got its ack: `elapsed` from the request's arrival at the handler to
/// the ack's HTTP answer being ready.
pub struct Acked<'a> {
    pub platform: &'a PlatformId,
    pub elapsed: Duration,
}

impl Event for Acked<'_> {
    fn record(self, m: &Metrics) {
        m.ack_seconds
            .get_or_create(&PlatformLabel::of(self.platform))
            .observe(self.elapsed.as_secs_f64());
    }
}

/// A job's script started.
pub struct JobStarted;

impl Event for JobStarted {
    fn record(self, m: &Metrics) {
        m.jobs_started.inc();
    }
}

/// A job ended. `duration` is how long it ran; `None` when it never started (a queued or
/// manual job canceled): counted, but not in the duration histogram.
pub struct JobFinished<'a> {
    pub status: &'a JobStatus,
    pub duration: Option<Duration>,
}

impl<'a> JobFinished<'a> {
    /// A job that ended without running (canceled while queued or waiting to be played).
    pub fn unstarted(status: &'a JobStatus) -> JobFinished<'a> {
        JobFinished {
            status,
            duration: None,
        }
    }
}

impl Event for JobFinished<'_> {
    fn record(self, m: &Metrics) {
        match self.status {
            JobStatus::Succeeded => m.jobs_succeeded.inc(),
            JobStatus::Failed { .. } | JobStatus::Interrupted => m.jobs_failed.inc(),
            JobStatus::Canceled { .. } => m.jobs_canceled.inc(),
            JobStatus::TimedOut { .. } => m.jobs_timed_out.inc(),
            _ => 0,
        };
        if let Some(ran) = self.duration {
            m.job_seconds
                .get_or_create(&StatusLabel {
                    status: self.status.name(),
                })
                .observe(ran.as_secs_f64());
        }
    }
}

/// How many jobs run and how many wait in the queue, now (the pipeline's own counts, so the
/// gauges never drift from the truth).
pub struct Occupancy {
    pub running: usize,
    pub queued: usize,
}

impl Occupancy {
    pub fn of(running: usize, queued: usize) -> Occupancy {
        Occupancy { running, queued }
    }
}

impl Event for Occupancy {
    fn record(self, m: &Metrics) {
        m.jobs_running.set(gauge_value(self.running));
        m.jobs_queued.set(gauge_value(self.queued));
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The outbox is about to try delivering a reply.
pub struct DeliveryAttempted<'a> {
    pub platform: &'a PlatformId,
}

impl Event for DeliveryAttempted<'_> {
    fn record(self, m: &Metrics) {
        m.delivery_attempts
            .get_or_create(&PlatformLabel::of(self.platform))
            .inc();
    }
}

/// A delivery attempt failed (it may be retried). Rate limits are counted.
pub struct DeliveryFailed<'a> {
    pub platform: &'a PlatformId,
    pub error: &'a DeliveryError,
}

impl Event for DeliveryFailed<'_> {
    fn record(self, m: &Metrics) {
        // `Retry::After` is what an adapter makes of a 429 (or Slack's `ratelimited`).
        if matches!(self.error.retry, Retry::After(_)) {
            m.rate_limited
                .get_or_create(&PlatformLabel::of(self.platform))
                .inc();
        }
    }
}

/// The platform accepted a reply. `since_command` is set when the reply is a job's result:
/// how long after the command it arrived ([`result_reply_age`]).
pub struct ReplyDelivered<'a> {
    pub platform: &'a PlatformId,
    pub since_command: Option<Duration>,
}

impl Event for ReplyDelivered<'_> {
    fn record(self, m: &Metrics) {
        m.replies_delivered.inc();
        if let Some(age) = self.since_command {
            m.command_reply_seconds
                .get_or_create(&PlatformLabel::of(self.platform))
                .observe(age.as_secs_f64());
        }
    }
}

/// A reply was given up (or lost: neither stored nor delivered).
pub struct ReplyGivenUp;

impl Event for ReplyGivenUp {
    fn record(self, m: &Metrics) {
        m.replies_failed.inc();
    }
}

/// For a reply about `job` delivered now: how long since the job's command, if the job has
/// ended (its result is the only reply sent after the end; acks and "still running" notices
/// come before). `None` for replies about no job or a job still going.
///
/// The start is when the job was set up, milliseconds after its command arrived (the job's
/// live view; for a `when: manual` job, when it was played). A reply delivered more than a
/// minute after its job ended finds no live view and reads the job's creation from the store.
pub(crate) async fn result_reply_age(shared: &Shared, job: Option<JobId>) -> Option<Duration> {
    let job = job?;
    // Copied out at once: a DashMap guard must not live across the `.await` below.
    let live = shared
        .jobs
        .get(&job)
        .map(|v| (v.status.is_terminal(), v.created_at));
    let (ended, since) = match live {
        Some(live) => live,
        None => {
            let record = shared.store.job(job).await.ok().flatten()?;
            (record.status.is_terminal(), record.created_at)
        }
    };
    if !ended {
        return None;
    }
    SystemTime::now().duration_since(since).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name and labels, exactly as rendered).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn every_metric_is_listed_from_the_start() {
        // A labelled family shows once it has a series: `for_platforms` creates them.
        let text = Metrics::for_platforms([PlatformId::new("slack")]).render();
        for (name, kind) in [
            ("chatops_commands_received_total", "counter"),
            ("chatops_commands_refused_total", "counter"),
            ("chatops_jobs_started_total", "counter"),
            ("chatops_jobs_succeeded_total", "counter"),
            ("chatops_jobs_failed_total", "counter"),
            ("chatops_jobs_canceled_total", "counter"),
            ("chatops_jobs_timed_out_total", "counter"),
            ("chatops_jobs_running", "gauge"),
            ("chatops_jobs_queued", "gauge"),
            ("chatops_replies_delivered_total", "counter"),
            ("chatops_replies_failed_total", "counter"),
            ("chatops_reply_delivery_attempts_total", "counter"),
            ("chatops_reply_rate_limited_total", "counter"),
            ("chatops_ack_duration_seconds", "histogram"),
            ("chatops_command_reply_duration_seconds", "histogram"),
            ("chatops_job_duration_seconds", "histogram"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} ({kind}) missing from:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
        // Unlabelled metrics have a sample at zero before anything happened.
        assert_eq!(sample(&text, "chatops_jobs_started_total"), Some(0.0));
        assert_eq!(sample(&text, "chatops_jobs_queued"), Some(0.0));
        // Prometheus 0.0.4 text, not OpenMetrics: no `# EOF` trailer.
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn configured_platforms_start_at_zero() {
        let text = Metrics::for_platforms([PlatformId::new("slack")]).render();
        for series in [
            "chatops_ack_duration_seconds_count{platform=\"slack\"}",
            "chatops_command_reply_duration_seconds_count{platform=\"slack\"}",
            "chatops_reply_delivery_attempts_total{platform=\"slack\"}",
            "chatops_reply_rate_limited_total{platform=\"slack\"}",
            "chatops_job_duration_seconds_count{status=\"succeeded\"}",
            "chatops_job_duration_seconds_count{status=\"timed_out\"}",
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in:\n{text}");
        }
        assert_eq!(
            sample(
                &text,
                "chatops_reply_rate_limited_total{platform=\"discord\"}"
            ),
            None
        );
    }

    #[test]
    fn counters_and_gauges_move() {
        let m = Metrics::new();
        m.emit(CommandReceived);
        m.emit(CommandReceived);
        m.emit(CommandRefused);
        m.emit(JobStarted);
        m.emit(Occupancy {
            running: 3,
            queued: 2,
        });
        m.emit(Occupancy {
            running: 1,
            queued: 0,
        });
        m.emit(ReplyGivenUp);
        let text = m.render();
        assert_eq!(sample(&text, "chatops_commands_received_total"), Some(2.0));
        assert_eq!(sample(&text, "chatops_commands_refused_total"), Some(1.0));
        assert_eq!(sample(&text, "chatops_jobs_started_total"), Some(1.0));
        assert_eq!(sample(&text, "chatops_jobs_running"), Some(1.0));
        assert_eq!(sample(&text, "chatops_jobs_queued"), Some(0.0));
        assert_eq!(sample(&text, "chatops_replies_failed_total"), Some(1.0));
    }

    #[test]
    fn job_durations_by_status_into_buckets() {
        let m = Metrics::new();
        for (status, secs) in [
            (JobStatus::Succeeded, 0.2),
            (JobStatus::Succeeded, 40.0),
            (JobStatus::Failed { exit_code: Some(1) }, 1.5),
        ] {
            m.emit(JobFinished {
                status: &status,
                duration: Some(Duration::from_secs_f64(secs)),
            });
        }
        // Canceled while queued: counted, but it never ran.
        m.emit(JobFinished {
            status: &JobStatus::Canceled { by: None },
            duration: None,
        });
        let text = m.render();
        assert_eq!(sample(&text, "chatops_jobs_succeeded_total"), Some(2.0));
        assert_eq!(sample(&text, "chatops_jobs_failed_total"), Some(1.0));
        assert_eq!(sample(&text, "chatops_jobs_canceled_total"), Some(1.0));
        let ok = |rest: &str| sample(&text, &format!("chatops_job_duration_seconds{rest}"));
        assert_eq!(ok("_count{status=\"succeeded\"}"), Some(2.0));
        assert_eq!(ok("_sum{status=\"succeeded\"}"), Some(40.2));
        assert_eq!(ok("_bucket{status=\"succeeded\",le=\"0.25\"}"), Some(1.0));
        assert_eq!(ok("_bucket{status=\"succeeded\",le=\"30\"}"), Some(1.0));
        assert_eq!(ok("_bucket{status=\"succeeded\",le=\"60\"}"), Some(2.0));
        assert_eq!(ok("_bucket{status=\"succeeded\",le=\"+Inf\"}"), Some(2.0));
        assert_eq!(ok("_count{status=\"failed\"}"), Some(1.0));
        assert_eq!(ok("_count{status=\"canceled\"}"), None);
    }

    #[test]
    fn latencies_and_deliveries_by_platform() {
        let m = Metrics::new();
        let slack = PlatformId::new("slack");
        let discord = PlatformId::new("discord");
        m.emit(Acked {
            platform: &slack,
            elapsed: Duration::from_micros(1_500),
        });
        m.emit(DeliveryAttempted { platform: &slack });
        m.emit(DeliveryAttempted { platform: &slack });
        m.emit(DeliveryAttempted { platform: &discord });
        m.emit(DeliveryFailed {
            platform: &slack,
            error: &DeliveryError::from_status(429, Some(Duration::from_secs(1)), ""),
        });
        // A 500 is a failure, not a rate limit.
        m.emit(DeliveryFailed {
            platform: &discord,
            error: &DeliveryError::from_status(500, None, ""),
        });
        m.emit(ReplyDelivered {
            platform: &slack,
            since_command: Some(Duration::from_millis(30)),
        });
        // Not a job's result: delivered, but no command→reply sample.
        m.emit(ReplyDelivered {
            platform: &discord,
            since_command: None,
        });
        let text = m.render();
        let s = |series: &str| sample(&text, series);
        assert_eq!(
            s("chatops_ack_duration_seconds_bucket{platform=\"slack\",le=\"0.001\"}"),
            Some(0.0)
        );
        assert_eq!(
            s("chatops_ack_duration_seconds_bucket{platform=\"slack\",le=\"0.0025\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_ack_duration_seconds_count{platform=\"slack\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_reply_delivery_attempts_total{platform=\"slack\"}"),
            Some(2.0)
        );
        assert_eq!(
            s("chatops_reply_delivery_attempts_total{platform=\"discord\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_reply_rate_limited_total{platform=\"slack\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_reply_rate_limited_total{platform=\"discord\"}"),
            None
        );
        assert_eq!(s("chatops_replies_delivered_total"), Some(2.0));
        assert_eq!(
            s("chatops_command_reply_duration_seconds_count{platform=\"slack\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_command_reply_duration_seconds_bucket{platform=\"slack\",le=\"0.05\"}"),
            Some(1.0)
        );
        assert_eq!(
            s("chatops_command_reply_duration_seconds_count{platform=\"discord\"}"),
            None
        );
    }
}
