//! The two state axes of a patch (spec/patching.md §2.1) and their derivation (§2.2):
//! the repository state the controller keeps, and the patch state and per-host view it
//! derives from what the agents report.
//!
//! A host takes a patch when it runs the patch's release and its personality has an entry in
//! the patch's contents. What a host should have installed is then every applied or committed
//! patch it takes; the host is current when it has exactly that.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::ValidationError;
use crate::host::Personality;

use super::dependencies::{apply_order, remove_order};
use super::{PatchId, Release, Repository};

/// Where a patch stands in the controller's repository: the persisted truth, changed only by
/// apply, remove and commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RepoState {
    Available,
    Applied,
    /// Applied for good: cannot be removed.
    Committed,
}

impl RepoState {
    pub const ALL: [RepoState; 3] = [
        RepoState::Available,
        RepoState::Applied,
        RepoState::Committed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RepoState::Available => "Available",
            RepoState::Applied => "Applied",
            RepoState::Committed => "Committed",
        }
    }

    /// Hosts should have the patch installed (applied or committed).
    pub fn is_in_repo(self) -> bool {
        self != RepoState::Available
    }
}

impl fmt::Display for RepoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RepoState {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepoState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "repo_state",
                    format!("{s:?} is not Available, Applied or Committed"),
                )
            })
    }
}

/// Where a patch stands across the site, derived by [`patch_states`]; shown as "Patch State".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatchState {
    Available,
    /// Applied in the repository; some host it is for has not installed it yet.
    #[serde(rename = "Partial-Apply")]
    PartialApply,
    Applied,
    /// Removed from the repository; some host still has it installed.
    #[serde(rename = "Partial-Remove")]
    PartialRemove,
    Committed,
    /// The controller knows no hosts, so nothing can be said.
    #[serde(rename = "n/a")]
    Unknown,
}

impl PatchState {
    pub const ALL: [PatchState; 6] = [
        PatchState::Available,
        PatchState::PartialApply,
        PatchState::Applied,
        PatchState::PartialRemove,
        PatchState::Committed,
        PatchState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PatchState::Available => "Available",
            PatchState::PartialApply => "Partial-Apply",
            PatchState::Applied => "Applied",
            PatchState::PartialRemove => "Partial-Remove",
            PatchState::Committed => "Committed",
            PatchState::Unknown => "n/a",
        }
    }
}

impl fmt::Display for PatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchState {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PatchState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new("patch_state", format!("{s:?} is not a patch state"))
            })
    }
}

/// What a host's agent is doing about patches, as it reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    Idle,
    Installing,
    /// The last install failed; the host shows "Failed" until an install succeeds.
    InstallFailed,
    /// The last install was refused (a reboot-required patch on an unlocked host).
    InstallRejected,
}

impl AgentState {
    pub const ALL: [AgentState; 4] = [
        AgentState::Idle,
        AgentState::Installing,
        AgentState::InstallFailed,
        AgentState::InstallRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Installing => "installing",
            AgentState::InstallFailed => "install-failed",
            AgentState::InstallRejected => "install-rejected",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentState {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ValidationError::new("state", format!("{s:?} is not an agent state")))
    }
}

/// The "Patch Current" column of `query-hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatchCurrent {
    /// The host has exactly the patches it should.
    Yes,
    /// The host must install or remove patches.
    No,
    /// An apply or remove happened since the host last reported; its answer is not known yet.
    Pending,
    /// The host's last install failed (wins over the others).
    Failed,
}

impl PatchCurrent {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchCurrent::Yes => "Yes",
            PatchCurrent::No => "No",
            PatchCurrent::Pending => "Pending",
            PatchCurrent::Failed => "Failed",
        }
    }
}

impl fmt::Display for PatchCurrent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the controller knows of one host, from its agent's last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    pub hostname: String,
    pub personality: Personality,
    /// The release the host runs.
    pub release: Release,
    pub state: AgentState,
    /// Patches installed on the host.
    pub installed: BTreeSet<PatchId>,
    /// Patches installed or removed since the host last booted (the agent clears the list
    /// when its boot id changes): a reboot-required one among them means the host needs a
    /// reboot.
    pub changed_since_boot: BTreeSet<PatchId>,
}

/// For each patch applied or removed since, the hosts that have not reported since (sw-patch's
/// `interim_state`): set to every known host for [`super::Outcome::moved`] patches, and a
/// host is taken out of every list by its next report or when it is dropped. Hosts not in the
/// host list are ignored.
pub type Interim = BTreeMap<PatchId, BTreeSet<String>>;

