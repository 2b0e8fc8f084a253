//! The scheduling rules every strategy shares, as one pure function: which steps start, which
//! pending steps are aborted, and when the strategy's state changes.
//!
//! Rules: a kind with a sweep (rolling maintenance's PreFlight) runs it on every step before
//! any stage starts (on at most `max_parallel_sweep` steps at once: a sweep takes nothing out
//! of service), and a failed sweep cancels everything; stages run one after another, the
//! steps of a stage in parallel, never more than `max_parallel` at once; with stop-on-failure a
//! failed step stops the strategy (running steps finish their phase and cleanup, nothing new
//! starts, pending steps stay initial); abort turns pending steps aborted and lets running ones
//! finish; the end state follows [`super::final_state`].

use super::{StrategyState, Terminal, final_state};

/// Where a step is, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not started (and, for a kind with a sweep, not swept yet).
    Pending,
    /// In its sweep phase.
    Sweeping,
    /// Swept; waiting for its stage.
    Swept,
    /// In a phase of its stage.
    Running,
    Done(Terminal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepView {
    pub stage: u32,
    pub progress: Progress,
}

#[derive(Debug, Clone, Copy)]
pub struct EngineView<'a> {
    pub state: StrategyState,
    pub stop_on_failure: bool,
    pub max_parallel: usize,
    /// The kind sweeps every step before stage 1.
    pub sweep: bool,
    /// Steps swept at once.
    pub max_parallel_sweep: usize,
    /// Applied stage by stage: no stage after this one starts (the strategy waits, applying,
    /// for the next apply).
    pub stop_after_stage: Option<u32>,
    pub steps: &'a [StepView],
}

/// What the driver should do next; indexes are into `EngineView::steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    StartSweep(usize),
    StartStep(usize),
    AbortPending(usize),
    Become(StrategyState),
}

impl EngineView<'_> {
    fn running(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.progress, Progress::Sweeping | Progress::Running))
            .count()
    }

    fn all_done(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.progress, Progress::Done(_)))
    }

    fn any_failed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.progress == Progress::Done(Terminal::Failed))
    }

    fn sweeping(&self) -> bool {
        self.sweep
            && self
                .steps
                .iter()
                .any(|s| matches!(s.progress, Progress::Pending | Progress::Sweeping))
    }

    /// Whether running steps should stop after their current phase (and cleanup).
    pub fn stopping(&self) -> bool {
        match self.state {
            StrategyState::AbortRequested | StrategyState::Aborting => true,
            StrategyState::Applying => {
                self.any_failed() && (self.stop_on_failure || self.sweeping())
            }
            _ => false,
        }
    }

    fn final_state(&self) -> StrategyState {
        final_state(self.steps.iter().filter_map(|s| match s.progress {
            Progress::Done(t) => Some(t),
            _ => None,
        }))
    }
}

/// The decisions for the strategy as it stands. Apply them, then ask again: the engine is
/// level-triggered and asking twice without change gives the same answer.
pub fn decide(view: &EngineView<'_>) -> Vec<Decision> {
    match view.state {
        StrategyState::Applying => decide_applying(view),
        StrategyState::AbortRequested => {
            let mut decisions: Vec<Decision> = view
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.progress, Progress::Pending | Progress::Swept))
                .map(|(i, _)| Decision::AbortPending(i))
                .collect();
            decisions.push(Decision::Become(StrategyState::Aborting));
            decisions
        }
        StrategyState::Aborting if view.running() == 0 => {
            vec![Decision::Become(view.final_state())]
        }
        _ => vec![],
    }
}

