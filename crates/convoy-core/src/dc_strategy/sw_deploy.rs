//! A sw-deploy step on one subcloud (spec dcmanager-api.md §4.6): `sw-deploy pre-check` →
//! (with prestage: `prestage-precheck` → `prestaging-packages` → `prestaging-images`) →
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
    PrestagePrecheck,
    PrestagingPackages,
    PrestagingImages,
    CreateVim,
    ApplyVim,
    Finish,
}

impl DcPhase for SwDeployPhase {
    const ALL: &'static [SwDeployPhase] = &[
        SwDeployPhase::PreCheck,
        SwDeployPhase::PrestagePrecheck,
        SwDeployPhase::PrestagingPackages,
        SwDeployPhase::PrestagingImages,
        SwDeployPhase::CreateVim,
        SwDeployPhase::ApplyVim,
        SwDeployPhase::Finish,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SwDeployPhase::PreCheck => "sw-deploy pre-check",
            SwDeployPhase::PrestagePrecheck => "prestage-precheck",
            SwDeployPhase::PrestagingPackages => "prestaging-packages",
            SwDeployPhase::PrestagingImages => "prestaging-images",
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

/// The prestage phases, which only a strategy with prestage takes.
pub const PRESTAGE_PHASES: [SwDeployPhase; 3] = [
    SwDeployPhase::PrestagePrecheck,
    SwDeployPhase::PrestagingPackages,
    SwDeployPhase::PrestagingImages,
];

/// The rules with the original's timeouts (its poll counts times its poll intervals: create
/// 180 × 10 s, apply 400 × 60 s; the prestage playbooks' 3600 s, 7200 s for images) times
/// `scale`; without the prestage phases unless `with_prestage`.
pub fn sw_deploy_rules(scale: f64, with_prestage: bool) -> SwDeployRules {
    let s = |secs: u64| Duration::from_secs(secs).mul_f64(scale.max(0.0));
    let rules = DcRules::new(&[
        (SwDeployPhase::PreCheck, s(600)),
        (SwDeployPhase::PrestagePrecheck, s(600)),
        (SwDeployPhase::PrestagingPackages, s(3600)),
        (SwDeployPhase::PrestagingImages, s(7200)),
        (SwDeployPhase::CreateVim, s(1800)),
        (SwDeployPhase::ApplyVim, s(400 * 60)),
        (SwDeployPhase::Finish, s(600)),
    ]);
    if with_prestage {
        rules
    } else {
        rules.skipping(&PRESTAGE_PHASES)
    }
}

/// The progress the original shows in the step's details while the subcloud's strategy
/// applies: `<phase> phase is <pct>% complete`.
pub fn progress_details(phase: &str, percent: u64) -> String {
    format!("{phase} phase is {percent}% complete")
}

/// Whether a step's details are the progress of a subcloud's strategy (what
/// [`progress_details`] writes): the step has seen it applying.
pub fn shows_progress(details: &str) -> bool {
    details.contains(" phase is ") && details.ends_with("% complete")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_told_from_other_details() {
        assert!(shows_progress(&progress_details("apply", 0)));
        assert!(shows_progress(&progress_details("abort", 100)));
        assert!(!shows_progress(""));
        assert!(!shows_progress("prestaging-packages 100% (1.6/1.6 GiB)"));
        assert!(!shows_progress(
            "Release R is already deployed on the subcloud."
        ));
    }
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

    fn states(rules: &SwDeployRules) -> Vec<&'static str> {
        let mut phase = rules.first(1).unwrap();
        let mut seen = vec![phase.as_str()];
        loop {
            match step(rules, phase, SwDeployResult::Next, false) {
                StepChange::Begin { phase: p, .. } => {
                    phase = p;
                    seen.push(p.as_str());
                }
                StepChange::End(ending) => {
                    assert_eq!(ending.state, Terminal::Complete);
                    return seen;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_step_goes_through_the_originals_states_in_order() {
        let rules = sw_deploy_rules(1.0, false);
        assert_eq!(
            states(&rules),
            [
                "sw-deploy pre-check",
                "create VIM sw-deploy strategy",
                "apply VIM sw-deploy strategy",
                "finish sw-deploy strategy"
            ]
        );
        assert_eq!(
            states(&sw_deploy_rules(1.0, true)),
            [
                "sw-deploy pre-check",
                "prestage-precheck",
                "prestaging-packages",
                "prestaging-images",
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
        let rules = sw_deploy_rules(1.0, false);
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
