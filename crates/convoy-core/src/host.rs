//! Hosts: their personality, the three states an operator reads (administrative, operational,
//! availability) and how availability follows from heartbeats.

use crate::names::named_enum;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// What a host does in its site, as StarlingX names it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operational {
    Enabled,
    Disabled,
}

/// Whether the controller hears from the host's agent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The instances its `InstanceAction` hook lists (none without the hook).
    #[serde(default)]
    pub instances: Vec<String>,
}

/// The largest figures a host may report: beyond any machine, so that a wrong or hostile
/// agent cannot plant values that overflow sums or poison the capacity check.
pub const MAX_HOST_CPUS: u32 = 65_536;
/// 1 PiB.
pub const MAX_HOST_MEMORY_MIB: u64 = 1 << 30;
/// Longest free text a host reports (boot id, OS, agent version, an instance's name).
pub const MAX_FACT_TEXT: usize = 256;
/// Most instances a host reports.
pub const MAX_HOST_INSTANCES: usize = 1024;

/// Checks an instance name as an `InstanceAction` hook lists it: 1 to [`MAX_FACT_TEXT`]
/// bytes of printable characters without whitespace (it is passed as one argument).
pub fn check_instance_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_FACT_TEXT {
        return Err(format!("{name:?} must be 1 to {MAX_FACT_TEXT} bytes"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{name:?} must not contain whitespace or control characters"
        ));
    }
    Ok(())
}

impl HostFacts {
    /// Checks every figure is within what a real host can have; the error names the field
    /// (`facts.load_cpus`).
    pub fn check(&self) -> Result<(), crate::validation::ValidationError> {
        use crate::validation::ValidationError;
        let field = |name: &str| format!("facts.{name}");
        if self.capacity_cpus > MAX_HOST_CPUS {
            return Err(ValidationError::new(
                field("capacity_cpus"),
                format!("must be at most {MAX_HOST_CPUS}"),
            ));
        }
        if !(self.load_cpus.is_finite()
            && (0.0..=f64::from(MAX_HOST_CPUS)).contains(&self.load_cpus))
        {
            return Err(ValidationError::new(
                field("load_cpus"),
                format!("must be a number from 0 to {MAX_HOST_CPUS}"),
            ));
        }
        for (name, value) in [
            ("capacity_memory_mib", self.capacity_memory_mib),
            ("load_memory_mib", self.load_memory_mib),
        ] {
            if value > MAX_HOST_MEMORY_MIB {
                return Err(ValidationError::new(
                    field(name),
                    format!("must be at most {MAX_HOST_MEMORY_MIB} (1 PiB)"),
                ));
            }
        }
        if self.state_fs_free_bytes > i64::MAX as u64 {
            return Err(ValidationError::new(
                field("state_fs_free_bytes"),
                format!("must be at most {}", i64::MAX),
            ));
        }
        for (name, value) in [
            ("boot_id", &self.boot_id),
            ("os", &self.os),
            ("agent_version", &self.agent_version),
        ] {
            if value.len() > MAX_FACT_TEXT {
                return Err(ValidationError::new(
                    field(name),
                    format!("must be at most {MAX_FACT_TEXT} bytes"),
                ));
            }
        }
        if self.instances.len() > MAX_HOST_INSTANCES {
            return Err(ValidationError::new(
                field("instances"),
                format!("must list at most {MAX_HOST_INSTANCES}"),
            ));
        }
        for name in &self.instances {
            check_instance_name(name)
                .map_err(|reason| ValidationError::new(field("instances"), reason))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod fact_tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            capacity_cpus: 8,
            capacity_memory_mib: 16384,
            load_cpus: 1.5,
            load_memory_mib: 512,
            boot_id: "b".into(),
            os: "Debian".into(),
            agent_version: "0.1.0".into(),
            state_fs_free_bytes: 1 << 40,
            maintenance: false,
            software: Default::default(),
            instances: vec!["vm-1".into()],
        }
    }

    #[test]
    fn instance_names_are_single_printable_words() {
        assert!(facts().check().is_ok());
        for bad in ["", "two words", "tab\t", &"x".repeat(MAX_FACT_TEXT + 1)] {
            let mut f = facts();
            f.instances = vec![bad.to_string()];
            assert_eq!(f.check().unwrap_err().field, "facts.instances", "{bad:?}");
        }
        let mut f = facts();
        f.instances = vec!["vm".into(); MAX_HOST_INSTANCES + 1];
        assert!(f.check().is_err());
    }

    #[test]
    fn figures_beyond_any_host_are_refused_by_field() {
        assert_eq!(facts().check(), Ok(()));
        type Spoil = fn(&mut HostFacts);
        let cases: [(&str, Spoil); 7] = [
            ("facts.capacity_cpus", |f| f.capacity_cpus = u32::MAX),
            ("facts.capacity_memory_mib", |f| {
                f.capacity_memory_mib = u64::MAX
            }),
            ("facts.load_cpus", |f| f.load_cpus = -1e308),
            ("facts.load_cpus", |f| f.load_cpus = f64::NAN),
            ("facts.load_memory_mib", |f| f.load_memory_mib = u64::MAX),
            ("facts.state_fs_free_bytes", |f| {
                f.state_fs_free_bytes = u64::MAX
            }),
            ("facts.os", |f| f.os = "x".repeat(300)),
        ];
        for (field, spoil) in cases {
            let mut bad = facts();
            spoil(&mut bad);
            assert_eq!(bad.check().unwrap_err().field, field);
        }
    }
}
