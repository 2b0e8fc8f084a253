//! Shared measuring helpers for the benchmarks.

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
