//! `convoy patch ...`: a site's patches. The offline tools (build, inspect, verify) are in
//! `patch_tools`; commands that talk to a controller are added here as further variants.

use clap::Subcommand;

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
}

impl PatchCommand {
    pub async fn run(self, _connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self {
            PatchCommand::Build(args) => args.run(out),
            PatchCommand::Inspect(args) => args.run(out),
            PatchCommand::Verify(args) => args.run(out),
        }
    }
}
