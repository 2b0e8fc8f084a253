//! Finding the `convoyd`, `convoy-agent` and `convoy` executables.

use std::path::{Path, PathBuf};

use crate::LaunchError;

#[derive(Debug, Clone)]
pub struct Binaries {
    pub convoyd: PathBuf,
    pub agent: PathBuf,
    pub convoy: PathBuf,
}

impl Binaries {
    /// The executables in `dir`, which must all exist.
    pub fn in_dir(dir: &Path) -> Result<Binaries, LaunchError> {
        let find = |name: &'static str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(LaunchError::MissingBinary {
                    name,
                    dir: dir.display().to_string(),
                })
            }
        };
        Ok(Binaries {
            convoyd: find("convoyd")?,
            agent: find("convoy-agent")?,
            convoy: find("convoy")?,
        })
    }

    /// The executables built beside the running one: `CONVOY_BIN_DIR` if set, else the
    /// directory of the current executable (for a test binary in `target/<profile>/deps`, its
    /// parent).
    pub fn locate() -> Result<Binaries, LaunchError> {
        Self::in_dir(&Self::default_dir()?)
    }

    pub fn default_dir() -> Result<PathBuf, LaunchError> {
        if let Some(dir) = std::env::var_os("CONVOY_BIN_DIR") {
            return Ok(PathBuf::from(dir));
        }
        let exe = std::env::current_exe()?;
        let mut dir = exe
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        Ok(dir)
    }

    /// Under `cargo run` (which sets `CARGO`), builds the daemon and agent in the same profile
    /// first, so the demo never runs stale or missing binaries; cargo's own progress shows.
    /// Elsewhere does nothing and says so.
    pub fn build_with_cargo_if_available() -> Result<bool, LaunchError> {
        let Some(cargo) = std::env::var_os("CARGO") else {
            return Ok(false);
        };
        let dir = Self::default_dir()?;
        let mut command = std::process::Command::new(cargo);
        command.args([
            "build",
            "--workspace",
            "--bin",
            "convoyd",
            "--bin",
            "convoy-agent",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        // `cargo run` from outside the workspace (`--manifest-path`) leaves the working
        // directory elsewhere; the package being run is always inside it.
        if let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") {
            command.current_dir(package);
        }
        // What `cargo run` tells the program it runs about its package is not for another
        // cargo: build scripts that watch these (ring's, rustls') would rebuild every time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || matches!(
                    name.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                )
            {
                command.env_remove(name.as_ref());
            }
        }
        let status = command
            .status()
            .map_err(|e| LaunchError::Build(e.to_string()))?;
        if status.success() {
            Ok(true)
        } else {
            Err(LaunchError::Build(format!(
                "cargo build exited with {status}"
            )))
        }
    }
}
