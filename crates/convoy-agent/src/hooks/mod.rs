//! Operator hook scripts: finding a stage's script and running it so that an agent restart
//! never loses, repeats or invents its outcome.
//!
//! Hooks run under a hook runner: this binary again, as `convoy-agent hook-runner`, one per
//! jobs directory `<state-dir>/jobs/`, detached from the agent (a session of its own, and no
//! child of the agent), so that it and its hooks outlive the agent that started it. It holds
//! `runner.lock` there for its whole life (a second runner exits at once), listens on
//! `runner.sock` and writes its messages to `runner.log`. The agent connects once per hook and
//! sends one JSON request line; the runner supervises that hook in a thread of its own, and
//! replies one line when the hook has ended. It exits after a while without a request or a
//! running hook, or with none running once its binary was replaced; the agent starts a new one
//! whenever none listens. Each run has a job
//! directory, `<state-dir>/jobs/<command-id>/`:
//!
//! - the directory itself is the job's lock: the runner's thread for the job holds an exclusive
//!   `flock` on it for the hook's whole life, so "the lock is held" means "a runner supervises
//!   the hook". (A `job.lock` file, the lock of earlier versions, is honoured if present.)
//! - `started`: created (durably) under the lock before the hook is spawned, so once it exists
//!   the hook may have run and must never be started again.
//! - `stdout`, `stderr`: the hook's output.
//! - `result.json`: created empty with `started`; the [`HookRun`] is written into it and
//!   fsynced when the hook has ended, before the lock is released. It is read only under the
//!   lock, and empty or unparseable (a crash cut the write short) means "no outcome".
//! - `supervisor.log`: why the runner did not run the hook, when it could not.
//!
//! The agent learns what happened from the job directory alone; the reply only says when to
//! look, and why a hook was not started. A connection that ends without a reply (the runner
//! exited idle just as the agent connected, or died) while the job has no `started` marker
//! means the hook never started: the agent asks again, of a new runner if need be.
//!
//! Durability costs three fsyncs when the job is claimed (`started`, the job directory and its
//! parent) and one at the end: filling a `result.json` whose name is already durable needs no
//! rename and no second directory fsync.
//!
//! The hook leads its own process group; at its timeout the whole group gets SIGTERM, then
//! SIGKILL after a grace period. After a normal exit, whatever the hook left running (a daemon
//! it started) is left alone.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_api::agent::HookRequest;
use convoy_core::hook::{HookRun, HookStage};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::{info, warn};
use uuid::Uuid;

use crate::process_group::{spawn_blocking_retrying, spawn_retrying, tail, wait_or_stop};

mod runner;
pub use runner::{RunnerArgs, runner_main};

/// The hidden subcommand that runs the hooks of one jobs directory.
pub const RUNNER_SUBCOMMAND: &str = "hook-runner";
/// Tells the hook which stage it runs for (one script may serve several stages).
pub const STAGE_ENV: &str = "CONVOY_HOOK_STAGE";
/// How long a runner waits without a request or a running hook before it exits.
const RUNNER_IDLE: Duration = Duration::from_secs(30);

const LOCK_FILE: &str = "job.lock";
const STARTED_FILE: &str = "started";
const RESULT_FILE: &str = "result.json";
const STDOUT_FILE: &str = "stdout";
const STDERR_FILE: &str = "stderr";
const SUPERVISOR_LOG: &str = "supervisor.log";
const RUNNER_LOCK: &str = "runner.lock";
const RUNNER_SOCKET: &str = "runner.sock";
const RUNNER_LOG: &str = "runner.log";

/// How often the agent looks whether an earlier agent's hook has finished.
const POLL: Duration = Duration::from_millis(100);
/// How long the agent keeps trying to reach a runner, starting one when none listens.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How often the agent asks again after a connection ended without a reply and the hook did
/// not start. Once is the idle-exit race; more means a runner that keeps failing.
const UNANSWERED_RETRIES: u32 = 3;
/// How long a runner waits for a connection's request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST: u64 = 1024 * 1024;
/// How often an idle runner wakes to see whether its time is up or its directory is gone.
const RUNNER_TICK: Duration = Duration::from_secs(1);
/// `sun_path` holds 108 bytes with the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// The outcome reported when a hook may have started but nobody saw it end.
pub const LOST: &str =
    "the hook runner ended without recording an outcome; the hook may or may not have run";

/// Where hooks live and where their runs are recorded.
#[derive(Debug, Clone)]
pub struct Hooks {
    pub hooks_dir: Option<PathBuf>,
    pub jobs_dir: PathBuf,
    pub agent_binary: PathBuf,
}

impl Hooks {
    /// Runs the stage's hook for command `id`, or, if this command already has a job (an
    /// earlier agent run started it), reports that job's outcome without running it again.
    pub async fn run(&self, id: Uuid, request: &HookRequest) -> HookRun {
        let job = self.jobs_dir.join(id.to_string());
        // The script this call asked a runner to run, and the reply if one came: once a
        // runner has answered, the job is never started afresh.
        let mut asked: Option<(PathBuf, Option<RunnerReply>)> = None;
        let mut unanswered = 0;
        let mut waiting_logged = false;
        loop {
            let state = match inspect_job(&job).await {
                Ok(state) => state,
                Err(e) => return failed(None, format!("{e:#}")),
            };
            match state {
                JobState::Recorded(run) => return run,
                JobState::Running => {
                    if asked.is_none() && !waiting_logged {
                        info!(command = %id, "a hook runner is still running this command's hook from an earlier agent run; waiting for it");
                        waiting_logged = true;
                    }
                    tokio::time::sleep(POLL).await;
                }
                JobState::Abandoned { script } => {
                    warn!(command = %id, "{LOST}");
                    return failed(script, LOST.into());
                }
                JobState::Fresh => {
                    let script = match asked {
                        Some((script, Some(reply))) => {
                            return failed(Some(display(&script)), never_started(&reply));
                        }
                        // No reply and nothing started: the runner went away first.
                        Some((script, None)) => {
                            unanswered += 1;
                            if unanswered > UNANSWERED_RETRIES {
                                return failed(
                                    Some(display(&script)),
                                    format!(
                                        "the hook runner closed the connection {unanswered} times without starting the hook (see {})",
                                        self.jobs_dir.join(RUNNER_LOG).display()
                                    ),
                                );
                            }
                            info!(command = %id, "the hook runner went away before starting the hook; asking again");
                            script
                        }
                        None => match self.script(request.stage) {
                            Some(script) => script,
                            None => return no_script(),
                        },
                    };
                    match self.ask_runner(&job, &script, request).await {
                        Ok(reply) => asked = Some((script, reply)),
                        Err(e) => return failed(Some(display(&script)), format!("{e:#}")),
                    }
                }
            }
        }
    }

