//! The sw-patch operations that change the repository (spec/patching.md §2.4), as pure
//! decisions: upload (import), apply, remove, delete and commit.
//!
//! Each takes the repository and the request and returns either an [`Outcome`] (the changes
//! to persist, in a dependency-respecting order, and the lines to show) or a [`Refusal`]
//! (nothing changes). Requests are de-duplicated and sorted first. Checks run in sw-patch's
//! order and each refusal lists every patch failing that check.
//!
//! Together they keep one invariant: an applied patch's requirements are applied and a
//! committed patch's are committed ([`super::dependencies::unmet_requirements`] is empty).

use std::collections::{BTreeMap, BTreeSet};

use super::dependencies::{apply_order, find_cycle, remove_order, unknown_ids, with_requirements};
use super::outcome::{Change, Notice, Outcome, Refusal};
use super::state::PatchState;
use super::{PatchId, PatchMetadata, PatchStatus, Release, RepoState, Repository};

/// Which patches an `apply` is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(Vec<PatchId>),
    /// `--all`: every `Available` patch.
    All,
}

/// An `apply` as the controller received it, with what it knows of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRequest {
    pub patches: Selection,
    /// The release the site runs; `apply_active_release_only` patches must be for it.
    pub running_release: Release,
    /// Some host's agent is installing ([`super::state::any_installing`]).
    pub hosts_installing: bool,
}

/// A `remove` as the controller received it, with what it knows of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveRequest {
    pub ids: Vec<PatchId>,
    /// Remove unremovable patches too, with a warning (sw-patch's hidden
    /// `--removeunremovable`).
    pub remove_unremovable: bool,
    /// Ignore the dependencies applications reported (`--skipappcheck`).
    pub skip_app_check: bool,
    /// Some host's agent is installing ([`super::state::any_installing`]).
    pub hosts_installing: bool,
}

/// The patches each application reported it depends on (`report-app-dependencies`).
pub type AppDependencies = BTreeMap<String, BTreeSet<PatchId>>;

/// Upload of a verified bundle's metadata.
///
/// - a new id: validated, refused if its requirements would form a cycle, else added
///   `Available` ("`<id>` is now available"); requirements not uploaded yet are allowed;
///   `apply` refuses the patch until they are;
/// - a committed id: nothing changes ("`<id>` is committed. Metadata not updated");
/// - another held id: a metadata-only update ("`<id>` is already imported. Updated metadata
///   only"), refused when release or contents differ ("Contents of `<id>` do not match
///   re-imported patch"; the caller also compares the payload's digests and refuses with
///   [`Refusal::ContentsDiffer`] itself), when its requirements would form a cycle, or when
///   the patch is applied and a new requirement is not.
pub fn import(repo: &Repository, metadata: &PatchMetadata) -> Result<Outcome, Refusal> {
    let id = &metadata.id;
    if let Err(errors) = metadata.validate() {
        return Err(Refusal::InvalidMetadata {
            id: id.clone(),
            errors,
        });
    }
    let existing = repo.get(id);
    if let Some(entry) = existing {
        if entry.state == RepoState::Committed {
            return Ok(Outcome {
                info: vec![Notice::CommittedNotUpdated(id.clone())],
                ..Outcome::default()
            });
        }
        if entry.metadata.sw_version != metadata.sw_version
            || entry.metadata.contents != metadata.contents
        {
            return Err(Refusal::ContentsDiffer(id.clone()));
        }
    }
    if let Some(cycle) = find_cycle(repo, metadata) {
        return Err(Refusal::RequirementCycle {
            id: id.clone(),
            cycle,
        });
    }
    match existing {
        None => Ok(Outcome {
            changes: vec![Change::Add(Box::new(metadata.clone()))],
            info: vec![Notice::NowAvailable(id.clone())],
            warnings: vec![],
        }),
        Some(entry) => {
            if entry.state == RepoState::Applied {
                let missing: Vec<PatchId> = metadata
                    .requires
                    .iter()
                    .filter(|req| !repo.get(*req).is_some_and(|r| r.state.is_in_repo()))
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if !missing.is_empty() {
                    return Err(Refusal::RequirementsNotApplied {
                        id: id.clone(),
                        missing,
                    });
                }
            }
            Ok(Outcome {
                changes: vec![Change::ReplaceMetadata(Box::new(metadata.clone()))],
                info: vec![Notice::MetadataUpdated(id.clone())],
                warnings: vec![],
            })
        }
    }
}

