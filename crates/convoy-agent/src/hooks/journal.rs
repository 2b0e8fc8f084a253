//! The jobs journal, `<jobs-dir>/journal`: what the hook runner knows of every hook it was
//! asked to run, one JSON line per event, appended and synced by the runner that holds the
//! jobs directory (so it has a single writer).
//!
//! - `{"started": {"job", "script", "runner_pid"}}` is durable before the hook is spawned: from
//!   then on the hook may have run and is never started again for that job.
//! - `{"ended": {"job", "run"}}` is written (to the page cache) before anyone is told the
//!   outcome, and synced by the next start or within [`ENDED_SYNC_WITHIN`], whichever comes
//!   first. It survives the agent and the runner dying at once; only a host that loses power
//!   within that window can lose it, and then the job reads as started and never ended: lost,
//!   never a success and never run again. The controller asks again only for an outcome it
//!   has not stored, so this matters only if the report was cut off as well.
//!
//! A job that started and never ended was being run by a runner that died: its outcome is
//! lost. A crash can cut the last line short; a torn line was never synced, so nobody acted
//! on it (a torn start was not spawned), and loading cuts it off.
//!
//! One file for every job, instead of a directory of files per job: creating inodes was most
//! of what a trivial hook cost (on an ext4 without a journal, inode allocation slows down for
//! a while after many deletions), and two appends cost one sync (and a lazy one) instead of four.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use convoy_core::hook::HookRun;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::patches::files::sync_dir;

pub(super) const JOURNAL_FILE: &str = "journal";
/// Longest an ended record waits for its sync when no start comes to sync it. A sync per hook
/// was a sixth of what a trivial hook cost on a disk 200 agents share, for a window that
/// matters only after a power loss.
pub(super) const ENDED_SYNC_WITHIN: Duration = Duration::from_secs(1);

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum Record {
    Started {
        job: Uuid,
        script: String,
        runner_pid: u32,
    },
    Ended {
        job: Uuid,
        run: HookRun,
    },
}

/// What the journal says of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    /// Started by this runner or an earlier one, with no outcome recorded (yet).
    Started { script: String },
    /// Ended; its record is `len` bytes at `offset`.
    Ended { offset: u64, len: usize },
}

/// The journal, open for appending, and what it holds.
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    /// Where the next record goes: the file's length.
    end: u64,
    /// When the oldest record not yet synced was written (only ended records wait).
    unsynced_since: Option<Instant>,
}

