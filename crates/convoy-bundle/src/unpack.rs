//! Reading members out of a verified bundle. Each read hashes the member again and hands its
//! bytes out only if they still match the manifest: the file could have been changed on disk
//! since it was verified.

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use convoy_core::host::Personality;
use sha2::{Digest, Sha256};

use crate::contents::member_for;
use crate::digest::CHUNK;
use crate::layout::Script;
use crate::manifest::ManifestEntry;
use crate::verify::VerifiedBundle;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{0} is not a member of the bundle")]
    NoSuchMember(String),
    #[error("altered member: {0} changed on disk after the bundle was verified")]
    Altered(String),
    #[error("{0} must be an empty directory to unpack into")]
    NotEmpty(PathBuf),
    #[error("cannot read the bundle {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A payload file a host installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallFile {
    /// Where it goes, relative to the host's root.
    pub install_path: String,
    /// The member that holds it.
    pub member: String,
    pub size: u64,
    pub sha256: String,
    pub executable: bool,
}

impl VerifiedBundle {
    /// Whether the bundle holds this script.
    pub fn has_script(&self, script: Script) -> bool {
        self.offsets.contains_key(&script.member())
    }

    /// Whether a host of `personality` takes this patch.
    pub fn is_for(&self, personality: Personality) -> bool {
        self.metadata.is_for(personality)
    }

    /// The payload files a host of `personality` installs, sorted by install path (none if
    /// it does not take the patch).
    pub fn install_files(&self, personality: Personality) -> Vec<InstallFile> {
        self.metadata
            .files_for(personality)
            .iter()
            .map(|install_path| {
                // Verification checked that the contents are exactly what the members give.
                let member =
                    member_for(personality, install_path, |m| self.offsets.contains_key(m))
                        .expect("verified contents are held by members");
                let entry = self.entry(&member).expect("a member is in the manifest");
                InstallFile {
                    install_path: install_path.clone(),
                    size: entry.size,
                    sha256: entry.sha256.clone(),
                    executable: entry.executable,
                    member,
                }
            })
            .collect()
    }

    /// The bytes of a member (read into memory: meant for metadata and scripts; members are
    /// bounded by `Limits::max_member_size`).
    pub fn read_member(&self, member: &str) -> Result<Vec<u8>, UnpackError> {
        let mut bytes = Vec::new();
        self.copy_member(member, &mut bytes, Path::new("memory"))?;
        Ok(bytes)
    }

    /// Writes a member to the new file `to` (mode 0755 if executable, else 0644). The file
    /// appears under its name only once its bytes are verified.
    pub fn unpack_member(&self, member: &str, to: &Path) -> Result<(), UnpackError> {
        let entry = self.entry(member)?;
        let dir = match to.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let write_error = |source| UnpackError::Write {
            path: to.to_path_buf(),
            source,
        };
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
        self.copy_member(member, temp.as_file_mut(), to)?;
        temp.as_file()
            .set_permissions(Permissions::from_mode(entry.mode()))
            .map_err(write_error)?;
        temp.persist_noclobber(to)
            .map_err(|e| write_error(e.error))?;
        Ok(())
    }

    /// Unpacks the payload files of `personality` into `dest`, which must be an empty
    /// directory: each file at `dest/<install path>`, with its mode. On error `dest` is left
    /// empty again.
    pub fn unpack_payload(
        &self,
        personality: Personality,
        dest: &Path,
    ) -> Result<Vec<InstallFile>, UnpackError> {
        let read_dir_error = |source| UnpackError::Write {
            path: dest.to_path_buf(),
            source,
        };
        // An empty directory holds nothing we did not create: no symlink placed in advance
        // can redirect a write.
        if std::fs::read_dir(dest)
            .map_err(read_dir_error)?
            .next()
            .is_some()
        {
            return Err(UnpackError::NotEmpty(dest.to_path_buf()));
        }
        let files = self.install_files(personality);
        let result = files
            .iter()
            .try_for_each(|file| self.unpack_file(file, dest));
        if let Err(e) = result {
            empty_directory(dest);
            return Err(e);
        }
        Ok(files)
    }

    fn unpack_file(&self, file: &InstallFile, dest: &Path) -> Result<(), UnpackError> {
        let target = dest.join(&file.install_path);
        let write_error = |source| UnpackError::Write {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(write_error)?;
        self.copy_member(&file.member, &mut out, &target)?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        out.set_permissions(Permissions::from_mode(mode))
            .map_err(write_error)?;
        Ok(())
    }

    fn entry(&self, member: &str) -> Result<&ManifestEntry, UnpackError> {
        self.manifest
            .entry(member)
            .ok_or_else(|| UnpackError::NoSuchMember(member.to_string()))
    }

    /// Copies a member's bytes to `out` while hashing them; fails if they no longer match.
    fn copy_member(
        &self,
        member: &str,
        out: &mut impl Write,
        out_path: &Path,
    ) -> Result<(), UnpackError> {
        let entry = self.entry(member)?;
        let offset = self.offsets[member];
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK.min(entry.size as usize).max(1)];
        let mut done = 0u64;
        while done < entry.size {
            let want = buf.len().min((entry.size - done) as usize);
            let n = self
                .file
                .read_at(&mut buf[..want], offset + done)
                .map_err(|source| UnpackError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(UnpackError::Altered(member.to_string()));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|source| UnpackError::Write {
                    path: out_path.to_path_buf(),
                    source,
                })?;
            done += n as u64;
        }
        if hex::encode(hasher.finalize()) != entry.sha256 {
            return Err(UnpackError::Altered(member.to_string()));
        }
        Ok(())
    }
}

/// Removes everything in `dir` (which we filled), best effort: the caller already has an error.
fn empty_directory(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            let path = child.path();
            let _ = match child.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    }
}
