//! Alarms and their history (`/v1/alarms`, `/v1/events`, and an agent's `/v1/agent/alarms`).

use convoy_core::alarm::Severity;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An active alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alarm {
    pub uuid: String,
    /// `200.001` style.
    pub alarm_id: String,
    /// What it is about: `host=worker-1`, `host=worker-1.disk=sda`.
    pub entity: String,
    pub severity: Severity,
    pub reason: String,
    /// Strategies refuse to run over management-affecting alarms (unless told to relax).
    pub mgmt_affecting: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub raised_at: Timestamp,
    /// Who raised it: `convoy`, `agent` or `operator`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmList {
    pub alarms: Vec<Alarm>,
}

/// A raise (`set`) or clear (`clear`) of an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Events in order: a later event has a larger number.
    pub seq: i64,
    pub uuid: String,
    pub alarm_id: String,
    pub entity: String,
    pub severity: Severity,
    pub reason: String,
    pub mgmt_affecting: bool,
    /// `set` or `clear`.
    pub state: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// Who raised or cleared it.
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventList {
    pub events: Vec<Event>,
}

/// Raises an alarm (`POST /v1/alarms`, or an agent's `POST /v1/agent/alarms`, where the
/// entity defaults to the agent's host and must be on it). Raising an active alarm again
/// updates its severity, reason and flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAlarm {
    pub alarm_id: String,
    /// Required on `/v1/alarms`; on `/v1/agent/alarms` `host=<its host>` if absent.
    #[serde(default)]
    pub entity: Option<String>,
    pub severity: Severity,
    pub reason: String,
    #[serde(default)]
    pub mgmt_affecting: bool,
}

/// Clears an agent's alarm (`POST /v1/agent/alarms/clear`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClearAlarm {
    pub alarm_id: String,
    /// `host=<its host>` if absent.
    #[serde(default)]
    pub entity: Option<String>,
}

/// Whether a clear found the alarm active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cleared {
    pub cleared: bool,
}
