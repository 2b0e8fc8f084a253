//! The build of a strategy (spec §4.4, §4.7): the checks the original makes once its build
//! queries have answered, in its order and with its reasons, then the apply phase's stages.
//! Also which alarms block a strategy ([`AlarmFilter`]), used again by the apply phase's
//! `query-alarms`, `wait-alarms-clear` and `wait-data-sync` steps.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::durations::StepDurations;
use super::inventory::{ActiveAlarm, SiteInventory, UpdateHost};
use super::options::{AlarmRestrictions, SwPatchOptions, SwUpdateKind, SwUpgradeOptions};
use super::release::{DeployState, ReleaseState};
use super::stages::{PlannedStage, Templates};

/// Why a build failed: the strategy's `build-reason`, the original's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BuildFailure {
    pub reason: String,
}

impl BuildFailure {
    pub fn new(reason: impl Into<String>) -> Self {
        BuildFailure {
            reason: reason.into(),
        }
    }
}

/// Alarms that never stop a sw-patch strategy: patching and upgrade in progress, the
/// strategy's own, host locked, instance stopped, subcloud out of sync, PTP SyncE, node
/// tainted.
pub const SW_PATCH_IGNORE_ALARMS: [&str; 8] = [
    "900.001", "900.005", "900.101", "200.001", "700.004", "280.002", "100.119", "900.701",
];

/// Alarms that never stop a sw-upgrade strategy: upgrade in progress, USM deploy alarms, the
/// sw-deploy strategy's own, cert-manager reapply, system config out of date, PTP SyncE, node
/// tainted, deploy data out of sync.
pub const SW_UPGRADE_IGNORE_ALARMS: [&str; 13] = [
    "900.005", "900.020", "900.021", "900.022", "900.023", "900.201", "900.202", "900.231",
    "750.006", "250.001", "100.119", "900.701", "200.001",
];

/// Alarms that stop a sw-patch strategy only while fresh: once active longer than
/// [`StepDurations::stale_alarm`] they are ignored (cert-manager reapply).
pub const SW_PATCH_IGNORE_WHEN_STALE: [&str; 1] = ["750.006"];

/// Which active alarms block a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmFilter {
    pub restrictions: AlarmRestrictions,
    /// Never block: the kind's list plus the configured extras.
    pub ignore: Vec<String>,
    /// Stop blocking once active longer than `stale_after`.
    pub ignore_when_stale: Vec<String>,
    pub stale_after: Duration,
}

impl AlarmFilter {
    /// The filter of a kind: its default ignore list plus `extra_ignore` (the original's
    /// `[sw-mgmt-configuration] ignore_alarms`).
    pub fn new(
        kind: SwUpdateKind,
        restrictions: AlarmRestrictions,
        extra_ignore: &[String],
        durations: &StepDurations,
    ) -> AlarmFilter {
        let (defaults, stale): (&[&str], &[&str]) = match kind {
            SwUpdateKind::SwPatch => (&SW_PATCH_IGNORE_ALARMS, &SW_PATCH_IGNORE_WHEN_STALE),
            SwUpdateKind::SwUpgrade => (&SW_UPGRADE_IGNORE_ALARMS, &[]),
        };
        let mut ignore: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
        for extra in extra_ignore {
            if !ignore.contains(extra) {
                ignore.push(extra.clone());
            }
        }
        AlarmFilter {
            restrictions,
            ignore,
            ignore_when_stale: stale.iter().map(|s| s.to_string()).collect(),
            stale_after: durations.stale_alarm(),
        }
    }

    /// Whether `alarm` blocks: never under `permissive`; under `relaxed` only
    /// management-affecting ones; never one on the ignore list; a conditionally ignored one
    /// only until it is stale (an alarm of unknown age stays blocking).
    pub fn blocks(&self, alarm: &ActiveAlarm, now: Timestamp) -> bool {
        match self.restrictions {
            AlarmRestrictions::Permissive => return false,
            AlarmRestrictions::Relaxed if !alarm.mgmt_affecting => return false,
            _ => {}
        }
        if self.ignore.contains(&alarm.alarm_id) {
            return false;
        }
        if self.ignore_when_stale.contains(&alarm.alarm_id)
            && let Some(raised) = alarm.raised_at
        {
            let age = now.duration_since(raised);
            if age.is_positive() && age.unsigned_abs() > self.stale_after {
                return false;
            }
        }
        true
    }

    /// The alarms that block, in the order given.
    pub fn blocking<'a>(&self, alarms: &'a [ActiveAlarm], now: Timestamp) -> Vec<&'a ActiveAlarm> {
        alarms.iter().filter(|a| self.blocks(a, now)).collect()
    }
}

/// The reason an apply-phase `query-alarms` step fails with:
/// `alarms ['100.101', '200.004'] from platform are present`.
pub fn alarms_present_reason(blocking: &[&ActiveAlarm]) -> String {
    let ids: Vec<String> = blocking
        .iter()
        .map(|a| format!("'{}'", a.alarm_id))
        .collect();
    format!("alarms [{}] from platform are present", ids.join(", "))
}

/// What the build reads besides the site and the options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildConfig {
    pub durations: StepDurations,
    /// Alarm ids ignored on top of the kind's list.
    pub extra_ignore_alarms: Vec<String>,
}

