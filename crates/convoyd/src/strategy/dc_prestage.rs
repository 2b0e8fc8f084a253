//! The System Controller's prestage strategy: each step ships the release to one subcloud
//! through dcmanager's states (`convoy_core::dc_strategy::prestage`):
//!
//! - `prestage-precheck`: the original's subcloud checks and messages, room for the release
//!   in the subcloud's store, and the sysadmin password, which the subcloud verifies (a
//!   login as its `admin`, revoked at once); the subcloud's prestage status becomes
//!   `prestaging`;
//! - `prestage-preparing-packages`: the strategy's one preparation (the first step to get
//!   here starts it, the others wait for it; once it failed, every later step fails at once);
//! - `prestaging-packages`: the chunked transfer, its progress in the step's details;
//! - `prestaging-images`: Convoy's releases carry no container images: nothing to send.
//!
//! The subcloud's prestage status ends `complete` (its versions gain the release's),
//! `failed`, or cleared when the step was skipped.

use std::collections::BTreeSet;
use std::sync::Mutex;

use base64::Engine;
use convoy_api::dc::SiteAudit;
use convoy_api::hosts::CommandOutcome;
use convoy_api::prestage::PrestageTarget;
use convoy_core::command::CommandKind;
use convoy_core::dc_strategy::prestage::{
    Preparation, PrestagePhase, PrestageResult, PrestageRules, PrestageSubcloud, precheck,
    preparation_result, prestage_rules, transfer_details,
};
use convoy_core::dc_strategy::rules::DcPhase;
use convoy_core::strategy::Terminal;
use convoy_core::subcloud::{Availability, Management};
use convoy_store::subclouds::{PrestageWrite, SubcloudRecord};
use convoy_store::{StepRecord, StrategyRecord, SubcloudStepWrite};
use jiff::Timestamp;
use serde_json::Value;

use super::site_kind::{SiteKind, TickEnd};
use super::subcloud_call::{
    DcStrategyRecord, PrestageRequest, SubcloudPace, Trouble, call, client, failed, subcloud,
};
use crate::patches::repository::Site;
use crate::prestage::preparation::{BundleFile, Prepared, bundles_of};
use crate::prestage::transfer::{TransferError, TransferState};
use crate::state::AppState;

pub const PRESTAGING: &str = "prestaging";

pub struct DcPrestageSite {
    rules: PrestageRules,
    request: PrestageRequest,
    strategy_id: String,
    pace: SubcloudPace,
    /// Failed steps whose subcloud was seen to (`settle_prestage`).
    reconciled: Mutex<BTreeSet<String>>,
}

impl DcPrestageSite {
    pub fn new(
        record: DcStrategyRecord,
        strategy_id: &str,
        app: &AppState,
    ) -> anyhow::Result<DcPrestageSite> {
        let request = record
            .prestage
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a prestage strategy without its request"))?;
        Ok(DcPrestageSite {
            rules: prestage_rules(record.time_scale),
            request,
            strategy_id: strategy_id.to_string(),
            pace: SubcloudPace::new(app),
            reconciled: Mutex::new(BTreeSet::new()),
        })
    }
}

/// The bundles `request` ships, from the System Controller's repository.
pub async fn bundles_for(
    app: &AppState,
    request: &PrestageRequest,
) -> Result<Vec<BundleFile>, Trouble> {
    let site = Site::load(app).await.map_err(|_| Trouble::Retry)?;
    Ok(bundles_of(
        &site,
        &app.patch_dir,
        &request.sw_version,
        request.for_sw_deploy,
    ))
}

/// `prestage-precheck`: the checks, then the subcloud's prestage status `prestaging`.
pub async fn precheck_and_begin(
    app: &AppState,
    subcloud: &SubcloudRecord,
    request: &PrestageRequest,
) -> Result<PrestageResult, Trouble> {
    let bundles = bundles_for(app, request).await?;
    let result = precheck_subcloud(app, subcloud, request, &bundles).await?;
    if result == PrestageResult::Next {
        set_status(
            app,
            subcloud,
            PrestageWrite {
                status: Some(PRESTAGING.into()),
                ..PrestageWrite::default()
            },
        )
        .await;
    }
    Ok(result)
}

