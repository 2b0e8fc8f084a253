//! Commands the controller sends to a host's agent, and when one is (re)delivered.
//!
//! Every command has an id. The agent records each outcome under that id before reporting it,
//! so the controller may deliver a command again whenever it is unsure the first delivery
//! arrived; the agent answers a repeat from its record instead of running the work again.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::ValidationError;

/// What a command asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    /// Answer at once; proves the channel end to end.
    Ping,
    /// Collect and return the host's facts (capacity, load, software, disk).
    Facts,
}

impl CommandKind {
    pub const ALL: [CommandKind; 2] = [CommandKind::Ping, CommandKind::Facts];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Ping => "ping",
            CommandKind::Facts => "facts",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CommandKind {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ValidationError::new("kind", format!("{s:?} is not one of ping, facts")))
    }
}

/// Where a command stands, as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandState {
    /// Accepted, not yet handed to the agent.
    Pending,
    /// Handed to the agent; no outcome yet.
    Dispatched,
    /// The agent reported an outcome.
    Completed,
}

/// The state that follows from what the controller recorded.
pub fn command_state(dispatched_at: Option<Timestamp>, completed: bool) -> CommandState {
    match (completed, dispatched_at) {
        (true, _) => CommandState::Completed,
        (false, Some(_)) => CommandState::Dispatched,
        (false, None) => CommandState::Pending,
    }
}

/// Whether an unfinished command should be handed to the agent on its next poll: never
/// delivered, or delivered longer ago than `redeliver_after` without an outcome (the poll
/// response may have been lost, or the agent restarted).
pub fn due_for_delivery(
    dispatched_at: Option<Timestamp>,
    now: Timestamp,
    redeliver_after: SignedDuration,
) -> bool {
    match dispatched_at {
        None => true,
        Some(at) => now.duration_since(at) >= redeliver_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn undelivered_commands_are_due_and_delivered_ones_wait() {
        let again = SignedDuration::from_secs(30);
        assert!(due_for_delivery(None, at(0), again));
        assert!(!due_for_delivery(Some(at(0)), at(29), again));
        assert!(due_for_delivery(Some(at(0)), at(30), again));
    }

    #[test]
    fn state_follows_the_record() {
        assert_eq!(command_state(None, false), CommandState::Pending);
        assert_eq!(command_state(Some(at(0)), false), CommandState::Dispatched);
        assert_eq!(command_state(Some(at(0)), true), CommandState::Completed);
        assert_eq!(command_state(None, true), CommandState::Completed);
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!("ping".parse::<CommandKind>(), Ok(CommandKind::Ping));
        assert_eq!("reboot".parse::<CommandKind>().unwrap_err().field, "kind");
    }
}
