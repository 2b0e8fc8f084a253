//! Prestage (spec dcmanager-api.md §4.6, §5): a step that ships a release to one subcloud
//! ahead of its deploy, as a kind of the one engine: `prestage-precheck` →
//! `prestage-preparing-packages` → `prestaging-packages` → `prestaging-images` → `complete`.
//! The subcloud checks of the original with its exact messages, the preparation done once per
//! strategy (its failure fails every later step at once, without retrying it), and the
//! transfer's progress in the step's details.
//!
//! Pure: the System Controller's side reads the subcloud and performs the transfer.

use std::time::Duration;

use super::rules::{DcPhase, DcRules};

/// How a prestage phase ended: a skip (the original's `StrategySkippedException`) completes
/// the step with the skip message as its details.
pub use super::rules::DcStepResult as PrestageResult;

/// A phase of a prestage step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrestagePhase {
    Precheck,
    PreparingPackages,
    PrestagingPackages,
    PrestagingImages,
}

impl DcPhase for PrestagePhase {
    const ALL: &'static [PrestagePhase] = &[
        PrestagePhase::Precheck,
        PrestagePhase::PreparingPackages,
        PrestagePhase::PrestagingPackages,
        PrestagePhase::PrestagingImages,
    ];

    fn as_str(self) -> &'static str {
        match self {
            PrestagePhase::Precheck => "prestage-precheck",
            PrestagePhase::PreparingPackages => "prestage-preparing-packages",
            PrestagePhase::PrestagingPackages => "prestaging-packages",
            PrestagePhase::PrestagingImages => "prestaging-images",
        }
    }

    fn timed_out(self, subcloud: &str) -> String {
        format!("Prestage failed '{subcloud}': {} timed out", self.as_str())
    }
}

/// The rules of a prestage strategy's steps.
pub type PrestageRules = DcRules<PrestagePhase>;

/// The rules with the playbooks' timeouts (3600 s for packages, 7200 s for images) times
/// `scale`.
pub fn prestage_rules(scale: f64) -> PrestageRules {
    let s = |secs: u64| Duration::from_secs(secs).mul_f64(scale.max(0.0));
    DcRules::new(&[
        (PrestagePhase::Precheck, s(600)),
        (PrestagePhase::PreparingPackages, s(3600)),
        (PrestagePhase::PrestagingPackages, s(3600)),
        (PrestagePhase::PrestagingImages, s(7200)),
    ])
}

/// What the prestage checks read of a subcloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrestageSubcloud {
    pub name: String,
    pub online: bool,
    pub managed: bool,
    pub deploy_status: String,
    /// None when never prestaged.
    pub prestage_status: Option<String>,
    /// `MM.mm`.
    pub software_version: Option<String>,
    pub management_affecting_alarms: bool,
}

fn skipped(subcloud: &str, details: impl std::fmt::Display) -> PrestageResult {
    PrestageResult::Done(format!("Prestage skipped '{subcloud}': {details}"))
}

fn failed(subcloud: &str, details: impl std::fmt::Display) -> PrestageResult {
    PrestageResult::Failed(format!("Prestage failed '{subcloud}': {details}"))
}

/// The original's initial validation (`initial_subcloud_validate`), at create and in the
/// precheck: each refusal skips the subcloud.
pub fn initial_validate(s: &PrestageSubcloud) -> Result<(), PrestageResult> {
    if !s.online {
        return Err(skipped(&s.name, "Subcloud is offline."));
    }
    if !s.managed {
        return Err(skipped(&s.name, "Subcloud is not managed."));
    }
    if s.prestage_status.as_deref() == Some("prestaging") {
        return Err(skipped(
            &s.name,
            format!(
                "Subcloud {} current prestage_status is 'prestaging'. Please wait until it \
                 finishes before running this operation.",
                s.name
            ),
        ));
    }
    if !matches!(
        s.deploy_status.as_str(),
        "complete" | "sw-deploy-apply-strategy-failed"
    ) {
        return Err(skipped(
            &s.name,
            "Prestage operation is not allowed when subcloud deploy is in progress.",
        ));
    }
    if let Some(status) = s
        .prestage_status
        .as_deref()
        .filter(|p| !matches!(*p, "failed" | "complete"))
    {
        return Err(skipped(
            &s.name,
            format!(
                "Prestage operation is only allowed while subcloud prestage status is one of: \
                 failed, complete. The current prestage status is {status}."
            ),
        ));
    }
    Ok(())
}

