//! Outcomes of strategy commands, handed straight from the agent gateway to the driver.
//!
//! The driver records such an outcome in the same transaction as the step changes it causes
//! (one commit per tick for every host that reported), and answers the agent's report with
//! the host's next command, already marked as delivered to that agent run: one request per
//! phase instead of a report, a wake-up and a poll. An outcome the driver does not wait for
//! (or one it drops, say after a failed write) is stored by the gateway itself, as for any
//! other command.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use convoy_api::agent::CarriedOutcome;
use convoy_api::hosts::CommandOutcome;
use convoy_store::CommandRecord;
use tokio::sync::{Notify, oneshot};

/// One agent's report of a command the driver waits for.
#[derive(Debug)]
pub struct Offer {
    pub hostname: String,
    pub command_id: String,
    pub outcome: CommandOutcome,
    /// The outcome of the command this one carried, if it ended in time to come along.
    pub then: Option<CarriedOutcome>,
    /// The agent run (as stored in `dispatched_session`) the host's next command may be
    /// handed to in the answer.
    pub session: Option<String>,
    /// Answered once the outcome is on disk, with the commands handed to the agent.
    pub reply: oneshot::Sender<Vec<CommandRecord>>,
}

#[derive(Debug, Default)]
pub struct Inbox {
    state: Mutex<State>,
    arrived: Notify,
    /// Set when the gateway stored an outcome itself: one the driver may still wait for, if
    /// it came in while the driver was (re)loading its steps.
    stored: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Commands whose outcome the driver waits for.
    awaited: HashSet<String>,
    offers: Vec<Offer>,
}

impl Inbox {
    /// Queues the report if the driver waits for this command; false (and the report
    /// dropped) otherwise.
    pub fn offer(&self, offer: Offer) -> bool {
        {
            let mut state = self.state.lock().expect("inbox lock poisoned");
            if !state.awaited.contains(&offer.command_id) {
                return false;
            }
            state.offers.push(offer);
        }
        self.arrived.notify_one();
        true
    }

    /// The reports queued since the last call.
    pub fn take(&self) -> Vec<Offer> {
        std::mem::take(&mut self.state.lock().expect("inbox lock poisoned").offers)
    }

    /// From now on, reports of exactly these commands come to the driver.
    pub fn await_commands(&self, ids: impl IntoIterator<Item = String>) {
        self.state.lock().expect("inbox lock poisoned").awaited = ids.into_iter().collect();
    }

    /// Adds commands to wait for (before they are written, so no report can miss the inbox).
    pub fn also_await(&self, ids: impl IntoIterator<Item = String>) {
        self.state
            .lock()
            .expect("inbox lock poisoned")
            .awaited
            .extend(ids);
    }

    /// Called by the gateway after it stored an outcome itself.
    pub fn note_stored(&self) {
        self.stored.store(true, Ordering::SeqCst);
        self.arrived.notify_one();
    }

    /// Whether the store may hold outcomes the driver has not seen (clears the mark).
    pub fn take_stored(&self) -> bool {
        self.stored.swap(false, Ordering::SeqCst)
    }

    /// Signalled when a report is queued. `notify_one` keeps the signal for a driver that is
    /// busy in a tick, so a report queued meanwhile is never left waiting.
    pub fn arrived(&self) -> &Notify {
        &self.arrived
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: &str) -> (Offer, oneshot::Receiver<Vec<CommandRecord>>) {
        let (reply, answer) = oneshot::channel();
        (
            Offer {
                hostname: "h".into(),
                command_id: id.into(),
                outcome: CommandOutcome {
                    succeeded: true,
                    message: String::new(),
                    output: serde_json::Value::Null,
                },
                then: None,
                session: None,
                reply,
            },
            answer,
        )
    }

    #[test]
    fn only_awaited_commands_are_taken() {
        let inbox = Inbox::default();
        assert!(!inbox.offer(offer("a").0));
        inbox.await_commands(["a".to_string()]);
        inbox.also_await(["b".to_string()]);
        assert!(inbox.offer(offer("a").0));
        assert!(inbox.offer(offer("b").0));
        assert!(!inbox.offer(offer("c").0));
        let taken: Vec<String> = inbox.take().into_iter().map(|o| o.command_id).collect();
        assert_eq!(taken, ["a", "b"]);
        assert!(inbox.take().is_empty());
        inbox.await_commands([]);
        assert!(!inbox.offer(offer("a").0));
    }
}