/// Whether a host of `personality` on `release` takes the patch.
fn takes(repo: &Repository, id: &PatchId, personality: Personality, release: &Release) -> bool {
    repo.get(id).is_some_and(|entry| {
        entry.metadata.sw_version == *release && entry.metadata.is_for(personality)
    })
}

/// Every patch's [`PatchState`] (§2.2):
///
/// - no hosts known: `n/a` for all;
/// - committed: `Committed`;
/// - applied: `Partial-Apply` while a host it is for has not installed it or has not
///   reported since it was applied, else `Applied`;
/// - available: `Partial-Remove` while any host still has it installed, or a host it is for
///   has not reported since it was removed, else `Available`.
///
/// A pending host the patch is not for (another release or personality) does not hold it
/// partial: Convoy keeps a host pending until it installs, and such a host never installs it.
pub fn patch_states(
    repo: &Repository,
    hosts: &[HostReport],
    interim: &Interim,
) -> BTreeMap<PatchId, PatchState> {
    repo.iter()
        .map(|(id, entry)| {
            let state = if hosts.is_empty() {
                PatchState::Unknown
            } else {
                // A pending host the patch means nothing to (not for its release or
                // personality, and not installed there) keeps nothing partial: it has
                // nothing to install or remove for it.
                let waiting = interim.get(id).is_some_and(|names| {
                    hosts.iter().any(|h| {
                        names.contains(&h.hostname)
                            && (takes(repo, id, h.personality, &h.release)
                                || h.installed.contains(id))
                    })
                });
                match entry.state {
                    RepoState::Committed => PatchState::Committed,
                    RepoState::Applied => {
                        let lagging = hosts.iter().any(|h| {
                            takes(repo, id, h.personality, &h.release) && !h.installed.contains(id)
                        });
                        if waiting || lagging {
                            PatchState::PartialApply
                        } else {
                            PatchState::Applied
                        }
                    }
                    RepoState::Available => {
                        if waiting || hosts.iter().any(|h| h.installed.contains(id)) {
                            PatchState::PartialRemove
                        } else {
                            PatchState::Available
                        }
                    }
                }
            };
            (id.clone(), state)
        })
        .collect()
}

/// What a host must do to be current: patches to remove (dependents first), then patches to
/// install (requirements first). Installed patches the repository no longer holds count as
/// to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWork {
    pub remove: Vec<PatchId>,
    pub install: Vec<PatchId>,
}

impl HostWork {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.install.is_empty()
    }
}

