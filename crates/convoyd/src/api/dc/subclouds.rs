//! `/v1.0/subclouds`: register, list, show, update, manage, unmanage and delete subclouds.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use convoy_api::dc::Subcloud;
use convoy_core::dc_strategy::prestage::PrestageResult;
use convoy_core::subcloud::{
    self as rules, DEFAULT_GROUP_ID, DEPLOY_COMPLETE, ENDPOINTS, Management, ManagementRefusal,
    Reference,
};
use convoy_store::StoreError;
use convoy_store::subclouds::{
    NewSubcloud, PrestageWrite, SubcloudChanges, SubcloudDeletion, SubcloudRecord,
};
use tracing::{info, warn};

use super::error::DcError;
use super::form::{self, FormFields};
use super::views;
use crate::api::extract::Caller;
use crate::state::AppState;
use crate::strategy::dc_prestage;
use crate::strategy::subcloud_call::{DcStrategyRecord, PrestageRequest, Trouble};
use crate::subclouds::registration::{self, AttachError};

/// `{"subclouds": [...]}`, written one subcloud at a time: with thousands of subclouds the
/// views of all of them at once would double what the list costs in memory.
pub async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, DcError> {
    let records = state.subclouds.subclouds().await?;
    let mut body = Vec::with_capacity(records.len() * 1024 + 16);
    body.extend_from_slice(b"{\"subclouds\":[");
    for (i, record) in records.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &views::listed(record))
            .map_err(|e| DcError::from(crate::api::ApiError::internal(e)))?;
    }
    body.extend_from_slice(b"]}");
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Bytes::from(body),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<Subcloud>, DcError> {
    Ok(Json(views::subcloud(find(&state, &reference).await?)))
}

