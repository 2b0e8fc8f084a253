//! The dependency graph over `requires`: closures, the orders patches are applied and removed
//! in, `what-requires`, `query-dependencies`, and the cycle check run at upload.
//!
//! The graph is read straight from the [`Repository`]; a required id the repository does not
//! hold is a node with no requirements of its own. Every list is deterministic: ids sort
//! byte-wise and break every tie.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::outcome::{Notice, Refusal};
use super::{PatchId, PatchMetadata, RepoState, Repository};

/// The ids `id` requires directly; empty for an id the repository does not hold.
pub fn requirements<'a>(repo: &'a Repository, id: &PatchId) -> &'a [PatchId] {
    repo.get(id)
        .map(|entry| entry.metadata.requires.as_slice())
        .unwrap_or(&[])
}

/// The patches that require `id` directly, whatever their state, sorted.
pub fn required_by(repo: &Repository, id: &PatchId) -> Vec<PatchId> {
    repo.iter()
        .filter(|(_, entry)| entry.metadata.requires.contains(id))
        .map(|(other, _)| other.clone())
        .collect()
}

/// `ids` and what they require: directly, or with `recursive` everything reachable. Required
/// ids the repository does not hold are included (they are dependencies) but not followed.
pub fn with_requirements<'a>(
    repo: &Repository,
    ids: impl IntoIterator<Item = &'a PatchId>,
    recursive: bool,
) -> BTreeSet<PatchId> {
    let mut found: BTreeSet<PatchId> = ids.into_iter().cloned().collect();
    let mut frontier: Vec<PatchId> = found.iter().cloned().collect();
    while let Some(id) = frontier.pop() {
        for req in requirements(repo, &id) {
            if found.insert(req.clone()) && recursive {
                frontier.push(req.clone());
            }
        }
    }
    found
}

/// `query-dependencies`: the inputs and their requirements (direct, or transitive with
/// `recursive`), sorted. Refused with "`<id>` is unrecognized" for an unknown input.
pub fn query_dependencies(
    repo: &Repository,
    ids: &[PatchId],
    recursive: bool,
) -> Result<Vec<PatchId>, Refusal> {
    let unknown = unknown_ids(repo, ids);
    if !unknown.is_empty() {
        return Err(Refusal::Unrecognized(unknown));
    }
    Ok(with_requirements(repo, ids, recursive)
        .into_iter()
        .collect())
}

/// `what-requires`: for each input (sorted), the patches that require it directly, among all
/// patches whatever their state. Refused with "Patch `<id>` does not exist" for an unknown one.
pub fn what_requires(repo: &Repository, ids: &[PatchId]) -> Result<Vec<Notice>, Refusal> {
    let unknown = unknown_ids(repo, ids);
    if !unknown.is_empty() {
        return Err(Refusal::DoesNotExist(unknown));
    }
    let ids: BTreeSet<&PatchId> = ids.iter().collect();
    Ok(ids
        .into_iter()
        .map(|id| {
            let by = required_by(repo, id);
            if by.is_empty() {
                Notice::NotRequired(id.clone())
            } else {
                Notice::RequiredBy { id: id.clone(), by }
            }
        })
        .collect())
}

/// The inputs the repository does not hold, sorted and without duplicates.
pub(super) fn unknown_ids(repo: &Repository, ids: &[PatchId]) -> Vec<PatchId> {
    let unknown: BTreeSet<&PatchId> = ids.iter().filter(|id| !repo.contains_key(id)).collect();
    unknown.into_iter().cloned().collect()
}

/// `ids` in the order they are applied or installed: each after every patch it requires
/// among them, ties by id.
pub fn apply_order(repo: &Repository, ids: &BTreeSet<PatchId>) -> Vec<PatchId> {
    let before = |id: &PatchId| -> BTreeSet<PatchId> {
        requirements(repo, id)
            .iter()
            .filter(|req| *req != id && ids.contains(*req))
            .cloned()
            .collect()
    };
    order(ids, before)
}

/// `ids` in the order they are removed: each after every patch among them that requires it,
/// ties by id.
pub fn remove_order(repo: &Repository, ids: &BTreeSet<PatchId>) -> Vec<PatchId> {
    let mut dependents: BTreeMap<&PatchId, BTreeSet<PatchId>> = BTreeMap::new();
    for id in ids {
        for req in requirements(repo, id) {
            if req != id && ids.contains(req) {
                dependents.entry(req).or_default().insert(id.clone());
            }
        }
    }
    order(ids, |id| dependents.get(id).cloned().unwrap_or_default())
}