/// `prestaging-packages`: the preparation of `strategy_id` (started here if no phase did),
/// then the transfer, its progress given to `progress` (a step's details). None while
/// either runs.
pub async fn ship(
    app: &AppState,
    strategy_id: &str,
    progress: &(dyn Fn(String) + Sync),
    subcloud: &SubcloudRecord,
    request: &PrestageRequest,
) -> Result<Option<PrestageResult>, Trouble> {
    let bundles = match app.preparations.outcome(strategy_id) {
        Some(Prepared::Ready(bundles)) => bundles,
        Some(Prepared::Failed(reason)) => {
            return Ok(preparation_result(
                &subcloud.name,
                &Preparation::Failed(reason),
            ));
        }
        None => {
            app.preparations
                .start(strategy_id, bundles_for(app, request).await?);
            return Ok(None);
        }
    };
    let target = if request.for_sw_deploy {
        PrestageTarget::SwDeploy
    } else {
        PrestageTarget::Install
    };
    match app.transfers.poll(strategy_id, &subcloud.name) {
        None => {
            app.transfers
                .start(app, strategy_id, subcloud, bundles, target);
            Ok(None)
        }
        Some(TransferState::Running { done, total }) => {
            progress(transfer_details(done, total));
            Ok(None)
        }
        Some(TransferState::Done(_)) => Ok(Some(PrestageResult::Next)),
        // Started again at the next poll: the chunks received are kept.
        Some(TransferState::Failed(TransferError::Transient(_))) => Ok(None),
        Some(TransferState::Failed(TransferError::Refused(reason))) => {
            Err(prestage_failed(&subcloud.name, reason))
        }
    }
}

/// `prestaging-images`: Convoy's releases carry no container images; the subcloud's
/// prestage is `complete` with the version added to its versions.
pub async fn finish_prestage(app: &AppState, subcloud: &SubcloudRecord, version: &str) {
    set_status(
        app,
        subcloud,
        PrestageWrite {
            status: Some("complete".into()),
            versions: Some(with_version(subcloud.prestage_versions.as_deref(), version)),
            ..PrestageWrite::default()
        },
    )
    .await;
}

/// What a prestage phase's result leaves on the subcloud: a skip clears its prestage status
/// (as if never prestaged, as the original's), a failure makes it `failed`.
pub async fn record_result(
    app: &AppState,
    subcloud: &SubcloudRecord,
    result: &Option<PrestageResult>,
) {
    let status = match result {
        Some(PrestageResult::Done(_)) => None,
        Some(PrestageResult::Failed(_)) => Some("failed".to_string()),
        _ => return,
    };
    set_status(
        app,
        subcloud,
        PrestageWrite {
            status,
            ..PrestageWrite::default()
        },
    )
    .await;
}

/// After a tick that changed steps of a strategy that prestages: the transfers of steps no
/// longer shipping stop, and a subcloud whose step failed without a check saying so (a
/// timeout) is left `failed` rather than `prestaging`. `seen` remembers the failed steps
/// already seen to. (A failed step's error description is written with the tick that ends
/// it: [`SubcloudPace::step_ended`].)
pub async fn settle_prestage(
    app: &AppState,
    strategy_id: &str,
    steps: &[StepRecord],
    seen: &Mutex<BTreeSet<String>>,
) {
    let shipping: BTreeSet<&str> = steps
        .iter()
        .filter(|s| s.state == PrestagePhase::PrestagingPackages.as_str())
        .map(|s| s.target.as_str())
        .collect();
    app.transfers
        .stop(strategy_id, |name| shipping.contains(name));
    let failed: Vec<&StepRecord> = {
        let seen = seen.lock().expect("seen lock");
        steps
            .iter()
            .filter(|s| Terminal::parse(&s.state) == Some(Terminal::Failed))
            .filter(|s| !seen.contains(&s.target))
            .collect()
    };
    for step in failed {
        if let Ok(subcloud) = subcloud(app, &step.target).await {
            let write = PrestageWrite {
                status: Some("failed".into()),
                when: Some(Some(PRESTAGING.into())),
                ..PrestageWrite::default()
            };
            let _ = app.subclouds.set_prestage(subcloud.id, &write).await;
        }
        seen.lock().expect("seen lock").insert(step.target.clone());
    }
}

