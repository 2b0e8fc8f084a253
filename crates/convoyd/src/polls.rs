//! Agents' long polls waiting for their host's next command, so that the strategy driver can
//! hand a command it creates straight to the waiting poll, marked as delivered to that poll's
//! agent run in the same transaction that creates it. Otherwise the poll is woken, reads the
//! store and marks the delivery itself: a round trip to the writer for every host of a stage
//! as it starts, one after another.
//!
//! A poll registers before it waits and cancels when it stops waiting; one the driver took
//! waits for the commands it was promised (they come once the tick's write is on disk, or the
//! sender is dropped if the write failed, and the poll reads the store again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use convoy_store::CommandRecord;
use tokio::sync::oneshot;

/// A poll that can take commands: the agent run it delivers to, and where to send them.
#[derive(Debug)]
pub struct Waiting {
    pub session: String,
    pub reply: oneshot::Sender<Vec<CommandRecord>>,
    ticket: u64,
}

#[derive(Debug, Default)]
pub struct Polls {
    waiting: Mutex<HashMap<String, Vec<Waiting>>>,
    tickets: AtomicU64,
}

/// What a poll keeps to cancel its registration.
#[derive(Debug)]
pub struct Ticket {
    hostname: String,
    ticket: u64,
}

impl Polls {
    /// Registers a poll of `hostname` for agent run `session`.
    pub fn wait(
        &self,
        hostname: &str,
        session: &str,
    ) -> (Ticket, oneshot::Receiver<Vec<CommandRecord>>) {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let mut waiting = self.waiting.lock().expect("polls lock poisoned");
        let polls = waiting.entry(hostname.to_string()).or_default();
        // Polls whose request went away without cancelling.
        polls.retain(|p| !p.reply.is_closed());
        polls.push(Waiting {
            session: session.to_string(),
            reply,
            ticket,
        });
        drop(waiting);
        let ticket = Ticket {
            hostname: hostname.to_string(),
            ticket,
        };
        (ticket, answer)
    }

    /// Takes the host's most recent poll that still listens (the newest agent run's, if an
    /// earlier run's connection lingers).
    pub fn take(&self, hostname: &str) -> Option<Waiting> {
        let mut waiting = self.waiting.lock().expect("polls lock poisoned");
        let polls = waiting.get_mut(hostname)?;
        polls.retain(|p| !p.reply.is_closed());
        let taken = polls.pop();
        if polls.is_empty() {
            waiting.remove(hostname);
        }
        taken
    }

    /// Withdraws a registration. False: the driver took it first, so commands are on their
    /// way to it (or the sender was dropped).
    pub fn cancel(&self, ticket: &Ticket) -> bool {
        let mut waiting = self.waiting.lock().expect("polls lock poisoned");
        let Some(polls) = waiting.get_mut(&ticket.hostname) else {
            return false;
        };
        let before = polls.len();
        polls.retain(|p| p.ticket != ticket.ticket);
        let cancelled = polls.len() < before;
        if polls.is_empty() {
            waiting.remove(&ticket.hostname);
        }
        cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_listening_poll_is_taken_and_a_taken_one_cannot_be_cancelled() {
        let polls = Polls::default();
        let (old, _old_answer) = polls.wait("h", "run-1");
        let (new, new_answer) = polls.wait("h", "run-2");
        let (gone, gone_answer) = polls.wait("h", "run-3");
        drop(gone_answer);
        let taken = polls.take("h").unwrap();
        assert_eq!(taken.session, "run-2");
        assert!(!polls.cancel(&new), "taken already");
        assert!(!polls.cancel(&gone), "no longer listening");
        taken.reply.send(vec![]).unwrap();
        assert!(new_answer.blocking_recv().unwrap().is_empty());
        assert!(polls.cancel(&old));
        assert!(polls.take("h").is_none());
        assert!(polls.take("other").is_none());
    }
}
