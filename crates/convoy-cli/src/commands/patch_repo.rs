//! `convoy patch upload|apply|remove|...`: sw-patch's verbs against a site's controller.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use convoy_api::Client;
use convoy_api::patches::{AppDependencyReport, PatchOperation, PatchOutcome};

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Show {
    All,
    Applied,
    Available,
    Committed,
}

#[derive(Debug, Args)]
pub struct Ids {
    /// Patch ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Patch ids (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Apply every available patch.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Remove even if applications reported they depend on the patch.
    #[arg(long)]
    pub skip_app_check: bool,
    /// Remove even an unremovable patch.
    #[arg(long, hide = true)]
    pub remove_unremovable: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Say how much would be freed; commit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DependenciesArgs {
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Follow requirements of requirements.
    #[arg(long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The application.
    #[arg(long)]
    pub app: String,
    /// The patches it depends on; none forgets the application.
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HostInstallArgs {
    pub hostname: String,
    /// Install reboot-required patches on an unlocked host.
    #[arg(long)]
    pub force: bool,
    /// Return once the request is sent instead of waiting for the install.
    #[arg(long = "async")]
    pub no_wait: bool,
    /// Seconds to wait for the install.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

/// Prints an operation's info and warning lines (or the object for --format json/yaml).
pub fn print_outcome(out: &Output, outcome: &PatchOutcome) -> Result<(), Failure> {
    if !out.is_table() {
        return out.one(outcome);
    }
    for line in outcome.info.iter().chain(&outcome.warnings) {
        out.note(line);
    }
    Ok(())
}

pub async fn upload(client: &Client, out: &Output, files: &[PathBuf]) -> Result<(), Failure> {
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Failure::bad_input(format!(
            "{}: no such file",
            missing.display()
        )));
    }
    if let [file] = files {
        return print_outcome(out, &client.upload_patch(file).await?);
    }
    // Like sw-patch, one refused file does not stop the others; each refusal gets its line.
    let mut refused = None;
    for file in files {
        match client.upload_patch(file).await {
            Ok(outcome) => print_outcome(out, &outcome)?,
            Err(e) => {
                eprintln!(
                    "error: {}: {}",
                    file.display(),
                    e.to_string().replace('\n', " ")
                );
                refused = Some(Failure::from(e));
            }
        }
    }
    match refused {
        Some(failure) => Err(failure.quiet()),
        None => Ok(()),
    }
}

pub async fn upload_dir(client: &Client, out: &Output, dirs: &[PathBuf]) -> Result<(), Failure> {
    let mut files = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "patch") && path.is_file() {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(Failure::bad_input("No patches found"));
    }
    files.sort();
    upload(client, out, &files).await
}

pub fn operation(ids: Vec<String>) -> PatchOperation {
    PatchOperation {
        ids,
        ..Default::default()
    }
}

pub async fn query(client: &Client, out: &Output, show: Show) -> Result<(), Failure> {
    let show = match show {
        Show::All => "all",
        Show::Applied => "applied",
        Show::Available => "available",
        Show::Committed => "committed",
    };
    out.list(
        &client.patches(show).await?,
        &["patch_id", "rr", "release", "patch_state"],
    )
}

pub async fn show(client: &Client, out: &Output, ids: &[String]) -> Result<(), Failure> {
    for id in ids {
        out.one(&client.patch(id).await?)?;
    }
    Ok(())
}

pub async fn dependencies(
    client: &Client,
    out: &Output,
    args: &DependenciesArgs,
) -> Result<(), Failure> {
    let ids = client.patch_dependencies(&args.ids, args.recursive).await?;
    if !out.is_table() {
        return out.one(&serde_json::json!({ "patches": ids }));
    }
    for id in ids {
        out.note(&id);
    }
    Ok(())
}

/// Prints `true` or `false`; exits 0 only when every patch is applied, as sw-patch does.
pub async fn is_applied(client: &Client, ids: &[String]) -> Result<(), Failure> {
    let applied = client.is_applied(ids).await?;
    crate::output::emit(&format!("{applied}\n"));
    if applied {
        Ok(())
    } else {
        Err(Failure::silent(1))
    }
}

pub async fn report_app(client: &Client, out: &Output, args: &AppArgs) -> Result<(), Failure> {
    let apps = client
        .report_app_dependencies(&AppDependencyReport {
            app: args.app.clone(),
            ids: args.ids.clone(),
        })
        .await?;
    out.one(&apps.apps)
}

pub async fn query_hosts(client: &Client, out: &Output) -> Result<(), Failure> {
    out.list(
        &client.patch_hosts().await?,
        &[
            "hostname",
            "patch_current",
            "reboot_required",
            "release",
            "state",
        ],
    )
}

/// Sends the install and, unless --async, waits for the agent's answer, then shows the host.
pub async fn host_install(
    client: &Client,
    out: &Output,
    args: &HostInstallArgs,
) -> Result<(), Failure> {
    let (sent, command_id) = client.host_install(&args.hostname, args.force).await?;
    print_outcome(out, &sent)?;
    if args.no_wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let outcome = loop {
        let command = client.command(&args.hostname, &command_id).await?;
        if let Some(outcome) = command.outcome {
            break outcome;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::failed(format!(
                "{} did not finish installing within {} s; see `convoy patch query-hosts`",
                args.hostname, args.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if !outcome.succeeded {
        return Err(Failure::failed(format!(
            "installation on {} failed: {}",
            args.hostname, outcome.message
        )));
    }
    out.note(&format!("{}: {}", args.hostname, outcome.message));
    Ok(())
}