/// The work that brings `host` to exactly the applied and committed patches it takes.
pub fn host_work(repo: &Repository, host: &HostReport) -> HostWork {
    let wanted: BTreeSet<PatchId> = repo
        .iter()
        .filter(|(id, entry)| {
            entry.state.is_in_repo() && takes(repo, id, host.personality, &host.release)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let install = wanted.difference(&host.installed).cloned().collect();
    let remove = host.installed.difference(&wanted).cloned().collect();
    HostWork {
        remove: remove_order(repo, &remove),
        install: apply_order(repo, &install),
    }
}

/// One row of `query-hosts`, plus the work behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPatchStatus {
    pub hostname: String,
    pub patch_current: PatchCurrent,
    pub reboot_required: bool,
    pub release: Release,
    pub state: AgentState,
    pub work: HostWork,
}

/// The `query-hosts` view of one host (§2.2, "per-host view"):
///
/// - Patch Current: `Failed` if the agent reports `install-failed`; else `Pending` if the host
///   is in an [`Interim`] list; else `Yes` when [`host_work`] is empty, `No` otherwise;
/// - Reboot Required: a reboot-required patch was installed or removed since the host's last
///   boot (an id the repository no longer holds counts as one), or installing the pending
///   work needs a reboot (sw-patch forces the flag on out-of-date hosts while a
///   reboot-required patch is partially applied or removed).
pub fn host_status(repo: &Repository, interim: &Interim, host: &HostReport) -> HostPatchStatus {
    let work = host_work(repo, host);
    let pending = interim.values().any(|names| names.contains(&host.hostname));
    let patch_current = match host.state {
        AgentState::InstallFailed => PatchCurrent::Failed,
        _ if pending => PatchCurrent::Pending,
        _ if work.is_empty() => PatchCurrent::Yes,
        _ => PatchCurrent::No,
    };
    let reboot_required = awaits_reboot(repo, host)
        || work
            .remove
            .iter()
            .chain(&work.install)
            .any(|id| needs_reboot(repo, id));
    HostPatchStatus {
        hostname: host.hostname.clone(),
        patch_current,
        reboot_required,
        release: host.release.clone(),
        state: host.state,
        work,
    }
}

/// Whether changing `id` needs a reboot (a patch the repository no longer knows is assumed
/// to).
fn needs_reboot(repo: &Repository, id: &PatchId) -> bool {
    repo.get(id).is_none_or(|e| e.metadata.reboot_required)
}

/// The host changed a reboot-required patch since it last booted: a reboot is due (its
/// unlock sends it).
pub fn awaits_reboot(repo: &Repository, host: &HostReport) -> bool {
    host.changed_since_boot
        .iter()
        .any(|id| needs_reboot(repo, id))
}

/// Some host's agent is installing: apply and remove must wait.
pub fn any_installing(hosts: &[HostReport]) -> bool {
    hosts.iter().any(|h| h.state == AgentState::Installing)
}

/// `is-applied` / `is-available`: every id has patch state `wanted` (an unknown id has none).
pub fn all_in_state(
    states: &BTreeMap<PatchId, PatchState>,
    ids: &[PatchId],
    wanted: PatchState,
) -> bool {
    ids.iter().all(|id| states.get(id) == Some(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::RepoEntry;
    use crate::patch::dependencies::tests::{id, meta};
    use proptest::prelude::*;

    fn release() -> Release {
        "25.09".parse().unwrap()
    }

    fn host(name: &str, personality: Personality, installed: &[&str]) -> HostReport {
        HostReport {
            hostname: name.into(),
            personality,
            release: release(),
            state: AgentState::Idle,
            installed: installed.iter().map(|s| id(s)).collect(),
            changed_since_boot: BTreeSet::new(),
        }
    }

    /// `P1` for controllers and workers (in service), `RR` for workers only (reboot required).
    fn site_repo(p1: RepoState, rr: RepoState) -> Repository {
        let mut m1 = meta("P1", &[]);
        m1.contents = BTreeMap::from([
            (Personality::Controller, vec!["etc/a".into()]),
            (Personality::Worker, vec!["etc/a".into()]),
        ]);
        let mut m2 = meta("RR", &[]);
        m2.reboot_required = true;
        m2.contents = BTreeMap::from([(Personality::Worker, vec!["boot/k".into()])]);
        Repository::from([
            (
                id("P1"),
                RepoEntry {
                    metadata: m1,
                    state: p1,
                },
            ),
            (
                id("RR"),
                RepoEntry {
                    metadata: m2,
                    state: rr,
                },
            ),
        ])
    }

    #[test]
    fn state_names_are_sw_patch_strings() {
        for state in PatchState::ALL {
            assert_eq!(state.as_str().parse::<PatchState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for state in RepoState::ALL {
            assert_eq!(state.as_str().parse::<RepoState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for state in AgentState::ALL {
            assert_eq!(state.as_str().parse::<AgentState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(PatchState::PartialApply.to_string(), "Partial-Apply");
        assert_eq!(PatchState::Unknown.to_string(), "n/a");
        assert_eq!(AgentState::InstallFailed.to_string(), "install-failed");
    }

    #[test]
    fn no_hosts_means_n_a() {
        let repo = site_repo(RepoState::Applied, RepoState::Committed);
        let states = patch_states(&repo, &[], &Interim::new());
        assert!(states.values().all(|s| *s == PatchState::Unknown));
    }

    #[test]
    fn the_seed_walkthrough_available_partial_apply_applied() {
        // sw-patch upload, apply, host-install on each host in turn (seed 002).
        let repo = site_repo(RepoState::Available, RepoState::Available);
        let mut hosts = vec![
            host("controller-0", Personality::Controller, &[]),
            host("compute-0", Personality::Worker, &[]),
            host("storage-0", Personality::Storage, &[]),
        ];
        let none = Interim::new();
        assert_eq!(
            patch_states(&repo, &hosts, &none)[&id("P1")],
            PatchState::Available
        );
        for h in &hosts {
            let status = host_status(&repo, &none, h);
            assert_eq!(status.patch_current, PatchCurrent::Yes);
            assert!(!status.reboot_required);
        }

        let repo = site_repo(RepoState::Applied, RepoState::Available);
        let interim =
            Interim::from([(id("P1"), hosts.iter().map(|h| h.hostname.clone()).collect())]);
        assert_eq!(
            patch_states(&repo, &hosts, &interim)[&id("P1")],
            PatchState::PartialApply
        );
        assert_eq!(
            host_status(&repo, &interim, &hosts[0]).patch_current,
            PatchCurrent::Pending
        );
        // Every host reported; the storage host does not take P1.
        let none = Interim::new();
        let current: Vec<PatchCurrent> = hosts
            .iter()
            .map(|h| host_status(&repo, &none, h).patch_current)
            .collect();
        assert_eq!(
            current,
            [PatchCurrent::No, PatchCurrent::No, PatchCurrent::Yes]
        );

        hosts[0].installed.insert(id("P1"));
        assert_eq!(
            patch_states(&repo, &hosts, &none)[&id("P1")],
            PatchState::PartialApply
        );
        hosts[1].installed.insert(id("P1"));
        assert_eq!(
            patch_states(&repo, &hosts, &none)[&id("P1")],
            PatchState::Applied
        );
        assert!(
            hosts
                .iter()
                .all(|h| host_status(&repo, &none, h).patch_current == PatchCurrent::Yes)
        );

        // Removed from the repository: Partial-Remove until no host has it.
        let repo = site_repo(RepoState::Available, RepoState::Available);
        assert_eq!(
            patch_states(&repo, &hosts, &none)[&id("P1")],
            PatchState::PartialRemove
        );
        let status = host_status(&repo, &none, &hosts[0]);
        assert_eq!(status.patch_current, PatchCurrent::No);
        assert_eq!(status.work.remove, [id("P1")]);
        hosts[0].installed.clear();
        hosts[1].installed.clear();
        assert_eq!(
            patch_states(&repo, &hosts, &none)[&id("P1")],
            PatchState::Available
        );
    }

    #[test]
    fn committed_stays_committed() {
        let repo = site_repo(RepoState::Committed, RepoState::Available);
        let hosts = [host("compute-0", Personality::Worker, &[])];
        assert_eq!(
            patch_states(&repo, &hosts, &Interim::new())[&id("P1")],
            PatchState::Committed
        );
        assert_eq!(host_work(&repo, &hosts[0]).install, [id("P1")]);
    }

    #[test]
    fn hosts_on_another_release_do_not_take_the_patch() {
        let repo = site_repo(RepoState::Applied, RepoState::Available);
        let mut old = host("compute-0", Personality::Worker, &[]);
        old.release = "24.09".parse().unwrap();
        assert_eq!(
            patch_states(&repo, std::slice::from_ref(&old), &Interim::new())[&id("P1")],
            PatchState::Applied
        );
        assert!(host_work(&repo, &old).is_empty());
    }

    #[test]
    fn a_pending_host_the_patch_is_not_for_does_not_hold_it_partial() {
        // RR is for workers only; the controller stays pending (it never installs RR).
        let repo = site_repo(RepoState::Available, RepoState::Applied);
        let hosts = [
            host("controller-0", Personality::Controller, &[]),
            host("compute-0", Personality::Worker, &["RR"]),
        ];
        let interim = Interim::from([(
            id("RR"),
            BTreeSet::from(["controller-0".to_string(), "compute-0".to_string()]),
        )]);
        let states = patch_states(&repo, &hosts, &interim);
        assert_eq!(
            states[&id("RR")],
            PatchState::PartialApply,
            "compute-0 pending"
        );
        let interim = Interim::from([(id("RR"), BTreeSet::from(["controller-0".to_string()]))]);
        assert_eq!(
            patch_states(&repo, &hosts, &interim)[&id("RR")],
            PatchState::Applied
        );
    }

    #[test]
    fn interim_names_of_dropped_hosts_are_ignored() {
        let repo = site_repo(RepoState::Applied, RepoState::Available);
        let hosts = [host("compute-0", Personality::Worker, &["P1"])];
        let interim = Interim::from([(id("P1"), BTreeSet::from(["gone".to_string()]))]);
        assert_eq!(
            patch_states(&repo, &hosts, &interim)[&id("P1")],
            PatchState::Applied
        );
    }

    #[test]
    fn reboot_required_before_and_after_installing_a_reboot_required_patch() {
        let repo = site_repo(RepoState::Available, RepoState::Applied);
        let none = Interim::new();
        let mut worker = host("compute-0", Personality::Worker, &[]);
        let controller = host("controller-0", Personality::Controller, &[]);
        // Pending work that needs a reboot: sw-patch forces the flag on.
        assert!(host_status(&repo, &none, &worker).reboot_required);
        assert!(!host_status(&repo, &none, &controller).reboot_required);
        // Installed, not yet rebooted.
        worker.installed.insert(id("RR"));
        worker.changed_since_boot.insert(id("RR"));
        let status = host_status(&repo, &none, &worker);
        assert_eq!(status.patch_current, PatchCurrent::Yes);
        assert!(status.reboot_required);
        // After the reboot the agent clears the list.
        worker.changed_since_boot.clear();
        assert!(!host_status(&repo, &none, &worker).reboot_required);
        // An in-service patch installed since boot needs no reboot; an unknown one might.
        worker.changed_since_boot.insert(id("P1"));
        assert!(!host_status(&repo, &none, &worker).reboot_required);
        worker.changed_since_boot.insert(id("GONE"));
        assert!(host_status(&repo, &none, &worker).reboot_required);
    }

    #[test]
    fn failed_wins_over_pending_and_no() {
        let repo = site_repo(RepoState::Applied, RepoState::Available);
        let mut h = host("compute-0", Personality::Worker, &[]);
        h.state = AgentState::InstallFailed;
        let interim = Interim::from([(id("P1"), BTreeSet::from(["compute-0".to_string()]))]);
        let status = host_status(&repo, &interim, &h);
        assert_eq!(status.patch_current, PatchCurrent::Failed);
        assert_eq!(status.patch_current.to_string(), "Failed");
        assert_eq!(status.state.to_string(), "install-failed");
    }

    #[test]
    fn work_orders_installs_by_requirement_and_removes_unknown_patches() {
        let mut repo = Repository::new();
        for (name, reqs) in [("A", &["B"][..]), ("B", &["C"][..]), ("C", &[][..])] {
            repo.insert(
                id(name),
                RepoEntry {
                    metadata: meta(name, reqs),
                    state: RepoState::Applied,
                },
            );
        }
        let h = host("controller-0", Personality::Controller, &["OLD"]);
        let work = host_work(&repo, &h);
        assert_eq!(work.install, [id("C"), id("B"), id("A")]);
        assert_eq!(work.remove, [id("OLD")]);
    }

    #[test]
    fn is_applied_needs_every_id_applied() {
        let states = BTreeMap::from([
            (id("A"), PatchState::Applied),
            (id("B"), PatchState::PartialApply),
        ]);
        assert!(all_in_state(&states, &[id("A")], PatchState::Applied));
        assert!(!all_in_state(
            &states,
            &[id("A"), id("B")],
            PatchState::Applied
        ));
        assert!(!all_in_state(&states, &[id("X")], PatchState::Available));
        assert!(any_installing(&[HostReport {
            state: AgentState::Installing,
            ..host("h", Personality::Storage, &[])
        }]));
    }

    fn arb_repo_state() -> impl Strategy<Value = RepoState> {
        prop_oneof![
            Just(RepoState::Available),
            Just(RepoState::Applied),
            Just(RepoState::Committed)
        ]
    }

    fn arb_personality() -> impl Strategy<Value = Personality> {
        proptest::sample::select(Personality::ALL.to_vec())
    }

    /// Up to four patches (random states, personalities, releases) and up to five hosts with
    /// random installed sets, and a random interim map.
    fn arb_site() -> impl Strategy<Value = (Repository, Vec<HostReport>, Interim)> {
        let patches = proptest::collection::vec(
            (
                arb_repo_state(),
                proptest::collection::btree_set(arb_personality(), 1..3),
                proptest::bool::weighted(0.8),
                any::<bool>(),
            ),
            1..5,
        );
        let hosts = proptest::collection::vec(
            (
                arb_personality(),
                proptest::bool::weighted(0.9),
                proptest::collection::btree_set(0usize..5, 0..5),
            ),
            0..6,
        );
        let interim = proptest::collection::btree_map(
            0usize..5,
            proptest::collection::btree_set(0usize..7, 0..3),
            0..2,
        );
        (patches, hosts, interim).prop_map(|(patches, hosts, interim)| {
            let repo: Repository = patches
                .iter()
                .enumerate()
                .map(|(i, (state, personalities, same_release, rr))| {
                    let mut m = meta(&format!("P{i}"), &[]);
                    m.contents = personalities.iter().map(|p| (*p, vec![])).collect();
                    if !same_release {
                        m.sw_version = "24.09".parse().unwrap();
                    }
                    m.reboot_required = *rr;
                    (
                        m.id.clone(),
                        RepoEntry {
                            metadata: m,
                            state: *state,
                        },
                    )
                })
                .collect();
            let hosts = hosts
                .iter()
                .enumerate()
                .map(|(i, (personality, same_release, installed))| {
                    let mut h = host(&format!("h{i}"), *personality, &[]);
                    if !same_release {
                        h.release = "24.09".parse().unwrap();
                    }
                    h.installed = installed.iter().map(|p| id(&format!("P{p}"))).collect();
                    h
                })
                .collect();
            let interim = interim
                .iter()
                .map(|(p, hs)| {
                    (
                        id(&format!("P{p}")),
                        hs.iter().map(|h| format!("h{h}")).collect(),
                    )
                })
                .collect();
            (repo, hosts, interim)
        })
    }

    proptest! {
        #[test]
        fn derivation_is_consistent_with_hosts((repo, hosts, interim) in arb_site()) {
            let states = patch_states(&repo, &hosts, &interim);
            prop_assert_eq!(states.len(), repo.len());
            let none = Interim::new();
            let quiet = patch_states(&repo, &hosts, &none);
            for (pid, entry) in &repo {
                let state = states[pid];
                if hosts.is_empty() {
                    prop_assert_eq!(state, PatchState::Unknown);
                    continue;
                }
                let targets: Vec<&HostReport> = hosts
                    .iter()
                    .filter(|h| h.release == entry.metadata.sw_version && entry.metadata.is_for(h.personality))
                    .collect();
                let holders = hosts.iter().filter(|h| h.installed.contains(pid)).count();
                match entry.state {
                    RepoState::Committed => prop_assert_eq!(state, PatchState::Committed),
                    RepoState::Applied => {
                        // Without pending reports: Applied exactly when every host it is for
                        // has it, Partial-Apply when some lack it.
                        let all = targets.iter().all(|h| h.installed.contains(pid));
                        prop_assert_eq!(quiet[pid], if all { PatchState::Applied } else { PatchState::PartialApply });
                        prop_assert!(matches!(state, PatchState::Applied | PatchState::PartialApply));
                        if !all { prop_assert_eq!(state, PatchState::PartialApply); }
                    }
                    RepoState::Available => {
                        prop_assert_eq!(quiet[pid], if holders == 0 { PatchState::Available } else { PatchState::PartialRemove });
                        prop_assert!(matches!(state, PatchState::Available | PatchState::PartialRemove));
                        if holders > 0 { prop_assert_eq!(state, PatchState::PartialRemove); }
                    }
                }
            }
            // Every host current and no report pending: each patch state is its repository state.
            let all_current = hosts.iter().all(|h| host_status(&repo, &none, h).patch_current == PatchCurrent::Yes);
            if all_current && !hosts.is_empty() {
                for (pid, entry) in &repo {
                    prop_assert_eq!(quiet[pid].as_str(), entry.state.as_str());
                }
            }
        }

        #[test]
        fn doing_the_work_makes_a_host_current((repo, hosts, _interim) in arb_site()) {
            let none = Interim::new();
            for h in &hosts {
                let status = host_status(&repo, &none, h);
                prop_assert_eq!(status.patch_current == PatchCurrent::Yes, status.work.is_empty());
                let mut done = h.clone();
                for p in &status.work.remove {
                    prop_assert!(done.installed.remove(p));
                }
                for p in &status.work.install {
                    prop_assert!(done.installed.insert(p.clone()));
                }
                prop_assert_eq!(host_status(&repo, &none, &done).patch_current, PatchCurrent::Yes);
            }
            // Once every host did its work, no patch is partial.
            let converged: Vec<HostReport> = hosts
                .iter()
                .map(|h| {
                    let work = host_work(&repo, h);
                    let mut done = h.clone();
                    done.installed.retain(|p| !work.remove.contains(p));
                    done.installed.extend(work.install);
                    done
                })
                .collect();
            for state in patch_states(&repo, &converged, &none).values() {
                prop_assert!(!matches!(state, PatchState::PartialApply | PatchState::PartialRemove));
            }
        }
    }
}
