//! The System Controller's preparation of a prestage, done once per strategy: each bundle of
//! the release is read once, its SHA-256 checked against the repository's record, and cut
//! into content-defined chunks (FastCDC: 1 MiB minimum, 4 MiB average, 16 MiB maximum), each
//! with its SHA-256. A chunk of one release that another release shares keeps its digest, so
//! a subcloud that holds it is never sent it again.
//!
//! A bundle's chunk list is kept beside the repository (`DATA_DIR/prestage/prepared`, by the
//! bundle's digest), so a second strategy for the same release reads no bundle again. The
//! outcome of a strategy's preparation is kept by strategy id: its failure fails every later
//! step at once, also after a restart.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use convoy_api::prestage::ChunkRef;
use convoy_core::sw_update::release::ReleaseState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::patches::repository::Site;

const MIN_CHUNK: u32 = 1 << 20;
const AVG_CHUNK: u32 = 4 << 20;
const MAX_CHUNK: u32 = 16 << 20;

/// A bundle to prestage, as the repository holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFile {
    pub release: String,
    pub sw_version: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// A bundle cut into chunks, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedBundle {
    pub file: BundleFile,
    pub chunks: Vec<ChunkRef>,
    /// The file's modification time when it was cut (nanoseconds since the epoch): a file
    /// changed since is cut again.
    #[serde(default)]
    pub modified: u128,
}

/// A file's modification time, in nanoseconds since the epoch (0 if unknown).
fn modified(path: &Path) -> u128 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

impl PreparedBundle {
    /// Where each chunk starts in the bundle.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, &ChunkRef)> {
        self.chunks.iter().scan(0u64, |at, chunk| {
            let start = *at;
            *at += chunk.size;
            Some((start, chunk))
        })
    }
}

/// How a strategy's preparation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prepared {
    Ready(Vec<PreparedBundle>),
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PreparationError {
    #[error("cannot read the bundle of {release} ({path}): {error}")]
    Read {
        release: String,
        path: String,
        error: std::io::Error,
    },
    #[error(
        "the bundle of {release} has SHA-256 {actual}, not {expected} as uploaded: it was changed or damaged on disk; upload it again"
    )]
    Damaged {
        release: String,
        expected: String,
        actual: String,
    },
}

/// The bundles of software version `version` in the System Controller's repository that a
/// prestage ships: for a deploy, the releases deployed (or committed) there; for an install,
/// every release of the version it holds.
pub fn bundles_of(
    site: &Site,
    patch_dir: &Path,
    version: &str,
    for_sw_deploy: bool,
) -> Vec<BundleFile> {
    let states = site.release_states();
    site.repo
        .iter()
        .filter(|(_, entry)| entry.metadata.sw_version.to_string() == version)
        .filter(|(id, _)| {
            !for_sw_deploy
                || matches!(
                    states.get(*id),
                    Some(ReleaseState::Deployed | ReleaseState::Committed)
                )
        })
        .filter_map(|(id, entry)| {
            let record = site.records.get(id)?;
            Some(BundleFile {
                release: id.to_string(),
                sw_version: entry.metadata.sw_version.to_string(),
                path: patch_dir.join(&record.file_name),
                size: record.size,
                sha256: record.sha256.clone(),
            })
        })
        .collect()
}

/// Cuts `file` into chunks, checking its digest.
pub fn prepare_bundle(file: &BundleFile) -> Result<PreparedBundle, PreparationError> {
    let read_error = |error| PreparationError::Read {
        release: file.release.clone(),
        path: file.path.display().to_string(),
        error,
    };
    let when = modified(&file.path);
    let reader = std::fs::File::open(&file.path).map_err(read_error)?;
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let cutter = fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
    for chunk in cutter {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => read_error(io),
            other => read_error(std::io::Error::other(other.to_string())),
        })?;
        whole.update(&chunk.data);
        chunks.push(ChunkRef {
            sha256: hex::encode(Sha256::digest(&chunk.data)),
            size: chunk.length as u64,
        });
    }
    let actual = hex::encode(whole.finalize());
    if actual != file.sha256 {
        return Err(PreparationError::Damaged {
            release: file.release.clone(),
            expected: file.sha256.clone(),
            actual,
        });
    }
    Ok(PreparedBundle {
        file: file.clone(),
        chunks,
        modified: when,
    })
}

/// Reads chunk `chunk` of `path` starting at `offset`.
pub fn read_chunk(path: &Path, offset: u64, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} ended before its chunk at {offset}", path.display()),
        ));
    }
    Ok(bytes)
}

