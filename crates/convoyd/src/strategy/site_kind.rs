//! A strategy kind's edge at a site: what the driver needs besides the kind's pure rules.
//!
//! The rules ([`Kind`]) say what each phase means; a site kind turns that into IO: the agent
//! command that performs a phase, what an agent's outcome means, the checks the controller
//! makes over its own store, and whatever the kind holds outside its steps while it runs
//! (rolling maintenance disables clusters).

use std::future::Future;

use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::strategy::kind::Kind;
use convoy_store::{StepRecord, StrategyRecord, SubcloudStepWrite};
use jiff::{SignedDuration, Timestamp};

use crate::state::AppState;

/// The rules of a site kind, with the bounds the driver's task needs.
pub trait SiteRules:
    Kind<Phase: Send + Sync, Result: Send, Action: Send + Sync> + Send + Sync
{
}

impl<K> SiteRules for K where
    K: Kind<Phase: Send + Sync, Result: Send, Action: Send + Sync> + Send + Sync
{
}

pub trait SiteKind: Send + Sync {
    type Rules: SiteRules;
    /// What the kind's controller checks keep for the length of one tick.
    type TickCache: Default + Send;

    fn rules(&self) -> &Self::Rules;

    /// Steps swept at once, for a kind that sweeps.
    fn sweep_parallelism(&self, strategy: &StrategyRecord) -> usize;

    /// The agent command that performs an action on `target`, or None if it needs none.
    fn command(
        &self,
        action: <Self::Rules as Kind>::Action,
        target: &str,
    ) -> Option<(CommandKind, serde_json::Value)>;

    /// What the outcome of `target`'s agent means for the phase it performed.
    fn result_of(
        &self,
        phase: <Self::Rules as Kind>::Phase,
        target: &str,
        outcome: &CommandOutcome,
    ) -> <Self::Rules as Kind>::Result;

    /// How long the work an outcome reports took, if it says: a phase whose command was
    /// carried by another began that long before its outcome arrived.
    fn duration_of(&self, _outcome: &CommandOutcome) -> Option<SignedDuration> {
        None
    }

    /// Performs a check the controller makes itself for the step `steps[index]`: its result,
    /// or None while it is not settled (the driver asks again soon, until the phase's
    /// timeout).
    fn check(
        &self,
        app: &AppState,
        action: <Self::Rules as Kind>::Action,
        index: usize,
        steps: &[StepRecord],
        cache: &mut Self::TickCache,
        now: Timestamp,
    ) -> impl Future<Output = anyhow::Result<Option<<Self::Rules as Kind>::Result>>> + Send;

    /// How soon an unsettled controller check is asked again.
    fn recheck(&self) -> SignedDuration {
        SignedDuration::from_millis(250)
    }

    /// How many controller checks one tick may make at once. One by default: rolling
    /// maintenance's checks share the tick's cache and run one after another. A kind whose
    /// checks call other controllers (a subcloud's) makes them side by side, each step's
    /// first check of the tick; a step's next check then waits for the next tick, which
    /// follows at once.
    fn parallel_checks(&self) -> usize {
        1
    }

    /// Called before a round of side-by-side checks with the steps it checks (by index), so
    /// that a kind can read what they need in one go.
    fn checks_due(&self, _due: &[usize], _steps: &[StepRecord]) {}

    /// Details the tick's checks found for steps still in their phase (a long phase's
    /// progress), by step index: the driver writes them with the tick's other changes.
    fn progress(&self) -> Vec<(usize, String)> {
        Vec::new()
    }

    /// What the tick's checks and step endings change on the kind's subclouds: the driver
    /// writes them with the tick's other changes, so a step's effect on its subcloud is on
    /// disk exactly when the step's move is.
    fn subcloud_writes(&self) -> Vec<SubcloudStepWrite> {
        Vec::new()
    }

    /// Called when a step ends, before its end is written (`step` as it ends).
    fn step_ended(&self, _step: &StepRecord) {}

    /// Called when the step's stage starts it, before its first phase is written.
    fn stage_starting(
        &self,
        _app: &AppState,
        _strategy: &StrategyRecord,
        _step: &StepRecord,
        _cache: &mut Self::TickCache,
        _now: Timestamp,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Called after each tick's writes, to release what steps no longer need. `settled`:
    /// the strategy is stopping or over, or the tick loaded its steps afresh or ended one.
    fn tick_written(
        &self,
        _app: &AppState,
        _strategy: &StrategyRecord,
        _steps: &[StepRecord],
        _settled: TickEnd,
        _now: Timestamp,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// What a tick's end tells a kind about what its steps may still need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickEnd {
    /// The strategy starts nothing new any more (stopping, or over).
    pub stopping: bool,
    /// A step ended in this tick, or the steps were loaded afresh: something held may be
    /// free.
    pub changed: bool,
}
