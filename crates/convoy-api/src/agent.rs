//! The agent protocol: enrolment, heartbeats and command delivery. Agents connect out to the
//! controller; commands reach them through a long poll (`GET /v1/agent/commands?wait_seconds=N`).

use convoy_core::command::CommandKind;
use convoy_core::host::Personality;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::hosts::CommandOutcome;

pub use convoy_core::host::HostFacts;

/// `POST /v1/agent/enrol` body: the site's enrolment token and the host's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    pub enrolment_token: String,
    pub hostname: String,
    pub personality: Personality,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    pub facts: HostFacts,
}

/// The host's own credential; the agent keeps it in its state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolmentAccepted {
    pub hostname: String,
    pub credential: String,
    pub ping_interval_seconds: u64,
}

/// `POST /v1/agent/heartbeat` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub facts: HostFacts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAccepted {
    /// The agent heartbeats at this interval; the controller owns the setting.
    pub ping_interval_seconds: u64,
}

/// One command as delivered to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandDelivery {
    pub id: Uuid,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandBatch {
    pub commands: Vec<CommandDelivery>,
}

/// `POST /v1/agent/commands/{id}/outcome` body.
pub type OutcomeReport = CommandOutcome;
