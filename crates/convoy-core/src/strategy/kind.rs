//! What makes one kind of strategy differ from another, and the step transition every kind
//! shares.
//!
//! A kind names its phases, says which one sweeps every target before stage 1 (if any), which
//! one a step starts its stage with, what performing each phase means ([`Effect`]), how long
//! the controller waits for it, and where a step goes after a phase ended with a result
//! ([`Kind::after`]). From that, [`transition`] computes a step's whole move as data (what to
//! record of the finished phase, the step's new state, and the effects to issue), so the
//! driver in convoyd only persists and performs; the rules live here, without IO or a clock.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::engine::Progress;
use super::{Ending, Terminal};

/// What performing a phase means. `A` is the kind's own description of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect<A> {
    /// A command to the step's target: an agent command at a site.
    Command(A),
    /// A check or action the controller performs itself, over its own state (a capacity
    /// check, an alarm query, a lock).
    Controller(A),
    /// Nothing to perform: the phase lasts its time, and the time passing is its result (a
    /// system-stabilize wait).
    Wait,
}

/// Where a step goes after a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<P> {
    Phase(P),
    /// Undo what the step did to its target (the compensating phase), then end as `then`.
    Cleanup {
        phase: P,
        then: Ending,
    },
    /// The sweep passed; the step waits for its stage.
    AwaitStage,
    End(Ending),
}

/// What the kind's rules need to know of the step besides the phase and its result.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub target: &'a str,
    /// The strategy is stopping (abort, or stop-on-failure): finish this phase and the
    /// cleanup, start nothing new.
    pub stopping: bool,
    /// The ending decided before the cleanup began, if the step is cleaning up.
    pub pending: Option<&'a Ending>,
}

/// One kind of strategy, as pure rules.
pub trait Kind {
    type Phase: Copy + Eq + fmt::Debug + 'static;
    /// How a phase's effect ended.
    type Result: fmt::Debug;
    /// The kind's description of the work a phase's effect performs.
    type Action: Copy + fmt::Debug;

    /// The phase's name, unique among the phases a step of its stage may go through (it is
    /// the step's stored state and names the phase's record).
    fn phase_name(&self, phase: Self::Phase) -> &str;
    /// The phase a step of `stage` is in when its stored state is `name`.
    fn parse_phase(&self, stage: u32, name: &str) -> Option<Self::Phase>;
    /// The phase every step runs before any stage starts, if the kind sweeps.
    fn sweep(&self) -> Option<Self::Phase>;
    /// The phase a step of `stage` starts with when its stage starts (None: the stage has
    /// nothing to do).
    fn first(&self, stage: u32) -> Option<Self::Phase>;
    /// What performs `phase` on `target`.
    fn effect(&self, phase: Self::Phase, target: &str) -> Effect<Self::Action>;
    /// The phase whose command travels with `phase`'s, performed by the target as soon as
    /// `phase` succeeded (it saves a round trip). A cleanup carries nothing.
    fn carries(&self, _phase: Self::Phase, _cleaning_up: bool) -> Option<Self::Phase> {
        None
    }
    /// How long the controller waits for the phase's result.
    fn timeout(&self, phase: Self::Phase) -> SignedDuration;
    /// The result of a phase whose time ran out.
    fn timed_out(&self, phase: Self::Phase, target: &str) -> Self::Result;
    /// The name recorded for a result.
    fn result_name(&self, result: &Self::Result) -> &'static str;
    /// Why a result is what it is (empty for a plain success).
    fn result_details(&self, result: &Self::Result) -> String;
    /// The step's next move after `phase` ended with `result`.
    fn after(&self, phase: Self::Phase, result: Self::Result, cx: Context<'_>)
    -> Next<Self::Phase>;
}

/// The part of a stored step a transition reads.
#[derive(Debug, Clone, Copy)]
pub struct StepFacts<'a> {
    pub target: &'a str,
    pub stage: u32,
    /// `initial`, a phase name, or a terminal state.
    pub state: &'a str,
    pub swept: bool,
    pub pending_end: Option<&'a Ending>,
    pub phase_started_at: Option<Timestamp>,
}

/// Where a stored step stands, for the engine.
pub fn progress<K: Kind>(kind: &K, stage: u32, state: &str, swept: bool) -> Progress {
    if let Some(terminal) = Terminal::parse(state) {
        return Progress::Done(terminal);
    }
    match kind.parse_phase(stage, state) {
        Some(phase) if Some(phase) == kind.sweep() => Progress::Sweeping,
        Some(_) => Progress::Running,
        None if swept => Progress::Swept,
        None => Progress::Pending,
    }
}

