//! Rolling maintenance of 200 real agents against `xargs -P 20` running the same hooks.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use convoy_api::Client;
use convoy_api::strategies::{ActionName, NewRollingMaintenance};
use convoy_bench::{
    cpu_seconds, machine_busy_seconds, median_ratio, phase_breakdown, processes_in_mode,
    seconds_list,
};
use convoy_core::host::Personality;
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until, wait_until_every,
};

const STAGES: [&str; 4] = [
    "PreFlight",
    "PreMaintenance",
    "Maintenance",
    "PostMaintenance",
];

struct Options {
    hosts: usize,
    max_parallel: u32,
    clusters: usize,
    runs: usize,
    /// Keep the working directory (logs, databases) for a look afterwards.
    keep: bool,
    /// Where the agents keep their state (default: beside the controller's, in the working
    /// directory). On one machine 200 agents share one disk, where each host has its own.
    agents_dir: Option<std::path::PathBuf>,
    /// Serve HTTPS (convoyd's default) instead of plain HTTP on loopback.
    tls: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        hosts: 200,
        max_parallel: 20,
        clusters: 10,
        runs: 3,
        keep: false,
        agents_dir: None,
        tls: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--hosts" => options.hosts = value.parse()?,
            "--max-parallel" => options.max_parallel = value.parse()?,
            "--clusters" => options.clusters = value.parse()?,
            "--runs" => options.runs = value.parse::<usize>()?.max(1),
            "--keep" => options.keep = value.parse()?,
            "--agents-dir" => options.agents_dir = Some(value.into()),
            "--tls" => options.tls = value.parse()?,
            other => {
                bail!(
                    "unknown option {other}; options: --hosts N --max-parallel N --clusters N --runs N --keep true|false --agents-dir DIR --tls true|false"
                )
            }
        }
    }
    Ok(options)
}

fn write_hooks(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for stage in STAGES {
        let path = dir.join(stage);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    convoy_api::install_crypto_provider();
    let options = options()?;
    let binaries = Binaries::locate()?;
    let dir = convoy_bench::work_dir("convoy-bench-", None, options.keep)?;
    let hooks = dir.path().join("hooks");
    write_hooks(&hooks)?;

    let controller = ControllerProcess::start(
        &binaries,
        ControllerOptions {
            data_dir: dir.path().join("controller"),
            port: free_port()?,
            // convoyd's default: heartbeats are part of the load an update runs under.
            ping_interval: 10,
            tls: options.tls,
            extra_args: vec![],
        },
    )
    .await?;
    let client = controller.client()?;
    let token = client.login("admin", &controller.admin_password()?).await?;
    let client = client.with_token(token);

    // Removed with the working directory, or at the end when given (runners exit with it).
    let agents_dir = match &options.agents_dir {
        Some(parent) => Some(
            tempfile::Builder::new()
                .prefix("convoy-bench-agents-")
                .tempdir_in(parent)?,
        ),
        None => None,
    };
    let hosts_dir = match &agents_dir {
        Some(dir) => dir.path().to_path_buf(),
        None => dir.path().join("hosts"),
    };
    eprintln!("starting {} agents...", options.hosts);
    let mut agents = Vec::new();
    for i in 0..options.hosts {
        let name = format!("host-{i:03}");
        let mut agent = AgentOptions::new(&name, Personality::Worker, &hosts_dir);
        agent.zone = Some("zone-a".into());
        agent.cluster = Some(format!("cluster-{:02}", i % options.clusters));
        agent.capacity_cpus = Some(64);
        agent.capacity_memory_mib = Some(262_144);
        agent.extra_args = vec![
            "--hooks-dir".into(),
            hooks.display().to_string(),
            "--load-cpus".into(),
            "0".into(),
            "--load-memory-mib".into(),
            "0".into(),
        ];
        agents.push(AgentProcess::start(&binaries, &controller, agent)?);
    }
    convoy_bench::wait_all_available(&client, options.hosts).await?;

    let pids: Vec<u32> = controller
        .pid()
        .into_iter()
        .chain(agents.iter().filter_map(AgentProcess::pid))
        .collect();
    // The floor: the same four hooks per host, 20 hosts at a time, by xargs in a shell. Each
    // run of convoy is followed by one of the floor, so both see the machine in the same mood
    // (a shared 2-core VM drifts by tens of percent within minutes).
    let script = format!(
        "seq {} | xargs -P {} -I{{}} sh -c 'for s in {}; do {}/$s || exit 1; done'",
        options.hosts,
        options.max_parallel,
        STAGES.join(" "),
        hooks.display()
    );
    let mut runs = Vec::new();
    let mut floors = Vec::new();
    let mut floor_cpu = Vec::new();
    for run in 1..=options.runs {
        let measured = run_strategy(&client, &options, &pids, controller.pid(), &hosts_dir).await?;
        let floor_busy = machine_busy_seconds();
        let floor_started = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&script).status()?;
        floors.push(floor_started.elapsed());
        floor_cpu.push(machine_busy_seconds() - floor_busy);
        if !status.success() {
            bail!("the floor failed: {status}");
        }
        eprintln!(
            "run {run}: {:.3} s, CPU {:.3} s (machine {:.2} s); floor {:.3} s (machine {:.2} s)",
            measured.elapsed.as_secs_f64(),
            measured.cpu,
            measured.machine_cpu,
            floors[floors.len() - 1].as_secs_f64(),
            floor_cpu[floor_cpu.len() - 1],
        );
        runs.push(measured);
    }
    for agent in &mut agents {
        agent.stop();
    }
    drop(controller);

    let elapsed: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
    let median_ratio = median_ratio(&elapsed, &floors);
    let floor = floors.iter().min().copied().unwrap_or_default();
    let best = runs
        .iter()
        .min_by_key(|r| r.elapsed)
        .context("no run was measured")?;
    let convoy = best.elapsed;
    println!(
        "rolling maintenance of {} hosts, 4 hooks each, max-parallel {}, best of {} runs:",
        options.hosts, options.max_parallel, options.runs
    );
    println!(
        "  convoy (apply -> complete): {:>8.3} s   (runs: {})",
        convoy.as_secs_f64(),
        seconds_list(elapsed.iter().copied())
    );
    println!(
        "  floor (xargs -P {}):        {:>8.3} s   (runs: {})",
        options.max_parallel,
        floor.as_secs_f64(),
        seconds_list(floors.iter().copied())
    );
    println!(
        "  ratio:                      {:>8.2}x of the bests, {:.2}x median of each run against the floor run after it (goal: within 3x)",
        convoy.as_secs_f64() / floor.as_secs_f64(),
        median_ratio
    );
    println!(
        "  CPU of convoyd + agents:    {:>8.3} s, {:.4} s per host (convoyd {:.3} s, agents with their hook runners and hooks {:.3} s)",
        best.cpu,
        best.cpu / options.hosts as f64,
        best.controller_cpu,
        best.cpu - best.controller_cpu
    );
    println!("  where the best run's time went (mean per host):");
    for line in &best.breakdown {
        println!("    {line}");
    }
    println!(
        "    (the Maintenance and PostMaintenance hooks travel with entering and leaving \
         maintenance, and a hook that ends within 1 s is reported with them: its phase begins \
         its run time before that report)"
    );
    Ok(())
}

