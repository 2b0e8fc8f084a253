//! Throttling failed logins: once a key (a user name, a client address) has failed too often
//! within a window, its further attempts are refused until that window ends, without the cost
//! of checking a password.
//!
//! The table is bounded: when it is full, expired windows are dropped, then the oldest ones, so
//! memory does not grow with the number of names or addresses an attacker tries.

use std::collections::HashMap;
use std::hash::Hash;

use jiff::{SignedDuration, Timestamp};

/// How many failures a key may have within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: SignedDuration,
}

/// Failures counted since the first one of the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Timestamp,
    failures: u32,
}

/// Failed-login counts per key, in fixed windows that start at a key's first failure.
#[derive(Debug)]
pub struct LoginThrottle<K> {
    policy: ThrottlePolicy,
    capacity: usize,
    windows: HashMap<K, Window>,
}

impl<K: Eq + Hash + Clone> LoginThrottle<K> {
    /// A throttle that remembers at most `capacity` keys (at least one).
    pub fn new(policy: ThrottlePolicy, capacity: usize) -> Self {
        LoginThrottle {
            policy,
            capacity: capacity.max(1),
            windows: HashMap::new(),
        }
    }

    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// None if an attempt for `key` may go ahead at `now`; otherwise how long until it may.
    pub fn refused(&self, key: &K, now: Timestamp) -> Option<SignedDuration> {
        let window = self.windows.get(key)?;
        let ends = window.started + self.policy.window;
        (window.failures >= self.policy.max_failures && now < ends)
            .then(|| ends.duration_since(now))
    }

    /// Counts a failed attempt for `key` at `now`.
    pub fn record_failure(&mut self, key: K, now: Timestamp) {
        let window_length = self.policy.window;
        if let Some(window) = self.windows.get_mut(&key) {
            if now >= window.started + window_length {
                *window = Window {
                    started: now,
                    failures: 1,
                };
            } else {
                window.failures = window.failures.saturating_add(1);
            }
            return;
        }
        if self.windows.len() >= self.capacity {
            self.make_room(now);
        }
        self.windows.insert(
            key,
            Window {
                started: now,
                failures: 1,
            },
        );
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Drops every ended window; if none had ended, the one that started first.
    fn make_room(&mut self, now: Timestamp) {
        let window_length = self.policy.window;
        self.windows
            .retain(|_, window| now < window.started + window_length);
        if self.windows.len() >= self.capacity {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, window)| window.started)
                .map(|(key, _)| key.clone());
            if let Some(key) = oldest {
                self.windows.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            window: SignedDuration::from_secs(60),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_key_is_refused_after_max_failures_until_its_window_ends() {
        let mut throttle = LoginThrottle::new(policy(), 100);
        for s in 0..3 {
            assert_eq!(throttle.refused(&"admin", at(s)), None);
            throttle.record_failure("admin", at(s));
        }
        assert_eq!(
            throttle.refused(&"admin", at(10)),
            Some(SignedDuration::from_secs(50))
        );
        assert_eq!(throttle.refused(&"other", at(10)), None);
        assert_eq!(throttle.refused(&"admin", at(60)), None);
        // A failure after the window starts a new one.
        throttle.record_failure("admin", at(61));
        assert_eq!(throttle.refused(&"admin", at(62)), None);
    }

    #[test]
    fn the_table_stays_within_its_capacity_and_keeps_live_windows_first() {
        let mut throttle = LoginThrottle::new(policy(), 3);
        for s in 0..3 {
            throttle.record_failure("victim", at(s));
        }
        throttle.record_failure("a", at(5));
        throttle.record_failure("b", at(6));
        // Full: the oldest window (the victim's) goes to make room, and nothing more.
        throttle.record_failure("c", at(7));
        assert_eq!(throttle.len(), 3);
        assert_eq!(throttle.refused(&"victim", at(8)), None);
        // Ended windows go before live ones.
        for (i, key) in ["d", "e", "f", "g"].into_iter().enumerate() {
            throttle.record_failure(key, at(200 + i as i64));
        }
        assert_eq!(throttle.len(), 3);
        for key in ["e", "f", "g"] {
            throttle.record_failure(key, at(210));
            throttle.record_failure(key, at(210));
            assert!(throttle.refused(&key, at(211)).is_some(), "{key}");
        }
    }
}
