//! In-memory wake-ups between requests: a new command wakes its host's long poll, a reported
//! outcome wakes whoever waits for it. Only a hint: the store is always re-read after waking,
//! except that the strategy driver keeps its copy of the strategy until operators' changes,
//! which are counted here, say otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Wakeups {
    hosts: Mutex<HashMap<String, Arc<Notify>>>,
    outcomes: Notify,
    strategy: Notify,
    /// Wakes the sweep of Convoy's own alarms.
    alarms: Notify,
    /// Counts operators' changes to the strategy, so the driver knows when its copy is stale.
    strategy_changes: AtomicU64,
}

impl Wakeups {
    /// The signal a host's long poll waits on.
    pub fn host(&self, hostname: &str) -> Arc<Notify> {
        let mut hosts = self.hosts.lock().expect("wakeups lock poisoned");
        hosts.entry(hostname.to_string()).or_default().clone()
    }

    pub fn wake_host(&self, hostname: &str) {
        self.host(hostname).notify_waiters();
    }

    /// The signal raised whenever any command's outcome is recorded.
    pub fn outcomes(&self) -> &Notify {
        &self.outcomes
    }

    /// The signal raised when an operator changes the strategy (create, apply, abort).
    pub fn strategy(&self) -> &Notify {
        &self.strategy
    }

    /// Called after an operator's change to the strategy is stored: counts it, then wakes
    /// the driver.
    pub fn strategy_changed(&self) {
        self.strategy_changes.fetch_add(1, Ordering::SeqCst);
        self.strategy.notify_waiters();
    }

    /// How many operator changes there have been. Read before the store: a copy of the
    /// strategy read after it is current unless the count has moved since.
    pub fn strategy_changes(&self) -> u64 {
        self.strategy_changes.load(Ordering::SeqCst)
    }

    /// The signal the alarm sweep waits on between its rounds.
    pub fn alarms(&self) -> &Notify {
        &self.alarms
    }

    /// Something Convoy's own alarms follow from changed (a patch operation, an install's
    /// outcome): the sweep runs at once. A permit is kept if the sweep is busy, so the change
    /// is never missed.
    pub fn recheck_alarms(&self) {
        self.alarms.notify_one();
    }

    pub fn forget_host(&self, hostname: &str) {
        let mut hosts = self.hosts.lock().expect("wakeups lock poisoned");
        if let Some(notify) = hosts.remove(hostname) {
            notify.notify_waiters();
        }
    }
}