fn decide_applying(view: &EngineView<'_>) -> Vec<Decision> {
    if view.all_done() {
        return vec![Decision::Become(view.final_state())];
    }
    let running = view.running();
    if view.stopping() {
        return if running == 0 {
            vec![Decision::Become(StrategyState::Failed)]
        } else {
            vec![]
        };
    }
    if view.sweeping() {
        let room = view.max_parallel_sweep.max(1).saturating_sub(running);
        return view
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.progress == Progress::Pending)
            .take(room)
            .map(|(i, _)| Decision::StartSweep(i))
            .collect();
    }
    let Some(stage) = view
        .steps
        .iter()
        .filter(|s| !matches!(s.progress, Progress::Done(_)))
        .map(|s| s.stage)
        .min()
    else {
        return vec![];
    };
    if view.stop_after_stage.is_some_and(|last| stage > last) {
        return vec![];
    }
    let room = view.max_parallel.max(1).saturating_sub(running);
    let ready = if view.sweep {
        Progress::Swept
    } else {
        Progress::Pending
    };
    view.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.stage == stage && s.progress == ready)
        .take(room)
        .map(|(i, _)| Decision::StartStep(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(state: StrategyState, steps: &[StepView]) -> EngineView<'_> {
        EngineView {
            state,
            stop_on_failure: false,
            max_parallel: 2,
            sweep: false,
            max_parallel_sweep: 2,
            stop_after_stage: None,
            steps,
        }
    }

    fn step(stage: u32, progress: Progress) -> StepView {
        StepView { stage, progress }
    }

    #[test]
    fn a_strategy_applied_stage_by_stage_waits_after_its_stop() {
        let steps = [
            step(1, Progress::Done(Terminal::Complete)),
            step(2, Progress::Pending),
        ];
        let mut v = view(StrategyState::Applying, &steps);
        v.stop_after_stage = Some(1);
        assert_eq!(decide(&v), vec![]);
        v.stop_after_stage = Some(2);
        assert_eq!(decide(&v), vec![Decision::StartStep(1)]);
    }

    #[test]
    fn the_first_stage_starts_up_to_max_parallel() {
        let steps = [
            step(1, Progress::Pending),
            step(1, Progress::Pending),
            step(1, Progress::Pending),
            step(2, Progress::Pending),
        ];
        let v = EngineView {
            max_parallel: 2,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), [Decision::StartStep(0), Decision::StartStep(1)]);
    }

    #[test]
    fn a_stage_waits_for_the_previous_one() {
        let steps = [
            step(1, Progress::Done(Terminal::Complete)),
            step(1, Progress::Running),
            step(2, Progress::Pending),
        ];
        assert_eq!(decide(&view(StrategyState::Applying, &steps)), []);
    }

    #[test]
    fn the_sweep_runs_on_every_step_first() {
        let steps = [
            step(1, Progress::Swept),
            step(2, Progress::Pending),
            step(3, Progress::Pending),
        ];
        let v = EngineView {
            sweep: true,
            max_parallel_sweep: 1,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), [Decision::StartSweep(1)]);
        let steps = [step(1, Progress::Swept), step(2, Progress::Swept)];
        let v = EngineView {
            sweep: true,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), [Decision::StartStep(0)]);
    }

    #[test]
    fn the_sweep_has_a_limit_of_its_own() {
        let steps = [
            step(1, Progress::Sweeping),
            step(1, Progress::Pending),
            step(2, Progress::Pending),
            step(3, Progress::Pending),
            step(4, Progress::Pending),
        ];
        // One host maintained at a time, three swept at a time.
        let v = EngineView {
            sweep: true,
            max_parallel: 1,
            max_parallel_sweep: 3,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(
            decide(&v),
            [Decision::StartSweep(1), Decision::StartSweep(2)]
        );
    }

    #[test]
    fn a_failed_sweep_cancels_everything_once_running_sweeps_end() {
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(1, Progress::Sweeping),
            step(2, Progress::Pending),
        ];
        let v = EngineView {
            sweep: true,
            ..view(StrategyState::Applying, &steps)
        };
        assert!(v.stopping());
        assert_eq!(decide(&v), []);
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(1, Progress::Swept),
            step(2, Progress::Pending),
        ];
        let v = EngineView {
            sweep: true,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), [Decision::Become(StrategyState::Failed)]);
    }

    #[test]
    fn stop_on_failure_starts_nothing_new() {
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(1, Progress::Running),
            step(1, Progress::Pending),
        ];
        let v = EngineView {
            stop_on_failure: true,
            max_parallel: 3,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), []);
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(1, Progress::Done(Terminal::Aborted)),
            step(1, Progress::Pending),
        ];
        let v = EngineView {
            stop_on_failure: true,
            ..view(StrategyState::Applying, &steps)
        };
        assert_eq!(decide(&v), [Decision::Become(StrategyState::Failed)]);
    }

    #[test]
    fn without_stop_on_failure_the_rest_goes_on_and_the_end_is_failed() {
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(2, Progress::Pending),
        ];
        assert_eq!(
            decide(&view(StrategyState::Applying, &steps)),
            [Decision::StartStep(1)]
        );
        let steps = [
            step(1, Progress::Done(Terminal::Failed)),
            step(2, Progress::Done(Terminal::Complete)),
        ];
        assert_eq!(
            decide(&view(StrategyState::Applying, &steps)),
            [Decision::Become(StrategyState::Failed)]
        );
    }

    #[test]
    fn abort_aborts_pending_steps_and_waits_for_running_ones() {
        let steps = [step(1, Progress::Running), step(2, Progress::Pending)];
        assert_eq!(
            decide(&view(StrategyState::AbortRequested, &steps)),
            [
                Decision::AbortPending(1),
                Decision::Become(StrategyState::Aborting)
            ]
        );
        let steps = [
            step(1, Progress::Running),
            step(2, Progress::Done(Terminal::Aborted)),
        ];
        assert_eq!(decide(&view(StrategyState::Aborting, &steps)), []);
        let steps = [
            step(1, Progress::Done(Terminal::Complete)),
            step(2, Progress::Done(Terminal::Aborted)),
        ];
        assert_eq!(
            decide(&view(StrategyState::Aborting, &steps)),
            [Decision::Become(StrategyState::Aborted)]
        );
    }

    /// Drives random strategies to their end with random step outcomes, checking the
    /// invariants at every step of the simulation.
    fn simulate(
        stages: &[u32],
        max_parallel: usize,
        max_parallel_sweep: usize,
        stop_on_failure: bool,
        sweep: bool,
        outcomes: &[u8],
        abort_at: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let mut steps: Vec<StepView> = stages
            .iter()
            .map(|&stage| step(stage, Progress::Pending))
            .collect();
        let mut state = StrategyState::Applying;
        let mut started = vec![false; steps.len()];
        let mut dice = outcomes.iter().cycle();
        for round in 0..10_000 {
            if Some(round) == abort_at && state == StrategyState::Applying {
                state = StrategyState::AbortRequested;
            }
            let v = EngineView {
                state,
                stop_on_failure,
                max_parallel,
                sweep,
                max_parallel_sweep,
                stop_after_stage: None,
                steps: &steps,
            };
            let decisions = decide(&v);
            for decision in &decisions {
                match *decision {
                    Decision::StartSweep(i) => {
                        prop_assert_eq!(steps[i].progress, Progress::Pending);
                        steps[i].progress = Progress::Sweeping;
                    }
                    Decision::StartStep(i) => {
                        // No step of an earlier stage is still unfinished.
                        prop_assert!(steps.iter().all(|s| s.stage >= steps[i].stage
                            || matches!(s.progress, Progress::Done(_))));
                        prop_assert!(
                            !sweep
                                || steps.iter().all(|s| !matches!(
                                    s.progress,
                                    Progress::Pending | Progress::Sweeping
                                ))
                        );
                        steps[i].progress = Progress::Running;
                        started[i] = true;
                    }
                    Decision::AbortPending(i) => {
                        prop_assert!(matches!(
                            steps[i].progress,
                            Progress::Pending | Progress::Swept
                        ));
                        steps[i].progress = Progress::Done(Terminal::Aborted);
                    }
                    Decision::Become(next) => {
                        prop_assert!(state.can_become(next), "{state:?} -> {next:?}");
                        state = next;
                    }
                }
            }
            let running = steps
                .iter()
                .filter(|s| matches!(s.progress, Progress::Sweeping | Progress::Running))
                .count();
            let sweeping = steps.iter().any(|s| s.progress == Progress::Sweeping);
            let limit = if sweeping {
                max_parallel_sweep
            } else {
                max_parallel
            };
            prop_assert!(running <= limit.max(1), "{running} running: {steps:?}");
            if state.is_terminal() {
                // Nothing is in flight, and every step whose stage started has ended (a step
                // that only passed its sweep stays pending, like any step never started).
                for (i, s) in steps.iter().enumerate() {
                    prop_assert!(
                        !matches!(s.progress, Progress::Sweeping | Progress::Running),
                        "{s:?}"
                    );
                    if started[i] {
                        prop_assert!(matches!(s.progress, Progress::Done(_)), "{s:?}");
                    }
                }
                return Ok(());
            }
            // Finish one running step with a random outcome.
            if let Some(i) = steps
                .iter()
                .position(|s| matches!(s.progress, Progress::Sweeping | Progress::Running))
            {
                let roll = *dice.next().unwrap_or(&0) % 4;
                steps[i].progress = match (steps[i].progress, roll) {
                    (Progress::Sweeping, 0) => Progress::Done(Terminal::Failed),
                    (Progress::Sweeping, 1) => Progress::Done(Terminal::Skipped),
                    (Progress::Sweeping, _) => Progress::Swept,
                    (_, 0) => Progress::Done(Terminal::Failed),
                    (_, 1) => Progress::Done(Terminal::Skipped),
                    (_, _) => Progress::Done(Terminal::Complete),
                };
            } else if decisions.is_empty() {
                prop_assert!(false, "stuck in {state:?} with {steps:?}");
            }
        }
        prop_assert!(false, "did not finish");
        Ok(())
    }

    proptest! {
        #[test]
        fn every_strategy_ends_and_keeps_the_rules(
            stages in proptest::collection::vec(1u32..5, 1..12),
            max_parallel in 1usize..4,
            max_parallel_sweep in 1usize..6,
            stop_on_failure: bool,
            sweep: bool,
            outcomes in proptest::collection::vec(any::<u8>(), 1..20),
            abort_at in proptest::option::of(0usize..15),
        ) {
            let mut stages = stages;
            stages.sort_unstable();
            simulate(
                &stages,
                max_parallel,
                max_parallel_sweep,
                stop_on_failure,
                sweep,
                &outcomes,
                abort_at,
            )?;
        }
    }
}