/// A built strategy: the build phase's stage (for display), the apply phase's stages in
/// order (stage ids are the indices), and the alarm filter its steps use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub kind: SwUpdateKind,
    pub build_stage: PlannedStage,
    pub stages: Vec<PlannedStage>,
    pub alarm_filter: AlarmFilter,
}

fn sorted_hosts(site: &SiteInventory) -> Vec<&UpdateHost> {
    let mut hosts: Vec<&UpdateHost> = site.hosts.iter().collect();
    hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    hosts
}

fn all_in_service(hosts: &[&UpdateHost]) -> Result<(), BuildFailure> {
    match hosts.iter().find(|h| !h.in_service()) {
        Some(h) => Err(BuildFailure::new(format!(
            "all {} hosts must be unlocked-enabled-available",
            h.personality
        ))),
        None => Ok(()),
    }
}

/// Builds a sw-patch strategy (spec §4.4). `patch_count` is how many patches the site's
/// repository holds; `options` must have passed [`SwPatchOptions::validate`]. Checks, in
/// order: patches exist; no blocking alarm; host states (pure workers unlocked-enabled-
/// available or locked-disabled, every other host unlocked-enabled-available); the software
/// inventory matches; no host installing; then stages in the original's creation order
/// (controllers in service, controllers reboot, storage likewise, workers likewise), and at
/// least one stage. Hosts are taken in hostname order.
pub fn build_sw_patch(
    options: &SwPatchOptions,
    site: &SiteInventory,
    patch_count: usize,
    config: &BuildConfig,
    now: Timestamp,
) -> Result<Plan, BuildFailure> {
    let apply = options.apply_options();
    let d = &config.durations;
    let filter = AlarmFilter::new(
        SwUpdateKind::SwPatch,
        apply.alarm_restrictions,
        &config.extra_ignore_alarms,
        d,
    );
    let templates = Templates {
        options: &apply,
        site,
        durations: d,
    };

    if patch_count == 0 {
        return Err(BuildFailure::new("no software patches found"));
    }
    if !filter.blocking(&site.alarms, now).is_empty() {
        return Err(BuildFailure::new("active alarms present"));
    }
    let hosts = sorted_hosts(site);
    for host in &hosts {
        if host.personality == crate::host::Personality::Worker {
            if !(host.in_service() || host.locked_disabled()) {
                return Err(BuildFailure::new(
                    "all worker hosts must be unlocked-enabled-available, \
                     locked-disabled-online or locked-disabled-offline",
                ));
            }
        } else {
            all_in_service(&[host])?;
        }
    }
    if !site.software_hosts_not_in_inventory.is_empty() {
        return Err(BuildFailure::new("host inventory mismatch detected"));
    }
    if hosts.iter().any(|h| h.installing) {
        return Err(BuildFailure::new(
            "at least one host is in pending patch current state",
        ));
    }

    // Buckets: [in service, reboot] per personality. An all-in-one host is in both the
    // controller and the worker buckets; offline workers are left out.
    let mut controllers: [Vec<&UpdateHost>; 2] = Default::default();
    let mut storage: [Vec<&UpdateHost>; 2] = Default::default();
    let mut workers: [Vec<&UpdateHost>; 2] = Default::default();
    for host in hosts.iter().copied().filter(|h| !h.patch_current) {
        let bucket = usize::from(host.requires_reboot);
        if host.is_controller() {
            controllers[bucket].push(host);
        } else if host.is_storage() {
            storage[bucket].push(host);
        }
        if host.is_worker() && !host.is_offline() {
            workers[bucket].push(host);
        }
    }

    let mut stages = Vec::new();
    for (bucket, reboot) in [(0, false), (1, true)] {
        if !controllers[bucket].is_empty() {
            stages.extend(templates.controller_stages(&controllers[bucket], reboot)?);
        }
    }
    for (bucket, reboot) in [(0, false), (1, true)] {
        if !storage[bucket].is_empty() {
            stages.extend(templates.storage_stages(&storage[bucket], reboot)?);
        }
    }
    for (bucket, reboot) in [(0, false), (1, true)] {
        if !workers[bucket].is_empty() {
            stages.extend(templates.worker_stages(&workers[bucket], reboot)?);
        }
    }
    if stages.is_empty() {
        return Err(BuildFailure::new("no software patches need to be applied"));
    }
    Ok(Plan {
        kind: SwUpdateKind::SwPatch,
        build_stage: templates.build_stage(),
        stages,
        alarm_filter: filter,
    })
}

/// The release a sw-upgrade strategy deploys, as the site's repository knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    pub release_id: String,
    pub state: ReleaseState,
    pub reboot_required: bool,
    /// A major release (a new software version): on a duplex site the deploy starts and
    /// activates on controller-0, so controller-1 is swacted away from first and updated
    /// first.
    pub major: bool,
}

/// The site's deploy record, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployFacts {
    pub to_release: String,
    pub state: DeployState,
}

/// What the sw-upgrade build's queries (`query-upgrade`) found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeFacts {
    /// The named release, if the repository has it.
    pub release: Option<ReleaseFacts>,
    pub deploy: Option<DeployFacts>,
}

