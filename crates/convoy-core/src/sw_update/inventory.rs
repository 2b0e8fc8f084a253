//! What a strategy's build needs to know of the site, gathered by the caller from its store
//! (the original's build phase queries: `query-alarms`, `query-sw-patches`,
//! `query-sw-patch-hosts`, the host table): each host's states and software, and the active
//! alarms.

use serde::{Deserialize, Serialize};

use crate::host::{Administrative, Availability, Operational, Personality};

/// One host as the build sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateHost {
    pub hostname: String,
    /// `ControllerWorker` is an all-in-one (AIO) host: a controller updated through the worker
    /// stages.
    pub personality: Personality,
    pub administrative: Administrative,
    pub operational: Operational,
    /// Convoy's availability: `available` while its agent is heard from. For a locked host
    /// this is StarlingX's `online`; `offline` is the same word in both.
    pub availability: Availability,
    /// The site's active controller (see [`crate::controllers::active_controller`]).
    pub active_controller: bool,
    /// The host runs the target software: every applied patch installed (sw-patch's
    /// `patch_current`), or the release deployed on it (sw-upgrade's host deploy state
    /// `deployed`). Such a host gets no stage.
    pub patch_current: bool,
    /// The host must reboot (lock, install, unlock) rather than be updated in service.
    /// Read by sw-patch; sw-upgrade takes the release's `reboot_required` for every host.
    pub requires_reboot: bool,
    /// An install is under way on the host, or its report since the last apply or remove is
    /// still pending (sw-patch's `interim_state` and agent state `installing`).
    pub installing: bool,
    /// The instances the host's `InstanceAction` hook reports running on it, by name.
    pub instances: Vec<String>,
    /// The storage replication group of a storage host: two hosts of one group are never
    /// updated together.
    pub replication_group: Option<String>,
}

impl UpdateHost {
    /// A controller, all-in-one included.
    pub fn is_controller(&self) -> bool {
        matches!(
            self.personality,
            Personality::Controller | Personality::ControllerWorker
        )
    }

    /// A host that runs workloads: a worker, or an all-in-one controller.
    pub fn is_worker(&self) -> bool {
        matches!(
            self.personality,
            Personality::Worker | Personality::ControllerWorker
        )
    }

    pub fn is_storage(&self) -> bool {
        self.personality == Personality::Storage
    }

    /// An all-in-one host (controller and worker).
    pub fn is_aio(&self) -> bool {
        self.personality == Personality::ControllerWorker
    }

    pub fn is_locked(&self) -> bool {
        self.administrative == Administrative::Locked
    }

    pub fn is_offline(&self) -> bool {
        self.availability == Availability::Offline
    }

    /// `unlocked-enabled-available`.
    pub fn in_service(&self) -> bool {
        self.administrative == Administrative::Unlocked
            && self.operational == Operational::Enabled
            && self.availability == Availability::Available
    }

    /// `locked-disabled-online` or `locked-disabled-offline`.
    pub fn locked_disabled(&self) -> bool {
        self.administrative == Administrative::Locked && self.operational == Operational::Disabled
    }
}

/// One active alarm, as far as a strategy cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// `200.001` style.
    pub alarm_id: String,
    pub mgmt_affecting: bool,
    /// When it was raised, if known: an alarm ignored only once stale (`750.006`) needs it.
    #[serde(default)]
    pub raised_at: Option<jiff::Timestamp>,
}

/// The site as the build reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInventory {
    pub hosts: Vec<UpdateHost>,
    pub alarms: Vec<ActiveAlarm>,
    /// The site has one controller by design (StarlingX simplex): no swact, and a locked
    /// controller never goes disabled. Callers set it when the site has exactly one
    /// controller.
    pub single_controller: bool,
    /// Hosts the software side reports (patch agents) that the host inventory does not know:
    /// the original fails the build on any ("host inventory mismatch detected"). Convoy keeps
    /// both in one store, so this is normally empty.
    pub software_hosts_not_in_inventory: Vec<String>,
}

impl SiteInventory {
    pub fn host(&self, hostname: &str) -> Option<&UpdateHost> {
        self.hosts.iter().find(|h| h.hostname == hostname)
    }

    /// How many hosts are controllers (all-in-one included).
    pub fn controller_count(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_controller()).count()
    }

    pub fn storage_count(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_storage()).count()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hosts for the tests of this module tree.
    use super::*;

    /// An unlocked, enabled, available host that needs an in-service update.
    pub fn host(name: &str, personality: Personality) -> UpdateHost {
        UpdateHost {
            hostname: name.into(),
            personality,
            administrative: Administrative::Unlocked,
            operational: Operational::Enabled,
            availability: Availability::Available,
            active_controller: false,
            patch_current: false,
            requires_reboot: false,
            installing: false,
            instances: Vec::new(),
            replication_group: None,
        }
    }

    pub fn reboot(mut h: UpdateHost) -> UpdateHost {
        h.requires_reboot = true;
        h
    }

    pub fn active(mut h: UpdateHost) -> UpdateHost {
        h.active_controller = true;
        h
    }

    pub fn with_instances(mut h: UpdateHost, names: &[&str]) -> UpdateHost {
        h.instances = names.iter().map(|n| n.to_string()).collect();
        h
    }

    pub fn locked(mut h: UpdateHost, offline: bool) -> UpdateHost {
        h.administrative = Administrative::Locked;
        h.operational = Operational::Disabled;
        if offline {
            h.availability = Availability::Offline;
        }
        h
    }

    pub fn current(mut h: UpdateHost) -> UpdateHost {
        h.patch_current = true;
        h
    }

    pub fn site(hosts: Vec<UpdateHost>) -> SiteInventory {
        let single_controller = hosts.iter().filter(|h| h.is_controller()).count() == 1;
        SiteInventory {
            hosts,
            alarms: Vec::new(),
            single_controller,
            software_hosts_not_in_inventory: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn personalities_and_states_read_as_the_original() {
        let aio = host("controller-0", Personality::ControllerWorker);
        assert!(aio.is_controller() && aio.is_worker() && aio.is_aio());
        let w = host("worker-0", Personality::Worker);
        assert!(w.is_worker() && !w.is_controller() && w.in_service());
        let l = locked(w.clone(), true);
        assert!(l.locked_disabled() && l.is_offline() && !l.in_service());
        let s = site(vec![aio, w, host("storage-0", Personality::Storage)]);
        assert_eq!((s.controller_count(), s.storage_count()), (1, 1));
        assert!(s.single_controller);
        assert!(s.host("worker-0").is_some());
    }
}
