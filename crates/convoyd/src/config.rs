//! convoyd's settings: defaults, then the optional TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use convoy_core::login_throttle::ThrottlePolicy;
use jiff::SignedDuration;
use serde::Deserialize;

use crate::telemetry::LogFormat;

/// The Convoy site controller: keeps the site's hosts, users and strategies, and talks to the
/// hosts' agents.
#[derive(Debug, Parser)]
#[command(name = "convoyd", version)]
pub struct Args {
    /// Directory for the database, the generated admin password and the agent enrolment token
    /// (created on first start).
    #[arg(long, env = "CONVOYD_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on [default: 127.0.0.1:7400].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Database URL [default: sqlite://DATA_DIR/convoy.db].
    #[arg(long)]
    pub database_url: Option<String>,
    /// TOML file with settings; flags given on the command line win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds between agent heartbeats; a host that misses 3 is offline [default: 10].
    #[arg(long)]
    pub ping_interval: Option<u64>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Public key whose signatures this controller accepts on patches (repeatable; from
    /// `convoy key generate`). Without one every patch upload is refused.
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse enrolments with the site's agent token (DATA_DIR/agent-token); hosts then enrol
    /// only with a per-host token from `convoy host enrol-token create`. By default the site
    /// token enrols hostnames the site does not know yet, never a known one.
    #[arg(long)]
    pub no_site_enrolment: bool,
    /// PEM certificate (chain) to serve HTTPS with [default: a self-signed one made in
    /// DATA_DIR/tls/ on first start].
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS: tokens, passwords, host credentials and commands
    /// then cross the network in clear text. For tests and loopback-only setups.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Seconds a request's head (request line and headers) may take from its first byte; a
    /// slower connection is closed [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub header_timeout: Option<u64>,
    /// Seconds a connection may stay open with no request under way (from its opening, or
    /// from the end of its last response) [default: 75].
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Longest pause, in seconds, within a request body; a JSON body must also arrive whole
    /// within it [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub body_timeout: Option<u64>,
    /// Most connections served at once; more wait to be accepted [default: 1024].
    #[arg(long, value_name = "COUNT")]
    pub max_connections: Option<usize>,
    /// Multiplies every wait and timeout of the software-update strategies' steps
    /// (system-stabilize, wait-alarms-clear, step timeouts...); 0.001 turns seconds into
    /// milliseconds [default: 1, or step_durations.step_time_scale in the file].
    #[arg(long, value_name = "FACTOR")]
    pub step_time_scale: Option<f64>,
    #[command(flatten)]
    pub dc: crate::subclouds::DcArgs,
}

/// The settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub ping_interval_seconds: Option<u64>,
    /// How long a token from `POST /v3/auth/tokens` stays valid.
    pub token_ttl_seconds: Option<u64>,
    /// Largest request body accepted on JSON routes.
    pub max_body_bytes: Option<usize>,
    pub log_format: Option<LogFormat>,
    /// Public keys trusted to sign patches (added to --trusted-key).
    pub trusted_keys: Option<Vec<PathBuf>>,
    /// Largest patch file accepted by an upload.
    pub max_patch_bytes: Option<u64>,
    /// The release the site runs (`apply_active_release_only` patches must be for it).
    pub release: Option<String>,
    /// Whether the site's agent token enrols new hosts (default true; --no-site-enrolment).
    pub site_enrolment: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    /// More names (DNS names or IP addresses) for the self-signed certificate made on first
    /// start, besides loopback and this machine's name.
    pub tls_names: Option<Vec<String>>,
    /// Failed logins a user name may have within `login_failure_window_seconds`.
    pub login_failures_per_user: Option<u32>,
    /// Failed logins a client address (an IPv6 /64) may have within the window.
    pub login_failures_per_source: Option<u32>,
    pub login_failure_window_seconds: Option<u64>,
    pub header_timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub body_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    /// `[step_durations]`: the software-update strategies' waits and timeouts, each in
    /// seconds (defaults: StarlingX's), and `step_time_scale`.
    pub step_durations: Option<convoy_core::sw_update::durations::StepDurations>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub ping_interval: SignedDuration,
    pub token_ttl: SignedDuration,
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    pub trusted_keys: Vec<PathBuf>,
    pub max_patch_bytes: u64,
    pub release: convoy_core::patch::Release,
    pub site_enrolment: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_http: bool,
    pub tls_names: Vec<String>,
    pub login_per_user: ThrottlePolicy,
    pub login_per_source: ThrottlePolicy,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub step_durations: convoy_core::sw_update::durations::StepDurations,
    /// How a System Controller audits and trusts its subclouds.
    pub dc: crate::subclouds::DcSettings,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
const DEFAULT_PING_INTERVAL: u64 = 10;
const DEFAULT_TOKEN_TTL: u64 = 3600;
const DEFAULT_MAX_BODY: usize = 256 * 1024;
const DEFAULT_MAX_PATCH: u64 = 8 << 30;
const DEFAULT_RELEASE: &str = "25.09";
const DEFAULT_LOGIN_FAILURES_PER_USER: u32 = 5;
const DEFAULT_LOGIN_FAILURES_PER_SOURCE: u32 = 20;
const DEFAULT_LOGIN_FAILURE_WINDOW: u64 = 60;
const DEFAULT_HEADER_TIMEOUT: u64 = 10;
const DEFAULT_IDLE_TIMEOUT: u64 = 75;
const DEFAULT_BODY_TIMEOUT: u64 = 30;
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Settings {
    /// Merges defaults, the file and the flags, and checks the result. Errors name the setting.
    pub fn resolve(args: &Args) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let ping = args
            .ping_interval
            .or(file.ping_interval_seconds)
            .unwrap_or(DEFAULT_PING_INTERVAL);
        if !(1..=3600).contains(&ping) {
            return Err(format!(
                "ping interval: must be between 1 and 3600 seconds, got {ping}"
            ));
        }
        let ttl = file.token_ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL);
        if !(1..=7 * 24 * 3600).contains(&ttl) {
            return Err(format!(
                "token_ttl_seconds: must be between 1 and 604800, got {ttl}"
            ));
        }
        let max_body = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if max_body < 1024 {
            return Err(format!(
                "max_body_bytes: must be at least 1024, got {max_body}"
            ));
        }
        let seconds = |name: &str, flag: Option<u64>, file: Option<u64>, default: u64| {
            let value = flag.or(file).unwrap_or(default);
            if (1..=3600).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(format!(
                    "{name}: must be between 1 and 3600 seconds, got {value}"
                ))
            }
        };
        let header_timeout = seconds(
            "header timeout",
            args.header_timeout,
            file.header_timeout_seconds,
            DEFAULT_HEADER_TIMEOUT,
        )?;
        let idle_timeout = seconds(
            "idle timeout",
            args.idle_timeout,
            file.idle_timeout_seconds,
            DEFAULT_IDLE_TIMEOUT,
        )?;
        let body_timeout = seconds(
            "body timeout",
            args.body_timeout,
            file.body_timeout_seconds,
            DEFAULT_BODY_TIMEOUT,
        )?;
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(format!(
                "max connections: must be between 1 and 1000000, got {max_connections}"
            ));
        }
        let window = file
            .login_failure_window_seconds
            .unwrap_or(DEFAULT_LOGIN_FAILURE_WINDOW);
        if !(1..=86_400).contains(&window) {
            return Err(format!(
                "login_failure_window_seconds: must be between 1 and 86400, got {window}"
            ));
        }
        let throttle = |name: &str, value: Option<u32>, default: u32| {
            let max_failures = value.unwrap_or(default);
            if max_failures == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
            Ok(ThrottlePolicy {
                max_failures,
                window: SignedDuration::from_secs(window as i64),
            })
        };
        let login_per_user = throttle(
            "login_failures_per_user",
            file.login_failures_per_user,
            DEFAULT_LOGIN_FAILURES_PER_USER,
        )?;
        let login_per_source = throttle(
            "login_failures_per_source",
            file.login_failures_per_source,
            DEFAULT_LOGIN_FAILURES_PER_SOURCE,
        )?;
        let data_dir = absolute(&args.data_dir)?;
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("convoy.db").display()));
        let release = file
            .release
            .as_deref()
            .unwrap_or(DEFAULT_RELEASE)
            .parse()
            .map_err(|e: convoy_core::ValidationError| format!("release: {}", e.reason))?;
        let mut trusted_keys = file.trusted_keys.unwrap_or_default();
        trusted_keys.extend(args.trusted_keys.iter().cloned());
        let mut step_durations = file.step_durations.unwrap_or_default();
        if let Some(scale) = args.step_time_scale {
            step_durations.step_time_scale = scale;
        }
        step_durations
            .validate()
            .map_err(|e| format!("{}: {}", e.field, e.reason))?;
        Ok(Settings {
            step_durations,
            trusted_keys,
            max_patch_bytes: file.max_patch_bytes.unwrap_or(DEFAULT_MAX_PATCH),
            release,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
            database_url,
            ping_interval: SignedDuration::from_secs(ping as i64),
            token_ttl: SignedDuration::from_secs(ttl as i64),
            max_body_bytes: max_body,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            site_enrolment: !args.no_site_enrolment && file.site_enrolment.unwrap_or(true),
            tls_cert: args.tls_cert.clone().or(file.tls_cert),
            tls_key: args.tls_key.clone().or(file.tls_key),
            insecure_http: args.insecure_http || file.insecure_http.unwrap_or(false),
            tls_names: file.tls_names.unwrap_or_default(),
            data_dir,
            login_per_user,
            login_per_source,
            header_timeout,
            idle_timeout,
            body_timeout,
            max_connections,
            dc: crate::subclouds::DcSettings::resolve(&args.dc)?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config: cannot read {}: {e}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| format!("config: {}: {}", path.display(), e.message().trim_end()))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("data dir: {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["convoyd", "--data-dir", "/tmp/x"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn step_durations_come_from_the_file_and_the_scale_from_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("convoyd.toml");
        std::fs::write(
            &file,
            "[step_durations]\nsystem_stabilize_seconds = 5\nstep_time_scale = 2.0\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let s = Settings::resolve(&args(&["--config", f])).unwrap();
        assert_eq!(s.step_durations.system_stabilize_seconds, 5);
        assert_eq!(s.step_durations.step_time_scale, 2.0);
        let s = Settings::resolve(&args(&["--config", f, "--step-time-scale", "0.001"])).unwrap();
        assert_eq!(s.step_durations.step_time_scale, 0.001);
        let err = Settings::resolve(&args(&["--step-time-scale=-1"])).unwrap_err();
        assert!(err.starts_with("step-time-scale: "), "{err}");
        // The defaults are the original's.
        let s = Settings::resolve(&args(&[])).unwrap();
        assert_eq!(s.step_durations.wait_alarms_clear_controller_seconds, 2400);
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let s = Settings::resolve(&args(&[])).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.ping_interval, SignedDuration::from_secs(10));
        assert_eq!(s.database_url, "sqlite:///tmp/x/convoy.db");
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("convoyd.toml");
        std::fs::write(&file, "ping_interval_seconds = 5\ntoken_ttl_seconds = 60\n").unwrap();
        let f = file.to_str().unwrap();
        let s = Settings::resolve(&args(&["--config", f])).unwrap();
        assert_eq!(s.ping_interval, SignedDuration::from_secs(5));
        assert_eq!(s.token_ttl, SignedDuration::from_secs(60));
        let s = Settings::resolve(&args(&["--config", f, "--ping-interval", "2"])).unwrap();
        assert_eq!(s.ping_interval, SignedDuration::from_secs(2));
    }

    #[test]
    fn connection_limits_come_from_flags_the_file_or_defaults() {
        let s = Settings::resolve(&args(&[])).unwrap();
        assert_eq!(
            (
                s.header_timeout,
                s.idle_timeout,
                s.body_timeout,
                s.max_connections
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(75),
                Duration::from_secs(30),
                1024
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("convoyd.toml");
        std::fs::write(
            &file,
            "header_timeout_seconds = 2\nidle_timeout_seconds = 3\nbody_timeout_seconds = 4\n\
             max_connections = 5\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let s = Settings::resolve(&args(&["--config", f, "--header-timeout", "1"])).unwrap();
        assert_eq!(
            (
                s.header_timeout,
                s.idle_timeout,
                s.body_timeout,
                s.max_connections
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(3),
                Duration::from_secs(4),
                5
            )
        );
        let err = Settings::resolve(&args(&["--idle-timeout", "0"])).unwrap_err();
        assert!(err.starts_with("idle timeout:"), "{err}");
        let err = Settings::resolve(&args(&["--max-connections", "0"])).unwrap_err();
        assert!(err.starts_with("max connections:"), "{err}");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = Settings::resolve(&args(&["--ping-interval", "0"])).unwrap_err();
        assert!(err.starts_with("ping interval:"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("convoyd.toml");
        std::fs::write(&file, "ping_interval = 5\n").unwrap();
        let err = Settings::resolve(&args(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("unknown field `ping_interval`"), "{err}");
    }
}
