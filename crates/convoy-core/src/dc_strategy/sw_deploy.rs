//! A sw-deploy step on one subcloud (spec dcmanager-api.md §4.6): `sw-deploy pre-check` →
//! `create VIM sw-deploy strategy` → `apply VIM sw-deploy strategy` → `finish sw-deploy
//! strategy` → `complete`. Every phase is the System Controller's own work against the
//! subcloud's REST API, re-entrant, so a step resumed in its stored state after a restart
//! finds what it had done (the subcloud's strategy is reused, not made twice).

use std::time::Duration;

use super::rules::{DcPhase, DcRules};

pub use super::rules::DcStepResult as SwDeployResult;

/// A phase of a sw-deploy step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwDeployPhase {
    PreCheck,
    CreateVim,
    ApplyVim,
    Finish,
}

impl DcPhase for SwDeployPhase {
    const ALL: &'static [SwDeployPhase] = &[
        SwDeployPhase::PreCheck,
        SwDeployPhase::CreateVim,
        SwDeployPhase::ApplyVim,
        SwDeployPhase::Finish,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SwDeployPhase::PreCheck => "sw-deploy pre-check",
            SwDeployPhase::CreateVim => "create VIM sw-deploy strategy",
            SwDeployPhase::ApplyVim => "apply VIM sw-deploy strategy",
            SwDeployPhase::Finish => "finish sw-deploy strategy",
        }
    }

    fn timed_out(self, subcloud: &str) -> String {
        match self {
            SwDeployPhase::CreateVim => "Timeout building VIM strategy.".to_string(),
            SwDeployPhase::ApplyVim => {
                format!("Timeout applying VIM strategy on subcloud {subcloud}.")
            }
            other => format!("{} timed out on subcloud {subcloud}.", other.as_str()),
        }
    }
}

/// The rules of a sw-deploy strategy's steps.
pub type SwDeployRules = DcRules<SwDeployPhase>;

/// The rules with the original's timeouts (its poll counts times its poll intervals: create
/// 180 × 10 s, apply 400 × 60 s) times `scale`.
pub fn sw_deploy_rules(scale: f64) -> SwDeployRules {
    let s = |secs: u64| Duration::from_secs(secs).mul_f64(scale.max(0.0));
    DcRules::new(&[
        (SwDeployPhase::PreCheck, s(600)),
        (SwDeployPhase::CreateVim, s(1800)),
        (SwDeployPhase::ApplyVim, s(400 * 60)),
        (SwDeployPhase::Finish, s(600)),
    ])
}

/// The progress the original shows in the step's details while the subcloud's strategy
/// applies: `<phase> phase is <pct>% complete`.
pub fn progress_details(phase: &str, percent: u64) -> String {
    format!("{phase} phase is {percent}% complete")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kind::{Kind, StepChange, StepFacts, transition};
    use crate::strategy::{Ending, Terminal};

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
        let rules = sw_deploy_rules(1.0);
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
            assert_eq!(rules.parse_phase(1, p.as_str()), Some(*p));
        }
        assert_eq!(rules.timeout(SwDeployPhase::ApplyVim).as_secs(), 24_000);
    }

    #[test]
    fn failures_name_the_state_and_running_steps_are_not_stopped() {
        let rules = sw_deploy_rules(1.0);
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
