//! The outbox: every reply is written to the store first, then delivered by one lane per
//! platform, so a slow or failing platform never delays replies to the others, and a reply
//! survives a restart until it is delivered or given up.
//!
//! A lane claims due replies (with a lease, so two lanes or a lane and a restarted server never
//! send the same reply at once), delivers each in its own task, and records the outcome:
//! delivered, retry later (network errors and 5xx with exponential backoff and jitter, 429
//! after `Retry-After`), or given up after [`GIVE_UP_AFTER`] or on an error retrying cannot fix.
//!
//! Which channel: the command's reply webhook while its window is open and its uses last
//! (`Capabilities::followup_window` / `followup_uses`), else the platform's bot API when a bot
//! token is configured. A reply for a status message's thread goes through the bot API (the
//! only way into a thread); a target made by [`StatusMessage::edit_target`] is the final edit
//! of a live status message ([`ChatAdapter::edit`](chatops_core::ChatAdapter::edit)), queued
//! and retried like any reply.

use crate::metrics::{DeliveryAttempted, DeliveryFailed, ReplyDelivered, ReplyGivenUp};
use crate::pipeline::Shared;
use chatops_core::{
    DeliveryError, JobId, PlatformId, Reply, ReplyTarget, Retry, StatusMessage, Via,
};
use chatops_store::{AttemptOutcome, OutboxItem, OutboxState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// How long one reply may keep failing before chatops gives up on it.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(2 * 3600);

/// How long a claimed reply stays hidden from other claims: longer than a delivery's HTTP
/// timeout, so a reply is never sent twice at once; short enough that a reply claimed by a
/// server that died comes back soon.
const LEASE: Duration = Duration::from_secs(60);

/// Replies a lane claims at once.
const BATCH: usize = 64;

/// Wakes the platform lanes when a reply is enqueued.
#[derive(Default)]
pub struct Outbox {
    lanes: HashMap<PlatformId, Arc<Notify>>,
}

impl Outbox {
    /// Starts one lane per adapter. Runs on the current actix System.
    pub fn start(shared: &Arc<Shared>) -> Outbox {
        let mut lanes = HashMap::new();
        for adapter in shared.adapters.iter() {
            let notify = Arc::new(Notify::new());
            lanes.insert(adapter.platform(), notify.clone());
            actix::spawn(lane(shared.clone(), adapter.platform(), notify));
        }
        Outbox { lanes }
    }

    /// Tells the platform's lane a reply is waiting.
    pub fn kick(&self, platform: &PlatformId) {
        if let Some(n) = self.lanes.get(platform) {
            n.notify_one();
        }
    }
}

/// Writes a reply to the outbox and wakes its lane. A reply that cannot be stored is delivered
/// directly, once: better a reply without a ledger entry than none.
///
/// The common case skips the lanes: the reply is stored already claimed by this task, which
/// delivers it at once (one store round trip instead of three, and no wake-up latency). If
/// this task dies, the claim's lease runs out and a lane delivers the reply. When an older
/// reply about the same job is still pending, the new one waits its turn in the lanes.
pub async fn send(shared: Arc<Shared>, job: Option<JobId>, target: ReplyTarget, reply: Reply) {
    let now = SystemTime::now();
    match shared
        .store
        .enqueue_reply_claimed(job, &target, &reply, now, LEASE)
        .await
    {
        Ok((id, true)) => {
            let item = OutboxItem {
                id,
                job,
                created_at: now,
                target,
                reply,
                state: OutboxState::Pending,
                attempts: 0,
                next_attempt_at: now + LEASE,
                last_error: None,
                settled_at: None,
                via: None,
            };
            deliver_one(shared, item).await;
        }
        Ok((_, false)) => {
            if let Some(outbox) = shared.outbox.get() {
                outbox.kick(&target.platform);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a reply; delivering it without the outbox");
            if let Some(adapter) = shared.adapters.get(&target.platform).cloned() {
                let via = if target.response_url.is_some() {
                    Via::ResponseUrl
                } else {
                    Via::BotApi
                };
                if let Err(e) = adapter.deliver(&target, &reply, via).await {
                    tracing::error!(error = %e, "reply lost: neither stored nor delivered");
                    shared.metrics.emit(ReplyGivenUp);
                }
            }
        }
    }
}

async fn lane(shared: Arc<Shared>, platform: PlatformId, notify: Arc<Notify>) {
    loop {
        let claimed = shared
            .store
            .claim_due_replies(SystemTime::now(), LEASE, Some(&platform), BATCH)
            .await;
        match claimed {
            Ok(items) => {
                for item in items {
                    actix::spawn(deliver_one(shared.clone(), item));
                }
            }
            Err(e) => {
                if shared.store.is_closed() {
                    tracing::debug!(platform = %platform, "store closed: outbox lane stops");
                    return;
                }
                tracing::error!(platform = %platform, error = %e, "outbox: cannot claim replies");
            }
        }
        // Sleep until the next reply comes due, a new one is enqueued, or a second passes (a
        // reply claimed by a dead server comes back when its lease ends).
        let next = shared
            .store
            .next_reply_due(Some(&platform))
            .await
            .ok()
            .flatten();
        let wait = next
            .map(|t| {
                t.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::from_secs(1))
            // Due now but not claimable means claimed by an in-flight delivery: look again
            // soon, not in a busy loop.
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The webhook window: when the command arrived (the job's creation; within milliseconds of
/// the command), how long the platform accepts webhook posts, and how many.
struct Window {
    opened: SystemTime,
    length: Option<Duration>,
}

impl Window {
    fn is_open(&self) -> bool {
        match self.length {
            None => true,
            Some(len) => SystemTime::now()
                .duration_since(self.opened)
                .map_or(true, |age| age < len),
        }
    }
}

async fn deliver_one(shared: Arc<Shared>, item: OutboxItem) {
    shared.metrics.emit(DeliveryAttempted {
        platform: &item.target.platform,
    });
    let outcome = attempt(&shared, &item).await;
    match &outcome {
        AttemptOutcome::Delivered { via, .. } => {
            let since_command = crate::metrics::result_reply_age(&shared, item.job).await;
            shared.metrics.emit(ReplyDelivered {
                platform: &item.target.platform,
                since_command,
            });
            tracing::debug!(reply = %item.id, ?via, attempts = item.attempts + 1, "reply delivered");
        }
        AttemptOutcome::RetryAt { error, when } => {
            let in_ms = when
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_millis() as u64;
            tracing::warn!(reply = %item.id, attempts = item.attempts + 1, error, retry_in_ms = in_ms, "reply not delivered yet");
        }
        AttemptOutcome::GaveUp { error, .. } => {
            shared.metrics.emit(ReplyGivenUp);
            tracing::error!(reply = %item.id, attempts = item.attempts + 1, error, "reply given up");
        }
    }
    let retry_soon = matches!(outcome, AttemptOutcome::RetryAt { .. });
    if let Err(e) = shared.store.reply_attempted(item.id, outcome).await {
        tracing::error!(reply = %item.id, error = %e, "cannot record a delivery attempt");
    }
    if retry_soon {
        if let Some(outbox) = shared.outbox.get() {
            outbox.kick(&item.target.platform);
        }
    }
}

async fn attempt(shared: &Arc<Shared>, item: &OutboxItem) -> AttemptOutcome {
    let now = SystemTime::now;
    let Some(adapter) = shared.adapters.get(&item.target.platform).cloned() else {
        return AttemptOutcome::GaveUp {
            at: now(),
            error: format!(
                "platform {} is not configured on this server",
                item.target.platform
            ),
        };
    };
    let caps = adapter.capabilities();
    // The final edit of a status message: the bot API (or Discord's interaction token) edits
    // it; no webhook use is spent.
    if let Some(message) = StatusMessage::edited_by(&item.target) {
        return match adapter.edit(&item.target, &message, &item.reply).await {
            Ok(()) => AttemptOutcome::Delivered {
                via: Via::BotApi,
                at: now(),
            },
            Err(err) => retry_outcome(item, err),
        };
    }
    // The live view answers without a store round trip for recent jobs. (Bound first: a
    // DashMap guard must not live across the `.await` below.)
    let live_created = item
        .job
        .and_then(|job| shared.jobs.get(&job).map(|v| v.created_at));
    let window = Window {
        opened: match item.job {
            Some(job) => match live_created {
                Some(created) => created,
                None => shared
                    .store
                    .job(job)
                    .await
                    .ok()
                    .flatten()
                    .map_or(item.created_at, |j| j.created_at),
            },
            None => item.created_at,
        },
        length: shared.settings.response_window.or(caps.followup_window),
    };
    let via = match choose_via(shared, item, &window, caps.followup_uses, caps.bot_api).await {
        Ok(via) => via,
        Err(reason) => {
            return AttemptOutcome::GaveUp {
                at: now(),
                error: reason,
            }
        }
    };
    let mut result = adapter.deliver(&item.target, &item.reply, via).await;
    // A webhook that refuses for good (expired, used up) is not the end when a bot can post.
    if via == Via::ResponseUrl && caps.bot_api {
        if let Err(DeliveryError {
            retry: Retry::Never,
            reason,
        }) = &result
        {
            tracing::info!(reply = %item.id, error = %reason, "response_url refused; posting as the bot");
            result = adapter
                .deliver(&item.target, &item.reply, Via::BotApi)
                .await;
            if result.is_ok() {
                return AttemptOutcome::Delivered {
                    via: Via::BotApi,
                    at: now(),
                };
            }
        }
    }
    match result {
        Ok(()) => AttemptOutcome::Delivered { via, at: now() },
        Err(err) => {
            shared.metrics.emit(DeliveryFailed {
                platform: &item.target.platform,
                error: &err,
            });
            retry_outcome(item, err)
        }
    }
}

/// Picks the webhook while it is open and has uses left, else the bot API; an error says why
/// neither is possible.
async fn choose_via(
    shared: &Arc<Shared>,
    item: &OutboxItem,
    window: &Window,
    uses: Option<u32>,
    bot_api: bool,
) -> Result<Via, String> {
    // Only the bot API posts into a thread.
    if bot_api && StatusMessage::wants_thread(&item.target) {
        return Ok(Via::BotApi);
    }
    // A platform without a window (the console) delivers however it likes: let it.
    let webhook = item.target.response_url.is_some() || window.length.is_none();
    if webhook && window.is_open() {
        let use_ok = match (uses, item.job) {
            (Some(budget), Some(job)) => shared
                .store
                .use_response_url(job, budget)
                .await
                .map_or(true, |u| u.is_some()),
            _ => true,
        };
        if use_ok {
            return Ok(Via::ResponseUrl);
        }
        if bot_api {
            return Ok(Via::BotApi);
        }
        return Err("the command's response_url uses are spent and no bot token is configured to post otherwise".into());
    }
    if bot_api {
        return Ok(Via::BotApi);
    }
    if item.target.response_url.is_none() {
        return Err("the platform gave no reply URL and no bot token is configured".into());
    }
    Err("the reply came after the platform's response_url window closed, and no bot token is configured: set the platform's bot_token so late replies reach the channel".into())
}

/// What to do after a failed attempt: retry (backoff with jitter, or the platform's
/// `Retry-After`) unless retrying cannot help or the reply is too old.
fn retry_outcome(item: &OutboxItem, err: DeliveryError) -> AttemptOutcome {
    let now = SystemTime::now();
    let wait = match err.retry {
        Retry::Never => None,
        Retry::After(d) => Some(d),
        Retry::Backoff => Some(backoff(item.attempts)),
    };
    let age = now.duration_since(item.created_at).unwrap_or_default();
    match wait {
        Some(wait) if age + wait < GIVE_UP_AFTER => AttemptOutcome::RetryAt {
            when: now + wait,
            error: err.reason,
        },
        Some(_) => AttemptOutcome::GaveUp {
            at: now,
            error: format!("still failing after {}s: {}", age.as_secs(), err.reason),
        },
        None => AttemptOutcome::GaveUp {
            at: now,
            error: err.reason,
        },
    }
}

/// 250 ms doubling per attempt up to a minute, plus up to half of that again as jitter so that
/// replies which failed together do not retry together.
pub fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1u32 << attempts.min(8))
        .min(Duration::from_secs(60));
    base + jitter(base / 2)
}

fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    let max_ms = (max.as_millis() as u64).max(1);
    // Multiplicative hashing spreads the clock's low bits; no RNG dependency needed for this.
    Duration::from_millis(nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let first = backoff(0);
        assert!(first >= Duration::from_millis(250) && first < Duration::from_millis(400));
        let tenth = backoff(10);
        assert!(tenth >= Duration::from_secs(60) && tenth <= Duration::from_secs(90));
    }
}
