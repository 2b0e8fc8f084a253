//! What a host's agent reports about its patches in every heartbeat.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{AgentState, PatchId, Release};

/// A host's patch software as its agent sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSoftware {
    /// The release the host runs; None for an agent that does not say.
    #[serde(default)]
    pub release: Option<Release>,
    #[serde(default = "idle")]
    pub state: AgentState,
    /// Patches installed on the host.
    #[serde(default)]
    pub installed: BTreeSet<PatchId>,
    /// Patches installed or removed since the host last booted.
    #[serde(default)]
    pub changed_since_boot: BTreeSet<PatchId>,
    /// Why the last install was refused or failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

fn idle() -> AgentState {
    AgentState::Idle
}

impl Default for HostSoftware {
    fn default() -> Self {
        HostSoftware {
            release: None,
            state: AgentState::Idle,
            installed: BTreeSet::new(),
            changed_since_boot: BTreeSet::new(),
            last_error: None,
        }
    }
}
