//! The journal of a change to the root that has begun and not ended.
//!
//! It is written (inside `state.json`, durably) after the backups are made and before the
//! first file under the root is touched, and cleared in the same write that records the
//! change as done. So at any instant the record says either "done" or "unfinished, and here
//! is everything it may have touched".
//!
//! **The recovery rule: an unfinished change is undone.** The patch's files are put back from
//! its backups, the files it added are deleted, the directories it created are removed if
//! empty, and the patch is recorded as not installed. For an interrupted install that is a
//! roll back; for an interrupted removal it completes the removal (a removal *is* that undo),
//! so in both cases the patch ends not installed and the root as it was without it. Rolling
//! forward an install instead would need the bundle and its post-install script again, and a
//! crash that is caused by the install would then repeat at every start. Every step of the
//! undo can be repeated, so a crash during recovery only means recovery runs again.

use std::path::Path;

use convoy_core::patch::PatchId;
use serde::{Deserialize, Serialize};

use super::files::{self, FileChanges};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Install,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub operation: Operation,
    pub patch: PatchId,
    pub changes: FileChanges,
}

impl Journal {
    /// What recovery tells the operator it did.
    pub fn recovered_message(&self) -> String {
        match self.operation {
            Operation::Install => format!(
                "the agent stopped while installing {}; the install was rolled back",
                self.patch
            ),
            Operation::Remove => format!(
                "the agent stopped while removing {}; the removal was completed",
                self.patch
            ),
        }
    }
}

/// Puts the root back as it was before the patch: every file restored from `backup_dir` (or
/// deleted if the patch added it), then the directories it created removed if empty.
/// Repeatable; stops at the first error.
pub fn undo(root: &Path, backup_dir: &Path, changes: &FileChanges) -> anyhow::Result<()> {
    for change in &changes.files {
        files::restore(root, backup_dir, change)?;
    }
    files::remove_created_dirs(root, &changes.created_dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patches::files::{FileChange, Prior};

    #[test]
    fn undo_after_a_partial_install_leaves_the_root_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let (root, backups) = (dir.path().join("root"), dir.path().join("backup"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(backups.join("etc")).unwrap();
        std::fs::write(root.join("etc/conf"), b"before").unwrap();
        std::fs::copy(root.join("etc/conf"), backups.join("etc/conf")).unwrap();
        let Prior::File { mode, uid, gid } = files::prior(&root.join("etc/conf")).unwrap() else {
            panic!("a file");
        };
        let changes = FileChanges {
            files: vec![
                FileChange {
                    path: "etc/conf".into(),
                    prior: Prior::File { mode, uid, gid },
                },
                FileChange {
                    path: "opt/x/bin/tool".into(),
                    prior: Prior::Absent,
                },
            ],
            created_dirs: vec!["opt".into(), "opt/x".into(), "opt/x/bin".into()],
        };
        // The crash came after the first file was replaced and while the second was being
        // written under its temporary name.
        std::fs::write(root.join("etc/conf"), b"patched").unwrap();
        std::fs::create_dir_all(root.join("opt/x/bin")).unwrap();
        let temp = files::temp_path(&root.join("opt/x/bin/tool"));
        std::fs::write(&temp, b"half").unwrap();

        undo(&root, &backups, &changes).unwrap();
        assert_eq!(std::fs::read(root.join("etc/conf")).unwrap(), b"before");
        assert!(!root.join("opt").exists());
        undo(&root, &backups, &changes).unwrap();
    }

    #[test]
    fn the_journal_round_trips_as_json() {
        let journal = Journal {
            operation: Operation::Remove,
            patch: "P1".parse().unwrap(),
            changes: FileChanges::default(),
        };
        let text = serde_json::to_string(&journal).unwrap();
        assert!(text.contains(r#""operation":"remove""#), "{text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), journal);
        assert!(
            journal
                .recovered_message()
                .contains("removal was completed")
        );
    }
}