/// Sets the subcloud's prestage status; a failure to write is logged (the step goes on).
pub async fn set_status(app: &AppState, subcloud: &SubcloudRecord, write: PrestageWrite) {
    if let Err(e) = app.subclouds.set_prestage(subcloud.id, &write).await {
        tracing::warn!(
            subcloud = subcloud.name,
            "cannot record the prestage status: {e}"
        );
    }
}

/// `24.09,25.09`: the versions with `version` added.
pub fn with_version(versions: Option<&str>, version: &str) -> String {
    let mut all: BTreeSet<&str> = versions
        .unwrap_or("")
        .split(',')
        .filter(|v| !v.is_empty())
        .collect();
    all.insert(version);
    all.into_iter().collect::<Vec<_>>().join(",")
}

fn prestage_failed(subcloud: &str, details: impl std::fmt::Display) -> Trouble {
    failed(format!("Prestage failed '{subcloud}': {details}"))
}

/// The checks of `prestage-precheck` for `request` on `subcloud`: the original's, room in
/// its store for `bundles`, and its sysadmin password.
pub async fn precheck_subcloud(
    app: &AppState,
    subcloud: &SubcloudRecord,
    request: &PrestageRequest,
    bundles: &[BundleFile],
) -> Result<PrestageResult, Trouble> {
    let alarms = subcloud
        .audit
        .as_deref()
        .and_then(|a| serde_json::from_str::<SiteAudit>(a).ok())
        .is_some_and(|a| a.mgmt_affecting_alarms > 0);
    let facts = PrestageSubcloud {
        name: subcloud.name.clone(),
        online: subcloud.availability == Availability::Online,
        managed: subcloud.management == Management::Managed,
        deploy_status: subcloud.deploy_status.clone(),
        prestage_status: subcloud.prestage_status.clone(),
        software_version: subcloud.software_version.clone(),
        management_affecting_alarms: alarms,
    };
    // The store's free space is only asked of a subcloud that passes the other checks.
    if let Err(refusal) = precheck(
        &facts,
        &request.sw_version,
        request.for_sw_deploy,
        request.force,
        0,
        0,
    ) {
        return Ok(refusal);
    }
    let client = client(app, subcloud).await?;
    let store = call(app, subcloud, client.prestage_store()).await?;
    let needed: u64 = bundles.iter().map(|b| b.size).sum();
    if let Err(refusal) = precheck(
        &facts,
        &request.sw_version,
        request.for_sw_deploy,
        request.force,
        needed,
        store.free_bytes,
    ) {
        return Ok(refusal);
    }
    let password = base64::engine::general_purpose::STANDARD
        .decode(&request.sysadmin_password)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| prestage_failed(&subcloud.name, "the sysadmin password does not decode"))?;
    let accepted = call(
        app,
        subcloud,
        app.sessions.verify_sysadmin(&app.dc, subcloud, &password),
    )
    .await?;
    if !accepted {
        return Err(prestage_failed(
            &subcloud.name,
            "the subcloud refused the sysadmin password; give the password of its admin",
        ));
    }
    Ok(PrestageResult::Next)
}

