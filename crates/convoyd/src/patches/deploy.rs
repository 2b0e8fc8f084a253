//! The site's software deploy (USM, spec §5) over the one repository the patch verbs use.
//!
//! `start` applies the release and records the deploy in one transaction, so the patch view
//! (`Partial-Apply`) and the release view (`deploying`) can never disagree; the hosts then
//! install it as they would any applied patch. Every later move goes through
//! `DeployState::can_become` and is written compare-and-set, and each is idempotent, so a
//! strategy step re-run after a crash finds its work done.

use std::collections::BTreeMap;

use convoy_core::patch::operations::{ApplyRequest, Selection};
use convoy_core::patch::state::any_installing;
use convoy_core::patch::{HostReport, PatchId, RepoState};
use convoy_core::sw_update::release::{
    DeployState, HostDeployState, ReleaseState, host_deploy_state, release_state,
};
use convoy_store::DeployRecord;
use jiff::Timestamp;

use super::repository::Site;
use super::upload::refused;
use crate::api::ApiError;
use crate::state::AppState;

/// USM's answer for a release the repository does not hold, or cannot deploy.
pub const UNAVAILABLE: &str = "Software release does not exist or is unavailable";

impl Site {
    /// The deploy's state if it deploys `id`.
    pub fn deploy_of(&self, id: &PatchId) -> Option<DeployState> {
        self.deploy
            .as_ref()
            .filter(|d| d.release_id == id.as_str())
            .map(|d| d.state)
    }

    /// Every release's USM state, from the same repository the patch view reads.
    pub fn release_states(&self) -> BTreeMap<PatchId, ReleaseState> {
        let patch_states = self.patch_states();
        self.repo
            .iter()
            .map(|(id, entry)| {
                let patch = patch_states
                    .get(id)
                    .copied()
                    .unwrap_or(convoy_core::patch::PatchState::Unknown);
                let state = release_state(entry.state, patch, self.deploy_of(id));
                (id.clone(), state)
            })
            .collect()
    }

    /// Whether the host takes release `id` (its software version and personality), and
    /// whether it has it installed.
    pub fn release_on(&self, report: &HostReport, id: &PatchId) -> (bool, bool) {
        let takes = self.repo.get(id).is_some_and(|e| {
            e.metadata.sw_version == report.release && e.metadata.is_for(report.personality)
        });
        (takes, report.installed.contains(id))
    }

    /// Each host's deploy state for the deploy's release, by hostname; hosts whose agent
    /// reports no release are left out.
    pub fn host_deploy_states(&self) -> Vec<(String, HostDeployState)> {
        let Some(deploy) = &self.deploy else {
            return Vec::new();
        };
        let id = deploy.release_id.parse::<PatchId>().ok();
        self.reports
            .iter()
            .map(|report| {
                let (takes, installed) = id
                    .as_ref()
                    .map_or((false, false), |id| self.release_on(report, id));
                let state = host_deploy_state(takes, installed, report.state);
                (report.hostname.clone(), state)
            })
            .collect()
    }
}

fn refuse(message: impl Into<String>) -> ApiError {
    ApiError::conflict(message)
}

/// `deploy start`: applies `release_id` and records the deploy (`start-done`: applying is
/// immediate here). A deploy of the same release already started is returned as it is.
pub async fn start(
    state: &AppState,
    release_id: &str,
    now: Timestamp,
) -> Result<DeployRecord, ApiError> {
    let site = Site::load_for_change(state).await?;
    let id: PatchId = release_id
        .parse()
        .map_err(|_| ApiError::not_found(UNAVAILABLE))?;
    if let Some(deploy) = &site.deploy {
        if deploy.release_id == release_id && deploy.state.is_started() {
            return Ok(deploy.clone());
        }
        return Err(refuse(format!(
            "a deploy of {} is {}; complete or delete it before deploying {release_id}",
            deploy.release_id, deploy.state
        )));
    }
    let entry = site
        .repo
        .get(&id)
        .ok_or_else(|| ApiError::not_found(UNAVAILABLE))?;
    let release = site.release_states()[&id];
    if release != ReleaseState::Available || entry.state != RepoState::Available {
        return Err(refuse(format!(
            "{release_id} is {release}; only an available release can be deployed"
        )));
    }
    let outcome = convoy_core::patch::operations::apply(
        &site.repo,
        &ApplyRequest {
            patches: Selection::Ids(vec![id.clone()]),
            running_release: state.release.clone(),
            hosts_installing: any_installing(&site.reports),
        },
    )
    .map_err(refused)?;
    let deploy = DeployRecord {
        release_id: release_id.to_string(),
        from_release: state.release.to_string(),
        state: DeployState::StartDone,
        reboot_required: entry.metadata.reboot_required,
        started_at: now,
        updated_at: now,
    };
    site.persist_with_deploy(state, &outcome, &BTreeMap::new(), Some(deploy.clone()))
        .await?;
    tracing::info!(release = release_id, "software deploy started");
    state.wakeups.recheck_alarms();
    Ok(deploy)
}

/// Moves the deploy along `path` from wherever it is on it: each state after the current
/// one is written in turn (compare-and-set). Already at the path's end is done; a deploy
/// not on the path, or none, is refused.
pub async fn advance(
    state: &AppState,
    path: &[DeployState],
    now: Timestamp,
) -> Result<DeployRecord, ApiError> {
    let deploy = state
        .store
        .deploy()
        .await?
        .ok_or_else(|| refuse("there is no software deploy; start one first"))?;
    let at = path
        .iter()
        .position(|s| *s == deploy.state)
        .ok_or_else(|| {
            refuse(format!(
                "the deploy of {} is {}; it cannot go to {}",
                deploy.release_id,
                deploy.state,
                path.last().map_or("", |s| s.as_str())
            ))
        })?;
    let mut current = deploy.state;
    for next in &path[at + 1..] {
        debug_assert!(current.can_become(*next), "{current} -> {next}");
        if !state.store.set_deploy_state(current, *next, now).await? {
            return Err(ApiError::conflict(
                "the software deploy changed meanwhile; look at it again and retry",
            ));
        }
        tracing::info!(release = deploy.release_id, state = %next, "software deploy");
        current = *next;
    }
    state.wakeups.recheck_alarms();
    Ok(DeployRecord {
        state: current,
        updated_at: now,
        ..deploy
    })
}

/// `deploy delete`: removes a completed deploy record; no record is done already.
pub async fn delete(state: &AppState) -> Result<(), ApiError> {
    let Some(deploy) = state.store.deploy().await? else {
        return Ok(());
    };
    if !deploy.state.is_deletable() {
        return Err(refuse(format!(
            "the deploy of {} is {}; only a completed deploy can be deleted",
            deploy.release_id, deploy.state
        )));
    }
    if !state.store.delete_deploy(deploy.state).await? {
        return Err(ApiError::conflict(
            "the software deploy changed meanwhile; look at it again and retry",
        ));
    }
    tracing::info!(release = deploy.release_id, "software deploy deleted");
    state.wakeups.recheck_alarms();
    Ok(())
}
