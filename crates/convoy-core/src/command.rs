//! Commands the controller sends to a host's agent, and when one is (re)delivered.
//!
//! Every command has an id. The agent records each outcome under that id before reporting it,
//! so the controller may deliver a command again whenever it is unsure the first delivery
//! arrived; the agent answers a repeat from its record instead of running the work again.

use crate::names::named_enum;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// What a command asks the agent to do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    /// Answer at once; proves the channel end to end.
    Ping,
    /// Collect and return the host's facts (capacity, load, software, disk).
    Facts,
    /// Run one operator hook script (payload: `HookRequest`).
    RunHook,
    /// Put the host into maintenance; the agent keeps the state across restarts.
    EnterMaintenance,
    /// Take the host out of maintenance.
    ExitMaintenance,
    /// Install and remove patches (payload: `InstallPatches`).
    InstallPatches,
    /// Reboot the host through the agent's reboot command, once (sent by an unlock of a host
    /// whose reboot-required change awaits it, and by a strategy's `reboot-hosts`).
    Reboot,
}

named_enum!(CommandKind, field = "kind", {
    Ping => "ping",
    Facts => "facts",
    RunHook => "run-hook",
    EnterMaintenance => "enter-maintenance",
    ExitMaintenance => "exit-maintenance",
    InstallPatches => "install-patches",
    Reboot => "reboot",
});

/// Where a command stands, as the controller sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A delivery of a command: when, and to which run of the agent (each agent process polls
/// with a session id of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch<'a> {
    pub at: Timestamp,
    pub session: &'a str,
}

/// Whether an unfinished command should be handed to the agent polling as `session`: never
/// delivered; delivered to an earlier run of the agent (it restarted, and what it did is in its
/// record); or delivered longer ago than `redeliver_after` without an outcome (the poll
/// response may have been lost).
pub fn due_for_delivery(
    dispatched: Option<Dispatch<'_>>,
    session: &str,
    now: Timestamp,
    redeliver_after: SignedDuration,
) -> bool {
    match dispatched {
        None => true,
        Some(d) if d.session != session => true,
        Some(d) => now.duration_since(d.at) >= redeliver_after,
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
        let to_a = Some(Dispatch {
            at: at(0),
            session: "a",
        });
        assert!(due_for_delivery(None, "a", at(0), again));
        assert!(!due_for_delivery(to_a, "a", at(29), again));
        assert!(due_for_delivery(to_a, "a", at(30), again));
    }

    #[test]
    fn a_restarted_agent_gets_its_unfinished_commands_at_once() {
        let again = SignedDuration::from_secs(30);
        let to_a = Some(Dispatch {
            at: at(0),
            session: "a",
        });
        assert!(due_for_delivery(to_a, "b", at(1), again));
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
        assert_eq!("reboot".parse::<CommandKind>(), Ok(CommandKind::Reboot));
        assert_eq!("shutdown".parse::<CommandKind>().unwrap_err().field, "kind");
    }
}