/// `apply`: moves `Available` patches to `Applied`, requirements first.
///
/// Refused, in this order: while a host is installing; for unknown ids; for
/// `apply_active_release_only` patches of another release; when a requirement outside the
/// request is not applied (or not held). Patches already applied or committed are reported
/// ("`<id>` is already in the repo") and left alone. `--all` with nothing available answers
/// "There are no available patches to be applied."
pub fn apply(repo: &Repository, request: &ApplyRequest) -> Result<Outcome, Refusal> {
    if request.hosts_installing {
        return Err(Refusal::HostsInstalling);
    }
    let ids: BTreeSet<PatchId> = match &request.patches {
        Selection::Ids(ids) => {
            let unknown = unknown_ids(repo, ids);
            if !unknown.is_empty() {
                return Err(Refusal::DoesNotExist(unknown));
            }
            ids.iter().cloned().collect()
        }
        Selection::All => {
            let available: BTreeSet<PatchId> = repo
                .iter()
                .filter(|(_, entry)| entry.state == RepoState::Available)
                .map(|(id, _)| id.clone())
                .collect();
            if available.is_empty() {
                return Ok(Outcome {
                    info: vec![Notice::NoAvailablePatches],
                    ..Outcome::default()
                });
            }
            available
        }
    };

    let wrong_release: Vec<PatchId> = ids
        .iter()
        .filter(|id| {
            let m = &repo[*id].metadata;
            m.apply_active_release_only && m.sw_version != request.running_release
        })
        .cloned()
        .collect();
    if !wrong_release.is_empty() {
        return Err(Refusal::CannotApplyInUpgrade(wrong_release));
    }

    let mut missing: BTreeMap<PatchId, BTreeSet<PatchId>> = BTreeMap::new();
    for id in &ids {
        for req in &repo[id].metadata.requires {
            let met = ids.contains(req) || repo.get(req).is_some_and(|r| r.state.is_in_repo());
            if !met {
                missing.entry(req.clone()).or_default().insert(id.clone());
            }
        }
    }
    if !missing.is_empty() {
        return Err(Refusal::RequiredBy(missing));
    }

    let mut outcome = Outcome::default();
    for id in apply_order(repo, &ids) {
        let from = repo[&id].state;
        if from.is_in_repo() {
            outcome.info.push(Notice::AlreadyInRepo(id));
        } else {
            outcome.info.push(Notice::NowInRepo(id.clone()));
            outcome.changes.push(Change::SetState {
                id,
                from,
                to: RepoState::Applied,
            });
        }
    }
    Ok(outcome)
}

