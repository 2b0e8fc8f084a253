//! A software-update strategy's life (spec §4.3, `nfv_common/strategy`): its states, phases
//! and results with the original's strings; which `apply-all`, `apply-stage`, `abort` and
//! `abort-stage` requests are accepted and with which messages the others are refused; what a
//! phase's completion does to the strategy (a failed or timed-out apply aborts itself);
//! timeouts of stages and phases; results of stages and phases; completion percentage.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::options::SwUpdateKind;
use crate::names::named_enum;

/// Strategy states.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyState {
    Initial,
    Building,
    BuildFailed,
    BuildTimeout,
    ReadyToApply,
    Applying,
    ApplyFailed,
    ApplyTimeout,
    Applied,
    Aborting,
    AbortFailed,
    AbortTimeout,
    Aborted,
}

named_enum!(StrategyState, field = "state", {
    Initial => "initial",
    Building => "building",
    BuildFailed => "build-failed",
    BuildTimeout => "build-timeout",
    ReadyToApply => "ready-to-apply",
    Applying => "applying",
    ApplyFailed => "apply-failed",
    ApplyTimeout => "apply-timeout",
    Applied => "applied",
    Aborting => "aborting",
    AbortFailed => "abort-failed",
    AbortTimeout => "abort-timeout",
    Aborted => "aborted",
});

impl StrategyState {
    /// Nothing more will happen to the strategy; it can only be deleted.
    pub fn is_final(self) -> bool {
        use StrategyState::*;
        matches!(
            self,
            BuildFailed | BuildTimeout | Applied | Aborted | AbortFailed | AbortTimeout
        )
    }

    /// The engine is working on it: deleting it needs `force` (the API answers 409).
    pub fn is_busy(self) -> bool {
        use StrategyState::*;
        matches!(
            self,
            Building | Applying | ApplyFailed | ApplyTimeout | Aborting
        )
    }

    /// Whether `DELETE …/strategy` is accepted (`force` deletes a busy strategy too).
    pub fn can_delete(self, force: bool) -> bool {
        force || !self.is_busy()
    }
}

/// The phase a strategy is in (`current-phase`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Initial,
    Build,
    Apply,
    Abort,
}

named_enum!(Phase, field = "current-phase", {
    Initial => "initial",
    Build => "build",
    Apply => "apply",
    Abort => "abort",
});

/// The result of a strategy, phase, stage or step. The original's `aborting` result is the
/// same string as `aborted` (so the same value here).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    Initial,
    Inprogress,
    Wait,
    Success,
    Degraded,
    Failed,
    TimedOut,
    Aborted,
}

named_enum!(UpdateResult, field = "result", {
    Initial => "initial",
    Inprogress => "inprogress",
    Wait => "wait",
    Success => "success",
    Degraded => "degraded",
    Failed => "failed",
    TimedOut => "timed-out",
    Aborted => "aborted",
});

impl UpdateResult {
    /// The step has ended (counts as completed for the completion percentage).
    pub fn is_completed(self) -> bool {
        use UpdateResult::*;
        matches!(self, Success | Degraded | Failed | TimedOut | Aborted)
    }

    /// Ends its stage (for a step) or its phase (for a stage).
    pub fn ends_parent(self) -> bool {
        matches!(
            self,
            UpdateResult::Failed | UpdateResult::TimedOut | UpdateResult::Aborted
        )
    }

    pub fn is_success(self) -> bool {
        matches!(self, UpdateResult::Success | UpdateResult::Degraded)
    }
}

/// Folds a child's result into its parent's (`strategy_*_result_update`, the same rule at
/// every level): `wait` holds; from `initial` or `inprogress` the child's result is taken;
/// from `success` only a worse one (degraded, failed, timed-out, aborted); from `degraded`
/// only failed, timed-out or aborted; failed, timed-out and aborted hold. The reason follows
/// the result it came with.
pub fn result_update(
    parent: (UpdateResult, String),
    child: (UpdateResult, &str),
) -> (UpdateResult, String) {
    use UpdateResult::*;
    let (current, _) = &parent;
    let (incoming, reason) = child;
    let takes = match current {
        Initial => incoming != Initial && incoming != Wait,
        Inprogress => matches!(incoming, Aborted | TimedOut | Failed | Degraded | Success),
        Success => matches!(incoming, Aborted | TimedOut | Failed | Degraded),
        Degraded => matches!(incoming, Aborted | TimedOut | Failed),
        Wait | Failed | TimedOut | Aborted => false,
    };
    if takes {
        (incoming, reason.to_string())
    } else {
        parent
    }
}

