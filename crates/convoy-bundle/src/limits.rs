//! Size limits on everything read from a bundle, checked before the bytes are read
//! (tough's `Limits`).

use std::fmt;

/// Upper bounds a verifier enforces. The defaults suit patches of up to a few GiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole bundle file, in bytes.
    pub max_total_size: u64,
    /// Members in the archive, `manifest.json` and `manifest.sig` included.
    pub max_members: usize,
    /// Any one member, in bytes.
    pub max_member_size: u64,
    /// `metadata.json`, in bytes (it is read into memory).
    pub max_metadata_size: u64,
    /// `manifest.json`, in bytes (it is read into memory).
    pub max_manifest_size: u64,
}

/// The largest `manifest.sig` read; a real one is under 200 bytes.
pub(crate) const MAX_SIGNATURE_SIZE: u64 = 4096;

impl Default for Limits {
    fn default() -> Self {
        const GIB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        Limits {
            max_total_size: 8 * GIB,
            max_members: 20_000,
            max_member_size: 4 * GIB,
            max_metadata_size: MIB,
            max_manifest_size: 8 * MIB,
        }
    }
}

/// Which limit a bundle went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    TotalSize,
    Members,
    MemberSize,
    MetadataSize,
    ManifestSize,
    SignatureSize,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::TotalSize => "max_total_size",
            Limit::Members => "max_members",
            Limit::MemberSize => "max_member_size",
            Limit::MetadataSize => "max_metadata_size",
            Limit::ManifestSize => "max_manifest_size",
            Limit::SignatureSize => "the signature size limit",
        })
    }
}
