//! `/v1.0/sw-update-strategy`: dcmanager's strategy API (spec dcmanager-api.md §3) over the
//! one engine: create (validated in the original's order, 400; the orchestrator's refusals
//! 422), show, apply, abort and delete with `?type=`, and the steps. One strategy of any kind
//! at a time on the controller, as the engine keeps it.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use convoy_core::dc_strategy::DcStrategyType;
use convoy_core::dc_strategy::prestage::{PrestageResult, PrestageSubcloud, initial_validate};
use convoy_core::dc_strategy::request::{self, CreateRequest, Lookups};
use convoy_core::patch::PatchId;
use convoy_core::strategy::{StrategyKind, StrategyState, Terminal};
use convoy_core::subcloud::{ApplyType, Availability, Management, Reference, SyncStatus};
use convoy_core::sw_update::release::DeployState;
use convoy_core::sw_update::release::ReleaseState;
use convoy_store::subclouds::{GroupRecord, SubcloudRecord};
use convoy_store::{StepRecord, StoreError, StrategyRecord};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::DcError;
use super::views::time;
use crate::patches::repository::Site;
use crate::state::AppState;
use crate::strategy::subcloud_call::{DcStrategyRecord, PrestageRequest};

/// The `type` of `?type=T`, if given.
fn type_query(query: &Option<String>) -> Option<String> {
    query.as_deref().and_then(|q| {
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "type").then(|| v.to_string())
        })
    })
}

/// The controller's strategy if it is a System Controller one of `wanted` (any if None).
async fn current(
    state: &AppState,
    wanted: Option<&str>,
) -> Result<Option<(StrategyRecord, DcStrategyRecord)>, DcError> {
    let Some(strategy) = state.store.strategy().await? else {
        return Ok(None);
    };
    if !strategy.kind.over_subclouds() {
        return Ok(None);
    }
    let record: DcStrategyRecord = serde_json::from_str(&strategy.options)
        .map_err(|e| DcError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if wanted.is_some_and(|t| t != record.kind.as_str()) {
        return Ok(None);
    }
    Ok(Some((strategy, record)))
}

/// The strategy object (§3.1). dcmanager numbers its one row; Convoy's is always 1.
fn strategy_json(strategy: &StrategyRecord, record: &DcStrategyRecord) -> Value {
    json!({
        "id": 1,
        "type": record.kind.as_str(),
        "subcloud-apply-type": record.apply_type.map(|t| t.as_str()),
        "max-parallel-subclouds": strategy.max_parallel,
        "stop-on-failure": strategy.stop_on_failure,
        "state": strategy.state.as_str(),
        "created-at": strategy.created_at.strftime("%Y-%m-%dT%H:%M:%S.%6f").to_string(),
        "updated-at": strategy.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%6f").to_string(),
        "extra-args": extra_args(record),
    })
}

/// `extra-args` (§3.1). The sysadmin password is shown masked: the original echoes it back
/// base64-encoded in every response, which puts a credential in every reader's hands.
fn extra_args(record: &DcStrategyRecord) -> Value {
    let masked = record.prestage.as_ref().map(|_| "******");
    match record.kind {
        DcStrategyType::Prestage => {
            let p = record.prestage.as_ref();
            json!({
                "sysadmin_password": masked,
                "force": p.is_some_and(|p| p.force),
                "prestage-software-version": p.map(|p| p.sw_version.clone()),
                "for_sw_deploy": p.is_some_and(|p| p.for_sw_deploy),
            })
        }
        DcStrategyType::SwDeploy => {
            let mut args = json!({
                "release_id": record.release_id,
                "delete": record.delete,
                "rollback": false,
                "snapshot": false,
                "cleanup": false,
                "with_prestage": record.prestage.is_some(),
                "sysadmin_password": masked,
                "kube_upgrade": null,
            });
            if let Some(p) = &record.prestage {
                args["for_sw_deploy"] = json!(true);
                args["force"] = json!(p.force);
                args["prestage-software-version"] = json!(p.sw_version);
            }
            args
        }
    }
}

/// A step (§3.6): `Create` before it starts, `Apply` while it runs, `Complete` once it ended
/// having started.
fn step_json(step: &StepRecord) -> Value {
    let ended = Terminal::parse(&step.state).is_some();
    let stage = match (step.started_at, ended) {
        (None, _) => "Create",
        (Some(_), false) => "Apply",
        (Some(_), true) => "Complete",
    };
    json!({
        "id": step.position + 1,
        "cloud": step.target,
        "stage": stage,
        "state": step.state,
        "details": step.details,
        "started-at": step.started_at.map(time),
        "finished-at": step.finished_at.map(time),
        "created-at": time(step.created_at),
        "updated-at": (step.updated_at != step.created_at).then(|| time(step.updated_at)),
    })
}

fn unable(verb: &str, kind: Option<&str>, message: impl std::fmt::Display) -> DcError {
    DcError::unprocessable(format!(
        "Unable to {verb} strategy of type '{}': {message}",
        kind.unwrap_or("None")
    ))
}

fn bad(verb: &str, kind: Option<&str>, message: impl std::fmt::Display) -> DcError {
    unable(verb, kind, format!("Bad strategy request: {message}"))
}

/// The body's JSON object; `Body required` for none.
fn object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, DcError> {
    let body = body.map_err(|r| DcError::new(r.status(), r.body_text()))?;
    if body.trim_ascii().is_empty() {
        return Err(DcError::bad_request("Body required"));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DcError::bad_request("Request body is malformed.")),
    }
}

