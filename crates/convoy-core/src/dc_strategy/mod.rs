//! The System Controller's strategies over subclouds (StarlingX dcmanager's
//! `sw-update-strategy`): the create request's validation with the original's messages, and
//! the rules of each type's steps as a kind of the one engine. One step per subcloud; the
//! engine's window of `max-parallel-subclouds` running steps in id order is dcmanager's
//! sliding window (spec dcmanager-api.md §4.3).

pub mod bandwidth;
pub mod prestage;
pub mod request;
pub mod rules;
pub mod sw_deploy;

use serde::{Deserialize, Serialize};

use crate::names::named_enum;

/// The strategy types the System Controller runs (dcmanager's `type`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DcStrategyType {
    SwDeploy,
    Prestage,
}

named_enum!(DcStrategyType, field = "type", {
    SwDeploy => "sw-deploy",
    Prestage => "prestage",
});
