//! A prestage strategy shipping a release (default 1 GiB of pseudo-random bytes) from a System
//! Controller to three real subclouds (each its own convoyd), twice: once whole, once with the
//! System Controller killed (SIGKILL) half-way through subcloud-1's transfer and restarted.
//! Measured: the System Controller's egress against the artifact's size times the subclouds,
//! and the time against a plain local copy of the same bundle to as many files, in the same
//! run.
//!
//! `cargo run --release -p convoy-bench --bin prestage [-- --size-mib 1024 --subclouds 3
//! --dir DIR --poll-interval 1 --kill-at 50 --keep false]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use convoy_api::Client;
use convoy_api::dc::Form;
use convoy_api::patches::PatchOperation;
use convoy_bench::{
    base64, build_payload_patch, cpu_seconds, generate_patch_key, machine_busy_seconds,
    seconds_list, settle_disk,
};
use convoy_launch::{
    Binaries, ControllerOptions, ControllerProcess, Deadline, free_port, wait_until_every,
};
use serde_json::{Value, json};

const RELEASE: &str = "BENCH_PRESTAGE";
const VERSION: &str = "25.09";
const MIB: f64 = (1u64 << 20) as f64;

struct Options {
    size_mib: u64,
    subclouds: usize,
    /// Where the working directory goes (default: the system's temporary directory). It
    /// needs about size × (2 + 2 × subclouds) free.
    dir: Option<PathBuf>,
    keep: bool,
    /// The System Controller's `--subcloud-poll-interval`, in seconds.
    poll_interval: f64,
    /// Run 2 kills the System Controller once subcloud-1's step shows this percentage.
    kill_at: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        size_mib: 1024,
        subclouds: 3,
        dir: None,
        keep: false,
        poll_interval: 1.0,
        kill_at: 50,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--size-mib" => options.size_mib = value.parse::<u64>()?.max(1),
            "--subclouds" => options.subclouds = value.parse::<usize>()?.max(1),
            "--dir" => options.dir = Some(value.into()),
            "--keep" => options.keep = value.parse()?,
            "--poll-interval" => options.poll_interval = value.parse()?,
            "--kill-at" => options.kill_at = value.parse::<u64>()?.clamp(1, 99),
            other => bail!(
                "unknown option {other}; options: --size-mib N --subclouds N --dir DIR \
                 --keep true|false --poll-interval SECONDS --kill-at PERCENT"
            ),
        }
    }
    Ok(options)
}

fn subcloud_name(i: usize) -> String {
    format!("subcloud-{}", i + 1)
}

