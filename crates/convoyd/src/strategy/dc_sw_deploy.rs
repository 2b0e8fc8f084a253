//! The System Controller's sw-deploy strategy: each step drives one subcloud through
//! dcmanager's states (`convoy_core::dc_strategy::sw_deploy`) by calling the subcloud's own
//! convoyd as its service account:
//!
//! - `sw-deploy pre-check`: the subcloud is managed and online; the release is in its
//!   repository (else `Release <id> is not prestaged.`), and done if already deployed there;
//!   no other strategy runs there (a finished sw-deploy strategy left there is deleted);
//! - `create VIM sw-deploy strategy`: the subcloud's `/api/orchestration/sw-upgrade/strategy`
//!   for the release, reused if it is already there for it, replaced if it ended;
//! - `apply VIM sw-deploy strategy`: applies it and follows it, the step's details showing
//!   `<phase> phase is <pct>% complete`; a failed read is retried until the phase's timeout;
//! - `finish sw-deploy strategy`: deletes the subcloud's strategy and records the subcloud's
//!   software version and deploy status `complete`.
//!
//! Every call is bounded by the audit timeout. A refused token is forgotten and the check
//! asked again.

use std::collections::HashMap;

use convoy_api::hosts::CommandOutcome;
use convoy_api::{Client, ClientError};
use convoy_core::command::CommandKind;
use convoy_core::dc_strategy::DcStrategyType;
use convoy_core::dc_strategy::sw_deploy::{
    SwDeployPhase, SwDeployResult, SwDeployRules, progress_details, sw_deploy_rules,
};
use convoy_core::strategy::kind::Kind;
use convoy_core::subcloud::{ApplyType, Availability, Management, Reference};
use convoy_core::sw_update::options::{AlarmRestrictions, SwUpdateKind, SwUpgradeOptions};
use convoy_store::subclouds::SubcloudRecord;
use convoy_store::{StepRecord, StrategyRecord};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::site_kind::SiteKind;
use crate::state::AppState;
use crate::subclouds::connection::token_refused;

/// What a System Controller strategy keeps (the strategy record's options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DcStrategyRecord {
    #[serde(rename = "type")]
    pub kind: DcStrategyType,
    pub apply_type: Option<ApplyType>,
    pub cloud_name: Option<String>,
    pub group: Option<String>,
    pub release_id: Option<String>,
    /// The subclouds' deploy records are deleted once deployed.
    pub delete: bool,
    /// The step time scale the timeouts were set with.
    pub time_scale: f64,
}

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
    /// Subclouds called at once in a tick (the audit's concurrency).
    parallel: usize,
    /// How often a waiting step reads its subcloud again.
    poll_interval: std::time::Duration,
    /// The subclouds of the steps in a phase, read once for the tick (the site lives for
    /// one tick): a thousand checks at once cost one read, not a thousand.
    subclouds: tokio::sync::OnceCell<HashMap<String, SubcloudRecord>>,
    /// Progress seen by this tick's checks, by step index.
    progress: std::sync::Mutex<Vec<(usize, String)>>,
}

impl DcSwDeploySite {
    pub fn new(record: DcStrategyRecord, app: &AppState) -> DcSwDeploySite {
        DcSwDeploySite {
            rules: sw_deploy_rules(record.time_scale),
            record,
            parallel: app.dc.audit_concurrency.max(1),
            poll_interval: app.dc.poll_interval,
            subclouds: tokio::sync::OnceCell::new(),
            progress: std::sync::Mutex::default(),
        }
    }

    fn release(&self) -> &str {
        self.record.release_id.as_deref().unwrap_or("")
    }
}

/// A call's failure: the check is asked again (None), or the step fails with a reason.
enum Trouble {
    Retry,
    Fail(String),
}

fn failed(reason: impl Into<String>) -> Trouble {
    Trouble::Fail(reason.into())
}

