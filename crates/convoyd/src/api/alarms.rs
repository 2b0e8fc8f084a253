//! `/v1/alarms`, `/v1/events` and an agent's `/v1/agent/alarms`: the site's active alarms and
//! their history. Operators raise and clear any alarm; an agent only alarms about its own host
//! (`host=<its host>` and what is below it); Convoy's own alarms are kept by
//! [`crate::alarms`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::ErrorBody;
use convoy_api::alarms::{Alarm, AlarmList, ClearAlarm, Cleared, Event, EventList, NewAlarm};
use convoy_core::alarm::{
    entity_on_host, host_entity, validate_alarm_id, validate_entity, validate_reason,
};
use convoy_core::role::Role;
use convoy_store::{AlarmEvent, AlarmRecord};
use serde::Deserialize;

use super::ApiError;
use super::extract::{AgentHost, ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/v1/alarms", tag = "alarms", security(("user_token" = [])),
    responses((status = 200, description = "The active alarms, oldest first", body = AlarmList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<AlarmList>, ApiError> {
    let alarms = state.store.alarms().await?.into_iter().map(view).collect();
    Ok(Json(AlarmList { alarms }))
}

#[utoipa::path(
    get, path = "/v1/alarms/{uuid}", tag = "alarms", security(("user_token" = [])),
    params(("uuid" = String, Path, description = "The alarm's uuid")),
    responses((status = 200, description = "The active alarm", body = Alarm), (status = 404, description = "No such active alarm", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<Alarm>, ApiError> {
    let alarm = state
        .store
        .alarm(&uuid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("active alarm {uuid}")))?;
    Ok(Json(view(alarm)))
}

/// Raises an alarm as an operator: 201 with the alarm (200 if it was active and unchanged).
#[utoipa::path(
    post, path = "/v1/alarms", tag = "alarms", security(("user_token" = [])),
    request_body = NewAlarm,
    responses((status = 201, description = "Raised, or its severity, reason or flag updated", body = Alarm), (status = 200, description = "Active already, unchanged", body = Alarm))
)]
pub async fn raise(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewAlarm>,
) -> Result<(StatusCode, Json<Alarm>), ApiError> {
    caller.require(Role::Operator)?;
    let entity = request
        .entity
        .clone()
        .ok_or_else(|| ApiError::invalid("entity", "is required"))?;
    let (alarm, changed) = store_raise(&state, &request, entity, "operator").await?;
    tracing::info!(
        alarm = alarm.alarm_id,
        entity = alarm.entity,
        by = caller.name,
        "alarm raised"
    );
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(alarm))))
}

/// Clears an active alarm as an operator: 204, 404 if it is not active.
#[utoipa::path(
    delete, path = "/v1/alarms/{uuid}", tag = "alarms", security(("user_token" = [])),
    params(("uuid" = String, Path, description = "The alarm's uuid")),
    responses((status = 204, description = "Cleared"), (status = 404, description = "No such active alarm", body = ErrorBody))
)]
pub async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let alarm = state
        .store
        .alarm(&uuid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("active alarm {uuid}")))?;
    state
        .store
        .clear_alarm(
            &alarm.alarm_id,
            &alarm.entity,
            crate::clock::now(),
            "operator",
        )
        .await?;
    tracing::info!(
        alarm = alarm.alarm_id,
        entity = alarm.entity,
        by = caller.name,
        "alarm cleared"
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// How many events, newest first (1 to 1000, default 50).
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/v1/events", tag = "alarms", security(("user_token" = [])),
    params(EventQuery),
    responses((status = 200, description = "Alarms raised (set) and cleared, newest first", body = EventList))
)]
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 1000"));
    }
    let events = state
        .store
        .alarm_events(limit)
        .await?
        .into_iter()
        .map(event_view)
        .collect();
    Ok(Json(EventList { events }))
}

/// An agent raises an alarm about its host.
#[utoipa::path(
    post, path = "/v1/agent/alarms", tag = "agents", security(("host_credential" = [])),
    request_body = NewAlarm,
    responses((status = 200, description = "The active alarm", body = Alarm), (status = 403, description = "The entity is not on the agent's host", body = ErrorBody))
)]
pub async fn agent_raise(
    State(state): State<AppState>,
    host: AgentHost,
    ApiJson(request): ApiJson<NewAlarm>,
) -> Result<Json<Alarm>, ApiError> {
    let entity = own_entity(&host, request.entity.as_deref())?;
    let (alarm, _) = store_raise(&state, &request, entity, "agent").await?;
    Ok(Json(view(alarm)))
}

/// An agent clears an alarm about its host.
#[utoipa::path(
    post, path = "/v1/agent/alarms/clear", tag = "agents", security(("host_credential" = [])),
    request_body = ClearAlarm,
    responses((status = 200, description = "Whether it was active", body = Cleared), (status = 403, description = "The entity is not on the agent's host", body = ErrorBody))
)]
pub async fn agent_clear(
    State(state): State<AppState>,
    host: AgentHost,
    ApiJson(request): ApiJson<ClearAlarm>,
) -> Result<Json<Cleared>, ApiError> {
    validate_alarm_id("alarm_id", &request.alarm_id)?;
    let entity = own_entity(&host, request.entity.as_deref())?;
    let cleared = state
        .store
        .clear_alarm(&request.alarm_id, &entity, crate::clock::now(), "agent")
        .await?;
    Ok(Json(Cleared {
        cleared: cleared.is_some(),
    }))
}

/// The entity an agent names, `host=<its host>` if none; refused unless it is on its host.
fn own_entity(host: &AgentHost, entity: Option<&str>) -> Result<String, ApiError> {
    let entity = entity.map_or_else(|| host_entity(&host.hostname), str::to_string);
    validate_entity("entity", &entity)?;
    if !entity_on_host(&entity, &host.hostname) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "entity: an agent raises and clears alarms about its own host only ({} or \
                 below it), not {entity}",
                host_entity(&host.hostname)
            ),
        ));
    }
    Ok(entity)
}

async fn store_raise(
    state: &AppState,
    request: &NewAlarm,
    entity: String,
    source: &str,
) -> Result<(AlarmRecord, bool), ApiError> {
    validate_alarm_id("alarm_id", &request.alarm_id)?;
    validate_entity("entity", &entity)?;
    validate_reason("reason", &request.reason)?;
    Ok(state
        .store
        .raise_alarm(&AlarmRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            alarm_id: request.alarm_id.clone(),
            entity,
            severity: request.severity,
            reason: request.reason.clone(),
            mgmt_affecting: request.mgmt_affecting,
            raised_at: crate::clock::now(),
            source: source.into(),
        })
        .await?)
}

fn view(record: AlarmRecord) -> Alarm {
    Alarm {
        uuid: record.uuid,
        alarm_id: record.alarm_id,
        entity: record.entity,
        severity: record.severity,
        reason: record.reason,
        mgmt_affecting: record.mgmt_affecting,
        raised_at: record.raised_at,
        source: record.source,
    }
}

fn event_view(event: AlarmEvent) -> Event {
    Event {
        seq: event.seq,
        uuid: event.alarm.uuid,
        alarm_id: event.alarm.alarm_id,
        entity: event.alarm.entity,
        severity: event.alarm.severity,
        reason: event.alarm.reason,
        mgmt_affecting: event.alarm.mgmt_affecting,
        state: event.state,
        at: event.at,
        by: event.by,
    }
}
