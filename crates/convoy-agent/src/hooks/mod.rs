//! Operator hook scripts: finding a stage's script and running it so that an agent restart
//! never loses, repeats or invents its outcome.
//!
//! Hooks run under a hook runner: this binary again, as `convoy-agent hook-runner`, one per
//! jobs directory `<state-dir>/jobs/`, detached from the agent (a session of its own, and no
//! child of the agent), so that it and its hooks outlive the agent that started it. It holds
//! `runner.lock` there for its whole life (a second runner exits at once), listens on
//! `runner.sock` and writes its messages to `runner.log`. It exits after a while without a
//! request or a running hook, or with none running once its binary was replaced; the agent
//! starts a new one whenever none listens.
//!
//! The agent connects once per hook run and sends one JSON request line naming the job (the
//! command's id); the runner answers one line when it is done with it:
//!
//! - a job it never heard of is started: recorded in the jobs [`journal`] (durably, before
//!   the hook is spawned), run, and its outcome recorded before the answer (synced with
//!   the next start, or within a second);
//! - a job that ended is answered from the journal, without running it again;
//! - a job it is running right now is waited for (an agent restarted during the hook);
//! - a job that started under an earlier runner and never ended is lost: that runner died
//!   with the hook running, and nobody saw how it ended. It is never started again.
//!
//! The runner alone writes the journal, so asking again is always safe: a connection that
//! ends without an answer (the runner exited idle as the agent connected, or died) is simply
//! asked again, of a new runner if need be, which reads the journal first.
//!
//! The hook leads its own process group; at its timeout the whole group gets SIGTERM, then
//! SIGKILL after a grace period. After a normal exit, whatever the hook left running (a daemon
//! it started) is left alone. Its stdout and stderr are kept in memory (only their tails are
//! reported), so a run creates no file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_api::agent::HookRequest;
use convoy_core::hook::{HookRun, HookStage};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::{info, warn};
use uuid::Uuid;

use crate::process_group::spawn_retrying;

mod confine;
mod journal;
mod runner;
pub use runner::{RunnerArgs, runner_main};

/// The hidden subcommand that runs the hooks of one jobs directory.
pub const RUNNER_SUBCOMMAND: &str = "hook-runner";
/// Tells the hook which stage it runs for (one script may serve several stages).
pub const STAGE_ENV: &str = "CONVOY_HOOK_STAGE";
/// How long a runner waits without a request or a running hook before it exits.
const RUNNER_IDLE: Duration = Duration::from_secs(30);

const RUNNER_LOCK: &str = "runner.lock";
const RUNNER_SOCKET: &str = "runner.sock";
const RUNNER_LOG: &str = "runner.log";

/// How long the agent keeps trying to reach a runner, starting one when none listens.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How often the agent asks again after a connection ended without an answer. Once is the
/// idle-exit race (or a runner that died, whose successor then says the job is lost); more
/// means a runner that keeps failing.
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
    /// Environment every hook gets, so that it can reach its controller as the host
    /// (`"$CONVOY_AGENT" alarm raise ...`).
    pub env: std::collections::BTreeMap<String, String>,
}

impl Hooks {
    /// Runs the stage's hook for command `id`, or, if the runner knows this command already
    /// (an earlier agent run asked for it), reports that run's outcome without running it
    /// again.
    pub async fn run(&self, id: Uuid, request: &HookRequest) -> HookRun {
        let script = self.script(request.stage);
        let shown = script.as_deref().map(display);
        let line = RunnerRequest {
            job: id,
            stage: Some(request.stage),
            env: self.env.clone(),
            timeout_seconds: request.timeout_seconds,
            script,
            args: request.args.clone(),
        };
        self.ask_until_answered(&line, shown).await
    }

