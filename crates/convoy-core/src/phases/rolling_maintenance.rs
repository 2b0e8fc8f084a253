//! The phases of a rolling-maintenance step, CloudStack's KVM rolling maintenance minus its
//! defects (spec/rolling-maintenance.md §A.9): a host put into maintenance is always taken out
//! again (also after a failure or an abort), failures are terminal at once, PreFlight failures
//! are never silently ignored, and every reason is kept in the step's details.
//!
//! ```text
//! pre-flight (sweep, every host first) ─▶ wait for the stage
//! pre-maintenance (after checking that the Maintenance script exists) ─▶ capacity-check
//!      ─▶ enter-maintenance ─▶ maintenance ─▶ exit-maintenance ─▶ post-maintenance ─▶ complete
//! ```
//!
//! CloudStack asks the agent whether a Maintenance script exists and then runs PreMaintenance,
//! two round trips; here the agent does both in one command, in the same order (no
//! PreMaintenance runs on a host without a Maintenance script).
//!
//! Entering maintenance travels with the Maintenance hook, and leaving it (on the way to
//! PostMaintenance) with the PostMaintenance hook: the agent runs the hook as soon as the host's
//! state has changed, instead of waiting for the controller to hear of the change and send the
//! hook. The phases stay two, each with its own outcome, record and timeout; but once sent
//! together, a stop lets the second one run (see [`carried`]).

use serde::{Deserialize, Serialize};

use jiff::SignedDuration;

use crate::hook::HookStage;
use crate::names::named_enum;
use crate::strategy::kind::{self, Effect, Kind};
use crate::strategy::{Ending, Terminal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    PreFlight,
    PreMaintenance,
    CapacityCheck,
    EnterMaintenance,
    Maintenance,
    ExitMaintenance,
    PostMaintenance,
}

named_enum!(Phase, field = "phase", {
    PreFlight => "pre-flight",
    PreMaintenance => "pre-maintenance",
    CapacityCheck => "capacity-check",
    EnterMaintenance => "enter-maintenance",
    Maintenance => "maintenance",
    ExitMaintenance => "exit-maintenance",
    PostMaintenance => "post-maintenance",
});

impl Phase {
    /// The sweep every step runs before any stage starts.
    pub const SWEEP: Phase = Phase::PreFlight;
    /// The first phase once a step's stage starts.
    pub const FIRST: Phase = Phase::PreMaintenance;

    /// The script that must exist before the phase's hook may run: the Maintenance script,
    /// before PreMaintenance (no host without one is touched).
    pub fn required_script(self) -> Option<HookStage> {
        self.action().required_script()
    }

    /// The phase whose command travels with this phase's command when the step goes on
    /// normally: the hook that follows a change of the host's maintenance state.
    pub fn carries(self) -> Option<Phase> {
        match self {
            Phase::EnterMaintenance => Some(Phase::Maintenance),
            Phase::ExitMaintenance => Some(Phase::PostMaintenance),
            _ => None,
        }
    }

    /// What performing the phase means.
    pub fn action(self) -> Action {
        match self {
            Phase::PreFlight => Action::RunHook(HookStage::PreFlight),
            Phase::PreMaintenance => Action::RunHook(HookStage::PreMaintenance),
            Phase::CapacityCheck => Action::CapacityCheck,
            Phase::EnterMaintenance => Action::EnterMaintenance,
            Phase::Maintenance => Action::RunHook(HookStage::Maintenance),
            Phase::ExitMaintenance => Action::ExitMaintenance,
            Phase::PostMaintenance => Action::RunHook(HookStage::PostMaintenance),
        }
    }
}

/// The phase sent along with `phase`, given whether the step is cleaning up (leaving
/// maintenance on its way to an end already decided). A cleanup carries nothing: no
/// PostMaintenance runs after a failure or a stop. The agent runs the carried phase only if
/// `phase` succeeded; once the two are sent, a stop that comes meanwhile lets the carried
/// phase run, since it may already be running.
pub fn carried(phase: Phase, cleaning_up: bool) -> Option<Phase> {
    if cleaning_up { None } else { phase.carries() }
}

