//! A System Controller (the real convoyd) with many simulated subclouds (the simulator,
//! in this process): time to register them, the wall time and controller CPU of a full audit
//! cycle, the controller's resident memory, and `subcloud list` latency over the API.
//!
//! `cargo run --release -p convoy-bench --bin subclouds [-- --subclouds 10000 --concurrency 32
//! --audit-concurrency 64 --latency-ms 0 --fail-percent 0]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_api::Client;
use convoy_api::dc::Form;
use convoy_bench::simulator::{self, Behaviour};
use convoy_launch::{Binaries, ControllerOptions, ControllerProcess, free_port};

struct Options {
    subclouds: usize,
    concurrency: usize,
    audit_concurrency: usize,
    latency_ms: u64,
    fail_percent: u64,
    cycles: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        subclouds: 10_000,
        concurrency: 32,
        audit_concurrency: 64,
        latency_ms: 0,
        fail_percent: 0,
        cycles: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--subclouds" => options.subclouds = value.parse()?,
            "--concurrency" => options.concurrency = value.parse::<usize>()?.max(1),
            "--audit-concurrency" => options.audit_concurrency = value.parse::<usize>()?.max(1),
            "--latency-ms" => options.latency_ms = value.parse()?,
            "--fail-percent" => options.fail_percent = value.parse()?,
            "--cycles" => options.cycles = value.parse::<usize>()?.max(1),
            other => bail!(
                "unknown option {other}; options: --subclouds N --concurrency N \
                 --audit-concurrency N --latency-ms MS --fail-percent P --cycles N"
            ),
        }
    }
    Ok(options)
}

/// Runs `count` jobs, `concurrency` at a time.
async fn in_parallel<F, Fut>(count: usize, concurrency: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                job(i).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}

fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The `wall_ms` of each "audit cycle complete" line in the log, in order.
fn cycles_logged(log: &std::path::Path) -> Vec<(u64, usize)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("audit cycle complete"))
        .filter_map(|l| {
            let field = |name: &str| -> Option<u64> {
                let key = format!("\"{name}\":");
                let at = l.find(&key)? + key.len();
                l[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            Some((field("wall_ms")?, field("subclouds")? as usize))
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    convoy_api::install_crypto_provider();
    let options = options()?;
    let n = options.subclouds;
    let sim = simulator::start(
        "127.0.0.1:0".parse()?,
        Behaviour {
            subclouds: n,
            sysadmin_password: "sysadmin-password".into(),
            latency: Duration::from_millis(options.latency_ms),
            fail_percent: options.fail_percent,
            deployed: vec![],
            software_version: "25.09".into(),
        },
    )
    .await?;
    let binaries = Binaries::locate()?;
    let dir = tempfile::Builder::new()
        .prefix("convoy-bench-dc-")
        .tempdir()?;
    // A long interval: cycles are started by the bench's manage requests and then every 20 s,
    // so that each measured cycle stands alone.
    let controller = ControllerProcess::start(
        &binaries,
        ControllerOptions {
            data_dir: dir.path().join("controller"),
            port: free_port()?,
            ping_interval: 10,
            tls: false,
            extra_args: vec![
                "--log-format".into(),
                "json".into(),
                "--audit-interval".into(),
                "20".into(),
                "--audit-concurrency".into(),
                options.audit_concurrency.to_string(),
            ],
        },
    )
    .await?;
    let pid = controller.pid().context("convoyd runs")?;
    let client = controller.client()?;
    let token = client.login("admin", &controller.admin_password()?).await?;
    let client: Client = client.with_token(token);
    println!(
        "{n} simulated subclouds at http://{sim}/sc/<n>; convoyd pid {pid}, RSS {:.1} MiB",
        resident_mib(pid)
    );

    // Registration.
    let started = Instant::now();
    let cpu_before = convoy_bench::cpu_seconds(pid);
    let password = convoy_bench::base64("sysadmin-password");
    {
        let client = client.clone();
        in_parallel(n, options.concurrency, move |i| {
            let (client, password) = (client.clone(), password.clone());
            async move {
                let form = Form::new()
                    .text("name", format!("subcloud-{i}"))
                    .text("bootstrap-address", simulator::subcloud_url(sim, i))
                    .text("sysadmin_password", password);
                client.dc_add_subcloud(&form).await?;
                Ok(())
            }
        })
        .await?;
    }
    let register = started.elapsed();
    let register_cpu = convoy_bench::cpu_seconds(pid) - cpu_before;
    println!(
        "registered {n} in {:.1} s ({:.2} ms each; convoyd CPU {:.2} ms each); RSS {:.1} MiB",
        register.as_secs_f64(),
        register.as_secs_f64() * 1000.0 / n as f64,
        register_cpu * 1000.0 / n as f64,
        resident_mib(pid)
    );

    // Manage every subcloud, then wait until every one is online and in sync.
    let started = Instant::now();
    {
        let client = client.clone();
        in_parallel(n, options.concurrency, move |i| {
            let client = client.clone();
            async move {
                let form = Form::new()
                    .text("management-state", "managed")
                    .text("force", "true");
                client
                    .dc_update_subcloud(&format!("subcloud-{i}"), &form)
                    .await?;
                Ok(())
            }
        })
        .await?;
    }
    println!("managed {n} in {:.1} s", started.elapsed().as_secs_f64());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let subclouds = client.dc_subclouds().await?;
        let in_sync = subclouds
            .iter()
            .filter(|s| s.sync_status.as_deref() == Some("in-sync"))
            .count();
        if in_sync == n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {in_sync} of {n} subclouds in sync after 600 s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "all {n} online and in-sync {:.1} s after the first manage; RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        resident_mib(pid)
    );

    // Steady-state cycles: CPU between two cycle ends is one cycle's work (the controller is
    // otherwise idle).
    let log = controller.log().to_path_buf();
    let mut seen = cycles_logged(&log).len();
    let mut cpu_mark = convoy_bench::cpu_seconds(pid);
    for _ in 0..options.cycles {
        let deadline = Instant::now() + Duration::from_secs(120);
        let (wall_ms, audited) = loop {
            let cycles = cycles_logged(&log);
            if cycles.len() > seen {
                seen = cycles.len();
                break *cycles.last().unwrap();
            }
            if Instant::now() > deadline {
                bail!("no audit cycle completed within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let cpu = convoy_bench::cpu_seconds(pid);
        println!(
            "audit cycle: {audited} subclouds in {:.2} s wall, convoyd CPU {:.3} ms per subcloud",
            wall_ms as f64 / 1000.0,
            (cpu - cpu_mark) * 1000.0 / audited.max(1) as f64
        );
        cpu_mark = cpu;
    }
    println!("convoyd RSS {:.1} MiB", resident_mib(pid));

    // subcloud list over the API.
    let mut times = vec![];
    for _ in 0..5 {
        let started = Instant::now();
        let listed = client.dc_subclouds().await?;
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(listed.len(), n);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "subcloud list of {n}: best {:.3} s, median {:.3} s",
        times[0],
        times[times.len() / 2]
    );
    println!("convoyd RSS {:.1} MiB", resident_mib(pid));
    Ok(())
}
