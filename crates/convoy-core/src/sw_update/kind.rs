//! A software-update strategy (sw-patch) as a kind of the one engine.
//!
//! The engine drives one step per host: the host's stage is its VIM stage (stage N of the
//! plan is engine stage N + 1), and its phases are that stage's VIM steps in order (the
//! stage-wide ones, `query-alarms`, `system-stabilize`, `wait-alarms-clear`, run for each
//! host of the stage). Stages run one after another, as the original's.
//!
//! When a phase fails or times out, or the strategy stops (abort, or another host's failure),
//! the host runs the abort phase's compensations for its own steps in reverse (`unlock-hosts`
//! for a `lock-hosts`, `start-instances` for a `stop-instances`, `enable-host-services` for a
//! `disable-host-services`), each only if the apply had not already undone it, so no host is
//! left locked.
//!
//! A phase's stored name is the VIM step's name; a name that repeats within a stage gets
//! `#2`, `#3`... and a compensation `#abort`, so a step's state always names one phase.

use std::time::Duration;

use jiff::SignedDuration;

use super::abort::compensation;
use super::durations::StepDurations;
use super::stages::{PlannedStage, PlannedStep, StepDetail, StepName};
use crate::strategy::kind::{Context, Effect, Kind, Next};
use crate::strategy::{Ending, Terminal};

/// A phase: step `step` of the plan's stage `stage` (0-based), or its compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpdatePhase {
    pub stage: u32,
    pub step: u16,
    pub undo: bool,
}

/// How a VIM step ended, with the original's result strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Success,
    Failed(String),
    TimedOut(String),
}

/// What the site does for a phase: the VIM step and where it is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateAction {
    pub name: StepName,
    pub phase: UpdatePhase,
}

/// A timeout of zero means none; this stands for "none".
const NO_TIMEOUT: SignedDuration = SignedDuration::from_hours(24 * 365);

struct StageRules {
    steps: Vec<PlannedStep>,
    names: Vec<String>,
    /// The compensation of each step, if it has one.
    undo: Vec<Option<PlannedStep>>,
    undo_names: Vec<Option<String>>,
}

/// The rules of one planned software-update strategy.
pub struct UpdateRules {
    stages: Vec<StageRules>,
}

impl UpdateRules {
    /// The rules of the plan's apply stages.
    pub fn new(stages: &[PlannedStage], durations: &StepDurations) -> UpdateRules {
        let stages = stages
            .iter()
            .map(|stage| {
                let names = unique_names(&stage.steps);
                let undo: Vec<Option<PlannedStep>> = stage
                    .steps
                    .iter()
                    .map(|s| compensation(s, durations))
                    .collect();
                let undo_names = undo
                    .iter()
                    .map(|u| u.as_ref().map(|u| format!("{}#abort", u.name.as_str())))
                    .collect();
                StageRules {
                    steps: stage.steps.clone(),
                    names,
                    undo,
                    undo_names,
                }
            })
            .collect();
        UpdateRules { stages }
    }

    /// The planned VIM step a phase performs.
    pub fn planned(&self, phase: UpdatePhase) -> Option<&PlannedStep> {
        let stage = self.stages.get(phase.stage as usize)?;
        if phase.undo {
            stage.undo.get(phase.step as usize)?.as_ref()
        } else {
            stage.steps.get(phase.step as usize)
        }
    }

    fn stage(&self, phase: UpdatePhase) -> &StageRules {
        &self.stages[phase.stage as usize]
    }

    /// The compensations still owed after the apply stopped at step `at` of `stage` (`done`:
    /// whether step `at` completed), latest first. A step whose inverse the apply already ran
    /// owes nothing; the templates nest (stop, lock ... unlock, start), so once one inverse
    /// is owed, every earlier one is too.
    fn owed(&self, stage: u32, at: u16, done: bool) -> Vec<u16> {
        let rules = &self.stages[stage as usize];
        let ran = |j: usize| j < at as usize || (j == at as usize && done);
        (0..=at as usize)
            .rev()
            .filter(|&i| {
                let Some(undo) = &rules.undo[i] else {
                    return false;
                };
                let undone =
                    (i + 1..rules.steps.len()).any(|j| ran(j) && rules.steps[j].name == undo.name);
                !undone
            })
            .map(|i| i as u16)
            .collect()
    }

