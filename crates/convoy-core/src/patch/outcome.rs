//! What a patch operation answers: the repository changes to persist, in order, and the lines
//! to show; or why it refused, with sw-patch's exact texts (spec/patching.md §2.4).
//!
//! Displays carry no trailing newline; a refusal that concerns several patches shows one line
//! per patch, as sw-patch does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ValidationError;

use super::{PatchId, PatchMetadata, RepoEntry, RepoState, Repository};

/// One change to the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A newly uploaded patch, `Available`.
    Add(Box<PatchMetadata>),
    /// A re-uploaded patch: same contents, new metadata; its state stays.
    ReplaceMetadata(Box<PatchMetadata>),
    SetState {
        id: PatchId,
        from: RepoState,
        to: RepoState,
    },
    /// Forget the patch and its bundle.
    Delete(PatchId),
}

impl Change {
    pub fn id(&self) -> &PatchId {
        match self {
            Change::Add(metadata) | Change::ReplaceMetadata(metadata) => &metadata.id,
            Change::SetState { id, .. } | Change::Delete(id) => id,
        }
    }
}

/// An accepted operation: persist `changes` in order, then show `info` and `warnings`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub info: Vec<Notice>,
    pub warnings: Vec<Notice>,
}

impl Outcome {
    /// The repository after the changes; what the controller's store must hold once it has
    /// persisted them.
    pub fn apply_to(&self, repo: &mut Repository) {
        for change in &self.changes {
            match change {
                Change::Add(metadata) => {
                    repo.insert(
                        metadata.id.clone(),
                        RepoEntry {
                            metadata: (**metadata).clone(),
                            state: RepoState::Available,
                        },
                    );
                }
                Change::ReplaceMetadata(metadata) => {
                    if let Some(entry) = repo.get_mut(&metadata.id) {
                        entry.metadata = (**metadata).clone();
                    }
                }
                Change::SetState { id, to, .. } => {
                    if let Some(entry) = repo.get_mut(id) {
                        entry.state = *to;
                    }
                }
                Change::Delete(id) => {
                    repo.remove(id);
                }
            }
        }
    }

    /// Patches moved between `Available` and `Applied`. Their hosts must install or remove
    /// them, so the controller marks every host as not yet reported for these patches (the
    /// `interim` input of [`super::state::patch_states`]).
    pub fn moved(&self) -> impl Iterator<Item = &PatchId> {
        self.changes.iter().filter_map(|change| match change {
            Change::SetState {
                id,
                from: RepoState::Available,
                to: RepoState::Applied,
            }
            | Change::SetState {
                id,
                from: RepoState::Applied,
                to: RepoState::Available,
            } => Some(id),
            _ => None,
        })
    }
}

/// An info or warning line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Upload of a new patch.
    NowAvailable(PatchId),
    /// Upload of a patch already held.
    MetadataUpdated(PatchId),
    /// Upload of a committed patch: nothing changes.
    CommittedNotUpdated(PatchId),
    /// `apply --all` with nothing to apply.
    NoAvailablePatches,
    NowInRepo(PatchId),
    AlreadyInRepo(PatchId),
    RemovedFromRepo(PatchId),
    NotInRepo(PatchId),
    /// Warning: removing an unremovable patch because the operator insisted.
    UnremovableRemoved(PatchId),
    Deleted(PatchId),
    /// Commit dry run; the controller measures what committing frees.
    WouldFree {
        bytes: u64,
    },
    Committed,
    /// `what-requires` for a patch others require.
    RequiredBy {
        id: PatchId,
        by: Vec<PatchId>,
    },
    /// `what-requires` for a patch nothing requires.
    NotRequired(PatchId),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::NowAvailable(id) => write!(f, "{id} is now available"),
            Notice::MetadataUpdated(id) => {
                write!(f, "{id} is already imported. Updated metadata only")
            }
            Notice::CommittedNotUpdated(id) => write!(f, "{id} is committed. Metadata not updated"),
            Notice::NoAvailablePatches => {
                f.write_str("There are no available patches to be applied.")
            }
            Notice::NowInRepo(id) => write!(f, "{id} is now in the repo"),
            Notice::AlreadyInRepo(id) => write!(f, "{id} is already in the repo"),
            Notice::RemovedFromRepo(id) => write!(f, "{id} has been removed from the repo"),
            Notice::NotInRepo(id) => write!(f, "{id} is not in the repo"),
            Notice::UnremovableRemoved(id) => write!(f, "Unremovable patch {id} being removed"),
            Notice::Deleted(id) => write!(f, "{id} has been deleted"),
            Notice::WouldFree { bytes } => write!(
                f,
                "This commit operation would free {:.2} MiB",
                *bytes as f64 / (1024.0 * 1024.0)
            ),
            Notice::Committed => f.write_str("The patches have been committed."),
            Notice::RequiredBy { id, by } => write!(f, "{id} is required by: {}", join(by)),
            Notice::NotRequired(id) => write!(f, "{id} is not required by any patches."),
        }
    }
}

