//! Verification: the only way to a `VerifiedBundle`.
//!
//! Order (the signed manifest is checked before any other member is read, as TUF checks
//! metadata before targets):
//! 1. the file's size against `max_total_size`;
//! 2. the first member is `manifest.json` (within `max_manifest_size`), the second
//!    `manifest.sig`;
//! 3. the signature: its key is trusted, the manifest is the one it signed, and it verifies
//!    (`verify_strict`);
//! 4. the manifest: format, key, every path safe and in the layout, sizes and count within
//!    the limits;
//! 5. every other member, in one streaming pass: a regular file, a safe path, listed in the
//!    manifest, not seen before, with the listed size, mode and SHA-256;
//! 6. no listed member is missing, and nothing but zeros follows the end of the archive;
//! 7. the metadata: valid, and its contents are exactly what the payload members give each
//!    personality.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use convoy_core::patch::PatchMetadata;

use crate::archive::{corrupt, describe, member_name, mode, read_small};
use crate::contents::{contents_of, difference};
use crate::digest::{CHUNK, hash_reader, sha256_hex};
use crate::error::VerifyError;
use crate::keys::{KeyId, TrustedKeys};
use crate::layout::{MANIFEST, METADATA, SIGNATURE};
use crate::limits::{Limit, Limits, MAX_SIGNATURE_SIZE};
use crate::manifest::{Manifest, ManifestEntry};
use crate::signature::SignatureFile;

/// A bundle whose every byte matched its signed manifest when it was verified. Its members
/// are read through `read_member` and the `unpack_*` methods, which check each member's
/// hash again as they read it, so they hand out verified bytes only.
#[derive(Debug)]
pub struct VerifiedBundle {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) size: u64,
    pub(crate) key_id: KeyId,
    pub(crate) manifest: Manifest,
    pub(crate) metadata: PatchMetadata,
    /// Where each member's bytes start in the file.
    pub(crate) offsets: BTreeMap<String, u64>,
}

impl VerifiedBundle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &PatchMetadata {
        &self.metadata
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The trusted key that signed the bundle.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The bundle file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Verifies the bundle at `path` against the trusted keys and the limits.
pub fn verify(
    path: &Path,
    trusted: &TrustedKeys,
    limits: &Limits,
) -> Result<VerifiedBundle, VerifyError> {
    let io_error = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    if size > limits.max_total_size {
        return Err(VerifyError::LimitExceeded {
            what: "the bundle".into(),
            limit: Limit::TotalSize,
            actual: size,
            max: limits.max_total_size,
        });
    }

    let mut archive = tar::Archive::new(BufReader::with_capacity(CHUNK, &file));
    let mut entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut next = || entries.next().transpose().map_err(corrupt);

    // 1-2. The manifest and its signature come first.
    let mut entry = next()?;
    let manifest_bytes = match &mut entry {
        Some(e) if member_name(e)? == MANIFEST => {
            read_small(e, MANIFEST, limits.max_manifest_size, Limit::ManifestSize)?
        }
        _ => {
            return Err(VerifyError::MissingManifest {
                found: describe(&entry),
            });
        }
    };
    drop(entry);
    let mut entry = next()?;
    let signature = match &mut entry {
        Some(e) if member_name(e)? == SIGNATURE => {
            read_small(e, SIGNATURE, MAX_SIGNATURE_SIZE, Limit::SignatureSize)?
        }
        _ => {
            return Err(VerifyError::MissingSignature {
                found: describe(&entry),
            });
        }
    };
    drop(entry);

    // 3-4. Trust the manifest before reading anything it describes.
    let key_id = SignatureFile::parse(&signature)?.check(&manifest_bytes, trusted)?;
    let manifest = Manifest::parse(&manifest_bytes, limits)?;
    if manifest.key_id != key_id {
        return Err(VerifyError::MalformedManifest(format!(
            "it names key {} but manifest.sig is by key {key_id}",
            manifest.key_id
        )));
    }

    // 5. Every other member against the manifest.
    let expected: BTreeMap<&str, &ManifestEntry> = manifest
        .members
        .iter()
        .map(|m| (m.path.as_str(), m))
        .collect();
    let mut offsets = BTreeMap::new();
    let mut metadata_bytes = None;
    let mut buf = vec![0u8; CHUNK];
    while let Some(mut entry) = next()? {
        let name = member_name(&entry)?;
        if name == MANIFEST || name == SIGNATURE || offsets.contains_key(&name) {
            return Err(VerifyError::DuplicateMember { path: name });
        }
        let Some(want) = expected.get(name.as_str()) else {
            return Err(VerifyError::ExtraMember { path: name });
        };
        if entry.size() != want.size {
            return Err(VerifyError::SizeMismatch {
                path: name,
                expected: want.size,
                actual: entry.size(),
            });
        }
        let actual_mode = mode(&entry)?;
        if actual_mode != want.mode() {
            return Err(VerifyError::ModeMismatch {
                path: name,
                expected: want.mode(),
                actual: actual_mode,
            });
        }
        let offset = entry.raw_file_position();
        let (read, sha256) = if name == METADATA {
            let bytes = read_small(&mut entry, METADATA, want.size, Limit::MetadataSize)?;
            let hash = sha256_hex(&bytes);
            metadata_bytes = Some(bytes);
            (want.size, hash)
        } else {
            hash_reader(&mut entry, &mut buf).map_err(corrupt)?
        };
        if read != want.size {
            return Err(VerifyError::Corrupt(format!("{name} is truncated")));
        }
        if sha256 != want.sha256 {
            return Err(VerifyError::HashMismatch { path: name });
        }
        offsets.insert(name, offset);
    }

    // 6. Nothing missing, nothing after the end.
    if let Some(missing) = expected.keys().find(|p| !offsets.contains_key(**p)) {
        return Err(VerifyError::MissingMember {
            path: missing.to_string(),
        });
    }
    let mut rest = archive.into_inner();
    loop {
        let n = rest.read(&mut buf).map_err(corrupt)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(VerifyError::TrailingData);
        }
    }

    // 7. The metadata describes exactly the members.
    let metadata_bytes = metadata_bytes.ok_or_else(|| VerifyError::MissingMember {
        path: METADATA.into(),
    })?;
    let metadata: PatchMetadata = serde_json::from_slice(&metadata_bytes)
        .map_err(|e| VerifyError::MalformedMetadata(e.to_string()))?;
    metadata.validate().map_err(|errors| {
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        VerifyError::MalformedMetadata(messages.join("; "))
    })?;
    let expected = contents_of(manifest.payload())
        .map_err(|conflict| VerifyError::MetadataMismatch(conflict.to_string()))?;
    if let Some(why) = difference(&expected, &metadata.contents) {
        return Err(VerifyError::MetadataMismatch(why));
    }

    Ok(VerifiedBundle {
        path: path.to_path_buf(),
        file,
        size,
        key_id,
        manifest,
        metadata,
        offsets,
    })
}
