//! The controller and agent processes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use convoy_core::host::Personality;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait::Deadline;
use crate::{Binaries, LaunchError};

/// A running child that is killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
struct Guarded {
    child: Option<Child>,
    what: String,
    log: PathBuf,
}

impl Guarded {
    fn spawn(mut command: Command, what: String, log: PathBuf) -> Result<Guarded, LaunchError> {
        let file = File::options().create(true).append(true).open(&log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command.spawn().map_err(|source| LaunchError::Spawn {
            what: what.clone(),
            source,
        })?;
        Ok(Guarded {
            child: Some(child),
            what,
            log,
        })
    }

    fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Fails with the log's tail if the process has exited.
    fn check_running(&mut self) -> Result<(), LaunchError> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("not started".into()));
        };
        match child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(self.exited(status.to_string())),
        }
    }

    fn exited(&self, status: String) -> LaunchError {
        LaunchError::Exited {
            what: self.what.clone(),
            status,
            log: self.log.display().to_string(),
            tail: log_tail(&self.log, 20),
        }
    }

    fn signal(&mut self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, signal);
        }
    }

    /// SIGKILL and reap: the process gets no chance to clean up.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    fn stop(&mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub data_dir: PathBuf,
    pub port: u16,
    pub ping_interval: u64,
    /// Serve HTTPS with convoyd's self-signed certificate (agents and clients trust it as
    /// their CA); otherwise plain HTTP on loopback (`--insecure-http`).
    pub tls: bool,
    /// More flags for convoyd (e.g. `--config FILE`).
    pub extra_args: Vec<String>,
}

/// A running `convoyd`.
#[derive(Debug)]
pub struct ControllerProcess {
    process: Guarded,
    binary: PathBuf,
    pub options: ControllerOptions,
}

impl ControllerProcess {
    /// Starts convoyd and waits until it answers on its port.
    pub async fn start(
        binaries: &Binaries,
        options: ControllerOptions,
    ) -> Result<ControllerProcess, LaunchError> {
        std::fs::create_dir_all(&options.data_dir)?;
        let mut controller = ControllerProcess {
            process: Self::spawn(&binaries.convoyd, &options)?,
            binary: binaries.convoyd.clone(),
            options,
        };
        controller.wait_ready().await?;
        Ok(controller)
    }

