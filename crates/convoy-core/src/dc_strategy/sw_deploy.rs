//! A sw-deploy step on one subcloud (spec dcmanager-api.md §4.6), as a kind of the one engine:
//! `sw-deploy pre-check` → `create VIM sw-deploy strategy` → `apply VIM sw-deploy strategy`
//! → `finish sw-deploy strategy` → `complete`. Every phase is the System Controller's own
//! work against the subcloud's REST API, re-entrant, so a step resumed in its stored state
//! after a restart finds what it had done (the subcloud's strategy is reused, not made
//! twice).
//!
//! Steps already running are not stopped by an abort or by another step's failure: they run
//! to their end, as the original's running steps do after an abort (stop-on-failure in the
//! original fails them in their wait loops instead; finishing them leaves no subcloud with a
//! half-applied strategy).

use std::time::Duration;

use jiff::SignedDuration;

use crate::strategy::kind::{Context, Effect, Kind, Next};
use crate::strategy::{Ending, Terminal};

/// A phase of a sw-deploy step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwDeployPhase {
    PreCheck,
    CreateVim,
    ApplyVim,
    Finish,
}

impl SwDeployPhase {
    pub const ALL: [SwDeployPhase; 4] = [
        SwDeployPhase::PreCheck,
        SwDeployPhase::CreateVim,
        SwDeployPhase::ApplyVim,
        SwDeployPhase::Finish,
    ];

    /// The original's step state string.
    pub fn as_str(self) -> &'static str {
        match self {
            SwDeployPhase::PreCheck => "sw-deploy pre-check",
            SwDeployPhase::CreateVim => "create VIM sw-deploy strategy",
            SwDeployPhase::ApplyVim => "apply VIM sw-deploy strategy",
            SwDeployPhase::Finish => "finish sw-deploy strategy",
        }
    }

    fn next(self) -> Option<SwDeployPhase> {
        let i = SwDeployPhase::ALL.iter().position(|p| *p == self)?;
        SwDeployPhase::ALL.get(i + 1).copied()
    }
}

/// How a phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwDeployResult {
    /// On to the next phase.
    Next,
    /// Nothing more to do on this subcloud (the release is deployed there already): the step
    /// is complete, with these details.
    Done(String),
    Failed(String),
}

/// How long each phase may take (the original's poll counts times its poll intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwDeployTimeouts {
    pub pre_check: Duration,
    /// 180 polls of 10 s.
    pub create_vim: Duration,
    /// 400 polls of 60 s.
    pub apply_vim: Duration,
    pub finish: Duration,
}

impl Default for SwDeployTimeouts {
    fn default() -> Self {
        SwDeployTimeouts {
            pre_check: Duration::from_secs(600),
            create_vim: Duration::from_secs(1800),
            apply_vim: Duration::from_secs(400 * 60),
            finish: Duration::from_secs(600),
        }
    }
}

impl SwDeployTimeouts {
    /// Every timeout times `scale` (the controller's step time scale).
    pub fn scaled(scale: f64) -> SwDeployTimeouts {
        let d = SwDeployTimeouts::default();
        let s = |t: Duration| t.mul_f64(scale.max(0.0));
        SwDeployTimeouts {
            pre_check: s(d.pre_check),
            create_vim: s(d.create_vim),
            apply_vim: s(d.apply_vim),
            finish: s(d.finish),
        }
    }
}

/// The rules of a sw-deploy strategy's steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwDeployRules {
    pub timeouts: SwDeployTimeouts,
}

impl Kind for SwDeployRules {
    type Phase = SwDeployPhase;
    type Result = SwDeployResult;
    type Action = SwDeployPhase;

    fn phase_name(&self, phase: SwDeployPhase) -> &str {
        phase.as_str()
    }

    fn parse_phase(&self, _stage: u32, name: &str) -> Option<SwDeployPhase> {
        SwDeployPhase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn sweep(&self) -> Option<SwDeployPhase> {
        None
    }

    fn first(&self, _stage: u32) -> Option<SwDeployPhase> {
        Some(SwDeployPhase::PreCheck)
    }

    fn effect(&self, phase: SwDeployPhase, _target: &str) -> Effect<SwDeployPhase> {
        Effect::Controller(phase)
    }

    fn timeout(&self, phase: SwDeployPhase) -> SignedDuration {
        let t = &self.timeouts;
        let d = match phase {
            SwDeployPhase::PreCheck => t.pre_check,
            SwDeployPhase::CreateVim => t.create_vim,
            SwDeployPhase::ApplyVim => t.apply_vim,
            SwDeployPhase::Finish => t.finish,
        };
        SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
    }

    fn timed_out(&self, phase: SwDeployPhase, target: &str) -> SwDeployResult {
        SwDeployResult::Failed(match phase {
            SwDeployPhase::CreateVim => "Timeout building VIM strategy.".to_string(),
            SwDeployPhase::ApplyVim => {
                format!("Timeout applying VIM strategy on subcloud {target}.")
            }
            other => format!("{} timed out on subcloud {target}.", other.as_str()),
        })
    }

    fn result_name(&self, result: &SwDeployResult) -> &'static str {
        match result {
            SwDeployResult::Next | SwDeployResult::Done(_) => "success",
            SwDeployResult::Failed(_) => "failed",
        }
    }

