//! Building and signing a bundle.
//!
//! Two passes over the sources: the first hashes them so the manifest (which comes first in
//! the archive) can be written and signed; the second copies them into the archive and hashes
//! them again, so a source that changed in between fails the build instead of producing a
//! bundle that would not verify. The archive is written to a temporary file beside the output
//! and renamed to `<id>.patch` only when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use convoy_core::ValidationError;
use convoy_core::patch::{PatchId, PatchMetadata, PatchStatus, Release};

use crate::contents::{LayoutConflict, contents_of};
use crate::digest::{CHUNK, HashingReader, hash_reader, sha256_hex};
use crate::keys::SigningKey;
use crate::layout::{MANIFEST, METADATA, SIGNATURE, Script, Section};
use crate::manifest::{FORMAT_VERSION, Manifest, ManifestEntry};
use crate::signature::SignatureFile;

/// What to build: the metadata fields of `patch_build` and the files to ship.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub id: PatchId,
    pub sw_version: Release,
    pub summary: String,
    pub description: String,
    pub install_instructions: String,
    pub warnings: String,
    pub status: PatchStatus,
    pub unremovable: bool,
    pub reboot_required: bool,
    pub apply_active_release_only: bool,
    /// Required patch ids, in any order (the bundle stores them sorted, once each).
    pub requires: Vec<PatchId>,
    pub payload: Vec<PayloadFile>,
    pub scripts: BTreeMap<Script, PathBuf>,
}

impl BuildSpec {
    /// A spec with StarlingX's defaults: status DEV, reboot required, nothing else set.
    pub fn new(id: PatchId, sw_version: Release) -> BuildSpec {
        BuildSpec {
            id,
            sw_version,
            summary: String::new(),
            description: String::new(),
            install_instructions: String::new(),
            warnings: String::new(),
            status: PatchStatus::Development,
            unremovable: false,
            reboot_required: true,
            apply_active_release_only: false,
            requires: Vec::new(),
            payload: Vec::new(),
            scripts: BTreeMap::new(),
        }
    }
}

/// One file to ship: its source on the build machine and where hosts install it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFile {
    pub section: Section,
    pub source: PathBuf,
    /// Relative to the host's root, e.g. `usr/bin/tool`.
    pub install_path: String,
}

impl PayloadFile {
    /// The files named by a command-line argument `SOURCE[=INSTALL_PATH]`: a file needs its
    /// install path (`build/tool=usr/bin/tool`); a directory stands for every regular file
    /// below it, installed at its path relative to the directory, under INSTALL_PATH if given
    /// (`rootfs/` mirrors the host's root). A leading `/` on the install path is dropped.
    pub fn from_arg(section: Section, arg: &str) -> Result<Vec<PayloadFile>, BuildError> {
        let (source, dest) = if Path::new(arg).exists() {
            (arg, None)
        } else {
            match arg.split_once('=') {
                Some((source, dest)) => (source, Some(dest.trim_start_matches('/'))),
                None => (arg, None),
            }
        };
        let source = PathBuf::from(source);
        let meta = std::fs::metadata(&source).map_err(|e| BuildError::source(&source, e))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(&source, dest.unwrap_or(""), section, &mut files)?;
            return Ok(files);
        }
        let Some(dest) = dest else {
            return Err(BuildError::Argument(format!(
                "{arg}: give the install path of a file, as {arg}=usr/bin/name"
            )));
        };
        Ok(vec![PayloadFile {
            section,
            source,
            install_path: dest.to_string(),
        }])
    }
}

fn walk(
    dir: &Path,
    under: &str,
    section: Section,
    files: &mut Vec<PayloadFile>,
) -> Result<(), BuildError> {
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .and_then(|d| d.collect::<io::Result<Vec<_>>>())
        .map_err(|e| BuildError::source(dir, e))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let name = child.file_name();
        let Some(name) = name.to_str() else {
            return Err(BuildError::Source {
                path,
                reason: "its name is not UTF-8".into(),
            });
        };
        let install_path = if under.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", under.trim_end_matches('/'))
        };
        let kind = child
            .file_type()
            .map_err(|e| BuildError::source(&path, e))?;
        if kind.is_dir() {
            walk(&path, &install_path, section, files)?;
        } else if kind.is_file() {
            files.push(PayloadFile {
                section,
                source: path,
                install_path,
            });
        } else {
            return Err(BuildError::Source {
                path,
                reason: "is not a regular file or directory (bundles hold regular files only)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", join(.0))]
    Metadata(Vec<ValidationError>),
    #[error(transparent)]
    Layout(#[from] LayoutConflict),
    #[error("cannot generate an empty patch: give at least one payload file or script")]
    Empty,
    #[error("{0}")]
    Argument(String),
    #[error("{path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error(
        "member name {0:?} is too long for the archive (at most 255 bytes, split at a '/' into 155 + 100)"
    )]
    NameTooLong(String),
    #[error("{0} changed while the patch was being built; build again")]
    SourceChanged(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the patch in {dir}: {source}")]
    Write { dir: PathBuf, source: io::Error },
}

