//! `/v1/hosts`: the inventory, lock and unlock, forgetting a host, and commands to its agent.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::hosts::{Command, Host, HostList, NewCommand};
use convoy_core::command::CommandKind;
use convoy_core::controllers::ControllerHost;
use convoy_core::host::{Administrative, Availability};
use convoy_store::{CommandRecord, HostRecord};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, views};
use crate::state::AppState;
use convoy_api::ErrorBody;

#[utoipa::path(
    get, path = "/v1/hosts", tag = "hosts", security(("user_token" = [])),
    responses((status = 200, description = "Every host, sorted by hostname", body = HostList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<HostList>, ApiError> {
    let now = crate::clock::now();
    let records = state.store.hosts().await?;
    let active = active_controller(&state, &records, now).await?;
    let hosts = records
        .into_iter()
        .map(|record| views::host(record, now, state.ping_interval, active.as_deref()))
        .collect();
    Ok(Json(HostList { hosts }))
}

/// What the swact rule knows of the hosts.
fn conditions(
    records: &[HostRecord],
    now: Timestamp,
    ping_interval: SignedDuration,
) -> Vec<ControllerHost> {
    records
        .iter()
        .map(|r| ControllerHost {
            hostname: r.hostname.clone(),
            personality: r.personality,
            administrative: r.administrative,
            availability: convoy_core::host::availability(r.last_seen, now, ping_interval),
        })
        .collect()
}

pub(crate) async fn active_controller(
    state: &AppState,
    records: &[HostRecord],
    now: Timestamp,
) -> Result<Option<String>, ApiError> {
    let recorded = state.store.active_controller().await?;
    Ok(convoy_core::controllers::active_controller(
        &conditions(records, now, state.ping_interval),
        recorded.as_deref(),
    ))
}

/// Moves activity from the active controller `hostname` to the standby.
#[utoipa::path(
    post, path = "/v1/hosts/{hostname}/swact", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The active controller")),
    responses((status = 200, description = "The host, now the standby controller", body = Host), (status = 404, description = "No such host", body = ErrorBody), (status = 409, description = "Not the active controller, or no standby ready to take over", body = ErrorBody))
)]
pub async fn swact(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
) -> Result<Json<Host>, ApiError> {
    swact_from(&state, &hostname).await?;
    find(&state, &hostname).await.map(Json)
}

/// Moves activity from the active controller `hostname` to a standby; returns the new active
/// controller.
pub(crate) async fn swact_from(state: &AppState, hostname: &str) -> Result<String, ApiError> {
    let now = crate::clock::now();
    let records = state.store.hosts().await?;
    if !records.iter().any(|r| r.hostname == hostname) {
        return Err(host_not_found(hostname));
    }
    let recorded = state.store.active_controller().await?;
    let to = convoy_core::controllers::swact(
        &conditions(&records, now, state.ping_interval),
        recorded.as_deref(),
        hostname,
    )
    .map_err(|refusal| ApiError::conflict(refusal.to_string()))?;
    if !state
        .store
        .set_active_controller(recorded.as_deref(), &to)
        .await?
    {
        return Err(ApiError::conflict(
            "another swact changed the active controller meanwhile; look again and retry",
        ));
    }
    tracing::info!(
        from = hostname,
        to,
        "swact: {to} is now the active controller"
    );
    Ok(to)
}

#[utoipa::path(
    get, path = "/v1/hosts/{hostname}", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    responses((status = 200, description = "The host", body = Host), (status = 404, description = "No such host", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
) -> Result<Json<Host>, ApiError> {
    find(&state, &hostname).await.map(Json)
}

async fn find(state: &AppState, hostname: &str) -> Result<Host, ApiError> {
    let now = crate::clock::now();
    let records = state.store.hosts().await?;
    let active = active_controller(state, &records, now).await?;
    let record = records
        .into_iter()
        .find(|r| r.hostname == hostname)
        .ok_or_else(|| host_not_found(hostname))?;
    Ok(views::host(
        record,
        now,
        state.ping_interval,
        active.as_deref(),
    ))
}

fn host_not_found(hostname: &str) -> ApiError {
    ApiError::not_found(format!("host {hostname:?}"))
}

#[utoipa::path(
    post, path = "/v1/hosts/{hostname}/lock", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    responses((status = 200, description = "The host, locked", body = Host), (status = 404, description = "No such host", body = ErrorBody))
)]
pub async fn lock(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
) -> Result<Json<Host>, ApiError> {
    set_administrative(&state, &hostname, Administrative::Locked).await
}

#[utoipa::path(
    post, path = "/v1/hosts/{hostname}/unlock", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    responses((status = 200, description = "The host, unlocked", body = Host), (status = 404, description = "No such host", body = ErrorBody))
)]
pub async fn unlock(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
) -> Result<Json<Host>, ApiError> {
    set_administrative(&state, &hostname, Administrative::Unlocked).await
}

