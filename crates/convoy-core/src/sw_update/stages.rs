//! The stage templates (spec §4.5, §4.7): which steps a stage of controllers, storage hosts or
//! workers runs, on which hosts, with which timeouts, and how hosts are grouped into stages.
//!
//! Instances: Convoy has no hypervisor; a host's instances are whatever its `InstanceAction`
//! hook manages and reports by name ([`UpdateHost::instances`]). `stop-instances` and
//! `start-instances` act on instances as the original does (entity type `instances`, the
//! instance names), and carry in [`StepDetail::Instances`] the hosts whose hook runs.
//! `migrate-instances-from-host`, `disable-host-services` and `enable-host-services` act on
//! hosts (entity type `hosts`). A host that reports no instance gets no instance step, as a
//! host without instances in the original; "OpenStack compute hosts" are the hosts that report
//! instances, and Convoy has no instance groups or host aggregates, so parallel workers are
//! packed only by `max-parallel-worker-hosts`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::build::BuildFailure;
use super::durations::{StepDurations, UPGRADE_HOSTS_RETRIES};
use super::inventory::{SiteInventory, UpdateHost};
use super::options::{
    ApplyOptions, ApplyType, InstanceAction, PARALLEL_CONTROLLERS_REASON, SwUpdateKind,
};
use crate::names::named_enum;

/// Stage names, the original's strings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageName {
    SwPatchQuery,
    SwPatchControllers,
    SwPatchStorageHosts,
    SwPatchSwiftHosts,
    SwPatchWorkerHosts,
    SwUpgradeQuery,
    SwUpgradeStart,
    SwUpgradeControllers,
    SwUpgradeStorageHosts,
    SwUpgradeWorkerHosts,
    SwUpgradeComplete,
    SwDeployDelete,
}

named_enum!(StageName, field = "stage-name", {
    SwPatchQuery => "sw-patch-query",
    SwPatchControllers => "sw-patch-controllers",
    SwPatchStorageHosts => "sw-patch-storage-hosts",
    SwPatchSwiftHosts => "sw-patch-swift-hosts",
    SwPatchWorkerHosts => "sw-patch-worker-hosts",
    SwUpgradeQuery => "sw-upgrade-query",
    SwUpgradeStart => "sw-upgrade-start",
    SwUpgradeControllers => "sw-upgrade-controllers",
    SwUpgradeStorageHosts => "sw-upgrade-storage-hosts",
    SwUpgradeWorkerHosts => "sw-upgrade-worker-hosts",
    SwUpgradeComplete => "sw-upgrade-complete",
    SwDeployDelete => "sw-deploy-delete",
});

/// Step names, the original's strings (spec §4.6).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepName {
    QueryAlarms,
    QuerySwPatches,
    QuerySwPatchHosts,
    SwactHosts,
    LockHosts,
    UnlockHosts,
    RebootHosts,
    SwPatchHosts,
    UpgradeHosts,
    SystemStabilize,
    WaitAlarmsClear,
    WaitDataSync,
    StopInstances,
    StartInstances,
    MigrateInstancesFromHost,
    DisableHostServices,
    EnableHostServices,
    SwDeployPrecheck,
    QueryUpgrade,
    StartUpgrade,
    ActivateUpgrade,
    CompleteUpgrade,
    DeployDelete,
}

named_enum!(StepName, field = "step-name", {
    QueryAlarms => "query-alarms",
    QuerySwPatches => "query-sw-patches",
    QuerySwPatchHosts => "query-sw-patch-hosts",
    SwactHosts => "swact-hosts",
    LockHosts => "lock-hosts",
    UnlockHosts => "unlock-hosts",
    RebootHosts => "reboot-hosts",
    SwPatchHosts => "sw-patch-hosts",
    UpgradeHosts => "upgrade-hosts",
    SystemStabilize => "system-stabilize",
    WaitAlarmsClear => "wait-alarms-clear",
    WaitDataSync => "wait-data-sync",
    StopInstances => "stop-instances",
    StartInstances => "start-instances",
    MigrateInstancesFromHost => "migrate-instances-from-host",
    DisableHostServices => "disable-host-services",
    EnableHostServices => "enable-host-services",
    SwDeployPrecheck => "sw-deploy-precheck",
    QueryUpgrade => "query-upgrade",
    StartUpgrade => "start-upgrade",
    ActivateUpgrade => "activate-upgrade",
    CompleteUpgrade => "complete-upgrade",
    DeployDelete => "deploy-delete",
});