const CONTROLLER_0: &str = "controller-0";
const CONTROLLER_1: &str = "controller-1";

/// Builds a sw-upgrade (sw-deploy) strategy (spec §4.7). Checks, in order: a release or
/// rollback, not both; no rollback (not supported, as the original said at the time); the
/// release exists and can be deployed; no other deploy in the way; the deploy not already
/// complete (unless `delete`, which then plans only `sw-deploy-delete`); no blocking alarm;
/// every host unlocked-enabled-available. Stages: `sw-upgrade-start` (unless the deploy has
/// started), the host stages (hosts already deployed are skipped; reboot as the release
/// says; all-in-one controllers through the worker template), `sw-upgrade-complete`, and
/// `sw-deploy-delete` when asked.
pub fn build_sw_upgrade(
    options: &SwUpgradeOptions,
    site: &SiteInventory,
    facts: &UpgradeFacts,
    config: &BuildConfig,
    now: Timestamp,
) -> Result<Plan, BuildFailure> {
    let apply = options.apply_options();
    let d = &config.durations;
    let filter = AlarmFilter::new(
        SwUpdateKind::SwUpgrade,
        apply.alarm_restrictions,
        &config.extra_ignore_alarms,
        d,
    );
    let templates = Templates {
        options: &apply,
        site,
        durations: d,
    };
    let plan = |stages: Vec<PlannedStage>| Plan {
        kind: SwUpdateKind::SwUpgrade,
        build_stage: templates.build_stage(),
        stages,
        alarm_filter: filter.clone(),
    };

    let release_id = match (options.release(), options.rollback) {
        (None, false) => return Err(BuildFailure::new("Release or rollback must be set")),
        (Some(_), true) => {
            return Err(BuildFailure::new("Cannot set both release and rollback"));
        }
        (None, true) => return Err(BuildFailure::new("Rollback not supported yet.")),
        (Some(r), false) => r,
    };
    let unavailable = || BuildFailure::new("Software release does not exist or is unavailable");
    let release = facts
        .release
        .as_ref()
        .filter(|r| r.release_id == release_id)
        .ok_or_else(unavailable)?;
    let deploy = match &facts.deploy {
        Some(deploy) if deploy.to_release != release_id => {
            return Err(BuildFailure::new(format!(
                "a deploy of release {} is {}; complete or delete it before deploying {release_id}",
                deploy.to_release, deploy.state
            )));
        }
        other => other.as_ref(),
    };
    match deploy.map(|d| d.state) {
        Some(DeployState::Completed) if options.delete => {
            return Ok(plan(vec![templates.deploy_delete_stage()]));
        }
        Some(DeployState::Completed) => {
            return Err(BuildFailure::new(
                "Software deployment is already complete, pending delete",
            ));
        }
        Some(DeployState::Start) => {
            return Err(BuildFailure::new(format!(
                "the deploy of {release_id} is starting; create the strategy once it is start-done"
            )));
        }
        Some(state) if !state.is_started() => {
            return Err(BuildFailure::new(format!(
                "the deploy of {release_id} is {state}; delete it (software deploy delete) first"
            )));
        }
        Some(_) => {
            if release.state != ReleaseState::Deploying {
                return Err(unavailable());
            }
        }
        None => match release.state {
            ReleaseState::Available => {}
            ReleaseState::Deployed | ReleaseState::Committed => {
                return Err(BuildFailure::new(
                    "Software release is already deployed or committed.",
                ));
            }
            _ => return Err(unavailable()),
        },
    }
    if !filter.blocking(&site.alarms, now).is_empty() {
        return Err(BuildFailure::new("active alarms present"));
    }
    let hosts = sorted_hosts(site);
    all_in_service(&hosts)?;

    let reboot = release.reboot_required;
    let duplex_major = release.major && !site.single_controller;
    let mut stages = Vec::new();
    if deploy.is_none() {
        // A major release starts on controller-0: take activity away from controller-1.
        let swact_from = site.host(CONTROLLER_1).filter(|_| duplex_major);
        stages.push(templates.upgrade_start_stage(swact_from));
    }

    let pending: Vec<&UpdateHost> = hosts
        .iter()
        .copied()
        .filter(|h| !h.patch_current || h.is_locked())
        .collect();
    // For a major release on a duplex site controller-0 is active once the start stage has
    // run, so controller-1 goes first and controller-0 last.
    let controllers: Vec<UpdateHost> = pending
        .iter()
        .filter(|h| h.is_controller())
        .map(|h| {
            let mut h = (*h).clone();
            if duplex_major && site.host(CONTROLLER_1).is_some() {
                h.active_controller = h.hostname == CONTROLLER_0;
            }
            h
        })
        .collect();
    let mut controllers: Vec<&UpdateHost> = controllers.iter().collect();
    if duplex_major {
        controllers.sort_by_key(|h| h.hostname == CONTROLLER_0);
    }
    let storage: Vec<&UpdateHost> = pending.iter().copied().filter(|h| h.is_storage()).collect();
    let workers: Vec<&UpdateHost> = pending
        .iter()
        .copied()
        .filter(|h| h.is_worker() && !h.is_controller())
        .collect();
    if !controllers.is_empty() {
        if controllers.iter().any(|h| h.is_aio()) {
            stages.extend(templates.worker_stages(&controllers, reboot)?);
        } else {
            stages.extend(templates.controller_stages(&controllers, reboot)?);
        }
    }
    if !storage.is_empty() {
        stages.extend(templates.storage_stages(&storage, reboot)?);
    }
    if !workers.is_empty() {
        stages.extend(templates.worker_stages(&workers, reboot)?);
    }

    let activated = deploy.is_some_and(|d| d.state.is_activated());
    stages.push(templates.upgrade_complete_stage(reboot, activated));
    if options.delete {
        stages.push(templates.deploy_delete_stage());
    }
    if stages.is_empty() {
        return Err(BuildFailure::new(
            "no sw-deployments patches need to be applied",
        ));
    }
    Ok(plan(stages))
}

