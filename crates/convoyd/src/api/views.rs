//! Store records turned into what the API shows.

use convoy_api::hosts::{Command, CommandOutcome, Host};
use convoy_api::users::User;
use convoy_core::command::command_state;
use convoy_core::host::{Personality, availability, operational};
use convoy_store::{CommandRecord, HostRecord, UserRecord};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::ApiError;

/// A host as the API shows it; `active` is the site's active controller, if any.
pub fn host(
    record: HostRecord,
    now: Timestamp,
    ping_interval: SignedDuration,
    active: Option<&str>,
) -> Host {
    let availability = availability(record.last_seen, now, ping_interval);
    let controller = matches!(
        record.personality,
        Personality::Controller | Personality::ControllerWorker
    )
    .then(|| {
        if active == Some(record.hostname.as_str()) {
            "active"
        } else {
            "standby"
        }
        .to_string()
    });
    Host {
        hostname: record.hostname,
        personality: record.personality,
        administrative: record.administrative,
        operational: operational(record.administrative, availability),
        availability,
        state: if record.facts.maintenance {
            "maintenance"
        } else {
            "in-service"
        }
        .into(),
        zone: record.zone,
        pod: record.pod,
        cluster: record.cluster,
        capacity_cpus: record.facts.capacity_cpus,
        capacity_memory_mib: record.facts.capacity_memory_mib,
        load_cpus: record.facts.load_cpus,
        load_memory_mib: record.facts.load_memory_mib,
        boot_id: record.facts.boot_id,
        os: record.facts.os,
        agent_version: record.facts.agent_version,
        state_fs_free_bytes: record.facts.state_fs_free_bytes,
        last_seen: record.last_seen,
        enrolled_at: record.enrolled_at,
        controller,
        instances: record.facts.instances,
    }
}

pub fn user(record: UserRecord) -> User {
    User {
        name: record.name,
        role: record.role,
        created_at: record.created_at,
    }
}

pub fn command(record: CommandRecord) -> Result<Command, ApiError> {
    let outcome: Option<CommandOutcome> = record
        .outcome
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(Command {
        id: Uuid::parse_str(&record.id).map_err(ApiError::internal)?,
        state: command_state(record.dispatched_at, record.completed_at.is_some()),
        hostname: record.hostname,
        kind: record.kind,
        payload: serde_json::from_str(&record.payload).map_err(ApiError::internal)?,
        created_at: record.created_at,
        dispatched_at: record.dispatched_at,
        completed_at: record.completed_at,
        outcome,
    })
}
