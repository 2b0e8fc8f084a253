//! The hook runner: plain blocking code in its own process, a thread per request, no async
//! runtime (see the module above for what it promises). It alone writes the jobs journal, and
//! it keeps in memory what the journal says of every job, plus the jobs it runs right now.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use convoy_core::hook::HookRun;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use uuid::Uuid;

use super::journal::{ENDED_SYNC_WITHIN, Entry, Journal, Record};
use super::{
    MAX_REQUEST, REQUEST_TIMEOUT, RUNNER_IDLE, RUNNER_LOCK, RUNNER_SOCKET, RUNNER_SUBCOMMAND,
    RUNNER_TICK, RunnerReply, RunnerRequest, STAGE_ENV, SocketAddress, display, failed,
};
use crate::process_group::{Capture, spawn_blocking_retrying, wait_or_stop_tending};

/// `convoy-agent hook-runner`: started by the agent, never by hand.
#[derive(Debug, clap::Args)]
pub struct RunnerArgs {
    /// The jobs directory (`<state-dir>/jobs`).
    #[arg(long)]
    pub jobs_dir: PathBuf,
    /// Exit after this many milliseconds without a request or a running hook.
    #[arg(long, default_value_t = RUNNER_IDLE.as_millis() as u64)]
    pub idle_ms: u64,
}