/// How a phase is performed: on the host's agent, or by the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RunHook(HookStage),
    CapacityCheck,
    EnterMaintenance,
    ExitMaintenance,
}

impl Action {
    /// The script that must exist before the action's hook may run: the Maintenance script,
    /// before PreMaintenance (no host without one is touched).
    pub fn required_script(self) -> Option<HookStage> {
        matches!(self, Action::RunHook(HookStage::PreMaintenance)).then_some(HookStage::Maintenance)
    }
}

/// How a phase's action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseResult {
    Succeeded,
    /// Exit 70 from a hook: nothing to do on this host.
    AvoidMaintenance,
    /// The stage has no script.
    NoScript,
    /// The script the phase requires first is missing, so nothing ran (the Maintenance
    /// script, checked before PreMaintenance).
    RequiredScriptMissing,
    Failed(String),
}

/// Where a step goes after a phase; the only cleanup is leaving maintenance.
pub type Next = kind::Next<Phase>;

/// What the step machine needs to know besides the phase and its result.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub hostname: &'a str,
    /// Failures skip the host instead of failing the step.
    pub forced: bool,
    /// The strategy is stopping (abort, or stop-on-failure): finish this phase and the
    /// cleanup, start nothing new.
    pub stopping: bool,
    /// The ending decided before the cleanup began, if the step is cleaning up.
    pub pending: Option<&'a Ending>,
}

/// A failure: skips the host under `forced`, fails the step otherwise.
fn failure(forced: bool, reason: String) -> Ending {
    Ending::new(
        if forced {
            Terminal::Skipped
        } else {
            Terminal::Failed
        },
        reason,
    )
}

/// The step's next move after `phase` ended with `result`.
pub fn after(phase: Phase, result: PhaseResult, cx: Context<'_>) -> Next {
    use PhaseResult::*;
    let skip = |reason: &str| Next::End(Ending::new(Terminal::Skipped, reason));
    let next = match (phase, result) {
        // Only PreMaintenance requires another script; anywhere else it means "no script".
        (Phase::PreFlight, Succeeded | NoScript | RequiredScriptMissing) => Next::AwaitStage,
        (Phase::PreFlight, AvoidMaintenance) => skip("Pre-flight stage set to avoid maintenance"),
        (Phase::PreFlight, Failed(r)) => {
            Next::End(failure(cx.forced, format!("Pre-flight script failed: {r}")))
        }

        (Phase::PreMaintenance, RequiredScriptMissing) => {
            skip("There is no maintenance script on the host")
        }
        (Phase::PreMaintenance, Succeeded | NoScript) => Next::Phase(Phase::CapacityCheck),
        (Phase::PreMaintenance, AvoidMaintenance) => {
            skip("Pre-maintenance stage set to avoid maintenance")
        }
        (Phase::PreMaintenance, Failed(r)) => Next::End(failure(
            cx.forced,
            format!("Pre-maintenance script failed: {r}"),
        )),

        (Phase::CapacityCheck, Failed(r)) => Next::End(failure(
            cx.forced,
            format!("Capacity check failed for {}: {r}", cx.hostname),
        )),
        (Phase::CapacityCheck, _) => Next::Phase(Phase::EnterMaintenance),

        (Phase::EnterMaintenance, Failed(r)) => Next::Cleanup {
            phase: Phase::ExitMaintenance,
            then: failure(cx.forced, format!("Entering maintenance failed: {r}")),
        },
        (Phase::EnterMaintenance, _) => Next::Phase(Phase::Maintenance),

        (Phase::Maintenance, Succeeded | AvoidMaintenance) => Next::Phase(Phase::ExitMaintenance),
        (Phase::Maintenance, NoScript | RequiredScriptMissing) => Next::Cleanup {
            phase: Phase::ExitMaintenance,
            then: failure(
                cx.forced,
                "There is no maintenance script on the host".into(),
            ),
        },
        (Phase::Maintenance, Failed(r)) => Next::Cleanup {
            phase: Phase::ExitMaintenance,
            then: failure(cx.forced, format!("Maintenance script failed: {r}")),
        },

        // A host that cannot leave maintenance is never skipped: someone must look at it.
        (Phase::ExitMaintenance, Failed(r)) => Next::End(Ending::new(
            Terminal::Failed,
            format!("Exiting maintenance failed: {r}; the host may still be in maintenance"),
        )),
        (Phase::ExitMaintenance, _) => match cx.pending {
            Some(ending) => Next::End(ending.clone()),
            None => Next::Phase(Phase::PostMaintenance),
        },

        (Phase::PostMaintenance, Failed(r)) => Next::End(failure(
            cx.forced,
            format!("Post-maintenance script failed: {r}"),
        )),
        (Phase::PostMaintenance, _) => Next::End(Ending::new(Terminal::Complete, "")),
    };
    let sent_along = carried(phase, cx.pending.is_some());
    match next {
        Next::Phase(p) if sent_along == Some(p) => next,
        _ if cx.stopping => stop(phase, next),
        _ => next,
    }
}

