//! The agent protocol: enrolment, heartbeats and command delivery. Agents connect out to the
//! controller; commands reach them through a long poll (`GET /v1/agent/commands?wait_seconds=N`).

use convoy_core::command::CommandKind;
use convoy_core::hook::HookStage;
use convoy_core::host::Personality;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::hosts::CommandOutcome;

pub use convoy_core::host::HostFacts;

/// `POST /v1/agent/enrol` body: the site's enrolment token and the host's identity.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolmentAccepted {
    pub hostname: String,
    pub credential: String,
    pub ping_interval_seconds: u64,
}

/// `POST /v1/agent/heartbeat` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub facts: HostFacts,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAccepted {
    /// The agent heartbeats at this interval; the controller owns the setting.
    pub ping_interval_seconds: u64,
}

/// One command as delivered to the agent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandDelivery {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: Uuid,
    pub kind: CommandKind,
    /// The command's arguments; the shape depends on `kind` (e.g. [`HookRequest`]).
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// Payload of `run-hook`: run the stage's script with these extra arguments (no shell), killing
/// its whole process group after `timeout_seconds`. The outcome's `output` is a
/// [`convoy_core::hook::HookRun`], or a [`RequiredScriptMissing`] if `requires` names a stage
/// without a script (then nothing runs).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    pub stage: HookStage,
    #[serde(default)]
    pub args: Vec<String>,
    pub timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<HookStage>,
}

/// The `output` of a `run-hook` that did not run because the script it requires is missing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredScriptMissing {
    pub missing_script: HookStage,
}

/// Payload of an `enter-maintenance` or `exit-maintenance` that carries the hook after it
/// (`null` otherwise): the command to run as soon as this one has succeeded. The agent runs it
/// at once, and reports its outcome only after the controller has answered this command's
/// report, by when the controller waits for it. A `then` inside `then` is not run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowedBy {
    pub then: CommandDelivery,
}

/// The `output` of `enter-maintenance` and `exit-maintenance`: the state the agent now keeps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceState {
    pub maintenance: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandBatch {
    pub commands: Vec<CommandDelivery>,
}

/// `POST /v1/agent/commands/{id}/outcome` body: the command's outcome, and with it, if the
/// command carried another (see [`FollowedBy`]) that ended soon after, that one's outcome too.
/// (The outcome's fields are spelled out, not flattened: serde's `flatten` would let unknown
/// fields through.)
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    pub succeeded: bool,
    pub message: String,
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<CarriedOutcome>,
}

impl OutcomeReport {
    pub fn new(outcome: CommandOutcome, then: Option<CarriedOutcome>) -> Self {
        let CommandOutcome {
            succeeded,
            message,
            output,
        } = outcome;
        OutcomeReport {
            succeeded,
            message,
            output,
            then,
        }
    }

    /// The reported command's outcome, and the carried one's.
    pub fn into_parts(self) -> (CommandOutcome, Option<CarriedOutcome>) {
        let outcome = CommandOutcome {
            succeeded: self.succeeded,
            message: self.message,
            output: self.output,
        };
        (outcome, self.then)
    }
}

/// The outcome of the command another carried, reported with the carrier's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarriedOutcome {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: Uuid,
    pub outcome: CommandOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_an_outcome_with_an_optional_carried_one() {
        let outcome = CommandOutcome {
            succeeded: true,
            message: "in maintenance".into(),
            output: serde_json::json!({"maintenance": true}),
        };
        let alone: OutcomeReport = serde_json::from_value(serde_json::json!({
            "succeeded": true, "message": "in maintenance", "output": {"maintenance": true}
        }))
        .unwrap();
        assert_eq!(alone.clone().into_parts(), (outcome.clone(), None));
        assert_eq!(alone, OutcomeReport::new(outcome.clone(), None));
        let together = OutcomeReport::new(
            outcome.clone(),
            Some(CarriedOutcome {
                id: Uuid::nil(),
                outcome: outcome.clone(),
            }),
        );
        let json = serde_json::to_value(&together).unwrap();
        assert_eq!(json["message"], "in maintenance");
        assert_eq!(
            serde_json::from_value::<OutcomeReport>(json).unwrap(),
            together
        );
        let unknown = serde_json::json!({"succeeded": true, "message": "", "colour": "red"});
        assert!(serde_json::from_value::<OutcomeReport>(unknown).is_err());
    }
}
