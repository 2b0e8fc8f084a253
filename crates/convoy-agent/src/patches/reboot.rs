//! The host's boot identity and the reboot that follows a reboot-required change.
//!
//! `--reboot-command restart-agent` simulates a reboot for demos and tests: the agent writes a
//! new random boot id to `STATE_DIR/boot-id` (which then stands for the kernel's) and execs
//! itself with the same arguments, keeping its pid. Any other command runs with `sh -c`; a real
//! reboot never returns.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::identity::write_durably;
use crate::process_group;

/// The `--reboot-command` value that restarts the agent instead of the host.
pub const RESTART_AGENT: &str = "restart-agent";
/// A shell reboot command that has not rebooted the host by then has failed.
const SHELL_TIMEOUT: Duration = Duration::from_secs(300);

fn simulated_boot_id(state_dir: &Path) -> PathBuf {
    state_dir.join("boot-id")
}

/// The id of the current boot: the simulated one if a simulated reboot has happened, else the
/// kernel's.
pub fn boot_id(state_dir: &Path) -> String {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    read(&simulated_boot_id(state_dir))
        .or_else(|| read(Path::new("/proc/sys/kernel/random/boot_id")))
        .unwrap_or_else(|| "unknown".into())
}

/// What `--reboot-command` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootCommand {
    RestartAgent,
    Shell(String),
}

impl FromStr for RebootCommand {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" => Err("give a command, or restart-agent to simulate a reboot".into()),
            RESTART_AGENT => Ok(RebootCommand::RestartAgent),
            command => Ok(RebootCommand::Shell(command.to_string())),
        }
    }
}

impl RebootCommand {
    /// Reboots. Returns only if the reboot did not happen (an error), or once a shell command
    /// that does not stop the agent has exited successfully.
    pub fn run(&self, state_dir: &Path) -> anyhow::Result<()> {
        match self {
            RebootCommand::RestartAgent => restart_agent(state_dir),
            RebootCommand::Shell(command) => run_shell(command),
        }
    }
}

fn restart_agent(state_dir: &Path) -> anyhow::Result<()> {
    // The new boot id first: once it is written, the restarted agent counts as rebooted even
    // if the exec below fails and a service manager restarts it instead.
    let id = uuid::Uuid::new_v4().to_string();
    write_durably(&simulated_boot_id(state_dir), format!("{id}\n").as_bytes())?;
    let exe = std::env::current_exe().context("cannot find the agent's own executable")?;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(&exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    tracing::info!(boot_id = id, "simulated reboot: restarting the agent");
    let error = command.exec();
    Err(error).with_context(|| format!("cannot restart the agent ({})", exe.display()))
}

fn run_shell(command: &str) -> anyhow::Result<()> {
    tracing::info!(command, "running the reboot command");
    let child = process_group::spawn_blocking_retrying(|| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
    })
    .with_context(|| format!("cannot run the reboot command {command:?}"))?;
    let (status, timed_out) = process_group::wait_or_stop(child, SHELL_TIMEOUT)
        .context("cannot wait for the reboot command")?;
    if timed_out {
        bail!(
            "the reboot command {command:?} did not reboot the host within {} s and was killed",
            SHELL_TIMEOUT.as_secs()
        )
    }
    if !status.success() {
        bail!("the reboot command {command:?} failed ({status}); reboot the host by hand");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_boot_id_stands_for_the_kernels() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = boot_id(dir.path());
        assert!(!kernel.is_empty());
        std::fs::write(dir.path().join("boot-id"), "simulated\n").unwrap();
        assert_eq!(boot_id(dir.path()), "simulated");
    }

    #[test]
    fn the_command_is_parsed_and_a_shell_command_runs() {
        assert_eq!(
            "restart-agent".parse::<RebootCommand>(),
            Ok(RebootCommand::RestartAgent)
        );
        assert!(" ".parse::<RebootCommand>().is_err());
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("rebooted");
        let command: RebootCommand = format!("touch '{}'", flag.display()).parse().unwrap();
        command.run(dir.path()).unwrap();
        assert!(flag.exists());
        let err = RebootCommand::Shell("exit 4".into())
            .run(dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }
}
