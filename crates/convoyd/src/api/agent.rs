//! The agent gateway: enrolment, heartbeats, command delivery by long poll, outcomes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use convoy_api::agent::{
    CarriedOutcome, CommandBatch, CommandDelivery, Enrolment, EnrolmentAccepted, Heartbeat,
    HeartbeatAccepted, OutcomeReport,
};
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::validation::validate_name;
use convoy_store::{CommandRecord, EnrolAuthority, HostEnrolment, StoreError};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::ApiError;
use super::extract::{AgentHost, ApiJson, ApiPath, ApiQuery};
use crate::secrets;
use crate::state::AppState;
use crate::strategy::inbox::Offer;
use crate::strategy::outcome_effects::host_effects;
use convoy_api::ErrorBody;

fn interval_seconds(state: &AppState) -> u64 {
    state.ping_interval.as_secs() as u64
}

/// `POST /v1/agent/enrol`. The token decides what the enrolment may do: the site's agent token
/// enrols a hostname the site does not know yet (and only while site enrolment is on); a
/// per-host token (`convoy host enrol-token create`) enrols its own host, known or not, once.
/// A refused enrolment stores nothing.
#[utoipa::path(
    post, path = "/v1/agent/enrol", tag = "agents",
    request_body = Enrolment,
    responses((status = 200, description = "The host's credential", body = EnrolmentAccepted), (status = 401, description = "A wrong enrolment token", body = ErrorBody), (status = 409, description = "The site token cannot enrol a known host", body = ErrorBody))
)]
pub async fn enrol(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<Enrolment>,
) -> Result<Json<EnrolmentAccepted>, ApiError> {
    validate_name("hostname", &request.hostname)?;
    let presented = secrets::token_hash(&request.enrolment_token);
    let authority = if presented == *state.enrolment_token_hash {
        if !state.site_enrolment {
            tracing::warn!(
                host = request.hostname,
                "enrolment refused: site enrolment is turned off"
            );
            return Err(ApiError::unauthorized(format!(
                "enrolment refused: this controller does not enrol hosts with its site agent \
                 token (site_enrolment = false); create a token for the host: convoy host \
                 enrol-token create {}",
                request.hostname
            )));
        }
        EnrolAuthority::SiteToken
    } else {
        EnrolAuthority::HostToken {
            token_hash: presented,
        }
    };
    for (field, value) in [
        ("zone", &request.zone),
        ("pod", &request.pod),
        ("cluster", &request.cluster),
    ] {
        if let Some(value) = value {
            validate_name(field, value)?;
        }
    }
    request.facts.check()?;
    let credential = secrets::generate("cvh_", 32);
    let known = state.store.host(&request.hostname).await?.is_some();
    let site_token = authority == EnrolAuthority::SiteToken;
    let hostname = request.hostname.clone();
    let record = match state
        .store
        .enrol_host(&HostEnrolment {
            authority,
            hostname: request.hostname,
            personality: request.personality,
            zone: request.zone,
            pod: request.pod,
            cluster: request.cluster,
            credential_hash: secrets::token_hash(&credential),
            facts: request.facts,
            now: crate::clock::now(),
        })
        .await
    {
        Ok(record) => record,
        Err(StoreError::Conflict { .. }) if site_token => {
            tracing::warn!(
                host = hostname,
                "enrolment refused: the site token cannot re-enrol a known host"
            );
            return Err(ApiError::conflict(format!(
                "host {hostname:?} is already enrolled; the site's agent token enrols only new \
                 hosts. To enrol it again (a reinstalled host), an admin creates a single-use \
                 token: convoy host enrol-token create {hostname}"
            )));
        }
        Err(StoreError::Refused { reason }) => {
            tracing::warn!(host = hostname, "enrolment refused: {reason}");
            return Err(ApiError::unauthorized(format!(
                "enrolment refused: wrong enrolment token; it is neither the site's agent \
                 token (DATA_DIR/agent-token) nor a valid token for host {hostname:?} ({reason})"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // A re-enrolment revokes the host's previous credential (forgotten only now that the
    // store no longer knows it, so a concurrent request cannot cache it again).
    state.credentials.forget_host(&record.hostname);
    tracing::info!(
        host = record.hostname,
        personality = record.personality.as_str(),
        "{}",
        if known {
            "host re-enrolled; its previous credential is revoked"
        } else {
            "host enrolled"
        }
    );
    Ok(Json(EnrolmentAccepted {
        hostname: record.hostname,
        credential,
        ping_interval_seconds: interval_seconds(&state),
    }))
}

#[utoipa::path(
    post, path = "/v1/agent/heartbeat", tag = "agents", security(("host_credential" = [])),
    request_body = Heartbeat,
    responses((status = 200, description = "Recorded", body = HeartbeatAccepted))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    host: AgentHost,
    ApiJson(request): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatAccepted>, ApiError> {
    request.facts.check()?;
    state
        .store
        .record_heartbeat(&host.hostname, &request.facts, crate::clock::now())
        .await?;
    Ok(Json(HeartbeatAccepted {
        ping_interval_seconds: interval_seconds(&state),
    }))
}

/// Longest an agent's poll is held open.
const MAX_POLL_SECONDS: u64 = 60;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// Identifies this run of the agent (see `due_for_delivery`).
    session: String,
    #[serde(default)]
    wait_seconds: u64,
}

/// `GET /v1/agent/commands?wait_seconds=N`: the host's due commands, waiting up to N seconds
/// for one to arrive.
#[utoipa::path(
    get, path = "/v1/agent/commands", tag = "agents", security(("host_credential" = [])),
    params(PollQuery),
    responses((status = 200, description = "The host's due commands (empty when none came in time)", body = CommandBatch))
)]
pub async fn poll_commands(
    State(state): State<AppState>,
    host: AgentHost,
    ApiQuery(query): ApiQuery<PollQuery>,
) -> Result<Json<CommandBatch>, ApiError> {
    let session = delivery_session(&state, &query.session)?;
    if query.wait_seconds > MAX_POLL_SECONDS {
        return Err(ApiError::invalid(
            "wait_seconds",
            format!("must be at most {MAX_POLL_SECONDS}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait_seconds);
    let signal = state.wakeups.host(&host.hostname);
    loop {
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let due = state
            .store
            .dispatch_due_commands(
                &host.hostname,
                &session,
                crate::clock::now(),
                state.redeliver_after,
            )
            .await?;
        if !due.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(CommandBatch {
                commands: deliveries(due)?,
            }));
        }
        // The strategy driver may hand a new command straight to this poll; anything else
        // wakes it to read the store again.
        let (ticket, handed) = state.polls.wait(&host.hostname, &session);
        tokio::pin!(handed);
        let commands = tokio::select! {
            commands = &mut handed => commands.ok(),
            _ = tokio::time::timeout_at(deadline, woken) => {
                if state.polls.cancel(&ticket) {
                    None
                } else {
                    // Taken by the driver just now: its commands follow its write.
                    handed.await.ok()
                }
            }
        };
        if let Some(commands) = commands.filter(|c| !c.is_empty()) {
            return Ok(Json(CommandBatch {
                commands: deliveries(commands)?,
            }));
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutcomeQuery {
    /// The reporting agent run (as in the poll); the host's next command may come back in the
    /// answer, delivered to this run.
    session: Option<String>,
}

/// `POST /v1/agent/commands/{id}/outcome[?session=S]`. Reporting again is harmless: the first
/// outcome stays. The answer carries the commands handed to the agent with it (the next
/// phase of a strategy step, when the report finished one).
#[utoipa::path(
    post, path = "/v1/agent/commands/{id}/outcome", tag = "agents", security(("host_credential" = [])),
    params(("id" = String, Path, description = "The command's id"), OutcomeQuery),
    request_body = OutcomeReport,
    responses((status = 200, description = "Recorded; the host's next commands, if any", body = CommandBatch), (status = 404, description = "No such command of this host", body = ErrorBody))
)]
pub async fn report_outcome(
    State(state): State<AppState>,
    host: AgentHost,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<OutcomeQuery>,
    ApiJson(report): ApiJson<OutcomeReport>,
) -> Result<Json<CommandBatch>, ApiError> {
    let (outcome, then) = report.into_parts();
    let session = match &query.session {
        Some(session) => Some(delivery_session(&state, session)?),
        None => None,
    };
    if let Some(handed) =
        offer_to_driver(&state, &host.hostname, &id, &outcome, &then, &session).await
    {
        return Ok(Json(CommandBatch {
            commands: deliveries(handed)?,
        }));
    }
    store_outcome(&state, &host.hostname, &id, &outcome).await?;
    // The driver did not wait for the first command (a repeat of it already came in, say):
    // it may wait for the carried one, whose outcome then goes the same way. A carried
    // command without a record yet is left alone: the driver creates it once it takes the
    // first outcome, and the agent answers its delivery from its own record.
    if let Some(then) = then {
        let then_id = then.id.to_string();
        if let Some(handed) = offer_to_driver(
            &state,
            &host.hostname,
            &then_id,
            &then.outcome,
            &None,
            &session,
        )
        .await
        {
            return Ok(Json(CommandBatch {
                commands: deliveries(handed)?,
            }));
        }
        match store_outcome(&state, &host.hostname, &then_id, &then.outcome).await {
            Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {}
            other => other?,
        }
    }
    Ok(Json(CommandBatch { commands: vec![] }))
}

/// Hands a report to the strategy driver if it waits for the command: it records the
/// outcome with the step changes it causes and answers with the host's next commands. None
/// if it does not wait for it, or dropped it (its write failed): the gateway stores it then.
async fn offer_to_driver(
    state: &AppState,
    hostname: &str,
    id: &str,
    outcome: &CommandOutcome,
    then: &Option<CarriedOutcome>,
    session: &Option<String>,
) -> Option<Vec<CommandRecord>> {
    let (reply, answer) = oneshot::channel();
    let offer = Offer {
        hostname: hostname.to_string(),
        command_id: id.to_string(),
        outcome: outcome.clone(),
        then: then.clone(),
        session: session.clone(),
        reply,
    };
    if !state.inbox.offer(offer) {
        return None;
    }
    answer.await.ok()
}

/// Records an outcome the strategy driver does not take, with what it says about the host.
async fn store_outcome(
    state: &AppState,
    hostname: &str,
    id: &str,
    outcome: &CommandOutcome,
) -> Result<(), ApiError> {
    let json = serde_json::to_string(outcome).map_err(ApiError::internal)?;
    // A repeat changes nothing: what the first outcome said was applied with it, in the same
    // transaction, and a late repeat (an agent retrying an old report) must not undo what
    // happened since, such as entering maintenance again after the host left it.
    let reported = state
        .store
        .complete_command(hostname, id, &json, crate::clock::now(), &|kind| {
            host_effects(kind, outcome)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("command {id} of host {hostname:?}")))?;
    if !reported.first {
        return Ok(());
    }
    state.inbox.note_stored();
    state.wakeups.outcomes().notify_waiters();
    if reported.command.kind == CommandKind::InstallPatches {
        state.wakeups.recheck_alarms();
    }
    Ok(())
}

/// The `dispatched_session` of a delivery to agent run `session`. A delivery belongs to this
/// run of the agent *and* of the controller: after a controller restart, answers to polls that
/// were cut off are handed out again at once instead of after the redelivery delay (the agent
/// deduplicates).
fn delivery_session(state: &AppState, session: &str) -> Result<String, ApiError> {
    if session.is_empty() || session.len() > 64 {
        return Err(ApiError::invalid("session", "must be 1 to 64 characters"));
    }
    Ok(format!("{}/{}", state.incarnation, session))
}

fn deliveries(commands: Vec<CommandRecord>) -> Result<Vec<CommandDelivery>, ApiError> {
    commands
        .into_iter()
        .map(|c| {
            Ok(CommandDelivery {
                id: c.id.parse().map_err(ApiError::internal)?,
                kind: c.kind,
                payload: serde_json::from_str(&c.payload).map_err(ApiError::internal)?,
            })
        })
        .collect()
}