/// `MM.mm` as numbers, for comparing versions.
fn version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The precheck's full validation (`validate_prestage_subcloud`): the initial checks, then for
/// a prestage for deploy a version not lower than the subcloud's, then no
/// management-affecting alarm unless forced, then room for the release in the subcloud's
/// prestage store (Convoy's own check: the original leaves it to its playbooks).
pub fn precheck(
    s: &PrestageSubcloud,
    requested: &str,
    for_sw_deploy: bool,
    force: bool,
    needed_bytes: u64,
    free_bytes: u64,
) -> Result<(), PrestageResult> {
    initial_validate(s)?;
    if for_sw_deploy
        && let Some(current) = s.software_version.as_deref()
        && version(requested) < version(current)
    {
        return Err(failed(
            &s.name,
            format!(
                "The requested software version ({requested}) is lower than the current \
                 subcloud software version ({current})."
            ),
        ));
    }
    if s.management_affecting_alarms && !force {
        return Err(failed(
            &s.name,
            "Subcloud has management affecting alarm(s). Please resolve the alarm \
             condition(s) or use --force option and try again.",
        ));
    }
    if needed_bytes > free_bytes {
        return Err(failed(
            &s.name,
            format!(
                "not enough free space in the subcloud's prestage store: {} needed, {} free.",
                gib(needed_bytes),
                gib(free_bytes)
            ),
        ));
    }
    Ok(())
}

/// The strategy's once-only preparation of the release's packages, as its steps see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preparation {
    /// Not done yet: the first step to reach `prestage-preparing-packages` does it.
    Pending,
    Ready,
    /// It failed: every later step fails at once with this reason, without retrying it.
    Failed(String),
}

/// What `prestage-preparing-packages` means for a step, given the strategy's preparation:
/// None while it is still to be done (the System Controller's side does it, once).
pub fn preparation_result(subcloud: &str, preparation: &Preparation) -> Option<PrestageResult> {
    match preparation {
        Preparation::Pending => None,
        Preparation::Ready => Some(PrestageResult::Next),
        Preparation::Failed(reason) => Some(failed(
            subcloud,
            format!("preparing the packages failed: {reason}"),
        )),
    }
}

