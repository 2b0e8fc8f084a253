//! A System Controller (the real convoyd) deploying a release to many simulated subclouds
//! (the simulator, in this process, each subcloud's sw-upgrade strategy applied after a set
//! delay): the time to create the sw-deploy strategy, the time from apply to `complete`
//! against the floor (steps / max-parallel) × delay, convoyd's CPU per subcloud step during
//! the apply, and its resident memory.
//!
//! `cargo run --release -p convoy-bench --bin dc-sw-deploy [-- --subclouds 10000
//! --max-parallel 1000 --delay-secs 20 --poll-secs 10 --audit-interval 60
//! --audit-concurrency 64 --concurrency 32 --keep false]`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_api::Client;
use convoy_api::patches::PatchOperation;
use convoy_bench::resident_mib;
use convoy_bench::simulator::{self, Behaviour, SimRelease};
use convoy_bundle::{BuildSpec, PayloadFile, Section, SigningKey};
use convoy_launch::{Binaries, ControllerOptions, ControllerProcess, free_port};

const RELEASE: &str = "BENCH_REL_1";

/// The goals of issue 16.
const CREATE_GOAL: Duration = Duration::from_secs(1);
const CPU_GOAL_MS: f64 = 1.0;
const WALL_GOAL_RATIO: f64 = 1.2;

struct Options {
    subclouds: usize,
    max_parallel: usize,
    delay_secs: f64,
    poll_secs: f64,
    audit_interval: u64,
    audit_concurrency: usize,
    concurrency: usize,
    /// Keep the controller's directory (its log, its database) after the run.
    keep: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        subclouds: 10_000,
        max_parallel: 1_000,
        delay_secs: 20.0,
        poll_secs: 10.0,
        audit_interval: 60,
        audit_concurrency: 64,
        concurrency: 32,
        keep: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--subclouds" => options.subclouds = value.parse::<usize>()?.max(1),
            "--max-parallel" => options.max_parallel = value.parse::<usize>()?.max(1),
            "--delay-secs" => options.delay_secs = value.parse()?,
            "--poll-secs" => options.poll_secs = value.parse()?,
            "--audit-interval" => options.audit_interval = value.parse()?,
            "--audit-concurrency" => options.audit_concurrency = value.parse::<usize>()?.max(1),
            "--concurrency" => options.concurrency = value.parse::<usize>()?.max(1),
            "--keep" => options.keep = value.parse()?,
            other => bail!(
                "unknown option {other}; options: --subclouds N --max-parallel N \
                 --delay-secs S --poll-secs S --audit-interval S --audit-concurrency N \
                 --concurrency N --keep BOOL"
            ),
        }
    }
    Ok(options)
}

/// Builds the signed release the System Controller deploys (one small file for every host).
fn build_release(dir: &std::path::Path, key: &SigningKey) -> anyhow::Result<std::path::PathBuf> {
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources)?;
    let file = sources.join("bench.conf");
    std::fs::write(&file, "deployed by the dc-sw-deploy benchmark\n")?;
    let mut spec = BuildSpec::new(RELEASE.parse()?, "25.09".parse()?);
    spec.summary = "The dc-sw-deploy benchmark's release".into();
    spec.status = convoy_core::patch::PatchStatus::Released;
    spec.payload =
        PayloadFile::from_arg(Section::All, &format!("{}=etc/bench.conf", file.display()))?;
    Ok(convoy_bundle::build(&spec, key, &sources)?)
}