/// Why an operation was refused; nothing changed. Each variant lists every patch it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Apply and remove wait while any host's agent is `installing`.
    HostsInstalling,
    /// Apply, remove, delete, what-requires: ids the repository does not hold.
    DoesNotExist(Vec<PatchId>),
    /// Query-dependencies and commit: ids the repository does not hold.
    Unrecognized(Vec<PatchId>),
    /// Apply: `apply_active_release_only` patches of another release than the running one.
    CannotApplyInUpgrade(Vec<PatchId>),
    /// Apply: requirements neither applied nor applied together, each with the patches of the
    /// request needing it. Remove: patches of the request still required by applied patches
    /// outside it, each with those patches.
    RequiredBy(BTreeMap<PatchId, BTreeSet<PatchId>>),
    /// Remove: committed patches.
    CommittedCannotBeRemoved(Vec<PatchId>),
    /// Remove: unremovable patches, without `remove_unremovable`.
    NotRemovable(Vec<PatchId>),
    /// Remove: patches applications reported they depend on, each with those applications.
    RequiredByApplications(BTreeMap<PatchId, BTreeSet<String>>),
    /// Delete: patches not `Available` in the repository, or still on some host.
    NotAvailable(Vec<PatchId>),
    /// Commit: every patch of the site must be `REL`; these are not.
    NonReleasedInSystem(Vec<PatchId>),
    /// Commit: patches of the commit (with their requirements) not applied on every host.
    NotApplied(Vec<PatchId>),
    /// Upload: the metadata failed validation.
    InvalidMetadata {
        id: PatchId,
        errors: Vec<ValidationError>,
    },
    /// Upload: the patch's requirements lead back to it, e.g. `[A, B, A]`.
    RequirementCycle { id: PatchId, cycle: Vec<PatchId> },
    /// Upload of a held patch whose release or contents differ.
    ContentsDiffer(PatchId),
    /// Upload of an applied patch whose new metadata requires patches that are not applied.
    RequirementsNotApplied { id: PatchId, missing: Vec<PatchId> },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::HostsInstalling => {
                f.write_str("Rejected: One or more nodes are installing patches.")
            }
            Refusal::DoesNotExist(ids) => {
                lines(f, ids, |f, id| write!(f, "Patch {id} does not exist"))
            }
            Refusal::Unrecognized(ids) => lines(f, ids, |f, id| write!(f, "{id} is unrecognized")),
            Refusal::CannotApplyInUpgrade(ids) => lines(f, ids, |f, id| {
                write!(f, "{id} cannot be applied in an upgrade")
            }),
            Refusal::RequiredBy(map) => lines(f, map, |f, (req, by)| {
                write!(f, "{req} is required by: {}", join(by))
            }),
            Refusal::CommittedCannotBeRemoved(ids) => lines(f, ids, |f, id| {
                write!(f, "Patch {id} is committed and cannot be removed")
            }),
            Refusal::NotRemovable(ids) => {
                lines(f, ids, |f, id| write!(f, "Patch {id} is not removable"))
            }
            Refusal::RequiredByApplications(map) => lines(f, map, |f, (id, apps)| {
                write!(f, "{id} is required by application(s): {}", join(apps))
            }),
            Refusal::NotAvailable(ids) => lines(f, ids, |f, id| {
                write!(f, "Patch {id} not in Available state")
            }),
            Refusal::NonReleasedInSystem(ids) => {
                f.write_str(
                    "A commit cannot be performed with non-REL status patches in the system:",
                )?;
                indented(f, ids)
            }
            Refusal::NotApplied(ids) => {
                f.write_str("The following patches are not applied and cannot be committed:")?;
                indented(f, ids)
            }
            Refusal::InvalidMetadata { id, errors } => {
                write!(f, "Patch validation failed for {id}:")?;
                for error in errors {
                    write!(f, "\n{error}")?;
                }
                Ok(())
            }
            Refusal::RequirementCycle { id, cycle } => write!(
                f,
                "Patch validation failed for {id}:\nrequires: {} is a cycle; \
                 rebuild one of these patches without that requirement",
                cycle
                    .iter()
                    .map(PatchId::as_str)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
            Refusal::ContentsDiffer(id) => {
                write!(f, "Contents of {id} do not match re-imported patch")
            }
            Refusal::RequirementsNotApplied { id, missing } => write!(
                f,
                "Patch validation failed for {id}:\nrequires: {id} is applied but {} \
                 would not be; apply them first",
                join(missing)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per item, separated (not terminated) by newlines.
fn lines<I: IntoIterator>(
    f: &mut fmt::Formatter<'_>,
    items: I,
    mut line: impl FnMut(&mut fmt::Formatter<'_>, I::Item) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        line(f, item)?;
    }
    Ok(())
}

/// sw-patch's commit lists: each id on its own line, indented by four spaces.
fn indented(f: &mut fmt::Formatter<'_>, ids: &[PatchId]) -> fmt::Result {
    for id in ids {
        write!(f, "\n    {id}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<PatchId> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn notices_use_sw_patch_texts() {
        let p = ids(&["PATCH_0001"]).remove(0);
        let cases = [
            (
                Notice::NowAvailable(p.clone()),
                "PATCH_0001 is now available",
            ),
            (
                Notice::MetadataUpdated(p.clone()),
                "PATCH_0001 is already imported. Updated metadata only",
            ),
            (
                Notice::CommittedNotUpdated(p.clone()),
                "PATCH_0001 is committed. Metadata not updated",
            ),
            (
                Notice::NoAvailablePatches,
                "There are no available patches to be applied.",
            ),
            (
                Notice::NowInRepo(p.clone()),
                "PATCH_0001 is now in the repo",
            ),
            (
                Notice::AlreadyInRepo(p.clone()),
                "PATCH_0001 is already in the repo",
            ),
            (
                Notice::RemovedFromRepo(p.clone()),
                "PATCH_0001 has been removed from the repo",
            ),
            (
                Notice::NotInRepo(p.clone()),
                "PATCH_0001 is not in the repo",
            ),
            (
                Notice::UnremovableRemoved(p.clone()),
                "Unremovable patch PATCH_0001 being removed",
            ),
            (Notice::Deleted(p.clone()), "PATCH_0001 has been deleted"),
            (
                Notice::WouldFree {
                    bytes: 3 * 1024 * 1024 / 2,
                },
                "This commit operation would free 1.50 MiB",
            ),
            (Notice::Committed, "The patches have been committed."),
            (
                Notice::NotRequired(p.clone()),
                "PATCH_0001 is not required by any patches.",
            ),
        ];
        for (notice, text) in cases {
            assert_eq!(notice.to_string(), text);
        }
    }

    #[test]
    fn refusals_use_sw_patch_texts_one_line_per_patch() {
        let two = ids(&["A", "B"]);
        let cases = [
            (
                Refusal::HostsInstalling,
                "Rejected: One or more nodes are installing patches.",
            ),
            (
                Refusal::DoesNotExist(two.clone()),
                "Patch A does not exist\nPatch B does not exist",
            ),
            (
                Refusal::Unrecognized(two.clone()),
                "A is unrecognized\nB is unrecognized",
            ),
            (
                Refusal::CannotApplyInUpgrade(ids(&["A"])),
                "A cannot be applied in an upgrade",
            ),
            (
                Refusal::RequiredBy(BTreeMap::from([
                    (
                        ids(&["C"]).remove(0),
                        ids(&["B", "A"]).into_iter().collect(),
                    ),
                    (ids(&["D"]).remove(0), ids(&["A"]).into_iter().collect()),
                ])),
                "C is required by: A, B\nD is required by: A",
            ),
            (
                Refusal::CommittedCannotBeRemoved(ids(&["A"])),
                "Patch A is committed and cannot be removed",
            ),
            (
                Refusal::NotRemovable(ids(&["A"])),
                "Patch A is not removable",
            ),
            (
                Refusal::RequiredByApplications(BTreeMap::from([(
                    ids(&["A"]).remove(0),
                    BTreeSet::from(["vault".to_string(), "cert-manager".to_string()]),
                )])),
                "A is required by application(s): cert-manager, vault",
            ),
            (
                Refusal::NotAvailable(ids(&["A"])),
                "Patch A not in Available state",
            ),
            (
                Refusal::NonReleasedInSystem(two.clone()),
                "A commit cannot be performed with non-REL status patches in the system:\n    A\n    B",
            ),
            (
                Refusal::NotApplied(two.clone()),
                "The following patches are not applied and cannot be committed:\n    A\n    B",
            ),
            (
                Refusal::ContentsDiffer(ids(&["A"]).remove(0)),
                "Contents of A do not match re-imported patch",
            ),
            (
                Refusal::InvalidMetadata {
                    id: ids(&["A"]).remove(0),
                    errors: vec![
                        ValidationError::new("summary", "too long"),
                        ValidationError::new("contents", "empty"),
                    ],
                },
                "Patch validation failed for A:\nsummary: too long\ncontents: empty",
            ),
            (
                Refusal::RequirementCycle {
                    id: ids(&["A"]).remove(0),
                    cycle: ids(&["A", "B", "A"]),
                },
                "Patch validation failed for A:\nrequires: A -> B -> A is a cycle; \
                 rebuild one of these patches without that requirement",
            ),
        ];
        for (refusal, text) in cases {
            assert_eq!(refusal.to_string(), text);
        }
    }

    #[test]
    fn moved_lists_only_apply_and_remove() {
        let [a, b, c, d] = ids(&["A", "B", "C", "D"]).try_into().unwrap();
        let outcome = Outcome {
            changes: vec![
                Change::SetState {
                    id: a.clone(),
                    from: RepoState::Available,
                    to: RepoState::Applied,
                },
                Change::SetState {
                    id: b.clone(),
                    from: RepoState::Applied,
                    to: RepoState::Available,
                },
                Change::SetState {
                    id: c,
                    from: RepoState::Applied,
                    to: RepoState::Committed,
                },
                Change::Delete(d),
            ],
            ..Outcome::default()
        };
        assert_eq!(outcome.moved().collect::<Vec<_>>(), [&a, &b]);
    }
}