#[cfg(test)]
mod tests {
    use super::super::inventory::fixtures::*;
    use super::*;
    use crate::host::Personality::{self, *};
    use crate::sw_update::options::{ApplyType, InstanceAction};
    use crate::sw_update::stages::{StageName, StepName};
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn alarm(id: &str, mgmt_affecting: bool) -> ActiveAlarm {
        ActiveAlarm {
            alarm_id: id.into(),
            mgmt_affecting,
            raised_at: None,
        }
    }

    fn duplex() -> SiteInventory {
        site(vec![
            reboot(active(host("controller-0", Controller))),
            reboot(host("controller-1", Controller)),
            reboot(host("storage-0", Storage)),
            reboot(host("storage-1", Storage)),
            reboot(with_instances(host("worker-0", Worker), &["vm0"])),
            host("worker-1", Worker),
        ])
    }

    fn patch(site: &SiteInventory, options: &SwPatchOptions) -> Result<Plan, BuildFailure> {
        build_sw_patch(options, site, 1, &BuildConfig::default(), now())
    }

    fn reason(r: Result<Plan, BuildFailure>) -> String {
        r.unwrap_err().reason
    }

    #[test]
    fn checks_come_in_the_originals_order_with_its_reasons() {
        let o = SwPatchOptions::default();
        let cfg = BuildConfig::default();
        // 1. No patches, even with everything else wrong too.
        let mut s = duplex();
        s.alarms.push(alarm("100.101", true));
        s.hosts[0].installing = true;
        assert_eq!(
            reason(build_sw_patch(&o, &s, 0, &cfg, now())),
            "no software patches found"
        );
        // 2. Alarms before host states.
        s.hosts[1] = locked(s.hosts[1].clone(), false);
        assert_eq!(reason(patch(&s, &o)), "active alarms present");
        // 3. Host states.
        s.alarms.clear();
        assert_eq!(
            reason(patch(&s, &o)),
            "all controller hosts must be unlocked-enabled-available"
        );
        let mut s = duplex();
        s.hosts[5].operational = crate::host::Operational::Disabled;
        assert_eq!(
            reason(patch(&s, &o)),
            "all worker hosts must be unlocked-enabled-available, locked-disabled-online or \
             locked-disabled-offline"
        );
        // Locked workers, online or offline, are fine.
        let mut s = duplex();
        s.hosts[5] = locked(s.hosts[5].clone(), true);
        assert!(patch(&s, &o).is_ok());
        // 4. Inventory mismatch, before 5. installing.
        let mut s = duplex();
        s.software_hosts_not_in_inventory.push("ghost".into());
        s.hosts[0].installing = true;
        assert_eq!(reason(patch(&s, &o)), "host inventory mismatch detected");
        s.software_hosts_not_in_inventory.clear();
        assert_eq!(
            reason(patch(&s, &o)),
            "at least one host is in pending patch current state"
        );
        // 8. Nothing to do.
        let s = site(duplex().hosts.into_iter().map(current).collect());
        assert_eq!(
            reason(patch(&s, &o)),
            "no software patches need to be applied"
        );
        // Template failures surface as build reasons.
        let parallel = SwPatchOptions {
            controller_apply_type: ApplyType::Parallel,
            ..o
        };
        assert_eq!(
            reason(patch(&duplex(), &parallel)),
            "parallel apply type not allowed for controllers"
        );
    }

    #[test]
    fn strict_relaxed_permissive_and_the_ignore_list() {
        let strict = SwPatchOptions::default();
        let relaxed = SwPatchOptions {
            alarm_restrictions: AlarmRestrictions::Relaxed,
            ..strict.clone()
        };
        let mut s = duplex();
        // Ignored whatever the restrictions.
        s.alarms = SW_PATCH_IGNORE_ALARMS
            .iter()
            .map(|id| alarm(id, true))
            .collect();
        assert!(patch(&s, &strict).is_ok());
        // Not management-affecting: blocks under strict only.
        s.alarms.push(alarm("100.101", false));
        assert_eq!(reason(patch(&s, &strict)), "active alarms present");
        assert!(patch(&s, &relaxed).is_ok());
        // Management-affecting: blocks both, unless configured as ignored.
        s.alarms.push(alarm("400.001", true));
        assert_eq!(reason(patch(&s, &relaxed)), "active alarms present");
        let cfg = BuildConfig {
            extra_ignore_alarms: vec!["400.001".into(), "100.101".into()],
            ..BuildConfig::default()
        };
        assert!(build_sw_patch(&strict, &s, 1, &cfg, now()).is_ok());
        // Permissive (sw-upgrade) ignores everything.
        let f = AlarmFilter::new(
            SwUpdateKind::SwUpgrade,
            AlarmRestrictions::Permissive,
            &[],
            &StepDurations::default(),
        );
        assert!(f.blocking(&s.alarms, now()).is_empty());
    }

