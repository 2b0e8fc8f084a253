//! Running a patch's scripts (`pre-install`, `post-install`, `pre-remove`).
//!
//! A script runs without a shell, from a fresh directory under the agent's work directory
//! that holds a verified copy of it (made executable: the bundle does not require the bit),
//! with its stdin closed. It leads its own process group; at the timeout the whole group is
//! stopped (SIGTERM, then SIGKILL), so nothing it forked outlives the install. A script that
//! exits non-zero, is killed or times out fails the operation.
//!
//! Scripts learn what they act on from the environment: `CONVOY_PATCH_ID`,
//! `CONVOY_PATCH_SCRIPT` (its own name), `CONVOY_ROOT` (absolute) and `CONVOY_PERSONALITY`.
//!
//! For a command from the controller, a script runs under the hook runner, as hooks do, as a
//! job whose id comes from the command, the patch and the script: the runner records its start
//! before it spawns it and its end before it answers, and outlives the agent. So an agent
//! killed during a script and asked the same command again adopts the run (waits for it, or
//! takes its recorded outcome) and never starts a second copy; a run whose runner died with it
//! (a host reboot) is reported lost and not run again. Without a command
//! (`install-local`) a script runs directly.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use convoy_bundle::{Script, VerifiedBundle};
use convoy_core::host::Personality;
use convoy_core::patch::PatchId;

use uuid::Uuid;

use crate::hooks::Hooks;
use crate::process_group;

