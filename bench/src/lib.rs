//! Shared measuring helpers for the benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// CPU seconds (user + system) a process and its reaped children have used, from
/// `/proc/<pid>/stat`; 0 if the process is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14-17 of the whole line: 11-14 here.
    let ticks: f64 = fields
        .iter()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // Linux has used 100 for USER_HZ on every architecture we run on.
    100.0
}

/// Processes whose command line has an argument equal to `mode` and one starting with `under`:
/// e.g. the agents' hook runners (`convoy-agent hook-runner --jobs-dir <under>/...`), which are
/// not children of the processes a benchmark started.
pub fn processes_in_mode(mode: &str, under: &std::path::Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let under = under.as_os_str().as_encoded_bytes();
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.contains(&mode.as_bytes()) && args.iter().any(|a| a.starts_with(under))
        })
        .collect()
}

/// CPU seconds (user + system) of this process's reaped children (and theirs, as each was
/// waited for), from `/proc/self/stat`: what a floor run in a shell cost.
pub fn children_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    // cutime and cstime are fields 16-17 of the whole line: 13-14 here.
    let ticks: f64 = rest
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

/// Writes `mib` MiB of incompressible-looking bytes fast: one xorshift block, each MiB
/// stamped with its own counter so no two are alike.
pub fn write_payload(path: &std::path::Path, mib: u64, seed: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut block = vec![0u8; 1 << 20];
    let mut state = seed | 1;
    for chunk in block.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..mib {
        block[..8].copy_from_slice(&(seed ^ i).to_le_bytes());
        out.write_all(&block)?;
    }
    out.flush()
}

