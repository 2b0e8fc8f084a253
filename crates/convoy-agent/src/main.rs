//! `convoy-agent`: runs on every host, connects out to its site's convoyd, reports the host's
//! facts and runs the commands it is sent.

mod alarm;
mod commands;
mod facts;
mod hooks;
mod identity;
mod instances;
mod ledger;
mod maintenance;
mod patches;
mod process_group;
mod session;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use convoy_core::host::Personality;

/// The Convoy host agent.
// A subcommand selects an internal mode in which the agent's required flags do not apply.
#[derive(Debug, Parser)]
#[command(
    name = "convoy-agent",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Other things this binary does; a normal run of the agent has none.
    #[command(subcommand)]
    pub command: Option<Mode>,
    /// URL of the site's convoyd, e.g. https://10.0.0.1:7400 (http:// only to a convoyd run
    /// with --insecure-http).
    #[arg(long, env = "CONVOY_CONTROLLER")]
    pub controller: String,
    /// PEM CA certificate to verify the controller with (convoyd's own self-signed certificate,
    /// DATA_DIR/tls/cert.pem, will do) [default: the fingerprint pinned at enrolment, else the
    /// system's certificate authorities].
    #[arg(long, env = "CONVOY_CA_CERT", conflicts_with = "tls_fingerprint")]
    pub ca_cert: Option<PathBuf>,
    /// SHA-256 fingerprint of the controller's certificate, as convoyd prints it: only that
    /// certificate is accepted. Pinned at enrolment, so later starts need neither this nor
    /// --ca-cert.
    #[arg(long, env = "CONVOY_TLS_FINGERPRINT")]
    pub tls_fingerprint: Option<String>,
    /// File holding an enrolment token: the site's agent token (the controller's
    /// DATA_DIR/agent-token), which enrols a hostname the site does not know yet, or a
    /// single-use token from `convoy host enrol-token create HOST`, which also enrols a known
    /// host again. Read only when the state directory holds no credential.
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
    /// Directory for the agent's identity, its record of command outcomes and its patches.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The directory patches install their files under.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// A public key (PEM) whose signed patches this host installs (repeatable). Without one,
    /// every patch install is refused.
    #[arg(long = "trusted-key", value_name = "PUB")]
    pub trusted_keys: Vec<PathBuf>,
    /// Reboots the host when the controller sends a reboot (unlocking a host whose
    /// reboot-required change awaits one, or a strategy's reboot-hosts), once that command's
    /// outcome is reported: a shell command (`sh -c`), or `restart-agent` to simulate a
    /// reboot by restarting the agent with a new boot id.
    #[arg(long, value_name = "CMD")]
    pub reboot_command: Option<patches::reboot::RebootCommand>,
    /// Directory of operator hook scripts: rolling maintenance's stages, and the optional
    /// InstanceAction script that lists, stops, starts and migrates the host's instances.
    #[arg(long)]
    pub hooks_dir: Option<PathBuf>,
    /// CPUs this host offers [default: detected].
    #[arg(long)]
    pub capacity_cpus: Option<u32>,
    /// Memory this host offers, in MiB [default: detected].
    #[arg(long)]
    pub capacity_memory_mib: Option<u64>,
    /// The software release this host runs; patches for other releases are not installed here.
    #[arg(long, default_value = "25.09")]
    pub release: convoy_core::patch::Release,
    /// CPUs of workload this host runs that must move to the other hosts of its cluster while
    /// it is in maintenance (the rolling maintenance capacity check) [default: 0, nothing to
    /// move]. The machine's load average is not used: it says nothing of what can move.
    #[arg(long, value_parser = workload_figure)]
    pub load_cpus: Option<f64>,
    /// MiB of memory of that workload [default: 0].
    #[arg(long)]
    pub load_memory_mib: Option<u64>,
}

/// What the agent binary does besides running the agent.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Installs signed patch files on this host without a controller (before it has one),
    /// into the state directory the agent reports from.
    InstallLocal(patches::install_local::InstallLocalArgs),
    /// Raise or clear an alarm about this host, as the host (for hook scripts and
    /// operators' tools on it).
    Alarm(alarm::AlarmArgs),
    /// Runs the hooks of one state directory for its agents, outliving them (internal).
    #[command(name = hooks::RUNNER_SUBCOMMAND, hide = true)]
    HookRunner(hooks::RunnerArgs),
}

/// What this process was started to do.
#[derive(Debug)]
enum Invocation {
    Agent(Box<Args>),
    Mode(Mode),
}

/// Parses the command line. Not `Args::parse()`: with a subcommand the agent's required
/// flags are absent, and building `Args` from the matches would refuse that.
fn parse_invocation<I, T>(argv: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Args::command().try_get_matches_from(argv)?;
    let invocation = if matches.subcommand().is_some() {
        Mode::from_arg_matches(&matches).map(Invocation::Mode)
    } else {
        Args::from_arg_matches(&matches).map(|args| Invocation::Agent(Box::new(args)))
    };
    invocation.map_err(|e| e.format(&mut Args::command()))
}