/// What validation reads of the System Controller.
pub(super) struct ScLookups {
    groups: Vec<GroupRecord>,
    releases: BTreeMap<PatchId, ReleaseState>,
    /// Each release's software version.
    versions: BTreeMap<PatchId, String>,
    own_version: String,
    deploying: bool,
}

impl ScLookups {
    pub(super) async fn read(state: &AppState) -> Result<ScLookups, DcError> {
        let site = Site::load(state).await?;
        Ok(ScLookups {
            groups: state.subclouds.groups().await?,
            releases: site.release_states(),
            versions: site
                .repo
                .iter()
                .map(|(id, e)| (id.clone(), e.metadata.sw_version.to_string()))
                .collect(),
            own_version: state.release.to_string(),
            deploying: site
                .deploy
                .as_ref()
                .is_some_and(|d| d.state != DeployState::Completed),
        })
    }
}

impl Lookups for ScLookups {
    fn group(&self, reference: &str) -> Option<(ApplyType, u32)> {
        let by = Reference::parse(reference);
        self.groups
            .iter()
            .find(|g| match &by {
                Reference::Id(id) => g.id == *id,
                Reference::Name(name) => &g.name == name,
            })
            .map(|g| (g.update_apply_type, g.max_parallel_subclouds as u32))
    }

    fn release_deployed(&self, release_id: &str) -> bool {
        release_id.parse::<PatchId>().ok().is_some_and(|id| {
            matches!(
                self.releases.get(&id),
                Some(ReleaseState::Deployed | ReleaseState::Committed)
            )
        })
    }

    fn sc_version(&self) -> String {
        self.own_version.clone()
    }

    fn release_version(&self, release_id: &str) -> Option<String> {
        let id = release_id.parse::<PatchId>().ok()?;
        self.versions.get(&id).cloned()
    }

    fn version_states(&self, version: &str) -> Vec<String> {
        self.versions
            .iter()
            .filter(|(_, v)| *v == version)
            .filter_map(|(id, _)| self.releases.get(id))
            .map(|s| s.to_string())
            .collect()
    }

    fn versions(&self) -> Vec<String> {
        let mut all: Vec<String> = self.versions.values().cloned().collect();
        all.push(self.own_version.clone());
        all.sort();
        all.dedup();
        all
    }

    fn deploy_in_progress(&self) -> bool {
        self.deploying
    }
}

fn software_status(subcloud: &SubcloudRecord) -> SyncStatus {
    subcloud
        .endpoints
        .iter()
        .find(|(name, _)| name == "software")
        .map_or(SyncStatus::Unknown, |(_, s)| *s)
}

/// The subclouds a create takes (§3.3): managed, online, in scope and out of sync; refused
/// with the orchestrator's messages.
fn candidates(
    request: &CreateRequest,
    subclouds: Vec<SubcloudRecord>,
    group_id: Option<i64>,
) -> Result<Vec<SubcloudRecord>, String> {
    let mut scope: Vec<SubcloudRecord> = subclouds
        .into_iter()
        .filter(|s| group_id.is_none_or(|g| s.group_id == g))
        .filter(|s| request.cloud_name.as_ref().is_none_or(|n| &s.name == n))
        .collect();
    if let Some(name) = &request.cloud_name {
        let Some(one) = scope.first() else {
            return Err(format!("Subcloud {name} does not exist"));
        };
        if software_status(one) == SyncStatus::InSync {
            return Err(format!("Subcloud {name} does not require software update"));
        }
    }
    let reachable = |s: &SubcloudRecord| {
        s.management == Management::Managed && s.availability == Availability::Online
    };
    if scope
        .iter()
        .any(|s| reachable(s) && software_status(s) == SyncStatus::Unknown)
    {
        return Err("software sync status is unknown for one or more subclouds".into());
    }
    scope.retain(|s| reachable(s) && software_status(s) == SyncStatus::OutOfSync);
    scope.sort_by_key(|s| s.id);
    if scope.is_empty() {
        return Err("Strategy has no steps to apply".into());
    }
    Ok(scope)
}