/// Under a stop, a step that would start a new phase ends instead: after its cleanup if the
/// host is in maintenance. (A phase already sent along never gets here.)
fn stop(finished: Phase, next: Next) -> Next {
    match next {
        Next::Phase(Phase::ExitMaintenance | Phase::Maintenance) => Next::Cleanup {
            phase: Phase::ExitMaintenance,
            then: Ending::new(
                Terminal::Aborted,
                format!("Stopped after {finished}; the host was taken out of maintenance"),
            ),
        },
        Next::Phase(_) => Next::End(Ending::new(
            Terminal::Aborted,
            format!("Stopped after {finished}"),
        )),
        other => other,
    }
}

/// Rolling maintenance as a strategy kind.
#[derive(Debug, Clone, Copy)]
pub struct RollingMaintenance {
    /// Failures skip the host instead of failing the step.
    pub forced: bool,
    /// CloudStack's stage timeout: how long a hook or a maintenance change may take.
    pub stage_timeout: SignedDuration,
    /// Added to a hook's timeout for the agent to report the kill (the agent itself kills a
    /// hook at the stage timeout).
    pub report_allowance: SignedDuration,
}

impl Kind for RollingMaintenance {
    type Phase = Phase;
    type Result = PhaseResult;
    type Action = Action;

    fn phase_name(&self, phase: Phase) -> &str {
        phase.as_str()
    }

    fn parse_phase(&self, _stage: u32, name: &str) -> Option<Phase> {
        Phase::from_name(name)
    }

    fn sweep(&self) -> Option<Phase> {
        Some(Phase::SWEEP)
    }

    fn first(&self, _stage: u32) -> Option<Phase> {
        Some(Phase::FIRST)
    }

    fn effect(&self, phase: Phase, _target: &str) -> Effect<Action> {
        match phase.action() {
            Action::CapacityCheck => Effect::Controller(Action::CapacityCheck),
            action => Effect::Command(action),
        }
    }

    fn carries(&self, phase: Phase, cleaning_up: bool) -> Option<Phase> {
        carried(phase, cleaning_up)
    }

    fn timeout(&self, phase: Phase) -> SignedDuration {
        match phase.action() {
            Action::RunHook(_) => self.stage_timeout + self.report_allowance,
            _ => self.stage_timeout,
        }
    }

    fn timed_out(&self, phase: Phase, target: &str) -> PhaseResult {
        PhaseResult::Failed(format!(
            "no outcome from {target} within {} s; is its agent running?",
            self.timeout(phase).as_secs()
        ))
    }