    fn result_details(&self, result: &SwDeployResult) -> String {
        match result {
            SwDeployResult::Next => String::new(),
            SwDeployResult::Done(details) | SwDeployResult::Failed(details) => details.clone(),
        }
    }

    fn after(
        &self,
        phase: SwDeployPhase,
        result: SwDeployResult,
        _cx: Context<'_>,
    ) -> Next<SwDeployPhase> {
        match result {
            SwDeployResult::Next => match phase.next() {
                Some(next) => Next::Phase(next),
                None => Next::End(Ending::new(Terminal::Complete, "")),
            },
            SwDeployResult::Done(details) => Next::End(Ending::new(Terminal::Complete, details)),
            // The original's step details: `<state when it failed>: <message>`.
            SwDeployResult::Failed(reason) => Next::End(Ending::new(
                Terminal::Failed,
                format!("{}: {reason}", phase.as_str()),
            )),
        }
    }
}

/// The progress the original shows in the step's details while the subcloud's strategy
/// applies: `<phase> phase is <pct>% complete`.
pub fn progress_details(phase: &str, percent: u64) -> String {
    format!("{phase} phase is {percent}% complete")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kind::{StepChange, StepFacts, transition};

    fn step(
        rules: &SwDeployRules,
        phase: SwDeployPhase,
        result: SwDeployResult,
        stopping: bool,
    ) -> StepChange<SwDeployPhase> {
        let facts = StepFacts {
            target: "subcloud1",
            stage: 1,
            state: phase.as_str(),
            swept: false,
            pending_end: None,
            phase_started_at: None,
        };
        transition(
            rules,
            &facts,
            phase,
            result,
            stopping,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .change
    }

    #[test]
    fn a_step_goes_through_the_originals_states_in_order() {
        let rules = SwDeployRules::default();
        let mut phase = rules.first(1).unwrap();
        let mut seen = vec![phase.as_str()];
        loop {
            match step(&rules, phase, SwDeployResult::Next, false) {
                StepChange::Begin { phase: p, .. } => {
                    phase = p;
                    seen.push(p.as_str());
                }
                StepChange::End(ending) => {
                    assert_eq!(ending.state, Terminal::Complete);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                "sw-deploy pre-check",
                "create VIM sw-deploy strategy",
                "apply VIM sw-deploy strategy",
                "finish sw-deploy strategy"
            ]
        );
        for p in SwDeployPhase::ALL {
            assert_eq!(rules.parse_phase(1, p.as_str()), Some(p));
        }
    }

    #[test]
    fn failures_name_the_state_and_running_steps_are_not_stopped() {
        let rules = SwDeployRules::default();
        let failed = step(
            &rules,
            SwDeployPhase::PreCheck,
            SwDeployResult::Failed("Release R is not prestaged.".into()),
            false,
        );
        assert_eq!(
            failed,
            StepChange::End(Ending::new(
                Terminal::Failed,
                "sw-deploy pre-check: Release R is not prestaged."
            ))
        );
        let done = step(
            &rules,
            SwDeployPhase::PreCheck,
            SwDeployResult::Done("already deployed".into()),
            false,
        );
        assert_eq!(
            done,
            StepChange::End(Ending::new(Terminal::Complete, "already deployed"))
        );
        // Stopping (abort, another's failure) lets a running step finish.
        let going = step(&rules, SwDeployPhase::CreateVim, SwDeployResult::Next, true);
        assert!(matches!(
            going,
            StepChange::Begin {
                phase: SwDeployPhase::ApplyVim,
                ..
            }
        ));
        assert_eq!(
            rules.timed_out(SwDeployPhase::CreateVim, "s"),
            SwDeployResult::Failed("Timeout building VIM strategy.".into())
        );
        assert_eq!(progress_details("apply", 43), "apply phase is 43% complete");
    }
}
