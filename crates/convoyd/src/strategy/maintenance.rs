//! The maintenance state a command's outcome confirms: recorded on the host with the outcome,
//! by whichever path the outcome takes (the strategy driver or the agent gateway).

use convoy_api::agent::MaintenanceState;
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;

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
