//! A software-update strategy at a site (sw-patch, or sw-upgrade: the sw-deploy strategy):
//! what each VIM step does on the controller's store and the hosts' agents.
//!
//! - `query-alarms`, `wait-alarms-clear`, `wait-data-sync`: the site's active alarms through
//!   the plan's filter (the waits first look after their delay, then until none blocks);
//! - `swact-hosts`: the site's record of the active controller moves to a standby;
//! - `lock-hosts` / `unlock-hosts`: the host's administrative state; an unlock is done when
//!   the host is back unlocked, available and patch-current, heard from after the unlock;
//! - `sw-patch-hosts` / `upgrade-hosts`: the agent's install command, as `convoy patch
//!   host-install` sends it;
//! - `reboot-hosts`: the agent's `reboot` command (a locked host stays locked); an unlock of
//!   a host that awaits a reboot sends one itself (`api::hosts::set_administrative`);
//! - `start-upgrade`, `activate-upgrade`, `complete-upgrade`, `deploy-delete`: the site's
//!   software deploy (`patches::deploy`); a host stage starting moves the deploy to `host`;
//! - `stop-instances`, `start-instances`, `migrate-instances-from-host`: the host's
//!   `InstanceAction` hook with the verb and the step's instances the host lists (a host with
//!   none of them has nothing to do);
//! - `system-stabilize`: a wait.

use convoy_api::agent::HookRequest;
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::hook::{HookRun, HookStage, HookVerdict};
use convoy_core::host::{Administrative, Availability, availability};
use convoy_core::patch::state::{PatchCurrent, awaits_reboot, host_status};
use convoy_core::strategy::{StrategyKind, Terminal};
use convoy_core::sw_update::build::{Plan, alarms_present_reason};
use convoy_core::sw_update::durations::StepDurations;
use convoy_core::sw_update::inventory::ActiveAlarm;
use convoy_core::sw_update::kind::{
    EngineSummary, StepResult, UpdateAction, UpdatePhase, UpdateRules,
};
use convoy_core::sw_update::options::{
    ApplyOptions, SwPatchOptions, SwUpdateKind, SwUpgradeOptions,
};
use convoy_core::sw_update::release::{DeployState, HostDeployState};
use convoy_core::sw_update::stages::{StageName, StepDetail, StepName};
use convoy_store::{HostRecord, StepRecord, StrategyRecord};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::site_kind::{SiteKind, TickEnd};
use crate::api::hosts::{set_administrative, swact_from};
use crate::patches::deploy;
use crate::patches::repository::Site;
use crate::state::AppState;

/// The options a software-update strategy was created with, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SwUpdateOptions {
    Patch(SwPatchOptions),
    Upgrade(SwUpgradeOptions),
}

impl SwUpdateOptions {
    pub fn kind(&self) -> SwUpdateKind {
        self.apply_options().kind
    }

    /// The options every kind shares.
    pub fn apply_options(&self) -> ApplyOptions {
        match self {
            SwUpdateOptions::Patch(o) => o.apply_options(),
            SwUpdateOptions::Upgrade(o) => o.apply_options(),
        }
    }

    /// The release a sw-upgrade strategy deploys.
    pub fn release(&self) -> Option<&str> {
        match self {
            SwUpdateOptions::Patch(_) => None,
            SwUpdateOptions::Upgrade(o) => o.release(),
        }
    }
}

/// What a software-update strategy keeps (the strategy record's options).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwUpdateRecord {
    pub options: SwUpdateOptions,
    /// The build's plan; None when the build failed.
    pub plan: Option<Plan>,
    /// Why the build failed, if it did.
    pub build_reason: Option<String>,
    /// The step durations the plan was built with.
    pub durations: StepDurations,
}

/// The stored record, before its options are read by the strategy's kind.
#[derive(Deserialize)]
struct StoredRecord {
    options: serde_json::Value,
    plan: Option<Plan>,
    build_reason: Option<String>,
    durations: StepDurations,
}

