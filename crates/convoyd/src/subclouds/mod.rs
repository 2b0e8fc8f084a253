//! The System Controller's side of subclouds: attaching a site controller as a subcloud,
//! talking to it with the service account made then, and auditing it.

pub mod audit;
pub mod connection;
pub mod registration;
pub mod settings;

pub use settings::{DcArgs, DcSettings};

/// The entity of the System Controller's alarms about a subcloud.
pub fn alarm_entity(name: &str) -> String {
    format!("subcloud={name}")
}
