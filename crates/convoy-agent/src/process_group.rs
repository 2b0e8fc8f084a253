//! Child processes that lead a process group of their own: spawned despite a busy text file,
//! waited for with a timeout on their pidfd, stopped with everything they forked, and the tail
//! of what they wrote (to a file, or to a [`Capture`] in memory). Hooks and patch scripts run
//! this way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::PidfdFlags;

/// How long a timed-out hook's process group has between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(2);
/// How much of the end of each output stream is kept.
pub(crate) const TAIL_CAP: usize = 16 * 1024;
/// exec fails with ETXTBSY while any process still has the file open for writing (a script
/// being saved, or a process forked elsewhere that has not reached its own exec yet): retry.
const TEXT_BUSY_RETRIES: u32 = 20;
const TEXT_BUSY_PAUSE: Duration = Duration::from_millis(25);
/// [`spawn_blocking_retrying`] for async callers.
pub(crate) async fn spawn_retrying<T>(mut spawn: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempts = 0;
    loop {
        match spawn() {
            Err(e) if is_text_busy(&e) && attempts < TEXT_BUSY_RETRIES => {
                attempts += 1;
                tokio::time::sleep(TEXT_BUSY_PAUSE).await;
            }
            result => return result,
        }
    }
}

fn is_text_busy(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::ETXTBSY as i32)
}

pub(crate) fn spawn_blocking_retrying<T>(
    mut spawn: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut attempts = 0;
    loop {
        match spawn() {
            Err(e) if is_text_busy(&e) && attempts < TEXT_BUSY_RETRIES => {
                attempts += 1;
                std::thread::sleep(TEXT_BUSY_PAUSE);
            }
            result => return result,
        }
    }
}

/// Waits up to `timeout` for a process group's leader, then stops the group (see
/// [`stop_group`]). Returns the leader's exit status and whether it timed out.
pub(crate) fn wait_or_stop(child: Child, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
    wait_or_stop_tending(child, timeout, &mut || {})
}

/// How often [`wait_or_stop_tending`] calls its `tend` while the leader runs.
const TEND_EVERY: Duration = Duration::from_secs(1);

/// [`wait_or_stop`], calling `tend` about every second while the leader runs (to trim its
/// [`Capture`]s, say).
pub(crate) fn wait_or_stop_tending(
    child: Child,
    timeout: Duration,
    tend: &mut dyn FnMut(),
) -> io::Result<(ExitStatus, bool)> {
    let mut leader = Leader::new(child)?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(status) = leader.wait_for(left.min(TEND_EVERY))? {
            return Ok((status, false));
        }
        if left <= TEND_EVERY {
            return Ok((stop_group(&mut leader)?, true));
        }
        tend();
    }
}

/// A process group's leader, waited for with a timeout on its pidfd: no helper thread.
struct Leader {
    child: Child,
    group: Pid,
    /// Readable once the leader has exited. None where the kernel has no pidfd (before 5.3):
    /// then `wait_for` polls.
    pidfd: Option<OwnedFd>,
}

impl Leader {
    fn new(child: Child) -> io::Result<Leader> {
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        let pidfd = rustix::process::Pid::from_raw(pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok());
        Ok(Leader {
            child,
            group: Pid::from_raw(pid),
            pidfd,
        })
    }

    /// Waits up to `timeout` for the leader to exit and reaps it, so it does not linger as a
    /// zombie in its group. None: still running.
    fn wait_for(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.pidfd {
                Some(pidfd) => {
                    let left = Timespec::try_from(left).unwrap_or(Timespec {
                        tv_sec: i64::MAX,
                        tv_nsec: 0,
                    });
                    match poll(&mut [PollFd::new(pidfd, PollFlags::IN)], Some(&left)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None => std::thread::sleep(left.min(Duration::from_millis(10))),
            }
        }
    }
}

/// SIGTERM to the group, up to [`GRACE`] for it to go, then SIGKILL; returns the leader's
/// exit status.
fn stop_group(leader: &mut Leader) -> io::Result<ExitStatus> {
    let group = leader.group;
    // ESRCH only means the group is already gone.
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    let step = Duration::from_millis(50);
    let mut status = None;
    loop {
        match status {
            // A zombie leader still counts as a member of its group: reap it first.
            None => status = leader.wait_for(step)?,
            Some(_) => std::thread::sleep(step),
        }
        if !group_alive(group) || Instant::now() >= deadline {
            break;
        }
    }
    if group_alive(group) {
        let _ = killpg(group, Signal::SIGKILL);
    }
    match status {
        Some(status) => Ok(status),
        None => leader.child.wait(),
    }
}

fn group_alive(group: Pid) -> bool {
    killpg(group, None).is_ok()
}

/// The last [`TAIL_CAP`] bytes of an output file, saying so when earlier output was cut.
pub(crate) fn tail(path: &Path) -> String {
    let read = || -> io::Result<(Vec<u8>, u64)> {
        let mut file = File::open(path)?;
        let skipped = file.metadata()?.len().saturating_sub(TAIL_CAP as u64);
        file.seek(SeekFrom::Start(skipped))?;
        let mut bytes = Vec::new();
        file.take(TAIL_CAP as u64).read_to_end(&mut bytes)?;
        Ok((bytes, skipped))
    };
    match read() {
        Ok((bytes, skipped)) => tail_text(&bytes, skipped),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => format!("[cannot read {}: {e}]", path.display()),
    }
}

/// An output stream kept in memory (a memfd) instead of a file: a hook's output costs no
/// inode on the state filesystem. Only its tail is wanted, so [`Capture::trim`] frees what
/// came before as the process writes (the stream becomes a sparse file, its write offset
/// untouched). A process that outlives the reader keeps writing into it harmlessly.
pub(crate) struct Capture {
    file: File,
}

/// Past this much output, [`Capture::trim`] frees all but the tail.
const TRIM_AT: u64 = 1024 * 1024;

impl Capture {
    pub(crate) fn new(name: &str) -> io::Result<Capture> {
        let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?;
        Ok(Capture {
            file: File::from(fd),
        })
    }

