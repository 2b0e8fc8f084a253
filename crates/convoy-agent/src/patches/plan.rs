//! Decisions about a change, as pure functions over what is installed: what an
//! `install-patches` command actually has to do, whether the host must be locked for it, the
//! order `install-local` installs files in, and whether a patch may go on top of the others.

use std::collections::{BTreeMap, BTreeSet};

use convoy_api::patches::{InstallPatches, PatchToChange};
use convoy_core::patch::PatchId;

use super::state::InstalledPatch;

/// sw-patch's refusal, word for word (spec/patching.md §2.4, host-install-async).
pub const NODE_MUST_BE_LOCKED: &str = "Node must be locked.";

/// One patch of a command, its id checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: PatchId,
    pub reboot_required: bool,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// What a command changes: the removals and installs not already done, in the command's
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub remove: Vec<Step>,
    pub install: Vec<Step>,
}

/// Why a command is refused before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A reboot-required change on an unlocked host, not forced.
    NodeMustBeLocked,
    /// The payload names a patch id that is not valid.
    BadPayload(String),
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::NodeMustBeLocked => NODE_MUST_BE_LOCKED.to_string(),
            Refusal::BadPayload(reason) => format!("bad install-patches payload: {reason}"),
        }
    }
}

/// The work of `request` on a host with `installed`: removals of installed patches and
/// installs of patches not installed (after the removals). Refused if any of that work is
/// reboot-required while the host is unlocked and the request is not forced.
pub fn plan(request: &InstallPatches, installed: &BTreeSet<PatchId>) -> Result<Plan, Refusal> {
    let step = |p: &PatchToChange| -> Result<Step, Refusal> {
        let id = PatchId::parse("id", &p.id).map_err(|e| Refusal::BadPayload(e.to_string()))?;
        Ok(Step {
            id,
            reboot_required: p.reboot_required,
            sha256: p.sha256.clone(),
            size: p.size,
        })
    };
    let mut after = installed.clone();
    let mut plan = Plan::default();
    for p in &request.remove {
        let step = step(p)?;
        if after.remove(&step.id) {
            plan.remove.push(step);
        }
    }
    for p in &request.install {
        let step = step(p)?;
        if after.insert(step.id.clone()) {
            plan.install.push(step);
        }
    }
    let reboot_required = plan
        .remove
        .iter()
        .chain(&plan.install)
        .any(|s| s.reboot_required);
    check_lock(reboot_required, request.force, request.host_locked)?;
    Ok(plan)
}

/// The lock rule: reboot-required work needs a locked host unless forced.
pub fn check_lock(reboot_required: bool, force: bool, host_locked: bool) -> Result<(), Refusal> {
    if reboot_required && !host_locked && !force {
        Err(Refusal::NodeMustBeLocked)
    } else {
        Ok(())
    }
}

/// The order to install patches given together, requirements first (ties in the order
/// given). Each requirement must be given or already installed.
pub fn install_order(
    given: &[(PatchId, Vec<PatchId>)],
    installed: &BTreeSet<PatchId>,
) -> Result<Vec<usize>, String> {
    let mut index = BTreeMap::new();
    for (i, (id, _)) in given.iter().enumerate() {
        if index.insert(id, i).is_some() {
            return Err(format!("{id} is given twice"));
        }
    }
    for (id, requires) in given {
        if let Some(missing) = requires
            .iter()
            .find(|r| !index.contains_key(r) && !installed.contains(*r))
        {
            return Err(format!(
                "{id} requires {missing}, which is neither given nor installed; give its file too"
            ));
        }
    }
    let mut order = Vec::with_capacity(given.len());
    let mut placed = vec![false; given.len()];
    while order.len() < given.len() {
        let ready = (0..given.len()).find(|&i| {
            !placed[i]
                && given[i]
                    .1
                    .iter()
                    .all(|r| index.get(r).is_none_or(|&j| placed[j]))
        });
        let Some(i) = ready else {
            let stuck: Vec<String> = (0..given.len())
                .filter(|&i| !placed[i])
                .map(|i| given[i].0.to_string())
                .collect();
            return Err(format!(
                "{} require each other; a patch cannot be installed before its requirements",
                stuck.join(", ")
            ));
        };
        placed[i] = true;
        order.push(i);
    }
    Ok(order)
}

