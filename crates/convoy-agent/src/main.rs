//! `convoy-agent`: runs on every host, connects out to its site's convoyd, reports the host's
//! facts and runs the commands it is sent.

mod commands;
mod facts;
mod hooks;
mod identity;
mod ledger;
mod maintenance;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use convoy_core::host::Personality;

/// The Convoy host agent.
#[derive(Debug, Parser)]
#[command(name = "convoy-agent", version)]
pub struct Args {
    /// URL of the site's convoyd, e.g. http://10.0.0.1:7400.
    #[arg(long, env = "CONVOY_CONTROLLER")]
    pub controller: String,
    /// File holding the site's enrolment token (the controller's DATA_DIR/agent-token). Read
    /// only on the first start; later starts use the credential in the state directory.
    #[arg(long)]
    pub enrol_token_file: PathBuf,
    /// This host's name.
    #[arg(long)]
    pub hostname: String,
    /// controller, worker, storage or controller+worker.
    #[arg(long, value_parser = parse_personality)]
    pub personality: Personality,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub pod: Option<String>,
    #[arg(long)]
    pub cluster: Option<String>,
    /// Directory for the agent's identity and its record of command outcomes.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Directory of operator hook scripts (used by rolling maintenance).
    #[arg(long)]
    pub hooks_dir: Option<PathBuf>,
    /// CPUs this host offers [default: detected].
    #[arg(long)]
    pub capacity_cpus: Option<u32>,
    /// Memory this host offers, in MiB [default: detected].
    #[arg(long)]
    pub capacity_memory_mib: Option<u64>,
    /// CPU load to report instead of the measured load average (for simulated hosts).
    #[arg(long)]
    pub load_cpus: Option<f64>,
    /// Memory in use to report, in MiB, instead of the measured value (for simulated hosts).
    #[arg(long)]
    pub load_memory_mib: Option<u64>,
}

fn parse_personality(value: &str) -> Result<Personality, String> {
    value
        .parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = convoy_core::validation::validate_name("--hostname", &args.hostname) {
        eprintln!("convoy-agent: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONVOY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    convoy_api::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("convoy-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(session::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("convoy-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
