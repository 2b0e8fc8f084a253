//! Strategies: the one engine every orchestration runs on.
//!
//! A strategy is created (validated and planned; nothing runs), applied, maybe aborted, and
//! deleted. Planning gives each step a stage; the [`engine`] decides which steps run when;
//! each kind's phase machine (see [`crate::phases`]) drives one step through its phases.

pub mod engine;
pub mod kind;
pub mod planner;

use serde::{Deserialize, Serialize};

use crate::names::named_enum;

/// The kinds of strategy Convoy runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    RollingMaintenance,
    /// StarlingX's VIM patch strategy (`sw-manager patch-strategy`).
    SwPatch,
    /// StarlingX's VIM software deploy strategy (`sw-manager sw-deploy-strategy`), whose
    /// VIM name is `sw-upgrade`.
    SwUpgrade,
    /// The System Controller's sw-deploy strategy over subclouds (dcmanager's `sw-deploy`).
    #[serde(rename = "sw-deploy")]
    DcSwDeploy,
    /// The System Controller's prestage strategy over subclouds (dcmanager's `prestage`).
    #[serde(rename = "prestage")]
    DcPrestage,
}

named_enum!(StrategyKind, field = "type", {
    RollingMaintenance => "rolling-maintenance",
    SwPatch => "sw-patch",
    SwUpgrade => "sw-upgrade",
    DcSwDeploy => "sw-deploy",
    DcPrestage => "prestage",
});

impl StrategyKind {
    /// Whether the System Controller runs it over subclouds.
    pub fn over_subclouds(self) -> bool {
        matches!(self, StrategyKind::DcSwDeploy | StrategyKind::DcPrestage)
    }

    /// The software-update strategy this kind is, if it is one.
    pub fn sw_update(self) -> Option<crate::sw_update::options::SwUpdateKind> {
        use crate::sw_update::options::SwUpdateKind;
        match self {
            StrategyKind::RollingMaintenance
            | StrategyKind::DcSwDeploy
            | StrategyKind::DcPrestage => None,
            StrategyKind::SwPatch => Some(SwUpdateKind::SwPatch),
            StrategyKind::SwUpgrade => Some(SwUpdateKind::SwUpgrade),
        }
    }
}

/// Strategy states, with dcmanager's exact strings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StrategyState {
    #[serde(rename = "initial")]
    Initial,
    #[serde(rename = "applying")]
    Applying,
    #[serde(rename = "abort requested")]
    AbortRequested,
    #[serde(rename = "aborting")]
    Aborting,
    #[serde(rename = "complete")]
    Complete,
    #[serde(rename = "aborted")]
    Aborted,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "deleting")]
    Deleting,
}

named_enum!(StrategyState, field = "state", {
    Initial => "initial",
    Applying => "applying",
    AbortRequested => "abort requested",
    Aborting => "aborting",
    Complete => "complete",
    Aborted => "aborted",
    Failed => "failed",
    Deleting => "deleting",
});

impl StrategyState {
    /// The strategy has ended; it can only be deleted.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StrategyState::Complete | StrategyState::Aborted | StrategyState::Failed
        )
    }

    /// The driver is working on it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            StrategyState::Applying | StrategyState::AbortRequested | StrategyState::Aborting
        )
    }

    /// The legal transitions (dcmanager §4.1, with `failed` reached only once in-flight steps
    /// have finished their cleanup).
    pub fn can_become(self, next: StrategyState) -> bool {
        use StrategyState::*;
        matches!(
            (self, next),
            (Initial, Applying)
                | (Applying, AbortRequested)
                | (AbortRequested, Aborting)
                | (Applying | Aborting, Complete | Aborted | Failed)
                | (Initial | Complete | Aborted | Failed, Deleting)
        )
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminal {
    Complete,
    Failed,
    Aborted,
    /// Left alone on purpose (exit 70, no maintenance script, forced past a failure); the
    /// details say why.
    Skipped,
}

named_enum!(Terminal, field = "state", {
    Complete => "complete",
    Failed => "failed",
    Aborted => "aborted",
    Skipped => "skipped",
});

impl Terminal {
    /// The terminal state a stored step state names, if it names one.
    pub fn parse(s: &str) -> Option<Terminal> {
        Terminal::from_name(s)
    }
}

/// Where a step is: not started (`initial`), in one of its kind's phases (by name), or ended.
/// It travels as the one string the store keeps (`initial`, `maintenance`, `complete`...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StepState {
    Initial,
    Phase(String),
    Ended(Terminal),
}