pub fn runner_main(args: RunnerArgs) -> ExitCode {
    match serve(&args.jobs_dir, Duration::from_millis(args.idle_ms)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the jobs directory, reads its journal, listens, detaches and serves requests until
/// idle. Returns at once if another runner holds the directory. The process that started
/// returns (and exits) only before it detaches: once it has exited, the runner listens.
pub(super) fn serve(jobs_dir: &Path, idle: Duration) -> anyhow::Result<()> {
    // Absolute, as detaching moves the runner to `/`.
    let jobs_dir = std::path::absolute(jobs_dir)?;
    let lock_path = jobs_dir.join(RUNNER_LOCK);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => {
            eprintln!(
                "convoy-agent {RUNNER_SUBCOMMAND}: another runner serves {}; exiting",
                jobs_dir.display()
            );
            return Ok(());
        }
        Err((_, e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
        }
    };
    // Under the lock: no other runner writes it now.
    let (journal, entries) = Journal::open(&jobs_dir)?;
    let runner = Arc::new(Runner {
        journal: Mutex::new(journal),
        jobs: Mutex::new(
            entries
                .into_iter()
                .map(|(id, e)| (id, Job::Known(e)))
                .collect(),
        ),
    });
    let address = SocketAddress::new(&jobs_dir)?;
    // Left by a runner that died: only the lock's holder may remove it.
    match std::fs::remove_file(&address.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove {}", address.path.display()));
        }
    }
    let listener = UnixListener::bind(&address.path).with_context(|| {
        format!(
            "cannot listen on {}",
            jobs_dir.join(RUNNER_SOCKET).display()
        )
    })?;
    listener.set_nonblocking(true)?;
    // The process the agent started exits here, telling it the runner listens; the runner
    // goes on in a child in a new session: not the agent's child (no zombie to reap), and out
    // of reach of signals to the agent's process group. The lock, the journal and the socket
    // are shared with the child, so they stay held.
    nix::unistd::daemon(false, true).context("cannot detach")?;
    let served = accept_until_idle(&listener, &address, idle, &runner);
    // Under the lock, so no other runner's socket is removed; new clients then start a new
    // runner, and those already queued see their connection closed without a reply.
    let _ = std::fs::remove_file(&address.path);
    drop(listener);
    drop(lock);
    served
}

/// What the runner knows of the jobs it was asked about.
struct Runner {
    journal: Mutex<Journal>,
    jobs: Mutex<HashMap<Uuid, Job>>,
}

enum Job {
    /// As the journal says. A start without an end that this runner does not run was an
    /// earlier runner's, which died: lost.
    Known(Entry),
    /// Running here; its reply goes to every request for it.
    Running(Arc<Pending>),
}

/// The reply to the requests for a running job, once it has ended.
#[derive(Default)]
struct Pending {
    reply: Mutex<Option<RunnerReply>>,
    ended: Condvar,
}

impl Pending {
    fn wait(&self) -> RunnerReply {
        let mut reply = self.reply.lock().expect("pending reply lock");
        loop {
            if let Some(reply) = &*reply {
                return reply.clone();
            }
            reply = self.ended.wait(reply).expect("pending reply lock");
        }
    }

    fn finish(&self, reply: RunnerReply) {
        *self.reply.lock().expect("pending reply lock") = Some(reply);
        self.ended.notify_all();
    }
}

impl Runner {
    /// Syncs the journal's ended records once they have waited `within`; returns how soon
    /// the next are due. A failure is only logged: the outcome was answered already, and the
    /// next start's sync (or this, a second later) tries again.
    fn sync_journal(&self, within: Duration) -> Option<Duration> {
        match self
            .journal
            .lock()
            .expect("journal lock")
            .sync_if_due(within)
        {
            Ok(due) => due,
            Err(e) => {
                eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: {e:#}");
                Some(RUNNER_TICK)
            }
        }
    }

    /// Answers one request: the recorded outcome, a wait for the running hook, or a new run.
    fn answer(&self, request: &RunnerRequest) -> RunnerReply {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        match jobs.get(&request.job) {
            Some(Job::Running(pending)) => {
                let pending = pending.clone();
                drop(jobs);
                pending.wait()
            }
            Some(Job::Known(Entry::Ended { offset, len })) => {
                let (offset, len) = (*offset, *len);
                drop(jobs);
                let journal = self.journal.lock().expect("journal lock");
                match journal.read_run(offset, len) {
                    Ok(run) => RunnerReply::Ended { run },
                    Err(e) => RunnerReply::Failed {
                        error: format!("cannot read the hook's recorded outcome: {e:#}"),
                    },
                }
            }
            Some(Job::Known(Entry::Started { script, .. })) => RunnerReply::Lost {
                script: Some(script.clone()),
            },
            None => {
                let Some(script) = &request.script else {
                    return RunnerReply::NoScript;
                };
                let pending = Arc::new(Pending::default());
                jobs.insert(request.job, Job::Running(pending.clone()));
                drop(jobs);
                let (entry, reply) = self.run(request, script);
                let mut jobs = self.jobs.lock().expect("jobs lock");
                match entry {
                    Some(entry) => jobs.insert(request.job, Job::Known(entry)),
                    None => jobs.remove(&request.job),
                };
                drop(jobs);
                pending.finish(reply.clone());
                reply
            }
        }
    }

    /// Records the start, runs the hook and records its end. The entry is what the journal
    /// now says of the job (None: nothing, the hook was not started).
    fn run(&self, request: &RunnerRequest, script: &Path) -> (Option<Entry>, RunnerReply) {
        let not_started = |e: anyhow::Error| {
            let error = format!("{e:#}");
            (None, RunnerReply::Failed { error })
        };
        let script = match super::confine::check_script(script) {
            Ok(script) => script,
            Err(error) => return (None, RunnerReply::Failed { error }),
        };
        let script = script.as_path();
        let outputs = match Outputs::new() {
            Ok(outputs) => outputs,
            Err(e) => return not_started(e),
        };
        let started = Record::Started {
            job: request.job,
            script: display(script),
            runner_pid: std::process::id(),
        };
        let appended = self.journal.lock().expect("journal lock").append(&started);
        let started = match appended {
            Ok(entry) => entry,
            Err(e) => return not_started(e),
        };
        let args: Vec<OsString> = request.args.iter().map(OsString::from).collect();
        let timeout = Duration::from_secs(request.timeout_seconds);
        let run = run_hook(request, timeout, script, &args, &outputs);
        let ended = Record::Ended {
            job: request.job,
            run: run.clone(),
        };
        let appended = self.journal.lock().expect("journal lock").append(&ended);
        match appended {
            Ok(entry) => (Some(entry), RunnerReply::Ended { run }),
            // Started and never ended, as far as the journal knows: lost from now on.
            Err(e) => (
                Some(started),
                RunnerReply::Failed {
                    error: format!("the hook ran, but its outcome could not be recorded: {e:#}"),
                },
            ),
        }
    }
}

/// Where a hook's stdout and stderr go.
struct Outputs {
    stdout: Capture,
    stderr: Capture,
}

impl Outputs {
    fn new() -> anyhow::Result<Outputs> {
        let capture =
            |name| Capture::new(name).with_context(|| format!("cannot capture the hook's {name}"));
        Ok(Outputs {
            stdout: capture("stdout")?,
            stderr: capture("stderr")?,
        })
    }
}

/// Runs the hook to its end (or kills it at its timeout) and describes how it ended.
fn run_hook(
    request: &RunnerRequest,
    timeout: Duration,
    script: &Path,
    args: &[OsString],
    outputs: &Outputs,
) -> HookRun {
    let begun = Instant::now();
    let ended = spawn_and_wait(request, timeout, script, args, outputs);
    let duration_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, timed_out, error) = match ended {
        Ok((status, timed_out)) => (Some(status), timed_out, None),
        Err(e) => (None, false, Some(format!("{e:#}"))),
    };
    HookRun {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: outputs.stdout.tail(),
        stderr: outputs.stderr.tail(),
        duration_ms,
        error,
        ..failed(Some(display(script)), String::new())
    }
}

/// Spawns the hook as the leader of a new process group and waits for it; at the timeout
/// the whole group is stopped. Returns the exit status and whether it timed out.
fn spawn_and_wait(
    request: &RunnerRequest,
    timeout: Duration,
    script: &Path,
    args: &[OsString],
    outputs: &Outputs,
) -> anyhow::Result<(ExitStatus, bool)> {
    let dir = script.parent().context("the script has no directory")?;
    let mut command = std::process::Command::new(script);
    command
        .args(args)
        .current_dir(dir)
        .envs(&request.env)
        .stdin(Stdio::null())
        .stdout(outputs.stdout.for_child()?)
        .stderr(outputs.stderr.for_child()?)
        // Leader of its own group, so a timeout can kill everything the hook forked.
        .process_group(0);
    if let Some(stage) = request.stage {
        command.env(STAGE_ENV, stage.as_str());
    }
    let child = spawn_blocking_retrying(|| command.spawn())
        .with_context(|| format!("cannot run {}", script.display()))?;
    // The command holds the parent's copies of the output descriptors: close them.
    drop(command);
    let mut trim = || {
        outputs.stdout.trim();
        outputs.stderr.trim();
    };
    wait_or_stop_tending(child, timeout, &mut trim).context("lost track of the hook process")
}

fn accept_until_idle(
    listener: &UnixListener,
    address: &SocketAddress,
    idle: Duration,
    runner: &Arc<Runner>,
) -> anyhow::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let mut quiet_since = Instant::now();
    // Looking for a removed directory or a replaced binary costs two system calls: once a
    // tick is soon enough, and a busy runner would otherwise look after every request.
    let mut looked_at = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                start_request(stream, &active, runner);
                quiet_since = Instant::now();
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors, say: the hooks that end will free some.
                eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: cannot accept a request: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let sync_due = runner.sync_journal(ENDED_SYNC_WITHIN);
        let now = Instant::now();
        let wait = if active.load(Ordering::SeqCst) > 0 {
            quiet_since = now;
            RUNNER_TICK
        } else {
            let left = (quiet_since + idle).saturating_duration_since(now);
            // A removed state directory (a test's, say) has no agent left to serve, and a
            // replaced binary (an upgrade) should serve the next hooks.
            let look = now.duration_since(looked_at) >= RUNNER_TICK;
            if look {
                looked_at = now;
            }
            if left.is_zero() || (look && (!address.path.exists() || binary_replaced())) {
                runner.sync_journal(Duration::ZERO);
                return Ok(());
            }
            left.min(RUNNER_TICK)
        };
        let wait = sync_due.map_or(wait, |due| wait.min(due));
        let wait = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match poll(&mut [PollFd::new(listener, PollFlags::IN)], Some(&wait)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("cannot wait for requests"),
        }
    }
}

