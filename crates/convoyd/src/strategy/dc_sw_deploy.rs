//! The System Controller's sw-deploy strategy: each step drives one subcloud through
//! dcmanager's states (`convoy_core::dc_strategy::sw_deploy`) by calling the subcloud's own
//! convoyd as its service account:
//!
//! - `sw-deploy pre-check`: the subcloud is managed and online; the release is in its
//!   repository (else `Release <id> is not prestaged.`, unless the strategy prestages it),
//!   and done if already deployed there; no strategy of another type, nor a sw-upgrade
//!   strategy for another release still running, is there (its `current-strategy`);
//! - with prestage (`--with-prestage`): `prestage-precheck`, `prestaging-packages` and
//!   `prestaging-images` as a prestage strategy's steps (`super::dc_prestage`), the
//!   preparation made by the first step to need it;
//! - `create VIM sw-deploy strategy`: creates the subcloud's
//!   `/api/orchestration/sw-upgrade/strategy` for the release; on a conflict, reuses the one
//!   there if it is for the release, replaces it if it ended;
//! - `apply VIM sw-deploy strategy`: applies it and follows it, the step's details showing
//!   `<phase> phase is <pct>% complete`; a failed read is retried until the phase's timeout;
//! - `finish sw-deploy strategy`: deletes the subcloud's strategy and records the subcloud's
//!   software version (the release's, from the System Controller's repository) and deploy
//!   status `complete`.
//!
//! In the normal path a step makes 7 calls and one more each poll interval while the
//! subcloud applies. Deploy statuses and error descriptions are written with the tick that
//! moves the step.
//!
//! Every call is bounded by the audit timeout. A refused token is forgotten and the check
//! asked again.

use std::collections::HashMap;

use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::dc_strategy::sw_deploy::{
    PRESTAGE_PHASES, SwDeployPhase, SwDeployResult, SwDeployRules, progress_details,
    shows_progress, sw_deploy_rules,
};
use convoy_core::subcloud::{Availability, Management, Reference};
use convoy_core::sw_update::options::{AlarmRestrictions, SwUpdateKind, SwUpgradeOptions};
use convoy_store::subclouds::SubcloudRecord;
use convoy_store::{StepRecord, StrategyRecord, SubcloudStepWrite};
use jiff::Timestamp;
use serde_json::Value;

use super::dc_prestage::{
    finish_prestage, precheck_and_begin, record_result, settle_prestage, ship,
};
use super::site_kind::{SiteKind, TickEnd};
use super::subcloud_call::{
    DcStrategyRecord, SubcloudPace, Trouble, attempt, call, client, failed,
};
use crate::state::AppState;

/// Deploy statuses the steps set on a subcloud.
pub const DEPLOY_IN_PROGRESS: &str = "sw-deploy-in-progress";
pub const DEPLOY_STRATEGY_FAILED: &str = "sw-deploy-apply-strategy-failed";

/// VIM states in which a subcloud's strategy is over (it can be deleted).
const VIM_OVER: [&str; 6] = [
    "applied",
    "apply-failed",
    "apply-timeout",
    "aborted",
    "build-failed",
    "build-timeout",
];

pub struct DcSwDeploySite {
    rules: SwDeployRules,
    record: DcStrategyRecord,
    /// Keys the strategy's prestage preparation and transfers.
    strategy_id: String,
    pace: SubcloudPace,
    /// Failed steps whose subcloud was seen to (`settle_prestage`).
    reconciled: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The subclouds of the steps the tick checks, read once for the tick (the site lives
    /// for one tick): a thousand checks at once cost one read, not a thousand.
    subclouds: tokio::sync::OnceCell<HashMap<String, SubcloudRecord>>,
    /// The subclouds the tick's round of checks reads (`SiteKind::checks_due`).
    due: std::sync::Mutex<Vec<String>>,
}

impl DcSwDeploySite {
    pub fn new(record: DcStrategyRecord, strategy_id: &str, app: &AppState) -> DcSwDeploySite {
        DcSwDeploySite {
            rules: sw_deploy_rules(record.time_scale, record.prestage.is_some()),
            record,
            strategy_id: strategy_id.to_string(),
            pace: SubcloudPace::new(app),
            reconciled: std::sync::Mutex::default(),
            subclouds: tokio::sync::OnceCell::new(),
            due: std::sync::Mutex::default(),
        }
    }