impl StepState {
    pub fn parse(s: &str) -> StepState {
        match (s, Terminal::parse(s)) {
            ("initial", _) => StepState::Initial,
            (_, Some(terminal)) => StepState::Ended(terminal),
            (phase, None) => StepState::Phase(phase.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            StepState::Initial => "initial",
            StepState::Phase(phase) => phase,
            StepState::Ended(terminal) => terminal.as_str(),
        }
    }

    /// The phase the step is in, if it is in one.
    pub fn phase(&self) -> Option<&str> {
        match self {
            StepState::Phase(phase) => Some(phase),
            _ => None,
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self, StepState::Ended(_))
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for StepState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for StepState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StepState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(StepState::parse(&s))
    }
}

/// A step's end and the reason shown in its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub state: Terminal,
    pub reason: String,
}

impl Ending {
    pub fn new(state: Terminal, reason: impl Into<String>) -> Self {
        Ending {
            state,
            reason: reason.into(),
        }
    }
}

/// The state a strategy ends in once every step has ended (dcmanager's rule): any failed step
/// fails it; else any aborted step aborts it; else it is complete (skipped steps count as done).
pub fn final_state(endings: impl IntoIterator<Item = Terminal>) -> StrategyState {
    let mut aborted = false;
    for ending in endings {
        match ending {
            Terminal::Failed => return StrategyState::Failed,
            Terminal::Aborted => aborted = true,
            Terminal::Complete | Terminal::Skipped => {}
        }
    }
    if aborted {
        StrategyState::Aborted
    } else {
        StrategyState::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in StrategyKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn states_use_dcmanager_strings() {
        for state in StrategyState::ALL {
            assert_eq!(state.as_str().parse::<StrategyState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(StrategyState::AbortRequested.as_str(), "abort requested");
    }

    #[test]
    fn step_states_travel_as_their_stored_string() {
        for s in [
            "initial",
            "maintenance",
            "complete",
            "failed",
            "aborted",
            "skipped",
        ] {
            let state = StepState::parse(s);
            assert_eq!(state.as_str(), s);
            assert_eq!(serde_json::to_value(&state).unwrap(), s);
        }
        assert_eq!(
            StepState::parse("skipped"),
            StepState::Ended(Terminal::Skipped)
        );
        assert_eq!(StepState::parse("lock-hosts").phase(), Some("lock-hosts"));
        assert!(!StepState::parse("initial").is_ended());
    }

    #[test]
    fn final_state_follows_the_rule() {
        use Terminal::*;
        assert_eq!(final_state([Complete, Skipped]), StrategyState::Complete);
        assert_eq!(final_state([Complete, Aborted]), StrategyState::Aborted);
        assert_eq!(
            final_state([Aborted, Failed, Complete]),
            StrategyState::Failed
        );
        assert_eq!(final_state([]), StrategyState::Complete);
    }

    #[test]
    fn only_legal_transitions_are_allowed() {
        use StrategyState::*;
        assert!(Initial.can_become(Applying));
        assert!(!Initial.can_become(Complete));
        assert!(!Complete.can_become(Applying));
        assert!(Failed.can_become(Deleting));
        assert!(!Applying.can_become(Deleting));
        assert!(!AbortRequested.can_become(Complete));
    }
}
