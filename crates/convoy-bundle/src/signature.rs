//! The signature (`manifest.sig`): an ed25519 signature over the exact bytes of
//! `manifest.json`, with the id of the key that made it.
//!
//! It also carries the SHA-256 of the manifest it signed. That hash decides nothing (only the
//! signature does); it lets a verifier say "the manifest was altered" rather than only "the
//! signature does not verify" when someone edits the manifest but not the signature.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::VerifyError;
use crate::keys::{KeyId, SigningKey, TrustedKeys};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignatureFile {
    pub(crate) key_id: KeyId,
    pub(crate) manifest_sha256: String,
    /// 64 bytes, hex.
    pub(crate) signature: String,
}

impl SignatureFile {
    pub(crate) fn sign(manifest: &[u8], key: &SigningKey) -> SignatureFile {
        SignatureFile {
            key_id: key.id().clone(),
            manifest_sha256: hex::encode(Sha256::digest(manifest)),
            signature: hex::encode(key.sign(manifest).to_bytes()),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a signature serialises");
        bytes.push(b'\n');
        bytes
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<SignatureFile, VerifyError> {
        serde_json::from_slice(bytes).map_err(|e| VerifyError::MalformedSignature(e.to_string()))
    }

    /// Decides whether `manifest` is signed by a trusted key; returns that key's id.
    pub(crate) fn check(
        &self,
        manifest: &[u8],
        trusted: &TrustedKeys,
    ) -> Result<KeyId, VerifyError> {
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                VerifyError::MalformedSignature("the signature is not 64 bytes of hex".into())
            })?;
        let Some(key) = trusted.get(&self.key_id) else {
            let ids: Vec<&str> = trusted.ids().map(KeyId::as_str).collect();
            return Err(VerifyError::UntrustedKey {
                key_id: self.key_id.clone(),
                trusted: if ids.is_empty() {
                    "none".into()
                } else {
                    ids.join(", ")
                },
            });
        };
        if hex::encode(Sha256::digest(manifest)) != self.manifest_sha256 {
            return Err(VerifyError::AlteredManifest {
                key_id: self.key_id.clone(),
            });
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        // verify_strict refuses weak keys and malleable signatures that `verify` accepts.
        key.verifying_key()
            .verify_strict(manifest, &signature)
            .map_err(|_| VerifyError::BadSignature {
                key_id: self.key_id.clone(),
            })?;
        Ok(self.key_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    #[test]
    fn a_signed_manifest_verifies_with_its_key_only() {
        let manifest = b"{\"format\": 1}\n";
        let sig = SignatureFile::sign(manifest, &key(1));
        let parsed = SignatureFile::parse(&sig.to_bytes()).unwrap();
        let trusted = TrustedKeys::new([key(1).public_key()]);
        assert_eq!(parsed.check(manifest, &trusted).unwrap(), *key(1).id());

        let others = TrustedKeys::new([key(2).public_key()]);
        let err = parsed.check(manifest, &others).unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err}");

        let err = parsed.check(b"{\"format\": 2}\n", &trusted).unwrap_err();
        assert!(matches!(err, VerifyError::AlteredManifest { .. }), "{err}");
    }

    #[test]
    fn a_flipped_signature_is_bad() {
        let manifest = b"{}";
        let mut sig = SignatureFile::sign(manifest, &key(1));
        let mut bytes = hex::decode(&sig.signature).unwrap();
        bytes[10] ^= 0x40;
        sig.signature = hex::encode(bytes);
        let trusted = TrustedKeys::new([key(1).public_key()]);
        let err = sig.check(manifest, &trusted).unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
        sig.signature.truncate(10);
        let err = sig.check(manifest, &trusted).unwrap_err();
        assert!(matches!(err, VerifyError::MalformedSignature(_)), "{err}");
    }
}