    /// The step's end once `then` is decided: after the compensations owed, if any.
    fn wind_down(&self, phase: UpdatePhase, done: bool, then: Ending) -> Next<UpdatePhase> {
        match self.owed(phase.stage, phase.step, done).first() {
            Some(&step) => Next::Cleanup {
                phase: UpdatePhase {
                    stage: phase.stage,
                    step,
                    undo: true,
                },
                then,
            },
            None => Next::End(then),
        }
    }
}

/// The steps' names, with `#2`, `#3`... on a name's later occurrences.
fn unique_names(steps: &[PlannedStep]) -> Vec<String> {
    let mut names = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let seen = steps[..i].iter().filter(|s| s.name == step.name).count();
        names.push(match seen {
            0 => step.name.as_str().to_string(),
            n => format!("{}#{}", step.name.as_str(), n + 1),
        });
    }
    names
}

/// The VIM step name a stored phase name stands for.
pub fn step_name(phase_name: &str) -> &str {
    phase_name.split('#').next().unwrap_or(phase_name)
}

fn timeout_of(step: &PlannedStep) -> SignedDuration {
    if step.timeout == Duration::ZERO && step.name != StepName::SystemStabilize {
        return NO_TIMEOUT;
    }
    SignedDuration::try_from(step.timeout).unwrap_or(NO_TIMEOUT)
}

impl Kind for UpdateRules {
    type Phase = UpdatePhase;
    type Result = StepResult;
    type Action = UpdateAction;

    fn phase_name(&self, phase: UpdatePhase) -> &str {
        let stage = self.stage(phase);
        let name = if phase.undo {
            stage.undo_names[phase.step as usize].as_deref()
        } else {
            stage.names.get(phase.step as usize).map(String::as_str)
        };
        name.unwrap_or("unknown")
    }

    fn parse_phase(&self, stage: u32, name: &str) -> Option<UpdatePhase> {
        let index = stage.checked_sub(1)?;
        let rules = self.stages.get(index as usize)?;
        let at = |step: usize, undo: bool| UpdatePhase {
            stage: index,
            step: step as u16,
            undo,
        };
        if let Some(step) = rules.names.iter().position(|n| n == name) {
            return Some(at(step, false));
        }
        rules
            .undo_names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .map(|step| at(step, true))
    }

    fn sweep(&self) -> Option<UpdatePhase> {
        None
    }

    fn first(&self, stage: u32) -> Option<UpdatePhase> {
        let index = stage.checked_sub(1)?;
        let rules = self.stages.get(index as usize)?;
        (!rules.steps.is_empty()).then_some(UpdatePhase {
            stage: index,
            step: 0,
            undo: false,
        })
    }

    /// The host action and a reboot are the agent's commands; so is an instance step on a host whose
    /// instances it acts on (its `InstanceAction` hook). Every other step, and an instance
    /// step on a host without instances, is the controller's.
    fn effect(&self, phase: UpdatePhase, target: &str) -> Effect<UpdateAction> {
        let Some(step) = self.planned(phase) else {
            return Effect::Wait;
        };
        let action = UpdateAction {
            name: step.name,
            phase,
        };
        match (step.name, &step.detail) {
            (StepName::SystemStabilize, _) => Effect::Wait,
            (StepName::SwPatchHosts | StepName::UpgradeHosts | StepName::RebootHosts, _) => {
                Effect::Command(action)
            }
            (name, StepDetail::Instances { hosts, .. })
                if name.is_instance_action() && hosts.iter().any(|h| h == target) =>
            {
                Effect::Command(action)
            }
            _ => Effect::Controller(action),
        }
    }

    fn timeout(&self, phase: UpdatePhase) -> SignedDuration {
        self.planned(phase).map_or(NO_TIMEOUT, timeout_of)
    }

    fn timed_out(&self, phase: UpdatePhase, _target: &str) -> StepResult {
        match self.planned(phase) {
            Some(step) if step.name.timeout_is_success() => StepResult::Success,
            Some(step) => StepResult::TimedOut(format!(
                "{} timed out after {} s",
                step.name.as_str(),
                timeout_of(step).as_secs()
            )),
            None => StepResult::TimedOut("the step is not in the plan".into()),
        }
    }

