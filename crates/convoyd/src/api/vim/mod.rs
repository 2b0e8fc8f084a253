//! `/api/orchestration/...`: the VIM's software-update strategy API in the original's shape
//! (spec §4.2), which `sw-manager`, `convoy patch-strategy`, `convoy sw-deploy-strategy` and a
//! System Controller use. `{name}` is the strategy's VIM name: `sw-patch`, or `sw-upgrade`
//! (the sw-deploy strategy).
//!
//! Create runs the build at once: the answer is the strategy `ready-to-apply`, or
//! `build-failed` with the build's reason (the strategy is kept, as the original keeps it,
//! until it is deleted).

mod build;
mod view;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_core::role::Role;
use convoy_core::strategy::{StrategyKind, StrategyState};
use convoy_core::sw_update::build::{BuildConfig, build_sw_patch, build_sw_upgrade};
use convoy_core::sw_update::lifecycle;
use convoy_core::sw_update::options::SwUpdateKind;
use convoy_store::{StepRecord, StoreError, StrategyRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use super::extract::{ApiJson, ApiPath, Caller, parse_json};
use crate::clock;
use crate::state::AppState;
use crate::strategy::sw_update::{SwUpdateOptions, SwUpdateRecord};
use convoy_api::ErrorBody;

/// The strategy type a path names: `sw-patch` or `sw-upgrade`.
fn kind_of(name: &str) -> Result<SwUpdateKind, ApiError> {
    name.parse().map_err(|_| {
        ApiError::not_found(format!("strategy type {name:?} (sw-patch or sw-upgrade)"))
    })
}

fn strategy_kind(kind: SwUpdateKind) -> StrategyKind {
    match kind {
        SwUpdateKind::SwPatch => StrategyKind::SwPatch,
        SwUpdateKind::SwUpgrade => StrategyKind::SwUpgrade,
    }
}

/// The controller's strategy, if it is a software update of `kind`.
async fn current(
    state: &AppState,
    kind: SwUpdateKind,
) -> Result<Option<(StrategyRecord, SwUpdateRecord)>, ApiError> {
    Ok(crate::strategy::sw_update::current(state)
        .await
        .map_err(ApiError::internal)?
        .filter(|(strategy, _)| strategy.kind == strategy_kind(kind)))
}

async fn render(
    state: &AppState,
    strategy: &StrategyRecord,
    record: &SwUpdateRecord,
) -> Result<Value, ApiError> {
    let steps = state.store.steps(&strategy.id).await?;
    let phases = state.store.phases(&strategy.id, None).await?;
    Ok(view::strategy_json(strategy, record, &steps, &phases))
}

fn no_strategy(kind: SwUpdateKind) -> ApiError {
    ApiError::not_found(format!("{kind} strategy"))
}

/// The engine's steps of a plan: one per host of each host stage, and one named after the
/// stage for a stage that acts on no host (`sw-upgrade-start`, `sw-upgrade-complete`,
/// `sw-deploy-delete`).
fn engine_steps(record: &SwUpdateRecord, now: jiff::Timestamp) -> Vec<StepRecord> {
    let mut steps = Vec::new();
    for (i, stage) in record.plan.iter().flat_map(|p| p.stages.iter()).enumerate() {
        let hosts = stage.updated_hosts();
        let targets = if hosts.is_empty() {
            vec![stage.name.as_str().to_string()]
        } else {
            hosts.into_iter().map(str::to_string).collect()
        };
        for target in targets {
            steps.push(StepRecord::planned(
                &target,
                steps.len() as u32,
                i as u32 + 1,
                now,
            ));
        }
    }
    steps
}

/// `POST /api/orchestration/{name}/strategy`: validates, builds and keeps the strategy. The
/// body is sw-patch's or sw-upgrade's options (the latter with `release`, and `delete`).
#[utoipa::path(
    post, path = "/api/orchestration/{name}/strategy", tag = "sw-update", security(("user_token" = [])),
    params(("name" = String, Path, description = "sw-patch or sw-upgrade")),
    request_body = Object,
    responses((status = 200, description = "The strategy, built: ready-to-apply or build-failed with the build's reason (the original's JSON)", body = Object), (status = 400, description = "A bad option", body = ErrorBody), (status = 404, description = "An unknown strategy type", body = ErrorBody), (status = 409, description = "strategy already exists of type:<type>", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let kind = kind_of(&name)?;
    let body = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let options = match kind {
        SwUpdateKind::SwPatch => {
            let o: convoy_core::sw_update::options::SwPatchOptions = parse_json(&body)?;
            o.validate()?;
            SwUpdateOptions::Patch(o)
        }
        SwUpdateKind::SwUpgrade => {
            let o: convoy_core::sw_update::options::SwUpgradeOptions = parse_json(&body)?;
            o.validate()?;
            SwUpdateOptions::Upgrade(o)
        }
    };
    if let Some(existing) = state.store.strategy().await? {
        return Err(exists(existing.kind));
    }
    let now = clock::now();
    let (site, patches) = build::site_inventory(&state, options.release(), now).await?;
    let config = BuildConfig {
        durations: state.step_durations.clone(),
        extra_ignore_alarms: Vec::new(),
    };
    let built = match &options {
        SwUpdateOptions::Patch(o) => build_sw_patch(o, &site, patches, &config, now),
        SwUpdateOptions::Upgrade(o) => {
            let facts = build::upgrade_facts(&state, o).await?;
            build_sw_upgrade(o, &site, &facts, &config, now)
        }
    };
    let (plan, build_reason) = match built {
        Ok(plan) => (Some(plan), None),
        Err(failure) => (None, Some(failure.reason)),
    };
    let record = SwUpdateRecord {
        options,
        plan,
        build_reason: build_reason.clone(),
        durations: state.step_durations.clone(),
    };
    let steps = engine_steps(&record, now);
    // Every host of a stage goes through it together; the stages keep their size bounds.
    let widest = (1..=steps.iter().map(|s| s.stage).max().unwrap_or(0))
        .map(|stage| steps.iter().filter(|s| s.stage == stage).count())
        .max()
        .unwrap_or(1)
        .max(1);
    let strategy = StrategyRecord {
        id: Uuid::new_v4().to_string(),
        kind: strategy_kind(kind),
        // A failed build leaves a strategy that can only be shown and deleted.
        state: if build_reason.is_some() {
            StrategyState::Failed
        } else {
            StrategyState::Initial
        },
        max_parallel: widest as u32,
        stop_on_failure: true,
        options: serde_json::to_string(&record).map_err(ApiError::internal)?,
        stop_at_stage: None,
        details: build_reason.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    match state.store.create_strategy(&strategy, &steps).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            let existing = state
                .store
                .strategy()
                .await?
                .map_or(strategy.kind, |s| s.kind);
            return Err(exists(existing));
        }
        Err(other) => return Err(other.into()),
    }
    tracing::info!(
        strategy = strategy.id,
        kind = %kind,
        steps = steps.len(),
        build = strategy.details,
        by = caller.name,
        "software-update strategy created"
    );
    state.wakeups.strategy_changed();
    Ok(Json(
        json!({"strategy": render(&state, &strategy, &record).await?}),
    ))
}

/// A refusal of the original's rules, with its message (400, as the original's API).
fn refused(refusal: lifecycle::Refusal) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "refused", refusal.reason)
}