/// A subcloud call bounded by the audit timeout; a refused token is forgotten and retried.
async fn call<T>(
    app: &AppState,
    subcloud: &SubcloudRecord,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, Trouble> {
    match tokio::time::timeout(app.dc.audit_timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if token_refused(&e) => {
            app.sessions.forget(subcloud.id);
            Err(Trouble::Retry)
        }
        Ok(Err(ClientError::Api {
            status, message, ..
        })) if status < 500 => Err(failed(message)),
        // Unreachable, a 5xx, or no answer in time: transient, asked again until the
        // phase's timeout.
        Ok(Err(e)) => {
            tracing::debug!(subcloud = subcloud.name, "subcloud call failed: {e}");
            Err(Trouble::Retry)
        }
        Err(_) => Err(Trouble::Retry),
    }
}

impl DcSwDeploySite {
    async fn subcloud(
        &self,
        app: &AppState,
        name: &str,
        steps: &[StepRecord],
    ) -> Result<SubcloudRecord, Trouble> {
        let loaded = self
            .subclouds
            .get_or_try_init(|| async {
                let names: Vec<String> = steps
                    .iter()
                    .filter(|s| self.rules.parse_phase(s.stage, &s.state).is_some())
                    .map(|s| s.target.clone())
                    .collect();
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

    async fn client(&self, app: &AppState, subcloud: &SubcloudRecord) -> Result<Client, Trouble> {
        call(app, subcloud, app.sessions.client(&app.dc, subcloud)).await
    }

    async fn set_deploy_status(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
        status: &str,
        version: Option<String>,
    ) {
        let set = app.subclouds.set_deploy_status(
            subcloud.id,
            status,
            version.as_deref(),
            crate::clock::now(),
        );
        if let Err(e) = set.await {
            tracing::warn!(
                subcloud = subcloud.name,
                "cannot record the deploy status: {e}"
            );
        }
    }

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
        let client = self.client(app, subcloud).await?;
        let release = self.release();
        let shown = match call(app, subcloud, client.release(release)).await {
            Ok(shown) => shown,
            Err(Trouble::Fail(_)) => {
                return Err(failed(format!("Release {release} is not prestaged.")));
            }
            Err(retry) => return Err(retry),
        };
        if matches!(shown.state.as_str(), "deployed" | "committed") {
            self.set_deploy_status(app, subcloud, "complete", Some(shown.sw_version))
                .await;
            return Ok(SwDeployResult::Done(format!(
                "Release {release} is already deployed on the subcloud."
            )));
        }
        let patch = call(
            app,
            subcloud,
            client.sw_update_strategy(SwUpdateKind::SwPatch),
        )
        .await?;
        if !patch["strategy"].is_null() {
            return Err(failed("Subcloud has a sw-patch strategy; delete it first"));
        }
        let existing = call(
            app,
            subcloud,
            client.sw_update_strategy(SwUpdateKind::SwUpgrade),
        )
        .await?;
        let strategy = &existing["strategy"];
        if !strategy.is_null() {
            let state = strategy["state"].as_str().unwrap_or("");
            if !VIM_OVER.contains(&state) && strategy["release"] != release {
                return Err(failed(format!(
                    "Subcloud has a sw-upgrade strategy in state {state} for another release"
                )));
            }
        }
        Ok(SwDeployResult::Next)
    }

    async fn create_vim(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<SwDeployResult, Trouble> {
        let client = self.client(app, subcloud).await?;
        let kind = SwUpdateKind::SwUpgrade;
        let existing = call(app, subcloud, client.sw_update_strategy(kind)).await?;
        let strategy = &existing["strategy"];
        if !strategy.is_null() {
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
        }
        let options = SwUpgradeOptions {
            release: vec![self.release().to_string()],
            delete: self.record.delete,
            alarm_restrictions: AlarmRestrictions::Relaxed,
            ..SwUpgradeOptions::default()
        };
        let created = match call(
            app,
            subcloud,
            client.create_sw_update_strategy(kind, &options),
        )
        .await
        {
            Err(Trouble::Fail(reason)) => {
                self.set_deploy_status(app, subcloud, DEPLOY_STRATEGY_FAILED, None)
                    .await;
                return Err(failed(format!("Failed to create VIM strategy: {reason}")));
            }
            other => other?,
        };
        let state = created["strategy"]["state"].as_str().unwrap_or("");
        if state == "ready-to-apply" {
            return Ok(SwDeployResult::Next);
        }
        let reason = created["strategy"]["build-phase"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.set_deploy_status(app, subcloud, DEPLOY_STRATEGY_FAILED, None)
            .await;
        Err(failed(format!(
            "VIM strategy build failed: {reason} State: {state} Strategy: sw-upgrade"
        )))
    }

    /// None while the subcloud's strategy applies.
    async fn apply_vim(
        &self,
        app: &AppState,
        index: usize,
        step: &StepRecord,
        subcloud: &SubcloudRecord,
    ) -> Result<Option<SwDeployResult>, Trouble> {
        let client = self.client(app, subcloud).await?;
        let kind = SwUpdateKind::SwUpgrade;
        let shown = call(app, subcloud, client.sw_update_strategy(kind)).await?;
        let strategy = &shown["strategy"];
        let state = strategy["state"].as_str().unwrap_or("");
        match state {
            "ready-to-apply" => {
                self.set_deploy_status(app, subcloud, DEPLOY_IN_PROGRESS, None)
                    .await;
                call(
                    app,
                    subcloud,
                    client.sw_update_strategy_action(kind, "apply-all", None),
                )
                .await?;
                Ok(None)
            }
            "applying" => {
                let phase = strategy["current-phase"].as_str().unwrap_or("apply");
                let percent = strategy["current-phase-completion-percentage"]
                    .as_u64()
                    .unwrap_or(0);
                let details = progress_details(phase, percent);
                if step.details != details {
                    self.progress.lock().unwrap().push((index, details));
                }
                Ok(None)
            }
            "applied" => Ok(Some(SwDeployResult::Next)),
            "" => Err(failed("the subcloud's sw-upgrade strategy is gone")),
            other => {
                self.set_deploy_status(app, subcloud, DEPLOY_STRATEGY_FAILED, None)
                    .await;
                let reason = strategy["apply-phase"]["reason"].as_str().unwrap_or("");
                Err(failed(format!(
                    "Failed for subcloud {}: {reason} State: {other} Strategy: sw-upgrade",
                    subcloud.name
                )))
            }
        }
    }

    async fn finish(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<SwDeployResult, Trouble> {
        let client = self.client(app, subcloud).await?;
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
        let shown = call(app, subcloud, client.release(self.release())).await?;
        self.set_deploy_status(app, subcloud, "complete", Some(shown.sw_version))
            .await;
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
        self.parallel
    }

    /// A subcloud's strategy is read again every `--subcloud-poll-interval` while it applies
    /// (dcmanager reads it every minute; 10 s keeps the step's progress current, and 10,000
    /// subclouds cost the System Controller 1,000 reads a second at most).
    fn recheck(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.poll_interval)
            .unwrap_or(jiff::SignedDuration::from_secs(10))
    }

    fn progress(&self) -> Vec<(usize, String)> {
        std::mem::take(&mut *self.progress.lock().unwrap())
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
        let subcloud = match self.subcloud(app, &step.target, steps).await {
            Ok(subcloud) => subcloud,
            Err(Trouble::Fail(reason)) => return Ok(Some(SwDeployResult::Failed(reason))),
            Err(Trouble::Retry) => return Ok(None),
        };
        let result = match action {
            SwDeployPhase::PreCheck => self.pre_check(app, &subcloud).await.map(Some),
            SwDeployPhase::CreateVim => self.create_vim(app, &subcloud).await.map(Some),
            SwDeployPhase::ApplyVim => self.apply_vim(app, index, step, &subcloud).await,
            SwDeployPhase::Finish => self.finish(app, &subcloud).await.map(Some),
        };
        Ok(match result {
            Ok(result) => result,
            Err(Trouble::Retry) => None,
            Err(Trouble::Fail(reason)) => Some(SwDeployResult::Failed(reason)),
        })
    }
}
