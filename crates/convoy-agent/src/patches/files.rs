//! Changing files under the host's root so that a crash at any instant leaves each file
//! either as it was or as it will be: every file is written under a temporary name in its
//! own directory, fsynced, then renamed over its target, and the directory is fsynced.
//!
//! The temporary name is fixed per target ([`temp_path`]), so recovery can find and delete a
//! leftover without any record of it.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was at an install path before a patch put its file there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Prior {
    /// Nothing: removal deletes the patch's file.
    Absent,
    /// A regular file, copied to the patch's backup directory.
    File { mode: u32, uid: u32, gid: u32 },
    /// A symbolic link (not followed), recreated on removal.
    Symlink { target: PathBuf },
}

/// One install path and what it held before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// Relative to the root.
    pub path: String,
    pub prior: Prior,
}

/// Everything a patch changes under the root, so that it can be undone exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChanges {
    pub files: Vec<FileChange>,
    /// Directories the patch created, parents before children (relative to the root).
    pub created_dirs: Vec<String>,
}

/// The fixed temporary name `target` is written under before the rename. Hashing the file
/// name keeps it short whatever the target's length.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default();
    let digest = Sha256::digest(name.as_encoded_bytes());
    target.with_file_name(format!(".convoy-{}.tmp", hex::encode(&digest[..8])))
}

/// What is at `target` now, without following a final symlink.
pub fn prior(target: &Path) -> anyhow::Result<Prior> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Prior::Absent),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", target.display())),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        Ok(Prior::File {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    } else if kind.is_symlink() {
        let link = std::fs::read_link(target)
            .with_context(|| format!("cannot read the link {}", target.display()))?;
        Ok(Prior::Symlink { target: link })
    } else if kind.is_dir() {
        bail!(
            "{} is a directory on this host; a patch can only replace files",
            target.display()
        )
    } else {
        bail!(
            "{} is a special file on this host; a patch can only replace files",
            target.display()
        )
    }
}

/// The directories to create under `root` so that `path` (relative) can be written, parents
/// first. Fails if a component exists and is not a directory (a symlink to one is fine: real
/// roots have `/lib -> usr/lib`; it is followed inside the root).
pub fn missing_dirs(root: &Path, path: &str) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    let mut prefix = String::new();
    let components: Vec<&str> = path.split('/').collect();
    for component in &components[..components.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if !missing.is_empty() {
            missing.push(prefix.clone());
            continue;
        }
        let dir = super::rooted::dir_in_root(root, &prefix)?;
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => bail!(
                "{} is not a directory on this host, but the patch installs {path} below it",
                dir.display()
            ),
            Err(e) if e.kind() == ErrorKind::NotFound => missing.push(prefix.clone()),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
        }
    }
    Ok(missing)
}

