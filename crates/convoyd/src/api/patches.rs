//! `/v1/patches` and `/v1/patch-hosts`: StarlingX sw-patch's verbs over the site's repository,
//! and installs on hosts. The rules are `convoy_core::patch`'s; these handlers load, decide,
//! persist and answer.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use convoy_api::patches::{
    AppDependencyList, AppDependencyReport, HostInstallRequest, HostPatchList, HostPatchRow,
    IsApplied, PatchDetail, PatchIdList, PatchList, PatchOperation, PatchOutcome, PatchRow,
};
use convoy_core::command::CommandKind;
use convoy_core::patch::state::{all_in_state, any_installing, host_status};
use convoy_core::patch::{
    AppDependencies, ApplyRequest, Outcome, PatchId, PatchState, RemoveRequest, RepoState,
    Selection,
};
use convoy_core::role::Role;
use convoy_store::CommandRecord;
use serde::Deserialize;

use super::ApiError;
use super::extract::{AgentHost, ApiJson, ApiPath, ApiQuery, Caller};
use crate::clock;
use crate::patches::repository::Site;
use crate::patches::upload::{refused, upload as receive_upload};
use crate::state::AppState;
use convoy_api::ErrorBody;

fn answer(outcome: &Outcome) -> PatchOutcome {
    PatchOutcome {
        info: outcome.info.iter().map(ToString::to_string).collect(),
        warnings: outcome.warnings.iter().map(ToString::to_string).collect(),
    }
}