    fn release(&self) -> &str {
        self.record.release_id.as_deref().unwrap_or("")
    }
}

impl DcSwDeploySite {
    async fn subcloud(&self, app: &AppState, name: &str) -> Result<SubcloudRecord, Trouble> {
        let loaded = self
            .subclouds
            .get_or_try_init(|| async {
                let names = std::mem::take(&mut *self.due.lock().expect("due lock"));
                let found = app.subclouds.subclouds_named(&names).await?;
                Ok::<_, convoy_store::StoreError>(
                    found.into_iter().map(|s| (s.name.clone(), s)).collect(),
                )
            })
            .await;
        if let Ok(Some(subcloud)) = loaded.map(|all| all.get(name)) {
            return Ok(subcloud.clone());
        }
        // Not read with the others (or that read failed): on its own.
        let found = app
            .subclouds
            .subcloud(&Reference::Name(name.to_string()))
            .await
            .map_err(|e| failed(format!("cannot read the subcloud: {e}")))?;
        found.ok_or_else(|| failed(format!("Subcloud {name} does not exist")))
    }

    /// Records the subcloud's deploy status (and software version) with the tick's writes.
    fn set_deploy_status(&self, subcloud: &SubcloudRecord, status: &str, version: Option<String>) {
        self.pace.deploy_status(&subcloud.name, status, version);
    }

