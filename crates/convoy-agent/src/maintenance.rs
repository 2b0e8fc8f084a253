//! Whether this host is in maintenance. Kept in the state directory, so it survives agent
//! restarts and is reported in every heartbeat.

use std::path::{Path, PathBuf};

use crate::identity::write_durably;

#[derive(Debug, Clone)]
pub struct MaintenanceFlag {
    path: PathBuf,
}

impl MaintenanceFlag {
    pub fn new(state_dir: &Path) -> Self {
        MaintenanceFlag {
            path: state_dir.join("maintenance"),
        }
    }

    pub fn get(&self) -> bool {
        std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == "true")
    }

    /// Records the state durably; entering or leaving twice is harmless.
    pub fn set(&self, on: bool) -> anyhow::Result<()> {
        write_durably(&self.path, if on { b"true\n" } else { b"false\n" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let flag = MaintenanceFlag::new(dir.path());
        assert!(!flag.get());
        flag.set(true).unwrap();
        assert!(MaintenanceFlag::new(dir.path()).get());
        flag.set(false).unwrap();
        assert!(!flag.get());
    }
}
