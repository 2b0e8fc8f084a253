//! What a command's outcome changes on its host (the maintenance state it confirms, the patch
//! state an install reports), recorded with the outcome by whichever path the outcome takes:
//! the strategy driver or the agent gateway.

use convoy_api::agent::MaintenanceState;
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::patch::HostSoftware;
use convoy_store::HostEffects;

/// The maintenance state an outcome confirms, if its command changed it.
pub fn confirmed_maintenance(kind: CommandKind, outcome: &CommandOutcome) -> Option<bool> {
    if !outcome.succeeded
        || !matches!(
            kind,
            CommandKind::EnterMaintenance | CommandKind::ExitMaintenance
        )
    {
        return None;
    }
    serde_json::from_value::<MaintenanceState>(outcome.output.clone())
        .ok()
        .map(|state| state.maintenance)
}

/// What a command's outcome changes on its host: a confirmed maintenance change, and for an
/// install, the patch state the host reported with its answer (it is then pending for no
/// patch).
pub fn host_effects(kind: CommandKind, outcome: &CommandOutcome) -> HostEffects {
    let install = kind == CommandKind::InstallPatches;
    HostEffects {
        maintenance: confirmed_maintenance(kind, outcome),
        software: install
            .then(|| serde_json::from_value::<HostSoftware>(outcome.output.clone()).ok())
            .flatten(),
        clear_interim: install,
    }
}
