//! Patches on this host: installing and removing signed bundles under the host's root
//! (`--root`), so that a removal restores exactly what an install replaced and a crash at any
//! instant leaves each patch installed or not, never half.
//!
//! - [`host_install`]: the `install-patches` command, from the controller's request to its
//!   outcome (lock rule, downloads, verification, order, reboot request).
//! - [`install_local`]: `convoy-agent install-local FILE...`, for a host without a controller.
//! - [`installer`]: one patch in or out, and recovery of an unfinished change.
//! - [`journal`]: the record of a change under way, and the recovery rule (undo it).
//! - [`files`]: atomic file placement and restoration under the root; [`rooted`]: paths
//!   under the root with links resolved inside it.
//! - [`plan`]: the decisions, as pure functions.
//! - [`state`]: the durable record, and what heartbeats report from it.
//! - [`scripts`], [`download`], [`reboot`]: bundle scripts, bundle downloads, boot ids and
//!   the reboot command.
//!
//! Everything lives under `STATE_DIR/patches/` ([`layout`]):
//!
//! ```text
//! state.json                  the record: agent state, last error, installed patches (with
//!                             what each replaced), changes since boot, the unfinished
//!                             change (journal), a requested reboot
//! lock                        flock held by whoever changes patches (agent or install-local)
//! bundles/<id>.patch.part     a download in progress; renamed to <id>.patch once checked,
//!                             deleted when the command ends
//! work/                       unpacked payloads and scripts' working directories
//! installed/<id>/backup/<path>  the files <id> replaced, as they were
//! installed/<id>/pre-remove   <id>'s verified pre-remove script
//! ```
//!
//! and `STATE_DIR/boot-id` holds the boot id of a simulated reboot (`restart-agent`).

pub mod download;
pub mod files;
pub mod host_install;
pub mod install_local;
pub mod installer;
pub mod journal;
pub mod layout;
pub mod plan;
pub mod reboot;
pub mod rooted;
pub mod scripts;
pub mod state;

#[cfg(test)]
mod test_bundles;
#[cfg(test)]
pub(crate) mod testing;

pub use host_install::HostPatches;
pub use installer::Installer;