/// Kahn's algorithm with the smallest ready id first. A cycle (which [`find_cycle`] keeps out
/// of a repository) cannot hang it: what is left is appended in id order.
fn order(ids: &BTreeSet<PatchId>, before: impl Fn(&PatchId) -> BTreeSet<PatchId>) -> Vec<PatchId> {
    let mut waiting: BTreeMap<&PatchId, BTreeSet<PatchId>> =
        ids.iter().map(|id| (id, before(id))).collect();
    let mut out = Vec::with_capacity(ids.len());
    loop {
        let ready = waiting
            .iter()
            .find(|(_, blockers)| blockers.is_empty())
            .map(|(id, _)| (*id).clone());
        let Some(next) = ready else { break };
        waiting.remove(&next);
        for blockers in waiting.values_mut() {
            blockers.remove(&next);
        }
        out.push(next);
    }
    out.extend(waiting.into_keys().cloned());
    out
}

/// The cycle `candidate` would close if it joined the repository (or replaced its entry
/// there), as the path from it back to itself, e.g. `[A, B, A]`; the shortest one, the first
/// in id order among equals. Upload refuses such a patch, which keeps every repository
/// acyclic.
pub fn find_cycle(repo: &Repository, candidate: &PatchMetadata) -> Option<Vec<PatchId>> {
    let start = &candidate.id;
    let next = |id: &PatchId| -> Vec<PatchId> {
        let reqs = if id == start {
            candidate.requires.as_slice()
        } else {
            requirements(repo, id)
        };
        let sorted: BTreeSet<&PatchId> = reqs.iter().collect();
        sorted.into_iter().cloned().collect()
    };
    // Breadth first from the candidate: the first time it is reached again closes the
    // shortest cycle through it.
    let mut came_from: BTreeMap<PatchId, PatchId> = BTreeMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(id) = queue.pop_front() {
        for req in next(&id) {
            if req == *start {
                // Walk back from the closing edge to the start, then turn the path around.
                let mut path = vec![start.clone(), id.clone()];
                let mut at = &id;
                while let Some(prev) = came_from.get(at) {
                    path.push(prev.clone());
                    at = prev;
                }
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(&req) {
                came_from.insert(req.clone(), id.clone());
                queue.push_back(req);
            }
        }
    }
    None
}

/// Applied or committed patches with a requirement that is not applied (or not held at
/// all), as `(patch, requirement)` pairs; and committed patches with a requirement that is
/// not committed. Empty in every repository the operations of this module produce; a
/// controller can check its store with it at start.
pub fn unmet_requirements(repo: &Repository) -> Vec<(PatchId, PatchId)> {
    let mut unmet = Vec::new();
    for (id, entry) in repo {
        for req in &entry.metadata.requires {
            let req_state = repo.get(req).map(|r| r.state);
            let met = match entry.state {
                RepoState::Available => true,
                RepoState::Applied => {
                    matches!(req_state, Some(RepoState::Applied | RepoState::Committed))
                }
                RepoState::Committed => req_state == Some(RepoState::Committed),
            };
            if !met {
                unmet.push((id.clone(), req.clone()));
            }
        }
    }
    unmet
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::host::Personality;
    use crate::patch::{PatchStatus, RepoEntry};
    use proptest::prelude::*;

    pub fn id(s: &str) -> PatchId {
        s.parse().unwrap()
    }

    pub fn meta(name: &str, requires: &[&str]) -> PatchMetadata {
        PatchMetadata {
            id: id(name),
            sw_version: "25.09".parse().unwrap(),
            summary: String::new(),
            description: String::new(),
            install_instructions: String::new(),
            warnings: String::new(),
            status: PatchStatus::Released,
            unremovable: false,
            reboot_required: false,
            apply_active_release_only: false,
            requires: requires.iter().map(|r| id(r)).collect(),
            contents: BTreeMap::from([(Personality::Controller, vec![])]),
        }
    }

    pub fn repo(entries: &[(&str, &[&str], RepoState)]) -> Repository {
        entries
            .iter()
            .map(|(name, requires, state)| {
                (
                    id(name),
                    RepoEntry {
                        metadata: meta(name, requires),
                        state: *state,
                    },
                )
            })
            .collect()
    }

    fn ids(list: &[&str]) -> Vec<PatchId> {
        list.iter().map(|s| id(s)).collect()
    }

    fn set(list: &[&str]) -> BTreeSet<PatchId> {
        list.iter().map(|s| id(s)).collect()
    }

    /// A requires B requires C, and D requires C too.
    fn chain() -> Repository {
        use RepoState::Available;
        repo(&[
            ("A", &["B"], Available),
            ("B", &["C"], Available),
            ("C", &[], Available),
            ("D", &["C"], Available),
        ])
    }

    #[test]
    fn query_dependencies_direct_and_recursive() {
        let r = chain();
        assert_eq!(
            query_dependencies(&r, &ids(&["A"]), false),
            Ok(ids(&["A", "B"]))
        );
        assert_eq!(
            query_dependencies(&r, &ids(&["A"]), true),
            Ok(ids(&["A", "B", "C"]))
        );
        assert_eq!(
            query_dependencies(&r, &ids(&["D", "A", "D"]), false),
            Ok(ids(&["A", "B", "C", "D"]))
        );
        let err = query_dependencies(&r, &ids(&["Z", "A", "Y"]), true).unwrap_err();
        assert_eq!(err.to_string(), "Y is unrecognized\nZ is unrecognized");
    }

    #[test]
    fn unknown_requirements_are_listed_but_not_followed() {
        let r = repo(&[("A", &["GONE"], RepoState::Available)]);
        assert_eq!(
            query_dependencies(&r, &ids(&["A"]), true),
            Ok(ids(&["A", "GONE"]))
        );
    }

    #[test]
    fn what_requires_uses_sw_patch_lines() {
        let r = chain();
        let lines: Vec<String> = what_requires(&r, &ids(&["C", "A", "B"]))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "A is not required by any patches.",
                "B is required by: A",
                "C is required by: B, D",
            ]
        );
        let err = what_requires(&r, &ids(&["X"])).unwrap_err();
        assert_eq!(err.to_string(), "Patch X does not exist");
    }

    #[test]
    fn orders_respect_requirements_and_break_ties_by_id() {
        let r = chain();
        let all = set(&["A", "B", "C", "D"]);
        assert_eq!(apply_order(&r, &all), ids(&["C", "B", "A", "D"]));
        assert_eq!(remove_order(&r, &all), ids(&["A", "B", "D", "C"]));
        // Requirements outside the set do not constrain the order.
        assert_eq!(apply_order(&r, &set(&["A", "D"])), ids(&["A", "D"]));
    }

    #[test]
    fn a_cycle_in_a_broken_repository_does_not_hang_the_order() {
        let r = repo(&[
            ("A", &["B"], RepoState::Available),
            ("B", &["A"], RepoState::Available),
            ("C", &[], RepoState::Available),
        ]);
        assert_eq!(
            apply_order(&r, &set(&["A", "B", "C"])),
            ids(&["C", "A", "B"])
        );
    }

    #[test]
    fn cycles_are_found_through_the_candidate() {
        let r = chain();
        // C re-imported requiring A closes C -> A -> B -> C.
        assert_eq!(
            find_cycle(&r, &meta("C", &["A"])),
            Some(ids(&["C", "A", "B", "C"]))
        );
        assert_eq!(find_cycle(&r, &meta("C", &["C"])), Some(ids(&["C", "C"])));
        // The shortest cycle wins: C -> B -> C over C -> A -> B -> C.
        assert_eq!(
            find_cycle(&r, &meta("C", &["A", "B"])),
            Some(ids(&["C", "B", "C"]))
        );
        assert_eq!(find_cycle(&r, &meta("E", &["A", "D"])), None);
        assert_eq!(find_cycle(&r, &meta("C", &["D2"])), None);
    }

    #[test]
    fn unmet_requirements_finds_applied_patches_missing_their_requirements() {
        use RepoState::*;
        let r = repo(&[
            ("A", &["B"], Applied),
            ("B", &["C"], Available),
            ("C", &[], Committed),
            ("D", &["C", "GONE"], Committed),
            ("E", &["A"], Committed),
        ]);
        assert_eq!(
            unmet_requirements(&r),
            [
                (id("A"), id("B")),
                (id("D"), id("GONE")),
                (id("E"), id("A"))
            ]
        );
    }

    /// A random acyclic repository: patch `Pi` may only require `Pj` with `j < i`.
    pub fn arb_dag(max: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1..=max).prop_flat_map(|n| {
            (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
                .collect::<Vec<_>>()
        })
    }

    pub fn name(i: usize) -> String {
        format!("P{i}")
    }

    pub fn dag_repo(dag: &[Vec<usize>]) -> Repository {
        dag.iter()
            .enumerate()
            .map(|(i, reqs)| {
                let reqs: Vec<String> = reqs.iter().map(|j| name(*j)).collect();
                let reqs: Vec<&str> = reqs.iter().map(String::as_str).collect();
                let m = meta(&name(i), &reqs);
                (
                    m.id.clone(),
                    RepoEntry {
                        metadata: m,
                        state: RepoState::Available,
                    },
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn recursive_dependencies_are_the_sorted_transitive_closure(
            dag in arb_dag(10),
            picks in proptest::collection::vec(0usize..10, 1..4),
        ) {
            let r = dag_repo(&dag);
            let n = dag.len();
            let inputs: Vec<PatchId> = picks.iter().map(|p| id(&name(p % n))).collect();
            // Reachability by repeated relaxation, independent of the code under test.
            let mut reach = vec![vec![false; n]; n];
            for (i, reqs) in dag.iter().enumerate() {
                reach[i][i] = true;
                for j in reqs {
                    reach[i][*j] = true;
                }
            }
            for k in 0..n {
                for i in 0..n {
                    for j in 0..n {
                        if reach[i][k] && reach[k][j] {
                            reach[i][j] = true;
                        }
                    }
                }
            }
            let mut expected: Vec<PatchId> = (0..n)
                .filter(|j| picks.iter().any(|p| reach[p % n][*j]))
                .map(|j| id(&name(j)))
                .collect();
            expected.sort();
            let got = query_dependencies(&r, &inputs, true).unwrap();
            prop_assert_eq!(&got, &expected);
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
            // The direct query lies between the inputs and the closure.
            let direct = query_dependencies(&r, &inputs, false).unwrap();
            prop_assert!(direct.iter().all(|d| got.contains(d)));
            prop_assert!(inputs.iter().all(|i| direct.contains(i)));
        }

        #[test]
        fn orders_put_requirements_first_and_dependents_first(
            dag in arb_dag(10),
            members in proptest::collection::btree_set(0usize..10, 0..10),
        ) {
            let r = dag_repo(&dag);
            let subset: BTreeSet<PatchId> = members
                .iter()
                .filter(|m| **m < dag.len())
                .map(|m| id(&name(*m)))
                .collect();
            let applied = apply_order(&r, &subset);
            let removed = remove_order(&r, &subset);
            prop_assert_eq!(applied.iter().cloned().collect::<BTreeSet<_>>(), subset.clone());
            prop_assert_eq!(removed.iter().cloned().collect::<BTreeSet<_>>(), subset.clone());
            let pos = |list: &[PatchId], x: &PatchId| list.iter().position(|y| y == x).unwrap();
            for p in &subset {
                for req in requirements(&r, p).iter().filter(|q| subset.contains(*q)) {
                    prop_assert!(pos(&applied, req) < pos(&applied, p));
                    prop_assert!(pos(&removed, p) < pos(&removed, req));
                }
            }
        }

        #[test]
        fn a_dag_has_no_cycle_and_a_new_edge_may_make_one(dag in arb_dag(8), a in 0usize..8, b in 0usize..8) {
            let r = dag_repo(&dag);
            for entry in r.values() {
                prop_assert_eq!(find_cycle(&r, &entry.metadata), None);
            }
            let n = dag.len();
            let (a, b) = (id(&name(a % n)), id(&name(b % n)));
            // Make `a` require `b`: a cycle exactly when `b` already reaches `a` (or is `a`).
            let mut candidate = r[&a].metadata.clone();
            candidate.requires.push(b.clone());
            let reaches = with_requirements(&r, [&b], true).contains(&a);
            let cycle = find_cycle(&r, &candidate);
            prop_assert_eq!(cycle.is_some(), reaches);
            if let Some(path) = cycle {
                prop_assert_eq!(path.first(), path.last());
                prop_assert_eq!(path.first(), Some(&candidate.id));
                for pair in path.windows(2) {
                    let reqs = if pair[0] == candidate.id { &candidate.requires[..] } else { requirements(&r, &pair[0]) };
                    prop_assert!(reqs.contains(&pair[1]), "each step is a requirement");
                }
            }
        }
    }
}
