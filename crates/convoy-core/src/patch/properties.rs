//! Properties of the operations taken together: whatever sequence an operator runs, the
//! repository keeps its invariant and its graph stays acyclic; applying and then removing a
//! dependency-closed set returns to the start.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

use super::dependencies::tests::{arb_dag, dag_repo, id, meta, name};
use super::dependencies::{find_cycle, unmet_requirements, with_requirements};
use super::operations::{
    AppDependencies, ApplyRequest, RemoveRequest, Selection, apply, commit, delete, import, remove,
};
use super::state::{HostReport, Interim, patch_states};
use super::{AgentState, Change, Outcome, PatchId, PatchStatus, RepoState, Repository};
use crate::host::Personality;

/// One operator command, over patch indexes (taken modulo the repository size).
#[derive(Debug, Clone)]
enum Op {
    Apply(Vec<usize>),
    ApplyAll,
    Remove(Vec<usize>, bool),
    Delete(Vec<usize>),
    Commit(Vec<usize>),
    /// Re-upload patch `.0` requiring `.1` (may close a cycle or add an unmet requirement).
    Reimport(usize, Vec<usize>),
    /// Upload a new patch requiring `.0`, and maybe one that is not uploaded.
    Upload(Vec<usize>, bool),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let picks = || proptest::collection::vec(0usize..12, 1..4);
    prop_oneof![
        3 => picks().prop_map(Op::Apply),
        1 => Just(Op::ApplyAll),
        3 => (picks(), any::<bool>()).prop_map(|(p, force)| Op::Remove(p, force)),
        1 => picks().prop_map(Op::Delete),
        1 => picks().prop_map(Op::Commit),
        1 => (0usize..12, proptest::collection::vec(0usize..12, 0..3)).prop_map(|(p, r)| Op::Reimport(p, r)),
        1 => (proptest::collection::vec(0usize..12, 0..3), any::<bool>()).prop_map(|(r, ghost)| Op::Upload(r, ghost)),
    ]
}

/// The patch states a site with one controller that has installed everything would show.
fn converged_states(repo: &Repository) -> BTreeMap<PatchId, super::PatchState> {
    let host = HostReport {
        hostname: "controller-0".into(),
        personality: Personality::Controller,
        release: "25.09".parse().unwrap(),
        state: AgentState::Idle,
        installed: repo
            .iter()
            .filter(|(_, e)| e.state.is_in_repo())
            .map(|(id, _)| id.clone())
            .collect(),
        changed_since_boot: BTreeSet::new(),
    };
    patch_states(repo, &[host], &Interim::new())
}

fn pick(repo: &Repository, picks: &[usize]) -> Vec<PatchId> {
    let ids: Vec<&PatchId> = repo.keys().collect();
    picks.iter().map(|p| ids[p % ids.len()].clone()).collect()
}

fn run(repo: &Repository, op: &Op, counter: usize) -> Result<Outcome, super::Refusal> {
    let running_release = "25.09".parse().unwrap();
    match op {
        Op::Apply(p) => apply(
            repo,
            &ApplyRequest {
                patches: Selection::Ids(pick(repo, p)),
                running_release,
                hosts_installing: false,
            },
        ),
        Op::ApplyAll => apply(
            repo,
            &ApplyRequest {
                patches: Selection::All,
                running_release,
                hosts_installing: false,
            },
        ),
        Op::Remove(p, force) => remove(
            repo,
            &RemoveRequest {
                ids: pick(repo, p),
                remove_unremovable: *force,
                skip_app_check: false,
                hosts_installing: false,
            },
            &AppDependencies::new(),
        ),
        Op::Delete(p) => delete(repo, &converged_states(repo), &pick(repo, p)),
        Op::Commit(p) => commit(repo, &converged_states(repo), &pick(repo, p)),
        Op::Reimport(p, reqs) => {
            let target = pick(repo, &[*p]).remove(0);
            let mut metadata = repo[&target].metadata.clone();
            metadata.requires = pick(repo, reqs)
                .into_iter()
                .filter(|r| *r != target)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            import(repo, &metadata)
        }
        Op::Upload(reqs, ghost) => {
            let mut requires: BTreeSet<PatchId> = pick(repo, reqs).into_iter().collect();
            if *ghost {
                requires.insert(id("GHOST"));
            }
            let mut metadata = meta(&format!("N{counter}"), &[]);
            metadata.requires = requires.into_iter().collect();
            import(repo, &metadata)
        }
    }
}

/// The ids an operation may touch: what was asked for (and, for commit, what that requires).
fn allowed(repo: &Repository, op: &Op, outcome: &Outcome) -> BTreeSet<PatchId> {
    match op {
        Op::Apply(p) | Op::Remove(p, _) | Op::Delete(p) => pick(repo, p).into_iter().collect(),
        Op::Commit(p) => with_requirements(repo, &pick(repo, p), true),
        Op::ApplyAll | Op::Reimport(..) | Op::Upload(..) => {
            outcome.changes.iter().map(|c| c.id().clone()).collect()
        }
    }
}