impl StepName {
    /// The steps a host's `InstanceAction` hook performs: stop, start or migrate its
    /// instances (the verb it is given).
    pub fn instance_verb(self) -> Option<&'static str> {
        match self {
            StepName::StopInstances => Some("stop"),
            StepName::StartInstances => Some("start"),
            StepName::MigrateInstancesFromHost => Some("migrate"),
            _ => None,
        }
    }

    pub fn is_instance_action(self) -> bool {
        self.instance_verb().is_some()
    }

    /// The step's timeout when the template does not give one (spec §4.6), scaled. The waits
    /// (`system-stabilize`, `wait-alarms-clear`, `wait-data-sync`) take their default
    /// parameter.
    pub fn default_timeout(self, d: &StepDurations) -> Duration {
        use StepName::*;
        d.get(match self {
            QueryAlarms => d.query_alarms_timeout_seconds,
            QuerySwPatches => d.query_sw_patches_timeout_seconds,
            QuerySwPatchHosts => d.query_sw_patch_hosts_timeout_seconds,
            SwactHosts => d.swact_hosts_timeout_seconds,
            LockHosts => d.lock_hosts_timeout_seconds,
            UnlockHosts => d.unlock_hosts_timeout_seconds,
            RebootHosts => d.reboot_hosts_timeout_seconds,
            SwPatchHosts => d.sw_patch_hosts_timeout_seconds,
            UpgradeHosts => d.upgrade_hosts_timeout_seconds,
            SystemStabilize => d.system_stabilize_seconds,
            WaitAlarmsClear => d.wait_alarms_clear_default_seconds,
            WaitDataSync => d.wait_data_sync_seconds,
            StopInstances => d.stop_instances_timeout_seconds,
            StartInstances => d.start_instances_timeout_seconds,
            MigrateInstancesFromHost => d.migrate_instances_timeout_seconds,
            DisableHostServices => d.disable_host_services_timeout_seconds,
            EnableHostServices => d.enable_host_services_timeout_seconds,
            SwDeployPrecheck => d.sw_deploy_precheck_timeout_seconds,
            QueryUpgrade => d.query_upgrade_timeout_seconds,
            StartUpgrade => d.start_upgrade_timeout_seconds,
            ActivateUpgrade => d.activate_upgrade_timeout_seconds,
            CompleteUpgrade => d.complete_upgrade_timeout_seconds,
            DeployDelete => d.deploy_delete_timeout_seconds,
        })
    }

    /// Whether reaching the timeout is the step's success (`system-stabilize` waits out its
    /// time; any other step that times out has `timed-out`).
    pub fn timeout_is_success(self) -> bool {
        self == StepName::SystemStabilize
    }
}

/// What a step acts on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityType {
    #[serde(rename = "")]
    None,
    #[serde(rename = "hosts")]
    Hosts,
    #[serde(rename = "instances")]
    Instances,
}

named_enum!(EntityType, field = "entity-type", {
    None => "",
    Hosts => "hosts",
    Instances => "instances",
});

/// The parameters a step carries besides its entities (the original's step-specific fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum StepDetail {
    None,
    /// `query-alarms`: in the apply phase, blocking alarms fail the step (`fail_on_alarms`);
    /// in the build phase they are only collected. Which alarms block is the plan's
    /// [`super::build::AlarmFilter`].
    QueryAlarms {
        fail_on_alarms: bool,
    },
    /// `lock-hosts`: whether to wait until the hosts are disabled (not for the only
    /// controller of a simplex site, which then waits `min_wait`).
    Lock {
        wait_until_disabled: bool,
        min_wait: Duration,
    },
    /// `wait-alarms-clear` and `wait-data-sync`: the first alarm query comes after
    /// `first_check_after`; the step succeeds once no blocking alarm remains.
    WaitAlarms {
        first_check_after: Duration,
    },
    /// `upgrade-hosts`: retried `retries` times, `delay` apart.
    Retries {
        retries: u32,
        delay: Duration,
    },
    /// Instance steps: the instances, and the hosts whose `InstanceAction` hook acts on them.
    Instances {
        hosts: Vec<String>,
        instances: Vec<String>,
    },
}

/// One step of a stage, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub name: StepName,
    /// Zero means no timeout, except for `system-stabilize`, which waits out its timeout
    /// and succeeds (zero: at once).
    pub timeout: Duration,
    pub entity_type: EntityType,
    pub entity_names: Vec<String>,
    pub detail: StepDetail,
}

impl PlannedStep {
    /// A step with no entity and its default timeout.
    pub fn plain(name: StepName, d: &StepDurations) -> PlannedStep {
        PlannedStep {
            name,
            timeout: name.default_timeout(d),
            entity_type: EntityType::None,
            entity_names: Vec::new(),
            detail: StepDetail::None,
        }
    }

    /// A step on `hosts` with its default timeout.
    pub fn on_hosts(name: StepName, hosts: &[&UpdateHost], d: &StepDurations) -> PlannedStep {
        PlannedStep {
            entity_type: EntityType::Hosts,
            entity_names: names(hosts),
            ..PlannedStep::plain(name, d)
        }
    }

    pub fn query_alarms(fail_on_alarms: bool, d: &StepDurations) -> PlannedStep {
        PlannedStep {
            detail: StepDetail::QueryAlarms { fail_on_alarms },
            ..PlannedStep::plain(StepName::QueryAlarms, d)
        }
    }

    /// `system-stabilize` for `wait`: it succeeds when the time is up.
    pub fn system_stabilize(wait: Duration, d: &StepDurations) -> PlannedStep {
        PlannedStep {
            timeout: wait,
            ..PlannedStep::plain(StepName::SystemStabilize, d)
        }
    }

