//! `convoy software list|show|deploy show|deploy host-list`: StarlingX USM's views of the
//! releases in the site's one repository, and of the site's software deploy.

use clap::Subcommand;
use convoy_core::sw_update::release::ReleaseState;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum SoftwareCommand {
    /// Upload release files (signed bundles, as `convoy patch build` makes them) into the
    /// one repository; the same as `convoy patch upload`.
    Upload {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// The releases: id, reboot required, state (available, deploying, deployed, removing,
    /// committed).
    List {
        /// Only releases in this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<ReleaseState>,
    },
    /// One release's record.
    Show {
        /// Release ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// The site's software deploy (made by `convoy sw-deploy-strategy`).
    #[command(subcommand)]
    Deploy(DeployCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// The deploy record: from and to release, reboot required, state.
    Show,
    /// Each host's deploy state: pending, deploying, deployed or failed.
    HostList,
}

fn parse_state(s: &str) -> Result<ReleaseState, String> {
    s.parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

impl SoftwareCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            SoftwareCommand::Upload { files } => {
                super::patch_repo::upload(&client, out, &files).await
            }
            SoftwareCommand::List { state } => out.list(
                &client.releases(state.map(|s| s.as_str())).await?,
                &["release", "rr", "state"],
            ),
            SoftwareCommand::Show { ids } => {
                for id in &ids {
                    out.one(&client.release(id).await?)?;
                }
                Ok(())
            }
            SoftwareCommand::Deploy(DeployCommand::Show) => {
                let deploy = client.deploy().await?;
                if deploy.is_empty() && out.is_table() {
                    out.note("No deploy in progress");
                    return Ok(());
                }
                out.list(
                    &deploy,
                    &["from_release", "to_release", "reboot_required", "state"],
                )
            }
            SoftwareCommand::Deploy(DeployCommand::HostList) => out.list(
                &client.deploy_hosts().await?,
                &[
                    "hostname",
                    "software_release",
                    "target_release",
                    "reboot_required",
                    "host_state",
                ],
            ),
        }
    }
}