fn exists(kind: StrategyKind) -> ApiError {
    ApiError::conflict(format!("strategy already exists of type:{kind}"))
}

/// `GET /api/orchestration/{name}/strategy`: `{"strategy": {...}}` or `{"strategy": null}`.
#[utoipa::path(
    get, path = "/api/orchestration/{name}/strategy", tag = "sw-update", security(("user_token" = [])),
    params(("name" = String, Path, description = "sw-patch or sw-upgrade")),
    responses((status = 200, description = "{\"strategy\": ...} or {\"strategy\": null}", body = Object), (status = 404, description = "An unknown strategy type", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&name)?;
    Ok(Json(match current(&state, kind).await? {
        Some((strategy, record)) => json!({"strategy": render(&state, &strategy, &record).await?}),
        None => json!({"strategy": null}),
    }))
}

/// `GET /api/orchestration/{name}/strategy/{uuid}`.
#[utoipa::path(
    get, path = "/api/orchestration/{name}/strategy/{uuid}", tag = "sw-update", security(("user_token" = [])),
    params(("name" = String, Path, description = "sw-patch or sw-upgrade"), ("uuid" = String, Path, description = "The strategy's uuid")),
    responses((status = 200, description = "The strategy", body = Object), (status = 400, description = "Not a uuid", body = ErrorBody), (status = 404, description = "No such strategy", body = ErrorBody))
)]
pub async fn show_one(
    State(state): State<AppState>,
    ApiPath((name, uuid)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind_of(&name)?;
    if Uuid::parse_str(&uuid).is_err() {
        return Err(ApiError::invalid("uuid", "is not a UUID"));
    }
    match current(&state, kind).await? {
        Some((strategy, record)) if strategy.id == uuid => Ok(Json(
            json!({"strategy": render(&state, &strategy, &record).await?}),
        )),
        _ => Err(no_strategy(kind)),
    }
}

/// `GET /api/orchestration/current-strategy/strategy`: which strategy exists, of any type.
#[utoipa::path(
    get, path = "/api/orchestration/current-strategy/strategy", tag = "sw-update", security(("user_token" = [])),
    responses((status = 200, description = "{\"strategy\": {\"name\", \"state\"}} or {\"strategy\": null}", body = Object))
)]
pub async fn current_strategy(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(strategy) = state.store.strategy().await? else {
        return Ok(Json(json!({"strategy": null})));
    };
    let record =
        SwUpdateRecord::parse(strategy.kind, &strategy.options).map_err(ApiError::internal)?;
    let steps = match record {
        Some(_) => state.store.steps(&strategy.id).await?,
        None => Vec::new(),
    };
    Ok(Json(view::current_json(
        &strategy,
        record.as_ref().map(|r| (r, steps.as_slice())),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    action: String,
    #[serde(default, rename = "stage-id")]
    stage_id: Option<u32>,
}

/// `POST /api/orchestration/{name}/strategy/actions`: `apply-all`, `apply-stage`, `abort` or
/// `abort-stage` (202 with the strategy).
#[utoipa::path(
    post, path = "/api/orchestration/{name}/strategy/actions", tag = "sw-update", security(("user_token" = [])),
    params(("name" = String, Path, description = "sw-patch or sw-upgrade")),
    request_body = Object,
    responses((status = 202, description = "The strategy after the action", body = Object), (status = 400, description = "A bad action or no stage-id", body = ErrorBody), (status = 404, description = "No strategy", body = ErrorBody), (status = 409, description = "The strategy's state refuses the action", body = ErrorBody))
)]
pub async fn action(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<ActionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Operator)?;
    let kind = kind_of(&name)?;
    let apply = match request.action.as_str() {
        "apply-all" | "apply-stage" => true,
        "abort" | "abort-stage" => false,
        other => {
            return Err(ApiError::invalid(
                "action",
                format!("must be apply-all, apply-stage, abort or abort-stage, got {other:?}"),
            ));
        }
    };
    let stage_id = if request.action.ends_with("-stage") {
        Some(
            request
                .stage_id
                .ok_or_else(|| ApiError::invalid("stage-id", "No stage-id received"))?,
        )
    } else {
        None
    };
    let (strategy, record) = current(&state, kind)
        .await?
        .ok_or_else(|| no_strategy(kind))?;
    let steps = state.store.steps(&strategy.id).await?;
    let status = view::status(&strategy, &record, &steps);
    let now = clock::now();
    let changed = if apply {
        let decision = lifecycle::apply(&status, stage_id).map_err(refused)?;
        // The engine numbers stages from 1: stopping before 0-based stage N is stopping
        // after engine stage N.
        let stop_at =
            (decision.stop_at_stage < status.total_stages).then_some(decision.stop_at_stage);
        let from = if decision.starts {
            StrategyState::Initial
        } else {
            StrategyState::Applying
        };
        state
            .store
            .apply_strategy(&strategy.id, from, stop_at, now)
            .await?
    } else {
        lifecycle::abort(&status, stage_id).map_err(refused)?;
        // Between stages nothing runs: the engine aborts the pending steps at once.
        state
            .store
            .set_strategy_state(
                &strategy.id,
                StrategyState::Applying,
                StrategyState::AbortRequested,
                &strategy.details,
                now,
            )
            .await?
    };
    if !changed {
        return Err(ApiError::conflict(
            "the strategy changed meanwhile; look at it again and retry",
        ));
    }
    tracing::info!(
        strategy = strategy.id,
        action = request.action,
        by = caller.name,
        kind = %kind,
        "software-update strategy action"
    );
    state.wakeups.strategy_changed();
    state.wakeups.recheck_alarms();
    let (strategy, _) = current(&state, kind)
        .await?
        .ok_or_else(|| no_strategy(kind))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"strategy": render(&state, &strategy, &record).await?})),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    #[serde(default)]
    force: bool,
}