/// Creates the directories (parents first); one that exists already is fine.
pub fn create_dirs(root: &Path, dirs: &[String]) -> anyhow::Result<()> {
    for dir in dirs {
        let path = super::rooted::dir_in_root(root, dir)?;
        match std::fs::create_dir(&path) {
            Ok(()) => sync_parent(&path)?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    Ok(())
}

/// Removes the directories (children first) if they are empty; something else may have put
/// files there since, and those stay.
pub fn remove_created_dirs(root: &Path, dirs: &[String]) -> anyhow::Result<()> {
    for dir in dirs.iter().rev() {
        let path = super::rooted::file_in_root(root, dir)?;
        match std::fs::remove_dir(&path) {
            Ok(()) => sync_parent(&path)?,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(())
}

/// Copies the regular file `from` to `to` (creating its directories) and fsyncs it.
pub fn copy_durably(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let copy = || -> io::Result<()> {
        let mut source = File::open(from)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(to)?;
        io::copy(&mut source, &mut out)?;
        out.sync_all()
    };
    copy().with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// Puts a copy of `source` at `target` atomically, with `mode` and, if given, owner.
pub fn place(
    source: &Path,
    target: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let temp = temp_path(target);
    remove_if_present(&temp)?;
    let write = || -> io::Result<()> {
        let mut from = File::open(source)?;
        // Private until complete: the mode is set only once the bytes are in.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        io::copy(&mut from, &mut out)?;
        if let Some((uid, gid)) = owner {
            set_owner(&out, uid, gid)?;
        }
        out.set_permissions(Permissions::from_mode(mode))?;
        out.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write {}", temp.display()));
    }
    std::fs::rename(&temp, target)
        .with_context(|| format!("cannot rename {} to {}", temp.display(), target.display()))?;
    sync_parent(target)
}

/// Puts back what `change` says was at its path: the backed-up file, the link, or nothing.
/// Repeating it is harmless, which is what makes recovery safe to interrupt.
pub fn restore(root: &Path, backup_dir: &Path, change: &FileChange) -> anyhow::Result<()> {
    let target = super::rooted::file_in_root(root, &change.path)?;
    remove_if_present(&temp_path(&target))?;
    match &change.prior {
        Prior::Absent => {
            remove_if_present(&target)?;
            if target.parent().is_some_and(Path::exists) {
                sync_parent(&target)?;
            }
            Ok(())
        }
        Prior::File { mode, uid, gid } => {
            let backup = backup_dir.join(&change.path);
            if !backup.exists() {
                bail!(
                    "the backup of {} is missing ({}); restore the file by hand",
                    target.display(),
                    backup.display()
                );
            }
            place(&backup, &target, *mode, Some((*uid, *gid)))
        }
        Prior::Symlink { target: link } => {
            let temp = temp_path(&target);
            std::os::unix::fs::symlink(link, &temp)
                .with_context(|| format!("cannot create the link {}", temp.display()))?;
            std::fs::rename(&temp, &target).with_context(|| {
                format!("cannot rename {} to {}", temp.display(), target.display())
            })?;
            sync_parent(&target)
        }
    }
}

/// Sets the owner unless it already is the one wanted. A non-root agent cannot give files
/// away; it keeps its own ownership then (`EPERM` is not an error).
fn set_owner(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    let meta = file.metadata()?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    match std::os::unix::fs::fchown(file, Some(uid), Some(gid)) {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

pub fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Makes a rename or unlink in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn priors_are_recorded_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("etc/a"), b"a", 0o640);
        std::os::unix::fs::symlink("a", root.join("etc/link")).unwrap();
        assert_eq!(prior(&root.join("etc/none")).unwrap(), Prior::Absent);
        assert!(matches!(
            prior(&root.join("etc/a")).unwrap(),
            Prior::File { mode: 0o640, .. }
        ));
        assert_eq!(
            prior(&root.join("etc/link")).unwrap(),
            Prior::Symlink { target: "a".into() }
        );
        let err = prior(&root.join("etc")).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn missing_directories_are_listed_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr")).unwrap();
        assert_eq!(
            missing_dirs(root, "usr/local/lib/x.so").unwrap(),
            ["usr/local", "usr/local/lib"]
        );
        assert!(missing_dirs(root, "top").unwrap().is_empty());
        write(&root.join("file"), b"", 0o644);
        let err = missing_dirs(root, "file/below").unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");

        create_dirs(root, &["usr/local".into(), "usr/local/lib".into()]).unwrap();
        assert!(root.join("usr/local/lib").is_dir());
        write(&root.join("usr/local/keep"), b"", 0o644);
        remove_created_dirs(root, &["usr/local".into(), "usr/local/lib".into()]).unwrap();
        assert!(!root.join("usr/local/lib").exists());
        assert!(
            root.join("usr/local/keep").exists(),
            "a non-empty dir stays"
        );
    }

    #[test]
    fn a_placed_file_replaces_the_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("new"), dir.path().join("t/target"));
        write(&source, b"new", 0o600);
        write(&target, b"old", 0o644);
        // A temporary left by a crash is replaced, not an obstacle.
        std::fs::write(temp_path(&target), b"junk").unwrap();
        place(&source, &target, 0o755, None).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(mode(&target), 0o755);
        assert!(!temp_path(&target).exists());
    }

    #[test]
    fn restore_puts_back_files_links_and_absence_and_can_be_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let (root, backups) = (dir.path().join("root"), dir.path().join("backup"));
        write(&backups.join("etc/conf"), b"original", 0o600);
        write(&root.join("etc/conf"), b"patched", 0o644);
        write(&root.join("etc/added"), b"patched", 0o644);
        write(&root.join("etc/link"), b"patched", 0o644);
        let me = std::fs::metadata(&root).unwrap();
        let changes = [
            FileChange {
                path: "etc/conf".into(),
                prior: Prior::File {
                    mode: 0o4751,
                    uid: me.uid(),
                    gid: me.gid(),
                },
            },
            FileChange {
                path: "etc/added".into(),
                prior: Prior::Absent,
            },
            FileChange {
                path: "etc/link".into(),
                prior: Prior::Symlink {
                    target: "conf".into(),
                },
            },
        ];
        for _ in 0..2 {
            for change in &changes {
                restore(&root, &backups, change).unwrap();
            }
            assert_eq!(std::fs::read(root.join("etc/conf")).unwrap(), b"original");
            assert_eq!(mode(&root.join("etc/conf")), 0o4751);
            assert!(!root.join("etc/added").exists());
            assert_eq!(
                std::fs::read_link(root.join("etc/link")).unwrap(),
                Path::new("conf")
            );
        }
        let names: Vec<_> = std::fs::read_dir(root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporaries left: {names:?}");
    }
}
