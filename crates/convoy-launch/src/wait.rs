//! Waiting on a condition with a deadline, never a bare sleep.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::LaunchError;

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    pub fn timeout(&self, what: impl Into<String>) -> LaunchError {
        LaunchError::Timeout {
            what: what.into(),
            seconds: self.total.as_secs(),
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails once `deadline` passes.
pub async fn wait_until<T, F, Fut>(
    deadline: Deadline,
    what: &str,
    check: F,
) -> Result<T, LaunchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until_every(deadline, Duration::from_millis(50), what, check).await
}

/// [`wait_until`] with a pause of `every` between checks, for a waiter that must load the
/// system it watches as little as possible (a benchmark).
pub async fn wait_until_every<T, F, Fut>(
    deadline: Deadline,
    every: Duration,
    what: &str,
    mut check: F,
) -> Result<T, LaunchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if deadline.passed() {
            return Err(deadline.timeout(what));
        }
        tokio::time::sleep(every).await;
    }
}