proptest! {
    #[test]
    fn no_operation_leaves_an_applied_patch_without_its_requirements(
        dag in arb_dag(8),
        flags in proptest::collection::vec((any::<bool>(), proptest::bool::weighted(0.85)), 8),
        ops in proptest::collection::vec(arb_op(), 1..25),
    ) {
        let mut repo = dag_repo(&dag);
        for (entry, (unremovable, released)) in repo.values_mut().zip(&flags) {
            entry.metadata.unremovable = *unremovable;
            if !released {
                entry.metadata.status = PatchStatus::Development;
            }
        }
        for (i, op) in ops.iter().enumerate() {
            if repo.is_empty() {
                break;
            }
            let Ok(outcome) = run(&repo, op, i) else { continue };
            let allowed = allowed(&repo, op, &outcome);
            for change in &outcome.changes {
                prop_assert!(allowed.contains(change.id()), "{op:?} touched {}", change.id());
                if let Change::SetState { id, from, to } = change {
                    prop_assert_eq!(repo[id].state, *from, "{:?} starts from the held state", op);
                    // Committed is final; the only moves are apply, remove and commit.
                    prop_assert!(matches!(
                        (from, to),
                        (RepoState::Available, RepoState::Applied)
                            | (RepoState::Applied, RepoState::Available)
                            | (RepoState::Applied, RepoState::Committed)
                    ));
                }
            }
            outcome.apply_to(&mut repo);
            prop_assert_eq!(unmet_requirements(&repo), vec![], "after {:?}", op);
            for entry in repo.values() {
                prop_assert_eq!(find_cycle(&repo, &entry.metadata), None, "after {:?}", op);
            }
        }
    }

    #[test]
    fn apply_then_remove_of_a_dependency_closed_set_returns_to_the_start(
        dag in arb_dag(10),
        already in proptest::collection::btree_set(0usize..10, 0..4),
        wanted in proptest::collection::btree_set(0usize..10, 1..5),
        unremovable in proptest::collection::vec(any::<bool>(), 10),
    ) {
        let n = dag.len();
        let mut start = dag_repo(&dag);
        for (entry, flag) in start.values_mut().zip(&unremovable) {
            entry.metadata.unremovable = *flag;
        }
        // A valid start: some patches applied together with what they require.
        let applied = with_requirements(&start, &already.iter().map(|i| id(&name(i % n))).collect::<Vec<_>>(), true);
        for id in &applied {
            start.get_mut(id).unwrap().state = RepoState::Applied;
        }
        // Close the wanted set over its requirements that are not applied yet.
        let wanted: Vec<PatchId> = wanted.iter().map(|i| id(&name(i % n))).collect();
        let set: Vec<PatchId> = with_requirements(&start, &wanted, true)
            .into_iter()
            .filter(|id| start[id].state == RepoState::Available)
            .collect();
        if set.is_empty() {
            // Everything wanted is applied already; `prop_assume!` would reject too often.
            return Ok(());
        }

        let outcome = apply(&start, &ApplyRequest {
            patches: Selection::Ids(set.clone()),
            running_release: "25.09".parse().unwrap(),
            hosts_installing: false,
        }).unwrap();
        prop_assert_eq!(outcome.moved().count(), set.len());
        let mut repo = start.clone();
        outcome.apply_to(&mut repo);

        let outcome = remove(&repo, &RemoveRequest {
            ids: set.clone(),
            remove_unremovable: true,
            skip_app_check: false,
            hosts_installing: false,
        }, &AppDependencies::new()).unwrap();
        prop_assert_eq!(outcome.moved().count(), set.len());
        outcome.apply_to(&mut repo);
        prop_assert_eq!(repo, start);
    }

    #[test]
    fn a_set_that_is_not_closed_is_refused_and_names_the_missing_requirement(
        dag in arb_dag(10),
        wanted in proptest::collection::btree_set(0usize..10, 1..5),
    ) {
        let n = dag.len();
        let repo = dag_repo(&dag);
        let wanted: BTreeSet<PatchId> = wanted.iter().map(|i| id(&name(i % n))).collect();
        let closure = with_requirements(&repo, &wanted, true);
        let result = apply(&repo, &ApplyRequest {
            patches: Selection::Ids(wanted.iter().cloned().collect()),
            running_release: "25.09".parse().unwrap(),
            hosts_installing: false,
        });
        if closure == wanted {
            prop_assert!(result.is_ok());
        } else {
            let Err(super::Refusal::RequiredBy(missing)) = result else {
                return Err(TestCaseError::fail("expected a RequiredBy refusal"));
            };
            for (req, by) in missing {
                prop_assert!(!wanted.contains(&req));
                for patch in by {
                    prop_assert!(wanted.contains(&patch));
                    prop_assert!(repo[&patch].metadata.requires.contains(&req));
                }
            }
        }
    }
}