    /// Runs `script` as job `job` (a patch script, with its environment besides the one every
    /// hook gets), or reports the outcome of the job's earlier run without running it again:
    /// a restarted agent adopts a script still running, and never starts a second copy of one
    /// that started.
    pub async fn run_job(
        &self,
        job: Uuid,
        script: PathBuf,
        env: std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> HookRun {
        let shown = Some(display(&script));
        let mut all = self.env.clone();
        all.extend(env);
        let env = all;
        let line = RunnerRequest {
            job,
            stage: None,
            env,
            timeout_seconds: timeout.as_secs().max(1),
            script: Some(script),
            args: vec![],
        };
        self.ask_until_answered(&line, shown).await
    }

    async fn ask_until_answered(&self, line: &RunnerRequest, shown: Option<String>) -> HookRun {
        let id = line.job;
        for _ in 0..=UNANSWERED_RETRIES {
            match self.ask_runner(line).await {
                Ok(Some(reply)) => return outcome(reply, shown),
                // The runner went away: its successor reads the journal and knows.
                Ok(None) => {
                    info!(command = %id, "the hook runner went away before answering; asking again")
                }
                Err(e) => return failed(shown, format!("{e:#}")),
            }
        }
        failed(
            shown,
            format!(
                "the hook runner closed the connection {} times without answering (see {})",
                UNANSWERED_RETRIES + 1,
                self.jobs_dir.join(RUNNER_LOG).display()
            ),
        )
    }

    /// The stage's script, if it has one.
    pub fn script(&self, stage: HookStage) -> Option<PathBuf> {
        find_script(self.hooks_dir.as_deref()?, stage)
    }

    /// Sends the request to the runner and waits for its answer. None: the connection ended
    /// without one (the runner exited or died).
    async fn ask_runner(&self, request: &RunnerRequest) -> anyhow::Result<Option<RunnerReply>> {
        let mut line = serde_json::to_vec(request).context("cannot encode the hook request")?;
        line.push(b'\n');
        let mut stream = self.connect_runner().await?;
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
            let jobs_dir = self.jobs_dir.clone();
            tokio::task::spawn_blocking(move || {
                create_jobs_dir(&jobs_dir)?;
                open_log(&jobs_dir.join(RUNNER_LOG))
            })
            .await??
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

/// What the agent reports for the runner's answer.
fn outcome(reply: RunnerReply, script: Option<String>) -> HookRun {
    match reply {
        RunnerReply::Ended { run } => run,
        RunnerReply::NoScript => no_script(),
        RunnerReply::Lost { script: started } => {
            warn!("{LOST}");
            failed(started.or(script), LOST.into())
        }
        RunnerReply::Failed { error } => failed(script, format!("hook runner: {error}")),
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
#[serde(deny_unknown_fields)]
struct RunnerRequest {
    /// The command's id (a hook), or an id derived from it (a patch script).
    job: Uuid,
    /// The hook stage (`CONVOY_HOOK_STAGE`); None for a patch script.
    stage: Option<HookStage>,
    /// More environment for the script (a patch script's `CONVOY_PATCH_ID`, ...).
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    timeout_seconds: u64,
    /// None: the stage has no script (a job the runner knows is still answered).
    script: Option<PathBuf>,
    args: Vec<String>,
}

/// The runner's answer, one JSON line, sent when it is done with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
enum RunnerReply {
    /// The hook ended (now, or in an earlier request) with this outcome, which is recorded.
    Ended { run: HookRun },
    /// It started under a runner that died before it ended.
    Lost { script: Option<String> },
    /// The job is unknown and the stage has no script: nothing ran, nothing is recorded.
    NoScript,
    /// The hook was not started, or its outcome cannot be had, for this reason.
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

/// Creates the jobs directory durably (once per state directory) for the runner's lock and
/// journal.
fn create_jobs_dir(jobs_dir: &Path) -> anyhow::Result<()> {
    if jobs_dir.try_exists()? {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(jobs_dir)
        .with_context(|| format!("cannot create {}", jobs_dir.display()))?;
    crate::patches::files::sync_parent(jobs_dir)
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::OnceLock;

    use convoy_core::hook::HookVerdict;
    use nix::fcntl::{Flock, FlockArg};
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
                env: Default::default(),
            }
        }

        /// The journal's records of job `id`, in order.
        fn records(&self, id: Uuid) -> Vec<serde_json::Value> {
            records_in(&self.path("jobs"), id)
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

    /// The journal's records of job `id` in a jobs directory.
    fn records_in(jobs_dir: &Path, id: Uuid) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(jobs_dir.join(journal::JOURNAL_FILE)).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|record| {
                let body = record.as_object().unwrap().values().next().unwrap();
                body["job"] == id.to_string()
            })
            .collect()
    }

    /// The pid of the runner that started job `id`.
    fn runner_of(jobs_dir: &Path, id: Uuid) -> i32 {
        let records = records_in(jobs_dir, id);
        let pid = records[0]["started"]["runner_pid"].as_i64().unwrap();
        i32::try_from(pid).unwrap()
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
        assert!(site.records(id).is_empty());
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

    #[tokio::test]
    async fn a_journal_that_cannot_be_opened_runs_nothing_and_says_why() {
        let site = Site::new();
        let count = site.path("count");
        site.hook("PreFlight", &format!("echo ran >> '{}'", count.display()));
        // The journal cannot be opened where a directory stands.
        std::fs::create_dir_all(site.path("jobs").join(journal::JOURNAL_FILE)).unwrap();
        let run = site
            .hooks()
            .run(Uuid::new_v4(), &request(HookStage::PreFlight, &[], 5))
            .await;
        let error = run.error.clone().unwrap();
        assert!(error.contains("the hook runner failed"), "{error}");
        assert!(error.contains("journal"), "{error}");
        assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
        assert!(!count.exists(), "the hook must not run");
    }

    #[tokio::test]
    async fn a_hook_that_cannot_be_executed_is_an_error() {
        let site = Site::new();
        let script = site.hook("PreFlight.py", "exit 0");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let id = Uuid::new_v4();
        let run = site
            .hooks()
            .run(id, &request(HookStage::PreFlight, &[], 5))
            .await;
        let error = run.error.clone().unwrap();
        assert!(error.starts_with("cannot run "), "{error}");
        assert_eq!(run.exit_code, None);
        assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
        // It counts as run: a repeat gets the same answer.
        assert_eq!(site.records(id).len(), 2);
    }

    /// Runs a hook that forks a sleeping child and then sleeps itself, with a 1 s timeout.
    fn run_hanging_hook(site: &Site, prelude: &str) -> (HookRun, i32, i32) {
        let out = site.dir.path().display().to_string();
        site.hook(
            "Maintenance.sh",
            &format!(
                "{prelude}\nsleep 300 &\necho $! > '{out}/child.pid'\n\
                 echo $$ > '{out}/leader.pid'\necho about to hang\nsleep 300"
            ),
        );
        let id = Uuid::new_v4();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = runtime.block_on(
            site.hooks()
                .run(id, &request(HookStage::Maintenance, &[], 1)),
        );
        let leader = pid_in(&site.path("leader.pid"));
        let child = pid_in(&site.path("child.pid"));
        let records = site.records(id);
        assert_eq!(
            serde_json::from_value::<HookRun>(records[1]["ended"]["run"].clone()).unwrap(),
            run
        );
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
    async fn a_job_started_by_a_vanished_runner_is_reported_lost() {
        let site = Site::new();
        let count = site.path("count").display().to_string();
        site.hook("PreFlight", &format!("echo ran >> '{count}'"));
        let request = request(HookStage::PreFlight, &[], 10);
        let id = Uuid::new_v4();
        // What a runner killed during the hook leaves: a start without an end, and the first
        // half of the end's line.
        let jobs = site.path("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        let started = serde_json::json!({"started": {"job": id, "script": "/hooks/PreFlight", "runner_pid": 1}});
        std::fs::write(
            jobs.join(journal::JOURNAL_FILE),
            format!("{started}\n{{\"ended\": {{\"job\": \"{id}\", \"run"),
        )
        .unwrap();
        for _ in 0..2 {
            let run = site.hooks().run(id, &request).await;
            assert_eq!(run.error.as_deref(), Some(LOST));
            assert_eq!(run.script.as_deref(), Some("/hooks/PreFlight"));
            assert!(matches!(run.verdict(), HookVerdict::Failed(_)));
        }
        assert!(site.lines("count").is_empty(), "the hook must not run");
        // The torn line is gone and the next job is recorded after the whole ones.
        let next = Uuid::new_v4();
        let run = site.hooks().run(next, &request).await;
        assert_eq!(run.verdict(), HookVerdict::Succeeded, "{run:?}");
        assert_eq!(site.records(next).len(), 2);
        assert_eq!(site.records(id).len(), 1);
    }

    /// A hook that counts its runs, then waits for the `gate` file before it finishes (and
    /// says so on stdout and in the `finished` file).
    fn gated_hook(site: &Site) {
        let (count, gate, finished) =
            (site.path("count"), site.path("gate"), site.path("finished"));
        site.hook(
            "Maintenance.sh",
            &format!(
                "echo ran >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\necho finished\necho finished >> '{}'",
                count.display(),
                gate.display(),
                finished.display()
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
        assert!(eventually_async(|| site.lines("count") == ["ran"]).await);
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
        // Once the hook runs, its start is on record.
        assert!(eventually_async(|| site.lines("count") == ["ran"]).await);
        let runner = runner_of(&site.path("jobs"), id);
        kill(Pid::from_raw(runner), Signal::SIGKILL).unwrap();
        let run = agent.await.unwrap();
        // The orphaned hook goes on, its output in memory nobody reads any more: writing it
        // does not kill it.
        open_gate(&site);
        assert!(eventually_async(|| site.lines("finished") == ["finished"]).await);
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
        assert_ne!(runner_of(&site.path("jobs"), next), runner);
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
        let runners: Vec<i32> = ids
            .iter()
            .map(|&id| runner_of(&site.path("jobs"), id))
            .collect();
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
            let runner = runner_of(&site.path("jobs"), id);
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
                runner_of(&site.path("jobs"), id),
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
        let runner = runner_of(&site.path("jobs"), id);
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
            runners.push(runner_of(&jobs, id));
        }
        assert_eq!(runners[0], runners[1], "one runner serves both");
        assert!(jobs.join(RUNNER_SOCKET).exists());
    }
}