fn ids(field: &str, raw: &[String]) -> Result<Vec<PatchId>, ApiError> {
    let mut ids = raw
        .iter()
        .map(|id| {
            id.parse::<PatchId>()
                .map_err(|e| ApiError::invalid(field, e.reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn require_ids(field: &str, raw: &[String]) -> Result<Vec<PatchId>, ApiError> {
    let ids = ids(field, raw)?;
    if ids.is_empty() {
        return Err(ApiError::invalid(field, "name at least one patch"));
    }
    Ok(ids)
}

/// A comma-separated list of ids in a query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IdsQuery {
    ids: String,
    #[serde(default)]
    recursive: bool,
}

impl IdsQuery {
    fn list(&self) -> Result<Vec<PatchId>, ApiError> {
        let raw: Vec<String> = self
            .ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        require_ids("ids", &raw)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    file_name: String,
}

/// `POST /v1/patches?file_name=ID.patch` with the patch file as the body.
#[utoipa::path(
    post, path = "/v1/patches", tag = "patches", security(("user_token" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The patch file"),
    responses((status = 201, description = "Verified and imported", body = PatchOutcome), (status = 409, description = "Refused by the repository's rules", body = ErrorBody))
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<PatchOutcome>), ApiError> {
    caller.require(Role::Operator)?;
    let outcome = receive_upload(&state, &query.file_name, body).await?;
    tracing::info!(file = query.file_name, by = caller.name, "patch uploaded");
    Ok((StatusCode::CREATED, Json(answer(&outcome))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    #[serde(default)]
    show: Option<String>,
}

/// `GET /v1/patches?show=all|applied|available|committed`: sw-patch's query.
#[utoipa::path(
    get, path = "/v1/patches", tag = "patches", security(("user_token" = [])),
    params(ShowQuery),
    responses((status = 200, description = "The patches in the repository", body = PatchList))
)]
pub async fn query(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ShowQuery>,
) -> Result<Json<PatchList>, ApiError> {
    let wanted: Option<RepoState> = match query.show.as_deref() {
        None | Some("all") => None,
        Some("applied") => Some(RepoState::Applied),
        Some("available") => Some(RepoState::Available),
        Some("committed") => Some(RepoState::Committed),
        Some(other) => {
            return Err(ApiError::invalid(
                "show",
                format!("{other:?} is not one of all, applied, available, committed"),
            ));
        }
    };
    let site = Site::load(&state).await?;
    let states = site.patch_states();
    let patches = site
        .repo
        .iter()
        .filter(|(_, entry)| wanted.is_none_or(|w| entry.state == w))
        .map(|(id, entry)| PatchRow {
            patch_id: id.to_string(),
            rr: if entry.metadata.reboot_required {
                "Y"
            } else {
                "N"
            }
            .into(),
            release: entry.metadata.sw_version.to_string(),
            repo_state: entry.state.to_string(),
            patch_state: states.get(id).map(ToString::to_string).unwrap_or_default(),
        })
        .collect();
    Ok(Json(PatchList { patches }))
}

/// `GET /v1/patches/{id}`: sw-patch's show.
#[utoipa::path(
    get, path = "/v1/patches/{id}", tag = "patches", security(("user_token" = [])),
    params(("id" = String, Path, description = "The patch's id")),
    responses((status = 200, description = "The patch", body = PatchDetail), (status = 404, description = "No such patch", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PatchDetail>, ApiError> {
    let id: PatchId = id
        .parse()
        .map_err(|e: convoy_core::ValidationError| ApiError::invalid("id", e.reason))?;
    let site = Site::load(&state).await?;
    let (Some(entry), Some(record)) = (site.repo.get(&id), site.records.get(&id)) else {
        return Err(refused(convoy_core::patch::Refusal::Unrecognized(vec![id])));
    };
    let states = site.patch_states();
    let m = &entry.metadata;
    Ok(Json(PatchDetail {
        patch_id: id.to_string(),
        release: m.sw_version.to_string(),
        status: m.status.to_string(),
        repo_state: entry.state.to_string(),
        patch_state: states.get(&id).map(ToString::to_string).unwrap_or_default(),
        summary: m.summary.clone(),
        description: m.description.clone(),
        install_instructions: m.install_instructions.clone(),
        warnings: m.warnings.clone(),
        unremovable: m.unremovable,
        reboot_required: m.reboot_required,
        apply_active_release_only: m.apply_active_release_only,
        requires: m.requires.iter().map(ToString::to_string).collect(),
        contents: m
            .contents
            .iter()
            .map(|(p, files)| (p.to_string(), files.clone()))
            .collect(),
        size: record.size,
        sha256: record.sha256.clone(),
    }))
}

async fn decide_and_persist(
    state: &AppState,
    decide: impl FnOnce(&Site) -> Result<Outcome, convoy_core::patch::Refusal>,
) -> Result<Json<PatchOutcome>, ApiError> {
    let site = Site::load_for_change(state).await?;
    let outcome = decide(&site).map_err(refused)?;
    site.persist(state, &outcome, &BTreeMap::new()).await?;
    state.wakeups.recheck_alarms();
    Ok(Json(answer(&outcome)))
}

#[utoipa::path(
    post, path = "/v1/patches/apply", tag = "patches", security(("user_token" = [])),
    request_body = PatchOperation,
    responses((status = 200, description = "What the operation did", body = PatchOutcome), (status = 404, description = "An unknown patch", body = ErrorBody), (status = 409, description = "Refused by the repository's rules", body = ErrorBody))
)]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PatchOperation>,
) -> Result<Json<PatchOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    let patches = if request.all {
        Selection::All
    } else {
        Selection::Ids(require_ids("ids", &request.ids)?)
    };
    let running_release = state.release.clone();
    decide_and_persist(&state, |site| {
        convoy_core::patch::operations::apply(
            &site.repo,
            &ApplyRequest {
                patches,
                running_release,
                hosts_installing: any_installing(&site.reports),
            },
        )
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/patches/remove", tag = "patches", security(("user_token" = [])),
    request_body = PatchOperation,
    responses((status = 200, description = "What the operation did", body = PatchOutcome), (status = 404, description = "An unknown patch", body = ErrorBody), (status = 409, description = "Refused by the repository's rules", body = ErrorBody))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PatchOperation>,
) -> Result<Json<PatchOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    let ids = require_ids("ids", &request.ids)?;
    let apps = app_dependencies(&state).await?;
    decide_and_persist(&state, |site| {
        convoy_core::patch::operations::remove(
            &site.repo,
            &RemoveRequest {
                ids,
                remove_unremovable: request.remove_unremovable,
                skip_app_check: request.skip_app_check,
                hosts_installing: any_installing(&site.reports),
            },
            &apps,
        )
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/patches/delete", tag = "patches", security(("user_token" = [])),
    request_body = PatchOperation,
    responses((status = 200, description = "What the operation did", body = PatchOutcome), (status = 404, description = "An unknown patch", body = ErrorBody), (status = 409, description = "Refused by the repository's rules", body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PatchOperation>,
) -> Result<Json<PatchOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    let ids = require_ids("ids", &request.ids)?;
    decide_and_persist(&state, |site| {
        convoy_core::patch::operations::delete(&site.repo, &site.patch_states(), &ids)
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/patches/commit", tag = "patches", security(("user_token" = [])),
    request_body = PatchOperation,
    responses((status = 200, description = "What the operation did (or, with dry_run, would free)", body = PatchOutcome), (status = 404, description = "An unknown patch", body = ErrorBody), (status = 409, description = "Refused by the repository's rules", body = ErrorBody))
)]
pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PatchOperation>,
) -> Result<Json<PatchOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    let ids = require_ids("ids", &request.ids)?;
    let site = Site::load_for_change(&state).await?;
    let outcome = convoy_core::patch::operations::commit(&site.repo, &site.patch_states(), &ids)
        .map_err(refused)?;
    if request.dry_run {
        let freed: u64 =
            convoy_core::patch::dependencies::with_requirements(&site.repo, &ids, true)
                .iter()
                .filter_map(|id| site.records.get(id))
                .map(|r| r.size)
                .sum();
        return Ok(Json(PatchOutcome {
            info: vec![format!(
                "This commit operation would free {:.2} MiB",
                freed as f64 / (1024.0 * 1024.0)
            )],
            warnings: vec![],
        }));
    }
    site.persist(&state, &outcome, &BTreeMap::new()).await?;
    Ok(Json(answer(&outcome)))
}

/// `GET /v1/patches/what-requires?ids=A,B`
#[utoipa::path(
    get, path = "/v1/patches/what-requires", tag = "patches", security(("user_token" = [])),
    params(IdsQuery),
    responses((status = 200, description = "The patches that require them, as info lines", body = PatchOutcome), (status = 404, description = "An unknown patch", body = ErrorBody))
)]
pub async fn what_requires(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<IdsQuery>,
) -> Result<Json<PatchOutcome>, ApiError> {
    let ids = query.list()?;
    let site = Site::load(&state).await?;
    let notices =
        convoy_core::patch::dependencies::what_requires(&site.repo, &ids).map_err(refused)?;
    Ok(Json(PatchOutcome {
        info: notices.iter().map(ToString::to_string).collect(),
        warnings: vec![],
    }))
}

/// `GET /v1/patches/dependencies?ids=A&recursive=true`
#[utoipa::path(
    get, path = "/v1/patches/dependencies", tag = "patches", security(("user_token" = [])),
    params(IdsQuery),
    responses((status = 200, description = "The patches they require", body = PatchIdList), (status = 404, description = "An unknown patch", body = ErrorBody))
)]
pub async fn dependencies(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<IdsQuery>,
) -> Result<Json<PatchIdList>, ApiError> {
    let ids = query.list()?;
    let site = Site::load(&state).await?;
    let patches =
        convoy_core::patch::dependencies::query_dependencies(&site.repo, &ids, query.recursive)
            .map_err(refused)?;
    Ok(Json(PatchIdList {
        patches: patches.iter().map(ToString::to_string).collect(),
    }))
}

/// `GET /v1/patches/is-applied?ids=A,B`: whether every one is Applied.
#[utoipa::path(
    get, path = "/v1/patches/is-applied", tag = "patches", security(("user_token" = [])),
    params(IdsQuery),
    responses((status = 200, description = "Whether every one is applied", body = IsApplied))
)]
pub async fn is_applied(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<IdsQuery>,
) -> Result<Json<IsApplied>, ApiError> {
    let ids = query.list()?;
    let site = Site::load(&state).await?;
    Ok(Json(IsApplied {
        applied: all_in_state(&site.patch_states(), &ids, PatchState::Applied),
    }))
}

async fn app_dependencies(state: &AppState) -> Result<AppDependencies, ApiError> {
    let mut apps = AppDependencies::new();
    for (app, id) in state.store.app_dependencies().await? {
        if let Ok(id) = id.parse::<PatchId>() {
            apps.entry(app).or_default().insert(id);
        }
    }
    Ok(apps)
}

/// `POST /v1/patches/app-dependencies`: report-app-dependencies.
#[utoipa::path(
    post, path = "/v1/patches/app-dependencies", tag = "patches", security(("user_token" = [])),
    request_body = AppDependencyReport,
    responses((status = 200, description = "Every application's patches", body = AppDependencyList))
)]
pub async fn report_app_dependencies(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<AppDependencyReport>,
) -> Result<Json<AppDependencyList>, ApiError> {
    caller.require(Role::Operator)?;
    convoy_core::validation::validate_name("app", &request.app)?;
    let ids = ids("ids", &request.ids)?;
    let raw: Vec<String> = ids.iter().map(ToString::to_string).collect();
    state.store.set_app_dependencies(&request.app, &raw).await?;
    query_app_dependencies(State(state)).await
}