/// When the phase a step is in runs out of time.
pub fn deadline<K: Kind>(
    kind: &K,
    phase: K::Phase,
    facts: &StepFacts<'_>,
    now: Timestamp,
) -> Timestamp {
    facts.phase_started_at.unwrap_or(now) + kind.timeout(phase)
}

/// What to record of a finished phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseEnd {
    pub phase: String,
    pub result: &'static str,
    pub details: String,
}

/// A step's new state after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepChange<P> {
    /// The step is in `phase` from now on. `carried`: its effect already travelled to the
    /// target with the finished phase's, so nothing new is issued.
    Begin {
        phase: P,
        carried: bool,
    },
    /// The step cleans up in `phase` and ends as `then` afterwards.
    BeginCleanup {
        phase: P,
        then: Ending,
    },
    /// Swept; waiting for its stage.
    AwaitStage,
    End(Ending),
}

/// A step's whole move after a phase ended: the record of that phase, the step's change, and
/// the effect to issue for the phase it begins (with the one that travels along, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition<P, A> {
    pub finished: PhaseEnd,
    pub change: StepChange<P>,
    pub effect: Option<Effect<A>>,
    /// The phase (and its effect) sent along with `effect`, performed if `effect` succeeds.
    pub carried: Option<(P, Effect<A>)>,
}

/// The transition of a step whose `phase` ended with `result`. Pure: the same inputs always
/// give the same move.
pub fn transition<K: Kind>(
    kind: &K,
    facts: &StepFacts<'_>,
    phase: K::Phase,
    result: K::Result,
    stopping: bool,
    _now: Timestamp,
) -> Transition<K::Phase, K::Action> {
    let finished = PhaseEnd {
        phase: kind.phase_name(phase).to_string(),
        result: kind.result_name(&result),
        details: kind.result_details(&result),
    };
    let sent_along = kind.carries(phase, facts.pending_end.is_some());
    let cx = Context {
        target: facts.target,
        stopping,
        pending: facts.pending_end,
    };
    let (change, cleaning_up) = match kind.after(phase, result, cx) {
        Next::Phase(next) => (
            StepChange::Begin {
                phase: next,
                carried: sent_along == Some(next),
            },
            facts.pending_end.is_some(),
        ),
        Next::Cleanup { phase, then } => (StepChange::BeginCleanup { phase, then }, true),
        Next::AwaitStage => (StepChange::AwaitStage, false),
        Next::End(ending) => (StepChange::End(ending), false),
    };
    let (effect, carried) = match &change {
        StepChange::Begin { carried: true, .. } => (None, None),
        StepChange::Begin { phase, .. } | StepChange::BeginCleanup { phase, .. } => {
            begin_effects(kind, *phase, facts.target, cleaning_up)
        }
        StepChange::AwaitStage | StepChange::End(_) => (None, None),
    };
    Transition {
        finished,
        change,
        effect,
        carried,
    }
}

/// The effects that begin a phase: its own, and the one sent along with it.
pub type Effects<K> = (
    Option<Effect<<K as Kind>::Action>>,
    Option<(<K as Kind>::Phase, Effect<<K as Kind>::Action>)>,
);