impl SwUpdateRecord {
    /// Reads the record of a strategy of `kind`; None if it is not a software update.
    pub fn parse(kind: StrategyKind, json: &str) -> anyhow::Result<Option<SwUpdateRecord>> {
        let Some(update) = kind.sw_update() else {
            return Ok(None);
        };
        let stored: StoredRecord = serde_json::from_str(json)?;
        let options = match update {
            SwUpdateKind::SwPatch => {
                SwUpdateOptions::Patch(serde_json::from_value(stored.options)?)
            }
            SwUpdateKind::SwUpgrade => {
                SwUpdateOptions::Upgrade(serde_json::from_value(stored.options)?)
            }
        };
        Ok(Some(SwUpdateRecord {
            options,
            plan: stored.plan,
            build_reason: stored.build_reason,
            durations: stored.durations,
        }))
    }
}

/// The controller's strategy, if it is a software update.
pub async fn current(app: &AppState) -> anyhow::Result<Option<(StrategyRecord, SwUpdateRecord)>> {
    let Some(strategy) = app.store.strategy().await? else {
        return Ok(None);
    };
    Ok(SwUpdateRecord::parse(strategy.kind, &strategy.options)?.map(|r| (strategy, r)))
}

/// How an instance step's `InstanceAction` run ended: exit 0 (or 70, nothing to do) is
/// success; a missing script or any other end fails the step with the hook's reason.
fn instance_result(verb: &str, host: &str, outcome: &CommandOutcome) -> StepResult {
    let run: Option<HookRun> = serde_json::from_value(outcome.output.clone()).ok();
    let reason = match run.as_ref().map(HookRun::verdict) {
        Some(HookVerdict::Succeeded | HookVerdict::AvoidMaintenance) => {
            return StepResult::Success;
        }
        Some(HookVerdict::NoScript) => "the host has no InstanceAction hook".to_string(),
        Some(HookVerdict::Failed(reason)) => reason,
        None => outcome.message.clone(),
    };
    StepResult::Failed(format!("{verb} instances on host {host} failed: {reason}"))
}

/// What the engine's records say of a software-update strategy, for its VIM state and its
/// alarm.
pub fn summary(
    strategy: &StrategyRecord,
    record: &SwUpdateRecord,
    steps: &[StepRecord],
) -> EngineSummary {
    EngineSummary::of(
        strategy.state,
        record.build_reason.is_some(),
        steps.iter().map(|s| s.state.as_str()),
    )
}

/// The site's active alarms, as the build and the alarm steps read them.
pub async fn active_alarms(app: &AppState) -> Result<Vec<ActiveAlarm>, convoy_store::StoreError> {
    Ok(app
        .store
        .alarms()
        .await?
        .into_iter()
        .map(|a| ActiveAlarm {
            alarm_id: a.alarm_id,
            mgmt_affecting: a.mgmt_affecting,
            raised_at: Some(a.raised_at),
        })
        .collect())
}

pub struct SwUpdateSite {
    rules: UpdateRules,
    plan: Plan,
    /// The release a sw-upgrade strategy deploys.
    release: Option<String>,
    /// The repository as this tick read it: the install commands name its bundles.
    site: Site,
    ping: SignedDuration,
}

impl SwUpdateSite {
    pub async fn load(app: &AppState, record: SwUpdateRecord) -> anyhow::Result<SwUpdateSite> {
        let release = record.options.release().map(str::to_string);
        let plan = record
            .plan
            .ok_or_else(|| anyhow::anyhow!("the strategy's build failed; it has no plan"))?;
        let site = Site::load(app)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the patch repository: {e:?}"))?;
        Ok(SwUpdateSite {
            rules: UpdateRules::new(&plan.stages, &record.durations),
            plan,
            release,
            site,
            ping: app.ping_interval,
        })
    }