/// One run: create, apply, wait for the end, check every host was updated, delete.
struct Run {
    elapsed: Duration,
    cpu: f64,
    /// The whole machine's busy CPU seconds from apply until the bench saw the end (within
    /// its 250 ms polling).
    machine_cpu: f64,
    controller_cpu: f64,
    breakdown: Vec<String>,
}

async fn run_strategy(
    client: &Client,
    options: &Options,
    pids: &[u32],
    controller_pid: Option<u32>,
    dir: &Path,
) -> anyhow::Result<Run> {
    client
        .create_rolling_maintenance(&NewRollingMaintenance {
            zones: Some(vec!["zone-a".into()]),
            max_parallel_hosts: Some(options.max_parallel),
            timeout_seconds: Some(600),
            ..Default::default()
        })
        .await?;
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let controller_before = controller_pid.map_or(0.0, cpu_seconds);
    // The agents' hook runners (and the hooks they reap) live apart from the agents.
    let runners_before: HashMap<u32, f64> = processes_in_mode("hook-runner", dir)
        .into_iter()
        .map(|pid| (pid, cpu_seconds(pid)))
        .collect();
    eprintln!("applying");
    let machine_before = machine_busy_seconds();
    let started = SystemTime::now();
    client.rolling_maintenance_action(ActionName::Apply).await?;
    // The end is when convoyd recorded the strategy's last state (its `updated_at`), so the
    // bench can look at the CLI's leisurely pace: polling every 50 ms cost a few percent of
    // the very CPU being measured, and added up to 50 ms to the time.
    let strategy = wait_until_every(
        Deadline::after(Duration::from_secs(1800)),
        Duration::from_millis(250),
        "the strategy to end",
        || async {
            let strategy = client.rolling_maintenance().await.ok()?;
            strategy.state.is_terminal().then_some(strategy)
        },
    )
    .await?;
    let machine_cpu = machine_busy_seconds() - machine_before;
    // convoyd keeps milliseconds.
    let ended =
        UNIX_EPOCH + Duration::from_millis(u64::try_from(strategy.updated_at.as_millisecond())?);
    let elapsed = ended
        .duration_since(started)
        .context("the controller's clock ran backwards")?;
    let runners: f64 = processes_in_mode("hook-runner", dir)
        .into_iter()
        .map(|pid| cpu_seconds(pid) - runners_before.get(&pid).copied().unwrap_or(0.0))
        .sum();
    let cpu: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before + runners;
    let controller_cpu = controller_pid.map_or(0.0, cpu_seconds) - controller_before;
    if strategy.state != convoy_core::strategy::StrategyState::Complete {
        bail!(
            "the strategy ended {}: {}",
            strategy.state,
            strategy.details
        );
    }
    let report = client.rolling_maintenance_report().await?;
    if report.hosts_updated.len() != options.hosts {
        bail!(
            "only {} of {} hosts were updated",
            report.hosts_updated.len(),
            options.hosts
        );
    }
    let breakdown = phase_breakdown(client, "pre-flight").await?;
    client.delete_rolling_maintenance().await?;
    wait_until(
        Deadline::after(Duration::from_secs(60)),
        "the strategy to be deleted",
        || async { client.rolling_maintenance().await.is_err().then_some(()) },
    )
    .await?;
    Ok(Run {
        elapsed,
        cpu,
        machine_cpu,
        controller_cpu,
        breakdown,
    })
}
