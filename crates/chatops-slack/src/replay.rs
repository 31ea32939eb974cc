//! Replay protection beyond the timestamp check: a signed request is valid for five minutes
//! either side of its timestamp, so a body captured in that window could be posted again and
//! run again. Slack's `trigger_id` lets the store refuse a second delivery of a command, but
//! not every body carries one. This remembers the `(timestamp, signature)` of every verified
//! request for as long as the signature could still verify, and says when one comes again.
//!
//! Memory is bounded twice: entries leave once their timestamp is out of the window (they
//! could not verify any more), and the set never holds more than [`CAPACITY`] entries (the
//! oldest timestamps leave first, with a warning; the store's request-id check still stands
//! behind them, see `SlackAdapter::inbound`).

use crate::signature::MAX_SKEW_SECS;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Most requests remembered at once: 100,000 commands in ten minutes (~170 a second) is far
/// beyond one Slack app's traffic; each entry is 40 bytes plus the tree's overhead (~10 MB).
pub const CAPACITY: usize = 100_000;

/// The verified requests seen within the signing window.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    /// `(timestamp, signature)`, ordered by timestamp so that expiry pops from the front. A
    /// mutex, not an actor: the adapter answers synchronously and the critical section is a
    /// few tree operations.
    seen: Mutex<BTreeSet<(u64, [u8; 32])>>,
    capacity: usize,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::with_capacity(CAPACITY)
    }
}

impl ReplayGuard {
    pub(crate) fn with_capacity(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            seen: Mutex::new(BTreeSet::new()),
            capacity: capacity.max(1),
        }
    }

    /// Records a verified request signed at `timestamp`; `false` when it was seen before (a
    /// replay, or a retry of the very same signed body).
    pub(crate) fn first_time(&self, timestamp: u64, signature: [u8; 32], now: u64) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the set is still a
        // valid set, so keep using it rather than letting every later request fail.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Out of the window: such a request would fail the timestamp check now.
        while let Some(&(ts, _)) = seen.first() {
            if ts.saturating_add(MAX_SKEW_SECS) >= now {
                break;
            }
            seen.pop_first();
        }
        if !seen.insert((timestamp, signature)) {
            return false;
        }
        if seen.len() > self.capacity {
            seen.pop_first();
            tracing::warn!(
                capacity = self.capacity,
                "slack: more signed requests within five minutes than the replay guard holds; forgetting the oldest"
            );
        }
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn the_same_request_is_new_once() {
        let guard = ReplayGuard::default();
        assert!(guard.first_time(NOW, [1; 32], NOW));
        assert!(!guard.first_time(NOW, [1; 32], NOW + 200));
        // Another signature, or the same one at another time, is another request.
        assert!(guard.first_time(NOW, [2; 32], NOW));
        assert!(guard.first_time(NOW + 1, [1; 32], NOW));
    }

    #[test]
    fn entries_leave_with_the_window() {
        let guard = ReplayGuard::default();
        assert!(guard.first_time(NOW, [1; 32], NOW));
        assert!(guard.first_time(NOW + 100, [2; 32], NOW + 100));
        // At NOW + 300 the first could still verify; one second later it could not.
        assert!(guard.first_time(NOW + 300, [3; 32], NOW + 300));
        assert_eq!(guard.len(), 3);
        assert!(guard.first_time(NOW + 301, [4; 32], NOW + 301));
        assert_eq!(guard.len(), 3);
        assert!(!guard.first_time(NOW + 100, [2; 32], NOW + 301));
    }

    #[test]
    fn the_set_never_outgrows_its_capacity() {
        let guard = ReplayGuard::with_capacity(3);
        for i in 0..10u8 {
            assert!(guard.first_time(NOW + u64::from(i), [i; 32], NOW));
        }
        assert_eq!(guard.len(), 3);
        // The newest are the ones kept.
        assert!(!guard.first_time(NOW + 9, [9; 32], NOW));
    }
}
