//! Sends a reply through the adapter its command came from, choosing the platform's reply
//! webhook while its window is open and the bot API after, and retrying what can be retried.

use crate::metrics::Metrics;
use crate::pipeline::Shared;
use chatops_core::{Capabilities, Reply, ReplyTarget, Retry, Via};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long one reply may keep failing before chatops gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);

/// Which channel a reply should use now, given when its command arrived.
pub fn choose_via(caps: &Capabilities, target: &ReplyTarget, received_at: SystemTime) -> Via {
    let age = SystemTime::now()
        .duration_since(received_at)
        .unwrap_or(Duration::ZERO);
    let window_open = caps.followup_window.is_none_or(|w| age < w);
    if target.response_url.is_some() && window_open {
        Via::ResponseUrl
    } else if caps.bot_api {
        Via::BotApi
    } else {
        Via::ResponseUrl
    }
}

/// Delivers `reply`, retrying network errors and 5xx with exponential backoff and jitter and
/// honouring 429 `Retry-After`, until it succeeds, fails for good, or [`GIVE_UP_AFTER`] passes.
pub async fn deliver(
    shared: Arc<Shared>,
    target: ReplyTarget,
    reply: Reply,
    received_at: SystemTime,
) {
    let Some(adapter) = shared.adapters.get(&target.platform).cloned() else {
        tracing::error!(platform = %target.platform, "no adapter for this platform: reply dropped");
        Metrics::inc(&shared.metrics.replies_failed);
        return;
    };
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        Metrics::inc(&shared.metrics.delivery_attempts);
        let via = choose_via(&adapter.capabilities(), &target, received_at);
        match adapter.deliver(&target, &reply, via).await {
            Ok(()) => {
                Metrics::inc(&shared.metrics.replies_delivered);
                tracing::debug!(platform = %target.platform, attempt, ?via, "reply delivered");
                return;
            }
            Err(err) => {
                let wait = match err.retry {
                    Retry::Never => None,
                    Retry::After(d) => Some(d),
                    Retry::Backoff => {
                        let w = backoff + jitter(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        Some(w)
                    }
                };
                match wait {
                    Some(wait) if started.elapsed() + wait < GIVE_UP_AFTER => {
                        tracing::warn!(platform = %target.platform, attempt, error = %err, retry_in_ms = wait.as_millis() as u64, "reply not delivered yet");
                        tokio::time::sleep(wait).await;
                    }
                    _ => {
                        tracing::error!(platform = %target.platform, attempt, error = %err, "reply given up");
                        Metrics::inc(&shared.metrics.replies_failed);
                        return;
                    }
                }
            }
        }
    }
}

/// Up to half of `base`, from the clock's sub-second noise: enough to spread retries of many
/// replies that failed together, without a random-number dependency.
fn jitter(base: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    let half = (base.as_millis() as u64 / 2).max(1);
    Duration::from_millis(nanos % half)
}