/// Bytes the process has passed to write(2)-family calls, sockets included (`wchar` of
/// `/proc/<pid>/io`); None if the process is gone.
fn written_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A subcloud: its own convoyd on plain HTTP, trusting the patch key, no hosts (prestage
/// asks nothing of them).
async fn start_subcloud(
    binaries: &Binaries,
    data_dir: PathBuf,
    public: &Path,
) -> anyhow::Result<ControllerProcess> {
    Ok(ControllerProcess::start(
        binaries,
        ControllerOptions {
            data_dir,
            port: free_port()?,
            ping_interval: 10,
            tls: false,
            extra_args: vec![
                "--trusted-key".into(),
                public.display().to_string(),
                "--log-format".into(),
                "json".into(),
            ],
        },
    )
    .await?)
}

async fn start_subclouds(
    binaries: &Binaries,
    dir: &Path,
    public: &Path,
    count: usize,
    generation: usize,
) -> anyhow::Result<Vec<ControllerProcess>> {
    let mut subclouds = Vec::new();
    for i in 0..count {
        let data_dir = dir.join(format!("{}-run{generation}", subcloud_name(i)));
        subclouds.push(start_subcloud(binaries, data_dir, public).await?);
    }
    Ok(subclouds)
}

/// Registers `subclouds` as subcloud-1, subcloud-2..., manages them, and waits until each is
/// online and its identity in sync (after which its sysadmin password is the System
/// Controller's admin password).
async fn register(client: &Client, subclouds: &[ControllerProcess]) -> anyhow::Result<()> {
    for (i, sub) in subclouds.iter().enumerate() {
        let form = Form::new()
            .text("name", subcloud_name(i))
            .text("bootstrap-address", sub.url())
            .text("sysadmin_password", base64(&sub.admin_password()?));
        client.dc_add_subcloud(&form).await?;
    }
    let names: Vec<String> = (0..subclouds.len()).map(subcloud_name).collect();
    wait_subclouds(client, &names, "online", |s| {
        s.availability_status == "online"
    })
    .await?;
    for name in &names {
        let form = Form::new().text("management-state", "managed");
        client.dc_update_subcloud(name, &form).await?;
    }
    wait_subclouds(client, &names, "managed with identity in sync", |s| {
        s.management_state == "managed"
            && s.endpoint_sync_status
                .iter()
                .any(|e| e.endpoint_type == "identity" && e.sync_status == "in-sync")
    })
    .await
}

async fn wait_subclouds(
    client: &Client,
    names: &[String],
    what: &str,
    ready: impl Fn(&convoy_api::dc::Subcloud) -> bool,
) -> anyhow::Result<()> {
    let ready = &ready;
    wait_until_every(
        Deadline::after(Duration::from_secs(120)),
        Duration::from_millis(250),
        &format!("every subcloud {what}"),
        || async move {
            for name in names {
                if !ready(&client.dc_subcloud(name, false).await.ok()?) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    Ok(())
}

/// Deletes the strategy and every subcloud from the System Controller.
async fn unregister(client: &Client, count: usize) -> anyhow::Result<()> {
    delete_strategy(client).await?;
    for i in 0..count {
        let name = subcloud_name(i);
        let form = Form::new().text("management-state", "unmanaged");
        client.dc_update_subcloud(&name, &form).await?;
        client.dc_delete_subcloud(&name).await?;
    }
    Ok(())
}

async fn delete_strategy(client: &Client) -> anyhow::Result<()> {
    client.dc_delete_strategy("prestage").await?;
    wait_until_every(
        Deadline::after(Duration::from_secs(60)),
        Duration::from_millis(100),
        "the strategy to be deleted",
        || async { client.dc_strategy("prestage").await.err().map(|_| ()) },
    )
    .await?;
    Ok(())
}

/// A client of the System Controller logged in as admin.
async fn admin_client(controller: &ControllerProcess) -> anyhow::Result<Client> {
    let client = controller.client()?;
    let token = client.login("admin", &controller.admin_password()?).await?;
    Ok(client.with_token(token))
}

/// One `prestage transfer complete` line of the System Controller's log.
#[derive(Debug, Clone)]
struct Transfer {
    subcloud: String,
    at: jiff::Timestamp,
    total: u64,
    sent: u64,
    held: u64,
}

/// What the System Controller logged from line `from` of its (JSON) log on: its completed
/// transfers, when its preparation was ready, and how many transfers ended early.
struct Logged {
    transfers: Vec<Transfer>,
    prepared_at: Option<jiff::Timestamp>,
    ended_early: usize,
}

fn read_log(log: &Path, from: usize) -> Logged {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut logged = Logged {
        transfers: Vec::new(),
        prepared_at: None,
        ended_early: 0,
    };
    for line in text.lines().skip(from) {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        let at = entry["timestamp"].as_str().and_then(|t| t.parse().ok());
        let message = fields["message"].as_str().unwrap_or("");
        if message == "prestage transfer complete" {
            let number = |name: &str| fields[name].as_u64().unwrap_or(0);
            logged.transfers.push(Transfer {
                subcloud: fields["subcloud"].as_str().unwrap_or("").to_string(),
                at: at.unwrap_or_default(),
                total: number("total"),
                sent: number("sent"),
                held: number("held"),
            });
        } else if message == "prestage preparation ready" {
            logged.prepared_at = at;
        } else if message.starts_with("prestage transfer ended early") {
            logged.ended_early += 1;
        }
    }
    logged
}

fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// The percentage in a step's details (`prestaging-packages 53% (0.5/1.0 GiB)`).
fn percent_of(details: &str) -> Option<u64> {
    details
        .strip_prefix("prestaging-packages ")?
        .split('%')
        .next()?
        .parse()
        .ok()
}

/// A strategy's `updated-at` (UTC, microseconds, no zone) as a timestamp.
fn updated_at(strategy: &Value) -> Option<jiff::Timestamp> {
    format!("{}Z", strategy["updated-at"].as_str()?)
        .parse()
        .ok()
}

/// Seconds from `start` to `end`, if `end` is later.
fn since(start: jiff::Timestamp, end: jiff::Timestamp) -> Option<Duration> {
    Duration::try_from(end.duration_since(start)).ok()
}

/// Where the interruption of run 2 happened.
struct Interruption {
    /// subcloud-1's step details when the System Controller was killed.
    details: String,
    after: Duration,
    /// The restarted System Controller answering again, from the apply.
    restarted_after: Duration,
}

/// One prestage strategy applied to every subcloud, measured.
struct Run {
    /// When the apply was requested.
    started: jiff::Timestamp,
    elapsed: Duration,
    /// The System Controller's `wchar` over the run (both processes' in run 2).
    written: u64,
    logged: Logged,
    interruption: Option<Interruption>,
    controller_cpu: f64,
    subclouds_cpu: f64,
    machine_cpu: f64,
}

async fn run_prestage(
    controller: &mut ControllerProcess,
    subclouds: &[ControllerProcess],
    options: &Options,
    interrupt: bool,
) -> anyhow::Result<Run> {
    let mut client = admin_client(controller).await?;
    let password = controller.admin_password()?;
    let created = client
        .dc_create_strategy(&json!({
            "type": "prestage",
            "sysadmin_password": base64(&password),
            "release": VERSION,
            "for_sw_deploy": "true",
            "max-parallel-subclouds": options.subclouds,
        }))
        .await?;
    let steps = client.dc_strategy_steps().await?;
    if steps.len() != options.subclouds {
        bail!("the strategy has {} steps: {created:#}", steps.len());
    }

    settle_disk();
    let from = log_lines(controller.log());
    let sub_pids: Vec<u32> = subclouds.iter().filter_map(|s| s.pid()).collect();
    let pid = controller.pid().context("the System Controller runs")?;
    let written_before = written_bytes(pid).context("no /proc/<pid>/io")?;
    let cpu_before = cpu_seconds(pid);
    let subclouds_before: f64 = sub_pids.iter().map(|p| cpu_seconds(*p)).sum();
    let machine_before = machine_busy_seconds();
    let started = SystemTime::now();
    let clock = Instant::now();
    client.dc_strategy_action("prestage", "apply").await?;

    // Before a kill, what the first process wrote and used; the restarted one counts from 0.
    let mut written_earlier = 0;
    let mut cpu_earlier = 0.0;
    let mut interruption = None;
    if interrupt {
        let seen = wait_until_every(
            Deadline::after(Duration::from_secs(1800)),
            Duration::from_millis(100),
            &format!("subcloud-1 {}% transferred", options.kill_at),
            || async {
                let step = client.dc_strategy_step("subcloud-1").await.ok()?;
                let details = step["details"].as_str()?.to_string();
                if matches!(step["state"].as_str()?, "complete" | "failed" | "aborted") {
                    return Some(Err(details));
                }
                (percent_of(&details)? >= options.kill_at).then_some(Ok(details))
            },
        )
        .await?;
        let details = seen.map_err(|details| {
            anyhow::anyhow!(
                "subcloud-1's step ended ({details}) before its progress showed {}%: give a \
                 larger --size-mib or a shorter --poll-interval",
                options.kill_at
            )
        })?;
        let after = clock.elapsed();
        // Stopped first, so that what it wrote is read with nothing more in flight; then
        // SIGKILL, as a crash.
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status();
        written_earlier = written_bytes(pid).context("no /proc/<pid>/io")? - written_before;
        cpu_earlier = cpu_seconds(pid) - cpu_before;
        controller.kill();
        controller.restart().await?;
        client = admin_client(controller).await?;
        interruption = Some(Interruption {
            details,
            after,
            restarted_after: clock.elapsed(),
        });
    }
    let pid = controller.pid().context("the System Controller runs")?;
    let (written_from, cpu_from) = if interrupt {
        (0, 0.0)
    } else {
        (written_before, cpu_before)
    };

    let strategy = wait_until_every(
        Deadline::after(Duration::from_secs(3600)),
        Duration::from_millis(250),
        "the strategy to end",
        || async {
            let strategy = client.dc_strategy("prestage").await.ok()?;
            let state = strategy["state"].as_str()?;
            matches!(state, "complete" | "failed" | "aborted").then_some(strategy)
        },
    )
    .await?;
    let seen = clock.elapsed();
    let written = written_bytes(pid).context("no /proc/<pid>/io")? - written_from + written_earlier;
    let controller_cpu = cpu_seconds(pid) - cpu_from + cpu_earlier;
    let subclouds_cpu = sub_pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - subclouds_before;
    let machine_cpu = machine_busy_seconds() - machine_before;
    if strategy["state"] != "complete" {
        bail!(
            "the strategy ended {}: {strategy:#}; steps {:#?}",
            strategy["state"],
            client.dc_strategy_steps().await?
        );
    }
    // The end is when convoyd recorded the strategy complete; the bench's polling is not
    // counted.
    let started = jiff::Timestamp::try_from(started)?;
    let elapsed = updated_at(&strategy)
        .and_then(|end| since(started, end))
        .unwrap_or(seen);
    Ok(Run {
        started,
        elapsed,
        written,
        logged: read_log(controller.log(), from),
        interruption,
        controller_cpu,
        subclouds_cpu,
        machine_cpu,
    })
}

/// The floor: the bundle copied to `count` files at once (one thread each), each synced, as
/// the subclouds sync what they keep; `sync` before each try, so none pays for earlier
/// writes. The best of three tries (the first allocation of gigabytes on a busy machine can
/// take several times as long as the next).
fn run_floor(bundle: &Path, dir: &Path, count: usize) -> anyhow::Result<Vec<Duration>> {
    let copies: Vec<PathBuf> = (0..count).map(|i| dir.join(format!("copy-{i}"))).collect();
    let mut tries = Vec::new();
    for _ in 0..3 {
        settle_disk();
        let started = Instant::now();
        std::thread::scope(|scope| {
            let copying: Vec<_> = copies
                .iter()
                .map(|copy| {
                    scope.spawn(move || -> std::io::Result<()> {
                        std::fs::copy(bundle, copy)?;
                        std::fs::File::open(copy)?.sync_all()
                    })
                })
                .collect();
            copying
                .into_iter()
                .try_for_each(|c| c.join().expect("a copy thread panicked"))
        })?;
        tries.push(started.elapsed());
        for copy in &copies {
            std::fs::remove_file(copy)?;
        }
    }
    Ok(tries)
}

/// Checks that every subcloud holds the release, available to deploy. `password` is the
/// System Controller's admin password, every subcloud's since identity sync.
async fn check_prestaged(subclouds: &[ControllerProcess], password: &str) -> anyhow::Result<()> {
    for (i, sub) in subclouds.iter().enumerate() {
        let client = sub.client()?;
        let token = client.login("admin", password).await?;
        let state = client.with_token(token).release(RELEASE).await?.state;
        if state != "available" {
            bail!(
                "{} holds {RELEASE} {state}, not available",
                subcloud_name(i)
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    convoy_api::install_crypto_provider();
    let options = options()?;
    let binaries = Binaries::locate()?;
    let dir = convoy_bench::work_dir(
        "convoy-bench-prestage-",
        options.dir.as_deref(),
        options.keep,
    )?;
    let (signing, public) = generate_patch_key(&binaries, &dir.path().join("keys"))?;

    // The System Controller: audits every second (registration and identity sync are quick),
    // a transfer's progress read every --poll-interval.
    let mut controller = ControllerProcess::start(
        &binaries,
        ControllerOptions {
            data_dir: dir.path().join("system-controller"),
            port: free_port()?,
            ping_interval: 10,
            tls: false,
            extra_args: vec![
                "--trusted-key".into(),
                public.display().to_string(),
                "--log-format".into(),
                "json".into(),
                "--audit-interval".into(),
                "1".into(),
                "--subcloud-poll-interval".into(),
                options.poll_interval.to_string(),
            ],
        },
    )
    .await?;
    let client = admin_client(&controller).await?;

    eprintln!("building a release of {} MiB...", options.size_mib);
    let built = build_payload_patch(
        &binaries,
        dir.path(),
        &signing,
        RELEASE,
        options.size_mib,
        0x5EED_9E57,
        "opt/bench/prestage.bin",
    )?;
    client.upload_patch(&built).await?;
    client
        .patch_operation(
            "apply",
            &PatchOperation {
                ids: vec![RELEASE.into()],
                ..Default::default()
            },
        )
        .await?;
    wait_until_every(
        Deadline::after(Duration::from_secs(120)),
        Duration::from_millis(100),
        "the release to be deployed on the System Controller",
        || async { (client.release(RELEASE).await.ok()?.state == "deployed").then_some(()) },
    )
    .await?;
    // The System Controller's own copy is what it sends, and what the floor copies; the
    // built one is not needed again.
    std::fs::remove_file(&built)?;
    let bundle = controller
        .data_dir()
        .join("patches")
        .join(format!("{RELEASE}.patch"));
    let size = std::fs::metadata(&bundle)
        .with_context(|| format!("{} is not in the repository", bundle.display()))?
        .len();
    let expected = size * options.subclouds as u64;

    eprintln!("starting {} subclouds...", options.subclouds);
    let mut subclouds =
        start_subclouds(&binaries, dir.path(), &public, options.subclouds, 1).await?;
    register(&client, &subclouds).await?;

    let floor1 = run_floor(&bundle, dir.path(), options.subclouds)?;
    eprintln!(
        "floor: {} s; run 1 (whole)...",
        seconds_list(floor1.clone())
    );
    let run1 = run_prestage(&mut controller, &subclouds, &options, false).await?;
    check_prestaged(&subclouds, &controller.admin_password()?).await?;
    eprintln!("run 1: {:.3} s", run1.elapsed.as_secs_f64());

    // Fresh subclouds (new data directories: no chunk, no release) for run 2.
    let client = admin_client(&controller).await?;
    unregister(&client, options.subclouds).await?;
    for sub in subclouds.drain(..) {
        let data = sub.data_dir().to_path_buf();
        drop(sub);
        std::fs::remove_dir_all(&data)?;
    }
    subclouds = start_subclouds(&binaries, dir.path(), &public, options.subclouds, 2).await?;
    register(&client, &subclouds).await?;

    let floor2 = run_floor(&bundle, dir.path(), options.subclouds)?;
    eprintln!(
        "floor: {} s; run 2 (System Controller killed at {}% of subcloud-1)...",
        seconds_list(floor2.clone()),
        options.kill_at
    );
    let run2 = run_prestage(&mut controller, &subclouds, &options, true).await?;
    check_prestaged(&subclouds, &controller.admin_password()?).await?;
    eprintln!("run 2: {:.3} s", run2.elapsed.as_secs_f64());
    drop(subclouds);
    drop(controller);

    println!(
        "prestage (for sw-deploy) of a {:.1} MiB release ({} MiB of pseudo-random payload) to {} subclouds, max-parallel {}, subcloud poll interval {} s:",
        size as f64 / MIB,
        options.size_mib,
        options.subclouds,
        options.subclouds,
        options.poll_interval
    );
    report(
        "run 1 (whole)",
        &run1,
        &floor1,
        size,
        expected,
        options.subclouds,
    );
    report(
        "run 2 (interrupted)",
        &run2,
        &floor2,
        size,
        expected,
        options.subclouds,
    );
    Ok(())
}

fn report(title: &str, run: &Run, floors: &[Duration], size: u64, expected: u64, subclouds: usize) {
    let floor = floors.iter().min().copied().unwrap_or_default();
    let sent: u64 = run.logged.transfers.iter().map(|t| t.sent).sum();
    let held: u64 = run.logged.transfers.iter().map(|t| t.held).sum();
    println!("  {title}:");
    println!(
        "    time (apply -> complete):   {:>8.3} s   floor (copy to {subclouds} files at once, synced; best of {}) {:.3} s: {:.2}x",
        run.elapsed.as_secs_f64(),
        seconds_list(floors.iter().copied()),
        floor.as_secs_f64(),
        run.elapsed.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "    System Controller egress:   {:>8.1} MiB written (wchar) = {:.3}x of {subclouds} x {:.1} MiB; sent= in the log {:.1} MiB = {:.3}x, held= {:.1} MiB",
        run.written as f64 / MIB,
        run.written as f64 / expected as f64,
        size as f64 / MIB,
        sent as f64 / MIB,
        sent as f64 / expected as f64,
        held as f64 / MIB,
    );
    if let Some(cut) = &run.interruption {
        println!(
            "    killed at {:.3} s (subcloud-1: {}), answering again at {:.3} s; the log's figures are the restarted System Controller's transfers",
            cut.after.as_secs_f64(),
            cut.details,
            cut.restarted_after.as_secs_f64()
        );
    }
    let offset = |at| since(run.started, at).map_or(f64::NAN, |d| d.as_secs_f64());
    if let Some(prepared) = run.logged.prepared_at {
        println!(
            "    preparation (read, check and cut the bundle) ready at {:.3} s",
            offset(prepared)
        );
    }
    for t in &run.logged.transfers {
        println!(
            "    {}: transfer complete (imported) at {:.3} s: total {:.1} MiB, sent {:.1} MiB, held {:.1} MiB",
            t.subcloud,
            offset(t.at),
            t.total as f64 / MIB,
            t.sent as f64 / MIB,
            t.held as f64 / MIB
        );
    }
    if run.logged.ended_early > 0 {
        println!(
            "    transfers that ended early (and were started again): {}",
            run.logged.ended_early
        );
    }
    println!(
        "    CPU: System Controller {:.2} s, subclouds {:.2} s, whole machine {:.2} s (floor copies not included)",
        run.controller_cpu, run.subclouds_cpu, run.machine_cpu
    );
}