    /// Two calls: the release, and the strategy the subcloud has (of any type); a third only
    /// when a sw-upgrade strategy is still running there, to see whose it is.
    async fn pre_check(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<SwDeployResult, Trouble> {
        if subcloud.management != Management::Managed {
            return Err(failed(format!("Subcloud {} is unmanaged.", subcloud.name)));
        }
        if subcloud.availability != Availability::Online {
            return Err(failed(format!("Subcloud {} is offline.", subcloud.name)));
        }
        let client = client(app, subcloud).await?;
        let release = self.release();
        let shown = match call(app, subcloud, client.release(release)).await {
            Ok(shown) => Some(shown),
            // With prestage, the prestage phases bring it.
            Err(Trouble::Fail(_)) if self.record.prestage.is_some() => None,
            Err(Trouble::Fail(_)) => {
                return Err(failed(format!("Release {release} is not prestaged.")));
            }
            Err(retry) => return Err(retry),
        };
        if let Some(shown) = shown
            && matches!(shown.state.as_str(), "deployed" | "committed")
        {
            self.set_deploy_status(subcloud, "complete", Some(shown.sw_version));
            return Ok(SwDeployResult::Done(format!(
                "Release {release} is already deployed on the subcloud."
            )));
        }
        let current = call(app, subcloud, client.current_strategy()).await?;
        let strategy = &current["strategy"];
        if strategy.is_null() {
            return Ok(SwDeployResult::Next);
        }
        let name = strategy["name"].as_str().unwrap_or("");
        let state = strategy["state"].as_str().unwrap_or("");
        if name != SwUpdateKind::SwUpgrade.as_str() {
            return Err(failed(format!(
                "Subcloud has a {name} strategy; delete it first"
            )));
        }
        if VIM_OVER.contains(&state) {
            return Ok(SwDeployResult::Next);
        }
        let existing = call(
            app,
            subcloud,
            client.sw_update_strategy(SwUpdateKind::SwUpgrade),
        )
        .await?;
        if existing["strategy"]["release"] != release {
            return Err(failed(format!(
                "Subcloud has a sw-upgrade strategy in state {state} for another release"
            )));
        }
        Ok(SwDeployResult::Next)
    }

    /// One call, the create; when the subcloud already has a sw-upgrade strategy (409), it is
    /// read: reused if it is this release's and not over, replaced if it is over.
    async fn create_vim(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<SwDeployResult, Trouble> {
        let client = client(app, subcloud).await?;
        let kind = SwUpdateKind::SwUpgrade;
        let options = SwUpgradeOptions {
            release: vec![self.release().to_string()],
            delete: self.record.delete,
            alarm_restrictions: AlarmRestrictions::Relaxed,
            ..SwUpgradeOptions::default()
        };
        let create = || {
            attempt(
                app,
                subcloud,
                client.create_sw_update_strategy(kind, &options),
            )
        };
        let created = match create().await? {
            Ok(created) => created,
            Err(refusal) if refusal.status == 409 => {
                let existing = call(app, subcloud, client.sw_update_strategy(kind)).await?;
                let strategy = &existing["strategy"];
                if strategy.is_null() {
                    // Another type's strategy.
                    return Err(self.create_failed(subcloud, &refusal.message));
                }
                let state = strategy["state"].as_str().unwrap_or("");
                let ours = strategy["release"] == self.release();
                if ours && matches!(state, "ready-to-apply" | "applying" | "applied") {
                    // Made by this step before a restart: reused.
                    return Ok(SwDeployResult::Next);
                }
                if !VIM_OVER.contains(&state) {
                    return Err(failed(format!(
                        "the subcloud's sw-upgrade strategy is {state}; it cannot be replaced"
                    )));
                }
                call(app, subcloud, client.delete_sw_update_strategy(kind)).await?;
                match create().await? {
                    Ok(created) => created,
                    Err(refusal) => return Err(self.create_failed(subcloud, &refusal.message)),
                }
            }
            Err(refusal) => return Err(self.create_failed(subcloud, &refusal.message)),
        };
        let state = created["strategy"]["state"].as_str().unwrap_or("");
        if state == "ready-to-apply" {
            return Ok(SwDeployResult::Next);
        }
        let reason = created["strategy"]["build-phase"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.set_deploy_status(subcloud, DEPLOY_STRATEGY_FAILED, None);
        Err(failed(format!(
            "VIM strategy build failed: {reason} State: {state} Strategy: sw-upgrade"
        )))
    }

    fn create_failed(&self, subcloud: &SubcloudRecord, reason: &str) -> Trouble {
        self.set_deploy_status(subcloud, DEPLOY_STRATEGY_FAILED, None);
        failed(format!("Failed to create VIM strategy: {reason}"))
    }

    /// None while the subcloud's strategy applies.
    async fn apply_vim(
        &self,
        app: &AppState,
        index: usize,
        step: &StepRecord,
        subcloud: &SubcloudRecord,
    ) -> Result<Option<SwDeployResult>, Trouble> {
        let client = client(app, subcloud).await?;
        let kind = SwUpdateKind::SwUpgrade;
        // Until the step has seen it applying, the check applies at once (one call); a
        // refusal (applied before a restart, say) or a later check reads the strategy.
        if !shows_progress(&step.details) {
            let apply = client.sw_update_strategy_action(kind, "apply-all", None);
            if let Ok(applied) = attempt(app, subcloud, apply).await? {
                self.set_deploy_status(subcloud, DEPLOY_IN_PROGRESS, None);
                let strategy = &applied["strategy"];
                let phase = strategy["current-phase"].as_str().unwrap_or("apply");
                let percent = strategy["current-phase-completion-percentage"].as_u64();
                self.report_progress(index, step, phase, percent.unwrap_or(0));
                return Ok(None);
            }
        }
        let shown = call(app, subcloud, client.sw_update_strategy_brief(kind)).await?;
        let strategy = shown.strategy.unwrap_or_default();
        match strategy.state.as_str() {
            "ready-to-apply" => {
                self.set_deploy_status(subcloud, DEPLOY_IN_PROGRESS, None);
                call(
                    app,
                    subcloud,
                    client.sw_update_strategy_action(kind, "apply-all", None),
                )
                .await?;
                Ok(None)
            }
            "applying" => {
                let percent = strategy.current_phase_completion_percentage;
                self.report_progress(index, step, &strategy.current_phase, percent);
                Ok(None)
            }
            "applied" => Ok(Some(SwDeployResult::Next)),
            "" => Err(failed("the subcloud's sw-upgrade strategy is gone")),
            other => {
                self.set_deploy_status(subcloud, DEPLOY_STRATEGY_FAILED, None);
                Err(failed(format!(
                    "Failed for subcloud {}: {} State: {other} Strategy: sw-upgrade",
                    subcloud.name, strategy.apply_phase.reason
                )))
            }
        }
    }

    /// Shows the subcloud's strategy's progress as the step's details.
    fn report_progress(&self, index: usize, step: &StepRecord, phase: &str, percent: u64) {
        let phase = if phase.is_empty() { "apply" } else { phase };
        self.pace
            .report(index, step, progress_details(phase, percent));
    }

    /// One call, the delete: the software version the subcloud now runs is the release's,
    /// as the System Controller's repository has it.
    async fn finish(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<SwDeployResult, Trouble> {
        let client = client(app, subcloud).await?;
        match call(
            app,
            subcloud,
            client.delete_sw_update_strategy(SwUpdateKind::SwUpgrade),
        )
        .await
        {
            // Deleted before a restart: nothing left to delete.
            Ok(_) | Err(Trouble::Fail(_)) => {}
            Err(retry) => return Err(retry),
        }
        let version = match &self.record.release_version {
            Some(version) => version.clone(),
            None => {
                call(app, subcloud, client.release(self.release()))
                    .await?
                    .sw_version
            }
        };
        self.set_deploy_status(subcloud, "complete", Some(version));
        Ok(SwDeployResult::Next)
    }
}

impl SiteKind for DcSwDeploySite {
    type Rules = SwDeployRules;
    type TickCache = ();

    fn rules(&self) -> &SwDeployRules {
        &self.rules
    }

    fn sweep_parallelism(&self, _strategy: &StrategyRecord) -> usize {
        1
    }

    fn parallel_checks(&self) -> usize {
        self.pace.parallel()
    }

    /// A subcloud's strategy is read again every `--subcloud-poll-interval` while it applies
    /// (dcmanager reads it every minute; 10 s keeps the step's progress current, and 10,000
    /// subclouds cost the System Controller 1,000 reads a second at most).
    fn recheck(&self) -> jiff::SignedDuration {
        self.pace.recheck()
    }

    fn progress(&self) -> Vec<(usize, String)> {
        self.pace.take_progress()
    }

    fn checks_due(&self, due: &[usize], steps: &[StepRecord]) {
        *self.due.lock().expect("due lock") =
            due.iter().map(|&i| steps[i].target.clone()).collect();
    }

    fn subcloud_writes(&self) -> Vec<SubcloudStepWrite> {
        self.pace.take_writes()
    }

    fn step_ended(&self, step: &StepRecord) {
        self.pace.step_ended(step);
    }

    fn command(&self, _action: SwDeployPhase, _target: &str) -> Option<(CommandKind, Value)> {
        None
    }

    fn result_of(
        &self,
        _phase: SwDeployPhase,
        _target: &str,
        outcome: &CommandOutcome,
    ) -> SwDeployResult {
        SwDeployResult::Failed(outcome.message.clone())
    }

    async fn check(
        &self,
        app: &AppState,
        action: SwDeployPhase,
        index: usize,
        steps: &[StepRecord],
        _cache: &mut (),
        _now: Timestamp,
    ) -> anyhow::Result<Option<SwDeployResult>> {
        let step = &steps[index];
        let subcloud = match self.subcloud(app, &step.target).await {
            Ok(subcloud) => subcloud,
            Err(Trouble::Fail(reason)) => return Ok(Some(SwDeployResult::Failed(reason))),
            Err(Trouble::Retry) => return Ok(None),
        };
        let prestage = || {
            self.record
                .prestage
                .as_ref()
                .ok_or_else(|| failed("a prestage phase in a strategy without prestage"))
        };
        let result = match action {
            SwDeployPhase::PreCheck => self.pre_check(app, &subcloud).await.map(Some),
            SwDeployPhase::PrestagePrecheck => match prestage() {
                Ok(request) => precheck_and_begin(app, &subcloud, request).await.map(Some),
                Err(e) => Err(e),
            },
            SwDeployPhase::PrestagingPackages => match prestage() {
                Ok(request) => {
                    let progress = |details: String| self.pace.report(index, step, details);
                    ship(app, &self.strategy_id, &progress, &subcloud, request).await
                }
                Err(e) => Err(e),
            },
            SwDeployPhase::PrestagingImages => match prestage() {
                Ok(request) => {
                    finish_prestage(app, &subcloud, &request.sw_version).await;
                    Ok(Some(SwDeployResult::Next))
                }
                Err(e) => Err(e),
            },
            SwDeployPhase::CreateVim => self.create_vim(app, &subcloud).await.map(Some),
            SwDeployPhase::ApplyVim => self.apply_vim(app, index, step, &subcloud).await,
            SwDeployPhase::Finish => self.finish(app, &subcloud).await.map(Some),
        };
        let result = match result {
            Ok(result) => result,
            Err(Trouble::Retry) => None,
            Err(Trouble::Fail(reason)) => Some(SwDeployResult::Failed(reason)),
        };
        if PRESTAGE_PHASES.contains(&action) {
            record_result(app, &subcloud, &result).await;
        }
        Ok(result)
    }

    /// With prestage, transfers of steps no longer shipping stop, and a prestage phase that
    /// timed out leaves its subcloud `failed`.
    async fn tick_written(
        &self,
        app: &AppState,
        _strategy: &StrategyRecord,
        steps: &[StepRecord],
        settled: TickEnd,
        _now: Timestamp,
    ) -> anyhow::Result<()> {
        if settled.changed && self.record.prestage.is_some() {
            settle_prestage(app, &self.strategy_id, steps, &self.reconciled).await;
        }
        Ok(())
    }
}