    /// The stage's script, if it has one.
    pub fn script(&self, stage: HookStage) -> Option<PathBuf> {
        find_script(self.hooks_dir.as_deref()?, stage)
    }

    /// Asks the runner to run the hook of a fresh job and waits until it has ended. None: the
    /// connection ended without a reply (the runner exited or died).
    async fn ask_runner(
        &self,
        job: &Path,
        script: &Path,
        request: &HookRequest,
    ) -> anyhow::Result<Option<RunnerReply>> {
        {
            let job = job.to_path_buf();
            tokio::task::spawn_blocking(move || create_job_dir(&job)).await??;
        }
        let mut line = serde_json::to_vec(&RunnerRequest {
            // Absolute: the runner works from `/`.
            job_dir: std::path::absolute(job)?,
            stage: request.stage,
            timeout_seconds: request.timeout_seconds,
            script: script.to_path_buf(),
            args: request.args.clone(),
        })
        .context("cannot encode the hook request")?;
        line.push(b'\n');
        let mut stream = self.connect_runner().await?;
        // Any failure from here on means the runner went away: the job directory tells
        // whether the hook started.
        if stream.write_all(&line).await.is_err() {
            return Ok(None);
        }
        let mut reply = Vec::new();
        let mut reader = tokio::io::BufReader::new(stream);
        if reader.read_until(b'\n', &mut reply).await.is_err() {
            return Ok(None);
        }
        Ok(serde_json::from_slice(&reply).ok())
    }

