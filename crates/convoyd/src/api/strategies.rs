//! `/v1/strategy` (whichever strategy the controller has, of any kind),
//! `/v1/rolling-maintenance-strategy` and `/v1/strategy-steps`: creating, applying, aborting
//! and deleting the controller's strategy, and watching its steps.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::strategies::{
    ActionName, HostSkipped, HostUpdated, MaintenanceReport, NewRollingMaintenance, PhaseRun,
    RollingMaintenanceOptions, Step, StepDetail, StepList, Strategy, StrategyAction,
};
use convoy_core::hook::HookRun;
use convoy_core::host::{Administrative, Availability, availability};
use convoy_core::phases::rolling_maintenance::Phase;
use convoy_core::role::Role;
use convoy_core::strategy::planner::{
    InventoryHost, Scope, plan_rolling_maintenance, preflight_parallelism,
};
use convoy_core::strategy::{StepState, StrategyKind, StrategyState, Terminal};
use convoy_core::validation::validate_name;
use convoy_store::{StepRecord, StoreError, StrategyRecord};
use uuid::Uuid;

use super::ApiError;
use super::extract::{ApiJson, ApiPath, Caller};
use crate::clock;
use crate::state::AppState;
use convoy_api::ErrorBody;

/// CloudStack's default stage timeout.
const DEFAULT_TIMEOUT_SECONDS: u64 = 1800;
const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;
const MAX_PAYLOAD_BYTES: usize = 4096;

/// Masks every credential a strategy's options hold (a prestage's sysadmin password), so
/// that no reader sees it.
fn redacted(mut options: serde_json::Value) -> serde_json::Value {
    match &mut options {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "sysadmin_password" && !value.is_null() {
                    *value = serde_json::Value::from("******");
                } else {
                    *value = redacted(value.take());
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                *item = redacted(item.take());
            }
        }
        _ => {}
    }
    options
}