/// The effects that begin `phase` on a step of `target`.
pub fn begin_effects<K: Kind>(
    kind: &K,
    phase: K::Phase,
    target: &str,
    cleaning_up: bool,
) -> Effects<K> {
    let effect = kind.effect(phase, target);
    let carried = match effect {
        Effect::Command(_) => kind
            .carries(phase, cleaning_up)
            .map(|next| (next, kind.effect(next, target)))
            .filter(|(_, e)| matches!(e, Effect::Command(_))),
        _ => None,
    };
    (Some(effect), carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-phase kind with a cleanup: `work`, then `report`; a failed `work` is undone by
    /// `undo`. `work` carries `report`.
    struct Toy;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum P {
        Check,
        Work,
        Report,
        Undo,
    }

    impl Kind for Toy {
        type Phase = P;
        type Result = Result<(), String>;
        type Action = &'static str;

        fn phase_name(&self, phase: P) -> &str {
            match phase {
                P::Check => "check",
                P::Work => "work",
                P::Report => "report",
                P::Undo => "undo",
            }
        }
        fn parse_phase(&self, _stage: u32, name: &str) -> Option<P> {
            [P::Check, P::Work, P::Report, P::Undo]
                .into_iter()
                .find(|p| self.phase_name(*p) == name)
        }
        fn sweep(&self) -> Option<P> {
            Some(P::Check)
        }
        fn first(&self, _stage: u32) -> Option<P> {
            Some(P::Work)
        }
        fn effect(&self, phase: P, _target: &str) -> Effect<&'static str> {
            match phase {
                P::Check => Effect::Controller("check"),
                P::Work => Effect::Command("work"),
                P::Report => Effect::Command("report"),
                P::Undo => Effect::Command("undo"),
            }
        }
        fn carries(&self, phase: P, cleaning_up: bool) -> Option<P> {
            (phase == P::Work && !cleaning_up).then_some(P::Report)
        }
        fn timeout(&self, _phase: P) -> SignedDuration {
            SignedDuration::from_secs(10)
        }
        fn timed_out(&self, phase: P, target: &str) -> Result<(), String> {
            Err(format!("{target}: {} timed out", self.phase_name(phase)))
        }
        fn result_name(&self, result: &Result<(), String>) -> &'static str {
            if result.is_ok() {
                "succeeded"
            } else {
                "failed"
            }
        }
        fn result_details(&self, result: &Result<(), String>) -> String {
            result.clone().err().unwrap_or_default()
        }
        fn after(&self, phase: P, result: Result<(), String>, cx: Context<'_>) -> Next<P> {
            match (phase, result) {
                (P::Check, Ok(())) => Next::AwaitStage,
                (P::Work, Ok(())) => Next::Phase(P::Report),
                (P::Work, Err(r)) => Next::Cleanup {
                    phase: P::Undo,
                    then: Ending::new(Terminal::Failed, r),
                },
                (P::Undo, _) => {
                    Next::End(cx.pending.cloned().unwrap_or_else(|| {
                        Ending::new(Terminal::Failed, "undone without a reason")
                    }))
                }
                (_, Ok(())) => Next::End(Ending::new(Terminal::Complete, "")),
                (_, Err(r)) => Next::End(Ending::new(Terminal::Failed, r)),
            }
        }
    }

    fn facts<'a>(state: &'a str, pending: Option<&'a Ending>) -> StepFacts<'a> {
        StepFacts {
            target: "worker-1",
            stage: 1,
            state,
            swept: true,
            pending_end: pending,
            phase_started_at: Some(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_phase_that_carries_the_next_issues_both_at_once() {
        let (effect, carried) = begin_effects(&Toy, P::Work, "t", false);
        assert_eq!(effect, Some(Effect::Command("work")));
        assert_eq!(carried, Some((P::Report, Effect::Command("report"))));
        // A cleanup carries nothing.
        assert_eq!(begin_effects(&Toy, P::Work, "t", true).1, None);
    }

    #[test]
    fn the_carried_phase_begins_without_a_new_effect() {
        let t = transition(
            &Toy,
            &facts("work", None),
            P::Work,
            Ok(()),
            false,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            t.change,
            StepChange::Begin {
                phase: P::Report,
                carried: true
            }
        );
        assert_eq!(t.effect, None);
        assert_eq!(t.finished.result, "succeeded");
    }

    #[test]
    fn a_failure_cleans_up_then_ends_as_decided() {
        let t = transition(
            &Toy,
            &facts("work", None),
            P::Work,
            Err("disk full".into()),
            false,
            Timestamp::UNIX_EPOCH,
        );
        let StepChange::BeginCleanup { phase, then } = &t.change else {
            panic!("expected a cleanup, got {:?}", t.change);
        };
        assert_eq!(*phase, P::Undo);
        assert_eq!(then.state, Terminal::Failed);
        assert_eq!(t.effect, Some(Effect::Command("undo")));
        assert_eq!(t.finished.details, "disk full");

        let pending = then.clone();
        let t = transition(
            &Toy,
            &facts("undo", Some(&pending)),
            P::Undo,
            Ok(()),
            false,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(t.change, StepChange::End(pending));
        assert_eq!(t.effect, None);
    }

    #[test]
    fn progress_reads_the_stored_state() {
        assert_eq!(progress(&Toy, 1, "initial", false), Progress::Pending);
        assert_eq!(progress(&Toy, 1, "initial", true), Progress::Swept);
        assert_eq!(progress(&Toy, 1, "check", false), Progress::Sweeping);
        assert_eq!(progress(&Toy, 1, "work", true), Progress::Running);
        assert_eq!(
            progress(&Toy, 1, "skipped", true),
            Progress::Done(Terminal::Skipped)
        );
    }

    #[test]
    fn the_deadline_counts_from_the_phase_start() {
        let f = facts("work", None);
        let now = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(3);
        assert_eq!(
            deadline(&Toy, P::Work, &f, now),
            Timestamp::UNIX_EPOCH + SignedDuration::from_secs(10)
        );
    }
}
