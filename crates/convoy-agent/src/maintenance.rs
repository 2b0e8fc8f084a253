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

    /// Records the state durably; entering or leaving twice is harmless. On a blocking
    /// thread, so its fsyncs do not stall the agent's single-threaded runtime.
    pub async fn set(&self, on: bool) -> anyhow::Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            write_durably(&path, if on { b"true\n" } else { b"false\n" })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let flag = MaintenanceFlag::new(dir.path());
        assert!(!flag.get());
        flag.set(true).await.unwrap();
        assert!(MaintenanceFlag::new(dir.path()).get());
        flag.set(false).await.unwrap();
        assert!(!flag.get());
    }
}