pub async fn show_detail(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<Subcloud>, DcError> {
    Ok(Json(views::detailed(find(&state, &reference).await?)))
}

async fn find(state: &AppState, reference: &str) -> Result<SubcloudRecord, DcError> {
    state
        .subclouds
        .subcloud(&Reference::parse(reference))
        .await?
        .ok_or_else(|| DcError::not_found("Subcloud not found"))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A group reference (id or name) that must exist; dcmanager's `Invalid group_id` otherwise.
async fn group_id(state: &AppState, reference: &str, message: &str) -> Result<i64, DcError> {
    state
        .subclouds
        .group(&Reference::parse(reference))
        .await?
        .map(|g| g.id)
        .ok_or_else(|| DcError::bad_request(message))
}

/// `POST /v1.0/subclouds/` (multipart): attaches an existing site controller. The sysadmin
/// password is used once and forgotten; a refusal stores nothing.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Subcloud>, DcError> {
    let body = body.map_err(body_refused)?;
    let fields = form::parse(content_type(&headers), &body)?;
    if fields.is_empty() {
        return Err(DcError::bad_request("Body required"));
    }
    let request = AddRequest::read(&fields)?;
    if state
        .subclouds
        .subcloud(&Reference::Name(request.name.clone()))
        .await?
        .is_some()
    {
        return Err(already_exists(&request.name));
    }
    let group_id = match fields.get("group_id") {
        Some(reference) => group_id(&state, reference, "Invalid group_id").await?,
        None => DEFAULT_GROUP_ID,
    };
    let attached = registration::attach(
        &state.dc,
        &state.sessions,
        &request.address,
        &request.sysadmin_password,
    )
    .await
    .map_err(|e| {
        let detail = format!("Unable to add subcloud {}: {e}", request.name);
        match e {
            AttachError::WrongPassword | AttachError::Unreachable { .. } => {
                DcError::bad_request(detail)
            }
            AttachError::Refused(_) => DcError::unprocessable(detail),
        }
    })?;
    let record = state
        .subclouds
        .insert_subcloud(&NewSubcloud {
            name: request.name.clone(),
            description: request.description,
            location: request.location,
            group_id,
            deploy_status: DEPLOY_COMPLETE.into(),
            software_version: Some(attached.software_version),
            address: request.address,
            tls_fingerprint: attached.tls_fingerprint,
            service_user: attached.service_user.clone(),
            service_password: attached.service_password,
            bootstrap_values: request.bootstrap_values,
            endpoints: ENDPOINTS.iter().map(|e| e.to_string()).collect(),
            created_at: crate::clock::now(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => already_exists(&request.name),
            StoreError::Refused { .. } => DcError::bad_request("Invalid group_id"),
            other => other.into(),
        });
    let record = match record {
        Ok(record) => record,
        Err(e) => {
            // The service account made a moment ago stays on the subcloud; say so.
            warn!(
                subcloud = request.name,
                service_user = attached.service_user,
                "the subcloud was not stored; its service account is left on it"
            );
            return Err(e);
        }
    };
    info!(
        subcloud = record.name,
        address = record.address,
        pinned = record.tls_fingerprint.as_deref().unwrap_or("-"),
        by = caller.name,
        "subcloud added"
    );
    state.audit_wake.notify_one();
    Ok(Json(views::subcloud(record)))
}

fn already_exists(name: &str) -> DcError {
    DcError::conflict(format!("Subcloud with name {name} already exists"))
}

fn body_refused(rejection: axum::extract::rejection::BytesRejection) -> DcError {
    DcError::new(rejection.status(), rejection.body_text())
}

/// The fields of an add, from the form and its bootstrap values (YAML naming the subcloud;
/// keys Convoy has no use for are kept as given).
#[derive(Debug)]
struct AddRequest {
    name: String,
    address: String,
    sysadmin_password: String,
    description: Option<String>,
    location: Option<String>,
    bootstrap_values: Option<String>,
}

impl AddRequest {
    fn read(fields: &FormFields) -> Result<AddRequest, DcError> {
        let bootstrap_values = fields.get("bootstrap_values").map(str::to_string);
        let values: Option<serde_json::Value> = match &bootstrap_values {
            Some(yaml) => Some(serde_norway::from_str(yaml).map_err(|e| {
                DcError::bad_request(format!("Error parsing bootstrap_values: {e}"))
            })?),
            None => None,
        };
        let from_values = |key: &str| {
            values
                .as_ref()
                .and_then(|v| v.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let name = fields
            .get("name")
            .map(str::to_string)
            .or_else(|| from_values("name"))
            .ok_or_else(|| DcError::bad_request("name required"))?;
        rules::validate_subcloud_name(&name)
            .map_err(|e| DcError::bad_request(format!("Invalid name: {}", e.reason)))?;
        let address = fields
            .get("bootstrap-address")
            .ok_or_else(|| DcError::bad_request("bootstrap-address required"))
            .and_then(|a| {
                rules::subcloud_url(a).map_err(|e| {
                    DcError::bad_request(format!("Invalid bootstrap-address: {}", e.reason))
                })
            })?;
        let encoded = fields
            .get("sysadmin_password")
            .ok_or_else(|| DcError::bad_request("subcloud sysadmin_password required"))?;
        let sysadmin_password = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                DcError::bad_request(
                    "Failed to decode subcloud sysadmin_password, verify the password is base64 \
                     encoded",
                )
            })?;
        // dcmanager's client has no --description or --location on add: they come from the
        // bootstrap values, as dcmanager reads them; a form field wins.
        let text = |field: &str| -> Result<Option<String>, DcError> {
            match fields
                .get(field)
                .map(str::to_string)
                .or_else(|| from_values(field))
            {
                Some(value) => {
                    rules::validate_text(field, &value).map_err(|e| {
                        DcError::bad_request(format!("Invalid {field}: {}", e.reason))
                    })?;
                    Ok(Some(value))
                }
                None => Ok(None),
            }
        };
        Ok(AddRequest {
            name,
            address,
            sysadmin_password,
            description: text("description")?,
            location: text("location")?,
            bootstrap_values,
        })
    }
}

/// `PATCH /v1.0/subclouds/{reference}` (multipart): description, location, group, or the
/// management state (`managed` with an optional `force`, `unmanaged`).
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Subcloud>, DcError> {
    let body = body.map_err(body_refused)?;
    let subcloud = find(&state, &reference).await?;
    let fields = form::parse(content_type(&headers), &body)?;
    if fields.is_empty() {
        return Err(DcError::bad_request("Body required"));
    }
    let management = fields
        .get("management-state")
        .map(|m| {
            Management::from_name(m).ok_or_else(|| DcError::bad_request("Invalid management-state"))
        })
        .transpose()?;
    let force = match fields.get("force") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(DcError::bad_request("Invalid force value")),
    };
    if fields.get("force").is_some() && management != Some(Management::Managed) {
        return Err(DcError::bad_request("Invalid option: force"));
    }
    let group = match fields.get("group_id") {
        Some(reference) => Some(group_id(&state, reference, "Invalid group").await?),
        None => None,
    };
    let mut changes = SubcloudChanges {
        group_id: group,
        management,
        updated_at: Some(crate::clock::now()),
        ..SubcloudChanges::default()
    };
    for (field, slot) in [
        ("description", &mut changes.description),
        ("location", &mut changes.location),
    ] {
        if let Some(value) = fields.get(field) {
            rules::validate_text(field, value)
                .map_err(|e| DcError::bad_request(format!("Invalid {field}: {}", e.reason)))?;
            *slot = Some(value.to_string());
        }
    }
    if let Some(wanted) = management {
        rules::check_management_change(
            &subcloud.name,
            subcloud.management,
            wanted,
            subcloud.availability,
            &subcloud.deploy_status,
            force,
        )
        .map_err(|refusal| match refusal {
            ManagementRefusal::NotOnline => DcError::unprocessable(refusal.to_string()),
            other => DcError::unprocessable(format!("Bad subcloud request: {other}")),
        })?;
    }
    if changes.description.is_none()
        && changes.location.is_none()
        && changes.group_id.is_none()
        && changes.management.is_none()
    {
        return Err(DcError::bad_request("nothing to update"));
    }
    let record = state
        .subclouds
        .update_subcloud(subcloud.id, &changes)
        .await
        .map_err(|e| match e {
            StoreError::Refused { .. } => DcError::bad_request("Invalid group"),
            other => other.into(),
        })?
        .ok_or_else(|| DcError::not_found("Subcloud not found"))?;
    if let Some(management) = management {
        info!(
            subcloud = record.name,
            management = management.as_str(),
            force,
            by = caller.name,
            "subcloud management changed"
        );
        // A managed subcloud's sync status is known at its next audit: run it now.
        state.audit_wake.notify_one();
    } else {
        info!(subcloud = record.name, by = caller.name, "subcloud updated");
    }
    Ok(Json(views::subcloud(record)))
}

/// `DELETE /v1.0/subclouds/{reference}`: only an unmanaged subcloud. Its alarms on the System
/// Controller are cleared with it.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<StatusCode, DcError> {
    let subcloud = find(&state, &reference).await?;
    let entity = crate::subclouds::alarm_entity(&subcloud.name);
    match state
        .subclouds
        .delete_subcloud(subcloud.id, &entity, crate::clock::now())
        .await?
    {
        SubcloudDeletion::Deleted => {}
        SubcloudDeletion::NotFound => return Err(DcError::not_found("Subcloud not found")),
        SubcloudDeletion::Managed => {
            return Err(DcError::bad_request(
                "Cannot delete a subcloud that is 'managed' status",
            ));
        }
    }
    state.sessions.forget(subcloud.id);
    info!(
        subcloud = subcloud.name,
        service_user = subcloud.service_user,
        by = caller.name,
        "subcloud deleted; its service account stays on it until an admin there deletes it"
    );
    Ok(StatusCode::OK)
}

