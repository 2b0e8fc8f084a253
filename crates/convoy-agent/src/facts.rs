//! The host's facts, read from the running system (capacity may be set by flags, so one
//! machine can stand in for hosts of different sizes).

use std::path::Path;

use convoy_core::host::HostFacts;
use convoy_core::patch::Release;

use crate::instances::Instances;
use crate::maintenance::MaintenanceFlag;
use crate::patches::{reboot, state};

#[derive(Debug, Clone)]
pub struct FactSource {
    pub state_dir: std::path::PathBuf,
    pub capacity_cpus: Option<u32>,
    pub capacity_memory_mib: Option<u64>,
    pub load_cpus: Option<f64>,
    pub load_memory_mib: Option<u64>,
    pub maintenance: MaintenanceFlag,
    /// The release this host runs (`--release`).
    pub release: Option<Release>,
    /// Its instances, as its `InstanceAction` hook last listed them.
    pub instances: Instances,
}

impl FactSource {
    pub fn collect(&self) -> HostFacts {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let total_mib = meminfo_kib(&meminfo, "MemTotal:") / 1024;
        let boot_id = reboot::boot_id(&self.state_dir);
        HostFacts {
            capacity_cpus: self.capacity_cpus.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            }),
            capacity_memory_mib: self.capacity_memory_mib.unwrap_or(total_mib),
            // The workload to move is what the operator says it is; without a figure, none.
            load_cpus: self.load_cpus.unwrap_or(0.0),
            load_memory_mib: self.load_memory_mib.unwrap_or(0),
            software: state::software(&self.state_dir, self.release.clone(), &boot_id),
            boot_id,
            os: os_name(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            state_fs_free_bytes: free_bytes(&self.state_dir),
            maintenance: self.maintenance.get(),
            instances: self.instances.get(),
        }
    }
}

fn meminfo_kib(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        })
        .unwrap_or_default();
    match pretty {
        Some(name) if !kernel.is_empty() => format!("{name} ({kernel})"),
        Some(name) => name,
        None => kernel,
    }
}

fn free_bytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_running_system_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let facts = FactSource {
            state_dir: dir.path().into(),
            capacity_cpus: Some(16),
            capacity_memory_mib: None,
            load_cpus: Some(2.5),
            load_memory_mib: None,
            maintenance: MaintenanceFlag::new(dir.path()),
            release: Some("25.09".parse().unwrap()),
            instances: Default::default(),
        }
        .collect();
        assert_eq!(facts.capacity_cpus, 16);
        assert_eq!(facts.load_cpus, 2.5);
        assert!(!facts.maintenance);
        assert_eq!(facts.software.release.unwrap().as_str(), "25.09");
        assert!(facts.capacity_memory_mib > 0);
        assert!(facts.state_fs_free_bytes > 0);
        assert!(!facts.boot_id.is_empty());
        assert_eq!(facts.agent_version, env!("CARGO_PKG_VERSION"));
    }

    /// The machine's own load (a build, other simulated hosts) is not workload to move: a
    /// host that reports no figures has none, so a busy machine fails no capacity check.
    #[test]
    fn without_workload_figures_a_host_has_nothing_to_move() {
        let dir = tempfile::tempdir().unwrap();
        let facts = FactSource {
            state_dir: dir.path().into(),
            capacity_cpus: None,
            capacity_memory_mib: None,
            load_cpus: None,
            load_memory_mib: None,
            maintenance: MaintenanceFlag::new(dir.path()),
            release: None,
            instances: Default::default(),
        }
        .collect();
        assert_eq!((facts.load_cpus, facts.load_memory_mib), (0.0, 0));
    }

    #[test]
    fn meminfo_is_parsed() {
        let text = "MemTotal:       16384 kB\nMemAvailable:    8192 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal:"), 16384);
        assert_eq!(meminfo_kib(text, "Missing:"), 0);
    }
}
