//! The rows the store reads and writes, in domain types.

use convoy_core::command::CommandKind;
use convoy_core::host::{Administrative, HostFacts, Personality};
use convoy_core::role::Role;
use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// Who a token belongs to and until when it is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOwner {
    pub user: UserRecord,
    pub expires_at: Timestamp,
}

/// An agent's enrolment as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEnrolment {
    pub hostname: String,
    pub personality: Personality,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub credential_hash: String,
    pub facts: HostFacts,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRecord {
    pub hostname: String,
    pub personality: Personality,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub administrative: Administrative,
    pub facts: HostFacts,
    pub last_seen: Option<Timestamp>,
    pub enrolled_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub id: String,
    pub hostname: String,
    pub kind: CommandKind,
    /// The command's arguments as JSON (`null` for none).
    pub payload: String,
    pub created_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    /// The agent session the last delivery went to.
    pub dispatched_session: Option<String>,
    pub completed_at: Option<Timestamp>,
    /// The agent's outcome as JSON, once reported.
    pub outcome: Option<String>,
}