    #[test]
    fn a_cert_manager_alarm_blocks_until_stale() {
        let f = AlarmFilter::new(
            SwUpdateKind::SwPatch,
            AlarmRestrictions::Strict,
            &[],
            &StepDurations::default(),
        );
        let mut a = alarm("750.006", true);
        assert!(f.blocks(&a, now()), "unknown age blocks");
        a.raised_at = Some(now() - jiff::SignedDuration::from_secs(1800));
        assert!(f.blocks(&a, now()));
        a.raised_at = Some(now() - jiff::SignedDuration::from_secs(1801));
        assert!(!f.blocks(&a, now()));
    }

    #[test]
    fn the_apply_phase_alarm_reason_lists_the_ids() {
        let (a, b) = (alarm("100.101", true), alarm("200.004", false));
        assert_eq!(
            alarms_present_reason(&[&a, &b]),
            "alarms ['100.101', '200.004'] from platform are present"
        );
    }

    #[test]
    fn stages_follow_the_creation_order() {
        let mut s = duplex();
        s.hosts[1].requires_reboot = false; // controller-1 in service
        s.hosts[2].requires_reboot = false; // storage-0 in service
        let plan = patch(&s, &SwPatchOptions::default()).unwrap();
        let got: Vec<(&str, Vec<&str>)> = plan
            .stages
            .iter()
            .map(|st| (st.name.as_str(), st.updated_hosts()))
            .collect();
        assert_eq!(
            got,
            [
                ("sw-patch-controllers", vec!["controller-1"]),
                ("sw-patch-controllers", vec!["controller-0"]),
                ("sw-patch-storage-hosts", vec!["storage-0"]),
                ("sw-patch-storage-hosts", vec!["storage-1"]),
                ("sw-patch-worker-hosts", vec!["worker-1"]),
                ("sw-patch-worker-hosts", vec!["worker-0"]),
            ]
        );
        assert_eq!(
            plan.build_stage.step_names(),
            ["query-alarms", "query-sw-patches", "query-sw-patch-hosts"]
        );
    }

    #[test]
    fn aio_dx_example_of_the_spec() {
        // test_sw_patch_strategy.py: AIO-DX, serial, stop-start, reboot-required patch.
        let s = site(vec![
            reboot(active(with_instances(
                host("controller-0", ControllerWorker),
                &["vm0"],
            ))),
            reboot(with_instances(
                host("controller-1", ControllerWorker),
                &["vm1"],
            )),
        ]);
        assert!(!s.single_controller);
        let plan = patch(&s, &SwPatchOptions::default()).unwrap();
        assert_eq!(plan.stages.len(), 2);
        for (stage, (c, vm)) in plan
            .stages
            .iter()
            .zip([("controller-0", "vm0"), ("controller-1", "vm1")])
        {
            assert_eq!(stage.name, StageName::SwPatchWorkerHosts);
            let steps: Vec<(&str, Vec<&str>, u64)> = stage
                .steps
                .iter()
                .map(|s| {
                    (
                        s.name.as_str(),
                        s.entity_names.iter().map(String::as_str).collect(),
                        s.timeout.as_secs(),
                    )
                })
                .collect();
            assert_eq!(
                steps,
                [
                    ("query-alarms", vec![], 60),
                    ("swact-hosts", vec![c], 900),
                    ("stop-instances", vec![vm], 900),
                    ("lock-hosts", vec![c], 900),
                    ("sw-patch-hosts", vec![c], 1800),
                    ("system-stabilize", vec![], 15),
                    ("unlock-hosts", vec![c], 1800),
                    ("start-instances", vec![vm], 900),
                    ("wait-alarms-clear", vec![], 2400),
                ]
            );
        }
        // AIO-SX: the same without swact-hosts.
        let sx = site(vec![reboot(active(with_instances(
            host("controller-0", ControllerWorker),
            &["vm0"],
        )))]);
        let plan = patch(&sx, &SwPatchOptions::default()).unwrap();
        assert_eq!(
            plan.stages[0].step_names(),
            [
                "query-alarms",
                "stop-instances",
                "lock-hosts",
                "sw-patch-hosts",
                "system-stabilize",
                "unlock-hosts",
                "start-instances",
                "wait-alarms-clear"
            ]
        );
    }

    #[test]
    fn offline_workers_are_left_out() {
        let mut s = duplex();
        s.hosts[5] = reboot(locked(s.hosts[5].clone(), true));
        let plan = patch(&s, &SwPatchOptions::default()).unwrap();
        assert!(
            plan.stages
                .iter()
                .all(|st| !st.updated_hosts().contains(&"worker-1"))
        );
    }

    fn upgrade(release: &str) -> SwUpgradeOptions {
        SwUpgradeOptions {
            release: vec![release.into()],
            ..SwUpgradeOptions::default()
        }
    }

