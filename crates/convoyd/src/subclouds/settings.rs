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
    /// Seconds between two reads of a subcloud's progress while a System Controller
    /// strategy's step waits on it (its VIM strategy applying, a transfer running)
    /// [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub subcloud_poll_interval: Option<f64>,
    /// MiB a second that one subcloud's prestage transfer may send (decimals allowed; 0: no
    /// cap) [default: 0]
    #[arg(long, value_name = "MIB_PER_SEC")]
    pub prestage_bandwidth_per_subcloud: Option<f64>,
    /// MiB a second that all prestage transfers together may send (0: no cap) [default: 0]
    #[arg(long, value_name = "MIB_PER_SEC")]
    pub prestage_bandwidth_total: Option<f64>,
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
    pub poll_interval: Duration,
    /// Prestage bandwidth caps in bytes a second (0: none).
    pub prestage_per_subcloud: u64,
    pub prestage_total: u64,
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
            poll_interval: match args.subcloud_poll_interval {
                None => Duration::from_secs(10),
                Some(s) if s.is_finite() && (0.05..=3600.0).contains(&s) => {
                    Duration::from_secs_f64(s)
                }
                Some(s) => {
                    return Err(format!(
                        "--subcloud-poll-interval: {s} is out of range; give 0.05 to 3600 seconds"
                    ));
                }
            },
            prestage_per_subcloud: mib_per_sec(
                args.prestage_bandwidth_per_subcloud,
                "prestage-bandwidth-per-subcloud",
            )?,
            prestage_total: mib_per_sec(args.prestage_bandwidth_total, "prestage-bandwidth-total")?,
            subcloud_ca,
        })
    }
}

/// A cap given in MiB a second, in bytes a second.
fn mib_per_sec(value: Option<f64>, flag: &str) -> Result<u64, String> {
    match value {
        None => Ok(0),
        Some(v) if v.is_finite() && (0.0..=1_000_000.0).contains(&v) => {
            Ok((v * (1u64 << 20) as f64) as u64)
        }
        Some(v) => Err(format!(
            "--{flag}: {v} is out of range; give MiB a second from 0 (no cap) to 1000000"
        )),
    }
}