/// `GET /v1/patches/app-dependencies`
#[utoipa::path(
    get, path = "/v1/patches/app-dependencies", tag = "patches", security(("user_token" = [])),
    responses((status = 200, description = "Every application's patches", body = AppDependencyList))
)]
pub async fn query_app_dependencies(
    State(state): State<AppState>,
) -> Result<Json<AppDependencyList>, ApiError> {
    let apps = app_dependencies(&state)
        .await?
        .into_iter()
        .map(|(app, ids)| (app, ids.iter().map(ToString::to_string).collect()))
        .collect();
    Ok(Json(AppDependencyList { apps }))
}

/// `GET /v1/patch-hosts`: query-hosts.
#[utoipa::path(
    get, path = "/v1/patch-hosts", tag = "patches", security(("user_token" = [])),
    responses((status = 200, description = "Every host's patch state", body = HostPatchList))
)]
pub async fn query_hosts(State(state): State<AppState>) -> Result<Json<HostPatchList>, ApiError> {
    let site = Site::load(&state).await?;
    let hosts = site
        .hosts
        .iter()
        .map(|host| match site.report(&host.hostname) {
            Some(report) => {
                let status = host_status(&site.repo, &site.interim, report);
                HostPatchRow {
                    hostname: host.hostname.clone(),
                    patch_current: status.patch_current.to_string(),
                    reboot_required: if status.reboot_required { "Yes" } else { "No" }.into(),
                    release: status.release.to_string(),
                    state: status.state.to_string(),
                    last_error: host.facts.software.last_error.clone(),
                }
            }
            None => HostPatchRow {
                hostname: host.hostname.clone(),
                patch_current: "No".into(),
                reboot_required: "No".into(),
                release: String::new(),
                state: "unknown".into(),
                last_error: Some("the agent does not report a release".into()),
            },
        })
        .collect();
    Ok(Json(HostPatchList { hosts }))
}