fn view(record: &StrategyRecord) -> Result<Strategy, ApiError> {
    Ok(Strategy {
        id: record.id.clone(),
        kind: record.kind,
        state: record.state,
        max_parallel: record.max_parallel,
        stop_on_failure: record.stop_on_failure,
        options: redacted(serde_json::from_str(&record.options).map_err(ApiError::internal)?),
        details: record.details.clone(),
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

fn step_view(record: &StepRecord) -> Step {
    Step {
        target: record.target.clone(),
        stage: record.stage,
        state: StepState::parse(&record.state),
        details: record.details.clone(),
        group: record.group.clone(),
        started_at: record.started_at,
        finished_at: record.finished_at,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// The controller's strategy if it is of `kind` (of any kind for None).
async fn current(state: &AppState, kind: Option<StrategyKind>) -> Result<StrategyRecord, ApiError> {
    state
        .store
        .strategy()
        .await?
        .filter(|s| kind.is_none_or(|k| s.kind == k))
        .ok_or_else(|| match kind {
            Some(kind) => ApiError::not_found(format!("{kind} strategy")),
            None => ApiError::not_found("strategy"),
        })
}

const ROLLING_MAINTENANCE: Option<StrategyKind> = Some(StrategyKind::RollingMaintenance);

/// `POST /v1/rolling-maintenance-strategy`: validates and plans; nothing runs.
#[utoipa::path(
    post, path = "/v1/rolling-maintenance-strategy", tag = "strategies", security(("user_token" = [])),
    request_body = NewRollingMaintenance,
    responses((status = 201, description = "The planned strategy; nothing runs yet", body = Strategy), (status = 409, description = "A strategy exists already", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewRollingMaintenance>,
) -> Result<(StatusCode, Json<Strategy>), ApiError> {
    caller.require(Role::Operator)?;
    let scope = Scope::from_options(request.hosts, request.clusters, request.pods, request.zones)?;
    for name in scope.names() {
        validate_name(scope.field(), name)?;
    }
    let ping = state.ping_interval.as_secs() as u64;
    let timeout = request.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if timeout <= ping {
        return Err(ApiError::invalid(
            "timeout_seconds",
            format!("must be greater than the ping interval ({ping} s), got {timeout}"),
        ));
    }
    if timeout > MAX_TIMEOUT_SECONDS {
        return Err(ApiError::invalid(
            "timeout_seconds",
            format!("must be at most {MAX_TIMEOUT_SECONDS}"),
        ));
    }
    if let Some(payload) = &request.payload
        && (payload.len() > MAX_PAYLOAD_BYTES || payload.contains('\0'))
    {
        return Err(ApiError::invalid(
            "payload",
            format!("must be at most {MAX_PAYLOAD_BYTES} bytes of text"),
        ));
    }
    let max_parallel = request.max_parallel_hosts.unwrap_or(1);
    let max_parallel_preflight =
        preflight_parallelism(request.max_parallel_preflight, max_parallel)?;

    let now = clock::now();
    let hosts = state.store.hosts().await?;
    let inventory: Vec<InventoryHost> = hosts
        .iter()
        .map(|h| InventoryHost {
            hostname: h.hostname.clone(),
            zone: h.zone.clone(),
            pod: h.pod.clone(),
            cluster: h.cluster.clone(),
            unfit: if availability(h.last_seen, now, state.ping_interval) == Availability::Offline {
                Some("offline".into())
            } else if h.administrative == Administrative::Locked {
                Some("locked".into())
            } else if h.facts.maintenance {
                Some("already in maintenance".into())
            } else {
                None
            },
        })
        .collect();
    let plan = plan_rolling_maintenance(&inventory, &scope, max_parallel, request.forced)?;

    let options = RollingMaintenanceOptions {
        scope,
        forced: request.forced,
        timeout_seconds: timeout,
        payload: request.payload,
        max_parallel_preflight: Some(max_parallel_preflight),
    };
    let record = StrategyRecord {
        id: Uuid::new_v4().to_string(),
        kind: StrategyKind::RollingMaintenance,
        state: StrategyState::Initial,
        max_parallel,
        stop_on_failure: request.stop_on_failure,
        options: serde_json::to_string(&options).map_err(ApiError::internal)?,
        stop_at_stage: None,
        details: String::new(),
        created_at: now,
        updated_at: now,
    };
    let steps: Vec<StepRecord> = plan
        .into_iter()
        .enumerate()
        .map(|(position, planned)| {
            let mut step = StepRecord::planned(planned.target, position as u32, planned.stage, now);
            step.group = planned.cluster;
            if let Some(reason) = planned.skipped {
                step.state = Terminal::Skipped.as_str().into();
                step.details = reason;
            }
            step
        })
        .collect();
    match state.store.create_strategy(&record, &steps).await {
        Ok(()) => {}
        Err(StoreError::Conflict { what }) => {
            return Err(ApiError::conflict(format!(
                "{what} already exists; a controller runs one strategy at a time (delete it first)"
            )));
        }
        Err(other) => return Err(other.into()),
    }
    tracing::info!(
        strategy = record.id,
        steps = steps.len(),
        by = caller.name,
        "rolling-maintenance strategy created"
    );
    state.wakeups.strategy_changed();
    Ok((StatusCode::CREATED, Json(view(&record)?)))
}

#[utoipa::path(
    get, path = "/v1/rolling-maintenance-strategy", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The strategy", body = Strategy), (status = 404, description = "No rolling-maintenance strategy", body = ErrorBody))
)]
pub async fn show(State(state): State<AppState>) -> Result<Json<Strategy>, ApiError> {
    Ok(Json(view(&current(&state, ROLLING_MAINTENANCE).await?)?))
}

/// `GET /v1/strategy`: the controller's strategy, whatever its kind.
#[utoipa::path(
    get, path = "/v1/strategy", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The strategy", body = Strategy), (status = 404, description = "No strategy", body = ErrorBody))
)]
pub async fn show_any(State(state): State<AppState>) -> Result<Json<Strategy>, ApiError> {
    Ok(Json(view(&current(&state, None).await?)?))
}

/// `POST /v1/rolling-maintenance-strategy/actions` with `{"action": "apply" | "abort"}`.
#[utoipa::path(
    post, path = "/v1/rolling-maintenance-strategy/actions", tag = "strategies", security(("user_token" = [])),
    request_body = StrategyAction,
    responses((status = 200, description = "The strategy after the action", body = Strategy), (status = 404, description = "No rolling-maintenance strategy", body = ErrorBody), (status = 409, description = "The strategy is not in a state the action applies to", body = ErrorBody))
)]
pub async fn action(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<StrategyAction>,
) -> Result<Json<Strategy>, ApiError> {
    act(&state, &caller, ROLLING_MAINTENANCE, request).await
}

