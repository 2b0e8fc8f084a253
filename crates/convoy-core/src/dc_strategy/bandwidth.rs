//! A bandwidth cap as a token bucket: the prestage transfer asks how long to wait before it
//! may send a chunk, so that over any second it sends no more than `rate` bytes on average,
//! with at most `burst` bytes at once after a pause. Pure: the caller keeps the clock.

use std::time::Duration;

/// A token bucket in bytes. A `rate` of zero is no cap.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Bytes that may be sent now; negative when sends were granted ahead of the refill.
    tokens: f64,
    /// When `tokens` was last brought up to date, as the caller's clock reads.
    at: Duration,
}

impl TokenBucket {
    /// A bucket full at `now`, refilled at `rate` bytes a second up to `burst` bytes (at
    /// least one second's worth).
    pub fn new(rate: u64, burst: u64, now: Duration) -> TokenBucket {
        let burst = burst.max(rate);
        TokenBucket {
            rate,
            burst,
            tokens: burst as f64,
            at: now,
        }
    }

    pub fn capped(&self) -> bool {
        self.rate > 0
    }

    /// Takes `bytes` at `now` and returns how long the sender must wait before sending them.
    /// Sends are granted in order: a large send waits for the refill, and the next one waits
    /// behind it.
    pub fn take(&mut self, bytes: u64, now: Duration) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst as f64);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn no_rate_is_no_cap() {
        let mut b = TokenBucket::new(0, 0, Duration::ZERO);
        assert!(!b.capped());
        assert_eq!(b.take(u64::MAX / 2, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_full_bucket_sends_its_burst_then_paces_at_the_rate() {
        let mut b = TokenBucket::new(4 * MIB, 4 * MIB, Duration::ZERO);
        assert_eq!(b.take(4 * MIB, Duration::ZERO), Duration::ZERO);
        // The next 4 MiB wait a second, the ones after two.
        assert_eq!(b.take(4 * MIB, Duration::ZERO), Duration::from_secs(1));
        assert_eq!(b.take(4 * MIB, Duration::ZERO), Duration::from_secs(2));
        // By then the two grants ahead are paid for; the next one waits its own second.
        assert_eq!(b.take(4 * MIB, Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(
            b.take(4 * MIB, Duration::from_secs(3)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_pause_refills_no_more_than_the_burst() {
        let mut b = TokenBucket::new(MIB, MIB, Duration::ZERO);
        b.take(MIB, Duration::ZERO);
        // An hour idle earns one second's worth, not an hour's.
        assert_eq!(b.take(MIB, Duration::from_secs(3600)), Duration::ZERO);
        assert_eq!(
            b.take(MIB, Duration::from_secs(3600)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn over_a_long_transfer_the_average_is_the_rate() {
        // 100 chunks of 1 MiB at 10 MiB/s, each sent when granted: 100 MiB take 9 s after
        // the first second's burst.
        let mut b = TokenBucket::new(10 * MIB, 10 * MIB, Duration::ZERO);
        let mut now = Duration::ZERO;
        for _ in 0..100 {
            now += b.take(MIB, now);
        }
        assert!((now.as_secs_f64() - 9.0).abs() < 0.01, "{now:?}");
    }
}
