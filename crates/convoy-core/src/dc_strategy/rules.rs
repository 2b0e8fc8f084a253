//! What every System Controller strategy's steps share as a kind of the one engine: a fixed
//! list of phases, each the System Controller's own work against one subcloud
//! (`Effect::Controller`), ended by a [`DcStepResult`]; on to the next phase, complete early
//! (a skip, or nothing to do), or failed with `<state when it failed>: <message>` as the
//! original's step details.
//!
//! Steps already running are not stopped by an abort or by another step's failure: they run
//! to their end, as the original's running steps do after an abort (stop-on-failure in the
//! original fails them in their wait loops instead; finishing them leaves no subcloud half
//! done).

use std::fmt;
use std::time::Duration;

use jiff::SignedDuration;

use crate::strategy::kind::{Context, Effect, Kind, Next};
use crate::strategy::{Ending, Terminal};

/// How a phase of a System Controller step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcStepResult {
    /// On to the next phase.
    Next,
    /// Nothing more to do on this subcloud (already deployed, or skipped): the step is
    /// complete, with these details.
    Done(String),
    Failed(String),
}

/// The phases of one System Controller kind, in order.
pub trait DcPhase: Copy + Eq + fmt::Debug + 'static {
    const ALL: &'static [Self];
    /// The original's step state string.
    fn as_str(self) -> &'static str;
    /// Why the phase failed when its time ran out on `subcloud`.
    fn timed_out(self, subcloud: &str) -> String;
}

/// The rules of a System Controller kind: its phases, each with its timeout, less those a
/// strategy leaves out.
#[derive(Debug, Clone)]
pub struct DcRules<P> {
    timeouts: Vec<(P, Duration)>,
    skipped: Vec<P>,
}

impl<P: DcPhase> DcRules<P> {
    /// `timeouts` gives each phase's; a phase missing from it has none.
    pub fn new(timeouts: &[(P, Duration)]) -> DcRules<P> {
        DcRules {
            timeouts: timeouts.to_vec(),
            skipped: Vec::new(),
        }
    }

    /// The same rules without `phases`: a step goes from the phase before them to the one
    /// after.
    pub fn skipping(mut self, phases: &[P]) -> DcRules<P> {
        self.skipped.extend_from_slice(phases);
        self
    }

    fn next(&self, phase: P) -> Option<P> {
        let i = P::ALL.iter().position(|p| *p == phase)?;
        P::ALL[i + 1..]
            .iter()
            .copied()
            .find(|p| !self.skipped.contains(p))
    }
}

impl<P: DcPhase> Kind for DcRules<P> {
    type Phase = P;
    type Result = DcStepResult;
    type Action = P;

    fn phase_name(&self, phase: P) -> &str {
        phase.as_str()
    }

    fn parse_phase(&self, _stage: u32, name: &str) -> Option<P> {
        P::ALL.iter().copied().find(|p| p.as_str() == name)
    }

    fn sweep(&self) -> Option<P> {
        None
    }

    fn first(&self, _stage: u32) -> Option<P> {
        P::ALL.first().copied()
    }

    fn effect(&self, phase: P, _target: &str) -> Effect<P> {
        Effect::Controller(phase)
    }

    fn timeout(&self, phase: P) -> SignedDuration {
        self.timeouts
            .iter()
            .find(|(p, _)| *p == phase)
            .and_then(|(_, d)| SignedDuration::try_from(*d).ok())
            .unwrap_or(SignedDuration::MAX)
    }

    fn timed_out(&self, phase: P, target: &str) -> DcStepResult {
        DcStepResult::Failed(phase.timed_out(target))
    }

    fn result_name(&self, result: &DcStepResult) -> &'static str {
        match result {
            DcStepResult::Next | DcStepResult::Done(_) => "success",
            DcStepResult::Failed(_) => "failed",
        }
    }

    fn result_details(&self, result: &DcStepResult) -> String {
        match result {
            DcStepResult::Next => String::new(),
            DcStepResult::Done(details) | DcStepResult::Failed(details) => details.clone(),
        }
    }

    fn after(&self, phase: P, result: DcStepResult, _cx: Context<'_>) -> Next<P> {
        match result {
            DcStepResult::Next => match self.next(phase) {
                Some(next) => Next::Phase(next),
                None => Next::End(Ending::new(Terminal::Complete, "")),
            },
            DcStepResult::Done(details) => Next::End(Ending::new(Terminal::Complete, details)),
            DcStepResult::Failed(reason) => Next::End(Ending::new(
                Terminal::Failed,
                format!("{}: {reason}", phase.as_str()),
            )),
        }
    }
}