/// `POST /v1/strategy/actions` with `{"action": "apply" | "abort"}`, whatever the kind.
#[utoipa::path(
    post, path = "/v1/strategy/actions", tag = "strategies", security(("user_token" = [])),
    request_body = StrategyAction,
    responses((status = 200, description = "The strategy after the action", body = Strategy), (status = 404, description = "No strategy", body = ErrorBody), (status = 409, description = "The strategy is not in a state the action applies to", body = ErrorBody))
)]
pub async fn action_any(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<StrategyAction>,
) -> Result<Json<Strategy>, ApiError> {
    act(&state, &caller, None, request).await
}

async fn act(
    state: &AppState,
    caller: &Caller,
    kind: Option<StrategyKind>,
    request: StrategyAction,
) -> Result<Json<Strategy>, ApiError> {
    caller.require(Role::Operator)?;
    let strategy = current(state, kind).await?;
    let (from, to, refusal) = match request.action {
        ActionName::Apply => (
            StrategyState::Initial,
            StrategyState::Applying,
            "only an initial strategy can be applied",
        ),
        ActionName::Abort => (
            StrategyState::Applying,
            StrategyState::AbortRequested,
            "only an applying strategy can be aborted",
        ),
    };
    if !state
        .store
        .set_strategy_state(&strategy.id, from, to, &strategy.details, clock::now())
        .await?
    {
        let now = current(state, kind).await?;
        return Err(ApiError::conflict(format!(
            "the strategy is {}; {refusal}",
            now.state
        )));
    }
    tracing::info!(strategy = strategy.id, action = ?request.action, by = caller.name, "strategy action");
    state.wakeups.strategy_changed();
    Ok(Json(view(&current(state, kind).await?)?))
}

/// `DELETE /v1/rolling-maintenance-strategy`: only when it is not running.
#[utoipa::path(
    delete, path = "/v1/rolling-maintenance-strategy", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The strategy, in state deleting", body = Strategy), (status = 404, description = "No rolling-maintenance strategy", body = ErrorBody), (status = 409, description = "The strategy runs", body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Strategy>, ApiError> {
    remove(&state, &caller, ROLLING_MAINTENANCE).await
}

/// `DELETE /v1/strategy`: the controller's strategy, whatever its kind, when it is not
/// running.
#[utoipa::path(
    delete, path = "/v1/strategy", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The strategy, in state deleting", body = Strategy), (status = 404, description = "No strategy", body = ErrorBody), (status = 409, description = "The strategy runs", body = ErrorBody))
)]
pub async fn delete_any(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Strategy>, ApiError> {
    remove(&state, &caller, None).await
}

async fn remove(
    state: &AppState,
    caller: &Caller,
    kind: Option<StrategyKind>,
) -> Result<Json<Strategy>, ApiError> {
    caller.require(Role::Operator)?;
    let strategy = current(state, kind).await?;
    let now = clock::now();
    if strategy.state.is_active()
        || !state
            .store
            .set_strategy_state(
                &strategy.id,
                strategy.state,
                StrategyState::Deleting,
                &strategy.details,
                now,
            )
            .await?
    {
        return Err(ApiError::conflict(format!(
            "the strategy is {}; abort it and wait for it to end before deleting it",
            strategy.state
        )));
    }
    // Whatever it disabled is enabled again before it is forgotten.
    state.store.enable_clusters(&strategy.id, None, now).await?;
    state.store.delete_strategy(&strategy.id).await?;
    tracing::info!(strategy = strategy.id, by = caller.name, "strategy deleted");
    state.wakeups.strategy_changed();
    let mut deleted = view(&strategy)?;
    deleted.state = StrategyState::Deleting;
    deleted.updated_at = now;
    Ok(Json(deleted))
}

/// `GET /v1/strategy-steps`: the steps of whichever strategy the controller runs.
#[utoipa::path(
    get, path = "/v1/strategy-steps", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The steps of whichever strategy runs (empty without one)", body = StepList))
)]
pub async fn steps(State(state): State<AppState>) -> Result<Json<StepList>, ApiError> {
    let Some(strategy) = state.store.strategy().await? else {
        return Ok(Json(StepList {
            strategy_steps: vec![],
        }));
    };
    let steps = state.store.steps(&strategy.id).await?;
    Ok(Json(StepList {
        strategy_steps: steps.iter().map(step_view).collect(),
    }))
}