fn join(errors: &[ValidationError]) -> String {
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

impl BuildError {
    fn source(path: &Path, e: io::Error) -> BuildError {
        let reason = match e.kind() {
            io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        };
        BuildError::Source {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// Whether the spec or its arguments were at fault (rather than reading or writing).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            BuildError::Read { .. } | BuildError::Write { .. } | BuildError::SourceChanged(_)
        )
    }
}

/// A member to write: where its bytes come from.
enum Bytes {
    Memory(Vec<u8>),
    File(PathBuf),
}

struct Member {
    entry: ManifestEntry,
    bytes: Bytes,
}

/// Builds, signs and writes `<out_dir>/<id>.patch` (replacing one that exists). Returns its
/// path. The same spec, sources and key always give the same bytes.
pub fn build(spec: &BuildSpec, key: &SigningKey, out_dir: &Path) -> Result<PathBuf, BuildError> {
    if spec.payload.is_empty() && spec.scripts.is_empty() {
        return Err(BuildError::Empty);
    }
    let metadata = metadata_of(spec)?;

    // Pass 1: hash every source.
    let mut buf = vec![0u8; CHUNK];
    let mut metadata_bytes = serde_json::to_vec_pretty(&metadata).expect("metadata serialises");
    metadata_bytes.push(b'\n');
    let mut members = vec![Member {
        entry: ManifestEntry {
            path: METADATA.into(),
            size: metadata_bytes.len() as u64,
            sha256: sha256_hex(&metadata_bytes),
            executable: false,
        },
        bytes: Bytes::Memory(metadata_bytes),
    }];
    for (script, source) in &spec.scripts {
        let (size, sha256, _) = hash_source(source, &mut buf)?;
        members.push(Member {
            entry: ManifestEntry {
                path: script.member(),
                size,
                sha256,
                executable: true,
            },
            bytes: Bytes::File(source.clone()),
        });
    }
    let mut payload: Vec<&PayloadFile> = spec.payload.iter().collect();
    payload.sort_by_key(|p| p.section.member(&p.install_path));
    for file in payload {
        let (size, sha256, executable) = hash_source(&file.source, &mut buf)?;
        members.push(Member {
            entry: ManifestEntry {
                path: file.section.member(&file.install_path),
                size,
                sha256,
                executable,
            },
            bytes: Bytes::File(file.source.clone()),
        });
    }

    let manifest = Manifest {
        format: FORMAT_VERSION,
        key_id: key.id().clone(),
        members: members.iter().map(|m| m.entry.clone()).collect(),
    };
    let manifest_bytes = manifest.to_bytes();
    let signature = SignatureFile::sign(&manifest_bytes, key).to_bytes();

    // Pass 2: write the archive.
    let write_error = |source| BuildError::Write {
        dir: out_dir.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", metadata.id))
        .suffix(".partial")
        .tempfile_in(out_dir)
        .map_err(write_error)?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(CHUNK, temp.as_file()));
    let mut tar = Writer {
        tar: &mut builder,
        out_dir,
    };
    tar.append(MANIFEST, 0o644, &manifest_bytes)?;
    tar.append(SIGNATURE, 0o644, &signature)?;
    for member in &members {
        let entry = &member.entry;
        match &member.bytes {
            Bytes::Memory(bytes) => tar.append(&entry.path, entry.mode(), bytes)?,
            Bytes::File(source) => {
                let file = File::open(source).map_err(|e| BuildError::source(source, e))?;
                let mut reader = HashingReader::new(file.take(entry.size));
                tar.append_sized(&entry.path, entry.mode(), entry.size, &mut reader)?;
                if reader.finish() != (entry.size, entry.sha256.clone()) {
                    return Err(BuildError::SourceChanged(source.clone()));
                }
            }
        }
    }
    let mut out = builder.into_inner().map_err(write_error)?;
    out.flush().map_err(write_error)?;
    drop(out);

    let path = out_dir.join(metadata.id.file_name());
    temp.persist(&path).map_err(|e| write_error(e.error))?;
    Ok(path)
}

/// The metadata a spec describes, in canonical order, validated.
fn metadata_of(spec: &BuildSpec) -> Result<PatchMetadata, BuildError> {
    let mut requires = spec.requires.clone();
    requires.sort();
    requires.dedup();
    let contents = contents_of(
        spec.payload
            .iter()
            .map(|f| (f.section, f.install_path.as_str())),
    )?;
    let metadata = PatchMetadata {
        id: spec.id.clone(),
        sw_version: spec.sw_version.clone(),
        summary: spec.summary.clone(),
        description: spec.description.clone(),
        install_instructions: spec.install_instructions.clone(),
        warnings: spec.warnings.clone(),
        status: spec.status,
        unremovable: spec.unremovable,
        reboot_required: spec.reboot_required,
        apply_active_release_only: spec.apply_active_release_only,
        requires,
        contents,
    };
    metadata.validate().map_err(BuildError::Metadata)?;
    Ok(metadata)
}

/// Size, hex SHA-256 and whether any execute bit is set, of a regular file.
fn hash_source(path: &Path, buf: &mut [u8]) -> Result<(u64, String, bool), BuildError> {
    let file = File::open(path).map_err(|e| BuildError::source(path, e))?;
    let meta = file.metadata().map_err(|e| BuildError::source(path, e))?;
    if !meta.is_file() {
        return Err(BuildError::Source {
            path: path.to_path_buf(),
            reason: "is not a regular file".into(),
        });
    }
    let (size, sha256) = hash_reader(file, buf).map_err(|source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((size, sha256, meta.permissions().mode() & 0o111 != 0))
}

struct Writer<'a, W: Write> {
    tar: &'a mut tar::Builder<W>,
    out_dir: &'a Path,
}

impl<W: Write> Writer<'_, W> {
    fn append(&mut self, name: &str, mode: u32, bytes: &[u8]) -> Result<(), BuildError> {
        self.append_sized(name, mode, bytes.len() as u64, bytes)
    }

    /// Appends a regular-file member with a deterministic ustar header: no owner, time 0.
    fn append_sized(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        data: impl Read,
    ) -> Result<(), BuildError> {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(name)
            .map_err(|_| BuildError::NameTooLong(name.to_string()))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        self.tar
            .append(&header, data)
            .map_err(|source| BuildError::Write {
                dir: self.out_dir.to_path_buf(),
                source,
            })
    }
}