/// `DELETE /api/orchestration/{name}/strategy` with an optional `{"force": bool}`: only when
/// it is not applying or aborting (force does not delete a running strategy here: its hosts
/// would be left locked).
#[utoipa::path(
    delete, path = "/api/orchestration/{name}/strategy", tag = "sw-update", security(("user_token" = [])),
    params(("name" = String, Path, description = "sw-patch or sw-upgrade")),
    responses((status = 200, description = "Deleted", body = Object), (status = 404, description = "No strategy", body = ErrorBody), (status = 409, description = "It is applying or aborting", body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let kind = kind_of(&name)?;
    let request: DeleteRequest = if body.is_empty() {
        DeleteRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    let (strategy, _) = current(&state, kind)
        .await?
        .ok_or_else(|| no_strategy(kind))?;
    if strategy.state.is_active()
        || !state
            .store
            .set_strategy_state(
                &strategy.id,
                strategy.state,
                StrategyState::Deleting,
                &strategy.details,
                clock::now(),
            )
            .await?
    {
        let forced = if request.force {
            " (force does not delete a running strategy: its hosts would stay locked)"
        } else {
            ""
        };
        return Err(ApiError::conflict(format!(
            "strategy is applying or aborting; abort it and wait for it to end{forced}"
        )));
    }
    state.store.delete_strategy(&strategy.id).await?;
    tracing::info!(
        strategy = strategy.id,
        by = caller.name,
        kind = %kind,
        "software-update strategy deleted"
    );
    state.wakeups.strategy_changed();
    state.wakeups.recheck_alarms();
    Ok(Json(json!({})))
}