/// `remove`: moves `Applied` patches back to `Available`, dependents first.
///
/// Refused, in this order: while a host is installing; for unknown ids; for committed
/// patches; for unremovable ones (unless `remove_unremovable`, which warns "Unremovable patch
/// `<id>` being removed"); when an applied patch outside the request requires one; when an
/// application depends on one (unless `skip_app_check`). Patches not applied are reported
/// ("`<id>` is not in the repo") and left alone.
pub fn remove(
    repo: &Repository,
    request: &RemoveRequest,
    apps: &AppDependencies,
) -> Result<Outcome, Refusal> {
    if request.hosts_installing {
        return Err(Refusal::HostsInstalling);
    }
    let unknown = unknown_ids(repo, &request.ids);
    if !unknown.is_empty() {
        return Err(Refusal::DoesNotExist(unknown));
    }
    let ids: BTreeSet<PatchId> = request.ids.iter().cloned().collect();

    // sw-patch checks unremovable before committed, and with `removeunremovable` would then
    // try to remove a committed patch; committed is final here.
    let committed = filter(&ids, |id| repo[id].state == RepoState::Committed);
    if !committed.is_empty() {
        return Err(Refusal::CommittedCannotBeRemoved(committed));
    }
    let unremovable = filter(&ids, |id| repo[id].metadata.unremovable);
    let mut warnings = Vec::new();
    if !unremovable.is_empty() {
        if !request.remove_unremovable {
            return Err(Refusal::NotRemovable(unremovable));
        }
        warnings.extend(unremovable.into_iter().map(Notice::UnremovableRemoved));
    }

    let mut still_required: BTreeMap<PatchId, BTreeSet<PatchId>> = BTreeMap::new();
    for (other, entry) in repo {
        if ids.contains(other) || !entry.state.is_in_repo() {
            continue;
        }
        for req in entry.metadata.requires.iter().filter(|r| ids.contains(*r)) {
            still_required
                .entry(req.clone())
                .or_default()
                .insert(other.clone());
        }
    }
    if !still_required.is_empty() {
        return Err(Refusal::RequiredBy(still_required));
    }

    if !request.skip_app_check {
        let mut used: BTreeMap<PatchId, BTreeSet<String>> = BTreeMap::new();
        for (app, patches) in apps {
            for id in patches.iter().filter(|p| ids.contains(*p)) {
                used.entry(id.clone()).or_default().insert(app.clone());
            }
        }
        if !used.is_empty() {
            return Err(Refusal::RequiredByApplications(used));
        }
    }

    let mut outcome = Outcome {
        warnings,
        ..Outcome::default()
    };
    for id in remove_order(repo, &ids) {
        let from = repo[&id].state;
        if from == RepoState::Available {
            outcome.info.push(Notice::NotInRepo(id));
        } else {
            outcome.info.push(Notice::RemovedFromRepo(id.clone()));
            outcome.changes.push(Change::SetState {
                id,
                from,
                to: RepoState::Available,
            });
        }
    }
    Ok(outcome)
}

/// `delete`: forgets patches that are `Available` in the repository and on every host
/// (patch state `Available`, or `n/a` with no hosts; a patch missing from `states` counts as
/// `n/a`). Refused for unknown ids, then for any other patch ("Patch `<id>` not in Available
/// state").
pub fn delete(
    repo: &Repository,
    states: &BTreeMap<PatchId, PatchState>,
    ids: &[PatchId],
) -> Result<Outcome, Refusal> {
    let unknown = unknown_ids(repo, ids);
    if !unknown.is_empty() {
        return Err(Refusal::DoesNotExist(unknown));
    }
    let ids: BTreeSet<PatchId> = ids.iter().cloned().collect();
    let busy = filter(&ids, |id| {
        let state = states.get(id).copied().unwrap_or(PatchState::Unknown);
        repo[id].state != RepoState::Available
            || !matches!(state, PatchState::Available | PatchState::Unknown)
    });
    if !busy.is_empty() {
        return Err(Refusal::NotAvailable(busy));
    }
    Ok(Outcome {
        changes: ids.iter().cloned().map(Change::Delete).collect(),
        info: ids.into_iter().map(Notice::Deleted).collect(),
        warnings: vec![],
    })
}

