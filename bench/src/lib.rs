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
