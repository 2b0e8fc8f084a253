//! Hosts as operators see them, and the commands sent to them.

use convoy_core::command::{CommandKind, CommandState};
use convoy_core::host::{Administrative, Availability, Operational, Personality};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A host of the site. Field names are the same here, in `convoy host ... --format json` and
/// in the tables' column names.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    pub personality: Personality,
    pub administrative: Administrative,
    pub operational: Operational,
    pub availability: Availability,
    /// `in-service`, or `maintenance` while a rolling maintenance works on the host.
    pub state: String,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub capacity_cpus: u32,
    pub capacity_memory_mib: u64,
    pub load_cpus: f64,
    pub load_memory_mib: u64,
    pub boot_id: String,
    pub os: String,
    pub agent_version: String,
    pub state_fs_free_bytes: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub enrolled_at: Timestamp,
    /// For a controller, `active` or `standby` (`convoy host swact` moves activity); null
    /// for other hosts.
    #[serde(default)]
    pub controller: Option<String>,
    /// The instances its `InstanceAction` hook lists.
    #[serde(default)]
    pub instances: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostList {
    pub hosts: Vec<Host>,
}

/// `POST /v1/hosts/{name}/commands` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    pub kind: CommandKind,
}

/// A command and, once the agent reported it, its outcome.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: Uuid,
    pub hostname: String,
    pub kind: CommandKind,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub state: CommandState,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub dispatched_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<Timestamp>,
    pub outcome: Option<CommandOutcome>,
}

/// What the agent reports for a command.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOutcome {
    pub succeeded: bool,
    /// One line for operators: what happened, or why it failed.
    pub message: String,
    /// Structured result (the facts for `facts`, the agent's clock for `ping`).
    #[serde(default)]
    pub output: serde_json::Value,
}

/// `POST /v1/hosts/{hostname}/enrol-tokens`: a single-use token that lets the host enrol
/// again (its agent's `--enrolment-token`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolToken {
    /// How long the token is valid [default: 3600; 60 to 604800].
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A new per-host enrolment token: shown once, only its hash is kept.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolToken {
    pub hostname: String,
    pub token: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: jiff::Timestamp,
}