/// `1.5 GiB`.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The transfer's progress in the step's details: `prestaging-packages 43% (2.1/4.9 GiB)`.
pub fn transfer_details(done: u64, total: u64) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "{} {percent}% ({:.1}/{:.1} GiB)",
        PrestagePhase::PrestagingPackages.as_str(),
        done as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kind::{Kind, StepChange, StepFacts, transition};
    use crate::strategy::{Ending, Terminal};

    fn subcloud() -> PrestageSubcloud {
        PrestageSubcloud {
            name: "subcloud1".into(),
            online: true,
            managed: true,
            deploy_status: "complete".into(),
            prestage_status: None,
            software_version: Some("25.09".into()),
            management_affecting_alarms: false,
        }
    }

    fn message(r: Result<(), PrestageResult>) -> String {
        match r.unwrap_err() {
            PrestageResult::Done(m) => format!("skip: {m}"),
            PrestageResult::Failed(m) => format!("fail: {m}"),
            PrestageResult::Next => "next".into(),
        }
    }

    #[test]
    fn subcloud_checks_in_the_originals_order_with_its_messages() {
        let s = subcloud();
        assert!(initial_validate(&s).is_ok());
        let mut offline = s.clone();
        offline.online = false;
        offline.managed = false;
        assert_eq!(
            message(initial_validate(&offline)),
            "skip: Prestage skipped 'subcloud1': Subcloud is offline."
        );
        let mut unmanaged = s.clone();
        unmanaged.managed = false;
        assert_eq!(
            message(initial_validate(&unmanaged)),
            "skip: Prestage skipped 'subcloud1': Subcloud is not managed."
        );
        let mut busy = s.clone();
        busy.prestage_status = Some("prestaging".into());
        assert!(
            message(initial_validate(&busy)).contains("current prestage_status is 'prestaging'")
        );
        let mut deploying = s.clone();
        deploying.deploy_status = "sw-deploy-in-progress".into();
        assert!(
            message(initial_validate(&deploying)).ends_with("when subcloud deploy is in progress.")
        );
        let mut odd = s.clone();
        odd.prestage_status = Some("prestage-prepare".into());
        assert!(
            message(initial_validate(&odd))
                .ends_with("The current prestage status is prestage-prepare.")
        );

        assert_eq!(
            message(precheck(&s, "24.09", true, false, 1, 2)),
            "fail: Prestage failed 'subcloud1': The requested software version (24.09) is lower \
             than the current subcloud software version (25.09)."
        );
        let mut alarmed = s.clone();
        alarmed.management_affecting_alarms = true;
        assert!(
            message(precheck(&alarmed, "25.09", true, false, 1, 2)).contains("use --force option")
        );
        assert!(precheck(&alarmed, "25.09", true, true, 1, 2).is_ok());
        assert!(
            message(precheck(&s, "25.09", true, false, 3 << 30, 1 << 30))
                .contains("3.0 GiB needed, 1.0 GiB free")
        );
    }

    #[test]
    fn a_step_goes_precheck_to_images_and_a_failed_preparation_fails_it_at_once() {
        let rules = prestage_rules(1.0);
        let step = |phase: PrestagePhase, result: PrestageResult| {
            let facts = StepFacts {
                target: "subcloud1",
                stage: 1,
                state: phase.as_str(),
                swept: false,
                pending_end: None,
                phase_started_at: None,
            };
            transition(
                &rules,
                &facts,
                phase,
                result,
                false,
                jiff::Timestamp::UNIX_EPOCH,
            )
            .change
        };
        let mut phase = rules.first(1).unwrap();
        let mut seen = vec![phase.as_str()];
        while let StepChange::Begin { phase: p, .. } = step(phase, PrestageResult::Next) {
            phase = p;
            seen.push(p.as_str());
        }
        assert_eq!(
            seen,
            [
                "prestage-precheck",
                "prestage-preparing-packages",
                "prestaging-packages",
                "prestaging-images"
            ]
        );
        assert_eq!(preparation_result("subcloud1", &Preparation::Pending), None);
        assert_eq!(
            preparation_result("subcloud1", &Preparation::Ready),
            Some(PrestageResult::Next)
        );
        let failed =
            preparation_result("subcloud2", &Preparation::Failed("no such release".into()))
                .unwrap();
        assert_eq!(
            step(PrestagePhase::PreparingPackages, failed),
            StepChange::End(Ending::new(
                Terminal::Failed,
                "prestage-preparing-packages: Prestage failed 'subcloud2': preparing the packages failed: no such release"
            ))
        );
        let skip = step(
            PrestagePhase::Precheck,
            PrestageResult::Done("Prestage skipped 'subcloud1': Subcloud is offline.".into()),
        );
        assert!(matches!(
            skip,
            StepChange::End(Ending {
                state: Terminal::Complete,
                ..
            })
        ));
        assert_eq!(
            transfer_details(43 << 24, 100 << 24),
            "prestaging-packages 43% (0.7/1.6 GiB)"
        );
    }
}