/// The subclouds a prestage takes (§3.3): managed and online, in scope, any sync status;
/// those the initial prestage validation refuses are left out, or refused by name for a
/// single subcloud.
fn prestage_candidates(
    request: &CreateRequest,
    subclouds: Vec<SubcloudRecord>,
    group_id: Option<i64>,
) -> Result<Vec<SubcloudRecord>, String> {
    let mut scope: Vec<SubcloudRecord> = subclouds
        .into_iter()
        .filter(|s| group_id.is_none_or(|g| s.group_id == g))
        .filter(|s| request.cloud_name.as_ref().is_none_or(|n| &s.name == n))
        .collect();
    let facts = |s: &SubcloudRecord| PrestageSubcloud {
        name: s.name.clone(),
        online: s.availability == Availability::Online,
        managed: s.management == Management::Managed,
        deploy_status: s.deploy_status.clone(),
        prestage_status: s.prestage_status.clone(),
        software_version: s.software_version.clone(),
        management_affecting_alarms: false,
    };
    if let Some(name) = &request.cloud_name {
        let Some(one) = scope.first() else {
            return Err(format!("Subcloud {name} does not exist"));
        };
        if let Err(PrestageResult::Done(m) | PrestageResult::Failed(m)) =
            initial_validate(&facts(one))
        {
            return Err(m);
        }
    }
    scope.retain(|s| initial_validate(&facts(s)).is_ok());
    scope.sort_by_key(|s| s.id);
    if scope.is_empty() {
        return Err("Strategy has no steps to apply".into());
    }
    Ok(scope)
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, DcError> {
    let body = object(body)?;
    let lookups = ScLookups::read(&state).await?;
    let request = request::validate(&body, &lookups).map_err(DcError::bad_request)?;
    let kind_name = Some(request.kind.as_str());
    if let Some(existing) = state.store.strategy().await? {
        return Err(bad(
            "create",
            kind_name,
            format!("Strategy of type: '{}' already exists", existing.kind),
        ));
    }
    let group_id = request
        .group
        .as_deref()
        .and_then(|g| {
            lookups
                .groups
                .iter()
                .find(|r| r.name == g || r.id.to_string() == g)
        })
        .map(|g| g.id);
    let subclouds = state.subclouds.subclouds().await?;
    let chosen = match request.kind {
        DcStrategyType::SwDeploy if request.prestage.is_some() && request.cloud_name.is_some() => {
            // With prestage, one subcloud passes the prestage validation first.
            prestage_candidates(&request, subclouds.clone(), group_id)
                .and_then(|_| candidates(&request, subclouds, group_id))
        }
        DcStrategyType::SwDeploy => candidates(&request, subclouds, group_id),
        DcStrategyType::Prestage => prestage_candidates(&request, subclouds, group_id),
    }
    .map_err(|message| bad("create", kind_name, message))?;
    let now = crate::clock::now();
    let steps: Vec<StepRecord> = chosen
        .iter()
        .enumerate()
        .map(|(i, s)| StepRecord::planned(&s.name, i as u32, 1, now))
        .collect();
    let record = DcStrategyRecord {
        kind: request.kind,
        apply_type: request.apply_type,
        cloud_name: request.cloud_name.clone(),
        group: request.group.clone(),
        release_id: request.release_id.clone(),
        release_version: request
            .release_id
            .as_deref()
            .and_then(|id| lookups.release_version(id)),
        delete: request.delete,
        time_scale: state.step_durations.step_time_scale,
        prestage: request.prestage.as_ref().map(|p| PrestageRequest {
            sw_version: p.sw_version.clone(),
            for_sw_deploy: p.for_sw_deploy,
            force: p.force,
            sysadmin_password: p.sysadmin_password.clone(),
        }),
    };
    let strategy = StrategyRecord {
        id: Uuid::new_v4().to_string(),
        kind: match request.kind {
            DcStrategyType::SwDeploy => StrategyKind::DcSwDeploy,
            DcStrategyType::Prestage => StrategyKind::DcPrestage,
        },
        state: StrategyState::Initial,
        max_parallel: request.max_parallel,
        stop_on_failure: request.stop_on_failure,
        options: serde_json::to_string(&record).map_err(|e| {
            DcError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?,
        stop_at_stage: None,
        details: String::new(),
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
            return Err(bad(
                "create",
                kind_name,
                format!("Strategy of type: '{existing}' already exists"),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    tracing::info!(
        strategy = strategy.id,
        kind = record.kind.as_str(),
        subclouds = steps.len(),
        release = record.release_id,
        prestage_version = record.prestage.as_ref().map(|p| p.sw_version.as_str()),
        "System Controller strategy created"
    );
    // As the original's create: each subcloud taken starts with no errors present.
    let names: Vec<String> = steps.iter().map(|s| s.target.clone()).collect();
    state.subclouds.clear_error_descriptions(&names).await?;
    state.wakeups.strategy_changed();
    Ok(Json(strategy_json(&strategy, &record)))
}

pub async fn show(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, DcError> {
    let wanted = type_query(&query);
    match current(&state, wanted.as_deref()).await? {
        Some((strategy, record)) => Ok(Json(strategy_json(&strategy, &record))),
        None => Err(DcError::not_found(match wanted {
            Some(t) => format!("Strategy of type '{t}' not found"),
            None => "Strategy not found".to_string(),
        })),
    }
}

pub async fn action(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, DcError> {
    let wanted = type_query(&query);
    let body = object(body)?;
    let Some(action) = body.get("action").and_then(Value::as_str) else {
        return Err(DcError::bad_request("action required"));
    };
    let (verb, from, to) = match action {
        "apply" => ("apply", StrategyState::Initial, StrategyState::Applying),
        "abort" => (
            "abort",
            StrategyState::Applying,
            StrategyState::AbortRequested,
        ),
        // The original's handler has no branch for another action: 200, `null`.
        _ => return Ok(Json(Value::Null)),
    };
    let shown_type = wanted.as_deref();
    let (strategy, record) = current(&state, shown_type).await?.ok_or_else(|| {
        let t = shown_type.unwrap_or("None");
        unable(
            verb,
            shown_type,
            format!("Strategy with type {t} doesn't exist."),
        )
    })?;
    let done = if verb == "apply" {
        "applied"
    } else {
        "aborted"
    };
    let refused = || {
        bad(
            verb,
            shown_type,
            format!("Strategy in state {} cannot be {done}", strategy.state),
        )
    };
    if strategy.state != from {
        return Err(refused());
    }
    let now = crate::clock::now();
    let changed = if verb == "apply" {
        state
            .store
            .apply_strategy(&strategy.id, from, None, now)
            .await?
    } else {
        state
            .store
            .set_strategy_state(&strategy.id, from, to, &strategy.details, now)
            .await?
    };
    if !changed {
        return Err(refused());
    }
    tracing::info!(
        strategy = strategy.id,
        action = verb,
        "System Controller strategy action"
    );
    state.wakeups.strategy_changed();
    let (strategy, record) = current(&state, shown_type)
        .await?
        .unwrap_or((strategy, record));
    Ok(Json(strategy_json(&strategy, &record)))
}

pub async fn delete(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, DcError> {
    let wanted = type_query(&query);
    let shown_type = wanted.as_deref();
    let (strategy, record) = current(&state, shown_type).await?.ok_or_else(|| {
        let t = shown_type.unwrap_or("None");
        unable(
            "delete",
            shown_type,
            format!("Strategy with type {t} doesn't exist."),
        )
    })?;
    let refused = || {
        bad(
            "delete",
            shown_type,
            format!("Strategy in state {} cannot be deleted", strategy.state),
        )
    };
    if strategy.state.is_active() {
        return Err(refused());
    }
    let now = crate::clock::now();
    if !state
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
        return Err(refused());
    }
    let mut shown = strategy.clone();
    shown.state = StrategyState::Deleting;
    state.store.delete_strategy(&strategy.id).await?;
    state.transfers.stop(&strategy.id, |_| false);
    state.preparations.forget(&strategy.id);
    tracing::info!(strategy = strategy.id, "System Controller strategy deleted");
    state.wakeups.strategy_changed();
    Ok(Json(strategy_json(&shown, &record)))
}

pub async fn steps(State(state): State<AppState>) -> Result<Json<Value>, DcError> {
    let steps = match current(&state, None).await? {
        Some((strategy, _)) => state.store.steps(&strategy.id).await?,
        None => Vec::new(),
    };
    let shown: Vec<Value> = steps.iter().map(step_json).collect();
    Ok(Json(json!({ "strategy-steps": shown })))
}

pub async fn step(
    State(state): State<AppState>,
    axum::extract::Path(cloud): axum::extract::Path<String>,
) -> Result<Json<Value>, DcError> {
    let not_found = || DcError::not_found("Strategy step not found");
    // `SystemController` names the step without a subcloud, which only the original's legacy
    // patch strategy had: there is none here, even if a subcloud bore that name.
    if cloud == "SystemController" {
        return Err(not_found());
    }
    let (strategy, _) = current(&state, None).await?.ok_or_else(not_found)?;
    let step = state
        .store
        .step(&strategy.id, &cloud)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(step_json(&step)))
}