/// A stage's result from its steps' results so far, in order: folded by [`result_update`]
/// from `initial`, stopping at the first step that ends the stage. A stage without steps
/// succeeds.
pub fn stage_result<'a>(
    steps: impl IntoIterator<Item = (UpdateResult, &'a str)>,
) -> (UpdateResult, String) {
    let mut result = (UpdateResult::Initial, String::new());
    let mut any = false;
    for step in steps {
        any = true;
        result = result_update(result, step);
        if result.0.ends_parent() {
            break;
        }
    }
    if !any {
        return (UpdateResult::Success, String::new());
    }
    result
}

/// A phase's result from its stages' results: the same fold as [`stage_result`].
pub fn phase_result<'a>(
    stages: impl IntoIterator<Item = (UpdateResult, &'a str)>,
) -> (UpdateResult, String) {
    stage_result(stages)
}

/// What a step's timeout makes of it: `system-stabilize` succeeds when its time is up,
/// every other step is `timed-out`.
pub fn step_timeout_result(step: super::stages::StepName) -> UpdateResult {
    if step.timeout_is_success() {
        UpdateResult::Success
    } else {
        UpdateResult::TimedOut
    }
}

/// A stage's timeout: the sum of its steps' timeouts plus `margin` (the original's 1 s), or
/// zero (no timeout) when they are all zero.
pub fn stage_timeout(steps: impl IntoIterator<Item = Duration>, margin: Duration) -> Duration {
    let sum: Duration = steps.into_iter().sum();
    if sum.is_zero() { sum } else { sum + margin }
}

/// A phase's timeout: the sum of the timeouts of the stages it will run (from the current
/// stage up to the stop) plus `margin`, or zero when they are all zero.
pub fn phase_timeout(stages: impl IntoIterator<Item = Duration>, margin: Duration) -> Duration {
    stage_timeout(stages, margin)
}

/// `completion-percentage` of a phase: completed steps × 100 ÷ all its steps, while the
/// phase is in progress; otherwise (and for a phase without steps) 100.
pub fn completion_percentage(
    inprogress: bool,
    steps: impl IntoIterator<Item = UpdateResult>,
) -> u32 {
    if !inprogress {
        return 100;
    }
    let (mut done, mut total) = (0u64, 0u64);
    for result in steps {
        total += 1;
        done += u64::from(result.is_completed());
    }
    (done * 100).checked_div(total).map_or(100, |p| p as u32)
}

/// What the apply and abort rules read of a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyStatus {
    pub state: StrategyState,
    pub phase: Phase,
    /// The build phase's reason (why the build failed).
    pub build_reason: String,
    pub total_stages: u32,
    /// The apply phase's current stage: the stage running, or the next to run.
    pub current_stage: u32,
    /// The apply stops before this stage (`total_stages` for apply-all).
    pub stop_at_stage: u32,
    /// A stage of the apply phase is running now.
    pub stage_inprogress: bool,
}

/// A refused `apply`/`abort` request, with the original's message (the API answers 400 …
/// with it, or shows it as the action's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub reason: String,
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        reason: reason.into(),
    })
}

/// The original's answer to `*-stage` without a stage id.
pub const NO_STAGE_ID: &str = "No stage-id received";

/// An accepted apply: the strategy becomes (or stays) `applying` in the apply phase and runs
/// from its current stage up to, not including, `stop_at_stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyDecision {
    pub stop_at_stage: u32,
    /// The apply phase starts now (from stage 0); otherwise it continues.
    pub starts: bool,
}

