//! `convoy patch ...`: a site's patches. The offline tools (build, inspect, verify) are in
//! `patch_tools`; commands that talk to a controller are added here as further variants.

use clap::Subcommand;

use std::path::PathBuf;

use crate::commands::patch_repo::{
    self, AppArgs, ApplyArgs, CommitArgs, DependenciesArgs, HostInstallArgs, Ids, RemoveArgs, Show,
};
use crate::commands::patch_tools::{BuildArgs, InspectArgs, VerifyArgs};
use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Build and sign a patch file <ID>.patch (offline; the options of StarlingX's patch_build).
    Build(Box<BuildArgs>),
    /// Show a patch file's metadata and contents without verifying it (offline).
    Inspect(InspectArgs),
    /// Verify a patch file's every byte against its signed manifest (offline).
    Verify(VerifyArgs),
    /// Upload patch files to the controller, which verifies and imports them.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Upload every *.patch file of these directories.
    UploadDir {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Apply patches to the repository (hosts install them with host-install).
    Apply(ApplyArgs),
    /// Remove applied patches from the repository.
    Remove(RemoveArgs),
    /// Delete available patches from the controller.
    Delete(Ids),
    /// List patches: patch_id, rr, release, patch_state.
    Query {
        #[arg(value_enum, default_value_t = Show::All)]
        show: Show,
    },
    /// Show patches' metadata and states.
    Show(Ids),
    /// Which patches require these.
    WhatRequires(Ids),
    /// The patches these require.
    QueryDependencies(DependenciesArgs),
    /// Print true if every patch is applied (exit 0), else false (exit 1).
    IsApplied(Ids),
    /// Commit applied REL patches (with their requirements); irreversible.
    Commit(CommitArgs),
    /// Record which patches an application depends on (they cannot be removed).
    ReportAppDependencies(AppArgs),
    /// Show the applications' patch dependencies.
    QueryAppDependencies,
    /// Each host: patch_current, reboot_required, release, state.
    QueryHosts,
    /// Install and remove patches on a host so that it matches the repository.
    HostInstall(HostInstallArgs),
    /// Stop waiting for a host's report on the patches last applied or removed.
    DropHost { hostname: String },
}

impl PatchCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let offline = match self {
            PatchCommand::Build(args) => return args.run(out),
            PatchCommand::Inspect(args) => return args.run(out),
            PatchCommand::Verify(args) => return args.run(out),
            online => online,
        };
        let client = connection.authenticated().await?;
        let outcome = |o| patch_repo::print_outcome(out, &o);
        match offline {
            PatchCommand::Upload { files } => patch_repo::upload(&client, out, &files).await,
            PatchCommand::UploadDir { dirs } => patch_repo::upload_dir(&client, out, &dirs).await,
            PatchCommand::Apply(args) => {
                let mut op = patch_repo::operation(args.ids);
                op.all = args.all;
                outcome(client.patch_operation("apply", &op).await?)
            }
            PatchCommand::Remove(args) => {
                let mut op = patch_repo::operation(args.ids);
                op.skip_app_check = args.skip_app_check;
                op.remove_unremovable = args.remove_unremovable;
                outcome(client.patch_operation("remove", &op).await?)
            }
            PatchCommand::Delete(args) => outcome(
                client
                    .patch_operation("delete", &patch_repo::operation(args.ids))
                    .await?,
            ),
            PatchCommand::Commit(args) => {
                let mut op = patch_repo::operation(args.ids);
                op.dry_run = args.dry_run;
                outcome(client.patch_operation("commit", &op).await?)
            }
            PatchCommand::Query { show } => patch_repo::query(&client, out, show).await,
            PatchCommand::Show(args) => patch_repo::show(&client, out, &args.ids).await,
            PatchCommand::WhatRequires(args) => outcome(client.what_requires(&args.ids).await?),
            PatchCommand::QueryDependencies(args) => {
                patch_repo::dependencies(&client, out, &args).await
            }
            PatchCommand::IsApplied(args) => patch_repo::is_applied(&client, &args.ids).await,
            PatchCommand::ReportAppDependencies(args) => {
                patch_repo::report_app(&client, out, &args).await
            }
            PatchCommand::QueryAppDependencies => out.one(&client.app_dependencies().await?.apps),
            PatchCommand::QueryHosts => patch_repo::query_hosts(&client, out).await,
            PatchCommand::HostInstall(args) => patch_repo::host_install(&client, out, &args).await,
            PatchCommand::DropHost { hostname } => outcome(client.drop_host(&hostname).await?),
            PatchCommand::Build(_) | PatchCommand::Inspect(_) | PatchCommand::Verify(_) => {
                unreachable!("offline commands returned above")
            }
        }
    }
}
