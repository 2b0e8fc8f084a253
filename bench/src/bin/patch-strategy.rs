//! A patch strategy rolling an in-service 16 MiB patch over 200 real agents (workers in
//! parallel, 100 at a time, step delays zero), against `convoy-agent install-local` of the
//! same patch file into 200 fresh roots under `xargs -P 100`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use convoy_api::Client;
use convoy_api::patches::PatchOperation;
use convoy_api::strategies::Strategy;
use convoy_bench::{
    build_payload_patch, children_cpu_seconds, cpu_seconds, generate_patch_key,
    machine_busy_seconds, median_ratio, phase_breakdown, processes_in_mode, seconds_list,
    settle_disk,
};
use convoy_core::host::Personality;
use convoy_core::sw_update::options::{ApplyType, SwPatchOptions, SwUpdateKind};
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until, wait_until_every,
};

struct Options {
    hosts: usize,
    max_parallel: u32,
    runs: usize,
    size_mib: u64,
    /// Keep the working directory (logs, databases) for a look afterwards.
    keep: bool,
    /// Where the working directory goes (default: the system's temporary directory).
    dir: Option<PathBuf>,
    /// Serve HTTPS (convoyd's default) instead of plain HTTP on loopback.
    tls: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        hosts: 200,
        max_parallel: 100,
        runs: 3,
        size_mib: 16,
        keep: false,
        dir: None,
        tls: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--hosts" => options.hosts = value.parse()?,
            "--max-parallel" => options.max_parallel = value.parse()?,
            "--runs" => options.runs = value.parse::<usize>()?.max(1),
            "--size-mib" => options.size_mib = value.parse()?,
            "--keep" => options.keep = value.parse()?,
            "--dir" => options.dir = Some(value.into()),
            "--tls" => options.tls = value.parse()?,
            other => {
                bail!(
                    "unknown option {other}; options: --hosts N --max-parallel N --runs N --size-mib N --keep true|false --dir DIR --tls true|false"
                )
            }
        }
    }
    Ok(options)
}

fn hostname(i: usize) -> String {
    format!("host-{i:03}")
}

/// Where a run's patch puts its payload on every host (a new file each run, so no install
/// backs up the previous run's).
fn install_path(run: usize) -> String {
    format!("opt/bench/payload-{run}.bin")
}