/// `apply-all` (`stage_id` None) or `apply-stage` (`stage_id` Some): the original's rules
/// and messages. After a build, only `ready-to-apply` applies, and a first `apply-stage` must
/// name stage 0. During the apply, `apply-all` continues after a single-stage stop, and
/// `apply-stage` must name exactly the next stage.
pub fn apply(status: &StrategyStatus, stage_id: Option<u32>) -> Result<ApplyDecision, Refusal> {
    use StrategyState::*;
    let total = status.total_stages;
    let invalid = |n: u32| format!("invalid stage id {n} for the apply, total-stages are {total}");
    match status.phase {
        Phase::Build => {
            if status.state != ReadyToApply {
                // The original answers with the build reason, which is empty while building.
                let reason = if status.build_reason.is_empty() {
                    format!(
                        "strategy is {}; apply once it is ready-to-apply",
                        status.state
                    )
                } else {
                    status.build_reason.clone()
                };
                return match stage_id {
                    None => refuse(reason),
                    Some(n) => refuse(format!("apply of stage id {n} failed: {reason} ")),
                };
            }
            match stage_id {
                None => Ok(ApplyDecision {
                    stop_at_stage: total,
                    starts: true,
                }),
                Some(0) if total > 0 => Ok(ApplyDecision {
                    stop_at_stage: 1,
                    starts: true,
                }),
                Some(n) => refuse(invalid(n)),
            }
        }
        Phase::Apply => {
            if matches!(
                status.state,
                Applied | ApplyFailed | ApplyTimeout | Aborted | AbortFailed | AbortTimeout
            ) {
                return refuse("apply already completed");
            }
            let current = status.current_stage;
            match stage_id {
                None if current == status.stop_at_stage => Ok(ApplyDecision {
                    stop_at_stage: total,
                    starts: false,
                }),
                None => refuse("apply already inprogress"),
                Some(_) if status.stage_inprogress => refuse("apply already inprogress"),
                Some(n) if n < current => {
                    refuse(format!("apply already complete for stage id {n}"))
                }
                Some(n) if n >= total => refuse(invalid(n)),
                Some(n) if n != current => refuse(format!(
                    "stage id {n} is not the next stage to be applied, next-stage = {current}"
                )),
                Some(n) => Ok(ApplyDecision {
                    stop_at_stage: n + 1,
                    starts: false,
                }),
            }
        }
        Phase::Initial | Phase::Abort => match stage_id {
            None => refuse("apply not supported during an abort"),
            Some(n) => refuse(format!(
                "apply of stage id {n} not supported during an abort"
            )),
        },
    }
}

/// An accepted abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortDecision {
    /// State `aborting`: the running step finishes, its stage ends `aborted`, then the abort
    /// phase (see [`super::abort::abort_stages`]) runs.
    Aborting,
    /// Stopped between single stages: nothing runs; the strategy is `aborted` at once.
    AbortedNow,
}

/// `abort` (`stage_id` None) or `abort-stage` (`stage_id` the current stage): allowed while
/// `applying`, `apply-failed` or `apply-timeout`; `abort-stage` only for the stage running.
/// Other states refuse with "apply not inprogress".
pub fn abort(status: &StrategyStatus, stage_id: Option<u32>) -> Result<AbortDecision, Refusal> {
    use StrategyState::*;
    if status.phase != Phase::Apply {
        return refuse("apply not inprogress");
    }
    if let Some(n) = stage_id
        && (!status.stage_inprogress || n != status.current_stage)
    {
        return refuse(format!("apply not inprogress for stage id {n}"));
    }
    match status.state {
        Applying | ApplyFailed | ApplyTimeout => {
            if status.current_stage == status.stop_at_stage {
                Ok(AbortDecision::AbortedNow)
            } else {
                Ok(AbortDecision::Aborting)
            }
        }
        // The original sets `aborted` here, over a running abort phase or a failed one;
        // Convoy refuses instead so a failure stays visible.
        Aborting => refuse("abort already inprogress"),
        _ => refuse("apply not inprogress"),
    }
}

/// Where a strategy goes when one of its phases completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTransition {
    pub state: StrategyState,
    pub phase: Phase,
    /// Build and run the abort phase now (see [`super::abort::abort_stages`]).
    pub run_abort_phase: bool,
}