    fn result_name(&self, result: &StepResult) -> &'static str {
        match result {
            StepResult::Success => "success",
            StepResult::Failed(_) => "failed",
            StepResult::TimedOut(_) => "timed-out",
        }
    }

    fn result_details(&self, result: &StepResult) -> String {
        match result {
            StepResult::Success => String::new(),
            StepResult::Failed(reason) | StepResult::TimedOut(reason) => reason.clone(),
        }
    }

    fn after(&self, phase: UpdatePhase, result: StepResult, cx: Context<'_>) -> Next<UpdatePhase> {
        if phase.undo {
            // A compensation that fails still lets the others run: leave as little undone as
            // possible, and say what was left.
            let then = match (result, cx.pending) {
                (StepResult::Success, Some(pending)) => pending.clone(),
                (StepResult::Success, None) => Ending::new(Terminal::Aborted, "Aborted"),
                (StepResult::Failed(r) | StepResult::TimedOut(r), _) => Ending::new(
                    Terminal::Failed,
                    format!("{} failed: {r}", self.phase_name(phase)),
                ),
            };
            let next = self
                .owed(phase.stage, phase.step, true)
                .into_iter()
                .find(|&s| s < phase.step);
            return match next {
                Some(step) => Next::Cleanup {
                    phase: UpdatePhase { step, ..phase },
                    then,
                },
                None => Next::End(then),
            };
        }
        match result {
            StepResult::Success if cx.stopping => self.wind_down(
                phase,
                true,
                Ending::new(
                    Terminal::Aborted,
                    format!("Aborted after {}", self.phase_name(phase)),
                ),
            ),
            StepResult::Success => {
                let next = phase.step + 1;
                if (next as usize) < self.stage(phase).steps.len() {
                    Next::Phase(UpdatePhase {
                        step: next,
                        ..phase
                    })
                } else {
                    Next::End(Ending::new(Terminal::Complete, ""))
                }
            }
            StepResult::Failed(reason) | StepResult::TimedOut(reason) => {
                self.wind_down(phase, false, Ending::new(Terminal::Failed, reason))
            }
        }
    }
}

/// What the engine's record of a strategy says, for its VIM state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSummary {
    pub state: crate::strategy::StrategyState,
    /// The build failed: the strategy was never ready to apply.
    pub build_failed: bool,
    /// A host's step failed or timed out (the apply failed).
    pub step_failed: bool,
    /// A host is running a compensation, or has run one.
    pub compensating: bool,
}

impl EngineSummary {
    /// The summary of a strategy in engine state `state` whose steps are in `step_states`
    /// (their stored strings): a step `failed` failed the apply; a step in a `#abort` phase
    /// is compensating.
    pub fn of<'a>(
        state: crate::strategy::StrategyState,
        build_failed: bool,
        step_states: impl IntoIterator<Item = &'a str>,
    ) -> EngineSummary {
        let mut summary = EngineSummary {
            state,
            build_failed,
            step_failed: false,
            compensating: false,
        };
        for step in step_states {
            summary.step_failed |= step == crate::strategy::Terminal::Failed.as_str();
            summary.compensating |= step.ends_with("#abort");
        }
        summary
    }
}

/// The strategy's VIM state and current phase (§4.3). A failed apply aborts itself, so its
/// strategy shows `aborting` while the compensations run and `aborted` after; the apply
/// phase keeps `failed` and its reason.
pub fn vim_state(s: EngineSummary) -> (super::lifecycle::StrategyState, super::lifecycle::Phase) {
    use super::lifecycle::{Phase, StrategyState as Vim};
    use crate::strategy::StrategyState as E;
    if s.build_failed {
        return (Vim::BuildFailed, Phase::Build);
    }
    match s.state {
        E::Initial | E::Deleting => (Vim::ReadyToApply, Phase::Build),
        E::Applying if s.step_failed || s.compensating => (Vim::Aborting, Phase::Abort),
        E::Applying => (Vim::Applying, Phase::Apply),
        E::AbortRequested | E::Aborting => (Vim::Aborting, Phase::Abort),
        E::Complete => (Vim::Applied, Phase::Apply),
        E::Failed | E::Aborted => (Vim::Aborted, Phase::Abort),
    }
}