    fn facts(state: ReleaseState, deploy: Option<DeployState>) -> UpgradeFacts {
        UpgradeFacts {
            release: Some(ReleaseFacts {
                release_id: "24.09".into(),
                state,
                reboot_required: true,
                major: false,
            }),
            deploy: deploy.map(|state| DeployFacts {
                to_release: "24.09".into(),
                state,
            }),
        }
    }

    fn deploy_build(
        o: &SwUpgradeOptions,
        s: &SiteInventory,
        f: &UpgradeFacts,
    ) -> Result<Plan, BuildFailure> {
        build_sw_upgrade(o, s, f, &BuildConfig::default(), now())
    }

    #[test]
    fn sw_upgrade_build_errors() {
        let s = duplex();
        let f = facts(ReleaseState::Available, None);
        let none = SwUpgradeOptions::default();
        assert_eq!(
            reason(deploy_build(&none, &s, &f)),
            "Release or rollback must be set"
        );
        let both = SwUpgradeOptions {
            rollback: true,
            ..upgrade("24.09")
        };
        assert_eq!(
            reason(deploy_build(&both, &s, &f)),
            "Cannot set both release and rollback"
        );
        let o = upgrade("24.09");
        for bad in [
            UpgradeFacts::default(),
            facts(ReleaseState::Unavailable, None),
            facts(ReleaseState::Uploading, None),
        ] {
            assert_eq!(
                reason(deploy_build(&o, &s, &bad)),
                "Software release does not exist or is unavailable"
            );
        }
        assert_eq!(
            reason(deploy_build(&upgrade("25.03"), &s, &f)),
            "Software release does not exist or is unavailable"
        );
        let done = facts(ReleaseState::Deployed, Some(DeployState::Completed));
        assert_eq!(
            reason(deploy_build(&o, &s, &done)),
            "Software deployment is already complete, pending delete"
        );
        let with_delete = SwUpgradeOptions {
            delete: true,
            ..o.clone()
        };
        let plan = deploy_build(&with_delete, &s, &done).unwrap();
        assert_eq!(plan.stages.len(), 1);
        assert_eq!(plan.stages[0].step_names(), ["deploy-delete"]);
        let mut alarmed = s.clone();
        alarmed.alarms.push(alarm("100.101", true));
        assert_eq!(
            reason(deploy_build(&o, &alarmed, &f)),
            "active alarms present"
        );
        let mut locked_worker = s.clone();
        locked_worker.hosts[5] = locked(locked_worker.hosts[5].clone(), false);
        assert_eq!(
            reason(deploy_build(&o, &locked_worker, &f)),
            "all worker hosts must be unlocked-enabled-available"
        );
    }

    #[test]
    fn sw_upgrade_stages_start_hosts_complete_delete() {
        let s = duplex();
        let o = SwUpgradeOptions {
            delete: true,
            ..upgrade("24.09")
        };
        let plan = deploy_build(&o, &s, &facts(ReleaseState::Available, None)).unwrap();
        let names: Vec<&str> = plan.stages.iter().map(|st| st.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sw-upgrade-start",
                "sw-upgrade-controllers",
                "sw-upgrade-controllers",
                "sw-upgrade-storage-hosts",
                "sw-upgrade-storage-hosts",
                "sw-upgrade-worker-hosts",
                "sw-upgrade-worker-hosts",
                "sw-upgrade-complete",
                "sw-deploy-delete"
            ]
        );
        assert_eq!(
            plan.stages[0].step_names(),
            ["start-upgrade", "query-alarms"]
        );
        assert_eq!(plan.stages[2].updated_hosts(), ["controller-0"]);
        assert!(plan.stages[1].step_names().contains(&"upgrade-hosts"));
        assert_eq!(
            plan.stages[7].step_names(),
            [
                "query-alarms",
                "activate-upgrade",
                "complete-upgrade",
                "query-alarms"
            ]
        );
        assert_eq!(
            plan.build_stage.step_names(),
            ["query-alarms", "query-upgrade", "sw-deploy-precheck"]
        );

        // Major release on a duplex: swact away from controller-1 at start, controller-1
        // first even when it is the active one now.
        let mut s2 = duplex();
        s2.hosts[0].active_controller = false;
        s2.hosts[1].active_controller = true;
        let mut f = facts(ReleaseState::Available, None);
        f.release.as_mut().unwrap().major = true;
        let plan = deploy_build(&upgrade("24.09"), &s2, &f).unwrap();
        assert_eq!(
            plan.stages[0].step_names(),
            ["swact-hosts", "start-upgrade", "query-alarms"]
        );
        assert_eq!(plan.stages[0].steps[0].entity_names, ["controller-1"]);
        assert_eq!(plan.stages[1].updated_hosts(), ["controller-1"]);
        assert_eq!(plan.stages[2].updated_hosts(), ["controller-0"]);

