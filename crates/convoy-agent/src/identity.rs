//! The agent's identity: the host credential it received at enrolment, kept in its state
//! directory so that restarts keep the same host.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub hostname: String,
    pub credential: String,
    /// The controller's certificate fingerprint, pinned at enrolment over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("identity.json")
}

/// The identity saved in `state_dir`, if any. Refuses one that belongs to another host.
pub fn load(state_dir: &Path, hostname: &str) -> anyhow::Result<Option<Identity>> {
    let Some(identity) = load_any(state_dir)? else {
        return Ok(None);
    };
    if identity.hostname != hostname {
        bail!(
            "the state directory {} belongs to host {:?}, not {hostname:?}; give each host its own",
            state_dir.display(),
            identity.hostname
        );
    }
    Ok(Some(identity))
}

/// The identity saved in `state_dir`, whichever host it is.
pub fn load_any(state_dir: &Path) -> anyhow::Result<Option<Identity>> {
    let path = path(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is corrupt; remove it to enrol again", path.display()))
}

/// Saves the identity atomically, readable by the agent's user only.
pub fn save(state_dir: &Path, identity: &Identity) -> anyhow::Result<()> {
    write_durably(
        &path(state_dir),
        serde_json::to_vec_pretty(identity)?.as_slice(),
    )
}

/// Writes a file so that a crash leaves the old contents or the new, never a torn file:
/// temporary file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_a_restart_and_belongs_to_one_host() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "worker-0").unwrap().is_none());
        let identity = Identity {
            hostname: "worker-0".into(),
            credential: "cvh_x".into(),
            tls_fingerprint: Some("sha256:ab".into()),
        };
        save(dir.path(), &identity).unwrap();
        let loaded = load(dir.path(), "worker-0").unwrap().unwrap();
        assert_eq!(loaded.credential, "cvh_x");
        assert_eq!(loaded.tls_fingerprint.as_deref(), Some("sha256:ab"));
        let err = load(dir.path(), "worker-1").unwrap_err().to_string();
        assert!(err.contains("belongs to host \"worker-0\""), "{err}");
    }
}