    async fn blocking_alarms(
        &self,
        app: &AppState,
        now: Timestamp,
    ) -> anyhow::Result<Vec<ActiveAlarm>> {
        let alarms = active_alarms(app).await?;
        Ok(self
            .plan
            .alarm_filter
            .blocking(&alarms, now)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Whether the host's stage locks it before `phase`.
    fn locked_before(&self, phase: UpdatePhase, hostname: &str) -> bool {
        (0..phase.step).any(|step| {
            self.rules
                .planned(UpdatePhase { step, ..phase })
                .is_some_and(|s| {
                    s.name == StepName::LockHosts && s.entity_names.iter().any(|h| h == hostname)
                })
        })
    }

    /// The host is back: unlocked, available, heard from since `since`, rebooted if its
    /// unlock rebooted it, and (unless only an abort's unlock waits for it) patch-current.
    async fn host_back(
        &self,
        app: &AppState,
        hostname: &str,
        since: Timestamp,
        now: Timestamp,
        patch_current: bool,
    ) -> anyhow::Result<bool> {
        let Some(host) = app.store.host(hostname).await? else {
            return Ok(false);
        };
        let heard = host.last_seen.is_some_and(|seen| seen > since);
        if host.administrative != Administrative::Unlocked
            || !heard
            || availability(host.last_seen, now, self.ping) != Availability::Available
        {
            return Ok(false);
        }
        // The repository as it is now, with the host's latest report.
        let site = Site::load(app)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the patch repository: {e:?}"))?;
        Ok(site.report(hostname).is_some_and(|report| {
            !awaits_reboot(&site.repo, report)
                && (!patch_current
                    || host_status(&site.repo, &site.interim, report).patch_current
                        == PatchCurrent::Yes)
        }))
    }
}

impl SwUpdateSite {
    fn release(&self) -> anyhow::Result<&str> {
        self.release
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("a deploy step in a strategy that names no release"))
    }

    /// The `InstanceAction` run of an instance step on `host`: the verb and the planned
    /// instances the host still lists, within the step's timeout.
    fn instance_action(&self, action: UpdateAction, verb: &str, host: &HostRecord) -> HookRequest {
        let planned = self.rules.planned(action.phase);
        let names = match planned.map(|p| &p.detail) {
            Some(StepDetail::Instances { instances, .. }) => instances
                .iter()
                .filter(|i| host.facts.instances.contains(i))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut args = vec![verb.to_string()];
        args.extend(names);
        HookRequest {
            stage: HookStage::InstanceAction,
            args,
            timeout_seconds: planned.map_or(0, |p| p.timeout.as_secs()).max(1),
            requires: None,
        }
    }

    /// Whether plan stage `stage` (engine numbering, from 1) updates hosts of a sw-upgrade.
    fn is_host_stage(&self, stage: u32) -> bool {
        let name = stage
            .checked_sub(1)
            .and_then(|i| self.plan.stages.get(i as usize))
            .map(|s| s.name);
        matches!(
            name,
            Some(
                StageName::SwUpgradeControllers
                    | StageName::SwUpgradeStorageHosts
                    | StageName::SwUpgradeWorkerHosts
            )
        )
    }

    /// `activate-upgrade`: every host has the release, so the deploy's host phase is done;
    /// then activation (nothing more to do at a Convoy site than to record it).
    async fn activate(&self, app: &AppState, now: Timestamp) -> anyhow::Result<StepResult> {
        let site = Site::load(app)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the repository: {}", e.message))?;
        let behind: Vec<String> = site
            .host_deploy_states()
            .into_iter()
            .filter(|(_, s)| *s != HostDeployState::Deployed)
            .map(|(h, s)| format!("{h} ({s})"))
            .collect();
        if !behind.is_empty() {
            return Ok(StepResult::Failed(format!(
                "deploy activate failed: hosts not deployed: {}",
                behind.join(", ")
            )));
        }
        use DeployState::*;
        let path = match site.deploy.as_ref().map(|d| d.state) {
            Some(HostFailed) => vec![HostFailed, Host, HostDone, Activate, ActivateDone],
            Some(ActivateFailed) => vec![ActivateFailed, Activate, ActivateDone],
            _ => vec![StartDone, Host, HostDone, Activate, ActivateDone],
        };
        Ok(match deploy::advance(app, &path, now).await {
            Ok(_) => StepResult::Success,
            Err(e) => StepResult::Failed(format!("deploy activate failed: {}", e.message)),
        })
    }
}

impl SiteKind for SwUpdateSite {
    type Rules = UpdateRules;
    type TickCache = ();

    fn rules(&self) -> &UpdateRules {
        &self.rules
    }

    fn sweep_parallelism(&self, _strategy: &StrategyRecord) -> usize {
        1
    }

    fn command(
        &self,
        action: UpdateAction,
        target: &str,
    ) -> Option<(CommandKind, serde_json::Value)> {
        let host = self.site.hosts.iter().find(|h| h.hostname == target)?;
        if let Some(verb) = action.name.instance_verb() {
            return Some((
                CommandKind::RunHook,
                serde_json::to_value(self.instance_action(action, verb, host)).unwrap_or_default(),
            ));
        }
        if action.name == StepName::RebootHosts {
            return Some((CommandKind::Reboot, serde_json::Value::Null));
        }
        if !matches!(action.name, StepName::SwPatchHosts | StepName::UpgradeHosts) {
            return None;
        }
        let mut payload = self.site.install_patches(host, false)?;
        // A lock earlier in the stage took effect after this tick read the site.
        payload.host_locked |= self.locked_before(action.phase, target);
        Some((
            CommandKind::InstallPatches,
            serde_json::to_value(payload).unwrap_or_default(),
        ))
    }

    fn result_of(&self, phase: UpdatePhase, target: &str, outcome: &CommandOutcome) -> StepResult {
        let name = self.rules.planned(phase).map(|p| p.name);
        if let Some(verb) = name.and_then(StepName::instance_verb) {
            return instance_result(verb, target, outcome);
        }
        match (outcome.succeeded, name) {
            (true, _) => StepResult::Success,
            (false, Some(StepName::RebootHosts)) => StepResult::Failed(format!(
                "reboot of host {target} failed: {}",
                outcome.message
            )),
            (false, _) => StepResult::Failed(format!(
                "software update failed to apply on host {target}: {}",
                outcome.message
            )),
        }
    }

    async fn check(
        &self,
        app: &AppState,
        action: UpdateAction,
        index: usize,
        steps: &[StepRecord],
        _cache: &mut (),
        now: Timestamp,
    ) -> anyhow::Result<Option<StepResult>> {
        let step = &steps[index];
        let host = step.target.as_str();
        let began = step.phase_started_at.unwrap_or(now);
        let planned = self.rules.planned(action.phase);
        let detail = planned.map(|p| &p.detail);
        Ok(match action.name {
            StepName::QueryAlarms => {
                let fail = matches!(
                    detail,
                    Some(StepDetail::QueryAlarms {
                        fail_on_alarms: true
                    })
                );
                let blocking = self.blocking_alarms(app, now).await?;
                if fail && !blocking.is_empty() {
                    let refs: Vec<&ActiveAlarm> = blocking.iter().collect();
                    Some(StepResult::Failed(alarms_present_reason(&refs)))
                } else {
                    Some(StepResult::Success)
                }
            }
            StepName::WaitAlarmsClear | StepName::WaitDataSync => {
                let first = match detail {
                    Some(StepDetail::WaitAlarms { first_check_after }) => {
                        SignedDuration::try_from(*first_check_after).unwrap_or_default()
                    }
                    _ => SignedDuration::ZERO,
                };
                if now < began + first || !self.blocking_alarms(app, now).await?.is_empty() {
                    None
                } else {
                    Some(StepResult::Success)
                }
            }
            StepName::SwactHosts => {
                let records = app.store.hosts().await?;
                let active = crate::api::hosts::active_controller(app, &records, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                if active.as_deref() != Some(host) {
                    // Already standby: nothing to do, as the original.
                    Some(StepResult::Success)
                } else {
                    match swact_from(app, host).await {
                        Ok(to) => {
                            info!(from = host, to, "strategy swact");
                            Some(StepResult::Success)
                        }
                        Err(e) => Some(StepResult::Failed(format!(
                            "swact of {host} failed: {}",
                            e.message
                        ))),
                    }
                }
            }
            StepName::LockHosts => {
                set_administrative(app, host, Administrative::Locked)
                    .await
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("cannot lock {host}: {}", e.message))?;
                Some(StepResult::Success)
            }
            StepName::UnlockHosts => {
                let current = app.store.host(host).await?;
                if current.is_some_and(|h| h.administrative == Administrative::Locked) {
                    set_administrative(app, host, Administrative::Unlocked)
                        .await
                        .map(drop)
                        .map_err(|e| anyhow::anyhow!("cannot unlock {host}: {}", e.message))?;
                }
                self.host_back(app, host, began, now, !action.phase.undo)
                    .await?
                    .then_some(StepResult::Success)
            }
            StepName::StartUpgrade => Some(match deploy::start(app, self.release()?, now).await {
                Ok(_) => StepResult::Success,
                Err(e) => StepResult::Failed(format!("deploy start failed: {}", e.message)),
            }),
            StepName::ActivateUpgrade => Some(self.activate(app, now).await?),
            StepName::CompleteUpgrade => Some(
                match deploy::advance(
                    app,
                    &[DeployState::ActivateDone, DeployState::Completed],
                    now,
                )
                .await
                {
                    Ok(_) => StepResult::Success,
                    Err(e) => StepResult::Failed(format!("deploy complete failed: {}", e.message)),
                },
            ),
            StepName::DeployDelete => Some(match deploy::delete(app).await {
                Ok(()) => StepResult::Success,
                Err(e) => StepResult::Failed(format!("deploy delete failed: {}", e.message)),
            }),
            // Build-stage queries, answered when the strategy was built.
            StepName::QueryUpgrade | StepName::SwDeployPrecheck => Some(StepResult::Success),
            // An instance step on a host whose hook acts on none of the step's instances.
            name if name.is_instance_action() => Some(StepResult::Success),
            // Convoy has no host services to disable or enable.
            StepName::DisableHostServices | StepName::EnableHostServices => {
                Some(StepResult::Success)
            }
            other => Some(StepResult::Failed(format!(
                "{} is not supported at a Convoy site",
                other.as_str()
            ))),
        })
    }

    /// A sw-upgrade's host stage starting moves the deploy to `host` (again, after a failed
    /// host stage).
    async fn stage_starting(
        &self,
        app: &AppState,
        _strategy: &StrategyRecord,
        step: &StepRecord,
        _cache: &mut (),
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if self.release.is_none() || !self.is_host_stage(step.stage) {
            return Ok(());
        }
        let Some(current) = app.store.deploy().await? else {
            return Ok(());
        };
        if matches!(
            current.state,
            DeployState::StartDone | DeployState::HostFailed
        ) {
            deploy::advance(app, &[current.state, DeployState::Host], now)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        }
        Ok(())
    }

    /// A sw-upgrade stopped by a host's failure leaves the deploy `host-failed`.
    async fn tick_written(
        &self,
        app: &AppState,
        _strategy: &StrategyRecord,
        steps: &[StepRecord],
        end: TickEnd,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if self.release.is_none() || !end.stopping {
            return Ok(());
        }
        let host_failed = steps.iter().any(|s| {
            self.is_host_stage(s.stage) && Terminal::parse(&s.state) == Some(Terminal::Failed)
        });
        if !host_failed {
            return Ok(());
        }
        if app
            .store
            .deploy()
            .await?
            .is_some_and(|d| d.state == DeployState::Host)
        {
            deploy::advance(app, &[DeployState::Host, DeployState::HostFailed], now)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        }
        Ok(())
    }
}
