//! The System Controller's side of subclouds: attaching a site controller as a subcloud,
//! talking to it with the service account made then, auditing it, and prestaging it alone.

pub mod audit;
pub mod connection;
pub mod prestage;
pub mod registration;
pub mod settings;

pub use settings::{DcArgs, DcSettings};

/// The entity of the System Controller's alarms about a subcloud.
pub fn alarm_entity(name: &str) -> String {
    format!("subcloud={name}")
}
