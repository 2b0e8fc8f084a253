//! convoyd's settings: defaults, then the optional TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
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
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
const DEFAULT_PING_INTERVAL: u64 = 10;
const DEFAULT_TOKEN_TTL: u64 = 3600;
const DEFAULT_MAX_BODY: usize = 256 * 1024;
const DEFAULT_MAX_PATCH: u64 = 8 << 30;
const DEFAULT_RELEASE: &str = "25.09";

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
        Ok(Settings {
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
            data_dir,
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
