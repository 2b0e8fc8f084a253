//! The host's instances, as its optional `InstanceAction` hook lists them.
//!
//! Convoy has no hypervisor: a host's instances are whatever its `InstanceAction` script
//! manages. `InstanceAction list` prints one name per line; the agent runs it at start, every
//! [`REFRESH_EVERY`], and after every instance action a strategy runs, and reports the last
//! good list in its facts. A host without the script has no instances. A list that fails or
//! is malformed keeps the previous one, with a warning.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use convoy_core::hook::HookStage;
use convoy_core::host::{MAX_HOST_INSTANCES, check_instance_name};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tracing::warn;

use crate::hooks::{Hooks, STAGE_ENV};
use crate::process_group::spawn_retrying;

/// How often the list is read again without an instance action.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How long `InstanceAction list` may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of its output read: far beyond [`MAX_HOST_INSTANCES`] names.
const MAX_LIST_BYTES: u64 = 512 * 1024;

/// The last good list, shared by the facts and the refresher.
#[derive(Debug, Clone, Default)]
pub struct Instances {
    names: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

impl Instances {
    pub fn get(&self) -> Vec<String> {
        self.names.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// An instance action ran: read the list again now.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Reads the list now; a failure keeps the previous one.
    pub async fn refresh(&self, hooks: &Hooks) {
        let listed = match hooks.script(HookStage::InstanceAction) {
            None => Ok(Vec::new()),
            Some(script) => list(hooks, &script).await,
        };
        match listed {
            Ok(names) => {
                if let Ok(mut current) = self.names.lock() {
                    *current = names;
                }
            }
            Err(e) => warn!("InstanceAction list failed; keeping the last list: {e:#}"),
        }
    }

    /// Keeps the list fresh for as long as the agent runs.
    pub async fn keep_fresh(self, hooks: Hooks) {
        loop {
            self.refresh(&hooks).await;
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

async fn list(hooks: &Hooks, script: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut command = tokio::process::Command::new(script);
    command
        .arg("list")
        .envs(&hooks.env)
        .env(STAGE_ENV, HookStage::InstanceAction.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = script.parent() {
        command.current_dir(dir);
    }
    let mut child = spawn_retrying(|| command.spawn())
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    let mut stdout = child.stdout.take().context("no standard output")?;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_LIST_BYTES)
            .read_to_end(&mut out)
            .await?;
        let status = child.wait().await?;
        anyhow::Ok((status, out))
    };
    let (status, out) = tokio::time::timeout(LIST_TIMEOUT, run)
        .await
        .with_context(|| format!("did not finish within {} s", LIST_TIMEOUT.as_secs()))??;
    if !status.success() {
        bail!("{} list exited with {status}", script.display());
    }
    parse_list(&String::from_utf8_lossy(&out))
}

/// One name per line; blank lines are ignored.
fn parse_list(out: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() > MAX_HOST_INSTANCES {
        bail!(
            "lists {} instances; at most {MAX_HOST_INSTANCES}",
            names.len()
        );
    }
    for name in &names {
        check_instance_name(name).map_err(|reason| anyhow::anyhow!("instance {reason}"))?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_one_name_per_line() {
        assert_eq!(parse_list("vm-a\n\n  vm-b \n").unwrap(), ["vm-a", "vm-b"]);
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("two words\n").is_err());
    }

    #[tokio::test]
    async fn the_hook_is_listed_and_a_failure_keeps_the_last_list() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hooks = Hooks {
            hooks_dir: Some(dir.path().into()),
            jobs_dir: dir.path().join("jobs"),
            agent_binary: "convoy-agent".into(),
            env: Default::default(),
        };
        let instances = Instances::default();
        instances.refresh(&hooks).await;
        assert!(instances.get().is_empty(), "no script, no instances");

        let script = dir.path().join("InstanceAction");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = list ] && [ \"$CONVOY_HOOK_STAGE\" = InstanceAction ] && printf 'vm-a\\nvm-b\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        instances.refresh(&hooks).await;
        assert_eq!(instances.get(), ["vm-a", "vm-b"]);

        std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
        instances.refresh(&hooks).await;
        assert_eq!(instances.get(), ["vm-a", "vm-b"]);
    }
}
