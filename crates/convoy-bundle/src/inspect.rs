//! Reading a bundle's metadata and manifest without deciding whether to trust it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use convoy_core::patch::PatchMetadata;
use serde::Serialize;

use crate::archive::{corrupt, describe, member_name, read_small};
use crate::digest::CHUNK;
use crate::error::VerifyError;
use crate::keys::KeyId;
use crate::layout::{MANIFEST, METADATA, SIGNATURE};
use crate::limits::{Limit, Limits, MAX_SIGNATURE_SIZE};
use crate::manifest::Manifest;
use crate::signature::SignatureFile;

/// What a bundle says about itself. Nothing here has been checked against a signature.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub metadata: PatchMetadata,
    pub manifest: Manifest,
    /// The key `manifest.sig` names, if there is one.
    pub signed_by: Option<KeyId>,
    /// The bundle file's size in bytes.
    pub size: u64,
}

/// Reads the manifest, the signature's key id and the metadata of the bundle at `path`
/// (with the default limits on their sizes). Payload members are neither read nor hashed.
pub fn inspect(path: &Path) -> Result<Inspection, VerifyError> {
    let limits = Limits::default();
    let io_error = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let mut archive = tar::Archive::new(BufReader::with_capacity(CHUNK, file));
    let mut entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut next = || entries.next().transpose().map_err(corrupt);

    let mut entry = next()?;
    let manifest = match &mut entry {
        Some(e) if member_name(e)? == MANIFEST => {
            let bytes = read_small(e, MANIFEST, limits.max_manifest_size, Limit::ManifestSize)?;
            Manifest::parse(&bytes, &limits)?
        }
        _ => {
            return Err(VerifyError::MissingManifest {
                found: describe(&entry),
            });
        }
    };
    drop(entry);

    let mut signed_by = None;
    let mut metadata = None;
    while let Some(mut entry) = next()? {
        let name = member_name(&entry)?;
        if name == SIGNATURE && signed_by.is_none() {
            let bytes = read_small(
                &mut entry,
                SIGNATURE,
                MAX_SIGNATURE_SIZE,
                Limit::SignatureSize,
            )?;
            signed_by = Some(SignatureFile::parse(&bytes)?.key_id);
        } else if name == METADATA {
            let bytes = read_small(
                &mut entry,
                METADATA,
                limits.max_metadata_size,
                Limit::MetadataSize,
            )?;
            metadata = Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| VerifyError::MalformedMetadata(e.to_string()))?,
            );
            break;
        }
    }
    let metadata = metadata.ok_or_else(|| VerifyError::MissingMember {
        path: METADATA.into(),
    })?;
    Ok(Inspection {
        metadata,
        manifest,
        signed_by,
        size,
    })
}
