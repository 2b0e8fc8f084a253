//! Running strategies: the driver that persists, dispatches, waits and feeds results back into
//! the pure engine and phase machines of convoy-core.

pub mod dc_prestage;
pub mod dc_sw_deploy;
pub mod driver;
pub mod inbox;
pub mod outcome_effects;
pub mod rolling_maintenance;
pub mod site_kind;
pub mod subcloud_call;
pub mod sw_update;