    /// Connects to the jobs directory's runner, starting one if none listens.
    async fn connect_runner(&self) -> anyhow::Result<tokio::net::UnixStream> {
        let deadline = Instant::now() + CONNECT_DEADLINE;
        let mut pause = Duration::from_millis(1);
        let mut start = true;
        loop {
            let error = match connect(&self.jobs_dir).await {
                Ok(stream) => return Ok(stream),
                Err(e) => e,
            };
            match error.kind() {
                // No runner listens: none was started yet, or the last one exited (just as
                // this connection was queued, for a reset).
                io::ErrorKind::NotFound
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted => {}
                // Its backlog is full: it is busy, not gone.
                io::ErrorKind::WouldBlock => start = false,
                _ => {
                    return Err(error).with_context(|| {
                        format!(
                            "cannot connect to the hook runner in {}",
                            self.jobs_dir.display()
                        )
                    });
                }
            }
            if start {
                // It returns once the runner listens, or at once if another runner holds
                // the directory (one starting up, or one exiting): then try again.
                self.start_runner().await?;
                start = false;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(error).with_context(|| {
                    format!("cannot reach a hook runner in {}", self.jobs_dir.display())
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            start = true;
        }
    }

    /// Starts a runner for the jobs directory and waits for its first process, which exits
    /// as soon as the runner listens (or finds another runner there).
    async fn start_runner(&self) -> anyhow::Result<()> {
        let log = {
            let path = self.jobs_dir.join(RUNNER_LOG);
            tokio::task::spawn_blocking(move || open_log(&path)).await??
        };
        let mut command = tokio::process::Command::new(&self.agent_binary);
        command
            .arg(RUNNER_SUBCOMMAND)
            .arg("--jobs-dir")
            .arg(&self.jobs_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Until it detaches into its own session, a signal aimed at the agent's process
            // group must not reach it either.
            .process_group(0);
        let mut child = spawn_retrying(|| command.spawn()).await.with_context(|| {
            format!(
                "cannot start the hook runner {}",
                self.agent_binary.display()
            )
        })?;
        let status = child.wait().await?;
        if !status.success() {
            bail!(
                "the hook runner failed ({status}): {}",
                last_line(&self.jobs_dir.join(RUNNER_LOG))
            );
        }
        Ok(())
    }
}

/// Connects to the runner's socket without blocking the agent's thread.
async fn connect(jobs_dir: &Path) -> io::Result<tokio::net::UnixStream> {
    let address = SocketAddress::new(jobs_dir)?;
    tokio::net::UnixStream::connect(&address.path).await
}

/// The path a runner's socket is bound and reached at. A Unix socket path holds at most
/// [`SUN_PATH_MAX`] bytes: a longer one is reached as `/proc/self/fd/<fd>/runner.sock` through
/// a descriptor of the jobs directory, kept open as long as the path is used.
struct SocketAddress {
    path: PathBuf,
    _dir: Option<File>,
}

impl SocketAddress {
    fn new(jobs_dir: &Path) -> io::Result<SocketAddress> {
        let path = jobs_dir.join(RUNNER_SOCKET);
        if path.as_os_str().len() <= SUN_PATH_MAX {
            return Ok(SocketAddress { path, _dir: None });
        }
        let dir = File::open(jobs_dir)?;
        Ok(SocketAddress {
            path: format!("/proc/self/fd/{}/{RUNNER_SOCKET}", dir.as_raw_fd()).into(),
            _dir: Some(dir),
        })
    }
}

/// One hook for the runner to run, as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct RunnerRequest {
    job_dir: PathBuf,
    stage: HookStage,
    timeout_seconds: u64,
    script: PathBuf,
    args: Vec<String>,
}

/// The runner's answer, one JSON line, sent when it is done with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
enum RunnerReply {
    /// The hook ran and its outcome is recorded.
    Ran,
    /// Another runner holds the job, or one started it before: not run again.
    NotRun,
    /// The hook was not started (or its outcome not recorded), for this reason.
    Failed { error: String },
}

/// The hook for `stage`: the first regular file among `<Stage>`, `<Stage>.sh`, `<Stage>.py`.
fn find_script(hooks_dir: &Path, stage: HookStage) -> Option<PathBuf> {
    let found = stage
        .candidate_file_names()
        .into_iter()
        .map(|name| hooks_dir.join(name))
        .find(|path| std::fs::metadata(path).is_ok_and(|m| m.is_file()))?;
    // Absolute, because the hook runs with the hooks directory as its working directory.
    Some(std::path::absolute(&found).unwrap_or(found))
}
/// What a job directory says about a command's hook.
#[derive(Debug)]
enum JobState {
    /// Ended; this is its outcome.
    Recorded(HookRun),
    /// A runner holds the lock: it is still running.
    Running,
    /// Started, but its runner is gone without an outcome.
    Abandoned { script: Option<String> },
    /// Never started.
    Fresh,
}

async fn inspect_job(job: &Path) -> anyhow::Result<JobState> {
    let job = job.to_path_buf();
    tokio::task::spawn_blocking(move || inspect_job_now(&job)).await?
}

fn inspect_job_now(job: &Path) -> anyhow::Result<JobState> {
    // The lock first: while a runner holds it, `result.json` may be half written or not
    // yet durable, and its outcome must not be reported.
    let lock = match try_lock(job, false)? {
        Locked::No => return Ok(JobState::Running),
        Locked::Yes(lock) => Some(lock),
        Locked::NoLockFile => None,
    };
    let state = if let Some(run) = read_result(job)? {
        JobState::Recorded(run)
    } else if let Some(started) = read_started(job)? {
        JobState::Abandoned {
            script: started.script,
        }
    } else {
        JobState::Fresh
    };
    drop(lock);
    Ok(state)
}

enum Locked {
    Yes(Flock<File>),
    /// Someone else holds it.
    No,
    /// There is no job directory: no runner ever claimed the job.
    NoLockFile,
}

/// Takes the job's lock without waiting: a `flock` on the job directory itself (a lock file
/// would be one more inode to create per hook). A `job.lock` left in the directory by an
/// earlier version of the agent is honoured instead. `claiming`: the caller is about to run
/// the job, so its directory must exist.
fn try_lock(job: &Path, claiming: bool) -> anyhow::Result<Locked> {
    let legacy = job.join(LOCK_FILE);
    let path = if legacy.try_exists()? {
        legacy
    } else {
        job.to_path_buf()
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !claiming => {
            return Ok(Locked::NoLockFile);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Locked::Yes(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(Locked::No),
        Err((_, e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// The recorded outcome. Call it only with the job's lock free: an empty file is a claimed
/// job's placeholder, and one that does not parse was cut short by a crash; neither is an
/// outcome.
fn read_result(job: &Path) -> anyhow::Result<Option<HookRun>> {
    let path = job.join(RESULT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The `started` marker's contents, for the report if the runner is lost.
#[derive(Debug, Serialize, Deserialize)]
struct Started {
    /// The runner's pid (named from when each hook had a supervisor process of its own).
    supervisor_pid: u32,
    script: Option<String>,
}

fn read_started(job: &Path) -> anyhow::Result<Option<Started>> {
    let path = job.join(STARTED_FILE);
    match std::fs::read(&path) {
        // The marker's existence is what counts; unreadable contents only lose the script name.
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Started {
            supervisor_pid: 0,
            script: None,
        }))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates the job directory. Not durable yet: the runner syncs the jobs directory with its
/// claim.
fn create_job_dir(job: &Path) -> anyhow::Result<()> {
    let jobs_dir = parent(job);
    if !jobs_dir.try_exists()? {
        // Once per state directory: the jobs directory itself must be durable before any
        // claim in it is.
        std::fs::create_dir_all(jobs_dir)
            .with_context(|| format!("cannot create {}", jobs_dir.display()))?;
        sync_dir(parent(jobs_dir))?;
    }
    std::fs::create_dir_all(job).with_context(|| format!("cannot create {}", job.display()))
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The last non-empty line of a log, to say why something failed.
fn last_line(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// Why a runner that answered this agent did not start the hook.
fn never_started(reply: &RunnerReply) -> String {
    match reply {
        RunnerReply::Failed { error } => {
            format!("the hook runner did not start the hook: {error}")
        }
        // Not expected with the job directory showing no start: say what was seen.
        RunnerReply::Ran | RunnerReply::NotRun => {
            format!("the hook runner answered {reply:?} but the job directory shows no start")
        }
    }
}

/// The stage has no script: the controller skips it.
fn no_script() -> HookRun {
    HookRun {
        error: None,
        ..failed(None, String::new())
    }
}

fn failed(script: Option<String>, error: String) -> HookRun {
    HookRun {
        script,
        exit_code: None,
        signal: None,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        duration_ms: 0,
        error: Some(error),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Claims the job, runs the hook and records its outcome: what the runner does for one request,
/// in its own thread. `None`: another runner holds the job, or one already started it, so this
/// one must not run it.
pub fn supervise(
    job_dir: &Path,
    stage: HookStage,
    timeout: Duration,
    script: &Path,
    args: &[OsString],
) -> anyhow::Result<Option<HookRun>> {
    let Some(claim) = claim(job_dir, script)? else {
        return Ok(None);
    };
    let run = run_hook(job_dir, stage, timeout, script, args);
    let record = || -> io::Result<()> {
        let mut result = &claim.result;
        result.write_all(&serde_json::to_vec(&run)?)?;
        result.sync_all()
    };
    record().with_context(|| format!("cannot write {}", job_dir.join(RESULT_FILE).display()))?;
    drop(claim);
    Ok(Some(run))
}

/// A claimed job: its lock, kept until the outcome is recorded, and the empty `result.json`.
struct Claim {
    result: File,
    _lock: Flock<File>,
}

/// Takes the job's lock and creates `started` and the empty `result.json` durably, unless
/// the job is held or was started before.
fn claim(job_dir: &Path, script: &Path) -> anyhow::Result<Option<Claim>> {
    let Locked::Yes(lock) = try_lock(job_dir, true)? else {
        return Ok(None);
    };
    let started = job_dir.join(STARTED_FILE);
    let marker = Started {
        supervisor_pid: std::process::id(),
        script: Some(display(script)),
    };
    // `create_new`: an existing marker means the hook may have run.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&started)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", started.display())),
    };
    let mut prepare = || -> anyhow::Result<File> {
        // The file's own fsync persists its new inode (a directory sync alone does not on
        // every filesystem, e.g. ext4 without a journal); the directory syncs, its name.
        file.write_all(&serde_json::to_vec(&marker)?)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", started.display()))?;
        // Without `started` there never was an outcome: whatever is here is a placeholder
        // that a crash left behind.
        let result_path = job_dir.join(RESULT_FILE);
        let result = File::create(&result_path)
            .with_context(|| format!("cannot create {}", result_path.display()))?;
        // The job directory holds the new names, its parent the job directory the agent made.
        sync_dir(job_dir)?;
        sync_dir(parent(job_dir))?;
        Ok(result)
    };
    match prepare() {
        Ok(result) => Ok(Some(Claim {
            result,
            _lock: lock,
        })),
        Err(e) => {
            // The hook was not spawned: take the marker back, so the agent reports why (from
            // the runner's reply) instead of a possibly-run hook. Best effort.
            let _ = std::fs::remove_file(&started);
            Err(e)
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Runs the hook to its end (or kills it at its timeout) and describes how it ended.
fn run_hook(
    job_dir: &Path,
    stage: HookStage,
    timeout: Duration,
    script: &Path,
    args: &[OsString],
) -> HookRun {
    let begun = Instant::now();
    let ended = spawn_and_wait(job_dir, stage, timeout, script, args);
    let duration_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, timed_out, error) = match ended {
        Ok((status, timed_out)) => (Some(status), timed_out, None),
        Err(e) => (None, false, Some(format!("{e:#}"))),
    };
    HookRun {
        script: Some(display(script)),
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: tail(&job_dir.join(STDOUT_FILE)),
        stderr: tail(&job_dir.join(STDERR_FILE)),
        duration_ms,
        error,
    }
}

/// Spawns the hook as the leader of a new process group and waits for it; at the timeout
/// the whole group is stopped. Returns the exit status and whether it timed out.
fn spawn_and_wait(
    job_dir: &Path,
    stage: HookStage,
    timeout: Duration,
    script: &Path,
    args: &[OsString],
) -> anyhow::Result<(ExitStatus, bool)> {
    let dir = script.parent().context("the script has no directory")?;
    let mut command = std::process::Command::new(script);
    command
        .args(args)
        .current_dir(dir)
        .env(STAGE_ENV, stage.as_str())
        .stdin(Stdio::null())
        .stdout(create_output(&job_dir.join(STDOUT_FILE))?)
        .stderr(create_output(&job_dir.join(STDERR_FILE))?)
        // Leader of its own group, so a timeout can kill everything the hook forked.
        .process_group(0);
    let child = spawn_blocking_retrying(|| command.spawn())
        .with_context(|| format!("cannot run {}", script.display()))?;
    wait_or_stop(child, timeout).context("lost track of the hook process")
}

fn create_output(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::OnceLock;

    use convoy_core::hook::HookVerdict;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    use rustix::event::{PollFd, PollFlags, Timespec, poll};

    use super::runner::serve;
    use super::*;
    use crate::process_group::GRACE;

    /// Writes an executable `#!/bin/sh` script.
    fn write_script(path: &Path, body: &str) {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(path)
            .unwrap();
        file.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .unwrap();
    }

    /// A state directory with a hooks directory in it.
    struct Site {
        dir: tempfile::TempDir,
    }

    impl Site {
        fn new() -> Site {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("hooks")).unwrap();
            Site { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn hooks_dir(&self) -> PathBuf {
            self.path("hooks")
        }

        fn hook(&self, name: &str, body: &str) -> PathBuf {
            let path = self.hooks_dir().join(name);
            write_script(&path, body);
            path
        }

        /// A fresh `Hooks`, as a (re)started agent builds it.
        fn hooks(&self) -> Hooks {
            Hooks {
                hooks_dir: Some(self.hooks_dir()),
                jobs_dir: self.path("jobs"),
                agent_binary: runner_binary().to_path_buf(),
            }
        }

        fn job(&self, id: Uuid) -> PathBuf {
            self.path("jobs").join(id.to_string())
        }

        fn lines(&self, name: &str) -> Vec<String> {
            std::fs::read_to_string(self.path(name))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn request(stage: HookStage, args: &[&str], timeout_seconds: u64) -> HookRequest {
        HookRequest {
            stage,
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout_seconds,
            requires: None,
        }
    }

    /// Stands in for the agent binary: unit tests cannot reach the built `convoy-agent`
    /// (Cargo sets CARGO_BIN_EXE_* for integration tests only), so this script runs the test
    /// binary's `runner_process` test, which parses the same command line and serves a jobs
    /// directory in a separate process, exactly as `convoy-agent hook-runner` does. Its
    /// runners exit after 10 s idle, or sooner once their test's directory is gone.
    fn runner_binary() -> &'static Path {
        static WRAPPER: OnceLock<PathBuf> = OnceLock::new();
        WRAPPER.get_or_init(|| runner_wrapper(Duration::from_secs(10)))
    }

    /// A wrapper whose runners exit after `idle` without work.
    fn runner_wrapper(idle: Duration) -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let name = exe.to_str().unwrap();
        // Next to the test binary; written to a private name and renamed, so test processes
        // running side by side never execute a half-written file.
        runner_wrapper_at(&exe, idle, &format!("{name}-runner-{}", idle.as_millis()))
    }

    /// A wrapper at `path` whose runners are the test binary `exe`.
    fn runner_wrapper_at(exe: &Path, idle: Duration, path: &str) -> PathBuf {
        let name = exe.to_str().unwrap();
        assert!(!name.contains('\''), "{name}");
        let idle = idle.as_millis();
        let path = PathBuf::from(path);
        let tmp = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
        // `--nocapture`: the runner's messages go to its log, as the real one's do.
        write_script(
            &tmp,
            &format!(
                "exec '{name}' --exact --ignored --quiet --nocapture --test-threads=1 \
                 hooks::tests::runner_process -- \"$@\" --idle-ms {idle}"
            ),
        );
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    #[test]
    #[ignore = "the hook runner process of the run() tests; they start it themselves"]
    fn runner_process() {
        let argv: Vec<OsString> = std::env::args_os().collect();
        let Some(at) = argv.iter().position(|a| a == RUNNER_SUBCOMMAND) else {
            return;
        };
        let argv = std::iter::once(OsString::from("convoy-agent")).chain(argv[at..].to_vec());
        let args = match crate::parse_invocation(argv) {
            Ok(crate::Invocation::Mode(crate::Mode::HookRunner(args))) => args,
            other => panic!("not a runner command line: {other:?}"),
        };
        let code = match serve(&args.jobs_dir, Duration::from_millis(args.idle_ms)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: {e:#}");
                1
            }
        };
        // The detached runner is a fork of this test's thread alone: the test harness that
        // would collect the result is not there, so end the process here.
        std::process::exit(code);
    }

    /// Waits up to 10 s for `condition`; false if it never held.
    fn eventually(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        condition()
    }

    async fn eventually_async(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        condition()
    }

    /// The process is gone. A zombie counts as gone: where init does not reap orphans (some
    /// containers), a killed orphan stays a zombie, which runs nothing.
    fn gone(pid: i32) -> bool {
        if kill(Pid::from_raw(pid), None).is_err() {
            return true;
        }
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    }

    fn pid_in(path: &Path) -> i32 {
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn the_first_regular_file_among_the_candidates_is_the_hook() {
        let site = Site::new();
        let hooks = site.hooks();
        let dir = site.hooks_dir();
        assert_eq!(hooks.script(HookStage::PreFlight), None);
        // A directory by the first name does not count.
        std::fs::create_dir(dir.join("PreFlight")).unwrap();
        site.hook("PreFlight.py", "exit 0");
        let shown = |stage| hooks.script(stage).map(|path| display(&path));
        assert_eq!(
            shown(HookStage::PreFlight),
            Some(display(&dir.join("PreFlight.py")))
        );
        site.hook("PreFlight.sh", "exit 0");
        assert_eq!(
            shown(HookStage::PreFlight),
            Some(display(&dir.join("PreFlight.sh")))
        );
        std::fs::remove_dir(dir.join("PreFlight")).unwrap();
        site.hook("PreFlight", "exit 0");
        assert_eq!(
            shown(HookStage::PreFlight),
            Some(display(&dir.join("PreFlight")))
        );
        assert_eq!(shown(HookStage::Maintenance), None);
    }

    #[tokio::test]
    async fn without_a_hooks_dir_or_a_script_a_stage_has_no_script() {
        let site = Site::new();
        let id = Uuid::new_v4();
        let request = request(HookStage::Maintenance, &[], 5);
        for hooks_dir in [None, Some(site.path("missing"))] {
            let hooks = Hooks {
                hooks_dir,
                ..site.hooks()
            };
            assert_eq!(hooks.script(HookStage::Maintenance), None);
            let run = hooks.run(id, &request).await;
            assert_eq!(run.script, None);
            assert_eq!((run.exit_code, run.error.as_deref()), (None, None));
            assert_eq!(run.verdict(), HookVerdict::NoScript);
        }
        let run = site.hooks().run(id, &request).await;
        assert_eq!(run.verdict(), HookVerdict::NoScript);
        assert!(!site.job(id).exists());
    }

    #[tokio::test]
    async fn a_hook_gets_the_payload_words_its_stage_and_its_directory() {
        let site = Site::new();
        let out = site.dir.path().display().to_string();
        site.hook(
            "PreMaintenance.sh",
            &format!(
                "printf '%s\\n' \"$@\" > '{out}/args'\n\
                 echo \"$CONVOY_HOOK_STAGE\" > '{out}/stage'\n\
                 pwd > '{out}/cwd'"
            ),
        );
        let words = ["--force", "two words", "$HOME", "*", ""];
        let run = site
            .hooks()
            .run(
                Uuid::new_v4(),
                &request(HookStage::PreMaintenance, &words, 10),
            )
            .await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
        assert_eq!(site.lines("args"), words);
        assert_eq!(site.lines("stage"), ["PreMaintenance"]);
        let cwd = PathBuf::from(&site.lines("cwd")[0]);
        assert_eq!(
            cwd.canonicalize().unwrap(),
            site.hooks_dir().canonicalize().unwrap()
        );
    }

    #[tokio::test]
    async fn exit_codes_are_reported_with_the_output() {
        let site = Site::new();
        site.hook(
            "Maintenance",
            "echo \"out $1\"\necho \"err $1\" >&2\nexit \"$1\"",
        );
        let hooks = site.hooks();
        let run_with = |code: &'static str| {
            let hooks = hooks.clone();
            async move {
                let request = request(HookStage::Maintenance, &[code], 10);
                hooks.run(Uuid::new_v4(), &request).await
            }
        };
        let ok = run_with("0").await;
        assert_eq!(ok.verdict(), HookVerdict::Succeeded);
        assert_eq!((ok.exit_code, ok.stdout.as_str()), (Some(0), "out 0\n"));
        assert_eq!(
            ok.script,
            Some(display(&site.hooks_dir().join("Maintenance")))
        );
        let avoid = run_with("70").await;
        assert_eq!(avoid.verdict(), HookVerdict::AvoidMaintenance);
        let failed = run_with("3").await;
        assert_eq!(failed.exit_code, Some(3));
        assert_eq!(failed.stderr, "err 3\n");
        assert_eq!(
            failed.verdict(),
            HookVerdict::Failed("exit code 3: err 3".into())
        );
        assert!(!failed.timed_out && failed.error.is_none());
    }

    #[test]
    fn a_claim_that_fails_takes_its_marker_back_and_runs_nothing() {
        let site = Site::new();
        let count = site.path("count");
        let script = site.hook("PreFlight", &format!("echo ran >> '{}'", count.display()));
        let job = site.path("job");
        // The placeholder cannot be created where a directory stands.
        std::fs::create_dir_all(job.join(RESULT_FILE)).unwrap();
        let claimed = supervise(
            &job,
            HookStage::PreFlight,
            Duration::from_secs(5),
            &script,
            &[],
        );
        let error = format!("{:#}", claimed.unwrap_err());
        assert!(error.contains("cannot create"), "{error}");
        assert!(!job.join(STARTED_FILE).exists());
        assert!(!count.exists(), "the hook must not run");
    }

    #[test]
    fn a_hook_that_cannot_be_executed_is_an_error() {
        let site = Site::new();
        let script = site.hook("PreFlight.py", "exit 0");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let job = site.path("job");
        std::fs::create_dir(&job).unwrap();
        let run = supervise(
            &job,
            HookStage::PreFlight,
            Duration::from_secs(5),
            &script,
            &[],
        )
        .unwrap()
        .unwrap();
        let error = run.error.clone().unwrap();
        assert!(error.starts_with("cannot run "), "{error}");
        assert_eq!(run.exit_code, None);
        assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
    }

    /// Runs a hook that forks a sleeping child and then sleeps itself, with a 1 s timeout.
    fn run_hanging_hook(site: &Site, prelude: &str) -> (HookRun, i32, i32) {
        let out = site.dir.path().display().to_string();
        let script = site.hook(
            "Maintenance.sh",
            &format!(
                "{prelude}\nsleep 300 &\necho $! > '{out}/child.pid'\n\
                 echo $$ > '{out}/leader.pid'\necho about to hang\nsleep 300"
            ),
        );
        let job = site.path("job");
        std::fs::create_dir(&job).unwrap();
        let run = supervise(
            &job,
            HookStage::Maintenance,
            Duration::from_secs(1),
            &script,
            &[],
        )
        .unwrap()
        .unwrap();
        let leader = pid_in(&site.path("leader.pid"));
        let child = pid_in(&site.path("child.pid"));
        assert_eq!(read_result(&job).unwrap(), Some(run.clone()));
        (run, leader, child)
    }

    #[test]
    fn a_timed_out_hook_is_killed_with_everything_it_forked() {
        let site = Site::new();
        // A second child that records the SIGTERM it is sent: the whole group gets it, not
        // only the leader.
        let witness = site.path("witness");
        let prelude = format!(
            "(trap 'echo TERM > \"{}\"; exit 0' TERM; sleep 300 & wait) &",
            witness.display()
        );
        let (run, leader, child) = run_hanging_hook(&site, &prelude);
        assert!(run.timed_out, "{run:?}");
        assert_eq!(run.signal, Some(Signal::SIGTERM as i32));
        assert_eq!(run.exit_code, None);
        assert_eq!(run.stdout, "about to hang\n");
        assert!(run.duration_ms >= 1000, "{run:?}");
        assert!(
            matches!(run.verdict(), HookVerdict::Failed(reason) if reason.contains("timed out"))
        );
        assert!(eventually(|| gone(leader) && gone(child)));
        assert!(eventually(
            || std::fs::read_to_string(&witness).is_ok_and(|s| s == "TERM\n")
        ));
    }

    #[test]
    fn a_hook_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let site = Site::new();
        // An ignored signal stays ignored in the children too.
        let (run, leader, child) = run_hanging_hook(&site, "trap '' TERM");
        assert!(run.timed_out, "{run:?}");
        assert_eq!(run.signal, Some(Signal::SIGKILL as i32));
        assert!(
            run.duration_ms >= (Duration::from_secs(1) + GRACE).as_millis() as u64,
            "{run:?}"
        );
        assert!(eventually(|| gone(leader) && gone(child)));
    }

    #[tokio::test]
    async fn a_repeated_command_gets_the_recorded_outcome_without_running_again() {
        let site = Site::new();
        let count = site.path("count").display().to_string();
        site.hook(
            "PostMaintenance.sh",
            &format!("echo ran >> '{count}'\necho hello"),
        );
        let id = Uuid::new_v4();
        let request = request(HookStage::PostMaintenance, &[], 10);
        let first = site.hooks().run(id, &request).await;
        assert_eq!(first.stdout, "hello\n");
        // A restarted agent, and even a script removed since, do not change the record.
        std::fs::remove_file(site.hooks_dir().join("PostMaintenance.sh")).unwrap();
        let again = site.hooks().run(id, &request).await;
        assert_eq!(again, first);
        assert_eq!(site.lines("count"), ["ran"]);
    }

    #[tokio::test]
    async fn a_result_is_an_outcome_only_when_complete_and_its_runner_gone() {
        let site = Site::new();
        let request = request(HookStage::PreFlight, &[], 10);
        let id = Uuid::new_v4();
        let job = site.job(id);
        std::fs::create_dir_all(&job).unwrap();
        let marker = r#"{"supervisor_pid":1,"script":"/hooks/PreFlight"}"#;
        std::fs::write(job.join(STARTED_FILE), marker).unwrap();
        let success = serde_json::to_vec(&HookRun {
            exit_code: Some(0),
            error: None,
            ..failed(Some("/hooks/PreFlight".into()), String::new())
        })
        .unwrap();
        // A runner still holds the lock: even a complete result may not be durable yet.
        let Locked::Yes(lock) = try_lock(&job, true).unwrap() else {
            panic!("the lock is free");
        };
        std::fs::write(job.join(RESULT_FILE), &success).unwrap();
        assert!(matches!(inspect_job_now(&job).unwrap(), JobState::Running));
        drop(lock);
        // The runner is gone: the claim's empty placeholder, or a write a crash cut short,
        // is no outcome.
        for torn in [&b""[..], &success[..success.len() - 1]] {
            std::fs::write(job.join(RESULT_FILE), torn).unwrap();
            let run = site.hooks().run(id, &request).await;
            assert_eq!(run.error.as_deref(), Some(LOST));
        }
        std::fs::write(job.join(RESULT_FILE), &success).unwrap();
        let run = site.hooks().run(id, &request).await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
    }

    #[test]
    fn a_held_lock_means_running_whether_on_the_directory_or_an_old_lock_file() {
        let site = Site::new();
        for legacy in [false, true] {
            let job = site.job(Uuid::new_v4());
            std::fs::create_dir_all(&job).unwrap();
            let held = if legacy {
                File::create(job.join(LOCK_FILE)).unwrap()
            } else {
                File::open(&job).unwrap()
            };
            let held = Flock::lock(held, FlockArg::LockExclusiveNonblock).unwrap();
            assert!(matches!(inspect_job_now(&job).unwrap(), JobState::Running));
            drop(held);
            assert!(matches!(inspect_job_now(&job).unwrap(), JobState::Fresh));
        }
    }

    #[tokio::test]
    async fn a_job_started_by_a_vanished_runner_is_reported_lost() {
        let site = Site::new();
        let count = site.path("count").display().to_string();
        site.hook("PreFlight", &format!("echo ran >> '{count}'"));
        let request = request(HookStage::PreFlight, &[], 10);
        for with_lock_file in [true, false] {
            let id = Uuid::new_v4();
            let job = site.job(id);
            std::fs::create_dir_all(&job).unwrap();
            if with_lock_file {
                File::create(job.join(LOCK_FILE)).unwrap();
            }
            let marker = r#"{"supervisor_pid":1,"script":"/hooks/PreFlight"}"#;
            std::fs::write(job.join(STARTED_FILE), marker).unwrap();
            let run = site.hooks().run(id, &request).await;
            assert_eq!(run.error.as_deref(), Some(LOST));
            assert_eq!(run.script.as_deref(), Some("/hooks/PreFlight"));
            assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
        }
        assert!(site.lines("count").is_empty(), "the hook must not run");
    }

    /// A hook that counts its runs, then waits for the `gate` file before it finishes.
    fn gated_hook(site: &Site) {
        let (count, gate) = (site.path("count"), site.path("gate"));
        site.hook(
            "Maintenance.sh",
            &format!(
                "echo ran >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\necho finished",
                count.display(),
                gate.display()
            ),
        );
    }

    fn open_gate(site: &Site) {
        File::create(site.path("gate")).unwrap();
    }

    #[tokio::test]
    async fn a_restarted_agent_waits_for_the_earlier_runner_and_reports_its_outcome() {
        let site = Site::new();
        gated_hook(&site);
        let id = Uuid::new_v4();
        let request = request(HookStage::Maintenance, &[], 60);
        let first_agent = {
            let (hooks, request) = (site.hooks(), request.clone());
            tokio::spawn(async move { hooks.run(id, &request).await })
        };
        let started = site.job(id).join(STARTED_FILE);
        assert!(eventually_async(|| started.exists()).await);
        // The agent dies; its runner, detached from it, carries on.
        first_agent.abort();
        assert!(first_agent.await.unwrap_err().is_cancelled());

        let restarted = site.hooks();
        let mut outcome = std::pin::pin!(restarted.run(id, &request));
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut outcome).await;
        assert!(
            waited.is_err(),
            "it must wait for the running hook: {waited:?}"
        );
        open_gate(&site);
        let run = outcome.await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
        assert_eq!(run.stdout, "finished\n");
        assert_eq!(site.lines("count"), ["ran"]);
    }

    #[tokio::test]
    async fn a_runner_killed_mid_hook_is_never_reported_as_success() {
        let site = Site::new();
        gated_hook(&site);
        let id = Uuid::new_v4();
        let request = request(HookStage::Maintenance, &[], 60);
        let agent = {
            let (hooks, request) = (site.hooks(), request.clone());
            tokio::spawn(async move { hooks.run(id, &request).await })
        };
        let job = site.job(id);
        // Once the hook runs, the marker (created before it is written) is complete.
        assert!(eventually_async(|| site.lines("count") == ["ran"]).await);
        let runner = read_started(&job).unwrap().unwrap().supervisor_pid;
        kill(
            Pid::from_raw(i32::try_from(runner).unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        let run = agent.await.unwrap();
        // Let the orphaned hook finish before its directory goes away with the test's.
        open_gate(&site);
        let stdout = job.join(STDOUT_FILE);
        assert!(
            eventually_async(|| std::fs::read_to_string(&stdout).is_ok_and(|s| s == "finished\n"))
                .await
        );
        assert_eq!(run.error.as_deref(), Some(LOST));
        assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
        // Asked again, it still does not run the hook a second time.
        assert_eq!(
            site.hooks().run(id, &request).await.error.as_deref(),
            Some(LOST)
        );
        assert_eq!(site.lines("count"), ["ran"]);
        // The dead runner left its socket behind; the next command's runner replaces it.
        let next = Uuid::new_v4();
        let run = site.hooks().run(next, &request).await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
        assert_ne!(runner_of(&site.job(next)), i32::try_from(runner).unwrap());
    }

    /// The pid of the runner that claimed a job.
    fn runner_of(job: &Path) -> i32 {
        i32::try_from(read_started(job).unwrap().unwrap().supervisor_pid).unwrap()
    }

    #[tokio::test]
    async fn concurrent_hooks_share_one_runner() {
        let site = Site::new();
        gated_hook(&site);
        let request = request(HookStage::Maintenance, &[], 60);
        let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        // Each starts a runner, as none listens yet; one takes the directory.
        let agents: Vec<_> = ids
            .iter()
            .map(|&id| {
                let (hooks, request) = (site.hooks(), request.clone());
                tokio::spawn(async move { hooks.run(id, &request).await })
            })
            .collect();
        assert!(eventually_async(|| site.lines("count").len() == ids.len()).await);
        let runners: Vec<i32> = ids.iter().map(|&id| runner_of(&site.job(id))).collect();
        assert!(runners.iter().all(|&r| r == runners[0]), "{runners:?}");
        assert_ne!(runners[0], i32::try_from(std::process::id()).unwrap());
        open_gate(&site);
        for agent in agents {
            let run = agent.await.unwrap();
            assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
            assert_eq!(run.stdout, "finished\n");
        }
        assert_eq!(site.lines("count").len(), ids.len());
    }

    #[tokio::test]
    async fn a_runner_that_exited_idle_is_replaced_transparently() {
        let site = Site::new();
        site.hook("PreFlight", "echo hello");
        let hooks = Hooks {
            agent_binary: runner_wrapper(Duration::from_millis(100)),
            ..site.hooks()
        };
        let request = request(HookStage::PreFlight, &[], 10);
        let socket = site.path("jobs").join(RUNNER_SOCKET);
        let mut runners = Vec::new();
        for _ in 0..2 {
            let id = Uuid::new_v4();
            let run = hooks.run(id, &request).await;
            assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
            assert_eq!(run.stdout, "hello\n");
            let runner = runner_of(&site.job(id));
            // It exits on its own, taking its socket with it.
            assert!(eventually_async(|| gone(runner) && !socket.exists()).await);
            runners.push(runner);
        }
        assert_ne!(runners[0], runners[1]);
    }

    /// A runner that decides to exit idle just as the agent connects: it closes the connection
    /// unanswered after taking it off the queue, or with it still queued. The hook has not
    /// started, so the agent asks a new runner, and the hook runs once.
    #[tokio::test]
    async fn a_connection_closed_unanswered_before_the_hook_started_is_asked_again() {
        for accepted in [true, false] {
            let site = Site::new();
            let count = site.path("count");
            site.hook("PreFlight", &format!("echo ran >> '{}'", count.display()));
            let jobs = site.path("jobs");
            std::fs::create_dir_all(&jobs).unwrap();
            let lock = File::create(jobs.join(RUNNER_LOCK)).unwrap();
            let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).unwrap();
            let socket = jobs.join(RUNNER_SOCKET);
            let listener = UnixListener::bind(&socket).unwrap();
            let id = Uuid::new_v4();
            let agent = {
                let (hooks, request) = (site.hooks(), request(HookStage::PreFlight, &[], 10));
                tokio::spawn(async move { hooks.run(id, &request).await })
            };
            let exiting = tokio::task::spawn_blocking(move || {
                let mut request = String::new();
                let connection = if accepted {
                    let (stream, _) = listener.accept().unwrap();
                    io::BufReader::new(&stream).read_line(&mut request).unwrap();
                    Some(stream)
                } else {
                    let ten = Timespec {
                        tv_sec: 10,
                        tv_nsec: 0,
                    };
                    let mut fds = [PollFd::new(&listener, PollFlags::IN)];
                    assert_eq!(poll(&mut fds, Some(&ten)).unwrap(), 1, "no connection");
                    None
                };
                // In a runner's order: socket, connections, listener, lock.
                std::fs::remove_file(&socket).unwrap();
                drop(connection);
                drop(listener);
                drop(lock);
                request
            });
            let request = exiting.await.unwrap();
            if accepted {
                assert!(request.contains(&id.to_string()), "{request}");
            }
            let run = agent.await.unwrap();
            assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
            assert_ne!(
                runner_of(&site.job(id)),
                i32::try_from(std::process::id()).unwrap()
            );
            assert_eq!(site.lines("count"), ["ran"]);
        }
    }

    #[tokio::test]
    async fn a_runner_whose_binary_was_replaced_exits_once_idle() {
        let site = Site::new();
        site.hook("PreFlight", "echo hello");
        let exe = site.path("agent");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        let wrapper = site.path("agent-wrapper").display().to_string();
        // Idle for longer than the wait below.
        let hooks = Hooks {
            agent_binary: runner_wrapper_at(&exe, Duration::from_secs(600), &wrapper),
            ..site.hooks()
        };
        let id = Uuid::new_v4();
        let run = hooks.run(id, &request(HookStage::PreFlight, &[], 10)).await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
        let runner = runner_of(&site.job(id));
        assert!(!gone(runner));
        std::fs::remove_file(&exe).unwrap();
        assert!(eventually_async(|| gone(runner)).await);
    }

    #[test]
    fn a_second_runner_for_a_jobs_dir_exits_at_once() {
        let site = Site::new();
        let jobs = site.path("jobs");
        std::fs::create_dir(&jobs).unwrap();
        let lock = File::create(jobs.join(RUNNER_LOCK)).unwrap();
        let _lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).unwrap();
        let output = std::process::Command::new(runner_binary())
            .arg(RUNNER_SUBCOMMAND)
            .arg("--jobs-dir")
            .arg(&jobs)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("another runner serves"), "{stderr}");
        assert!(!jobs.join(RUNNER_SOCKET).exists());
    }

    #[tokio::test]
    async fn a_jobs_dir_too_long_for_a_socket_path_still_runs_hooks() {
        let site = Site::new();
        site.hook("PreFlight", "echo hello");
        let jobs = site.path(&"deep".repeat(30)).join("jobs");
        assert!(jobs.join(RUNNER_SOCKET).as_os_str().len() > SUN_PATH_MAX);
        let hooks = Hooks {
            jobs_dir: jobs.clone(),
            ..site.hooks()
        };
        let request = request(HookStage::PreFlight, &[], 10);
        let mut runners = Vec::new();
        for _ in 0..2 {
            let id = Uuid::new_v4();
            let run = hooks.run(id, &request).await;
            assert_eq!(run.stdout, "hello\n", "{run:?}");
            runners.push(runner_of(&jobs.join(id.to_string())));
        }
        assert_eq!(runners[0], runners[1], "one runner serves both");
        assert!(jobs.join(RUNNER_SOCKET).exists());
    }
}