/// The command sent to a host's agent by `host-install`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InstallSent {
    #[serde(flatten)]
    pub outcome: PatchOutcome,
    pub command_id: String,
}

/// `POST /v1/patch-hosts/{hostname}/install`: tells the host's agent to bring the host to the
/// repository's state. Answers at once with the command's id; the CLI follows it.
#[utoipa::path(
    post, path = "/v1/patch-hosts/{hostname}/install", tag = "patches", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    request_body = HostInstallRequest,
    responses((status = 202, description = "The install command was queued; follow it at /v1/hosts/{hostname}/commands/{command_id}", body = InstallSent), (status = 404, description = "No such host", body = ErrorBody), (status = 409, description = "The host reports no release", body = ErrorBody))
)]
pub async fn host_install(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
    ApiJson(request): ApiJson<HostInstallRequest>,
) -> Result<(StatusCode, Json<InstallSent>), ApiError> {
    caller.require(Role::Operator)?;
    // The command names bundles by digest: no change may delete them while it is made.
    let site = Site::load_for_change(&state).await?;
    let Some(host) = site.hosts.iter().find(|h| h.hostname == hostname) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Unknown host specified: {hostname}"),
        ));
    };
    let payload = site.install_patches(host, request.force).ok_or_else(|| {
        ApiError::conflict(format!(
            "host {hostname:?} reports no release; is its agent current?"
        ))
    })?;
    let id = crate::ids::command_id();
    state
        .store
        .insert_command(&CommandRecord::new(
            id.clone(),
            &hostname,
            CommandKind::InstallPatches,
            serde_json::to_string(&payload).map_err(ApiError::internal)?,
            clock::now(),
        ))
        .await?;
    state.wakeups.wake_host(&hostname);
    tracing::info!(
        host = hostname,
        install = payload.install.len(),
        remove = payload.remove.len(),
        "patch installation requested"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(InstallSent {
            outcome: PatchOutcome {
                info: vec![format!("Patch installation request sent to {hostname}.")],
                warnings: vec![],
            },
            command_id: id,
        }),
    ))
}

/// `POST /v1/patch-hosts/{hostname}/drop`: forgets that the host is pending.
#[utoipa::path(
    post, path = "/v1/patch-hosts/{hostname}/drop", tag = "patches", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    responses((status = 200, description = "The host is no longer pending", body = PatchOutcome))
)]
pub async fn drop_host(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
) -> Result<Json<PatchOutcome>, ApiError> {
    caller.require(Role::Operator)?;
    state.store.clear_interim(&hostname).await?;
    Ok(Json(PatchOutcome {
        info: vec![format!("{hostname} dropped")],
        warnings: vec![],
    }))
}

/// `GET /v1/agent/patches/{id}`: the verified bundle, for a host's agent to install.
#[utoipa::path(
    get, path = "/v1/agent/patches/{id}", tag = "agents", security(("host_credential" = [])),
    params(("id" = String, Path, description = "The patch's id")),
    responses((status = 200, description = "The verified bundle", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, description = "No such patch", body = ErrorBody), (status = 409, description = "The bundle is missing from the repository", body = ErrorBody))
)]
pub async fn bundle(
    State(state): State<AppState>,
    _host: AgentHost,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id: PatchId = id
        .parse()
        .map_err(|e: convoy_core::ValidationError| ApiError::invalid("id", e.reason))?;
    let record = state
        .store
        .patches()
        .await?
        .into_iter()
        .find(|r| r.id == id.as_str())
        .ok_or_else(|| ApiError::not_found(format!("patch {id}")))?;
    let file = match tokio::fs::File::open(state.patch_dir.join(&record.file_name)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::conflict(format!(
                "the bundle of patch {id} is missing from the repository; upload the patch \
                 again to restore it"
            )));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, record.size.to_string()),
        ],
        body,
    )
        .into_response())
}
