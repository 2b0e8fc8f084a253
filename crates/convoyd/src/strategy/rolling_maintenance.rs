//! Rolling maintenance's side of the driver: the command that performs each phase, the
//! result an agent's outcome means, the capacity check over the inventory, and how long a
//! phase may take.

use convoy_api::agent::{HookRequest, MaintenanceState, RequiredScriptMissing};
use convoy_api::hosts::CommandOutcome;
use convoy_api::strategies::RollingMaintenanceOptions;
use convoy_core::capacity::{HostCapacity, can_absorb};
use convoy_core::command::CommandKind;
use convoy_core::hook::{HookRun, HookVerdict};
use convoy_core::host::{Administrative, Availability, availability};
use convoy_core::phases::rolling_maintenance::{Action, Phase, PhaseResult};
use convoy_store::HostRecord;
use jiff::{SignedDuration, Timestamp};

/// The agent command that performs `phase`, or None for a phase the controller performs.
pub fn command_for(
    phase: Phase,
    options: &RollingMaintenanceOptions,
) -> Option<(CommandKind, serde_json::Value)> {
    let args: Vec<String> = options
        .payload
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    match phase.action() {
        Action::RunHook(stage) => Some((
            CommandKind::RunHook,
            serde_json::to_value(HookRequest {
                stage,
                args,
                timeout_seconds: options.timeout_seconds,
                requires: phase.required_script(),
            })
            .unwrap_or_default(),
        )),
        Action::EnterMaintenance => Some((CommandKind::EnterMaintenance, serde_json::Value::Null)),
        Action::ExitMaintenance => Some((CommandKind::ExitMaintenance, serde_json::Value::Null)),
        Action::CapacityCheck => None,
    }
}

/// How long the controller waits for a phase's outcome: the stage timeout, plus (for hooks,
/// which the agent itself kills at the timeout) time for the agent to report the kill.
pub fn phase_timeout(
    phase: Phase,
    options: &RollingMaintenanceOptions,
    ping: SignedDuration,
) -> SignedDuration {
    let stage = SignedDuration::from_secs(options.timeout_seconds as i64);
    match phase.action() {
        Action::RunHook(_) => stage + ping * 2 + SignedDuration::from_secs(10),
        _ => stage,
    }
}

/// The maintenance state an outcome confirms, if the command changed it.
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

/// What an agent's outcome means for the phase it performed.
pub fn result_of(phase: Phase, outcome: &CommandOutcome) -> PhaseResult {
    match phase.action() {
        Action::RunHook(_) => match serde_json::from_value::<HookRun>(outcome.output.clone()) {
            Ok(run) => match run.verdict() {
                HookVerdict::Succeeded => PhaseResult::Succeeded,
                HookVerdict::AvoidMaintenance => PhaseResult::AvoidMaintenance,
                HookVerdict::NoScript => PhaseResult::NoScript,
                HookVerdict::Failed(reason) => PhaseResult::Failed(reason),
            },
            Err(_) => {
                match serde_json::from_value::<RequiredScriptMissing>(outcome.output.clone()) {
                    Ok(_) if outcome.succeeded => PhaseResult::RequiredScriptMissing,
                    _ => PhaseResult::Failed(outcome.message.clone()),
                }
            }
        },
        _ if outcome.succeeded => PhaseResult::Succeeded,
        _ => PhaseResult::Failed(outcome.message.clone()),
    }
}

/// How long the hook an outcome reports ran, if it reports one.
pub fn hook_duration(outcome: &CommandOutcome) -> Option<SignedDuration> {
    let run = serde_json::from_value::<HookRun>(outcome.output.clone()).ok()?;
    Some(SignedDuration::from_millis(run.duration_ms as i64))
}

/// The capacity check of `hostname` against the current inventory; `leaving` are hosts going
/// into maintenance in the same stage.
pub fn capacity_check(
    hostname: &str,
    hosts: &[HostRecord],
    leaving: &[&str],
    now: Timestamp,
    ping: SignedDuration,
) -> PhaseResult {
    let inventory: Vec<HostCapacity> = hosts
        .iter()
        .map(|h| HostCapacity {
            hostname: h.hostname.clone(),
            cluster: h.cluster.clone(),
            capacity_cpus: f64::from(h.facts.capacity_cpus),
            capacity_memory_mib: h.facts.capacity_memory_mib as f64,
            load_cpus: h.facts.load_cpus,
            load_memory_mib: h.facts.load_memory_mib as f64,
            in_service: h.administrative == Administrative::Unlocked
                && availability(h.last_seen, now, ping) == Availability::Available
                && !h.facts.maintenance
                && !leaving.contains(&h.hostname.as_str()),
        })
        .collect();
    let Some(host) = inventory.iter().find(|h| h.hostname == hostname) else {
        return PhaseResult::Failed(format!("host {hostname} is no longer known"));
    };
    match can_absorb(host, &inventory) {
        Ok(()) => PhaseResult::Succeeded,
        Err(reason) => PhaseResult::Failed(reason),
    }
}

/// The name stored for a phase result.
pub fn result_name(result: &PhaseResult) -> &'static str {
    match result {
        PhaseResult::Succeeded => "succeeded",
        PhaseResult::AvoidMaintenance => "avoid-maintenance",
        PhaseResult::NoScript => "no-script",
        PhaseResult::RequiredScriptMissing => "required-script-missing",
        PhaseResult::Failed(_) => "failed",
    }
}