impl Journal {
    /// Opens (creating) the journal and reads what it holds. Call it only holding the jobs
    /// directory: it cuts off a torn last line.
    pub(super) fn open(jobs_dir: &Path) -> anyhow::Result<(Journal, HashMap<Uuid, Entry>)> {
        let path = jobs_dir.join(JOURNAL_FILE);
        let created = !path.try_exists()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // Hooks' output may say things only root should read.
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if created {
            // Its name must be durable before any record in it counts.
            sync_dir(jobs_dir)?;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (entries, complete) = entries(&bytes);
        if complete < bytes.len() {
            file.set_len(complete as u64)
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot cut the torn end of {}", path.display()))?;
        }
        let journal = Journal {
            path,
            file,
            end: complete as u64,
            unsynced_since: None,
        };
        Ok((journal, entries))
    }

    /// Appends `record` and returns where it lies. A start is synced (with every record
    /// before it) before this returns; an end is left for [`Journal::sync_if_due`] or the next
    /// start.
    pub(super) fn append(&mut self, record: &Record) -> anyhow::Result<Entry> {
        let mut line = serde_json::to_vec(record).context("cannot encode a journal record")?;
        line.push(b'\n');
        let offset = self.end;
        let sync = matches!(record, Record::Started { .. });
        let written = self
            .file
            .write_all_at(&line, offset)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Nothing after `end` counts: take back whatever part of the line reached the
            // file (best effort; the next record overwrites it anyway).
            let _ = self.file.set_len(self.end);
            return Err(e).with_context(|| format!("cannot write {}", self.path.display()));
        }
        self.end += line.len() as u64;
        if sync {
            self.unsynced_since = None;
        } else {
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        Ok(match record {
            Record::Started { script, .. } => Entry::Started {
                script: script.clone(),
            },
            Record::Ended { .. } => Entry::Ended {
                offset,
                len: line.len(),
            },
        })
    }

    /// Syncs the records written without a sync once the oldest has waited `within` (zero:
    /// now, as before the runner exits). Returns how soon the unsynced ones are due, if any.
    pub(super) fn sync_if_due(&mut self, within: Duration) -> anyhow::Result<Option<Duration>> {
        let Some(since) = self.unsynced_since else {
            return Ok(None);
        };
        let left = within.saturating_sub(since.elapsed());
        if !left.is_zero() {
            return Ok(Some(left));
        }
        self.file
            .sync_data()
            .with_context(|| format!("cannot sync {}", self.path.display()))?;
        self.unsynced_since = None;
        Ok(None)
    }

    /// The outcome recorded at `offset`.
    pub(super) fn read_run(&self, offset: u64, len: usize) -> anyhow::Result<HookRun> {
        let mut line = vec![0; len];
        self.file
            .read_exact_at(&mut line, offset)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        match serde_json::from_slice(&line) {
            Ok(Record::Ended { run, .. }) => Ok(run),
            _ => anyhow::bail!("{} holds no outcome at byte {offset}", self.path.display()),
        }
    }
}

/// Every job the journal's complete lines mention, and the length of those lines. A line
/// that does not parse (only a torn last line should) is passed over.
fn entries(bytes: &[u8]) -> (HashMap<Uuid, Entry>, usize) {
    let mut entries = HashMap::new();
    let mut offset = 0;
    while let Some(newline) = bytes[offset..].iter().position(|&b| b == b'\n') {
        let len = newline + 1;
        match serde_json::from_slice(&bytes[offset..offset + newline]) {
            Ok(Record::Started { job, script, .. }) => {
                entries.insert(job, Entry::Started { script });
            }
            Ok(Record::Ended { job, .. }) => {
                entries.insert(
                    job,
                    Entry::Ended {
                        offset: offset as u64,
                        len,
                    },
                );
            }
            Err(e) => eprintln!("skipping an unreadable journal line at byte {offset}: {e}"),
        }
        offset += len;
    }
    (entries, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exit_code: i32) -> HookRun {
        HookRun {
            script: Some("/hooks/PreFlight".into()),
            exit_code: Some(exit_code),
            signal: None,
            timed_out: false,
            stdout: "out\n".into(),
            stderr: String::new(),
            duration_ms: 3,
            error: None,
        }
    }

    fn started(job: Uuid) -> Record {
        Record::Started {
            job,
            script: "/hooks/PreFlight".into(),
            runner_pid: 7,
        }
    }

    #[test]
    fn an_end_waits_for_its_sync_and_a_start_syncs_everything_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        journal.append(&started(a)).unwrap();
        assert_eq!(journal.sync_if_due(ENDED_SYNC_WITHIN).unwrap(), None);
        let end = Record::Ended {
            job: a,
            run: run(0),
        };
        journal.append(&end).unwrap();
        let due = journal.sync_if_due(ENDED_SYNC_WITHIN).unwrap();
        assert!(due.is_some_and(|d| d <= ENDED_SYNC_WITHIN), "{due:?}");
        // The next start's sync covers the end.
        journal.append(&started(b)).unwrap();
        assert_eq!(journal.sync_if_due(ENDED_SYNC_WITHIN).unwrap(), None);
        // Due at once when asked with no wait, and then synced.
        journal
            .append(&Record::Ended {
                job: b,
                run: run(1),
            })
            .unwrap();
        assert_eq!(journal.sync_if_due(Duration::ZERO).unwrap(), None);
        assert_eq!(journal.sync_if_due(ENDED_SYNC_WITHIN).unwrap(), None);
    }

    #[test]
    fn records_are_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let (mut journal, entries) = Journal::open(dir.path()).unwrap();
            assert!(entries.is_empty());
            journal.append(&started(a)).unwrap();
            journal.append(&started(b)).unwrap();
            let ended = journal
                .append(&Record::Ended {
                    job: a,
                    run: run(70),
                })
                .unwrap();
            let Entry::Ended { offset, len } = ended else {
                panic!("{ended:?}");
            };
            assert_eq!(journal.read_run(offset, len).unwrap(), run(70));
        }
        let mode = std::fs::metadata(dir.path().join(JOURNAL_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let (journal, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[&b],
            Entry::Started {
                script: "/hooks/PreFlight".into()
            }
        );
        let Entry::Ended { offset, len } = entries[&a] else {
            panic!("{:?}", entries[&a]);
        };
        assert_eq!(journal.read_run(offset, len).unwrap(), run(70));
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_the_next_record_follows_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let (mut journal, _) = Journal::open(dir.path()).unwrap();
            journal.append(&started(a)).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of the outcome's write.
        let mut torn = whole.clone();
        let ended = serde_json::to_vec(&Record::Ended {
            job: a,
            run: run(0),
        })
        .unwrap();
        torn.extend_from_slice(&ended[..ended.len() / 2]);
        std::fs::write(&path, &torn).unwrap();

        let (mut journal, entries) = Journal::open(dir.path()).unwrap();
        assert!(matches!(entries[&a], Entry::Started { .. }), "{entries:?}");
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        journal.append(&started(b)).unwrap();
        let (_, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
    }
}