    pub fn wait_alarms_clear(timeout: Duration, d: &StepDurations) -> PlannedStep {
        PlannedStep {
            timeout,
            detail: StepDetail::WaitAlarms {
                first_check_after: d.wait_alarms_clear_first_query(),
            },
            ..PlannedStep::plain(StepName::WaitAlarmsClear, d)
        }
    }

    pub fn wait_data_sync(timeout: Duration, d: &StepDurations) -> PlannedStep {
        PlannedStep {
            timeout,
            detail: StepDetail::WaitAlarms {
                first_check_after: d.wait_data_sync_first_poll(),
            },
            ..PlannedStep::plain(StepName::WaitDataSync, d)
        }
    }

    pub fn lock_hosts(
        hosts: &[&UpdateHost],
        wait_until_disabled: bool,
        d: &StepDurations,
    ) -> PlannedStep {
        PlannedStep {
            detail: StepDetail::Lock {
                wait_until_disabled,
                min_wait: if wait_until_disabled {
                    Duration::ZERO
                } else {
                    d.simplex_lock_wait()
                },
            },
            ..PlannedStep::on_hosts(StepName::LockHosts, hosts, d)
        }
    }

    /// The host action of the kind: `sw-patch-hosts` or `upgrade-hosts` (with its retries).
    pub fn host_action(
        kind: SwUpdateKind,
        hosts: &[&UpdateHost],
        d: &StepDurations,
    ) -> PlannedStep {
        match kind {
            SwUpdateKind::SwPatch => PlannedStep::on_hosts(StepName::SwPatchHosts, hosts, d),
            SwUpdateKind::SwUpgrade => PlannedStep {
                detail: StepDetail::Retries {
                    retries: UPGRADE_HOSTS_RETRIES,
                    delay: d.upgrade_hosts_retry_delay(),
                },
                ..PlannedStep::on_hosts(StepName::UpgradeHosts, hosts, d)
            },
        }
    }

    /// `stop-instances` or `start-instances` on these hosts' instances.
    pub fn instances(name: StepName, hosts: &[&UpdateHost], d: &StepDurations) -> PlannedStep {
        let instances = instance_names(hosts);
        PlannedStep {
            entity_type: EntityType::Instances,
            entity_names: instances.clone(),
            detail: StepDetail::Instances {
                hosts: names(hosts),
                instances,
            },
            ..PlannedStep::plain(name, d)
        }
    }

    /// `migrate-instances-from-host`, `disable-host-services` or `enable-host-services`:
    /// steps on hosts that also carry the hosts' instances.
    pub fn host_instances(name: StepName, hosts: &[&UpdateHost], d: &StepDurations) -> PlannedStep {
        PlannedStep {
            detail: StepDetail::Instances {
                hosts: names(hosts),
                instances: instance_names(hosts),
            },
            ..PlannedStep::on_hosts(name, hosts, d)
        }
    }
}

/// One stage, as planned: a name (several stages share one) and its steps in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStage {
    pub name: StageName,
    pub steps: Vec<PlannedStep>,
}

impl PlannedStage {
    /// The hosts the stage's host action (`sw-patch-hosts`, `upgrade-hosts`) updates.
    pub fn updated_hosts(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| matches!(s.name, StepName::SwPatchHosts | StepName::UpgradeHosts))
            .flat_map(|s| s.entity_names.iter().map(String::as_str))
            .collect()
    }

    /// The stage's timeout: its steps' timeouts summed plus `margin`
    /// ([`StepDurations::timeout_margin`]), zero when they are all zero.
    pub fn timeout(&self, margin: Duration) -> Duration {
        super::lifecycle::stage_timeout(self.steps.iter().map(|s| s.timeout), margin)
    }

    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name.as_str()).collect()
    }
}

fn names(hosts: &[&UpdateHost]) -> Vec<String> {
    hosts.iter().map(|h| h.hostname.clone()).collect()
}

fn instance_names(hosts: &[&UpdateHost]) -> Vec<String> {
    hosts
        .iter()
        .flat_map(|h| h.instances.iter().cloned())
        .collect()
}

/// What every template reads besides its hosts.
#[derive(Debug, Clone, Copy)]
pub struct Templates<'a> {
    pub options: &'a ApplyOptions,
    pub site: &'a SiteInventory,
    pub durations: &'a StepDurations,
}