/// Checks that every root under `roots/<host>` has the run's payload, `size` bytes.
fn check_installed(roots: &Path, hosts: usize, run: usize, size: u64) -> anyhow::Result<()> {
    for i in 0..hosts {
        let path = roots.join(hostname(i)).join(install_path(run));
        let len = std::fs::metadata(&path)
            .with_context(|| format!("{} was not installed", path.display()))?
            .len();
        if len != size {
            bail!("{} is {len} bytes, not {size}", path.display());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    convoy_api::install_crypto_provider();
    let options = options()?;
    let binaries = Binaries::locate()?;
    let dir = convoy_bench::work_dir("convoy-bench-patch-", options.dir.as_deref(), options.keep)?;
    let (signing, public) = generate_patch_key(&binaries, &dir.path().join("keys"))?;
    // Step delays zero: system-stabilize waits nothing, other steps have no timeout.
    let config = dir.path().join("convoyd.toml");
    std::fs::write(
        &config,
        format!(
            "trusted_keys = [{:?}]\n[step_durations]\nstep_time_scale = 0\n",
            public.display().to_string()
        ),
    )?;

    let controller = ControllerProcess::start(
        &binaries,
        ControllerOptions {
            data_dir: dir.path().join("controller"),
            port: free_port()?,
            // convoyd's default: heartbeats are part of the load an update runs under.
            ping_interval: 10,
            tls: options.tls,
            extra_args: vec!["--config".into(), config.display().to_string()],
        },
    )
    .await?;
    let client = controller.client()?;
    let token = client.login("admin", &controller.admin_password()?).await?;
    let client = client.with_token(token);

    let hosts_dir = dir.path().join("hosts");
    let roots = dir.path().join("roots");
    eprintln!("starting {} agents...", options.hosts);
    let mut agents = Vec::new();
    for i in 0..options.hosts {
        let name = hostname(i);
        let root = roots.join(&name);
        std::fs::create_dir_all(&root)?;
        let mut agent = AgentOptions::new(&name, Personality::Worker, &hosts_dir);
        agent.extra_args = vec![
            "--trusted-key".into(),
            public.display().to_string(),
            "--root".into(),
            root.display().to_string(),
        ];
        agents.push(AgentProcess::start(&binaries, &controller, agent)?);
    }
    convoy_bench::wait_all_available(&client, options.hosts).await?;

    let pids: Vec<u32> = controller
        .pid()
        .into_iter()
        .chain(agents.iter().filter_map(AgentProcess::pid))
        .collect();
    let size = options.size_mib << 20;
    let mut runs = Vec::new();
    let mut floors = Vec::new();
    for run in 1..=options.runs {
        let patch = build_patch(&binaries, dir.path(), &signing, &options, run)?;
        let measured = run_strategy(
            &client,
            &options,
            &patch,
            run,
            &pids,
            controller.pid(),
            &hosts_dir,
        )
        .await?;
        check_installed(&roots, options.hosts, run, size)?;
        // The floor: the same installs of the same file, 100 at a time, into fresh roots laid
        // out as the agents' (a state directory and a root per host). Each run of convoy is
        // followed by one of the floor, so both see the machine in the same mood.
        let floor = run_floor(&binaries, dir.path(), &public, &patch, &options, run)?;
        eprintln!(
            "run {run}: {:.3} s, CPU {:.3} s (convoyd {:.3} s, machine {:.2} s); floor {:.3} s, CPU {:.3} s (machine {:.2} s)",
            measured.elapsed.as_secs_f64(),
            measured.cpu,
            measured.controller_cpu,
            measured.machine_cpu,
            floor.elapsed.as_secs_f64(),
            floor.cpu,
            floor.machine_cpu,
        );
        // Disk: each run writes hosts x size into the agents' roots; the payload is not
        // needed again (the next run's patch installs another file).
        for i in 0..options.hosts {
            let _ = std::fs::remove_file(roots.join(hostname(i)).join(install_path(run)));
        }
        runs.push(measured);
        floors.push(floor);
    }
    for agent in &mut agents {
        agent.stop();
    }
    drop(controller);

    let elapsed: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
    let floor_elapsed: Vec<Duration> = floors.iter().map(|f| f.elapsed).collect();
    let median_ratio = median_ratio(&elapsed, &floor_elapsed);
    let best = runs
        .iter()
        .min_by_key(|r| r.elapsed)
        .context("no run was measured")?;
    let best_floor = floors
        .iter()
        .min_by_key(|f| f.elapsed)
        .context("no floor was measured")?;
    let hosts = options.hosts as f64;

    println!(
        "patch strategy of {} hosts, an in-service patch of {} MiB, worker-apply-type parallel, max {}, step delays zero, best of {} runs:",
        options.hosts, options.size_mib, options.max_parallel, options.runs
    );
    println!(
        "  convoy (apply -> applied):      {:>8.3} s   (runs: {})",
        best.elapsed.as_secs_f64(),
        seconds_list(elapsed.iter().copied())
    );
    println!(
        "  floor (install-local, xargs -P {}): {:>5.3} s   (runs: {})",
        options.max_parallel,
        best_floor.elapsed.as_secs_f64(),
        seconds_list(floor_elapsed.iter().copied())
    );
    println!(
        "  ratio:                          {:>8.2}x of the bests, {:.2}x median of each run against the floor run after it (goal: within 2x)",
        best.elapsed.as_secs_f64() / best_floor.elapsed.as_secs_f64(),
        median_ratio
    );
    println!(
        "  CPU of convoyd + agents:        {:>8.3} s, {:.4} s per host (convoyd {:.3} s, agents {:.3} s); whole machine {:.2} s, {:.4} s per host",
        best.cpu,
        best.cpu / hosts,
        best.controller_cpu,
        best.cpu - best.controller_cpu,
        best.machine_cpu,
        best.machine_cpu / hosts,
    );
    println!(
        "  CPU of the floor (best run):    {:>8.3} s, {:.4} s per host; whole machine {:.2} s, {:.4} s per host",
        best_floor.cpu,
        best_floor.cpu / hosts,
        best_floor.machine_cpu,
        best_floor.machine_cpu / hosts,
    );
    println!("  where the best run's time went (mean per host):");
    for line in &best.breakdown {
        println!("    {line}");
    }
    Ok(())
}

/// Builds the run's patch with the real CLI: in service, for workers, one file of
/// pseudo-random bytes (a new id and new bytes each run, so every run installs for real).
fn build_patch(
    binaries: &Binaries,
    dir: &Path,
    signing: &Path,
    options: &Options,
    run: usize,
) -> anyhow::Result<PathBuf> {
    Ok(build_payload_patch(
        binaries,
        dir,
        signing,
        &format!("BENCH_{run:04}"),
        options.size_mib,
        0x5EED_0000 + run as u64,
        &install_path(run),
    )?)
}

/// One run of convoy: upload and apply the patch in the repository, create the strategy,
/// apply it and wait until it is applied.
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
    patch: &Path,
    run: usize,
    pids: &[u32],
    controller_pid: Option<u32>,
    hosts_dir: &Path,
) -> anyhow::Result<Run> {
    let id = format!("BENCH_{run:04}");
    client.upload_patch(patch).await?;
    client
        .patch_operation(
            "apply",
            &PatchOperation {
                ids: vec![id.clone()],
                ..Default::default()
            },
        )
        .await?;
    // Every host knows it lacks the patch and is idle (the build refuses while one installs).
    wait_until(
        Deadline::after(Duration::from_secs(120)),
        "every host to need the patch",
        || async {
            let rows = client.patch_hosts().await.ok()?;
            (rows.len() == options.hosts
                && rows
                    .iter()
                    .all(|h| h.state == "idle" && h.patch_current != "Yes"))
            .then_some(())
        },
    )
    .await?;
    let created = client
        .create_sw_update_strategy(
            SwUpdateKind::SwPatch,
            &SwPatchOptions {
                worker_apply_type: ApplyType::Parallel,
                max_parallel_worker_hosts: options.max_parallel,
                ..Default::default()
            },
        )
        .await?;
    if created["strategy"]["state"] != "ready-to-apply" {
        bail!("the strategy was not built: {:#}", created["strategy"]);
    }

    settle_disk();
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let controller_before = controller_pid.map_or(0.0, cpu_seconds);
    let runners_before: HashMap<u32, f64> = processes_in_mode("hook-runner", hosts_dir)
        .into_iter()
        .map(|pid| (pid, cpu_seconds(pid)))
        .collect();
    eprintln!("applying {id}");
    let machine_before = machine_busy_seconds();
    let started = SystemTime::now();
    client
        .sw_update_strategy_action(SwUpdateKind::SwPatch, "apply-all", None)
        .await?;
    // Polled at the CLI's leisurely pace; the end is when convoyd recorded the strategy's
    // last state (its `updated_at`, in milliseconds).
    let state = wait_until_every(
        Deadline::after(Duration::from_secs(1800)),
        Duration::from_millis(250),
        "the strategy to end",
        || async {
            let strategy = client
                .sw_update_strategy(SwUpdateKind::SwPatch)
                .await
                .ok()?;
            let state = strategy["strategy"]["state"].as_str()?.to_string();
            (!matches!(state.as_str(), "ready-to-apply" | "applying" | "aborting")).then_some(state)
        },
    )
    .await?;
    let machine_cpu = machine_busy_seconds() - machine_before;
    let runners: f64 = processes_in_mode("hook-runner", hosts_dir)
        .into_iter()
        .map(|pid| cpu_seconds(pid) - runners_before.get(&pid).copied().unwrap_or(0.0))
        .sum();
    let cpu: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before + runners;
    let controller_cpu = controller_pid.map_or(0.0, cpu_seconds) - controller_before;
    if state != "applied" {
        bail!(
            "the strategy ended {state}: {:#}",
            client.sw_update_strategy(SwUpdateKind::SwPatch).await?
        );
    }
    let engine: Strategy = client
        .call(reqwest::Method::GET, "/v1/strategy", None::<&()>)
        .await?;
    let ended =
        UNIX_EPOCH + Duration::from_millis(u64::try_from(engine.updated_at.as_millisecond())?);
    let elapsed = ended
        .duration_since(started)
        .context("the controller's clock ran backwards")?;
    let mut breakdown = phase_breakdown(client, "").await?;
    breakdown.extend(stage_timeline(client, started).await?);
    client
        .delete_sw_update_strategy(SwUpdateKind::SwPatch)
        .await?;
    wait_until(
        Deadline::after(Duration::from_secs(60)),
        "the strategy to be deleted",
        || async {
            client
                .sw_update_strategy(SwUpdateKind::SwPatch)
                .await
                .ok()
                .and_then(|s| {
                    (s.get("strategy").is_none_or(serde_json::Value::is_null)).then_some(())
                })
        },
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

/// When each stage ran, from the apply request, and how long its hosts' installs took
/// (`sw-patch-hosts`): a stage ends with its slowest host, and the next one starts after it.
async fn stage_timeline(client: &Client, applied: SystemTime) -> anyhow::Result<Vec<String>> {
    let applied = jiff::Timestamp::try_from(applied)?;
    let mut stages: BTreeMap<u32, (Vec<f64>, f64, f64)> = BTreeMap::new();
    for step in client.strategy_steps().await? {
        let detail = client.strategy_step(&step.target).await?;
        let (Some(start), Some(end)) = (step.started_at, step.finished_at) else {
            continue;
        };
        let entry = stages
            .entry(step.stage)
            .or_insert((Vec::new(), f64::MAX, f64::MIN));
        entry.1 = entry.1.min(start.duration_since(applied).as_secs_f64());
        entry.2 = entry.2.max(end.duration_since(applied).as_secs_f64());
        for phase in detail.phases.iter().filter(|p| p.phase == "sw-patch-hosts") {
            if let Some(end) = phase.finished_at {
                entry
                    .0
                    .push(end.duration_since(phase.started_at).as_secs_f64());
            }
        }
    }
    Ok(stages
        .into_iter()
        .map(|(stage, (mut installs, start, end))| {
            installs.sort_by(f64::total_cmp);
            let at = |q: f64| installs.get(((installs.len() as f64 - 1.0) * q) as usize);
            format!(
                "stage {stage}: {:.3}-{:.3} s after apply, {} installs of {:.3}/{:.3}/{:.3} s (min/median/max)",
                start,
                end,
                installs.len(),
                at(0.0).copied().unwrap_or_default(),
                at(0.5).copied().unwrap_or_default(),
                at(1.0).copied().unwrap_or_default(),
            )
        })
        .collect())
}

/// One run of the floor.
struct Floor {
    elapsed: Duration,
    /// `install-local`'s CPU seconds (with xargs and the shell).
    cpu: f64,
    machine_cpu: f64,
}

fn run_floor(
    binaries: &Binaries,
    dir: &Path,
    public: &Path,
    patch: &Path,
    options: &Options,
    run: usize,
) -> anyhow::Result<Floor> {
    let floor = dir.join(format!("floor-{run}"));
    for i in 0..options.hosts {
        std::fs::create_dir_all(floor.join(hostname(i)).join("root"))?;
    }
    let script = format!(
        "seq -f 'host-%03g' 0 {} | xargs -P {} -I{{}} {} install-local --state-dir {floor}/{{}}/state --root {floor}/{{}}/root --personality worker --trusted-key {} {} >/dev/null",
        options.hosts - 1,
        options.max_parallel,
        binaries.agent.display(),
        public.display(),
        patch.display(),
        floor = floor.display(),
    );
    settle_disk();
    let cpu_before = children_cpu_seconds();
    let machine_before = machine_busy_seconds();
    let started = Instant::now();
    let status = Command::new("sh").arg("-c").arg(&script).status()?;
    let elapsed = started.elapsed();
    let machine_cpu = machine_busy_seconds() - machine_before;
    let cpu = children_cpu_seconds() - cpu_before;
    if !status.success() {
        bail!("the floor failed: {status}");
    }
    let roots: Vec<PathBuf> = (0..options.hosts)
        .map(|i| floor.join(hostname(i)).join("root"))
        .collect();
    for root in &roots {
        let path = root.join(install_path(run));
        if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(options.size_mib << 20) {
            bail!("the floor did not install {}", path.display());
        }
    }
    std::fs::remove_dir_all(&floor)?;
    Ok(Floor {
        elapsed,
        cpu,
        machine_cpu,
    })
}
