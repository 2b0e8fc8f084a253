//! The record of command outcomes. An outcome is written here, durably, before it is
//! reported; a command delivered again is answered from the record instead of running twice.

use std::path::{Path, PathBuf};

use anyhow::Context;
use convoy_api::hosts::CommandOutcome;
use uuid::Uuid;

use crate::identity::write_durably;

#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    pub fn open(state_dir: &Path) -> anyhow::Result<Ledger> {
        let dir = state_dir.join("commands");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Ledger { dir })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The recorded outcome of command `id`, if it ran to an end before.
    pub fn outcome(&self, id: Uuid) -> anyhow::Result<Option<CommandOutcome>> {
        match std::fs::read(self.path(id)) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is corrupt", self.path(id).display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path(id).display())),
        }
    }

    /// Records the outcome durably, on a blocking thread: its fsyncs must not stall the
    /// agent's single-threaded runtime (heartbeats, other commands).
    pub async fn record(&self, id: Uuid, outcome: &CommandOutcome) -> anyhow::Result<()> {
        let (path, bytes) = (self.path(id), serde_json::to_vec(outcome)?);
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recorded_outcomes_are_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.outcome(id).unwrap().is_none());
        let outcome = CommandOutcome {
            succeeded: true,
            message: "pong".into(),
            output: serde_json::json!({"n": 1}),
        };
        ledger.record(id, &outcome).await.unwrap();
        let reopened = Ledger::open(dir.path()).unwrap();
        assert_eq!(reopened.outcome(id).unwrap(), Some(outcome));
    }
}
