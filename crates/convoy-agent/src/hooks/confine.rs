//! What the hook runner agrees to run, and for whom. It runs scripts as the agent's user
//! (root, usually), so it serves only that user (or root) on its socket, and runs only a
//! script that no other user could have written: the script and its directory are owned by
//! the agent's user or root, writable by no group or other, and a link does not lead the
//! script out of its hooks directory.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// Whether the peer on `stream` is this process's user or root; the reason if not.
pub fn check_peer(stream: &UnixStream) -> Result<(), String> {
    let peer = getsockopt(stream, PeerCredentials)
        .map_err(|e| format!("cannot tell who connected: {e}"))?;
    let own = nix::unistd::geteuid().as_raw();
    if peer.uid() == own || peer.uid() == 0 {
        Ok(())
    } else {
        Err(format!(
            "refused: this hook runner serves only user {own} (the agent's) and root, not uid {}",
            peer.uid()
        ))
    }
}

/// The script to run for `requested` (`<hooks dir>/<Stage>[.sh|.py]`), resolved, if it may
/// run; the reason if not.
pub fn check_script(requested: &Path) -> Result<PathBuf, String> {
    let dir = requested
        .parent()
        .ok_or_else(|| format!("{} has no directory", requested.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve the hooks directory {}: {e}", dir.display()))?;
    let script = requested
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", requested.display()))?;
    if script.parent() != Some(dir.as_path()) {
        return Err(format!(
            "{} leads out of the hooks directory {} (to {}); hooks must be files in it",
            requested.display(),
            dir.display(),
            script.display()
        ));
    }
    only_ours(&dir, "the hooks directory")?;
    only_ours(&script, "the hook")?;
    Ok(script)
}

/// `path` is owned by this user or root and writable by no group or other.
fn only_ours(path: &Path, what: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot inspect {what}: {e}"))?;
    let own = nix::unistd::geteuid().as_raw();
    if meta.uid() != own && meta.uid() != 0 {
        return Err(format!(
            "{what} {} belongs to uid {}, not to the agent's user ({own}) or root; another \
             user could change what the agent runs",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by its group or others (mode {:o}); chmod go-w it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Only the agent's user and root are served. Another user needs root to be made and a
    /// client to connect with (python3), so the refusal is checked where both are at hand.
    #[test]
    fn the_runner_serves_only_its_user_and_root() {
        use std::os::unix::net::UnixListener;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("runner.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();

        let ours = UnixStream::connect(&path).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(check_peer(&accepted), Ok(()));
        drop(ours);

        let python = std::process::Command::new("python3")
            .arg("--version")
            .output();
        if !nix::unistd::geteuid().is_root() || python.is_err() {
            return;
        }
        let mut other = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); s.recv(1)",
                path.display().to_string()
            ))
            .uid(65534)
            .spawn()
            .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let err = check_peer(&accepted).unwrap_err();
        assert!(err.contains("not uid 65534"), "{err}");
        drop(accepted);
        other.wait().unwrap();
    }

    #[test]
    fn only_scripts_no_one_else_could_write_run() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(&hooks.join("PreFlight.sh"), 0o755);
        assert_eq!(
            check_script(&hooks.join("PreFlight.sh")).unwrap(),
            hooks.join("PreFlight.sh").canonicalize().unwrap()
        );

        // Writable by others: the script, or its directory.
        write(&hooks.join("Maintenance.sh"), 0o757);
        let err = check_script(&hooks.join("Maintenance.sh")).unwrap_err();
        assert!(err.contains("writable by its group or others"), "{err}");
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_script(&hooks.join("PreFlight.sh")).unwrap_err();
        assert!(err.contains("the hooks directory"), "{err}");
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();

        // A link out of the directory, to a script that would pass on its own.
        write(&dir.path().join("elsewhere.sh"), 0o755);
        std::os::unix::fs::symlink(
            dir.path().join("elsewhere.sh"),
            hooks.join("PostMaintenance"),
        )
        .unwrap();
        let err = check_script(&hooks.join("PostMaintenance")).unwrap_err();
        assert!(err.contains("leads out of the hooks directory"), "{err}");

        // Another user's script (only root can make one to test with).
        if nix::unistd::geteuid().is_root() {
            let theirs = hooks.join("PreMaintenance.sh");
            write(&theirs, 0o755);
            nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let err = check_script(&theirs).unwrap_err();
            assert!(err.contains("belongs to uid 65534"), "{err}");
        }
    }
}