/// `commit`: makes the patches and everything they require, recursively, `Committed`,
/// requirements first. Irreversible.
///
/// Refused, in sw-patch's order: while any patch of the site (not only of the request) is not
/// `REL`; for unknown ids; while a patch of the commit is not `Applied` (or already
/// `Committed`) on every host, per `states` (a required id the repository does not hold is
/// not applied). A dry run is the same call with the outcome not persisted; its line is
/// [`Notice::WouldFree`], measured by the caller.
pub fn commit(
    repo: &Repository,
    states: &BTreeMap<PatchId, PatchState>,
    ids: &[PatchId],
) -> Result<Outcome, Refusal> {
    let not_released: Vec<PatchId> = repo
        .iter()
        .filter(|(_, entry)| entry.metadata.status != PatchStatus::Released)
        .map(|(id, _)| id.clone())
        .collect();
    if !not_released.is_empty() {
        return Err(Refusal::NonReleasedInSystem(not_released));
    }
    let unknown = unknown_ids(repo, ids);
    if !unknown.is_empty() {
        return Err(Refusal::Unrecognized(unknown));
    }
    let closure = with_requirements(repo, ids, true);
    let not_applied = filter(&closure, |id| {
        !matches!(
            states.get(id),
            Some(PatchState::Applied | PatchState::Committed)
        )
    });
    if !not_applied.is_empty() {
        return Err(Refusal::NotApplied(not_applied));
    }
    let changes = apply_order(repo, &closure)
        .into_iter()
        .filter(|id| repo.get(id).map(|e| e.state) == Some(RepoState::Applied))
        .map(|id| Change::SetState {
            id,
            from: RepoState::Applied,
            to: RepoState::Committed,
        })
        .collect();
    Ok(Outcome {
        changes,
        info: vec![Notice::Committed],
        warnings: vec![],
    })
}

