//! Rolling maintenance at a site: the agent command that performs each phase, the result an
//! agent's outcome means, the capacity check over the inventory, and the clusters a running
//! strategy disables.

use std::collections::{HashMap, HashSet};

use convoy_api::agent::{HookRequest, RequiredScriptMissing};
use convoy_api::hosts::CommandOutcome;
use convoy_api::strategies::RollingMaintenanceOptions;
use convoy_core::capacity::{HostCapacity, can_absorb};
use convoy_core::command::CommandKind;
use convoy_core::hook::{HookRun, HookVerdict};
use convoy_core::host::{Administrative, Availability, availability};
use convoy_core::phases::rolling_maintenance::{Action, Phase, PhaseResult, RollingMaintenance};
use convoy_core::strategy::engine::Progress;
use convoy_core::strategy::kind::progress;
use convoy_core::strategy::planner::sweep_parallelism;
use convoy_store::{HostRecord, StepRecord, StrategyRecord};
use jiff::{SignedDuration, Timestamp};
use tracing::info;

use super::site_kind::{SiteKind, TickEnd};
use crate::state::AppState;

/// A rolling maintenance as the driver runs it.
pub struct RollingMaintenanceSite {
    rules: RollingMaintenance,
    options: RollingMaintenanceOptions,
    /// The hook arguments the payload gives, split once.
    args: Vec<String>,
    ping: SignedDuration,
}

impl RollingMaintenanceSite {
    pub fn new(options: RollingMaintenanceOptions, ping: SignedDuration) -> Self {
        let args = options
            .payload
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        RollingMaintenanceSite {
            rules: RollingMaintenance {
                forced: options.forced,
                stage_timeout: SignedDuration::from_secs(options.timeout_seconds as i64),
                report_allowance: ping * 2 + SignedDuration::from_secs(10),
            },
            options,
            args,
            ping,
        }
    }
}

/// What one tick learns of clusters.
#[derive(Default)]
pub struct ClusterCache {
    /// A capacity check reads the hosts of its host's cluster, once a tick per cluster.
    hosts: HashMap<Option<String>, Vec<HostRecord>>,
    /// A stage's hosts share their cluster: it is disabled once.
    disabled: HashSet<String>,
}

impl SiteKind for RollingMaintenanceSite {
    type Rules = RollingMaintenance;
    type TickCache = ClusterCache;

    fn rules(&self) -> &RollingMaintenance {
        &self.rules
    }

    fn sweep_parallelism(&self, strategy: &StrategyRecord) -> usize {
        sweep_parallelism(self.options.max_parallel_preflight, strategy.max_parallel)
    }

    fn command(&self, action: Action, _target: &str) -> Option<(CommandKind, serde_json::Value)> {
        match action {
            Action::RunHook(stage) => Some((
                CommandKind::RunHook,
                serde_json::to_value(HookRequest {
                    stage,
                    args: self.args.clone(),
                    timeout_seconds: self.options.timeout_seconds,
                    // The Maintenance script must exist before PreMaintenance runs.
                    requires: action.required_script(),
                })
                .unwrap_or_default(),
            )),
            Action::EnterMaintenance => {
                Some((CommandKind::EnterMaintenance, serde_json::Value::Null))
            }
            Action::ExitMaintenance => {
                Some((CommandKind::ExitMaintenance, serde_json::Value::Null))
            }
            Action::CapacityCheck => None,
        }
    }

    fn result_of(&self, phase: Phase, _target: &str, outcome: &CommandOutcome) -> PhaseResult {
        result_of(phase, outcome)
    }

    fn duration_of(&self, outcome: &CommandOutcome) -> Option<SignedDuration> {
        hook_duration(outcome)
    }

    async fn check(
        &self,
        app: &AppState,
        _action: Action,
        index: usize,
        steps: &[StepRecord],
        cache: &mut ClusterCache,
        now: Timestamp,
    ) -> anyhow::Result<Option<PhaseResult>> {
        // Hosts of the same stage already on their way into maintenance take no load,
        // whatever their last heartbeat said.
        let leaving: Vec<&str> = steps
            .iter()
            .filter(|s| {
                matches!(
                    Phase::from_name(&s.state),
                    Some(Phase::EnterMaintenance | Phase::Maintenance | Phase::ExitMaintenance)
                )
            })
            .map(|s| s.target.as_str())
            .collect();
        let step = &steps[index];
        let target = step.target.as_str();
        let known = cache
            .hosts
            .get(&step.group)
            .is_some_and(|hosts| hosts.iter().any(|h| h.hostname == target));
        if !known {
            // Its cluster as the inventory has it now, not as planned.
            let hosts = app.store.cluster_of(target).await?;
            cache.hosts.insert(step.group.clone(), hosts);
        }
        Ok(Some(capacity_check(
            target,
            &cache.hosts[&step.group],
            &leaving,
            now,
            self.ping,
        )))
    }

