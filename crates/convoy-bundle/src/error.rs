//! Why a bundle is refused. Every message starts with the kind of problem (`altered member`,
//! `bad signature`, `unsafe path`, ...) and names the member or key concerned.

use std::path::PathBuf;

use crate::keys::KeyId;
use crate::limits::Limit;
use crate::path::PathProblem;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be opened or read (not a verdict on its content).
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("limit exceeded: {what} is {actual} bytes, over {limit} ({max})")]
    LimitExceeded {
        what: String,
        limit: Limit,
        actual: u64,
        max: u64,
    },
    #[error("limit exceeded: {actual} members, over max_members ({max})")]
    TooManyMembers { actual: usize, max: usize },
    #[error("missing member: the first member must be manifest.json, found {found}")]
    MissingManifest { found: String },
    #[error("missing signature: the second member must be manifest.sig, found {found}")]
    MissingSignature { found: String },
    #[error("bad signature: manifest.sig is malformed: {0}")]
    MalformedSignature(String),
    #[error(
        "untrusted key: the bundle is signed by key {key_id}, which is not trusted (trusted: {trusted})"
    )]
    UntrustedKey { key_id: KeyId, trusted: String },
    #[error(
        "altered manifest: manifest.json is not the manifest key {key_id} signed (its SHA-256 differs)"
    )]
    AlteredManifest { key_id: KeyId },
    #[error("bad signature: manifest.sig does not verify manifest.json with key {key_id}")]
    BadSignature { key_id: KeyId },
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    #[error("unsupported bundle format {0}: this version of convoy reads format 1")]
    UnsupportedFormat(u64),
    #[error("unsafe path: member {path:?} is refused because {problem}")]
    UnsafePath { path: String, problem: PathProblem },
    #[error("not a regular file: member {path:?} is a {kind}")]
    NotRegularFile { path: String, kind: &'static str },
    #[error("extra member: {path} is not listed in the manifest")]
    ExtraMember { path: String },
    #[error("duplicate member: {path} appears more than once")]
    DuplicateMember { path: String },
    #[error("missing member: {path} is listed in the manifest but not in the archive")]
    MissingMember { path: String },
    #[error("altered member: {path} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("altered member: the SHA-256 of {path} differs from the manifest")]
    HashMismatch { path: String },
    #[error("altered member: {path} has mode {actual:o}, the manifest says {expected:o}")]
    ModeMismatch {
        path: String,
        expected: u32,
        actual: u32,
    },
    #[error("malformed metadata: {0}")]
    MalformedMetadata(String),
    #[error("metadata does not match the members: {0}")]
    MetadataMismatch(String),
    #[error("trailing data: non-zero bytes after the end of the archive")]
    TrailingData,
}

impl VerifyError {
    /// Whether this is a verdict on the bundle's content (rather than a file that could not
    /// be read at all).
    pub fn is_rejection(&self) -> bool {
        !matches!(self, VerifyError::Io { .. })
    }
}