/// The strategy's next state when `phase` completes with `result` in `state`; `None` when
/// that phase completing means nothing in that state. The build phase's success gives
/// `ready-to-apply` (the kind's build checks may then fail it). A failed or timed-out apply
/// records `apply-failed`/`apply-timeout` and aborts itself at once: the returned state is
/// `aborting` with the abort phase to run (the apply phase keeps its result and reason).
pub fn phase_complete(
    state: StrategyState,
    phase: Phase,
    result: UpdateResult,
) -> Option<PhaseTransition> {
    use StrategyState::*;
    let to = |state, phase, run_abort_phase| {
        Some(PhaseTransition {
            state,
            phase,
            run_abort_phase,
        })
    };
    match (state, phase) {
        (Building, Phase::Build) => match result {
            r if r.is_success() => to(ReadyToApply, Phase::Build, false),
            UpdateResult::Failed => to(BuildFailed, Phase::Build, false),
            UpdateResult::TimedOut => to(BuildTimeout, Phase::Build, false),
            _ => None,
        },
        (Applying, Phase::Apply) => match result {
            r if r.is_success() => to(Applied, Phase::Apply, false),
            UpdateResult::Failed | UpdateResult::TimedOut => to(Aborting, Phase::Abort, true),
            _ => None,
        },
        // An abort was asked for: once the running step has finished, whatever the apply
        // phase's result, the abort phase runs.
        (Aborting, Phase::Apply) if result != UpdateResult::Inprogress => {
            to(Aborting, Phase::Abort, true)
        }
        (Aborting, Phase::Abort) => match result {
            r if r.is_success() => to(Aborted, Phase::Abort, false),
            UpdateResult::Failed => to(AbortFailed, Phase::Abort, false),
            UpdateResult::TimedOut => to(AbortTimeout, Phase::Abort, false),
            _ => None,
        },
        _ => None,
    }
}

/// The state the apply phase's failure records before the self-abort (the apply result
/// callers show): `apply-failed` or `apply-timeout`.
pub fn apply_failure_state(result: UpdateResult) -> Option<StrategyState> {
    match result {
        UpdateResult::Failed => Some(StrategyState::ApplyFailed),
        UpdateResult::TimedOut => Some(StrategyState::ApplyTimeout),
        _ => None,
    }
}