pub(crate) fn parse_personality(value: &str) -> Result<Personality, String> {
    value
        .parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

fn main() -> ExitCode {
    let args = match parse_invocation(std::env::args_os()) {
        Ok(Invocation::Agent(args)) => *args,
        // Plain blocking code: no logging setup, no async runtime.
        Ok(Invocation::Mode(Mode::HookRunner(args))) => {
            return hooks::runner_main(args);
        }
        Ok(Invocation::Mode(Mode::InstallLocal(args))) => {
            return patches::install_local::main(args);
        }
        Ok(Invocation::Mode(Mode::Alarm(args))) => {
            return alarm::main(args);
        }
        Err(e) => e.exit(),
    };
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
    // One thread is plenty for an agent's few connections, and a host may run hundreds of
    // them in tests and benchmarks; hooks run in their own processes.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
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

/// A workload figure: a finite number of CPUs, at least 0.
fn workload_figure(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!(
            "{text:?} must be a finite number of CPUs, at least 0"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn workload_figures_are_finite_and_not_negative() {
        assert_eq!(workload_figure("2.5"), Ok(2.5));
        assert_eq!(workload_figure("0"), Ok(0.0));
        for bad in ["-1e308", "-0.5", "inf", "NaN", "lots"] {
            assert!(workload_figure(bad).is_err(), "{bad}");
        }
    }

    /// The flags every normal run needs.
    const NORMAL_RUN: [&str; 11] = [
        "convoy-agent",
        "--controller",
        "http://c",
        "--enrol-token-file",
        "t",
        "--hostname",
        "worker-0",
        "--personality",
        "worker",
        "--state-dir",
        "s",
    ];

    #[test]
    fn normal_runs_keep_their_required_flags() {
        let run = NORMAL_RUN;
        let Ok(Invocation::Agent(args)) = parse_invocation(run) else {
            panic!("a normal run parses");
        };
        assert_eq!(args.hostname, "worker-0");
        assert!(args.command.is_none());
        let err = parse_invocation(&run[..run.len() - 2]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let help = Args::command().render_help().to_string();
        assert!(!help.contains(hooks::RUNNER_SUBCOMMAND), "{help}");
        assert!(help.contains("install-local"), "{help}");
        assert_eq!(args.root, PathBuf::from("/"));
        assert!(args.trusted_keys.is_empty() && args.reboot_command.is_none());
    }

    #[test]
    fn the_patch_flags_parse() {
        let argv = [
            &NORMAL_RUN[..],
            &[
                "--root",
                "/srv/root",
                "--trusted-key",
                "a.pub",
                "--trusted-key",
                "b.pub",
                "--reboot-command",
                "restart-agent",
            ],
        ]
        .concat();
        let Ok(Invocation::Agent(args)) = parse_invocation(argv) else {
            panic!("parses");
        };
        assert_eq!(args.root, PathBuf::from("/srv/root"));
        assert_eq!(args.trusted_keys, [PathBuf::from("a.pub"), "b.pub".into()]);
        assert_eq!(
            args.reboot_command,
            Some(patches::reboot::RebootCommand::RestartAgent)
        );
    }

    #[test]
    fn install_local_needs_only_its_own_flags() {
        let argv = [
            "convoy-agent",
            "install-local",
            "a.patch",
            "b.patch",
            "--state-dir",
            "s",
            "--personality",
            "controller+worker",
            "--trusted-key",
            "k.pub",
        ];
        let Ok(Invocation::Mode(Mode::InstallLocal(args))) = parse_invocation(argv) else {
            panic!("install-local parses");
        };
        assert_eq!(args.files, [PathBuf::from("a.patch"), "b.patch".into()]);
        assert_eq!(args.personality, Personality::ControllerWorker);
        assert_eq!(args.root, PathBuf::from("/"));
        assert_eq!(args.release.as_str(), "25.09");
        let without_key = &argv[..argv.len() - 2];
        assert!(parse_invocation(without_key).is_err());
    }

    #[test]
    fn the_runner_mode_needs_none_of_the_agent_flags() {
        let argv = ["convoy-agent", "hook-runner", "--jobs-dir", "/state/jobs"];
        let Ok(Invocation::Mode(Mode::HookRunner(args))) = parse_invocation(argv) else {
            panic!("the runner mode parses");
        };
        assert_eq!(args.jobs_dir, PathBuf::from("/state/jobs"));
        assert_eq!(args.idle_ms, 30_000);
        let Ok(Invocation::Mode(Mode::HookRunner(args))) = parse_invocation([
            "convoy-agent",
            "hook-runner",
            "--jobs-dir",
            "j",
            "--idle-ms",
            "5",
        ]) else {
            panic!("the runner mode parses");
        };
        assert_eq!(args.idle_ms, 5);
        let mut mixed = argv.to_vec();
        mixed.splice(1..1, ["--hostname", "worker-0"]);
        assert!(parse_invocation(mixed).is_err());
    }
}
