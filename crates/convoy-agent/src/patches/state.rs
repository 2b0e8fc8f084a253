//! The agent's durable record of its patches (`STATE_DIR/patches/state.json`), and what a
//! heartbeat reports from it.
//!
//! The file is replaced atomically (temporary file, fsync, rename, fsync of the directory),
//! so every change of state is one all-or-nothing write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use convoy_core::patch::{AgentState, HostSoftware, PatchId, Release};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::files::FileChanges;
use super::journal::Journal;
use super::layout::Layout;
use crate::identity::write_durably;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchState {
    pub state: AgentState,
    /// Why the last install was refused or failed; cleared when one starts.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub installed: BTreeMap<PatchId, InstalledPatch>,
    /// Patches installed or removed during the boot `changes_boot_id`.
    #[serde(default)]
    pub changed_since_boot: BTreeSet<PatchId>,
    #[serde(default)]
    pub changes_boot_id: Option<String>,
    /// The change under way; see the journal module for what recovery does with it.
    #[serde(default)]
    pub unfinished: Option<Journal>,
    /// Set (to the boot id) when a reboot-required change has ended and the reboot command
    /// has not been run yet.
    #[serde(default)]
    pub reboot_requested_in_boot: Option<String>,
    /// The command whose change asked for that reboot (logged when the reboot runs).
    #[serde(default)]
    pub reboot_requested_by: Option<String>,
}

/// What the agent keeps about an installed patch: enough to remove it without its bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledPatch {
    pub sw_version: Release,
    pub reboot_required: bool,
    #[serde(default)]
    pub requires: Vec<PatchId>,
    pub changes: FileChanges,
    /// Whether `installed/<id>/pre-remove` holds the patch's pre-remove script.
    #[serde(default)]
    pub pre_remove: bool,
    /// The patch's signed metadata says it is unremovable: the agent never removes it.
    #[serde(default)]
    pub unremovable: bool,
    pub installed_at: Timestamp,
}

impl Default for PatchState {
    fn default() -> Self {
        PatchState {
            state: AgentState::Idle,
            last_error: None,
            installed: BTreeMap::new(),
            changed_since_boot: BTreeSet::new(),
            changes_boot_id: None,
            unfinished: None,
            reboot_requested_in_boot: None,
            reboot_requested_by: None,
        }
    }
}

impl PatchState {
    /// Reads the record; a host that never installed a patch has none.
    pub fn load(layout: &Layout) -> anyhow::Result<PatchState> {
        let path = layout.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the patch record {} is corrupt; the files it lists under the root were \
                     changed by patches, so restore it from a backup rather than deleting it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PatchState::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, layout: &Layout) -> anyhow::Result<()> {
        write_durably(&layout.state_file(), &serde_json::to_vec_pretty(self)?)
    }

    /// Notes that `id` was installed or removed in boot `boot_id`; changes noted in an
    /// earlier boot are forgotten (the reboot took them in).
    pub fn record_change(&mut self, id: &PatchId, boot_id: &str) {
        if self.changes_boot_id.as_deref() != Some(boot_id) {
            self.changed_since_boot.clear();
            self.changes_boot_id = Some(boot_id.to_string());
        }
        self.changed_since_boot.insert(id.clone());
    }

    /// What the heartbeat reports, in boot `boot_id`.
    pub fn report(&self, release: Option<Release>, boot_id: &str) -> HostSoftware {
        let changed_since_boot = if self.changes_boot_id.as_deref() == Some(boot_id) {
            self.changed_since_boot.clone()
        } else {
            BTreeSet::new()
        };
        // A patch in the middle of a change is not reported installed: a crash now would
        // leave it not installed.
        let mut installed: BTreeSet<PatchId> = self.installed.keys().cloned().collect();
        if let Some(journal) = &self.unfinished {
            installed.remove(&journal.patch);
        }
        HostSoftware {
            release,
            state: self.state,
            installed,
            changed_since_boot,
            last_error: self.last_error.clone(),
        }
    }

    /// Installed patches that require `id`.
    pub fn dependents(&self, id: &PatchId) -> Vec<PatchId> {
        self.installed
            .iter()
            .filter(|(other, record)| *other != id && record.requires.contains(id))
            .map(|(other, _)| other.clone())
            .collect()
    }
}

/// The heartbeat's software facts for the state directory: read fresh each time, so changes
/// made by `install-local` show as soon as they are written.
pub fn software(state_dir: &Path, release: Option<Release>, boot_id: &str) -> HostSoftware {
    match PatchState::load(&Layout::new(state_dir)) {
        Ok(state) => state.report(release, boot_id),
        Err(e) => HostSoftware {
            release,
            state: AgentState::InstallFailed,
            last_error: Some(format!("{e:#}")),
            ..HostSoftware::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PatchId {
        s.parse().unwrap()
    }

    fn record(requires: &[&str]) -> InstalledPatch {
        InstalledPatch {
            sw_version: "25.09".parse().unwrap(),
            reboot_required: false,
            requires: requires.iter().map(|r| id(r)).collect(),
            changes: FileChanges::default(),
            pre_remove: false,
            unremovable: false,
            installed_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn changes_since_boot_are_forgotten_when_the_boot_id_changes() {
        let mut state = PatchState::default();
        state.record_change(&id("A"), "boot-1");
        state.record_change(&id("B"), "boot-1");
        let report = state.report(None, "boot-1");
        assert_eq!(report.changed_since_boot, [id("A"), id("B")].into());
        assert!(state.report(None, "boot-2").changed_since_boot.is_empty());
        state.record_change(&id("C"), "boot-2");
        assert_eq!(
            state.report(None, "boot-2").changed_since_boot,
            [id("C")].into()
        );
    }

    #[test]
    fn the_report_carries_the_installed_set_state_and_error() {
        let mut state = PatchState::default();
        state.installed.insert(id("A"), record(&[]));
        state.state = AgentState::InstallFailed;
        state.last_error = Some("boom".into());
        let report = state.report(Some("25.09".parse().unwrap()), "b");
        assert_eq!(report.installed, [id("A")].into());
        assert_eq!(report.state, AgentState::InstallFailed);
        assert_eq!(report.last_error.as_deref(), Some("boom"));
        assert_eq!(report.release.unwrap().as_str(), "25.09");
    }

    #[test]
    fn the_record_survives_reopening_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create().unwrap();
        assert_eq!(PatchState::load(&layout).unwrap(), PatchState::default());
        let mut state = PatchState::default();
        state.installed.insert(id("A"), record(&[]));
        state.installed.insert(id("B"), record(&["A"]));
        state.save(&layout).unwrap();
        let loaded = PatchState::load(&layout).unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.dependents(&id("A")), [id("B")]);
        assert!(loaded.dependents(&id("B")).is_empty());

        std::fs::write(layout.state_file(), b"{").unwrap();
        let err = format!("{:#}", PatchState::load(&layout).unwrap_err());
        assert!(err.contains("is corrupt"), "{err}");
        let software = software(dir.path(), None, "b");
        assert_eq!(software.state, AgentState::InstallFailed);
    }
}
