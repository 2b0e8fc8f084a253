//! Convoy's domain: the types every other crate speaks and the rules over them, written as
//! pure functions. Nothing here performs IO, reads the clock or needs an async runtime; callers
//! pass `now` in.

pub mod alarm;
pub mod capacity;
pub mod command;
pub mod controllers;
pub mod dc_strategy;
pub mod hook;
pub mod host;
pub mod login_throttle;
mod names;
pub mod patch;
pub mod phases;
pub mod role;
pub mod strategy;
pub mod subcloud;
pub mod sw_update;
pub mod validation;

pub use validation::ValidationError;
