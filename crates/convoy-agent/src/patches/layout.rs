//! Where the agent keeps its patch state, under `STATE_DIR/patches/`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use convoy_core::patch::PatchId;

/// The paths of the patch state of one state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(state_dir: &Path) -> Layout {
        Layout {
            dir: state_dir.join("patches"),
        }
    }

    /// The durable record: installed patches, agent state, the unfinished change.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Held (`flock`) by whoever changes patches: the agent or `install-local`.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Downloaded bundles; nothing here outlives the command that downloaded it.
    pub fn bundles_dir(&self) -> PathBuf {
        self.dir.join("bundles")
    }

    pub fn bundle(&self, id: &PatchId) -> PathBuf {
        self.bundles_dir().join(id.file_name())
    }

    pub fn partial_bundle(&self, id: &PatchId) -> PathBuf {
        self.bundles_dir().join(format!("{}.part", id.file_name()))
    }

    /// Scratch space for unpacked payloads and scripts (not the system temp directory, which
    /// may be mounted `noexec`).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn installed_dir(&self) -> PathBuf {
        self.dir.join("installed")
    }

    /// What the agent keeps for an installed patch.
    pub fn patch_dir(&self, id: &PatchId) -> PathBuf {
        self.installed_dir().join(id.as_str())
    }

    /// Copies of the files the patch replaced, at their paths relative to the root.
    pub fn backup_dir(&self, id: &PatchId) -> PathBuf {
        self.patch_dir(id).join("backup")
    }

    /// The patch's verified `pre-remove` script, kept so that removal needs no bundle.
    pub fn pre_remove_script(&self, id: &PatchId) -> PathBuf {
        self.patch_dir(id).join("pre-remove")
    }

    /// The ids that have a directory under `installed/` (whatever the state says).
    pub fn patch_dirs(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.installed_dir();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    /// Creates the directories (private to the agent's user: backups may hold secrets).
    pub fn create(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [
            self.dir.clone(),
            self.bundles_dir(),
            self.work_dir(),
            self.installed_dir(),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }
}