    fn spawn(binary: &Path, options: &ControllerOptions) -> Result<Guarded, LaunchError> {
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(&options.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", options.port))
            .arg("--ping-interval")
            .arg(options.ping_interval.to_string());
        if !options.tls {
            command.arg("--insecure-http");
        }
        command.args(&options.extra_args);
        Guarded::spawn(
            command,
            "convoyd".into(),
            options.data_dir.join("convoyd.log"),
        )
    }

    async fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let url = self.url();
        let deadline = Deadline::after(Duration::from_secs(30));
        loop {
            self.process.check_running()?;
            if let Ok(client) = self.client()
                && client.identity_version().await.is_ok()
            {
                return Ok(());
            }
            if deadline.passed() {
                return Err(deadline.timeout(format!("convoyd to answer at {url}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.options.port)
    }

    /// The certificate convoyd serves HTTPS with (made on its first start), which clients
    /// trust as their CA; None over plain HTTP.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.options
            .tls
            .then(|| self.options.data_dir.join("tls").join("cert.pem"))
    }

    /// A client for this controller that trusts its certificate.
    pub fn client(&self) -> Result<convoy_api::Client, LaunchError> {
        let trust = match self.ca_cert() {
            Some(cert) => convoy_api::Trust::ca_file(&cert)
                .map_err(|e| LaunchError::Io(std::io::Error::other(e.to_string())))?,
            None => convoy_api::Trust::System,
        };
        convoy_api::Client::with_trust(&self.url(), &trust)
            .map_err(|e| LaunchError::Io(std::io::Error::other(e.to_string())))
    }

    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid().map(|p| p.as_raw() as u32)
    }

    pub fn admin_password(&self) -> Result<String, LaunchError> {
        Ok(
            std::fs::read_to_string(self.options.data_dir.join("admin-password"))?
                .trim()
                .to_string(),
        )
    }

    pub fn agent_token_file(&self) -> PathBuf {
        self.options.data_dir.join("agent-token")
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }

    /// Starts the controller again with the same options (same port and data directory).
    pub async fn restart(&mut self) -> Result<(), LaunchError> {
        if self.process.running() {
            self.stop();
        }
        self.process = Self::spawn(&self.binary, &self.options)?;
        self.wait_ready().await
    }
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub hostname: String,
    pub personality: Personality,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub state_dir: PathBuf,
    pub capacity_cpus: Option<u32>,
    pub capacity_memory_mib: Option<u64>,
    /// More flags for the agent (e.g. `--hooks-dir DIR`).
    pub extra_args: Vec<String>,
}

impl AgentOptions {
    pub fn new(hostname: &str, personality: Personality, state_root: &Path) -> Self {
        AgentOptions {
            hostname: hostname.into(),
            personality,
            zone: None,
            pod: None,
            cluster: None,
            state_dir: state_root.join(hostname),
            capacity_cpus: None,
            capacity_memory_mib: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running `convoy-agent`.
#[derive(Debug)]
pub struct AgentProcess {
    process: Guarded,
    binary: PathBuf,
    controller_url: String,
    token_file: PathBuf,
    pub options: AgentOptions,
}

impl AgentProcess {
    /// Starts an agent for the controller; it enrols on its own (wait for it with the client).
    pub fn start(
        binaries: &Binaries,
        controller: &ControllerProcess,
        options: AgentOptions,
    ) -> Result<AgentProcess, LaunchError> {
        std::fs::create_dir_all(&options.state_dir)?;
        let binary = binaries.agent.clone();
        let controller_url = controller.url();
        let token_file = controller.agent_token_file();
        let mut options = options;
        if let Some(cert) = controller.ca_cert() {
            options
                .extra_args
                .extend(["--ca-cert".into(), cert.display().to_string()]);
        }
        Ok(AgentProcess {
            process: Self::spawn(&binary, &controller_url, &token_file, &options)?,
            binary,
            controller_url,
            token_file,
            options,
        })
    }

    fn spawn(
        binary: &Path,
        controller_url: &str,
        token_file: &Path,
        o: &AgentOptions,
    ) -> Result<Guarded, LaunchError> {
        let mut command = Command::new(binary);
        command
            .arg("--controller")
            .arg(controller_url)
            .arg("--enrol-token-file")
            .arg(token_file)
            .arg("--hostname")
            .arg(&o.hostname)
            .arg("--personality")
            .arg(o.personality.as_str())
            .arg("--state-dir")
            .arg(&o.state_dir);
        for (flag, value) in [
            ("--zone", &o.zone),
            ("--pod", &o.pod),
            ("--cluster", &o.cluster),
        ] {
            if let Some(value) = value {
                command.arg(flag).arg(value);
            }
        }
        if let Some(cpus) = o.capacity_cpus {
            command.arg("--capacity-cpus").arg(cpus.to_string());
        }
        if let Some(mib) = o.capacity_memory_mib {
            command.arg("--capacity-memory-mib").arg(mib.to_string());
        }
        command.args(&o.extra_args);
        Guarded::spawn(
            command,
            format!("convoy-agent {}", o.hostname),
            o.state_dir.join("agent.log"),
        )
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid().map(|p| p.as_raw() as u32)
    }

    pub fn hostname(&self) -> &str {
        &self.options.hostname
    }

    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// Fails with the log's tail if the agent has exited.
    pub fn check_running(&mut self) -> Result<(), LaunchError> {
        self.process.check_running()
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }

    /// Starts the agent again with the same state directory.
    pub fn restart(&mut self) -> Result<(), LaunchError> {
        if self.process.running() {
            self.stop();
        }
        self.process = Self::spawn(
            &self.binary,
            &self.controller_url,
            &self.token_file,
            &self.options,
        )?;
        Ok(())
    }
}
