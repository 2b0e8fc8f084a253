//! Whether this host is in maintenance. Kept in the state directory, so it survives agent
//! restarts and is reported in every heartbeat.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

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
    /// thread, so its fsync does not stall the agent's single-threaded runtime.
    pub async fn set(&self, on: bool) -> anyhow::Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_flag(&path, on)).await?
    }
}

/// Both states have the same length, so once the file exists a change is one write of a few
/// bytes in place (within one sector: never torn) and one fsync; the first write creates the
/// file durably (temporary file, rename, directory fsync).
fn write_flag(path: &Path, on: bool) -> anyhow::Result<()> {
    let contents: &[u8; 6] = if on { b"true \n" } else { b"false\n" };
    let in_place = || -> std::io::Result<bool> {
        let file = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() != contents.len() as u64 {
            return Ok(false);
        }
        file.write_all_at(contents, 0)?;
        file.sync_data()?;
        Ok(true)
    };
    match in_place() {
        Ok(true) => Ok(()),
        Ok(false) => write_durably(path, contents),
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
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
        // Changed in place from now on.
        flag.set(true).await.unwrap();
        assert!(MaintenanceFlag::new(dir.path()).get());
        assert_eq!(
            std::fs::read(dir.path().join("maintenance")).unwrap().len(),
            6
        );
    }
}
