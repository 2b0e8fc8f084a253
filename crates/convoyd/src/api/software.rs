//! `/v1/software/...`: releases and the site's software deploy (USM's `software list`,
//! `show`, `deploy show`, `deploy host-list`), read from the repository the patch verbs
//! share. Deploys are made by a sw-deploy strategy (`/api/orchestration/sw-upgrade`).

use axum::Json;
use axum::extract::State;
use convoy_api::ErrorBody;
use convoy_api::software::{
    DeployHostList, DeployHostRow, DeployList, DeployView, ReleaseDetail, ReleaseList, ReleaseRow,
};
use convoy_core::patch::PatchId;
use convoy_core::sw_update::release::ReleaseState;
use jiff::Timestamp;
use serde::Deserialize;

use super::ApiError;
use super::extract::{ApiPath, ApiQuery};
use crate::patches::deploy::UNAVAILABLE;
use crate::patches::repository::Site;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// Only releases in this state (`available`, `deploying`, `deployed`, `removing`,
    /// `committed`...).
    state: Option<String>,
}

fn date(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `GET /v1/software/releases`: `software list`.
#[utoipa::path(
    get, path = "/v1/software/releases", tag = "software", security(("user_token" = [])),
    params(ReleaseQuery),
    responses((status = 200, description = "The releases in the repository", body = ReleaseList), (status = 400, description = "An unknown state", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReleaseQuery>,
) -> Result<Json<ReleaseList>, ApiError> {
    let wanted: Option<ReleaseState> = query
        .state
        .as_deref()
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::invalid(
                    "state",
                    format!(
                        "{s:?} is not a release state; use one of {}",
                        ReleaseState::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let site = Site::load(&state).await?;
    let releases = site
        .release_states()
        .into_iter()
        .filter(|(_, s)| wanted.is_none_or(|w| *s == w))
        .map(|(id, s)| ReleaseRow {
            rr: if site.repo[&id].metadata.reboot_required {
                "True"
            } else {
                "False"
            }
            .into(),
            release: id.to_string(),
            state: s.to_string(),
        })
        .collect();
    Ok(Json(ReleaseList { releases }))
}

/// `GET /v1/software/releases/{id}`: `software show`.
#[utoipa::path(
    get, path = "/v1/software/releases/{id}", tag = "software", security(("user_token" = [])),
    params(("id" = String, Path, description = "The release's id")),
    responses((status = 200, description = "The release", body = ReleaseDetail), (status = 404, description = "No such release", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReleaseDetail>, ApiError> {
    let id: PatchId = id
        .parse()
        .map_err(|e: convoy_core::ValidationError| ApiError::invalid("id", e.reason))?;
    let site = Site::load(&state).await?;
    let Some(entry) = site.repo.get(&id) else {
        return Err(ApiError::not_found(format!("{UNAVAILABLE}: {id}")));
    };
    let release = site.release_states()[&id];
    let patch = site.patch_states().get(&id).map(ToString::to_string);
    let m = &entry.metadata;
    Ok(Json(ReleaseDetail {
        release_id: id.to_string(),
        state: release.to_string(),
        sw_version: m.sw_version.to_string(),
        status: m.status.to_string(),
        unremovable: m.unremovable,
        summary: m.summary.clone(),
        description: m.description.clone(),
        install_instructions: m.install_instructions.clone(),
        warnings: m.warnings.clone(),
        reboot_required: m.reboot_required,
        requires: m.requires.iter().map(ToString::to_string).collect(),
        repo_state: entry.state.to_string(),
        patch_state: patch.unwrap_or_default(),
    }))
}

/// `GET /v1/software/deploy`: `software deploy show` (an empty list when none).
#[utoipa::path(
    get, path = "/v1/software/deploy", tag = "software", security(("user_token" = [])),
    responses((status = 200, description = "The deploy record, if any", body = DeployList))
)]
pub async fn deploy(State(state): State<AppState>) -> Result<Json<DeployList>, ApiError> {
    let deploy = state.store.deploy().await?;
    Ok(Json(DeployList {
        deploy: deploy
            .into_iter()
            .map(|d| DeployView {
                from_release: d.from_release,
                to_release: d.release_id,
                reboot_required: d.reboot_required,
                state: d.state.to_string(),
                started_at: date(d.started_at),
                updated_at: date(d.updated_at),
            })
            .collect(),
    }))
}

/// `GET /v1/software/deploy/hosts`: `software deploy host-list` (empty when no deploy).
#[utoipa::path(
    get, path = "/v1/software/deploy/hosts", tag = "software", security(("user_token" = [])),
    responses((status = 200, description = "Each host's deploy state", body = DeployHostList))
)]
pub async fn deploy_hosts(State(state): State<AppState>) -> Result<Json<DeployHostList>, ApiError> {
    let site = Site::load(&state).await?;
    let Some(deploy) = &site.deploy else {
        return Ok(Json(DeployHostList { hosts: Vec::new() }));
    };
    let hosts = site
        .host_deploy_states()
        .into_iter()
        .map(|(hostname, host_state)| {
            let software_release = site
                .report(&hostname)
                .map(|r| r.release.to_string())
                .unwrap_or_default();
            DeployHostRow {
                hostname,
                software_release,
                target_release: deploy.release_id.clone(),
                reboot_required: deploy.reboot_required,
                host_state: host_state.to_string(),
            }
        })
        .collect();
    Ok(Json(DeployHostList { hosts }))
}