/// The preparations of the System Controller's strategies.
pub struct Preparations {
    dir: PathBuf,
    /// Strategies whose preparation runs now.
    running: Mutex<HashSet<String>>,
}

impl Preparations {
    pub fn new(data_dir: &Path) -> Preparations {
        Preparations {
            dir: data_dir.join("prestage").join("prepared"),
            running: Mutex::new(HashSet::new()),
        }
    }

    fn outcome_path(&self, strategy: &str) -> PathBuf {
        self.dir.join(format!("strategy-{strategy}.json"))
    }

    fn bundle_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("bundle-{sha256}.json"))
    }

    /// The strategy's preparation outcome, if it ended.
    pub fn outcome(&self, strategy: &str) -> Option<Prepared> {
        let text = std::fs::read(self.outcome_path(strategy)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Starts the strategy's preparation of `bundles` unless it runs already or ended.
    pub fn start(self: &Arc<Self>, strategy: &str, bundles: Vec<BundleFile>) {
        if self.outcome(strategy).is_some() {
            return;
        }
        {
            let mut running = self.running.lock().expect("preparations lock");
            if !running.insert(strategy.to_string()) {
                return;
            }
        }
        let this = Arc::clone(self);
        let strategy = strategy.to_string();
        tokio::task::spawn_blocking(move || {
            let outcome = match this.prepare_all(&bundles) {
                Ok(prepared) => Prepared::Ready(prepared),
                Err(e) => Prepared::Failed(e.to_string()),
            };
            match &outcome {
                Prepared::Ready(b) => tracing::info!(
                    strategy,
                    bundles = b.len(),
                    chunks = b.iter().map(|b| b.chunks.len()).sum::<usize>(),
                    "prestage preparation ready"
                ),
                Prepared::Failed(reason) => {
                    tracing::warn!(strategy, "prestage preparation failed: {reason}")
                }
            }
            if let Err(e) = this.write(&this.outcome_path(&strategy), &outcome) {
                tracing::warn!(strategy, "cannot keep the prestage preparation: {e}");
            }
            this.running
                .lock()
                .expect("preparations lock")
                .remove(&strategy);
        });
    }

    /// Forgets a deleted strategy's outcome.
    pub fn forget(&self, strategy: &str) {
        let _ = std::fs::remove_file(self.outcome_path(strategy));
    }

    fn prepare_all(&self, bundles: &[BundleFile]) -> Result<Vec<PreparedBundle>, PreparationError> {
        bundles
            .iter()
            .map(|file| {
                let cached = self.bundle_path(&file.sha256);
                if let Some(prepared) = std::fs::read(&cached)
                    .ok()
                    .and_then(|t| serde_json::from_slice::<PreparedBundle>(&t).ok())
                    .filter(|p| {
                        p.file == *file && p.modified != 0 && p.modified == modified(&file.path)
                    })
                {
                    return Ok(prepared);
                }
                let prepared = prepare_bundle(file)?;
                if let Err(e) = self.write(&cached, &prepared) {
                    tracing::warn!(
                        release = file.release,
                        "cannot keep a bundle's chunk list: {e}"
                    );
                }
                Ok(prepared)
            })
            .collect()
    }

    /// Writes `value` to `path` whole or not at all.
    fn write<T: Serialize>(&self, path: &Path, value: &T) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let part = path.with_extension(format!("{}.part", uuid::Uuid::new_v4()));
        std::fs::write(
            &part,
            serde_json::to_vec(value).map_err(std::io::Error::other)?,
        )?;
        std::fs::File::open(&part)?.sync_all()?;
        std::fs::rename(&part, path)?;
        crate::patches::repository::sync_dir(&self.dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_cut_into_chunks_that_cover_it_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("REL.patch");
        // 9 MiB of bytes that do not repeat: several chunks.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let bytes: Vec<u8> = (0..9u64 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = BundleFile {
            release: "REL".into(),
            sw_version: "25.09".into(),
            path: path.clone(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        let prepared = prepare_bundle(&file).unwrap();
        assert!(prepared.chunks.len() >= 2, "{}", prepared.chunks.len());
        assert_eq!(
            prepared.chunks.iter().map(|c| c.size).sum::<u64>(),
            bytes.len() as u64
        );
        for (offset, chunk) in prepared.offsets() {
            let read = read_chunk(&path, offset, chunk.size).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&read)), chunk.sha256);
        }
        let mut damaged = file.clone();
        damaged.sha256 = "0".repeat(64);
        assert!(matches!(
            prepare_bundle(&damaged),
            Err(PreparationError::Damaged { .. })
        ));
    }
}
