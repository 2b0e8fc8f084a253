//! `convoy-agent install-local FILE...`: installs patch files on a host that has no controller
//! yet (sw-patch's `install-local`), into the record the agent keeps in its state directory, so
//! the agent reports them once it runs.
//!
//! Every file is verified before any is installed; files that require each other are
//! installed requirements first. Exit 0 on success, 2 for bad input (a missing file, a bad
//! key, a refused bundle, an unmet requirement, another release), 1 when installing fails.
//! The host is not rebooted: a reboot-required patch is reported on stdout.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use convoy_bundle::TrustedKeys;
use convoy_core::host::Personality;
use convoy_core::patch::{AgentState, PatchId, Release};

use super::installer::Installer;
use super::plan;

/// Installs signed patch files on this host without a controller.
#[derive(Debug, clap::Args)]
pub struct InstallLocalArgs {
    /// Patch files (<ID>.patch).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The agent's state directory (the agent's --state-dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// controller, worker, storage or controller+worker.
    #[arg(long, value_parser = crate::parse_personality)]
    pub personality: Personality,
    /// The directory patches install their files under.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// A public key (PEM) whose signed patches are accepted (repeatable).
    #[arg(long = "trusted-key", value_name = "PUB", required = true)]
    pub trusted_keys: Vec<PathBuf>,
    /// The release this host runs; patches for another release are refused.
    #[arg(long, default_value = "25.09")]
    pub release: Release,
}

enum Failure {
    BadInput(String),
    Failed(String),
}

pub fn main(args: InstallLocalArgs) -> ExitCode {
    match run(&args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(Failure::BadInput(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &InstallLocalArgs) -> Result<Vec<String>, Failure> {
    use Failure::{BadInput, Failed};
    if let Some(missing) = args.files.iter().find(|f| !f.is_file()) {
        return Err(BadInput(format!("{}: no such file", missing.display())));
    }
    if !args.root.is_dir() {
        return Err(BadInput(format!(
            "--root {}: no such directory",
            args.root.display()
        )));
    }
    let trusted = TrustedKeys::read(&args.trusted_keys).map_err(|e| BadInput(e.to_string()))?;
    std::fs::create_dir_all(&args.state_dir).map_err(|e| {
        Failed(format!(
            "cannot create the state directory {}: {e}",
            args.state_dir.display()
        ))
    })?;
    let installer = Installer::new(
        &args.state_dir,
        &args.root,
        args.personality,
        args.release.clone(),
        trusted,
    );
    let mut held = installer
        .lock(false)
        .map_err(|e| Failed(format!("{e:#}")))?;
    if let Some(note) = &held.recovered {
        eprintln!("note: {note}");
    }

    let mut bundles = Vec::new();
    for file in &args.files {
        let bundle = installer
            .verify(file)
            .map_err(|e| BadInput(format!("{} is refused: {e:#}", file.display())))?;
        bundles.push(bundle);
    }
    let mut lines = Vec::new();
    let mut given = Vec::new();
    let mut pending = Vec::new();
    for bundle in &bundles {
        let meta = bundle.metadata();
        let id = meta.id.clone();
        if held.state.installed.contains_key(&id) {
            lines.push(format!("{id} is already installed"));
            continue;
        }
        installer.fits_host(bundle).map_err(BadInput)?;
        given.push((id, meta.requires.clone()));
        pending.push(bundle);
    }
    let installed: BTreeSet<PatchId> = held.state.installed.keys().cloned().collect();
    let order = plan::install_order(&given, &installed).map_err(BadInput)?;
    if order.is_empty() {
        return Ok(lines);
    }

    let record = |held: &mut _, state, error| {
        installer
            .set_state(held, state, error)
            .map_err(|e| Failed(format!("{e:#}")))
    };
    record(&mut held, AgentState::Installing, None)?;
    let mut done = Vec::new();
    for i in order {
        let bundle = pending[i];
        match installer.install(&mut held, bundle) {
            Ok(id) => {
                lines.push(format!("installed {id}"));
                if bundle.metadata().reboot_required {
                    lines.push(format!("{id} requires a reboot: reboot the host to finish"));
                }
                done.push(id.to_string());
            }
            Err(e) => {
                let mut message = format!("installing {} failed: {e:#}", given[i].0);
                if !done.is_empty() {
                    message.push_str(&format!(" (before that: installed {})", done.join(", ")));
                }
                record(&mut held, AgentState::InstallFailed, Some(message.clone()))?;
                return Err(Failed(message));
            }
        }
    }
    record(&mut held, AgentState::Idle, None)?;
    Ok(lines)
}
