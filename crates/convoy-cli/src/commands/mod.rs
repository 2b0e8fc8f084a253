//! One module per subcommand.

pub mod alarm;
pub mod cluster;
pub mod dc;
pub mod demo;
pub mod host;
pub mod key;
pub mod patch;
pub mod patch_repo;
pub mod patch_tools;
pub mod rolling_maintenance;
pub mod software;
pub mod strategy_step;
pub mod sw_update_strategy;
pub mod token;
pub mod user;
