//! The prestage transfers' bandwidth caps: one for each subcloud's transfer and one for the
//! System Controller as a whole, each a [`TokenBucket`] over a monotonic clock. A sender
//! waits on its subcloud's cap, then on the whole one, before each chunk.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use convoy_core::dc_strategy::bandwidth::TokenBucket;

pub struct Bandwidth {
    bucket: Mutex<TokenBucket>,
    start: Instant,
}

impl Bandwidth {
    /// A cap of `bytes_per_sec` (0: none), with a second's worth of burst.
    pub fn new(bytes_per_sec: u64) -> Bandwidth {
        Bandwidth {
            bucket: Mutex::new(TokenBucket::new(
                bytes_per_sec,
                bytes_per_sec,
                Duration::ZERO,
            )),
            start: Instant::now(),
        }
    }

    /// Waits until `bytes` may be sent.
    pub async fn wait(&self, bytes: u64) {
        let delay = {
            let mut bucket = self.bucket.lock().expect("bandwidth lock");
            if !bucket.capped() {
                return;
            }
            bucket.take(bytes, self.start.elapsed())
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}