/// `PATCH /v1.0/subclouds/{reference}/prestage` (JSON): prestages one subcloud outside a
/// strategy (spec §5). Checked here, the subcloud's own checks and its sysadmin password
/// included (400 with the reason); then it runs in the background and the answer is the
/// subcloud, `prestaging`, with the software version prestaged. Refused while a strategy
/// that prestages applies.
pub async fn prestage(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Subcloud>, DcError> {
    let body = body.map_err(body_refused)?;
    let fields = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return Err(DcError::bad_request("Request body is malformed.")),
    };
    let subcloud = find(&state, &reference).await?;
    let lookups = super::strategy::ScLookups::read(&state).await?;
    let ask = convoy_core::dc_strategy::request::validate_subcloud_prestage(&fields, &lookups)
        .map_err(DcError::bad_request)?;
    if let Some(running) = state.store.strategy().await?
        && running.state.is_active()
        && prestages(&running)
    {
        return Err(DcError::bad_request(format!(
            "Prestage failed '{}': a {} strategy that prestages subclouds is {}; wait for it \
             to end",
            subcloud.name, running.kind, running.state
        )));
    }
    let request = PrestageRequest {
        sw_version: ask.sw_version,
        for_sw_deploy: ask.for_sw_deploy,
        force: ask.force,
        sysadmin_password: ask.sysadmin_password,
    };
    let bundles = match dc_prestage::bundles_for(&state, &request).await {
        Ok(bundles) => bundles,
        Err(_) => return Err(unanswered(&subcloud.name)),
    };
    match dc_prestage::precheck_subcloud(&state, &subcloud, &request, &bundles).await {
        Ok(PrestageResult::Next) => {}
        Ok(PrestageResult::Done(reason) | PrestageResult::Failed(reason))
        | Err(Trouble::Fail(reason)) => return Err(DcError::bad_request(reason)),
        Err(Trouble::Retry) => return Err(unanswered(&subcloud.name)),
    }
    let marked = PrestageWrite {
        status: Some(dc_prestage::PRESTAGING.into()),
        request: Some(
            serde_json::to_string(&request)
                .map_err(|e| DcError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        ),
        // Nothing else started a prestage of it since it was read.
        when: Some(subcloud.prestage_status.clone()),
        ..PrestageWrite::default()
    };
    if !state.subclouds.set_prestage(subcloud.id, &marked).await? {
        return Err(DcError::bad_request(format!(
            "Prestage skipped '{}': Subcloud {} current prestage_status is 'prestaging'. \
             Please wait until it finishes before running this operation.",
            subcloud.name, subcloud.name
        )));
    }
    crate::subclouds::prestage::start(&state, &subcloud.name);
    info!(
        subcloud = subcloud.name,
        version = request.sw_version,
        for_sw_deploy = request.for_sw_deploy,
        by = caller.name,
        "subcloud prestage started"
    );
    let mut shown = views::subcloud(find(&state, &subcloud.name).await?);
    shown.prestage_software_version = Some(request.sw_version);
    Ok(Json(shown))
}

/// Whether a System Controller strategy prestages subclouds.
fn prestages(strategy: &convoy_store::StrategyRecord) -> bool {
    match strategy.kind {
        convoy_core::strategy::StrategyKind::DcPrestage => true,
        convoy_core::strategy::StrategyKind::DcSwDeploy => {
            serde_json::from_str::<DcStrategyRecord>(&strategy.options)
                .is_ok_and(|r| r.prestage.is_some())
        }
        _ => false,
    }
}

fn unanswered(name: &str) -> DcError {
    DcError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Prestage failed '{name}': the subcloud did not answer; try again"),
    )
}
