//! Signing keys and the keys a verifier trusts.
//!
//! Keys are stored as standard PEM files, so OpenSSL can make and read them too
//! (`openssl genpkey -algorithm ed25519`): the signing key as PKCS#8 (`BEGIN PRIVATE KEY`),
//! the public key as SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`). A key is named by its key id:
//! the first 16 hex digits of the SHA-256 of its 32 raw public-key bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ed25519 {what} in PEM form: {reason}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// A short name for a public key: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    fn of(key: &ed25519_dalek::VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId(hex::encode(&digest[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn from_text(text: String) -> KeyId {
        KeyId(text)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key that signs bundles. Keep its file private (it is written with mode 0600).
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    id: KeyId,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key with this 32-byte secret seed (tests use fixed seeds).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = KeyId::of(&key.verifying_key());
        SigningKey { key, id }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::new(self.key.verifying_key())
    }

    /// Reads a PKCS#8 PEM file (`BEGIN PRIVATE KEY`).
    pub fn read(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read_text(path)?;
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Malformed {
                path: path.to_path_buf(),
                what: "signing key",
                reason: e.to_string(),
            })?;
        let id = KeyId::of(&key.verifying_key());
        Ok(SigningKey { key, id })
    }

    /// Writes the key as PKCS#8 PEM with mode 0600. Refuses to replace an existing file: a
    /// lost signing key cannot be recovered.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        // PKCS#8 v1 (no public key inside): OpenSSL 3.0 cannot read ed25519 keys in v2.
        let pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = pair
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Write {
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
        write_new(path, pem.as_bytes(), 0o600)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        use ed25519_dalek::Signer;
        self.key.sign(message)
    }
}

/// A public key: what a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    fn new(key: ed25519_dalek::VerifyingKey) -> PublicKey {
        let id = KeyId::of(&key);
        PublicKey { key, id }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Reads a SubjectPublicKeyInfo PEM file (`BEGIN PUBLIC KEY`).
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_text(path)?;
        PublicKey::from_pem(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            what: "public key",
            reason,
        })
    }

    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(text)
            .map(PublicKey::new)
            .map_err(|e| e.to_string())
    }

    pub fn to_pem(&self) -> String {
        // Encoding 32 bytes into a fixed structure cannot fail.
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an ed25519 public key encodes as PEM")
    }

    /// Writes the key as PEM (mode 0644); refuses to replace an existing file.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        write_new(path, self.to_pem().as_bytes(), 0o644)
    }

    pub(crate) fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }
}

/// The keys whose signatures a verifier accepts, by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustedKeys {
        TrustedKeys {
            keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        }
    }

    /// Reads each public key file.
    pub fn read(paths: &[PathBuf]) -> Result<TrustedKeys, KeyError> {
        let keys = paths
            .iter()
            .map(|p| PublicKey::read(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedKeys::new(keys))
    }

    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.id.clone(), key);
    }

    pub fn get(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let error = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_round_trip_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (private, public) = (dir.path().join("k.pem"), dir.path().join("k.pub.pem"));
        key.write(&private).unwrap();
        key.public_key().write(&public).unwrap();

        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&private).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");

        let read = SigningKey::read(&private).unwrap();
        assert_eq!(read.id(), key.id());
        let public = PublicKey::read(&public).unwrap();
        assert_eq!(public, key.public_key());
        assert_eq!(public.id().as_str().len(), 16);
    }

    #[test]
    fn the_signing_key_file_is_pkcs8_v1_as_openssl_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        SigningKey::from_seed(&[7; 32]).write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n\
             -----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn an_existing_key_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "keep me").unwrap();
        let err = SigningKey::generate().unwrap().write(&path).unwrap_err();
        assert!(matches!(err, KeyError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn a_public_key_is_not_a_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pub.pem");
        SigningKey::generate()
            .unwrap()
            .public_key()
            .write(&path)
            .unwrap();
        let err = SigningKey::read(&path).unwrap_err();
        assert!(
            err.to_string().contains("is not an ed25519 signing key"),
            "{err}"
        );
    }
}
