//! The manifest (`manifest.json`): every member other than itself and its signature, with its
//! size, SHA-256 and whether it is executable. It is the one thing the signature covers, so it
//! is what binds every byte of the bundle to the signing key.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::VerifyError;
use crate::keys::KeyId;
use crate::layout::{LayoutProblem, METADATA, MemberKind, Script, Section, classify};
use crate::limits::{Limit, Limits};

/// The format this crate writes and reads.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The bundle format; verifiers refuse formats they do not know.
    pub format: u64,
    /// The key that signed this manifest (as in `manifest.sig`).
    pub key_id: KeyId,
    /// Every member except `manifest.json` and `manifest.sig`, in archive order.
    pub members: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the member's bytes.
    pub sha256: String,
    /// Installed with mode 0755 rather than 0644 (scripts always are).
    pub executable: bool,
}

impl ManifestEntry {
    /// The mode of the member's tar header, and of the file it is unpacked to.
    pub fn mode(&self) -> u32 {
        if self.executable { 0o755 } else { 0o644 }
    }
}

impl Manifest {
    pub fn entry(&self, path: &str) -> Option<&ManifestEntry> {
        self.members.iter().find(|m| m.path == path)
    }

    /// The payload members as (section, install path).
    pub fn payload(&self) -> impl Iterator<Item = (Section, &str)> {
        self.members.iter().filter_map(|m| match classify(&m.path) {
            Ok(MemberKind::Payload {
                section,
                install_path,
            }) => Some((section, install_path)),
            _ => None,
        })
    }

    /// The scripts the bundle holds.
    pub fn scripts(&self) -> Vec<Script> {
        let mut scripts: Vec<Script> = self
            .members
            .iter()
            .filter_map(|m| match classify(&m.path) {
                Ok(MemberKind::Script(script)) => Some(script),
                _ => None,
            })
            .collect();
        scripts.sort();
        scripts
    }

    /// The sum of the members' sizes.
    pub fn payload_size(&self) -> u64 {
        self.members.iter().map(|m| m.size).sum()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Parses manifest bytes and checks every entry against the layout and the limits.
    pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Manifest, VerifyError> {
        // The format is read first, so a newer format is named rather than refused as
        // malformed for its unknown fields.
        #[derive(Deserialize)]
        struct Format {
            format: u64,
        }
        let format: Format = serde_json::from_slice(bytes)
            .map_err(|e| VerifyError::MalformedManifest(e.to_string()))?;
        if format.format != FORMAT_VERSION {
            return Err(VerifyError::UnsupportedFormat(format.format));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| VerifyError::MalformedManifest(e.to_string()))?;
        manifest.check(limits)?;
        Ok(manifest)
    }

    fn check(&self, limits: &Limits) -> Result<(), VerifyError> {
        let count = self.members.len() + 2;
        if count > limits.max_members {
            return Err(VerifyError::TooManyMembers {
                actual: count,
                max: limits.max_members,
            });
        }
        let mut seen = BTreeSet::new();
        let mut total = 0u64;
        for entry in &self.members {
            match classify(&entry.path) {
                Ok(_) => {}
                Err(LayoutProblem::Unsafe(problem)) => {
                    return Err(VerifyError::UnsafePath {
                        path: entry.path.clone(),
                        problem,
                    });
                }
                Err(LayoutProblem::Unknown) => {
                    return Err(VerifyError::MalformedManifest(format!(
                        "it lists {:?}, which has no place in a bundle",
                        entry.path
                    )));
                }
            }
            if !seen.insert(entry.path.as_str()) {
                return Err(VerifyError::MalformedManifest(format!(
                    "it lists {} twice",
                    entry.path
                )));
            }
            if entry.sha256.len() != 64
                || !entry
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(VerifyError::MalformedManifest(format!(
                    "the sha256 of {} is not 64 lowercase hex digits",
                    entry.path
                )));
            }
            if matches!(classify(&entry.path), Ok(MemberKind::Script(_))) && !entry.executable {
                return Err(VerifyError::MalformedManifest(format!(
                    "the script {} is not executable",
                    entry.path
                )));
            }
            let (limit, max) = if entry.path == METADATA {
                (Limit::MetadataSize, limits.max_metadata_size)
            } else {
                (Limit::MemberSize, limits.max_member_size)
            };
            if entry.size > max {
                return Err(VerifyError::LimitExceeded {
                    what: format!("member {}", entry.path),
                    limit,
                    actual: entry.size,
                    max,
                });
            }
            total = total.saturating_add(entry.size);
        }
        if total > limits.max_total_size {
            return Err(VerifyError::LimitExceeded {
                what: "the sum of the members".into(),
                limit: Limit::TotalSize,
                actual: total,
                max: limits.max_total_size,
            });
        }
        if !seen.contains(METADATA) {
            return Err(VerifyError::MalformedManifest(
                "it does not list metadata.json".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(paths: &[&str]) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            key_id: KeyId::from_text("0123456789abcdef".into()),
            members: paths
                .iter()
                .map(|p| ManifestEntry {
                    path: p.to_string(),
                    size: 10,
                    sha256: "a".repeat(64),
                    executable: p.starts_with("scripts/"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = manifest(&[
            "metadata.json",
            "scripts/pre-install",
            "payload/all/etc/motd",
        ]);
        let parsed = Manifest::parse(&m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(parsed, m);
        assert_eq!(parsed.payload_size(), 30);
    }

    #[test]
    fn another_format_is_named() {
        let json = br#"{"format": 2, "anything": "new"}"#;
        let err = Manifest::parse(json, &Limits::default()).unwrap_err();
        assert!(matches!(err, VerifyError::UnsupportedFormat(2)), "{err}");
    }

    #[test]
    fn bad_entries_are_refused() {
        let limits = Limits::default();
        let cases: &[(&[&str], &str)] = &[
            (&["payload/all/x"], "does not list metadata.json"),
            (&["metadata.json", "metadata.json"], "twice"),
            (&["metadata.json", "elsewhere"], "has no place"),
            (&["metadata.json", "payload/all/../../x"], "unsafe path"),
            (&["metadata.json", "/etc/passwd"], "unsafe path"),
        ];
        for (paths, expected) in cases {
            let err = Manifest::parse(&manifest(paths).to_bytes(), &limits).unwrap_err();
            assert!(err.to_string().contains(expected), "{paths:?}: {err}");
        }
    }

    #[test]
    fn limits_apply_to_what_the_manifest_declares() {
        let m = manifest(&["metadata.json", "payload/all/a", "payload/all/b"]);
        let bytes = m.to_bytes();
        let small = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            Manifest::parse(&bytes, &l).unwrap_err().to_string()
        };
        assert!(small(|l| l.max_members = 4).contains("max_members"));
        assert!(small(|l| l.max_member_size = 9).contains("max_member_size"));
        assert!(small(|l| l.max_metadata_size = 9).contains("max_metadata_size"));
        assert!(small(|l| l.max_total_size = 29).contains("max_total_size"));
    }
}
