//! The patch bundle format: build, sign (ed25519), verify and safely unpack signed patches.
//!
//! A patch file `<ID>.patch` is an uncompressed tar archive of regular files:
//! `manifest.json` (every other member with its size and SHA-256), `manifest.sig` (an ed25519
//! signature of the manifest's exact bytes), `metadata.json`
//! (`convoy_core::patch::PatchMetadata`), optional `scripts/*` and the payload under
//! `payload/<section>/<install path>`. docs/bundle-format.md describes it in full.
//!
//! - [`build`] writes and signs a bundle from a [`BuildSpec`].
//! - [`inspect`] reads what a bundle says about itself, trusting nothing.
//! - [`verify`] checks every byte against the signed manifest and returns a
//!   [`VerifiedBundle`], whose `read_member` and `unpack_*` methods are the only way to its
//!   contents and hash every byte again as they read it.

mod archive;
mod build;
mod contents;
mod digest;
mod error;
mod inspect;
mod keys;
mod layout;
mod limits;
mod manifest;
mod path;
mod signature;
mod unpack;
mod verify;

#[cfg(feature = "tamper")]
pub mod tamper;

pub use build::{BuildError, BuildSpec, PayloadFile, build};
pub use contents::{Contents, LayoutConflict, contents_of};
pub use error::VerifyError;
pub use inspect::{Inspection, inspect};
pub use keys::{KeyError, KeyId, PublicKey, SigningKey, TrustedKeys};
pub use layout::{MANIFEST, METADATA, SIGNATURE, Script, Section};
pub use limits::{Limit, Limits};
pub use manifest::{FORMAT_VERSION, Manifest, ManifestEntry};
pub use path::PathProblem;
pub use unpack::{InstallFile, UnpackError};
pub use verify::{VerifiedBundle, verify};