/// Whether `id` (requiring `requires`) may install files at `paths` on top of the installed
/// patches: a path another patch installed may only be replaced by a patch that requires it,
/// directly or through others, so that removals (dependents first) unstack them in order.
pub fn check_overlap<'a>(
    id: &PatchId,
    requires: &[PatchId],
    paths: impl IntoIterator<Item = &'a str>,
    installed: &BTreeMap<PatchId, InstalledPatch>,
) -> Result<(), String> {
    let mut below = BTreeSet::new();
    let mut todo: Vec<&PatchId> = requires.iter().collect();
    while let Some(r) = todo.pop() {
        if below.insert(r.clone())
            && let Some(record) = installed.get(r)
        {
            todo.extend(&record.requires);
        }
    }
    let owners: BTreeMap<&str, &PatchId> = installed
        .iter()
        .flat_map(|(owner, record)| {
            record
                .changes
                .files
                .iter()
                .map(move |f| (f.path.as_str(), owner))
        })
        .collect();
    for path in paths {
        if let Some(owner) = owners.get(path)
            && !below.contains(*owner)
        {
            return Err(format!(
                "{path} is installed by patch {owner}, which {id} does not require; remove {owner} first"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patches::files::{FileChange, FileChanges, Prior};

    fn id(s: &str) -> PatchId {
        s.parse().unwrap()
    }

    fn change(id: &str, rr: bool) -> PatchToChange {
        PatchToChange {
            id: id.into(),
            reboot_required: rr,
            sha256: None,
            size: None,
        }
    }

    fn request(remove: &[(&str, bool)], install: &[(&str, bool)]) -> InstallPatches {
        InstallPatches {
            remove: remove.iter().map(|(i, rr)| change(i, *rr)).collect(),
            install: install.iter().map(|(i, rr)| change(i, *rr)).collect(),
            force: false,
            host_locked: false,
        }
    }

    fn ids(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn only_work_not_yet_done_is_planned_in_the_given_order() {
        let installed = [id("A"), id("C")].into();
        let plan = plan(
            &request(
                &[("C", false), ("X", false)],
                &[("A", false), ("B", false), ("D", false)],
            ),
            &installed,
        )
        .unwrap();
        assert_eq!(ids(&plan.remove), ["C"]);
        assert_eq!(ids(&plan.install), ["B", "D"]);
    }

    #[test]
    fn reboot_required_work_on_an_unlocked_host_needs_force() {
        let installed = [id("OLD")].into();
        let rr_install = request(&[], &[("A", true)]);
        assert_eq!(
            plan(&rr_install, &installed),
            Err(Refusal::NodeMustBeLocked)
        );
        assert_eq!(Refusal::NodeMustBeLocked.message(), "Node must be locked.");
        let rr_remove = request(&[("OLD", true)], &[]);
        assert_eq!(plan(&rr_remove, &installed), Err(Refusal::NodeMustBeLocked));
        let forced = InstallPatches {
            force: true,
            ..rr_install.clone()
        };
        assert!(plan(&forced, &installed).is_ok());
        let locked = InstallPatches {
            host_locked: true,
            ..rr_install
        };
        assert!(plan(&locked, &installed).is_ok());
        // In-service patches install on unlocked hosts; work already done does not count.
        assert!(plan(&request(&[], &[("B", false)]), &installed).is_ok());
        assert!(plan(&request(&[], &[("OLD", true)]), &installed).is_ok());
    }

    #[test]
    fn a_bad_id_is_refused() {
        let err = plan(&request(&[], &[("../x", false)]), &BTreeSet::new()).unwrap_err();
        assert!(matches!(err, Refusal::BadPayload(_)), "{err:?}");
    }

    #[test]
    fn requirements_install_first() {
        let given = vec![
            (id("C"), vec![id("B")]),
            (id("A"), vec![]),
            (id("B"), vec![id("A"), id("BASE")]),
        ];
        let installed = [id("BASE")].into();
        let order = install_order(&given, &installed).unwrap();
        let names: Vec<_> = order.iter().map(|&i| given[i].0.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);

        let err = install_order(&given, &BTreeSet::new()).unwrap_err();
        assert!(
            err.starts_with("B requires BASE, which is neither given"),
            "{err}"
        );
        let cycle = vec![(id("X"), vec![id("Y")]), (id("Y"), vec![id("X")])];
        let err = install_order(&cycle, &BTreeSet::new()).unwrap_err();
        assert!(err.starts_with("X, Y require each other"), "{err}");
        let twice = vec![(id("X"), vec![]), (id("X"), vec![])];
        assert_eq!(
            install_order(&twice, &BTreeSet::new()).unwrap_err(),
            "X is given twice"
        );
    }

    #[test]
    fn a_file_of_another_patch_is_replaced_only_by_a_patch_that_requires_it() {
        let record = |requires: &[&str], path: &str| InstalledPatch {
            sw_version: "25.09".parse().unwrap(),
            reboot_required: false,
            requires: requires.iter().map(|r| id(r)).collect(),
            changes: FileChanges {
                files: vec![FileChange {
                    path: path.into(),
                    prior: Prior::Absent,
                }],
                created_dirs: vec![],
            },
            pre_remove: false,
            unremovable: false,
            installed_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let installed: BTreeMap<_, _> = [
            (id("A"), record(&[], "etc/a")),
            (id("B"), record(&["A"], "etc/b")),
        ]
        .into();
        // C requires B, which requires A: both files may be stacked on.
        assert!(check_overlap(&id("C"), &[id("B")], ["etc/a", "etc/b"], &installed).is_ok());
        let err = check_overlap(&id("D"), &[], ["etc/new", "etc/a"], &installed).unwrap_err();
        assert_eq!(
            err,
            "etc/a is installed by patch A, which D does not require; remove A first"
        );
    }
}