/// This process's executable has been deleted or replaced since it started.
fn binary_replaced() -> bool {
    std::fs::read_link("/proc/self/exe")
        .is_ok_and(|exe| exe.as_os_str().as_encoded_bytes().ends_with(b" (deleted)"))
}

/// Counts a request from its acceptance until its reply is sent.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn new(count: &Arc<AtomicUsize>) -> Active {
        count.fetch_add(1, Ordering::SeqCst);
        Active(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start_request(stream: UnixStream, active: &Arc<AtomicUsize>, runner: &Arc<Runner>) {
    let active = Active::new(active);
    let runner = runner.clone();
    let spawned = std::thread::Builder::new()
        .name("hook".into())
        .spawn(move || {
            let _active = active;
            serve_request(stream, &runner);
        });
    if let Err(e) = spawned {
        // The connection closes unanswered with the hook not started: the agent asks again.
        eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: cannot start a thread for a request: {e}");
    }
}

fn serve_request(stream: UnixStream, runner: &Runner) {
    let reply = match super::confine::check_peer(&stream) {
        Err(error) => RunnerReply::Failed { error },
        Ok(()) => match read_request(&stream) {
            Ok(request) => runner.answer(&request),
            Err(e) => RunnerReply::Failed {
                error: format!("bad hook request: {e:#}"),
            },
        },
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_default();
    line.push(b'\n');
    // An agent killed meanwhile is not listening; its successor asks again.
    let _ = (&stream).write_all(&line);
}

fn read_request(stream: &UnixStream) -> anyhow::Result<RunnerRequest> {
    // Accepted sockets do not inherit the listener's non-blocking mode on Linux; be sure.
    stream.set_nonblocking(false)?;
    // An agent that connected and died before sending must not keep the runner alive.
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = Vec::new();
    io::BufReader::new(stream.take(MAX_REQUEST)).read_until(b'\n', &mut line)?;
    Ok(serde_json::from_slice(&line)?)
}