impl Templates<'_> {
    fn kind(&self) -> SwUpdateKind {
        self.options.kind
    }

    fn stage_name(&self, sw_patch: StageName, sw_upgrade: StageName) -> StageName {
        match self.kind() {
            SwUpdateKind::SwPatch => sw_patch,
            SwUpdateKind::SwUpgrade => sw_upgrade,
        }
    }

    /// The build phase's one stage: `sw-patch-query` (`query-alarms`, `query-sw-patches`,
    /// `query-sw-patch-hosts`) or `sw-upgrade-query` (`query-alarms`, `query-upgrade`,
    /// `sw-deploy-precheck`). Its `query-alarms` only collects.
    pub fn build_stage(&self) -> PlannedStage {
        let d = self.durations;
        match self.kind() {
            SwUpdateKind::SwPatch => PlannedStage {
                name: StageName::SwPatchQuery,
                steps: vec![
                    PlannedStep::query_alarms(false, d),
                    PlannedStep::plain(StepName::QuerySwPatches, d),
                    PlannedStep::plain(StepName::QuerySwPatchHosts, d),
                ],
            },
            SwUpdateKind::SwUpgrade => PlannedStage {
                name: StageName::SwUpgradeQuery,
                steps: vec![
                    PlannedStep::query_alarms(false, d),
                    PlannedStep::plain(StepName::QueryUpgrade, d),
                    PlannedStep::plain(StepName::SwDeployPrecheck, d),
                ],
            },
        }
    }

    /// `sw-upgrade-start`: `swact-hosts` away from `swact_from` (controller-1, for a major
    /// release on a duplex site), `start-upgrade`, `query-alarms`.
    pub fn upgrade_start_stage(&self, swact_from: Option<&UpdateHost>) -> PlannedStage {
        let d = self.durations;
        let mut steps = Vec::new();
        if let Some(host) = swact_from {
            steps.push(PlannedStep::on_hosts(StepName::SwactHosts, &[host], d));
        }
        steps.push(PlannedStep::plain(StepName::StartUpgrade, d));
        steps.push(PlannedStep::query_alarms(true, d));
        PlannedStage {
            name: StageName::SwUpgradeStart,
            steps,
        }
    }

    /// `sw-upgrade-complete`: `system-stabilize` (15 s) after an in-service deploy,
    /// `query-alarms`, `activate-upgrade` (unless `activated` already), `complete-upgrade`,
    /// `query-alarms`. Its alarm queries collect without failing: the deploy is on every host
    /// by then.
    pub fn upgrade_complete_stage(&self, reboot: bool, activated: bool) -> PlannedStage {
        let d = self.durations;
        let mut steps = Vec::new();
        if !reboot {
            steps.push(PlannedStep::system_stabilize(d.mtce_delay(), d));
        }
        steps.push(PlannedStep::query_alarms(false, d));
        if !activated {
            steps.push(PlannedStep::plain(StepName::ActivateUpgrade, d));
        }
        steps.push(PlannedStep::plain(StepName::CompleteUpgrade, d));
        steps.push(PlannedStep::query_alarms(false, d));
        PlannedStage {
            name: StageName::SwUpgradeComplete,
            steps,
        }
    }

    /// `sw-deploy-delete`: `deploy-delete`, removing the completed deploy record.
    pub fn deploy_delete_stage(&self) -> PlannedStage {
        PlannedStage {
            name: StageName::SwDeployDelete,
            steps: vec![PlannedStep::plain(StepName::DeployDelete, self.durations)],
        }
    }

    /// Controller stages (`controller-apply-type`): serial is one stage per controller that
    /// is not all-in-one (those go through the worker stages), the others in the order given
    /// and the active controller last; parallel fails the build; ignore gives none.
    /// `controllers` may include all-in-one hosts: they count for the checks, as in the
    /// original.
    pub fn controller_stages(
        &self,
        controllers: &[&UpdateHost],
        reboot: bool,
    ) -> Result<Vec<PlannedStage>, BuildFailure> {
        let apply_type = self.options.controller_apply_type;
        if apply_type != ApplyType::Ignore
            && !self.site.single_controller
            && self.site.controller_count() < 2
        {
            return Err(BuildFailure::new(
                "not enough controllers to apply software update",
            ));
        }
        match apply_type {
            ApplyType::Ignore => Ok(Vec::new()),
            ApplyType::Parallel => Err(BuildFailure::new(PARALLEL_CONTROLLERS_REASON)),
            ApplyType::Serial => {
                let (active, standby): (Vec<&UpdateHost>, Vec<&UpdateHost>) = controllers
                    .iter()
                    .copied()
                    .filter(|h| !h.is_aio())
                    .partition(|h| h.active_controller);
                Ok(standby
                    .into_iter()
                    .chain(active)
                    .map(|h| self.controller_stage(h, reboot))
                    .collect())
            }
        }
    }

    fn controller_stage(&self, host: &UpdateHost, reboot: bool) -> PlannedStage {
        let d = self.durations;
        let hosts = [host];
        let mut steps = vec![PlannedStep::query_alarms(true, d)];
        // A site with one (non all-in-one) controller, which StarlingX does not have and
        // Convoy allows: nothing to swact to, and its lock never disables it.
        let single = self.site.single_controller;
        if reboot {
            if !single {
                steps.push(PlannedStep::on_hosts(StepName::SwactHosts, &hosts, d));
            }
            steps.push(PlannedStep::lock_hosts(&hosts, !single, d));
        }
        steps.push(PlannedStep::host_action(self.kind(), &hosts, d));
        if reboot {
            steps.push(PlannedStep::system_stabilize(d.mtce_delay(), d));
            steps.push(PlannedStep::on_hosts(StepName::UnlockHosts, &hosts, d));
            steps.push(PlannedStep::wait_alarms_clear(
                d.wait_alarms_clear_controller(),
                d,
            ));
        } else {
            steps.push(PlannedStep::system_stabilize(d.no_reboot_delay(), d));
        }
        PlannedStage {
            name: self.stage_name(
                StageName::SwPatchControllers,
                StageName::SwUpgradeControllers,
            ),
            steps,
        }
    }

    /// Storage host lists (`storage-apply-type`): serial is one host per list; parallel puts
    /// each host in the first list with no host of its replication group, else a new list.
    /// Needs at least two storage hosts on the site unless ignored.
    pub fn storage_host_lists<'h>(
        &self,
        hosts: &[&'h UpdateHost],
    ) -> Result<Vec<Vec<&'h UpdateHost>>, BuildFailure> {
        let apply_type = self.options.storage_apply_type;
        if apply_type != ApplyType::Ignore && self.site.storage_count() < 2 {
            return Err(BuildFailure::new(
                "not enough storage hosts to apply software updates",
            ));
        }
        Ok(match apply_type {
            ApplyType::Ignore => Vec::new(),
            ApplyType::Serial => hosts.iter().map(|h| vec![*h]).collect(),
            ApplyType::Parallel => {
                let mut lists: Vec<Vec<&UpdateHost>> = Vec::new();
                for host in hosts {
                    let same_group = |peer: &&UpdateHost| {
                        host.replication_group.is_some()
                            && host.replication_group == peer.replication_group
                    };
                    match lists.iter_mut().find(|l| !l.iter().any(same_group)) {
                        Some(list) => list.push(host),
                        None => lists.push(vec![host]),
                    }
                }
                lists
            }
        })
    }

    /// Storage stages: one per host list.
    pub fn storage_stages(
        &self,
        hosts: &[&UpdateHost],
        reboot: bool,
    ) -> Result<Vec<PlannedStage>, BuildFailure> {
        let d = self.durations;
        let name = self.stage_name(
            StageName::SwPatchStorageHosts,
            StageName::SwUpgradeStorageHosts,
        );
        Ok(self
            .storage_host_lists(hosts)?
            .into_iter()
            .map(|list| {
                let mut steps = vec![PlannedStep::query_alarms(true, d)];
                if reboot {
                    steps.push(PlannedStep::lock_hosts(&list, true, d));
                }
                steps.push(PlannedStep::host_action(self.kind(), &list, d));
                if reboot {
                    steps.push(PlannedStep::system_stabilize(d.mtce_delay(), d));
                    steps.push(PlannedStep::on_hosts(StepName::UnlockHosts, &list, d));
                    steps.push(PlannedStep::wait_data_sync(d.wait_data_sync(), d));
                } else {
                    steps.push(PlannedStep::system_stabilize(d.no_reboot_delay(), d));
                }
                PlannedStage { name, steps }
            })
            .collect())
    }

    /// Worker host lists (`worker-apply-type`, spec §4.5): all-in-one controllers each alone
    /// first; serial then puts each worker without instances alone, then each worker with
    /// instances; parallel puts the other workers together when in service (or without
    /// instances), and packs workers with instances into lists of at most
    /// `max-parallel-worker-hosts`; every list longer than that is cut, empty ones dropped.
    pub fn worker_host_lists<'h>(
        &self,
        hosts: &[&'h UpdateHost],
        reboot: bool,
    ) -> Vec<Vec<&'h UpdateHost>> {
        let max = self.options.max_parallel_worker_hosts.max(1) as usize;
        let mut lists: Vec<Vec<&UpdateHost>> = Vec::new();
        match self.options.worker_apply_type {
            ApplyType::Ignore => {}
            ApplyType::Serial => {
                lists.extend(hosts.iter().filter(|h| h.is_controller()).map(|h| vec![*h]));
                let workers = hosts.iter().filter(|h| !h.is_controller());
                lists.extend(
                    workers
                        .clone()
                        .filter(|h| h.instances.is_empty())
                        .map(|h| vec![*h]),
                );
                lists.extend(
                    workers
                        .filter(|h| !h.instances.is_empty())
                        .map(|h| vec![*h]),
                );
            }
            ApplyType::Parallel => {
                let mut controllers = Vec::new();
                let mut together: Vec<&UpdateHost> = Vec::new();
                let mut packed: Vec<Vec<&UpdateHost>> = Vec::new();
                for host in hosts {
                    if host.is_controller() {
                        controllers.push(vec![*host]);
                    } else if !reboot || host.instances.is_empty() {
                        together.push(host);
                    } else {
                        // No instance groups or aggregates in Convoy: the first list with
                        // room takes the host.
                        match packed.iter_mut().find(|l| l.len() < max) {
                            Some(list) => list.push(host),
                            None => packed.push(vec![host]),
                        }
                    }
                }
                lists = controllers;
                lists.push(together);
                lists.extend(packed);
            }
        }
        lists
            .into_iter()
            .filter(|l| !l.is_empty())
            .flat_map(|l| l.chunks(max).map(<[_]>::to_vec).collect::<Vec<_>>())
            .collect()
    }

    /// Worker stages: one per host list, with the reboot template (swact for a lone
    /// controller of a duplex site, instance handling, lock, action, unlock or reboot, start
    /// instances, then wait for alarms or stabilize) or the in-service one.
    pub fn worker_stages(
        &self,
        hosts: &[&UpdateHost],
        reboot: bool,
    ) -> Result<Vec<PlannedStage>, BuildFailure> {
        let options = self.options;
        if options.worker_apply_type != ApplyType::Ignore
            && self.site.single_controller
            && options.default_instance_action != InstanceAction::StopStart
            && hosts.iter().any(|h| h.is_controller())
        {
            return Err(BuildFailure::new(
                "cannot migrate instances in a single controller configuration",
            ));
        }
        Ok(self
            .worker_host_lists(hosts, reboot)
            .into_iter()
            .map(|list| self.worker_stage(&list, reboot))
            .collect())
    }

    fn worker_stage(&self, list: &[&UpdateHost], reboot: bool) -> PlannedStage {
        let d = self.durations;
        let options = self.options;
        let single = self.site.single_controller;
        let with_instances: Vec<&UpdateHost> = list
            .iter()
            .copied()
            .filter(|h| !h.instances.is_empty())
            .collect();
        let mut steps = vec![PlannedStep::query_alarms(true, d)];
        let (to_lock, to_reboot): (Vec<&UpdateHost>, Vec<&UpdateHost>) = if reboot {
            list.iter().copied().partition(|h| !h.is_locked())
        } else {
            (Vec::new(), Vec::new())
        };
        if reboot {
            if list.len() == 1 && list[0].is_controller() && !single {
                steps.push(PlannedStep::on_hosts(StepName::SwactHosts, list, d));
            }
            match options.default_instance_action {
                InstanceAction::Migrate if !with_instances.is_empty() => {
                    if options.worker_apply_type == ApplyType::Parallel {
                        steps.push(PlannedStep::host_instances(
                            StepName::DisableHostServices,
                            &with_instances,
                            d,
                        ));
                    }
                    steps.push(PlannedStep::host_instances(
                        StepName::MigrateInstancesFromHost,
                        &with_instances,
                        d,
                    ));
                }
                InstanceAction::StopStart if !with_instances.is_empty() => {
                    steps.push(PlannedStep::instances(
                        StepName::StopInstances,
                        &with_instances,
                        d,
                    ));
                }
                _ => {}
            }
            if !to_lock.is_empty() {
                // The only controller of a simplex site never goes disabled when locked.
                let wait_until_disabled =
                    !(to_lock.len() == 1 && to_lock[0].is_controller() && single);
                steps.push(PlannedStep::lock_hosts(&to_lock, wait_until_disabled, d));
            }
        }
        steps.push(PlannedStep::host_action(options.kind, list, d));
        if reboot {
            steps.push(PlannedStep::system_stabilize(d.mtce_delay(), d));
            if !to_lock.is_empty() {
                steps.push(PlannedStep::on_hosts(StepName::UnlockHosts, &to_lock, d));
            }
            if !to_reboot.is_empty() {
                steps.push(PlannedStep::on_hosts(StepName::RebootHosts, &to_reboot, d));
            }
            if !with_instances.is_empty()
                && options.default_instance_action != InstanceAction::Migrate
            {
                steps.push(PlannedStep::instances(
                    StepName::StartInstances,
                    &with_instances,
                    d,
                ));
            }
            if list.iter().any(|h| h.is_controller()) {
                steps.push(PlannedStep::wait_alarms_clear(
                    d.wait_alarms_clear_controller(),
                    d,
                ));
            } else if !with_instances.is_empty() {
                steps.push(PlannedStep::wait_alarms_clear(
                    d.wait_alarms_clear_instances(),
                    d,
                ));
            } else {
                steps.push(PlannedStep::system_stabilize(d.system_stabilize(), d));
            }
        } else {
            steps.push(PlannedStep::system_stabilize(d.no_reboot_delay(), d));
        }
        PlannedStage {
            name: self.stage_name(
                StageName::SwPatchWorkerHosts,
                StageName::SwUpgradeWorkerHosts,
            ),
            steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inventory::fixtures::*;
    use super::*;
    use crate::host::Personality::*;
    use crate::sw_update::options::SwPatchOptions;

    fn opts(f: impl FnOnce(&mut SwPatchOptions)) -> ApplyOptions {
        let mut o = SwPatchOptions::default();
        f(&mut o);
        o.apply_options()
    }

    fn names_of(stage: &PlannedStage) -> Vec<&'static str> {
        stage.step_names()
    }

    #[test]
    fn names_are_the_originals() {
        for s in StageName::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in StepName::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for e in EntityType::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
    }

    #[test]
    fn default_timeouts_follow_the_catalogue() {
        let d = StepDurations::default();
        let secs = |n: StepName| n.default_timeout(&d).as_secs();
        assert_eq!(secs(StepName::QueryAlarms), 60);
        assert_eq!(secs(StepName::SwactHosts), 900);
        assert_eq!(secs(StepName::LockHosts), 900);
        assert_eq!(secs(StepName::SwPatchHosts), 1800);
        assert_eq!(secs(StepName::UnlockHosts), 1800);
        assert_eq!(secs(StepName::RebootHosts), 900);
        assert_eq!(secs(StepName::StopInstances), 900);
        assert_eq!(secs(StepName::MigrateInstancesFromHost), 1800);
        assert_eq!(secs(StepName::DisableHostServices), 180);
        assert_eq!(secs(StepName::StartUpgrade), 3600);
        assert_eq!(secs(StepName::CompleteUpgrade), 300);
        assert_eq!(secs(StepName::DeployDelete), 300);
    }

    #[test]
    fn controllers_go_one_at_a_time_with_the_active_last() {
        let site = site(vec![
            reboot(active(host("controller-0", Controller))),
            reboot(host("controller-1", Controller)),
        ]);
        let options = opts(|_| {});
        let d = StepDurations::default();
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let hosts: Vec<&UpdateHost> = site.hosts.iter().collect();
        let stages = t.controller_stages(&hosts, true).unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].updated_hosts(), ["controller-1"]);
        assert_eq!(stages[1].updated_hosts(), ["controller-0"]);
        assert_eq!(stages[0].name, StageName::SwPatchControllers);
        assert_eq!(
            names_of(&stages[1]),
            [
                "query-alarms",
                "swact-hosts",
                "lock-hosts",
                "sw-patch-hosts",
                "system-stabilize",
                "unlock-hosts",
                "wait-alarms-clear"
            ]
        );
        assert_eq!(stages[1].steps[4].timeout.as_secs(), 15);
        assert_eq!(stages[1].steps[6].timeout.as_secs(), 2400);
        // 60 + 900 + 900 + 1800 + 15 + 1800 + 2400, plus 1.
        assert_eq!(stages[1].timeout(d.timeout_margin()).as_secs(), 7876);
        let in_service = t.controller_stages(&hosts, false).unwrap();
        assert_eq!(
            names_of(&in_service[0]),
            ["query-alarms", "sw-patch-hosts", "system-stabilize"]
        );
        assert_eq!(in_service[0].steps[2].timeout.as_secs(), 30);
    }

    #[test]
    fn a_lone_controller_is_locked_without_a_swact() {
        let lone = site(vec![reboot(active(host("controller-0", Controller)))]);
        assert!(lone.single_controller);
        let options = opts(|_| {});
        let d = StepDurations::default();
        let t = Templates {
            options: &options,
            site: &lone,
            durations: &d,
        };
        let hosts: Vec<&UpdateHost> = lone.hosts.iter().collect();
        let stages = t.controller_stages(&hosts, true).unwrap();
        assert_eq!(
            names_of(&stages[0]),
            [
                "query-alarms",
                "lock-hosts",
                "sw-patch-hosts",
                "system-stabilize",
                "unlock-hosts",
                "wait-alarms-clear"
            ]
        );
    }

    #[test]
    fn controller_refusals() {
        let d = StepDurations::default();
        let lone = site(vec![host("controller-0", Controller)]);
        let mut duplex_with_one = lone.clone();
        duplex_with_one.single_controller = false;
        let options = opts(|_| {});
        let t = Templates {
            options: &options,
            site: &duplex_with_one,
            durations: &d,
        };
        let hosts: Vec<&UpdateHost> = duplex_with_one.hosts.iter().collect();
        assert_eq!(
            t.controller_stages(&hosts, true).unwrap_err().reason,
            "not enough controllers to apply software update"
        );
        let parallel = opts(|o| o.controller_apply_type = ApplyType::Parallel);
        let t = Templates {
            options: &parallel,
            site: &lone,
            durations: &d,
        };
        assert_eq!(
            t.controller_stages(&hosts, true).unwrap_err().reason,
            PARALLEL_CONTROLLERS_REASON
        );
    }

    #[test]
    fn storage_parallel_keeps_replication_groups_apart() {
        let mut hosts = Vec::new();
        for (name, group) in [("s0", "g0"), ("s1", "g0"), ("s2", "g1"), ("s3", "g1")] {
            let mut h = reboot(host(name, Storage));
            h.replication_group = Some(group.into());
            hosts.push(h);
        }
        let site = site(hosts);
        let d = StepDurations::default();
        let options = opts(|o| o.storage_apply_type = ApplyType::Parallel);
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let refs: Vec<&UpdateHost> = site.hosts.iter().collect();
        let stages = t.storage_stages(&refs, true).unwrap();
        let lists: Vec<Vec<&str>> = stages.iter().map(|s| s.updated_hosts()).collect();
        assert_eq!(lists, [vec!["s0", "s2"], vec!["s1", "s3"]]);
        assert_eq!(
            names_of(&stages[0]),
            [
                "query-alarms",
                "lock-hosts",
                "sw-patch-hosts",
                "system-stabilize",
                "unlock-hosts",
                "wait-data-sync"
            ]
        );
        assert_eq!(stages[0].steps[5].timeout.as_secs(), 1800);
        let one = super::super::inventory::fixtures::site(vec![host("s0", Storage)]);
        let t = Templates {
            options: &options,
            site: &one,
            durations: &d,
        };
        let refs: Vec<&UpdateHost> = one.hosts.iter().collect();
        assert_eq!(
            t.storage_stages(&refs, false).unwrap_err().reason,
            "not enough storage hosts to apply software updates"
        );
    }

    #[test]
    fn workers_parallel_are_bucketed_and_cut_to_the_maximum() {
        let mut hosts = vec![reboot(host("controller-0", ControllerWorker))];
        for i in 0..5 {
            hosts.push(reboot(host(&format!("w{i}"), Worker)));
        }
        for i in 5..10 {
            hosts.push(reboot(with_instances(
                host(&format!("w{i}"), Worker),
                &[&format!("vm{i}")],
            )));
        }
        let mut site = site(hosts);
        site.hosts.push(host("controller-1", ControllerWorker));
        site.single_controller = false;
        let d = StepDurations::default();
        let options = opts(|o| {
            o.worker_apply_type = ApplyType::Parallel;
            o.max_parallel_worker_hosts = 3;
        });
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let refs: Vec<&UpdateHost> = site.hosts[..11].iter().collect();
        let lists: Vec<Vec<&str>> = t
            .worker_host_lists(&refs, true)
            .iter()
            .map(|l| l.iter().map(|h| h.hostname.as_str()).collect())
            .collect();
        assert_eq!(
            lists,
            [
                vec!["controller-0"],
                vec!["w0", "w1", "w2"],
                vec!["w3", "w4"],
                vec!["w5", "w6", "w7"],
                vec!["w8", "w9"]
            ]
        );
        let stages = t.worker_stages(&refs, true).unwrap();
        assert_eq!(
            names_of(&stages[3]),
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
        assert_eq!(stages[3].steps[1].entity_type, EntityType::Instances);
        assert_eq!(stages[3].steps[1].entity_names, ["vm5", "vm6", "vm7"]);
        assert_eq!(stages[3].steps[7].timeout.as_secs(), 600);
        // Workers without instances end with a 60 s stabilize.
        assert_eq!(stages[1].steps.last().unwrap().timeout.as_secs(), 60);
        // In service, all workers but the all-in-one go together (cut to the maximum).
        let in_service: Vec<usize> = t
            .worker_host_lists(&refs, false)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(in_service, [1, 3, 3, 3, 1]);
    }

    #[test]
    fn migrate_in_parallel_disables_services_first_and_starts_nothing() {
        let hosts = vec![
            reboot(with_instances(host("w0", Worker), &["a"])),
            reboot(with_instances(host("w1", Worker), &["b"])),
        ];
        let mut site = site(hosts);
        site.single_controller = false;
        let d = StepDurations::default();
        let options = opts(|o| {
            o.worker_apply_type = ApplyType::Parallel;
            o.default_instance_action = InstanceAction::Migrate;
        });
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let refs: Vec<&UpdateHost> = site.hosts.iter().collect();
        let stages = t.worker_stages(&refs, true).unwrap();
        assert_eq!(stages.len(), 1);
        assert_eq!(
            names_of(&stages[0]),
            [
                "query-alarms",
                "disable-host-services",
                "migrate-instances-from-host",
                "lock-hosts",
                "sw-patch-hosts",
                "system-stabilize",
                "unlock-hosts",
                "wait-alarms-clear"
            ]
        );
    }

    #[test]
    fn locked_workers_are_rebooted_not_unlocked() {
        let site = site(vec![
            host("controller-0", Controller),
            reboot(locked(host("w0", Worker), false)),
            reboot(host("w1", Worker)),
        ]);
        let d = StepDurations::default();
        let options = opts(|o| o.worker_apply_type = ApplyType::Parallel);
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let refs: Vec<&UpdateHost> = site.hosts[1..].iter().collect();
        let stages = t.worker_stages(&refs, true).unwrap();
        let steps = &stages[0].steps;
        let find = |n: StepName| steps.iter().find(|s| s.name == n).unwrap();
        assert_eq!(find(StepName::LockHosts).entity_names, ["w1"]);
        assert_eq!(find(StepName::UnlockHosts).entity_names, ["w1"]);
        assert_eq!(find(StepName::RebootHosts).entity_names, ["w0"]);
        assert_eq!(find(StepName::SwPatchHosts).entity_names, ["w0", "w1"]);
    }

    #[test]
    fn simplex_refuses_migrate_and_does_not_wait_for_disabled() {
        let site = site(vec![reboot(with_instances(
            host("controller-0", ControllerWorker),
            &["vm0"],
        ))]);
        let d = StepDurations::default();
        let refs: Vec<&UpdateHost> = site.hosts.iter().collect();
        let migrate = opts(|o| o.default_instance_action = InstanceAction::Migrate);
        let t = Templates {
            options: &migrate,
            site: &site,
            durations: &d,
        };
        assert_eq!(
            t.worker_stages(&refs, true).unwrap_err().reason,
            "cannot migrate instances in a single controller configuration"
        );
        let options = opts(|_| {});
        let t = Templates {
            options: &options,
            site: &site,
            durations: &d,
        };
        let stages = t.worker_stages(&refs, true).unwrap();
        // AIO-SX: the AIO-DX template without swact-hosts (spec §4.5).
        assert_eq!(
            names_of(&stages[0]),
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
        assert_eq!(
            stages[0].steps[2].detail,
            StepDetail::Lock {
                wait_until_disabled: false,
                min_wait: Duration::from_secs(15)
            }
        );
    }
}