        // Resumed: the deploy has started and some hosts are deployed.
        let mut s3 = duplex();
        s3.hosts[1].patch_current = true;
        let mut f = facts(ReleaseState::Deploying, Some(DeployState::Host));
        f.release.as_mut().unwrap().reboot_required = false;
        let plan = deploy_build(&upgrade("24.09"), &s3, &f).unwrap();
        assert_eq!(plan.stages[0].name, StageName::SwUpgradeControllers);
        assert_eq!(plan.stages[0].updated_hosts(), ["controller-0"]);
        assert_eq!(
            plan.stages.last().unwrap().step_names()[0],
            "system-stabilize"
        );
        // After activation only complete is left to do in the last stage.
        let f = facts(ReleaseState::Deploying, Some(DeployState::ActivateDone));
        let plan = deploy_build(&upgrade("24.09"), &s3, &f).unwrap();
        assert!(
            !plan
                .stages
                .last()
                .unwrap()
                .step_names()
                .contains(&"activate-upgrade")
        );
        // Another release's deploy is in the way.
        let mut other = facts(ReleaseState::Available, Some(DeployState::Host));
        other.deploy.as_mut().unwrap().to_release = "24.03".into();
        assert!(reason(deploy_build(&upgrade("24.09"), &s3, &other)).contains("24.03"));
    }

    #[test]
    fn sw_upgrade_aio_controllers_use_the_worker_template() {
        let s = site(vec![
            active(host("controller-0", ControllerWorker)),
            host("controller-1", ControllerWorker),
        ]);
        let plan =
            deploy_build(&upgrade("24.09"), &s, &facts(ReleaseState::Available, None)).unwrap();
        assert_eq!(plan.stages[1].name, StageName::SwUpgradeWorkerHosts);
        assert!(plan.stages[1].step_names().contains(&"swact-hosts"));
    }

    // Random sites for the invariants.
    #[derive(Debug, Clone)]
    struct Gen {
        aio: bool,
        controllers: usize,
        storage: Vec<(bool, bool, u8)>,
        workers: Vec<(bool, bool, u8, u8)>,
        reboot_controllers: [bool; 2],
        current_controllers: [bool; 2],
        active: usize,
        worker_parallel: bool,
        storage_parallel: bool,
        migrate: bool,
        max: u32,
    }

    fn arb_gen() -> impl Strategy<Value = Gen> {
        (
            (
                any::<bool>(),
                1usize..=2,
                any::<[bool; 2]>(),
                any::<[bool; 2]>(),
                0usize..2,
            ),
            prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..3), 0..5),
            prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..3, 0u8..3), 0..14),
            (any::<bool>(), any::<bool>(), any::<bool>(), 2u32..6),
        )
            .prop_map(
                |((aio, controllers, rc, cc, active), storage, workers, (wp, sp, mig, max))| Gen {
                    aio,
                    controllers,
                    storage,
                    workers,
                    reboot_controllers: rc,
                    current_controllers: cc,
                    active: active.min(controllers - 1),
                    worker_parallel: wp,
                    storage_parallel: sp,
                    migrate: mig,
                    max,
                },
            )
    }

    fn realize(g: &Gen) -> (SiteInventory, SwPatchOptions) {
        let personality = if g.aio { ControllerWorker } else { Controller };
        let mut hosts = Vec::new();
        for i in 0..g.controllers {
            let mut h = host(&format!("controller-{i}"), personality);
            h.requires_reboot = g.reboot_controllers[i];
            h.patch_current = g.current_controllers[i];
            h.active_controller = i == g.active;
            if g.aio {
                h.instances = vec![format!("vm-c{i}")];
            }
            hosts.push(h);
        }
        for (i, (rr, cur, group)) in g.storage.iter().enumerate() {
            let mut h = host(&format!("storage-{i}"), Storage);
            h.requires_reboot = *rr;
            h.patch_current = *cur;
            h.replication_group = Some(format!("g{group}"));
            hosts.push(h);
        }
        for (i, (rr, cur, instances, state)) in g.workers.iter().enumerate() {
            let mut h = host(&format!("worker-{i:02}"), Worker);
            h.requires_reboot = *rr;
            h.patch_current = *cur;
            h.instances = (0..*instances).map(|n| format!("vm-{i}-{n}")).collect();
            match state {
                1 => h = locked(h, false),
                2 => h = locked(h, true),
                _ => {}
            }
            hosts.push(h);
        }
        let kind = |parallel: bool| {
            if parallel {
                ApplyType::Parallel
            } else {
                ApplyType::Serial
            }
        };
        let options = SwPatchOptions {
            storage_apply_type: kind(g.storage_parallel),
            worker_apply_type: kind(g.worker_parallel),
            max_parallel_worker_hosts: g.max,
            default_instance_action: if g.migrate {
                InstanceAction::Migrate
            } else {
                InstanceAction::StopStart
            },
            ..SwPatchOptions::default()
        };
        (site(hosts), options)
    }

    fn stage_for(p: Personality) -> StageName {
        match p {
            Controller => StageName::SwPatchControllers,
            Storage => StageName::SwPatchStorageHosts,
            Worker | ControllerWorker => StageName::SwPatchWorkerHosts,
        }
    }

    proptest! {
        #[test]
        fn built_plans_keep_the_invariants(g in arb_gen()) {
            let (site, options) = realize(&g);
            let Ok(plan) = patch(&site, &options) else { return Ok(()); };
            // Every host needing an install (offline workers aside) is updated in exactly
            // one stage, of its personality.
            for h in &site.hosts {
                let stages: Vec<&PlannedStage> = plan
                    .stages
                    .iter()
                    .filter(|st| st.updated_hosts().contains(&h.hostname.as_str()))
                    .collect();
                let expected = usize::from(!(h.patch_current || h.is_offline() && h.is_worker()));
                prop_assert_eq!(stages.len(), expected, "{}", h.hostname);
                for st in stages {
                    prop_assert_eq!(st.name, stage_for(h.personality));
                }
            }
            for st in &plan.stages {
                // Workers never more than the maximum per stage; controllers and storage
                // alone unless storage is parallel.
                let n = st.updated_hosts().len();
                match st.name {
                    StageName::SwPatchWorkerHosts => prop_assert!(n as u32 <= options.max_parallel_worker_hosts),
                    StageName::SwPatchControllers => prop_assert_eq!(n, 1),
                    _ => {}
                }
                // Every host a stage locks it unlocks (or a locked host it reboots), after
                // the action, in the same stage.
                let pos = |name: StepName| st.steps.iter().position(|s| s.name == name);
                if let Some(lock) = pos(StepName::LockHosts) {
                    let unlock = pos(StepName::UnlockHosts);
                    prop_assert!(unlock.is_some_and(|u| u > lock));
                    prop_assert_eq!(
                        &st.steps[lock].entity_names,
                        &st.steps[unlock.unwrap()].entity_names
                    );
                }
                // A host updated in service is never locked.
                for step in st.steps.iter().filter(|s| s.name == StepName::LockHosts) {
                    for name in &step.entity_names {
                        prop_assert!(site.host(name).is_some_and(|h| h.requires_reboot));
                    }
                }
                if let Some(stop) = pos(StepName::StopInstances) {
                    let start = pos(StepName::StartInstances);
                    prop_assert!(start.is_some_and(|s| s > stop));
                }
            }
            // Among controller stages of one template, the active controller comes last.
            for reboot in [false, true] {
                let updated: Vec<&str> = plan
                    .stages
                    .iter()
                    .filter(|st| st.name == StageName::SwPatchControllers)
                    .filter(|st| st.steps.iter().any(|s| s.name == StepName::LockHosts) == reboot)
                    .flat_map(|st| st.updated_hosts())
                    .collect();
                if let Some(pos) = updated
                    .iter()
                    .position(|n| site.host(n).is_some_and(|h| h.active_controller))
                {
                    prop_assert_eq!(pos, updated.len() - 1);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn sw_upgrade_plans_cover_every_host_once(g in arb_gen(), reboot in any::<bool>(), delete in any::<bool>()) {
            let (mut site, patch_options) = realize(&g);
            // sw-upgrade needs every host in service.
            for h in &mut site.hosts {
                h.administrative = crate::host::Administrative::Unlocked;
                h.operational = crate::host::Operational::Enabled;
                h.availability = crate::host::Availability::Available;
            }
            let options = SwUpgradeOptions {
                storage_apply_type: patch_options.storage_apply_type,
                worker_apply_type: patch_options.worker_apply_type,
                max_parallel_worker_hosts: patch_options.max_parallel_worker_hosts.min(10),
                default_instance_action: patch_options.default_instance_action,
                release: vec!["24.09".into()],
                delete,
                ..SwUpgradeOptions::default()
            };
            let mut f = facts(ReleaseState::Available, None);
            f.release.as_mut().unwrap().reboot_required = reboot;
            let Ok(plan) = deploy_build(&options, &site, &f) else { return Ok(()); };
            prop_assert_eq!(plan.stages[0].name, StageName::SwUpgradeStart);
            let tail: Vec<StageName> = plan.stages.iter().rev().take(1 + usize::from(delete)).map(|s| s.name).collect();
            if delete {
                prop_assert_eq!(tail, vec![StageName::SwDeployDelete, StageName::SwUpgradeComplete]);
            } else {
                prop_assert_eq!(tail, vec![StageName::SwUpgradeComplete]);
            }
            for h in &site.hosts {
                let n = plan.stages.iter().filter(|st| st.updated_hosts().contains(&h.hostname.as_str())).count();
                prop_assert_eq!(n, usize::from(!h.patch_current), "{}", h.hostname);
            }
            for st in &plan.stages {
                if !reboot {
                    prop_assert!(st.steps.iter().all(|s| s.name != StepName::LockHosts));
                }
                if st.name == StageName::SwUpgradeWorkerHosts {
                    prop_assert!(st.updated_hosts().len() as u32 <= options.max_parallel_worker_hosts);
                }
            }
        }
    }

    #[test]
    fn scaled_durations_reach_every_step() {
        let cfg = BuildConfig {
            durations: StepDurations::scaled(0.001).unwrap(),
            ..BuildConfig::default()
        };
        let plan = build_sw_patch(&SwPatchOptions::default(), &duplex(), 1, &cfg, now()).unwrap();
        for st in plan.stages.iter().chain([&plan.build_stage]) {
            for step in &st.steps {
                prop_assert_ms(step.timeout);
            }
        }
        fn prop_assert_ms(t: Duration) {
            assert!(t <= Duration::from_millis(2400) && !t.is_zero(), "{t:?}");
        }
    }
}