/// `"2026-12-07T22:00:00.123456"` (convoyd's dcmanager times, UTC) as an instant.
fn dc_time(value: &serde_json::Value) -> Option<jiff::Timestamp> {
    format!("{}Z", value.as_str()?).parse().ok()
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    convoy_api::install_crypto_provider();
    let options = options()?;
    let n = options.subclouds;
    let delay = Duration::from_secs_f64(options.delay_secs);
    let sim = simulator::start(
        "127.0.0.1:0".parse()?,
        Behaviour {
            subclouds: n,
            sysadmin_password: "sysadmin-password".into(),
            latency: Duration::ZERO,
            fail_percent: 0,
            deployed: vec![],
            software_version: "25.09".into(),
            release: Some(SimRelease {
                id: RELEASE.into(),
                sw_version: "25.09".into(),
            }),
            vim_delay: delay,
        },
    )
    .await?;

    let binaries = Binaries::locate()?;
    let dir = convoy_bench::work_dir("convoy-bench-dc-sw-deploy-", None, options.keep)?;
    let key = SigningKey::generate()?;
    let public = dir.path().join("patch-signing.pub.pem");
    key.public_key().write(&public)?;
    let config = dir.path().join("convoyd.toml");
    std::fs::write(
        &config,
        format!("trusted_keys = [{:?}]\n", public.display().to_string()),
    )?;
    let controller = ControllerProcess::start(
        &binaries,
        ControllerOptions {
            data_dir: dir.path().join("controller"),
            port: free_port()?,
            ping_interval: 10,
            tls: false,
            extra_args: vec![
                "--config".into(),
                config.display().to_string(),
                "--log-format".into(),
                "json".into(),
                "--audit-interval".into(),
                options.audit_interval.to_string(),
                "--audit-concurrency".into(),
                options.audit_concurrency.to_string(),
                "--subcloud-poll-interval".into(),
                options.poll_secs.to_string(),
            ],
        },
    )
    .await?;
    let pid = controller.pid().context("convoyd runs")?;
    let client = controller.client()?;
    let token = client.login("admin", &controller.admin_password()?).await?;
    let client: Client = client.with_token(token);

    // The release, deployed on the System Controller (it has no hosts: applying deploys it),
    // before the subclouds are managed: their first audit finds them out of sync.
    let bundle = build_release(dir.path(), &key)?;
    client.upload_patch(&bundle).await?;
    client
        .patch_operation(
            "apply",
            &PatchOperation {
                ids: vec![RELEASE.into()],
                ..Default::default()
            },
        )
        .await?;
    println!(
        "{n} simulated subclouds at http://{}/sc/<n>, each holding {RELEASE}; convoyd pid {pid}",
        sim.addr
    );

    let started = Instant::now();
    convoy_bench::add_subclouds(&client, &sim, n, options.concurrency).await?;
    println!("registered {n} in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    convoy_bench::manage_subclouds(&client, n, options.concurrency).await?;
    convoy_bench::wait_subclouds_sync(&client, n, "out-of-sync", Duration::from_secs(900)).await?;
    println!(
        "managed {n} and saw them all out of sync in {:.1} s; convoyd RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        resident_mib(pid)
    );

    // Create: one step per out-of-sync subcloud.
    let cpu_before = convoy_bench::cpu_seconds(pid);
    let started = Instant::now();
    client
        .dc_create_strategy(&serde_json::json!({
            "type": "sw-deploy",
            "release_id": RELEASE,
            "subcloud-apply-type": "parallel",
            "max-parallel-subclouds": options.max_parallel,
        }))
        .await?;
    let create = started.elapsed();
    let create_cpu = convoy_bench::cpu_seconds(pid) - cpu_before;
    let steps = client.dc_strategy_steps().await?.len();
    println!(
        "create: {steps} steps in {:.3} s (convoyd CPU {:.3} s)",
        create.as_secs_f64(),
        create_cpu
    );
    if steps != n {
        bail!("the strategy has {steps} steps, not {n}");
    }

    // Apply to complete. Steps start max-parallel at a time, and each waits the delay.
    let waves = steps.div_ceil(options.max_parallel);
    let floor = delay.mul_f64(waves as f64);
    let log = controller.log().to_path_buf();
    let audits_before = audit_cycles(&log);
    let requests_before = sim.deploy_requests();
    let cpu_before = convoy_bench::cpu_seconds(pid);
    let applied_at = jiff::Timestamp::now();
    let started = Instant::now();
    client.dc_strategy_action("sw-deploy", "apply").await?;
    let deadline = started + floor * 3 + Duration::from_secs(300);
    let mut reported = Instant::now();
    let ended = loop {
        let strategy = client.dc_strategy("sw-deploy").await?;
        let state = strategy["state"].as_str().unwrap_or_default();
        if matches!(state, "complete" | "failed" | "aborted") {
            break strategy;
        }
        if Instant::now() > deadline {
            bail!(
                "the strategy is still {state} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            println!(
                "  {:>5.0} s: {state}, {} subclouds deployed",
                started.elapsed().as_secs_f64(),
                sim.deployed()
            );
        }
        // Once a second: convoyd's own record of the end is exact, and the bench's polls
        // are not the work being measured.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let polled = started.elapsed();
    let cpu = convoy_bench::cpu_seconds(pid) - cpu_before;
    let rss = resident_mib(pid);
    let audits = audit_cycles(&log) - audits_before;
    let requests = sim.deploy_requests() - requests_before;
    // convoyd's own record of the end is exact; the poll is up to a second late.
    let wall = dc_time(&ended["updated-at"])
        .and_then(|end| Duration::try_from(end.duration_since(applied_at)).ok())
        .unwrap_or(polled);
    let state = ended["state"].as_str().unwrap_or_default();
    if state != "complete" {
        bail!("the strategy ended {state}: {}", ended);
    }
    let not_complete: Vec<String> = client
        .dc_strategy_steps()
        .await?
        .iter()
        .filter(|s| s["state"] != "complete")
        .take(5)
        .map(|s| format!("{} {} ({})", s["cloud"], s["state"], s["details"]))
        .collect();
    if !not_complete.is_empty() {
        bail!("steps not complete: {}", not_complete.join("; "));
    }
    let deployed = sim.deployed();
    if deployed != n {
        bail!("the simulator saw {deployed} of {n} releases deployed");
    }
    let ratio = wall.as_secs_f64() / floor.as_secs_f64();
    let cpu_ms = cpu * 1000.0 / steps as f64;
    println!(
        "apply: {steps} steps complete in {:.1} s (polled {:.1} s); floor ({steps} / {}) x {:.0} s = {:.0} s; ratio {ratio:.3}",
        wall.as_secs_f64(),
        polled.as_secs_f64(),
        options.max_parallel,
        delay.as_secs_f64(),
        floor.as_secs_f64()
    );
    println!(
        "convoyd CPU during the apply {cpu:.2} s = {cpu_ms:.3} ms per step ({audits} audit cycles of {n} in that time); {:.1} subcloud calls per step; RSS {rss:.1} MiB",
        requests as f64 / steps as f64
    );

    // The audit sees what the steps did.
    let started = Instant::now();
    convoy_bench::wait_subclouds_sync(
        &client,
        n,
        "in-sync",
        Duration::from_secs(options.audit_interval * 2 + 120),
    )
    .await?;
    println!(
        "all {n} in sync {:.1} s after the strategy completed; convoyd RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        resident_mib(pid)
    );

    println!(
        "goals: create {:.3} s <= 1 s {}; {cpu_ms:.3} ms CPU per step <= 1 ms {}; wall {ratio:.3}x the floor <= 1.2x {}",
        create.as_secs_f64(),
        met(create <= CREATE_GOAL),
        met(cpu_ms <= CPU_GOAL_MS),
        met(ratio <= WALL_GOAL_RATIO)
    );
    Ok(())
}

/// How many audit cycles convoyd has logged as complete.
fn audit_cycles(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("audit cycle complete"))
        .count()
}
