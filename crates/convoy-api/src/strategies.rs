//! Strategies, their steps, rolling maintenance's options and report, and clusters.

use convoy_core::strategy::planner::Scope;
use convoy_core::strategy::{StepState, StrategyKind, StrategyState};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `POST /v1/rolling-maintenance-strategy` body. Exactly one of hosts, clusters, pods, zones.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRollingMaintenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    /// Failures skip the host instead of failing the strategy.
    #[serde(default)]
    pub forced: bool,
    /// Time limit of each stage on each host [default: 1800].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Words appended to every hook's arguments (split on whitespace; no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Hosts of a cluster maintained at once [default: 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_hosts: Option<u32>,
    /// Hosts whose PreFlight runs at once [default: 100, or max_parallel_hosts if more].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_preflight: Option<u32>,
    #[serde(default)]
    pub stop_on_failure: bool,
}

/// The options a rolling-maintenance strategy keeps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingMaintenanceOptions {
    pub scope: Scope,
    pub forced: bool,
    pub timeout_seconds: u64,
    pub payload: Option<String>,
    /// Hosts whose PreFlight runs at once. None only in strategies created before the option
    /// existed, which sweep at `max_parallel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_preflight: Option<u32>,
}

/// A strategy as the API shows it. `options` holds the kind's own settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: StrategyKind,
    pub state: StrategyState,
    pub max_parallel: u32,
    pub stop_on_failure: bool,
    pub options: serde_json::Value,
    pub details: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// `POST /v1/rolling-maintenance-strategy/actions` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyAction {
    pub action: ActionName,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    Apply,
    Abort,
}

/// One step of a strategy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The host (or, at a System Controller, the subcloud) the step drives.
    pub target: String,
    pub stage: u32,
    /// `initial`, the current phase, or `complete`, `failed`, `aborted`, `skipped`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: StepState,
    pub details: String,
    /// The target's group (a host's cluster).
    pub group: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepList {
    pub strategy_steps: Vec<Step>,
}

/// What happened in one phase of a step.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRun {
    pub phase: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    pub result: Option<String>,
    pub details: String,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The phase's output when it is not a hook's run (an install's outcome, say).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub output: serde_json::Value,
}

/// `GET /v1/strategy-steps/{target}`: the step and its phases.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDetail {
    #[serde(flatten)]
    pub step: Step,
    pub phases: Vec<PhaseRun>,
}

/// `GET /v1/rolling-maintenance-strategy/report`, shaped like CloudStack's response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceReport {
    pub state: StrategyState,
    pub success: bool,
    pub details: String,
    pub hosts_updated: Vec<HostUpdated>,
    pub hosts_skipped: Vec<HostSkipped>,
    pub hosts_failed: Vec<HostSkipped>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostUpdated {
    pub hostname: String,
    /// When the host began entering maintenance.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    /// When it was out of maintenance again.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end: Option<Timestamp>,
    /// Standard output of its Maintenance hook.
    pub output: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSkipped {
    pub hostname: String,
    pub reason: String,
}

/// A cluster: the hosts that share it, and whether a strategy has disabled it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    /// `enabled` or `disabled`.
    pub state: String,
    /// The strategy that disabled it.
    pub disabled_by: Option<String>,
    pub hosts: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterList {
    pub clusters: Vec<Cluster>,
}

/// A subcloud's VIM strategy as a System Controller follows it while it applies: the few
/// fields of `{"strategy": ...}` it reads; the rest (phases, stages, steps) is skipped
/// without being built.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VimStrategyShown {
    pub strategy: Option<VimStrategyBrief>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct VimStrategyBrief {
    pub state: String,
    pub current_phase: String,
    pub current_phase_completion_percentage: u64,
    pub apply_phase: VimPhaseBrief,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VimPhaseBrief {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vim_strategy_is_read_for_its_state_and_progress_only() {
        let shown: VimStrategyShown = serde_json::from_str(
            r#"{"strategy": {"name": "sw-upgrade", "state": "applying", "release": "R_1",
                "current-phase": "apply", "current-phase-completion-percentage": 43,
                "apply-phase": {"reason": "", "stages": [{"steps": [1, 2]}]},
                "build-phase": {"reason": "x"}}}"#,
        )
        .unwrap();
        let strategy = shown.strategy.unwrap();
        assert_eq!(strategy.state, "applying");
        assert_eq!(strategy.current_phase, "apply");
        assert_eq!(strategy.current_phase_completion_percentage, 43);
        assert_eq!(strategy.apply_phase.reason, "");
        let none: VimStrategyShown = serde_json::from_str(r#"{"strategy": null}"#).unwrap();
        assert_eq!(none.strategy, None);
    }
}
