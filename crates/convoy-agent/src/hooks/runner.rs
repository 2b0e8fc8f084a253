//! The hook runner: plain blocking code in its own process, a thread per hook, no async
//! runtime (see the module above for what it promises).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::{
    MAX_REQUEST, REQUEST_TIMEOUT, RUNNER_IDLE, RUNNER_LOCK, RUNNER_SOCKET, RUNNER_SUBCOMMAND,
    RUNNER_TICK, RunnerReply, RunnerRequest, SUPERVISOR_LOG, SocketAddress, open_log, supervise,
};

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

/// Takes the jobs directory, listens, detaches and serves requests until idle. Returns at once
/// if another runner holds the directory. The process that started returns (and exits) only
/// before it detaches: once it has exited, the runner listens.
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
    // of reach of signals to the agent's process group. The lock and the socket are shared
    // with the child, so they stay held.
    nix::unistd::daemon(false, true).context("cannot detach")?;
    let served = accept_until_idle(&listener, &address, idle);
    // Under the lock, so no other runner's socket is removed; new clients then start a new
    // runner, and those already queued see their connection closed without a reply.
    let _ = std::fs::remove_file(&address.path);
    drop(listener);
    drop(lock);
    served
}

fn accept_until_idle(
    listener: &UnixListener,
    address: &SocketAddress,
    idle: Duration,
) -> anyhow::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let mut quiet_since = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                start_request(stream, &active);
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
        let now = Instant::now();
        let wait = if active.load(Ordering::SeqCst) > 0 {
            quiet_since = now;
            RUNNER_TICK
        } else {
            let left = (quiet_since + idle).saturating_duration_since(now);
            // A removed state directory (a test's, say) has no agent left to serve, and a
            // replaced binary (an upgrade) should serve the next hooks.
            if left.is_zero() || !address.path.exists() || binary_replaced() {
                return Ok(());
            }
            left.min(RUNNER_TICK)
        };
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

fn start_request(stream: UnixStream, active: &Arc<AtomicUsize>) {
    let active = Active::new(active);
    let spawned = std::thread::Builder::new()
        .name("hook".into())
        .spawn(move || {
            let _active = active;
            serve_request(stream);
        });
    if let Err(e) = spawned {
        // The connection closes unanswered with the hook not started: the agent asks again.
        eprintln!("convoy-agent {RUNNER_SUBCOMMAND}: cannot start a thread for a request: {e}");
    }
}

fn serve_request(stream: UnixStream) {
    let reply = match read_request(&stream) {
        Ok(request) => run_request(&request),
        Err(e) => RunnerReply::Failed {
            error: format!("bad hook request: {e:#}"),
        },
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_default();
    line.push(b'\n');
    // An agent killed meanwhile is not listening; its successor reads the job directory.
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

fn run_request(request: &RunnerRequest) -> RunnerReply {
    let args: Vec<OsString> = request.args.iter().map(OsString::from).collect();
    let ran = supervise(
        &request.job_dir,
        request.stage,
        Duration::from_secs(request.timeout_seconds),
        &request.script,
        &args,
    );
    match ran {
        Ok(Some(_)) => RunnerReply::Ran,
        Ok(None) => RunnerReply::NotRun,
        Err(e) => {
            let error = format!("{e:#}");
            // Kept with the job, for whoever looks at it later. Best effort.
            let _ = open_log(&request.job_dir.join(SUPERVISOR_LOG))
                .and_then(|mut log| Ok(writeln!(log, "{error}")?));
            RunnerReply::Failed { error }
        }
    }
}