/// Lock and unlock state the desired administrative state, so repeating one is harmless.
/// Unlocking a locked host whose reboot-required change awaits a reboot reboots it: a
/// `reboot` command stored with the unlock, in one transaction.
pub(crate) async fn set_administrative(
    state: &AppState,
    hostname: &str,
    desired: Administrative,
) -> Result<Json<Host>, ApiError> {
    let reboot = match desired {
        Administrative::Unlocked if needs_reboot(state, hostname).await? => {
            Some(CommandRecord::new(
                crate::ids::command_id(),
                hostname,
                CommandKind::Reboot,
                "null".into(),
                crate::clock::now(),
            ))
        }
        _ => None,
    };
    let before = state.store.host(hostname).await?;
    state
        .store
        .set_administrative(hostname, desired, reboot.as_ref())
        .await?
        .ok_or_else(|| host_not_found(hostname))?;
    let rebooting = reboot.is_some() && before.is_some_and(|h| h.administrative != desired);
    if rebooting {
        state.wakeups.wake_host(hostname);
    }
    tracing::info!(
        host = hostname,
        state = desired.as_str(),
        rebooting,
        "administrative state set"
    );
    // The lock alarm follows at once (the sweep would see it within a ping interval).
    if let Err(e) = crate::alarms::sweep(state).await {
        tracing::warn!("cannot update the host alarms: {e:#}");
        state.wakeups.recheck_alarms();
    }
    find(state, hostname).await.map(Json)
}

/// Whether the host's last report says a reboot-required change awaits a reboot.
pub(crate) async fn needs_reboot(state: &AppState, hostname: &str) -> Result<bool, ApiError> {
    let site = crate::patches::repository::Site::load(state).await?;
    Ok(site
        .report(hostname)
        .is_some_and(|report| convoy_core::patch::state::awaits_reboot(&site.repo, report)))
}

/// Forgets a host. A host in service is refused: lock it first (or let it go offline), as
/// StarlingX requires before `host-delete`.
#[utoipa::path(
    delete, path = "/v1/hosts/{hostname}", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    responses((status = 204, description = "Forgotten"), (status = 404, description = "No such host", body = ErrorBody), (status = 409, description = "The host is unlocked and available; lock it first", body = ErrorBody))
)]
pub async fn forget(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let host = find(&state, &hostname).await?;
    if host.administrative == Administrative::Unlocked
        && host.availability == Availability::Available
    {
        return Err(ApiError::conflict(format!(
            "host {hostname:?} is unlocked and available; lock it before deleting it"
        )));
    }
    // Its alarms are cleared with it.
    if !state
        .store
        .delete_host(&hostname, crate::clock::now())
        .await?
    {
        return Err(host_not_found(&hostname));
    }
    state.wakeups.forget_host(&hostname);
    state.credentials.forget_host(&hostname);
    tracing::info!(host = hostname, "host deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Longest a request may wait for a command's outcome.
const MAX_WAIT_SECONDS: u64 = 60;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait_seconds: u64,
}

/// `POST /v1/hosts/{hostname}/commands?wait_seconds=N`: queues a command for the host's agent
/// and, if asked, waits up to N seconds for its outcome. Replies 201 with the command as it
/// stands (its outcome is null if the agent has not answered yet).
#[utoipa::path(
    post, path = "/v1/hosts/{hostname}/commands", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name"), WaitQuery),
    request_body = NewCommand,
    responses((status = 201, description = "The command as it stands (its outcome is null if the agent has not answered in time)", body = Command), (status = 404, description = "No such host", body = ErrorBody))
)]
pub async fn send_command(
    State(state): State<AppState>,
    ApiPath(hostname): ApiPath<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(request): ApiJson<NewCommand>,
) -> Result<(StatusCode, Json<Command>), ApiError> {
    if query.wait_seconds > MAX_WAIT_SECONDS {
        return Err(ApiError::invalid(
            "wait_seconds",
            format!("must be at most {MAX_WAIT_SECONDS}"),
        ));
    }
    if !matches!(request.kind, CommandKind::Ping | CommandKind::Facts) {
        return Err(ApiError::invalid(
            "kind",
            format!(
                "only ping and facts are sent directly; {} is sent by a strategy or a host \
                 operation (a reboot by unlocking a host that awaits one)",
                request.kind
            ),
        ));
    }
    find(&state, &hostname).await?;
    let id = crate::ids::command_id();
    state
        .store
        .insert_command(&CommandRecord::new(
            id.clone(),
            &hostname,
            request.kind,
            "null".into(),
            crate::clock::now(),
        ))
        .await?;
    state.wakeups.wake_host(&hostname);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait_seconds);
    loop {
        let outcomes = state.wakeups.outcomes().notified();
        tokio::pin!(outcomes);
        outcomes.as_mut().enable();
        let record = state
            .store
            .command(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("command {id}")))?;
        if record.completed_at.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok((StatusCode::CREATED, Json(views::command(record)?)));
        }
        let _ = tokio::time::timeout_at(deadline, outcomes).await;
    }
}

#[utoipa::path(
    get, path = "/v1/hosts/{hostname}/commands/{id}", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name"), ("id" = String, Path, description = "The command's id")),
    responses((status = 200, description = "The command", body = Command), (status = 404, description = "No such command of this host", body = ErrorBody))
)]
pub async fn show_command(
    State(state): State<AppState>,
    ApiPath((hostname, id)): ApiPath<(String, String)>,
) -> Result<Json<Command>, ApiError> {
    let record = state
        .store
        .command(&id)
        .await?
        .filter(|c| c.hostname == hostname)
        .ok_or_else(|| ApiError::not_found(format!("command {id} of host {hostname:?}")))?;
    Ok(Json(views::command(record)?))
}