impl DcPrestageSite {
    async fn preparing(
        &self,
        app: &AppState,
        subcloud: &SubcloudRecord,
    ) -> Result<Option<PrestageResult>, Trouble> {
        let preparation = match app.preparations.outcome(&self.strategy_id) {
            Some(Prepared::Ready(_)) => Preparation::Ready,
            Some(Prepared::Failed(reason)) => Preparation::Failed(reason),
            None => {
                let bundles = bundles_for(app, &self.request).await?;
                app.preparations.start(&self.strategy_id, bundles);
                Preparation::Pending
            }
        };
        Ok(preparation_result(&subcloud.name, &preparation))
    }
}

impl SiteKind for DcPrestageSite {
    type Rules = PrestageRules;
    type TickCache = ();

    fn rules(&self) -> &PrestageRules {
        &self.rules
    }

    fn sweep_parallelism(&self, _strategy: &StrategyRecord) -> usize {
        1
    }

    fn parallel_checks(&self) -> usize {
        self.pace.parallel()
    }

    /// A transfer's progress is read every `--subcloud-poll-interval`.
    fn recheck(&self) -> jiff::SignedDuration {
        self.pace.recheck()
    }

    fn progress(&self) -> Vec<(usize, String)> {
        self.pace.take_progress()
    }

    fn subcloud_writes(&self) -> Vec<SubcloudStepWrite> {
        self.pace.take_writes()
    }

    fn step_ended(&self, step: &StepRecord) {
        self.pace.step_ended(step);
    }

    fn command(&self, _action: PrestagePhase, _target: &str) -> Option<(CommandKind, Value)> {
        None
    }

    fn result_of(
        &self,
        _phase: PrestagePhase,
        _target: &str,
        outcome: &CommandOutcome,
    ) -> PrestageResult {
        PrestageResult::Failed(outcome.message.clone())
    }

    async fn check(
        &self,
        app: &AppState,
        action: PrestagePhase,
        index: usize,
        steps: &[StepRecord],
        _cache: &mut (),
        _now: Timestamp,
    ) -> anyhow::Result<Option<PrestageResult>> {
        let step = &steps[index];
        let subcloud = match subcloud(app, &step.target).await {
            Ok(subcloud) => subcloud,
            Err(Trouble::Fail(reason)) => return Ok(Some(PrestageResult::Failed(reason))),
            Err(Trouble::Retry) => return Ok(None),
        };
        let request = &self.request;
        let result = match action {
            PrestagePhase::Precheck => precheck_and_begin(app, &subcloud, request).await.map(Some),
            PrestagePhase::PreparingPackages => self.preparing(app, &subcloud).await,
            PrestagePhase::PrestagingPackages => {
                let progress = |details: String| self.pace.report(index, step, details);
                ship(app, &self.strategy_id, &progress, &subcloud, request).await
            }
            PrestagePhase::PrestagingImages => {
                finish_prestage(app, &subcloud, &request.sw_version).await;
                Ok(Some(PrestageResult::Next))
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(Trouble::Retry) => None,
            Err(Trouble::Fail(reason)) => Some(PrestageResult::Failed(reason)),
        };
        record_result(app, &subcloud, &result).await;
        Ok(result)
    }

    /// A step that failed without a check saying so (its phase timed out) leaves its
    /// subcloud `failed` rather than `prestaging`; a transfer whose step ended stops.
    async fn tick_written(
        &self,
        app: &AppState,
        _strategy: &StrategyRecord,
        steps: &[StepRecord],
        settled: TickEnd,
        _now: Timestamp,
    ) -> anyhow::Result<()> {
        if settled.changed {
            settle_prestage(app, &self.strategy_id, steps, &self.reconciled).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_kept_sorted_and_once() {
        assert_eq!(with_version(None, "25.09"), "25.09");
        assert_eq!(with_version(Some("25.09"), "24.09"), "24.09,25.09");
        assert_eq!(with_version(Some("24.09,25.09"), "25.09"), "24.09,25.09");
    }
}