fn filter(ids: &BTreeSet<PatchId>, keep: impl Fn(&PatchId) -> bool) -> Vec<PatchId> {
    ids.iter().filter(|id| keep(id)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::dependencies::tests::{id, meta, repo};
    use crate::patch::dependencies::unmet_requirements;
    use RepoState::{Applied, Available, Committed};

    fn ids(list: &[&str]) -> Vec<PatchId> {
        list.iter().map(|s| id(s)).collect()
    }

    fn apply_ids(r: &Repository, list: &[&str]) -> Result<Outcome, Refusal> {
        apply(
            r,
            &ApplyRequest {
                patches: Selection::Ids(ids(list)),
                running_release: "25.09".parse().unwrap(),
                hosts_installing: false,
            },
        )
    }

    fn remove_request(list: &[&str]) -> RemoveRequest {
        RemoveRequest {
            ids: ids(list),
            remove_unremovable: false,
            skip_app_check: false,
            hosts_installing: false,
        }
    }

    fn remove_ids(r: &Repository, list: &[&str]) -> Result<Outcome, Refusal> {
        remove(r, &remove_request(list), &AppDependencies::new())
    }

    fn text(outcome: &Outcome) -> Vec<String> {
        outcome.info.iter().map(ToString::to_string).collect()
    }

    fn refusal(result: Result<Outcome, Refusal>) -> String {
        result.unwrap_err().to_string()
    }

    /// A requires B requires C.
    fn chain(states: [RepoState; 3]) -> Repository {
        repo(&[
            ("A", &["B"], states[0]),
            ("B", &["C"], states[1]),
            ("C", &[], states[2]),
        ])
    }

    /// Runs the outcome on a copy of the repository and checks the invariant.
    fn after(r: &Repository, outcome: &Outcome) -> Repository {
        let mut next = r.clone();
        outcome.apply_to(&mut next);
        assert_eq!(unmet_requirements(&next), []);
        next
    }

    #[test]
    fn chain_applies_refused_out_of_order() {
        let r = chain([Available; 3]);
        assert_eq!(refusal(apply_ids(&r, &["A"])), "B is required by: A");
        assert_eq!(refusal(apply_ids(&r, &["A", "B"])), "C is required by: B");
        assert_eq!(refusal(apply_ids(&r, &["B"])), "C is required by: B");
        assert_eq!(refusal(apply_ids(&r, &["A", "C"])), "B is required by: A");
    }

    #[test]
    fn chain_applies_accepted_one_by_one_and_together() {
        let mut r = chain([Available; 3]);
        for name in ["C", "B", "A"] {
            let outcome = apply_ids(&r, &[name]).unwrap();
            assert_eq!(text(&outcome), [format!("{name} is now in the repo")]);
            r = after(&r, &outcome);
        }
        assert!(r.values().all(|e| e.state == Applied));

        let r = chain([Available; 3]);
        let outcome = apply_ids(&r, &["A", "C", "B", "A"]).unwrap();
        assert_eq!(
            text(&outcome),
            [
                "C is now in the repo",
                "B is now in the repo",
                "A is now in the repo"
            ]
        );
        let moved: Vec<&PatchId> = outcome.moved().collect();
        assert_eq!(moved, [&id("C"), &id("B"), &id("A")]);
        after(&r, &outcome);
    }

    #[test]
    fn chain_removes_refused_out_of_order_and_accepted_together() {
        let r = chain([Applied; 3]);
        assert_eq!(refusal(remove_ids(&r, &["C"])), "C is required by: B");
        assert_eq!(refusal(remove_ids(&r, &["B"])), "B is required by: A");
        assert_eq!(refusal(remove_ids(&r, &["B", "C"])), "B is required by: A");

        let outcome = remove_ids(&r, &["C", "B", "A"]).unwrap();
        assert_eq!(
            text(&outcome),
            [
                "A has been removed from the repo",
                "B has been removed from the repo",
                "C has been removed from the repo"
            ]
        );
        let back = after(&r, &outcome);
        assert_eq!(back, chain([Available; 3]));

        // One by one, dependents first.
        let mut r = r;
        for name in ["A", "B", "C"] {
            r = after(&r, &remove_ids(&r, &[name]).unwrap());
        }
        assert_eq!(r, chain([Available; 3]));
    }

    #[test]
    fn apply_reports_unknown_ids_all_of_them() {
        let r = chain([Available; 3]);
        assert_eq!(
            refusal(apply_ids(&r, &["Z", "A", "Y"])),
            "Patch Y does not exist\nPatch Z does not exist"
        );
    }

    #[test]
    fn apply_leaves_applied_and_committed_patches_alone() {
        let r = chain([Available, Applied, Committed]);
        let outcome = apply_ids(&r, &["A", "B", "C"]).unwrap();
        assert_eq!(
            text(&outcome),
            [
                "C is already in the repo",
                "B is already in the repo",
                "A is now in the repo"
            ]
        );
        assert_eq!(outcome.changes.len(), 1);
    }

    #[test]
    fn apply_all_takes_every_available_patch_or_says_there_is_none() {
        let r = chain([Available, Available, Applied]);
        let all = ApplyRequest {
            patches: Selection::All,
            running_release: "25.09".parse().unwrap(),
            hosts_installing: false,
        };
        let outcome = apply(&r, &all).unwrap();
        assert_eq!(
            text(&outcome),
            ["B is now in the repo", "A is now in the repo"]
        );
        let done = after(&r, &outcome);
        let outcome = apply(&done, &all).unwrap();
        assert_eq!(
            text(&outcome),
            ["There are no available patches to be applied."]
        );
        assert!(outcome.changes.is_empty());
    }

    #[test]
    fn requirements_not_uploaded_block_apply() {
        let r = repo(&[("A", &["GONE"], Available), ("B", &["GONE"], Available)]);
        assert_eq!(
            refusal(apply_ids(&r, &["A", "B"])),
            "GONE is required by: A, B"
        );
    }

    #[test]
    fn apply_active_release_only_is_refused_during_an_upgrade() {
        let mut r = chain([Applied, Applied, Available]);
        let c = r.get_mut(&id("C")).unwrap();
        c.metadata.apply_active_release_only = true;
        let mut request = ApplyRequest {
            patches: Selection::Ids(ids(&["C"])),
            running_release: "26.03".parse().unwrap(),
            hosts_installing: false,
        };
        assert_eq!(
            refusal(apply(&r, &request)),
            "C cannot be applied in an upgrade"
        );
        request.running_release = "25.09".parse().unwrap();
        assert!(apply(&r, &request).is_ok());
    }

    #[test]
    fn apply_and_remove_wait_while_a_host_installs() {
        let r = chain([Available; 3]);
        let request = ApplyRequest {
            patches: Selection::Ids(ids(&["C"])),
            running_release: "25.09".parse().unwrap(),
            hosts_installing: true,
        };
        let expected = "Rejected: One or more nodes are installing patches.";
        assert_eq!(refusal(apply(&r, &request)), expected);
        let mut request = remove_request(&["C"]);
        request.hosts_installing = true;
        assert_eq!(
            refusal(remove(&r, &request, &AppDependencies::new())),
            expected
        );
    }

    #[test]
    fn remove_refuses_committed_and_unremovable_patches() {
        let mut r = chain([Applied, Applied, Committed]);
        assert_eq!(
            refusal(remove_ids(&r, &["A", "B", "C"])),
            "Patch C is committed and cannot be removed"
        );
        r.get_mut(&id("A")).unwrap().metadata.unremovable = true;
        r.get_mut(&id("B")).unwrap().metadata.unremovable = true;
        assert_eq!(
            refusal(remove_ids(&r, &["A", "B"])),
            "Patch A is not removable\nPatch B is not removable"
        );
        let mut request = remove_request(&["A"]);
        request.remove_unremovable = true;
        let outcome = remove(&r, &request, &AppDependencies::new()).unwrap();
        let warnings: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, ["Unremovable patch A being removed"]);
        assert_eq!(text(&outcome), ["A has been removed from the repo"]);
    }

    #[test]
    fn remove_respects_application_dependencies_unless_skipped() {
        let r = chain([Applied; 3]);
        let apps = AppDependencies::from([
            ("vault".to_string(), BTreeSet::from([id("A")])),
            (
                "cert-manager".to_string(),
                BTreeSet::from([id("A"), id("C")]),
            ),
        ]);
        assert_eq!(
            refusal(remove(&r, &remove_request(&["A"]), &apps)),
            "A is required by application(s): cert-manager, vault"
        );
        let mut request = remove_request(&["A"]);
        request.skip_app_check = true;
        assert!(remove(&r, &request, &apps).is_ok());
    }

    #[test]
    fn removing_an_available_patch_changes_nothing() {
        let r = chain([Available; 3]);
        let outcome = remove_ids(&r, &["A"]).unwrap();
        assert_eq!(text(&outcome), ["A is not in the repo"]);
        assert!(outcome.changes.is_empty());
        assert_eq!(refusal(remove_ids(&r, &["Q"])), "Patch Q does not exist");
    }

    #[test]
    fn delete_only_when_available_everywhere() {
        let r = chain([Available, Available, Applied]);
        let states = BTreeMap::from([
            (id("A"), PatchState::Available),
            (id("B"), PatchState::PartialRemove),
            (id("C"), PatchState::Applied),
        ]);
        assert_eq!(
            refusal(delete(&r, &states, &ids(&["C", "B", "A"]))),
            "Patch B not in Available state\nPatch C not in Available state"
        );
        assert_eq!(
            refusal(delete(&r, &states, &ids(&["X"]))),
            "Patch X does not exist"
        );
        let outcome = delete(&r, &states, &ids(&["A"])).unwrap();
        assert_eq!(text(&outcome), ["A has been deleted"]);
        let left = after(&r, &outcome);
        assert!(!left.contains_key(&id("A")));
        // With no hosts every patch state is n/a, which allows the delete.
        let unknown = BTreeMap::from([(id("B"), PatchState::Unknown)]);
        assert!(delete(&r, &unknown, &ids(&["B"])).is_ok());
    }

    #[test]
    fn commit_takes_the_requirements_along() {
        let r = chain([Applied, Applied, Committed]);
        let states = BTreeMap::from([
            (id("A"), PatchState::Applied),
            (id("B"), PatchState::Applied),
            (id("C"), PatchState::Committed),
        ]);
        let outcome = commit(&r, &states, &ids(&["A"])).unwrap();
        assert_eq!(text(&outcome), ["The patches have been committed."]);
        assert_eq!(
            outcome.changes,
            [
                Change::SetState {
                    id: id("B"),
                    from: Applied,
                    to: Committed
                },
                Change::SetState {
                    id: id("A"),
                    from: Applied,
                    to: Committed
                },
            ]
        );
        assert!(after(&r, &outcome).values().all(|e| e.state == Committed));
    }

    #[test]
    fn commit_refusals() {
        let mut r = chain([Applied, Applied, Applied]);
        let mut states = BTreeMap::from([
            (id("A"), PatchState::Applied),
            (id("B"), PatchState::PartialApply),
            (id("C"), PatchState::PartialApply),
        ]);
        assert_eq!(
            refusal(commit(&r, &states, &ids(&["A"]))),
            "The following patches are not applied and cannot be committed:\n    B\n    C"
        );
        assert_eq!(
            refusal(commit(&r, &states, &ids(&["A", "X"]))),
            "X is unrecognized"
        );
        // Any non-REL patch in the system blocks every commit, even an unrelated one.
        r.insert(
            id("DEV1"),
            crate::patch::RepoEntry {
                metadata: PatchMetadata {
                    status: PatchStatus::Development,
                    ..meta("DEV1", &[])
                },
                state: Available,
            },
        );
        states.insert(id("B"), PatchState::Applied);
        states.insert(id("C"), PatchState::Applied);
        assert_eq!(
            refusal(commit(&r, &states, &ids(&["A"]))),
            "A commit cannot be performed with non-REL status patches in the system:\n    DEV1"
        );
    }

    #[test]
    fn upload_adds_updates_or_keeps_committed_metadata() {
        let r = chain([Applied, Applied, Committed]);
        let outcome = import(&r, &meta("D", &["A"])).unwrap();
        assert_eq!(text(&outcome), ["D is now available"]);
        assert_eq!(after(&r, &outcome)[&id("D")].state, Available);

        let mut update = meta("A", &["B"]);
        update.summary = "New summary".into();
        let outcome = import(&r, &update).unwrap();
        assert_eq!(
            text(&outcome),
            ["A is already imported. Updated metadata only"]
        );
        let updated = after(&r, &outcome);
        assert_eq!(updated[&id("A")].metadata.summary, "New summary");
        assert_eq!(updated[&id("A")].state, Applied);

        let outcome = import(&r, &meta("C", &[])).unwrap();
        assert_eq!(text(&outcome), ["C is committed. Metadata not updated"]);
        assert!(outcome.changes.is_empty());
    }

    #[test]
    fn upload_refusals() {
        let r = chain([Applied, Applied, Available]);
        // C requiring A closes C -> A -> B -> C.
        assert_eq!(
            refusal(import(&r, &meta("C", &["A"]))),
            "Patch validation failed for C:\nrequires: C -> A -> B -> C is a cycle; \
             rebuild one of these patches without that requirement"
        );
        let mut moved = meta("A", &["B"]);
        moved.sw_version = "26.03".parse().unwrap();
        assert_eq!(
            refusal(import(&r, &moved)),
            "Contents of A do not match re-imported patch"
        );
        // A is applied; its new metadata may not require a patch that is not.
        assert_eq!(
            refusal(import(&r, &meta("A", &["B", "C", "NEW"]))),
            "Patch validation failed for A:\nrequires: A is applied but C, NEW would not be; \
             apply them first"
        );
        let mut bad = meta("E", &["E"]);
        bad.contents.clear();
        assert_eq!(
            refusal(import(&r, &bad)),
            "Patch validation failed for E:\nrequires: E must not require itself\n\
             contents: must name at least one personality; a patch that no host takes cannot be built"
        );
        // A requirement not uploaded yet is allowed at upload; apply refuses it later.
        assert!(import(&r, &meta("F", &["LATER"])).is_ok());
    }
}
