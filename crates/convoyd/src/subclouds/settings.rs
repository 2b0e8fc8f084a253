//! How the System Controller audits and trusts its subclouds.

use std::path::PathBuf;
use std::time::Duration;

use convoy_api::Trust;

/// convoyd's flags for the System Controller.
#[derive(Debug, Clone, clap::Args)]
pub struct DcArgs {
    /// Seconds between two audits of a subcloud [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub audit_interval: Option<u64>,
    /// Consecutive failed audits after which a subcloud is offline [default: 2].
    #[arg(long, value_name = "COUNT")]
    pub offline_after: Option<u32>,
    /// Subclouds audited at once [default: 32].
    #[arg(long, value_name = "COUNT")]
    pub audit_concurrency: Option<usize>,
    /// Seconds one subcloud's audit may take before it counts as failed [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub audit_timeout: Option<u64>,
    /// PEM file of the CA certificates that issue subclouds' certificates. Without it, a
    /// subcloud's certificate is pinned by fingerprint when the subcloud is added.
    #[arg(long, value_name = "FILE")]
    pub subcloud_ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DcSettings {
    pub audit_interval: Duration,
    pub offline_after: u32,
    pub audit_concurrency: usize,
    pub audit_timeout: Duration,
    /// The CA subclouds' certificates are checked against; None: pin at add time.
    pub subcloud_ca: Option<Trust>,
}

impl DcSettings {
    pub fn resolve(args: &DcArgs) -> Result<DcSettings, String> {
        let positive = |value: Option<u64>, default: u64, flag: &str| match value {
            Some(0) => Err(format!("--{flag}: must be at least 1")),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let subcloud_ca = args
            .subcloud_ca_cert
            .as_deref()
            .map(Trust::ca_file)
            .transpose()
            .map_err(|e| format!("--subcloud-ca-cert: {e}"))?;
        Ok(DcSettings {
            audit_interval: Duration::from_secs(positive(
                args.audit_interval,
                60,
                "audit-interval",
            )?),
            offline_after: positive(args.offline_after.map(u64::from), 2, "offline-after")? as u32,
            audit_concurrency: positive(
                args.audit_concurrency.map(|c| c as u64),
                32,
                "audit-concurrency",
            )? as usize,
            audit_timeout: Duration::from_secs(positive(args.audit_timeout, 10, "audit-timeout")?),
            subcloud_ca,
        })
    }
}