/// The median of each run's time against the floor run measured after it.
pub fn median_ratio(runs: &[std::time::Duration], floors: &[std::time::Duration]) -> f64 {
    let mut paired: Vec<f64> = runs
        .iter()
        .zip(floors)
        .map(|(run, floor)| run.as_secs_f64() / floor.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    paired.get(paired.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Durations as "1.234 2.345 ...", in seconds.
pub fn seconds_list(list: impl IntoIterator<Item = std::time::Duration>) -> String {
    list.into_iter()
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Mean time per phase over every host of the controller's strategy (from
/// `/v1/strategy-steps/{host}`), and mean time between a phase's end and the next one's start
/// (the controller's and the protocol's share), leaving out the gap after `stage_wait`, a
/// phase after which a host waits for its stage's other hosts.
pub async fn phase_breakdown(
    client: &convoy_api::Client,
    stage_wait: &str,
) -> Result<Vec<String>, convoy_api::ClientError> {
    use std::collections::BTreeMap;
    let mut phases: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    let mut gaps = (0.0, 0u32);
    for step in client.strategy_steps().await? {
        let detail = client.strategy_step(&step.target).await?;
        for pair in detail.phases.windows(2) {
            if let Some(end) = pair[0].finished_at
                && pair[0].phase != stage_wait
            {
                gaps.0 += pair[1].started_at.duration_since(end).as_secs_f64();
                gaps.1 += 1;
            }
        }
        for phase in &detail.phases {
            if let Some(end) = phase.finished_at {
                let entry = phases.entry(phase.phase.clone()).or_default();
                entry.0 += end.duration_since(phase.started_at).as_secs_f64();
                entry.1 += 1;
            }
        }
    }
    let mut lines: Vec<String> = phases
        .into_iter()
        .map(|(phase, (total, n))| format!("{phase:<18} {:>7.1} ms", total * 1000.0 / f64::from(n)))
        .collect();
    if gaps.1 > 0 {
        lines.push(format!(
            "{:<18} {:>7.1} ms (between phases, excluding the wait for the stage)",
            "gap",
            gaps.0 * 1000.0 / f64::from(gaps.1)
        ));
    }
    Ok(lines)
}

/// CPU seconds the whole machine has been busy (user, nice, system, irq, softirq) since boot,
/// from `/proc/stat`: what a run cost, whichever processes it was spread over.
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // cpu user nice system idle iowait irq softirq steal ...
    let ticks: f64 = line
        .split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6))
        .filter_map(|(_, f)| f.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

pub mod simulator;

/// Waits (up to two minutes) until the controller knows `hosts` hosts, every one available.
pub async fn wait_all_available(
    client: &convoy_api::Client,
    hosts: usize,
) -> Result<(), convoy_launch::LaunchError> {
    use convoy_core::host::Availability;
    convoy_launch::wait_until(
        convoy_launch::Deadline::after(std::time::Duration::from_secs(120)),
        "every agent to be available",
        || async {
            let known = client.hosts().await.ok()?;
            (known.len() == hosts
                && known
                    .iter()
                    .all(|h| h.availability == Availability::Available))
            .then_some(())
        },
    )
    .await
}

/// Resident memory of a process in MiB, from `/proc/<pid>/status`; 0 if it is gone.
pub fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Runs jobs `0..count`, `concurrency` at a time; the first error ends the run.
pub async fn in_parallel<F, Fut, E>(count: usize, concurrency: usize, job: F) -> Result<(), E>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: Send + 'static,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (job, next) = (job.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                job(i).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(result) => result?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    Ok(())
}

/// Runs the `convoy` CLI (offline commands: keys, builds); fails with its output if it fails.
pub fn convoy_cli(binaries: &convoy_launch::Binaries, args: &[&str]) -> std::io::Result<()> {
    let output = Command::new(&binaries.convoy).args(args).output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "convoy {} failed ({}): {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// The bench's working directory, `PREFIX…` under `parent` (else the system's temporary
/// directory); with `keep`, left in place after the run and named on stderr.
pub fn work_dir(
    prefix: &str,
    parent: Option<&Path>,
    keep: bool,
) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let mut dir = match parent {
        Some(parent) => builder.tempdir_in(parent)?,
        None => builder.tempdir()?,
    };
    if keep {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// A patch signing key made with the CLI in `dir`: (private, public) PEM files.
pub fn generate_patch_key(
    binaries: &convoy_launch::Binaries,
    dir: &Path,
) -> std::io::Result<(PathBuf, PathBuf)> {
    convoy_cli(
        binaries,
        &["key", "generate", "--out", &dir.display().to_string()],
    )?;
    Ok((
        dir.join("patch-signing.pem"),
        dir.join("patch-signing.pub.pem"),
    ))
}

/// Builds `<dir>/patches/<id>.patch` with the real CLI: released, in service, for workers,
/// one file of `mib` MiB of pseudo-random bytes (from `seed`) installed at `install_path`.
/// The payload's source file is removed afterwards (only the bundle is needed).
pub fn build_payload_patch(
    binaries: &convoy_launch::Binaries,
    dir: &Path,
    signing: &Path,
    id: &str,
    mib: u64,
    seed: u64,
    install_path: &str,
) -> std::io::Result<PathBuf> {
    let source = dir.join(format!("{id}.bin"));
    write_payload(&source, mib, seed)?;
    let out = dir.join("patches");
    std::fs::create_dir_all(&out)?;
    convoy_cli(
        binaries,
        &[
            "patch",
            "build",
            "--id",
            id,
            "--release",
            "25.09",
            "--status",
            "REL",
            "--reboot-required",
            "N",
            "--worker",
            &format!("{}={install_path}", source.display()),
            "--key",
            &signing.display().to_string(),
            "-o",
            &out.display().to_string(),
        ],
    )?;
    std::fs::remove_file(&source)?;
    Ok(out.join(format!("{id}.patch")))
}

/// Writes back what earlier work left dirty in the page cache, so that a timed run does not
/// pay for another's writes.
pub fn settle_disk() {
    let _ = Command::new("sync").status();
}

/// Standard base64 without a dependency (the benches encode a password or two).
pub fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Adds virtual subclouds `0..n` of `sim` to the System Controller as `subcloud-<i>`,
/// `concurrency` requests at a time.
pub async fn add_subclouds(
    client: &convoy_api::Client,
    sim: &simulator::Running,
    n: usize,
    concurrency: usize,
) -> Result<(), convoy_api::ClientError> {
    let password = base64(&sim.sysadmin_password());
    let (client, sim) = (client.clone(), sim.clone());
    in_parallel(n, concurrency, move |i| {
        let (client, password, url) = (client.clone(), password.clone(), sim.url(i));
        async move {
            let form = convoy_api::dc::Form::new()
                .text("name", format!("subcloud-{i}"))
                .text("bootstrap-address", url)
                .text("sysadmin_password", password);
            client.dc_add_subcloud(&form).await.map(|_| ())
        }
    })
    .await
}

/// Manages `subcloud-0..n`, `concurrency` requests at a time.
pub async fn manage_subclouds(
    client: &convoy_api::Client,
    n: usize,
    concurrency: usize,
) -> Result<(), convoy_api::ClientError> {
    let client = client.clone();
    in_parallel(n, concurrency, move |i| {
        let client = client.clone();
        async move {
            let form = convoy_api::dc::Form::new()
                .text("management-state", "managed")
                .text("force", "true");
            client
                .dc_update_subcloud(&format!("subcloud-{i}"), &form)
                .await
                .map(|_| ())
        }
    })
    .await
}

/// Waits until all `n` subclouds show the overall sync status `status` (`in-sync`,
/// `out-of-sync`), listing them every 2 s.
pub async fn wait_subclouds_sync(
    client: &convoy_api::Client,
    n: usize,
    status: &str,
    within: std::time::Duration,
) -> Result<(), convoy_launch::LaunchError> {
    convoy_launch::wait_until_every(
        convoy_launch::Deadline::after(within),
        std::time::Duration::from_secs(2),
        &format!("all {n} subclouds {status}"),
        || async {
            let subclouds = client.dc_subclouds().await.ok()?;
            let matching = subclouds
                .iter()
                .filter(|s| s.sync_status.as_deref() == Some(status))
                .count();
            (matching == n).then_some(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_pads_as_the_standard_alphabet_does() {
        assert_eq!(super::base64("f"), "Zg==");
        assert_eq!(super::base64("fo"), "Zm8=");
        assert_eq!(super::base64("foo"), "Zm9v");
        assert_eq!(
            super::base64("sysadmin-password"),
            "c3lzYWRtaW4tcGFzc3dvcmQ="
        );
    }
}
