//! A site's prestage store (`DATA_DIR/prestage`): chunks by SHA-256 (`chunks/<sha256>`), kept
//! for every later transfer of any release, and releases prestaged for install by software
//! version (`install/<MM.mm>/<id>.patch`).
//!
//! A chunk is written to a temporary file, synced and renamed into place: a chunk file that
//! exists is whole. Its digest is checked on arrival and again when a bundle is assembled
//! from it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use convoy_api::prestage::{ChunkRef, PrestagedVersion};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SiteStoreError {
    #[error("{0} is not a SHA-256 digest (64 lowercase hex digits)")]
    NotADigest(String),
    #[error("the chunk's bytes hash to {actual}, not {expected}; send it again")]
    DigestMismatch { expected: String, actual: String },
    #[error("chunk {0} is not held here; send it first")]
    Missing(String),
    #[error(
        "the assembled bundle is {actual_size} bytes with SHA-256 {actual}, not {size} bytes with {expected}"
    )]
    BundleMismatch {
        expected: String,
        actual: String,
        size: u64,
        actual_size: u64,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct SiteStore {
    root: PathBuf,
}

pub fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_digest(text: &str) -> Result<(), SiteStoreError> {
    if is_digest(text) {
        Ok(())
    } else {
        Err(SiteStoreError::NotADigest(text.chars().take(80).collect()))
    }
}

impl SiteStore {
    pub fn new(data_dir: &Path) -> SiteStore {
        SiteStore {
            root: data_dir.join("prestage"),
        }
    }

    fn chunks(&self) -> PathBuf {
        self.root.join("chunks")
    }

    fn chunk(&self, sha256: &str) -> PathBuf {
        self.chunks().join(sha256)
    }

    /// The directory of the releases prestaged for install as `sw_version`.
    pub fn install_dir(&self, sw_version: &str) -> PathBuf {
        self.root.join("install").join(sw_version)
    }

    /// The digests of `asked` this store does not hold, in the order asked.
    pub fn missing(&self, asked: &[String]) -> Result<Vec<String>, SiteStoreError> {
        let mut missing = Vec::new();
        for sha in asked {
            check_digest(sha)?;
            if !self.chunk(sha).is_file() && !missing.contains(sha) {
                missing.push(sha.clone());
            }
        }
        Ok(missing)
    }

    /// Keeps `bytes` as chunk `sha256` after checking its digest; false if it was held.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> Result<bool, SiteStoreError> {
        check_digest(sha256)?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha256 {
            return Err(SiteStoreError::DigestMismatch {
                expected: sha256.to_string(),
                actual,
            });
        }
        let path = self.chunk(sha256);
        if path.is_file() {
            return Ok(false);
        }
        std::fs::create_dir_all(self.chunks())?;
        let part = self
            .chunks()
            .join(format!(".{sha256}.{}.part", uuid::Uuid::new_v4()));
        let written = (|| {
            let mut file = std::fs::File::create(&part)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&part, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
        crate::patches::repository::sync_dir(&self.chunks());
        Ok(true)
    }

    /// Writes the bundle made of `chunks` to `out`, checking the whole against `sha256` and
    /// `size`. Each chunk was checked when it arrived, so its digest is computed again only
    /// when the whole does not match: a chunk damaged on disk since is dropped then, so that
    /// the next transfer sends it again (one pass over the bundle instead of two).
    pub fn assemble(
        &self,
        chunks: &[ChunkRef],
        sha256: &str,
        size: u64,
        out: &Path,
    ) -> Result<(), SiteStoreError> {
        let mut file = std::fs::File::create(out)?;
        let mut whole = Sha256::new();
        let mut total = 0u64;
        let mut buffer = Vec::new();
        for chunk in chunks {
            check_digest(&chunk.sha256)?;
            buffer.clear();
            match std::fs::File::open(self.chunk(&chunk.sha256)) {
                Ok(mut f) => f.read_to_end(&mut buffer)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(SiteStoreError::Missing(chunk.sha256.clone()));
                }
                Err(e) => return Err(e.into()),
            };
            whole.update(&buffer);
            total += buffer.len() as u64;
            file.write_all(&buffer)?;
        }
        let actual = hex::encode(whole.finalize());
        if actual != sha256 || total != size {
            if let Some(damaged) = self.drop_damaged(chunks)? {
                return Err(SiteStoreError::Missing(damaged));
            }
            return Err(SiteStoreError::BundleMismatch {
                expected: sha256.to_string(),
                actual,
                size,
                actual_size: total,
            });
        }
        file.sync_all()?;
        Ok(())
    }

    /// Drops every chunk of `chunks` whose bytes no longer hash to its name; the first such,
    /// if any.
    fn drop_damaged(&self, chunks: &[ChunkRef]) -> Result<Option<String>, SiteStoreError> {
        let mut first = None;
        let mut seen = std::collections::HashSet::new();
        for chunk in chunks.iter().filter(|c| seen.insert(&c.sha256)) {
            let path = self.chunk(&chunk.sha256);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if hex::encode(Sha256::digest(&bytes)) != chunk.sha256 {
                let _ = std::fs::remove_file(&path);
                first.get_or_insert_with(|| chunk.sha256.clone());
            }
        }
        Ok(first)
    }

    /// Bytes held in chunks.
    pub fn chunk_bytes(&self) -> u64 {
        std::fs::read_dir(self.chunks())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Free bytes where the store lives (its parent while it does not exist yet).
    pub fn free_bytes(&self) -> u64 {
        let mut dir = self.root.as_path();
        while !dir.exists() {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => return 0,
            }
        }
        nix::sys::statvfs::statvfs(dir)
            .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
            .unwrap_or(0)
    }

    /// The releases prestaged for install, by software version.
    pub fn versions(&self) -> Vec<PrestagedVersion> {
        let mut versions: Vec<PrestagedVersion> = std::fs::read_dir(self.root.join("install"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|version| {
                let mut releases: Vec<String> = std::fs::read_dir(version.path())
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .filter_map(|f| {
                        f.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".patch"))
                            .map(str::to_string)
                    })
                    .collect();
                releases.sort();
                PrestagedVersion {
                    sw_version: version.file_name().to_string_lossy().into_owned(),
                    releases,
                }
            })
            .filter(|v| !v.releases.is_empty())
            .collect();
        versions.sort_by(|a, b| a.sw_version.cmp(&b.sw_version));
        versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn chunks_are_checked_kept_once_and_assembled_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SiteStore::new(dir.path());
        let (a, b) = (b"first chunk".as_slice(), b"second".as_slice());
        let (da, db) = (digest(a), digest(b));
        assert_eq!(
            store.missing(&[da.clone(), db.clone()]).unwrap(),
            [da.clone(), db.clone()]
        );
        assert!(matches!(
            store.put(&da, b),
            Err(SiteStoreError::DigestMismatch { .. })
        ));
        assert!(matches!(
            store.put("../x", a),
            Err(SiteStoreError::NotADigest(_))
        ));
        assert!(store.put(&da, a).unwrap());
        assert!(!store.put(&da, a).unwrap());
        assert_eq!(
            store.missing(&[da.clone(), db.clone()]).unwrap(),
            std::slice::from_ref(&db)
        );
        let refs = [
            ChunkRef {
                sha256: da.clone(),
                size: a.len() as u64,
            },
            ChunkRef {
                sha256: db.clone(),
                size: b.len() as u64,
            },
        ];
        let out = dir.path().join("bundle");
        let whole = digest(b"first chunksecond");
        assert!(matches!(
            store.assemble(&refs, &whole, 17, &out),
            Err(SiteStoreError::Missing(m)) if m == db
        ));
        store.put(&db, b).unwrap();
        store.assemble(&refs, &whole, 17, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"first chunksecond");
        assert!(matches!(
            store.assemble(&refs, &digest(b"other"), 17, &out),
            Err(SiteStoreError::BundleMismatch { .. })
        ));
        assert_eq!(store.chunk_bytes(), 17);
        assert!(store.free_bytes() > 0);

        // A chunk damaged on disk since it arrived: the bundle is refused, the chunk dropped
        // (missing again, so the next transfer sends it), the other kept.
        std::fs::write(store.chunk(&db), b"secxnd").unwrap();
        assert!(matches!(
            store.assemble(&refs, &whole, 17, &out),
            Err(SiteStoreError::Missing(m)) if m == db
        ));
        assert_eq!(
            store.missing(&[da.clone(), db.clone()]).unwrap(),
            std::slice::from_ref(&db)
        );
        store.put(&db, b).unwrap();
        store.assemble(&refs, &whole, 17, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"first chunksecond");
    }
}