/// The alarm the site keeps active for a strategy in `state` (the VIM's auto-apply alarms):
/// in progress while applying, aborting while aborting, failed once the apply or the abort
/// failed or timed out.
pub fn strategy_alarm(kind: SwUpdateKind, state: StrategyState) -> Option<&'static str> {
    use StrategyState::*;
    let (inprogress, aborting, failed) = match kind {
        SwUpdateKind::SwPatch => ("900.101", "900.102", "900.103"),
        SwUpdateKind::SwUpgrade => ("900.201", "900.202", "900.203"),
    };
    match state {
        Applying => Some(inprogress),
        Aborting => Some(aborting),
        ApplyFailed | ApplyTimeout | AbortFailed | AbortTimeout => Some(failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sw_update::stages::StepName;
    use proptest::prelude::*;

    fn status(state: StrategyState, phase: Phase) -> StrategyStatus {
        StrategyStatus {
            state,
            phase,
            build_reason: String::new(),
            total_stages: 3,
            current_stage: 0,
            stop_at_stage: 0,
            stage_inprogress: false,
        }
    }

    fn err<T: std::fmt::Debug>(r: Result<T, Refusal>) -> String {
        r.unwrap_err().reason
    }

    #[test]
    fn strings_are_the_originals() {
        for s in StrategyState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for p in Phase::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for r in UpdateResult::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(StrategyState::ReadyToApply.as_str(), "ready-to-apply");
        assert_eq!(UpdateResult::TimedOut.as_str(), "timed-out");
    }

    #[test]
    fn apply_from_ready_to_apply() {
        use StrategyState::*;
        let s = status(ReadyToApply, Phase::Build);
        assert_eq!(
            apply(&s, None),
            Ok(ApplyDecision {
                stop_at_stage: 3,
                starts: true
            })
        );
        assert_eq!(
            apply(&s, Some(0)),
            Ok(ApplyDecision {
                stop_at_stage: 1,
                starts: true
            })
        );
        assert_eq!(
            err(apply(&s, Some(1))),
            "invalid stage id 1 for the apply, total-stages are 3"
        );
        let mut failed = status(BuildFailed, Phase::Build);
        failed.build_reason = "active alarms present".into();
        assert_eq!(err(apply(&failed, None)), "active alarms present");
        assert_eq!(
            err(apply(&failed, Some(0))),
            "apply of stage id 0 failed: active alarms present "
        );
        assert!(err(apply(&status(Building, Phase::Build), None)).contains("building"));
    }

    #[test]
    fn apply_stage_by_stage_with_each_message() {
        use StrategyState::*;
        let mut s = status(Applying, Phase::Apply);
        // Stage 0 is running.
        s.stop_at_stage = 1;
        s.stage_inprogress = true;
        assert_eq!(err(apply(&s, Some(1))), "apply already inprogress");
        assert_eq!(err(apply(&s, None)), "apply already inprogress");
        // Stage 0 done: stopped before stage 1.
        s.current_stage = 1;
        s.stage_inprogress = false;
        assert_eq!(
            err(apply(&s, Some(0))),
            "apply already complete for stage id 0"
        );
        assert_eq!(
            err(apply(&s, Some(2))),
            "stage id 2 is not the next stage to be applied, next-stage = 1"
        );
        assert_eq!(
            err(apply(&s, Some(3))),
            "invalid stage id 3 for the apply, total-stages are 3"
        );
        assert_eq!(
            apply(&s, Some(1)),
            Ok(ApplyDecision {
                stop_at_stage: 2,
                starts: false
            })
        );
        // apply-all after a stage stop continues to the end.
        assert_eq!(
            apply(&s, None),
            Ok(ApplyDecision {
                stop_at_stage: 3,
                starts: false
            })
        );
        for done in [
            Applied,
            ApplyFailed,
            ApplyTimeout,
            Aborted,
            AbortFailed,
            AbortTimeout,
        ] {
            let s = status(done, Phase::Apply);
            assert_eq!(err(apply(&s, None)), "apply already completed");
        }
        assert_eq!(
            err(apply(&status(Aborting, Phase::Abort), None)),
            "apply not supported during an abort"
        );
        assert_eq!(
            err(apply(&status(Aborting, Phase::Abort), Some(2))),
            "apply of stage id 2 not supported during an abort"
        );
    }

    #[test]
    fn abort_rules() {
        use StrategyState::*;
        let mut s = status(Applying, Phase::Apply);
        s.current_stage = 1;
        s.stop_at_stage = 3;
        s.stage_inprogress = true;
        assert_eq!(abort(&s, None), Ok(AbortDecision::Aborting));
        assert_eq!(abort(&s, Some(1)), Ok(AbortDecision::Aborting));
        assert_eq!(
            err(abort(&s, Some(0))),
            "apply not inprogress for stage id 0"
        );
        // Stopped between single stages: aborted at once.
        s.stop_at_stage = 1;
        s.stage_inprogress = false;
        assert_eq!(abort(&s, None), Ok(AbortDecision::AbortedNow));
        assert_eq!(
            err(abort(&s, Some(1))),
            "apply not inprogress for stage id 1"
        );
        for state in [ApplyFailed, ApplyTimeout] {
            let mut f = s.clone();
            f.state = state;
            f.stop_at_stage = 3;
            assert_eq!(abort(&f, None), Ok(AbortDecision::Aborting));
        }
        assert_eq!(
            err(abort(&status(Applied, Phase::Apply), None)),
            "apply not inprogress"
        );
        assert_eq!(
            err(abort(&status(ReadyToApply, Phase::Build), None)),
            "apply not inprogress"
        );
    }

    #[test]
    fn phases_complete_into_the_next_state() {
        use StrategyState::*;
        use UpdateResult::*;
        let t = |s, p, r| phase_complete(s, p, r).map(|t| (t.state, t.phase, t.run_abort_phase));
        assert_eq!(
            t(Building, Phase::Build, Success),
            Some((ReadyToApply, Phase::Build, false))
        );
        assert_eq!(
            t(Building, Phase::Build, Degraded),
            Some((ReadyToApply, Phase::Build, false))
        );
        assert_eq!(
            t(Building, Phase::Build, Failed),
            Some((BuildFailed, Phase::Build, false))
        );
        assert_eq!(
            t(Building, Phase::Build, TimedOut),
            Some((BuildTimeout, Phase::Build, false))
        );
        assert_eq!(
            t(Applying, Phase::Apply, Success),
            Some((Applied, Phase::Apply, false))
        );
        // A failed or timed-out apply aborts itself.
        assert_eq!(
            t(Applying, Phase::Apply, Failed),
            Some((Aborting, Phase::Abort, true))
        );
        assert_eq!(
            t(Applying, Phase::Apply, TimedOut),
            Some((Aborting, Phase::Abort, true))
        );
        assert_eq!(apply_failure_state(Failed), Some(ApplyFailed));
        assert_eq!(apply_failure_state(TimedOut), Some(ApplyTimeout));
        assert_eq!(
            t(Aborting, Phase::Apply, UpdateResult::Aborted),
            Some((Aborting, Phase::Abort, true))
        );
        assert_eq!(
            t(Aborting, Phase::Abort, Success),
            Some((StrategyState::Aborted, Phase::Abort, false))
        );
        assert_eq!(
            t(Aborting, Phase::Abort, Failed),
            Some((AbortFailed, Phase::Abort, false))
        );
        assert_eq!(
            t(Aborting, Phase::Abort, TimedOut),
            Some((AbortTimeout, Phase::Abort, false))
        );
        assert_eq!(t(Applied, Phase::Apply, Failed), None);
        for s in [
            BuildFailed,
            BuildTimeout,
            Applied,
            StrategyState::Aborted,
            AbortFailed,
            AbortTimeout,
        ] {
            assert!(s.is_final() && s.can_delete(false));
        }
        assert!(!Applying.can_delete(false) && Applying.can_delete(true));
    }

    #[test]
    fn results_fold_as_the_original() {
        use UpdateResult::*;
        let f = |a: UpdateResult, b: UpdateResult| result_update((a, "a".into()), (b, "b")).0;
        assert_eq!(f(Initial, Success), Success);
        assert_eq!(f(Success, Degraded), Degraded);
        assert_eq!(f(Degraded, Success), Degraded);
        assert_eq!(f(Success, Failed), Failed);
        assert_eq!(f(Failed, Success), Failed);
        assert_eq!(f(Wait, Failed), Wait);
        assert_eq!(f(TimedOut, Aborted), TimedOut);
        let (r, why) = stage_result([
            (Success, ""),
            (Failed, "software update failed to apply on host w0"),
            (Success, ""),
        ]);
        assert_eq!(
            (r, why.as_str()),
            (Failed, "software update failed to apply on host w0")
        );
        assert_eq!(stage_result([]).0, Success);
        assert_eq!(phase_result([(Success, ""), (Degraded, "x")]).0, Degraded);
        assert_eq!(step_timeout_result(StepName::SystemStabilize), Success);
        assert_eq!(step_timeout_result(StepName::LockHosts), TimedOut);
    }

    #[test]
    fn timeouts_and_completion() {
        let s = Duration::from_secs;
        assert_eq!(stage_timeout([s(60), s(900), s(0)], s(1)), s(961));
        assert_eq!(stage_timeout([s(0), s(0)], s(1)), s(0));
        assert_eq!(stage_timeout([], s(1)), s(0));
        assert_eq!(phase_timeout([s(961), s(3602)], s(1)), s(4564));
        use UpdateResult::*;
        assert_eq!(
            completion_percentage(true, [Success, Failed, Inprogress]),
            66
        );
        assert_eq!(completion_percentage(false, [Initial]), 100);
        assert_eq!(completion_percentage(true, []), 100);
        assert_eq!(
            strategy_alarm(SwUpdateKind::SwPatch, StrategyState::Applying),
            Some("900.101")
        );
        assert_eq!(
            strategy_alarm(SwUpdateKind::SwPatch, StrategyState::Applied),
            None
        );
    }

    fn any_result() -> impl Strategy<Value = UpdateResult> {
        prop::sample::select(UpdateResult::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn a_failure_is_never_folded_away(results in prop::collection::vec(any_result(), 0..12)) {
            let folded = stage_result(results.iter().map(|r| (*r, "")));
            if let Some(first) = results.iter().position(|r| r.ends_parent()) {
                // Unless a wait froze the fold first, the first ending result wins.
                if !results[..first].contains(&UpdateResult::Wait) {
                    prop_assert_eq!(folded.0, results[first]);
                }
            }
        }

        #[test]
        fn completion_stays_in_range(results in prop::collection::vec(any_result(), 0..50)) {
            let p = completion_percentage(true, results.iter().copied());
            prop_assert!(p <= 100);
            if results.iter().all(|r| r.is_completed()) {
                prop_assert_eq!(p, 100);
            }
        }
    }
}
