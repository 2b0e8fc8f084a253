//! Password hashing on a bounded number of threads. One argon2 hash takes about 19 MiB and a
//! core for tens of milliseconds; run unbounded on the blocking pool (up to 512 threads), a
//! burst of logins takes gigabytes. At most one hash per core runs at a time; the others wait
//! for their turn without holding a thread or the hash's memory.

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinError;

pub struct Hashing {
    turns: Semaphore,
}

impl Hashing {
    /// One turn per core this process may use.
    pub fn per_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hashing {
            turns: Semaphore::new(cores),
        }
    }

    /// Waits for a turn to hash; hashing in it must end before the turn is dropped.
    pub async fn turn(&self) -> SemaphorePermit<'_> {
        self.turns
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `work` (a hash or a verification) on a blocking thread in a turn of its own.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JoinError> {
        let _turn = self.turn().await;
        tokio::task::spawn_blocking(work).await
    }
}