/// The strategy's own alarm (spec §4.3: `900.101` while a sw-patch strategy applies,
/// `900.102` while it aborts, `900.103` once its apply failed, until it is deleted), on entity
/// `orchestration=<kind>`.
pub fn strategy_alarm(
    kind: super::options::SwUpdateKind,
    s: EngineSummary,
) -> Option<crate::alarm::DesiredAlarm> {
    use super::lifecycle::StrategyState as Vim;
    use crate::alarm::Severity;
    let (state, _) = vim_state(s);
    // A failed apply has aborted itself; the failure stays alarmed until the strategy goes.
    let state = match state {
        Vim::Aborted if s.step_failed => Vim::ApplyFailed,
        other => other,
    };
    let alarm_id = super::lifecycle::strategy_alarm(kind, state)?;
    let name = kind.as_str();
    let (severity, reason) = match state {
        Vim::Applying => (Severity::Major, format!("{name} auto-apply inprogress")),
        Vim::Aborting => (Severity::Major, format!("{name} auto-apply aborting")),
        _ => (
            Severity::Critical,
            format!("{name} auto-apply failed; see the strategy's apply reason, then delete it"),
        ),
    };
    Some(crate::alarm::DesiredAlarm {
        alarm_id,
        entity: format!("orchestration={name}"),
        severity,
        reason,
        mgmt_affecting: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Personality;
    use crate::strategy::kind::{StepChange, StepFacts, transition};
    use crate::sw_update::build::{BuildConfig, build_sw_patch};
    use crate::sw_update::inventory::fixtures::{active, current, host, reboot, site};
    use crate::sw_update::options::SwPatchOptions;

    /// The plan of a reboot-required patch needed by one worker only.
    fn worker_reboot_stage() -> (Vec<PlannedStage>, StepDurations) {
        let site = site(vec![
            current(active(host("controller-0", Personality::Controller))),
            current(host("controller-1", Personality::Controller)),
            reboot(host("worker-0", Personality::Worker)),
        ]);
        let config = BuildConfig::default();
        let plan = build_sw_patch(
            &SwPatchOptions::default(),
            &site,
            1,
            &config,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(plan.stages.len(), 1);
        (plan.stages, config.durations)
    }

    fn run(rules: &UpdateRules, fail_at: Option<&str>) -> (Vec<String>, Ending) {
        let mut phase = rules.first(1).unwrap();
        let mut pending: Option<Ending> = None;
        let mut ran = vec![];
        for _ in 0..50 {
            let name = rules.phase_name(phase).to_string();
            let result = if Some(name.as_str()) == fail_at {
                StepResult::Failed("broke".into())
            } else {
                StepResult::Success
            };
            ran.push(name.clone());
            let facts = StepFacts {
                target: "worker-0",
                stage: 1,
                state: &name,
                swept: false,
                pending_end: pending.as_ref(),
                phase_started_at: None,
            };
            let t = transition(
                rules,
                &facts,
                phase,
                result,
                false,
                jiff::Timestamp::UNIX_EPOCH,
            );
            match t.change {
                StepChange::Begin { phase: p, .. } => phase = p,
                StepChange::BeginCleanup { phase: p, then } => {
                    pending = Some(then);
                    phase = p;
                }
                StepChange::End(ending) => return (ran, ending),
                StepChange::AwaitStage => panic!("no sweep"),
            }
        }
        panic!("the step did not end: {ran:?}")
    }

    #[test]
    fn instance_steps_are_the_hook_only_on_hosts_with_instances() {
        use crate::sw_update::inventory::fixtures::with_instances;
        let site = site(vec![
            current(active(host("controller-0", Personality::Controller))),
            current(host("controller-1", Personality::Controller)),
            reboot(with_instances(
                host("worker-0", Personality::Worker),
                &["vm-a"],
            )),
        ]);
        let config = BuildConfig::default();
        let plan = build_sw_patch(
            &SwPatchOptions::default(),
            &site,
            1,
            &config,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let rules = UpdateRules::new(&plan.stages, &config.durations);
        let stop = rules.parse_phase(1, "stop-instances").unwrap();
        assert!(matches!(rules.effect(stop, "worker-0"), Effect::Command(_)));
        assert!(matches!(
            rules.effect(stop, "worker-9"),
            Effect::Controller(_)
        ));
        let lock = rules.parse_phase(1, "lock-hosts").unwrap();
        assert!(matches!(
            rules.effect(lock, "worker-0"),
            Effect::Controller(_)
        ));
        let start = rules.parse_phase(1, "start-instances#abort").unwrap();
        assert!(matches!(
            rules.effect(start, "worker-0"),
            Effect::Command(_)
        ));
    }

    #[test]
    fn a_clean_run_goes_through_the_stage_steps_in_order() {
        let (stages, d) = worker_reboot_stage();
        let rules = UpdateRules::new(&stages, &d);
        let (ran, ending) = run(&rules, None);
        let planned: Vec<&str> = stages[0].steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            ran.iter().map(|n| step_name(n)).collect::<Vec<_>>(),
            planned
        );
        assert_eq!(ending.state, Terminal::Complete);
    }

    #[test]
    fn a_failed_install_unlocks_the_host_and_fails() {
        let (stages, d) = worker_reboot_stage();
        let rules = UpdateRules::new(&stages, &d);
        let (ran, ending) = run(&rules, Some("sw-patch-hosts"));
        assert_eq!(ran.last().map(String::as_str), Some("unlock-hosts#abort"));
        assert!(!ran.contains(&"unlock-hosts".to_string()));
        assert_eq!(ending, Ending::new(Terminal::Failed, "broke"));
    }

    #[test]
    fn a_failure_after_the_unlock_owes_nothing() {
        let (stages, d) = worker_reboot_stage();
        let rules = UpdateRules::new(&stages, &d);
        let (ran, ending) = run(&rules, Some("system-stabilize#2"));
        assert!(!ran.iter().any(|n| n.ends_with("#abort")));
        assert_eq!(ending.state, Terminal::Failed);
    }

    #[test]
    fn names_are_unique_and_parse_back() {
        let (stages, d) = worker_reboot_stage();
        let rules = UpdateRules::new(&stages, &d);
        let stage = &rules.stages[0];
        for (i, name) in stage.names.iter().enumerate() {
            let phase = rules.parse_phase(1, name).unwrap();
            assert_eq!((phase.step as usize, phase.undo), (i, false));
        }
        let lock = stage
            .steps
            .iter()
            .position(|s| s.name == StepName::LockHosts)
            .unwrap();
        let undo = rules.parse_phase(1, "unlock-hosts#abort").unwrap();
        assert_eq!((undo.step as usize, undo.undo), (lock, true));
        assert_eq!(rules.parse_phase(2, "lock-hosts"), None);
        assert_eq!(step_name("system-stabilize#2"), "system-stabilize");
    }

    #[test]
    fn vim_states_follow_the_self_abort() {
        use crate::strategy::StrategyState as E;
        use crate::sw_update::lifecycle::StrategyState as Vim;
        let s = |state, step_failed, compensating| EngineSummary {
            state,
            build_failed: false,
            step_failed,
            compensating,
        };
        assert_eq!(vim_state(s(E::Initial, false, false)).0, Vim::ReadyToApply);
        assert_eq!(vim_state(s(E::Applying, false, false)).0, Vim::Applying);
        assert_eq!(vim_state(s(E::Applying, true, false)).0, Vim::Aborting);
        assert_eq!(vim_state(s(E::Complete, false, false)).0, Vim::Applied);
        assert_eq!(vim_state(s(E::Failed, true, true)).0, Vim::Aborted);
        let failed_build = EngineSummary {
            build_failed: true,
            ..s(E::Failed, false, false)
        };
        assert_eq!(vim_state(failed_build).0, Vim::BuildFailed);
    }

    #[test]
    fn the_strategy_alarm_follows_its_state() {
        use crate::strategy::StrategyState as E;
        use crate::sw_update::options::SwUpdateKind::SwPatch;
        let s = |state, step_failed| EngineSummary {
            state,
            build_failed: false,
            step_failed,
            compensating: false,
        };
        let id = |summary| strategy_alarm(SwPatch, summary).map(|a| a.alarm_id);
        assert_eq!(id(s(E::Initial, false)), None);
        assert_eq!(id(s(E::Applying, false)), Some("900.101"));
        assert_eq!(id(s(E::Applying, true)), Some("900.102"));
        assert_eq!(id(s(E::Failed, true)), Some("900.103"));
        assert_eq!(id(s(E::Aborted, false)), None);
        assert_eq!(id(s(E::Complete, false)), None);
        let alarm = strategy_alarm(SwPatch, s(E::Applying, false)).unwrap();
        assert_eq!(alarm.entity, "orchestration=sw-patch");
    }

    #[test]
    fn system_stabilize_succeeds_when_its_time_is_up() {
        let (stages, d) = worker_reboot_stage();
        let rules = UpdateRules::new(&stages, &d);
        let stabilize = rules.parse_phase(1, "system-stabilize").unwrap();
        assert_eq!(rules.effect(stabilize, "worker-0"), Effect::Wait);
        assert_eq!(rules.timed_out(stabilize, "worker-0"), StepResult::Success);
        let lock = rules.parse_phase(1, "lock-hosts").unwrap();
        assert!(matches!(
            rules.timed_out(lock, "worker-0"),
            StepResult::TimedOut(_)
        ));
    }
}
