//! Whether a host's load can move to the rest of its cluster while it is in maintenance.
//!
//! Unlike CloudStack, which checks each VM alone against each candidate, the check is
//! cumulative: the spare capacity of all the other in-service hosts of the cluster, together,
//! must hold the whole load of the host. A host with no load always passes, so single-host
//! clusters can be maintained when nothing runs on them.

/// Capacity and load of one host, as its agent reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCapacity {
    pub hostname: String,
    pub cluster: Option<String>,
    pub capacity_cpus: f64,
    pub capacity_memory_mib: f64,
    pub load_cpus: f64,
    pub load_memory_mib: f64,
    /// Unlocked, available and not in maintenance: it can take load.
    pub in_service: bool,
}

/// Checks that `host`'s load fits in the spare capacity of the other in-service hosts of its
/// cluster. The error says what is spare and what is needed.
pub fn can_absorb(host: &HostCapacity, inventory: &[HostCapacity]) -> Result<(), String> {
    if host.load_cpus <= 0.0 && host.load_memory_mib <= 0.0 {
        return Ok(());
    }
    let others: Vec<&HostCapacity> = inventory
        .iter()
        .filter(|h| h.hostname != host.hostname && h.cluster == host.cluster && h.in_service)
        .collect();
    let cluster = host.cluster.as_deref().unwrap_or("(none)");
    if others.is_empty() {
        return Err(format!(
            "no other in-service host in cluster {cluster} can take the load of {}",
            host.hostname
        ));
    }
    let spare_cpus: f64 = others
        .iter()
        .map(|h| (h.capacity_cpus - h.load_cpus).max(0.0))
        .sum();
    let spare_memory: f64 = others
        .iter()
        .map(|h| (h.capacity_memory_mib - h.load_memory_mib).max(0.0))
        .sum();
    if host.load_cpus <= spare_cpus && host.load_memory_mib <= spare_memory {
        Ok(())
    } else {
        Err(format!(
            "{} needs {:.1} CPUs and {:.0} MiB; the other in-service hosts of cluster {cluster} \
             have {:.1} CPUs and {:.0} MiB spare together",
            host.hostname, host.load_cpus, host.load_memory_mib, spare_cpus, spare_memory
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(name: &str, capacity: f64, load: f64) -> HostCapacity {
        HostCapacity {
            hostname: name.into(),
            cluster: Some("c1".into()),
            capacity_cpus: capacity,
            capacity_memory_mib: capacity * 1024.0,
            load_cpus: load,
            load_memory_mib: load * 1024.0,
            in_service: true,
        }
    }

    #[test]
    fn the_load_must_fit_in_the_others_spare_capacity_together() {
        let inventory = [
            host("a", 4.0, 3.0),
            host("b", 4.0, 2.0),
            host("c", 4.0, 2.0),
        ];
        // a's 3 CPUs fit in b's 2 spare and c's 2 spare together, not in either alone.
        assert_eq!(can_absorb(&inventory[0], &inventory), Ok(()));
        let inventory = [
            host("a", 4.0, 4.0),
            host("b", 4.0, 2.0),
            host("c", 4.0, 3.0),
        ];
        let err = can_absorb(&inventory[0], &inventory).unwrap_err();
        assert!(
            err.contains("needs 4.0 CPUs") && err.contains("have 3.0 CPUs"),
            "{err}"
        );
    }

    #[test]
    fn hosts_out_of_service_or_in_other_clusters_do_not_count() {
        let mut locked = host("b", 8.0, 0.0);
        locked.in_service = false;
        let mut elsewhere = host("c", 8.0, 0.0);
        elsewhere.cluster = Some("c2".into());
        let inventory = [host("a", 4.0, 1.0), locked, elsewhere];
        let err = can_absorb(&inventory[0], &inventory).unwrap_err();
        assert!(
            err.starts_with("no other in-service host in cluster c1"),
            "{err}"
        );
    }

    #[test]
    fn an_idle_host_always_passes() {
        let inventory = [host("a", 4.0, 0.0)];
        assert_eq!(can_absorb(&inventory[0], &inventory), Ok(()));
    }

    proptest! {
        #[test]
        fn more_spare_capacity_never_turns_a_pass_into_a_refusal(load in 0.0f64..8.0, loads in proptest::collection::vec(0.0f64..8.0, 1..5), extra in 0.0f64..4.0) {
            let mut inventory = vec![host("h", 8.0, load)];
            inventory.extend(loads.iter().enumerate().map(|(i, l)| host(&format!("o{i}"), 8.0, *l)));
            let before = can_absorb(&inventory[0], &inventory).is_ok();
            for other in inventory.iter_mut().skip(1) {
                other.capacity_cpus += extra;
                other.capacity_memory_mib += extra * 1024.0;
            }
            let after = can_absorb(&inventory[0], &inventory).is_ok();
            prop_assert!(!before || after);
        }
    }
}