/// How long a script may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a script's verified bytes come from.
pub enum Source<'a> {
    Bundle(&'a VerifiedBundle),
    /// A copy the agent kept when it installed the patch (`pre-remove`).
    Kept(&'a Path),
}

/// What a script runs for.
pub struct Setting {
    pub patch: PatchId,
    pub root: PathBuf,
    pub personality: Personality,
    /// Parent of the script's temporary working directory.
    pub work_dir: PathBuf,
    pub timeout: Duration,
    /// The command this runs for, and the runner to run it under; None runs it directly.
    pub job: Option<ScriptJob>,
}

/// A command from the controller whose scripts run under the hook runner.
#[derive(Debug, Clone)]
pub struct ScriptJob {
    pub hooks: Hooks,
    pub command: Uuid,
}

impl ScriptJob {
    /// The runner's job id of `script` of `patch` for this command: the same every time the
    /// command is asked again.
    fn id(&self, patch: &PatchId, script: Script) -> Uuid {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(self.command.as_bytes())
            .chain_update(patch.as_str().as_bytes())
            .chain_update(b"/")
            .chain_update(script.as_str().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::new_v8(bytes)
    }
}

/// Runs `script` to its end; an error says how it failed, with the last line it printed.
pub fn run(script: Script, source: Source<'_>, cx: &Setting) -> anyhow::Result<()> {
    match &cx.job {
        Some(job) => run_under_runner(script, source, cx, job),
        None => run_directly(script, source, cx),
    }
}

/// Runs the script as a runner job (see the module's doc). Blocking: called from the
/// install's blocking task, it waits for the runner on the agent's runtime.
fn run_under_runner(
    script: Script,
    source: Source<'_>,
    cx: &Setting,
    job: &ScriptJob,
) -> anyhow::Result<()> {
    let what = format!("the {script} script of {}", cx.patch);
    let id = job.id(&cx.patch, script);
    // A directory of its own per job: a run adopted after a restart finds its script there.
    let dir = cx.work_dir.join(format!("{script}-{id}"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot make a working directory for {what}"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(script.as_str());
    if !path.exists() {
        // Whole or not at all: an agent killed while writing it leaves no half script.
        let partial = dir.join(format!("{script}.partial"));
        write_script(script, source, &partial, &what)?;
        std::fs::rename(&partial, &path)?;
    }
    let root = std::path::absolute(&cx.root)
        .with_context(|| format!("cannot resolve the root {}", cx.root.display()))?;
    let env = [
        ("CONVOY_PATCH_ID", cx.patch.as_str().to_string()),
        ("CONVOY_PATCH_SCRIPT", script.as_str().to_string()),
        ("CONVOY_ROOT", root.display().to_string()),
        ("CONVOY_PERSONALITY", cx.personality.as_str().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let run =
        tokio::runtime::Handle::current().block_on(job.hooks.run_job(id, path, env, cx.timeout));
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(error) = &run.error {
        bail!("{what}: {error}");
    }
    let said = last_line(&run.stderr)
        .or_else(|| last_line(&run.stdout))
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    match (run.exit_code, run.signal, run.timed_out) {
        (Some(0), _, false) => Ok(()),
        (_, _, true) => bail!(
            "{what} did not finish within {} s and was killed{said}",
            cx.timeout.as_secs()
        ),
        (Some(code), _, _) => bail!("{what} exited with code {code}{said}"),
        (None, Some(signal), _) => bail!("{what} was killed by signal {signal}{said}"),
        (None, None, _) => bail!("{what} failed{said}"),
    }
}

/// Puts the script's verified bytes at `path`, executable by the agent's user only.
fn write_script(script: Script, source: Source<'_>, path: &Path, what: &str) -> anyhow::Result<()> {
    match source {
        Source::Bundle(bundle) => bundle
            .unpack_member(&script.member(), path)
            .with_context(|| format!("cannot unpack {what}"))?,
        Source::Kept(kept) => {
            std::fs::copy(kept, path).with_context(|| {
                format!(
                    "cannot copy {what} from {} (the agent's copy)",
                    kept.display()
                )
            })?;
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

/// Runs the script as a child of this process (no command to tie its run to).
fn run_directly(script: Script, source: Source<'_>, cx: &Setting) -> anyhow::Result<()> {
    let what = format!("the {script} script of {}", cx.patch);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{script}-"))
        .tempdir_in(&cx.work_dir)
        .with_context(|| format!("cannot make a working directory for {what}"))?;
    let path = dir.path().join(script.as_str());
    write_script(script, source, &path, &what)?;
    let root = std::path::absolute(&cx.root)
        .with_context(|| format!("cannot resolve the root {}", cx.root.display()))?;
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let output = |p: &Path| {
        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))
    };
    let mut command = std::process::Command::new(&path);
    command
        .current_dir(dir.path())
        .env("CONVOY_PATCH_ID", cx.patch.as_str())
        .env("CONVOY_PATCH_SCRIPT", script.as_str())
        .env("CONVOY_ROOT", &root)
        .env("CONVOY_PERSONALITY", cx.personality.as_str())
        .stdin(Stdio::null())
        .stdout(output(&stdout)?)
        .stderr(output(&stderr)?)
        // Leader of its own group, so a timeout stops everything it forked.
        .process_group(0);
    let child = process_group::spawn_blocking_retrying(|| command.spawn())
        .with_context(|| format!("cannot run {what} (does it start with #!?)"))?;
    let (status, timed_out) = process_group::wait_or_stop(child, cx.timeout)
        .with_context(|| format!("cannot wait for {what}"))?;
    if status.success() && !timed_out {
        return Ok(());
    }
    let said = last_line(&process_group::tail(&stderr))
        .or_else(|| last_line(&process_group::tail(&stdout)))
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    if timed_out {
        bail!(
            "{what} did not finish within {} s and was killed{said}",
            cx.timeout.as_secs()
        )
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => bail!("{what} exited with code {code}{said}"),
        (None, Some(signal)) => bail!("{what} was killed by signal {signal}{said}"),
        _ => bail!("{what} failed ({status}){said}"),
    }
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(patch: &PatchId, root: &Path, work: &Path) -> Setting {
        Setting {
            patch: patch.clone(),
            root: root.into(),
            personality: Personality::Worker,
            work_dir: work.into(),
            timeout: Duration::from_secs(10),
            job: None,
        }
    }

    fn kept(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("kept");
        // Not executable: the runner makes its own copy executable.
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        path
    }

    #[test]
    fn a_script_sees_its_patch_root_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let id: PatchId = "P1".parse().unwrap();
        let out = dir.path().join("seen");
        let script = kept(
            dir.path(),
            &format!(
                "echo \"$CONVOY_PATCH_ID $CONVOY_PATCH_SCRIPT $CONVOY_ROOT $CONVOY_PERSONALITY $(basename \"$PWD\" | cut -c1-11)\" > '{}'",
                out.display()
            ),
        );
        let cx = context(&id, dir.path(), dir.path());
        run(Script::PreRemove, Source::Kept(&script), &cx).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            format!("P1 pre-remove {} worker pre-remove-", dir.path().display())
        );
    }

    #[test]
    fn a_failing_script_is_an_error_with_its_last_words() {
        let dir = tempfile::tempdir().unwrap();
        let id: PatchId = "P1".parse().unwrap();
        let script = kept(dir.path(), "echo working\necho 'disk full' >&2\nexit 3");
        let err = run(
            Script::PreInstall,
            Source::Kept(&script),
            &context(&id, dir.path(), dir.path()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the pre-install script of P1 exited with code 3: disk full"
        );
    }

    #[test]
    fn a_script_past_its_timeout_is_killed_with_what_it_forked() {
        let dir = tempfile::tempdir().unwrap();
        let id: PatchId = "P1".parse().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = kept(
            dir.path(),
            &format!("sleep 60 &\necho $! > '{}'\nwait", pid_file.display()),
        );
        let cx = Setting {
            timeout: Duration::from_millis(300),
            ..context(&id, dir.path(), dir.path())
        };
        let err = run(Script::PostInstall, Source::Kept(&script), &cx).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the post-install script of P1 did not finish within 0 s"),
            "{err}"
        );
        let child: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // A zombie counts as gone: some containers' init does not reap orphans.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), None).is_err()
                || std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
        });
        assert!(gone, "the forked sleep was killed too");
        // The working directory went with the run.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("post-install-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