    /// A descriptor of the stream for a child's stdout or stderr.
    pub(crate) fn for_child(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Frees the memory of everything but the last [`TAIL_CAP`] bytes, once there is much.
    pub(crate) fn trim(&self) {
        let Ok(len) = self.file.metadata().map(|m| m.len()) else {
            return;
        };
        if len > TRIM_AT {
            // Whole pages only; the tail's page stays.
            let cut = (len - TAIL_CAP as u64) & !4095;
            let flags =
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
            // Best effort: without it the output only takes more memory.
            let _ = rustix::fs::fallocate(&self.file, flags, 0, cut);
        }
    }

    /// The last [`TAIL_CAP`] bytes written, as [`tail`] gives a file's.
    pub(crate) fn tail(&self) -> String {
        let read = || -> io::Result<(Vec<u8>, u64)> {
            let len = self.file.metadata()?.len();
            let skipped = len.saturating_sub(TAIL_CAP as u64);
            let mut bytes = vec![0; (len - skipped) as usize];
            self.file.read_exact_at(&mut bytes, skipped)?;
            Ok((bytes, skipped))
        };
        match read() {
            Ok((bytes, skipped)) => tail_text(&bytes, skipped),
            Err(e) => format!("[cannot read the output: {e}]"),
        }
    }
}

fn tail_text(bytes: &[u8], skipped: u64) -> String {
    if skipped == 0 {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    // The cut may fall inside a UTF-8 character: start at the next character boundary.
    let start = bytes
        .iter()
        .position(|b| b & 0xC0 != 0x80)
        .unwrap_or(bytes.len());
    format!(
        "[truncated: the first {} bytes are not shown]\n{}",
        skipped + start as u64,
        String::from_utf8_lossy(&bytes[start..])
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    use nix::sys::signal::kill;

    use super::*;

    #[test]
    fn a_leader_is_waited_for_with_and_without_a_pidfd() {
        for with_pidfd in [true, false] {
            let child = std::process::Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .unwrap();
            let mut leader = Leader::new(child).unwrap();
            if !with_pidfd {
                leader.pidfd = None;
            }
            assert_eq!(leader.wait_for(Duration::from_millis(30)).unwrap(), None);
            kill(leader.group, Signal::SIGTERM).unwrap();
            let status = leader.wait_for(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        }
    }

    #[test]
    fn a_capture_keeps_the_tail_in_little_memory() {
        let capture = Capture::new("test").unwrap();
        assert_eq!(capture.tail(), "");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("head -c 3000000 /dev/zero | tr '\\0' x; echo end")
            .stdout(capture.for_child().unwrap())
            .spawn()
            .unwrap();
        assert!(child.wait().unwrap().success());
        capture.trim();
        let text = capture.tail();
        let (note, kept) = text.split_once('\n').unwrap();
        assert_eq!(note, "[truncated: the first 2983620 bytes are not shown]");
        assert_eq!(kept.len(), TAIL_CAP);
        assert!(kept.ends_with("xxend\n"), "{kept:?}");
        // The file still says 3 MB; the memory behind it is the tail's.
        let blocks = rustix::fs::fstat(&capture.file).unwrap().st_blocks as u64;
        assert!(
            blocks * 512 <= 2 * TAIL_CAP as u64 + 8192,
            "{blocks} blocks"
        );
    }

    #[test]
    fn tending_goes_on_while_the_leader_runs_and_stops_at_the_timeout() {
        let child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut tended = 0;
        let (status, timed_out) =
            wait_or_stop_tending(child, Duration::from_millis(2500), &mut || tended += 1).unwrap();
        assert!(timed_out);
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        assert_eq!(tended, 2);
    }

    #[test]
    fn only_the_tail_of_long_output_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        assert_eq!(tail(&path), "");
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(tail(&path), "short\n");
        // 20 001 bytes; the cut falls inside a two-byte character.
        std::fs::write(&path, format!("{}z", "é".repeat(10_000))).unwrap();
        let text = tail(&path);
        let (note, kept) = text.split_once('\n').unwrap();
        assert_eq!(note, "[truncated: the first 3618 bytes are not shown]");
        assert_eq!(kept.len(), TAIL_CAP - 1);
        assert!(kept.ends_with("éz") && !kept.contains('\u{FFFD}'));
    }
}