/// `GET /v1/strategy-steps/{target}`: one step with the output of each of its phases.
#[utoipa::path(
    get, path = "/v1/strategy-steps/{target}", tag = "strategies", security(("user_token" = [])),
    params(("target" = String, Path, description = "The step's target (a host)")),
    responses((status = 200, description = "The step and its phases", body = StepDetail), (status = 404, description = "No such step", body = ErrorBody))
)]
pub async fn step(
    State(state): State<AppState>,
    ApiPath(target): ApiPath<String>,
) -> Result<Json<StepDetail>, ApiError> {
    let not_found = || ApiError::not_found(format!("strategy step {target:?}"));
    let strategy = state.store.strategy().await?.ok_or_else(not_found)?;
    // One row by its key: `strategy-step show` stays cheap at thousands of steps.
    let step = state
        .store
        .step(&strategy.id, &target)
        .await?
        .ok_or_else(not_found)?;
    let phases = state
        .store
        .phases(&strategy.id, Some(&target))
        .await?
        .into_iter()
        .map(|p| {
            // A hook's run shows as its exit code and streams; any other output as it is.
            let run: Option<HookRun> = serde_json::from_str(&p.output).ok();
            let output = match run {
                Some(_) => serde_json::Value::Null,
                None => serde_json::from_str(&p.output).unwrap_or_default(),
            };
            PhaseRun {
                output,
                phase: p.phase,
                started_at: p.started_at,
                finished_at: p.finished_at,
                result: p.result,
                details: p.details,
                exit_code: run.as_ref().and_then(|r| r.exit_code),
                stdout: run.as_ref().map(|r| r.stdout.clone()).unwrap_or_default(),
                stderr: run.as_ref().map(|r| r.stderr.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Json(StepDetail {
        step: step_view(&step),
        phases,
    }))
}

/// `GET /v1/rolling-maintenance-strategy/report`: hosts updated and skipped, like CloudStack's
/// response (plus the failed ones).
#[utoipa::path(
    get, path = "/v1/rolling-maintenance-strategy/report", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "Hosts updated, skipped and failed", body = MaintenanceReport), (status = 404, description = "No rolling-maintenance strategy", body = ErrorBody))
)]
pub async fn report(State(state): State<AppState>) -> Result<Json<MaintenanceReport>, ApiError> {
    let strategy = current(&state, ROLLING_MAINTENANCE).await?;
    let steps = state.store.steps(&strategy.id).await?;
    let phases = state.store.phases(&strategy.id, None).await?;
    let phase_of = |target: &str, phase: Phase| {
        phases
            .iter()
            .find(|p| p.target == target && p.phase == phase.as_str())
    };
    let mut report = MaintenanceReport {
        state: strategy.state,
        success: strategy.state == StrategyState::Complete,
        details: if strategy.state == StrategyState::Complete {
            "OK".into()
        } else {
            strategy.details.clone()
        },
        hosts_updated: vec![],
        hosts_skipped: vec![],
        hosts_failed: vec![],
    };
    for step in &steps {
        // Updated: its Maintenance hook ran to success.
        if let Some(maintenance) = phase_of(&step.target, Phase::Maintenance)
            .filter(|p| p.result.as_deref() == Some("succeeded"))
        {
            let start = phase_of(&step.target, Phase::EnterMaintenance)
                .map_or(maintenance.started_at, |p| p.started_at);
            let end = phase_of(&step.target, Phase::ExitMaintenance).and_then(|p| p.finished_at);
            let run: Option<HookRun> = serde_json::from_str(&maintenance.output).ok();
            report.hosts_updated.push(HostUpdated {
                hostname: step.target.clone(),
                start,
                end,
                output: run.map(|r| r.stdout).unwrap_or_default(),
            });
        }
        let entry = HostSkipped {
            hostname: step.target.clone(),
            reason: step.details.clone(),
        };
        match Terminal::parse(&step.state) {
            Some(Terminal::Skipped) => report.hosts_skipped.push(entry),
            Some(Terminal::Failed) => report.hosts_failed.push(entry),
            _ => {}
        }
    }
    Ok(Json(report))
}
