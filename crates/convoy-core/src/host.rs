//! Hosts: their personality, the three states an operator reads (administrative, operational,
//! availability) and how availability follows from heartbeats.

use crate::names::named_enum;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// What a host does in its site, as StarlingX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Personality {
    #[serde(rename = "controller")]
    Controller,
    #[serde(rename = "worker")]
    Worker,
    #[serde(rename = "storage")]
    Storage,
    /// An all-in-one host: a controller that also runs workloads.
    #[serde(rename = "controller+worker")]
    ControllerWorker,
}

named_enum!(Personality, field = "personality", {
    Controller => "controller",
    Worker => "worker",
    Storage => "storage",
    ControllerWorker => "controller+worker",
});

/// Whether the operator allows the host to run services (`unlocked`) or has taken it out of
/// service (`locked`). Only an operator changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Administrative {
    Locked,
    Unlocked,
}

named_enum!(Administrative, field = "administrative", {
    Locked => "locked",
    Unlocked => "unlocked",
});

/// Whether the host is providing service right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operational {
    Enabled,
    Disabled,
}

/// Whether the controller hears from the host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Available,
    Offline,
}

/// Number of ping intervals a host may stay silent before it is `offline`.
pub const MISSED_HEARTBEATS_OFFLINE: i64 = 3;

/// A host is `available` while its last heartbeat is at most three ping intervals old.
///
/// Availability is derived, never stored: it cannot go stale across a controller restart, and a
/// host that reconnects is available from its first heartbeat on.
pub fn availability(
    last_seen: Option<Timestamp>,
    now: Timestamp,
    ping_interval: SignedDuration,
) -> Availability {
    let Some(last_seen) = last_seen else {
        return Availability::Offline;
    };
    let silence = now.duration_since(last_seen);
    if silence <= ping_interval * MISSED_HEARTBEATS_OFFLINE as i32 {
        Availability::Available
    } else {
        Availability::Offline
    }
}

/// A host provides service only when it is unlocked and its agent is heard from.
pub fn operational(administrative: Administrative, availability: Availability) -> Operational {
    match (administrative, availability) {
        (Administrative::Unlocked, Availability::Available) => Operational::Enabled,
        _ => Operational::Disabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn personality_round_trips_through_its_name() {
        for p in Personality::ALL {
            assert_eq!(p.as_str().parse::<Personality>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        let err = "router".parse::<Personality>().unwrap_err();
        assert_eq!(err.field, "personality");
    }

    #[test]
    fn offline_after_three_missed_heartbeats() {
        let ping = SignedDuration::from_secs(10);
        assert_eq!(availability(None, at(0), ping), Availability::Offline);
        assert_eq!(
            availability(Some(at(0)), at(30), ping),
            Availability::Available
        );
        assert_eq!(
            availability(Some(at(0)), at(31), ping),
            Availability::Offline
        );
        // A heartbeat stamped slightly ahead of the reader's clock is still fresh.
        assert_eq!(
            availability(Some(at(5)), at(0), ping),
            Availability::Available
        );
    }

    #[test]
    fn only_unlocked_available_hosts_are_enabled() {
        use Administrative::*;
        use Availability::*;
        assert_eq!(operational(Unlocked, Available), Operational::Enabled);
        assert_eq!(operational(Locked, Available), Operational::Disabled);
        assert_eq!(operational(Unlocked, Offline), Operational::Disabled);
        assert_eq!(operational(Locked, Offline), Operational::Disabled);
    }

    proptest! {
        #[test]
        fn availability_is_monotonic_in_silence(a in 0i64..1000, b in 0i64..1000, ping in 1i64..60) {
            let ping = SignedDuration::from_secs(ping);
            let (short, long) = if a <= b { (a, b) } else { (b, a) };
            // If a longer silence is still available, a shorter one must be too.
            if availability(Some(at(0)), at(long), ping) == Availability::Available {
                prop_assert_eq!(availability(Some(at(0)), at(short), ping), Availability::Available);
            }
        }
    }
}

/// What an agent knows and reports about its host: capacity, current load, software, disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    pub capacity_cpus: u32,
    pub capacity_memory_mib: u64,
    pub load_cpus: f64,
    pub load_memory_mib: u64,
    pub boot_id: String,
    pub os: String,
    pub agent_version: String,
    /// Free bytes on the filesystem holding the agent's state directory.
    pub state_fs_free_bytes: u64,
    /// Whether the host is in maintenance, as the agent keeps it.
    #[serde(default)]
    pub maintenance: bool,
    /// Its release and patches.
    #[serde(default)]
    pub software: crate::patch::HostSoftware,
}