    /// The step's cluster is disabled before its first host starts.
    async fn stage_starting(
        &self,
        app: &AppState,
        strategy: &StrategyRecord,
        step: &StepRecord,
        cache: &mut ClusterCache,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if let Some(cluster) = &step.group
            && cache.disabled.insert(cluster.clone())
        {
            app.store
                .disable_cluster(cluster, &strategy.id, now)
                .await?;
        }
        Ok(())
    }

    /// Enables the clusters whose hosts are done, or all of them once stopping or done.
    async fn tick_written(
        &self,
        app: &AppState,
        strategy: &StrategyRecord,
        steps: &[StepRecord],
        end: TickEnd,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        // A cluster can only become done when one of its steps ends.
        if !(end.stopping || end.changed) {
            return Ok(());
        }
        for cluster in app.store.clusters().await? {
            if cluster.disabled_by.as_deref() != Some(strategy.id.as_str()) {
                continue;
            }
            let members: Vec<Progress> = steps
                .iter()
                .filter(|s| s.group.as_deref() == Some(&cluster.name))
                .map(|s| progress(&self.rules, s.stage, &s.state, s.swept))
                .collect();
            let busy = members.contains(&Progress::Running);
            let done = members.iter().all(|p| matches!(p, Progress::Done(_)));
            if !busy && (done || end.stopping) {
                app.store
                    .enable_clusters(&strategy.id, Some(&cluster.name), now)
                    .await?;
                info!(cluster = cluster.name, "cluster enabled again");
            }
        }
        Ok(())
    }
}

/// What an agent's outcome means for the phase it performed.
fn result_of(phase: Phase, outcome: &CommandOutcome) -> PhaseResult {
    match phase.action() {
        Action::RunHook(_) => match serde_json::from_value::<HookRun>(outcome.output.clone()) {
            Ok(run) => match run.verdict() {
                HookVerdict::Succeeded => PhaseResult::Succeeded,
                HookVerdict::AvoidMaintenance => PhaseResult::AvoidMaintenance,
                HookVerdict::NoScript => PhaseResult::NoScript,
                HookVerdict::Failed(reason) => PhaseResult::Failed(reason),
            },
            Err(_) => {
                match serde_json::from_value::<RequiredScriptMissing>(outcome.output.clone()) {
                    Ok(_) if outcome.succeeded => PhaseResult::RequiredScriptMissing,
                    _ => PhaseResult::Failed(outcome.message.clone()),
                }
            }
        },
        _ if outcome.succeeded => PhaseResult::Succeeded,
        _ => PhaseResult::Failed(outcome.message.clone()),
    }
}

/// How long the hook an outcome reports ran, if it reports one.
fn hook_duration(outcome: &CommandOutcome) -> Option<SignedDuration> {
    let run = serde_json::from_value::<HookRun>(outcome.output.clone()).ok()?;
    Some(SignedDuration::from_millis(run.duration_ms as i64))
}

/// The capacity check of `hostname` against the current inventory; `leaving` are hosts going
/// into maintenance in the same stage.
fn capacity_check(
    hostname: &str,
    hosts: &[HostRecord],
    leaving: &[&str],
    now: Timestamp,
    ping: SignedDuration,
) -> PhaseResult {
    let inventory: Vec<HostCapacity> = hosts
        .iter()
        .map(|h| HostCapacity {
            hostname: h.hostname.clone(),
            cluster: h.cluster.clone(),
            capacity_cpus: f64::from(h.facts.capacity_cpus),
            capacity_memory_mib: h.facts.capacity_memory_mib as f64,
            load_cpus: h.facts.load_cpus,
            load_memory_mib: h.facts.load_memory_mib as f64,
            in_service: h.administrative == Administrative::Unlocked
                && availability(h.last_seen, now, ping) == Availability::Available
                && !h.facts.maintenance
                && !leaving.contains(&h.hostname.as_str()),
        })
        .collect();
    let Some(host) = inventory.iter().find(|h| h.hostname == hostname) else {
        return PhaseResult::Failed(format!("host {hostname} is no longer known"));
    };
    match can_absorb(host, &inventory) {
        Ok(()) => PhaseResult::Succeeded,
        Err(reason) => PhaseResult::Failed(reason),
    }
}
