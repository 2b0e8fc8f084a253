//! The abort phase (spec §4.3): what undoes an apply that stopped part-way. The stage that had
//! not finished gets a stage of the same name whose steps are the compensations of its steps,
//! from the step that was running (or last ran) back to the first: `lock-hosts` →
//! `unlock-hosts`, `stop-instances` → `start-instances`, `disable-host-services` →
//! `enable-host-services`; every other step (the install itself, a swact, a wait) has none.
//! So no host is left locked and no instance left stopped by the strategy.

use serde::{Deserialize, Serialize};

use super::durations::StepDurations;
use super::stages::{PlannedStage, PlannedStep, StepName};

/// The step that undoes `step`, if any, on the same entities, with its default timeout.
pub fn compensation(step: &PlannedStep, d: &StepDurations) -> Option<PlannedStep> {
    let name = match step.name {
        StepName::LockHosts => StepName::UnlockHosts,
        StepName::StopInstances => StepName::StartInstances,
        StepName::DisableHostServices => StepName::EnableHostServices,
        _ => return None,
    };
    let detail = match step.name {
        // The lock's wait parameters mean nothing to an unlock.
        StepName::LockHosts => super::stages::StepDetail::None,
        _ => step.detail.clone(),
    };
    Some(PlannedStep {
        name,
        timeout: name.default_timeout(d),
        entity_type: step.entity_type,
        entity_names: step.entity_names.clone(),
        detail,
    })
}

/// Where the apply phase stopped: the stage that had not finished (`stage`, its index) and
/// the step of it that was running or last ran (`step`, its index within the stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortPoint {
    pub stage: usize,
    pub step: usize,
}

/// The abort phase's stages: none when the apply stopped between stages (`at` is `None`) or
/// the unfinished stage's steps so far have no compensation; otherwise one stage named as the
/// unfinished one. Stages before `at.stage` finished, so there is nothing of theirs to undo.
/// An out-of-range `at` yields what its in-range part allows (never panics).
pub fn abort_stages(
    apply: &[PlannedStage],
    at: Option<AbortPoint>,
    d: &StepDurations,
) -> Vec<PlannedStage> {
    let Some(at) = at else {
        return Vec::new();
    };
    let Some(stage) = apply.get(at.stage) else {
        return Vec::new();
    };
    let last = at.step.min(stage.steps.len().saturating_sub(1));
    let steps: Vec<PlannedStep> = stage
        .steps
        .iter()
        .take(last + 1)
        .rev()
        .filter_map(|s| compensation(s, d))
        .collect();
    if steps.is_empty() {
        Vec::new()
    } else {
        vec![PlannedStage {
            name: stage.name,
            steps,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::build::{BuildConfig, build_sw_patch};
    use super::super::inventory::fixtures::*;
    use super::super::options::SwPatchOptions;
    use super::super::stages::EntityType;
    use super::*;
    use crate::host::Personality::*;
    use proptest::prelude::*;

    fn aio_dx_stage() -> PlannedStage {
        let s = site(vec![
            reboot(active(with_instances(
                host("controller-0", ControllerWorker),
                &["vm0"],
            ))),
            reboot(with_instances(
                host("controller-1", ControllerWorker),
                &["vm1"],
            )),
        ]);
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        build_sw_patch(
            &SwPatchOptions::default(),
            &s,
            1,
            &BuildConfig::default(),
            now,
        )
        .unwrap()
        .stages
        .remove(0)
    }

    #[test]
    fn a_failed_install_unlocks_and_restarts() {
        let stage = aio_dx_stage();
        let d = StepDurations::default();
        // sw-patch-hosts is step 4; it failed.
        let abort = abort_stages(
            std::slice::from_ref(&stage),
            Some(AbortPoint { stage: 0, step: 4 }),
            &d,
        );
        assert_eq!(abort.len(), 1);
        assert_eq!(abort[0].name, stage.name);
        assert_eq!(abort[0].step_names(), ["unlock-hosts", "start-instances"]);
        assert_eq!(abort[0].steps[0].entity_names, ["controller-0"]);
        assert_eq!(abort[0].steps[1].entity_type, EntityType::Instances);
        assert_eq!(abort[0].steps[1].entity_names, ["vm0"]);
        assert_eq!(abort[0].steps[0].timeout.as_secs(), 1800);
    }

    #[test]
    fn nothing_to_undo_before_any_change_or_between_stages() {
        let stage = aio_dx_stage();
        let d = StepDurations::default();
        let stages = std::slice::from_ref(&stage);
        // query-alarms and swact-hosts have no compensation.
        assert!(abort_stages(stages, Some(AbortPoint { stage: 0, step: 1 }), &d).is_empty());
        assert!(abort_stages(stages, None, &d).is_empty());
        assert!(abort_stages(stages, Some(AbortPoint { stage: 7, step: 0 }), &d).is_empty());
        // stop-instances running: start them again.
        let abort = abort_stages(stages, Some(AbortPoint { stage: 0, step: 2 }), &d);
        assert_eq!(abort[0].step_names(), ["start-instances"]);
    }

    proptest! {
        #[test]
        fn compensations_reverse_the_steps_applied(step in 0usize..12) {
            let stage = aio_dx_stage();
            let d = StepDurations::default();
            let abort = abort_stages(std::slice::from_ref(&stage), Some(AbortPoint { stage: 0, step }), &d);
            let applied = &stage.steps[..=step.min(stage.steps.len() - 1)];
            let expected: Vec<(StepName, Vec<String>)> = applied
                .iter()
                .rev()
                .filter_map(|s| compensation(s, &d).map(|c| (c.name, c.entity_names)))
                .collect();
            let got: Vec<(StepName, Vec<String>)> = abort
                .iter()
                .flat_map(|st| st.steps.iter().map(|s| (s.name, s.entity_names.clone())))
                .collect();
            prop_assert_eq!(&got, &expected);
            // Every host locked so far is unlocked, every instance stopped so far started.
            for s in applied {
                let undo = match s.name {
                    StepName::LockHosts => StepName::UnlockHosts,
                    StepName::StopInstances => StepName::StartInstances,
                    _ => continue,
                };
                for name in &s.entity_names {
                    prop_assert!(got.iter().any(|(n, e)| *n == undo && e.contains(name)));
                }
            }
        }
    }
}