    fn result_name(&self, result: &PhaseResult) -> &'static str {
        match result {
            PhaseResult::Succeeded => "succeeded",
            PhaseResult::AvoidMaintenance => "avoid-maintenance",
            PhaseResult::NoScript => "no-script",
            PhaseResult::RequiredScriptMissing => "required-script-missing",
            PhaseResult::Failed(_) => "failed",
        }
    }

    fn result_details(&self, result: &PhaseResult) -> String {
        match result {
            PhaseResult::Failed(reason) => reason.clone(),
            _ => String::new(),
        }
    }

    fn after(&self, phase: Phase, result: PhaseResult, cx: kind::Context<'_>) -> Next {
        after(
            phase,
            result,
            Context {
                hostname: cx.target,
                forced: self.forced,
                stopping: cx.stopping,
                pending: cx.pending,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cx(forced: bool, stopping: bool) -> Context<'static> {
        Context {
            hostname: "worker-1",
            forced,
            stopping,
            pending: None,
        }
    }

    fn run(forced: bool, results: impl Fn(Phase) -> PhaseResult) -> (Vec<Phase>, Ending) {
        let mut phases = vec![Phase::PreFlight];
        let mut pending: Option<Ending> = None;
        let mut phase = Phase::PreFlight;
        loop {
            let context = Context {
                pending: pending.as_ref(),
                ..cx(forced, false)
            };
            match after(phase, results(phase), context) {
                Next::AwaitStage => phase = Phase::FIRST,
                Next::Phase(p) => phase = p,
                Next::Cleanup { then, .. } => {
                    pending = Some(then);
                    phase = Phase::ExitMaintenance;
                }
                Next::End(ending) => return (phases, ending),
            }
            phases.push(phase);
        }
    }

    #[test]
    fn a_clean_run_goes_through_every_phase_in_order() {
        let (phases, ending) = run(false, |_| PhaseResult::Succeeded);
        assert_eq!(phases, Phase::ALL);
        assert_eq!(ending.state, Terminal::Complete);
    }

    #[test]
    fn a_failed_maintenance_still_leaves_maintenance_and_skips_post_maintenance() {
        let results = |p| {
            if p == Phase::Maintenance {
                PhaseResult::Failed("exit code 3".into())
            } else {
                PhaseResult::Succeeded
            }
        };
        let (phases, ending) = run(false, results);
        assert_eq!(phases.last(), Some(&Phase::ExitMaintenance));
        assert!(!phases.contains(&Phase::PostMaintenance));
        assert_eq!(
            ending,
            Ending::new(Terminal::Failed, "Maintenance script failed: exit code 3")
        );
        let (_, forced) = run(true, results);
        assert_eq!(forced.state, Terminal::Skipped);
    }

    #[test]
    fn exit_code_70_skips_with_cloudstacks_reasons() {
        let (phases, ending) = run(false, |p| {
            if p == Phase::PreFlight {
                PhaseResult::AvoidMaintenance
            } else {
                PhaseResult::Succeeded
            }
        });
        assert_eq!(phases, [Phase::PreFlight]);
        assert_eq!(
            ending,
            Ending::new(
                Terminal::Skipped,
                "Pre-flight stage set to avoid maintenance"
            )
        );
        let (phases, ending) = run(false, |p| {
            if p == Phase::PreMaintenance {
                PhaseResult::AvoidMaintenance
            } else {
                PhaseResult::Succeeded
            }
        });
        assert!(!phases.contains(&Phase::EnterMaintenance));
        assert_eq!(
            ending.reason,
            "Pre-maintenance stage set to avoid maintenance"
        );
    }

    #[test]
    fn a_missing_maintenance_script_skips_the_host() {
        let (phases, ending) = run(false, |p| {
            if p == Phase::PreMaintenance {
                PhaseResult::RequiredScriptMissing
            } else {
                PhaseResult::Succeeded
            }
        });
        assert_eq!(phases, [Phase::PreFlight, Phase::PreMaintenance]);
        assert_eq!(
            ending,
            Ending::new(
                Terminal::Skipped,
                "There is no maintenance script on the host"
            )
        );
    }

    #[test]
    fn missing_optional_hooks_are_skipped_stages() {
        let (_, ending) = run(false, |p| match p {
            Phase::PreFlight | Phase::PreMaintenance | Phase::PostMaintenance => {
                PhaseResult::NoScript
            }
            _ => PhaseResult::Succeeded,
        });
        assert_eq!(ending.state, Terminal::Complete);
    }

    #[test]
    fn a_capacity_refusal_names_the_host() {
        let (_, ending) = run(false, |p| {
            if p == Phase::CapacityCheck {
                PhaseResult::Failed("no room".into())
            } else {
                PhaseResult::Succeeded
            }
        });
        assert_eq!(
            ending,
            Ending::new(
                Terminal::Failed,
                "Capacity check failed for worker-1: no room"
            )
        );
    }

    #[test]
    fn a_stop_in_maintenance_cleans_up_first() {
        let next = after(Phase::Maintenance, PhaseResult::Succeeded, cx(false, true));
        assert!(matches!(next, Next::Cleanup { then, .. } if then.state == Terminal::Aborted));
        let next = after(
            Phase::PreMaintenance,
            PhaseResult::Succeeded,
            cx(false, true),
        );
        assert!(matches!(next, Next::End(e) if e.state == Terminal::Aborted));
        // Entering maintenance carried the Maintenance hook, so it runs; its end stops the step.
        assert_eq!(
            after(
                Phase::EnterMaintenance,
                PhaseResult::Succeeded,
                cx(false, true)
            ),
            Next::Phase(Phase::Maintenance)
        );
        let pending = Ending::new(Terminal::Aborted, "Stopped after maintenance");
        let next = after(
            Phase::ExitMaintenance,
            PhaseResult::Succeeded,
            Context {
                pending: Some(&pending),
                ..cx(false, true)
            },
        );
        assert_eq!(next, Next::End(pending.clone()));
        // After a stop a sweep still just waits; the engine decides what happens to waiters.
        assert_eq!(
            after(Phase::PreFlight, PhaseResult::Succeeded, cx(false, true)),
            Next::AwaitStage
        );
    }

    fn any_result() -> impl Strategy<Value = PhaseResult> {
        prop_oneof![
            Just(PhaseResult::Succeeded),
            Just(PhaseResult::AvoidMaintenance),
            Just(PhaseResult::NoScript),
            Just(PhaseResult::RequiredScriptMissing),
            Just(PhaseResult::Failed("x".into())),
        ]
    }

    proptest! {
        #[test]
        fn every_step_ends_and_never_ends_in_maintenance(
            results in proptest::collection::vec(any_result(), 8),
            forced: bool,
            stop_after in proptest::option::of(0usize..10),
        ) {
            let mut phase = Phase::PreFlight;
            let mut pending: Option<Ending> = None;
            let mut in_maintenance = false;
            for n in 0..20 {
                let result = results[Phase::ALL.iter().position(|p| *p == phase).unwrap()].clone();
                let ok = !matches!(result, PhaseResult::Failed(_));
                if phase == Phase::EnterMaintenance { in_maintenance = true; }
                if phase == Phase::ExitMaintenance && ok { in_maintenance = false; }
                let stopping = stop_after.is_some_and(|s| n >= s);
                let context = Context { hostname: "h", forced, stopping, pending: pending.as_ref() };
                match after(phase, result, context) {
                    Next::AwaitStage => phase = Phase::FIRST,
                    Next::Phase(p) => {
                        prop_assert!(Phase::ALL.iter().position(|x| *x == p) > Phase::ALL.iter().position(|x| *x == phase), "phases only go forward");
                        // A stop starts nothing new: only a phase already sent along goes on.
                        if stopping {
                            prop_assert_eq!(carried(phase, pending.is_some()), Some(p));
                        }
                        phase = p;
                    }
                    Next::Cleanup { then, .. } => {
                        prop_assert!(in_maintenance || phase == Phase::EnterMaintenance);
                        pending = Some(then);
                        phase = Phase::ExitMaintenance;
                    }
                    Next::End(ending) => {
                        // Only a failed exit may leave the host in maintenance, and it fails the step.
                        if in_maintenance {
                            prop_assert_eq!(phase, Phase::ExitMaintenance);
                            prop_assert_eq!(ending.state, Terminal::Failed);
                        }
                        if !forced && ending.state == Terminal::Skipped {
                            prop_assert!(ending.reason.contains("avoid") || ending.reason.contains("no maintenance script"));
                        }
                        return Ok(());
                    }
                }
            }
            prop_assert!(false, "the step did not end");
        }
    }
}
