//! `/v1.0/subcloud-groups`: groups of subclouds and how they are updated (§6.4).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convoy_api::dc::{SubcloudGroup, SubcloudGroupList, SubcloudList};
use convoy_core::subcloud::{
    self as rules, ApplyType, DEFAULT_GROUP_ID, MAX_DESCRIPTION_LEN, Reference,
};
use convoy_store::StoreError;
use convoy_store::subclouds::{GroupChanges, GroupDeletion, GroupRecord, NewGroup};
use serde_json::{Map, Value};
use tracing::info;

use super::error::DcError;
use super::views;
use crate::api::extract::Caller;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<SubcloudGroupList>, DcError> {
    let subcloud_groups = state
        .subclouds
        .groups()
        .await?
        .into_iter()
        .map(|g| views::group(g, true))
        .collect();
    Ok(Json(SubcloudGroupList { subcloud_groups }))
}

async fn find(state: &AppState, reference: &str) -> Result<GroupRecord, DcError> {
    state
        .subclouds
        .group(&Reference::parse(reference))
        .await?
        .ok_or_else(|| DcError::not_found("Subcloud Group not found"))
}

pub async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<SubcloudGroup>, DcError> {
    Ok(Json(views::group(find(&state, &reference).await?, false)))
}

pub async fn subclouds(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<SubcloudList>, DcError> {
    let group = find(&state, &reference).await?;
    let subclouds = state
        .subclouds
        .subclouds_in_group(group.id)
        .await?
        .into_iter()
        .map(|s| {
            let mut shown = views::subcloud(s);
            shown.endpoint_sync_status.clear();
            shown
        })
        .collect();
    Ok(Json(SubcloudList { subclouds }))
}

/// The JSON object of a body; dcmanager's `Body required` for none.
fn object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, DcError> {
    let body = body.map_err(|r| DcError::new(r.status(), r.body_text()))?;
    if body.trim_ascii().is_empty() {
        return Err(DcError::bad_request("Body required"));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) if !map.is_empty() => Ok(map),
        Ok(Value::Object(_)) => Err(DcError::bad_request("Body required")),
        _ => Err(DcError::bad_request("Request body is malformed.")),
    }
}

/// The group fields of a body, each checked with dcmanager's message.
fn fields(body: &Map<String, Value>) -> Result<GroupChanges, DcError> {
    let text = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let name = text("name").map_err(|()| DcError::bad_request("Invalid group name"))?;
    if let Some(name) = &name {
        rules::validate_group_name(name).map_err(|e| DcError::bad_request(e.reason))?;
    }
    let description =
        text("description").map_err(|()| DcError::bad_request("Invalid group description"))?;
    if let Some(description) = &description {
        rules::validate_group_description(description)
            .map_err(|e| DcError::bad_request(e.reason))?;
    }
    let update_apply_type = text("update_apply_type")
        .ok()
        .flatten()
        .map(|t| ApplyType::from_name(&t))
        .map(|t| t.ok_or(()))
        .transpose()
        .and_then(|t| match body.get("update_apply_type") {
            Some(v) if !v.is_string() && !v.is_null() => Err(()),
            _ => Ok(t),
        })
        .map_err(|()| DcError::bad_request("Invalid group update_apply_type"))?;
    // The dcmanager client sends an int; a numeric string is taken too.
    let max_parallel_subclouds = match body.get("max_parallel_subclouds") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| DcError::bad_request("Invalid group max_parallel_subclouds"))?;
            rules::validate_max_parallel(n).map_err(|e| DcError::bad_request(e.reason))?;
            Some(n)
        }
    };
    Ok(GroupChanges {
        name,
        description,
        update_apply_type,
        max_parallel_subclouds,
    })
}

fn name_taken(e: StoreError) -> DcError {
    match e {
        StoreError::Conflict { .. } => {
            DcError::bad_request("A subcloud group with this name already exists")
        }
        other => other.into(),
    }
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SubcloudGroup>, DcError> {
    let body = object(body)?;
    let fields = fields(&body)?;
    let name = fields
        .name
        .ok_or_else(|| DcError::bad_request("Invalid group name"))?;
    let description = fields
        .description
        .ok_or_else(|| DcError::bad_request("Invalid group description"))?;
    debug_assert!(description.len() <= MAX_DESCRIPTION_LEN);
    let group = state
        .subclouds
        .insert_group(&NewGroup {
            name,
            description,
            update_apply_type: fields.update_apply_type.unwrap_or(ApplyType::Parallel),
            max_parallel_subclouds: fields.max_parallel_subclouds.unwrap_or(2),
            created_at: crate::clock::now(),
        })
        .await
        .map_err(name_taken)?;
    info!(group = group.name, by = caller.name, "subcloud group added");
    Ok(Json(views::group(group, false)))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SubcloudGroup>, DcError> {
    let group = find(&state, &reference).await?;
    let body = object(body)?;
    let changes = fields(&body)?;
    if changes == GroupChanges::default() {
        return Err(DcError::bad_request("nothing to update"));
    }
    if group.id == DEFAULT_GROUP_ID && changes.name.is_some() {
        return Err(DcError::bad_request(
            "Default Subcloud Group may not be renamed",
        ));
    }
    let group = state
        .subclouds
        .update_group(group.id, &changes, crate::clock::now())
        .await
        .map_err(name_taken)?
        .ok_or_else(|| DcError::not_found("Subcloud Group not found"))?;
    info!(
        group = group.name,
        by = caller.name,
        "subcloud group updated"
    );
    Ok(Json(views::group(group, false)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<StatusCode, DcError> {
    let group = find(&state, &reference).await?;
    if group.id == DEFAULT_GROUP_ID {
        return Err(DcError::bad_request(
            "Default Subcloud Group may not be deleted",
        ));
    }
    match state.subclouds.delete_group(group.id).await? {
        GroupDeletion::Deleted => {}
        GroupDeletion::NotFound => return Err(DcError::not_found("Subcloud Group not found")),
        GroupDeletion::NotEmpty => return Err(DcError::bad_request("Subcloud Group not empty")),
    }
    info!(
        group = group.name,
        by = caller.name,
        "subcloud group deleted"
    );
    Ok(StatusCode::OK)
}
