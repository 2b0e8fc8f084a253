//! Planning a rolling maintenance: which hosts, in which order, in which stage.
//!
//! Hosts are grouped by cluster, clusters in name order (hosts without a cluster last), hosts in
//! name order within a cluster, and each cluster's hosts cut into stages of at most
//! `max_parallel` hosts; stages are numbered from 1 across clusters, so one cluster is worked
//! on at a time. Deterministic: the same inventory and options always give the same plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The hosts a rolling maintenance covers: exactly one kind of scope.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Hosts(Vec<String>),
    Clusters(Vec<String>),
    Pods(Vec<String>),
    Zones(Vec<String>),
}

impl Scope {
    /// Builds the scope from the four optional lists; exactly one must be given and non-empty.
    pub fn from_options(
        hosts: Option<Vec<String>>,
        clusters: Option<Vec<String>>,
        pods: Option<Vec<String>>,
        zones: Option<Vec<String>>,
    ) -> Result<Scope, ValidationError> {
        let given: Vec<Scope> = [
            hosts.map(Scope::Hosts),
            clusters.map(Scope::Clusters),
            pods.map(Scope::Pods),
            zones.map(Scope::Zones),
        ]
        .into_iter()
        .flatten()
        .collect();
        let [scope] = <[Scope; 1]>::try_from(given).map_err(|_| {
            ValidationError::new(
                "scope",
                "give exactly one of hosts, clusters, pods or zones",
            )
        })?;
        if scope.names().is_empty() {
            return Err(ValidationError::new(
                scope.field(),
                "must name at least one",
            ));
        }
        Ok(scope)
    }

    pub fn field(&self) -> &'static str {
        match self {
            Scope::Hosts(_) => "hosts",
            Scope::Clusters(_) => "clusters",
            Scope::Pods(_) => "pods",
            Scope::Zones(_) => "zones",
        }
    }

    pub fn names(&self) -> &[String] {
        match self {
            Scope::Hosts(n) | Scope::Clusters(n) | Scope::Pods(n) | Scope::Zones(n) => n,
        }
    }
}

/// What the planner needs to know of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryHost {
    pub hostname: String,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    /// Why the host cannot be maintained now (offline, locked), if it cannot.
    pub unfit: Option<String>,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub target: String,
    pub stage: u32,
    pub cluster: Option<String>,
    /// Set when the step is skipped from the start, with the reason.
    pub skipped: Option<String>,
}

/// PreFlight runs on this many hosts at once when the operator does not say: it takes no host
/// out of service, so `max-parallel-hosts` (how many hosts may be down together) does not bound
/// it, but a bound keeps a big fleet's sweep from hitting shared services (and the controller)
/// with thousands of hooks at once.
pub const DEFAULT_MAX_PARALLEL_PREFLIGHT: u32 = 100;

/// How many hosts run PreFlight at once: as asked (at least 1), else the default or
/// `max_parallel`, whichever is more.
pub fn preflight_parallelism(
    requested: Option<u32>,
    max_parallel: u32,
) -> Result<u32, ValidationError> {
    match requested {
        Some(0) => Err(ValidationError::new(
            "max_parallel_preflight",
            "must be at least 1",
        )),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_MAX_PARALLEL_PREFLIGHT.max(max_parallel)),
    }
}

/// How many hosts a stored strategy sweeps at once: its PreFlight parallelism, or
/// `max_parallel` for a strategy stored before it had one.
pub fn sweep_parallelism(preflight: Option<u32>, max_parallel: u32) -> usize {
    preflight.unwrap_or(max_parallel) as usize
}

/// Resolves the scope against the inventory and orders the hosts into stages.
///
/// Unknown names are refused, all of them named. A host that is unfit (offline, locked) is
/// refused unless `forced`, in which case its step is planned as skipped with the reason.
pub fn plan_rolling_maintenance(
    inventory: &[InventoryHost],
    scope: &Scope,
    max_parallel: u32,
    forced: bool,
) -> Result<Vec<PlannedStep>, ValidationError> {
    if max_parallel < 1 {
        return Err(ValidationError::new(
            "max_parallel_hosts",
            "must be at least 1",
        ));
    }
    let field = scope.field();
    let key = |host: &InventoryHost| -> Option<String> {
        match scope {
            Scope::Hosts(_) => Some(host.hostname.clone()),
            Scope::Clusters(_) => host.cluster.clone(),
            Scope::Pods(_) => host.pod.clone(),
            Scope::Zones(_) => host.zone.clone(),
        }
    };
    let wanted: BTreeSet<&str> = scope.names().iter().map(String::as_str).collect();
    let known: BTreeSet<String> = inventory.iter().filter_map(key).collect();
    let unknown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| !known.contains(*n))
        .collect();
    if !unknown.is_empty() {
        let what = &field[..field.len() - 1];
        return Err(ValidationError::new(
            field,
            format!("unknown {what} {}", quoted(&unknown)),
        ));
    }

    let in_scope: Vec<&InventoryHost> = inventory
        .iter()
        .filter(|h| key(h).is_some_and(|k| wanted.contains(k.as_str())))
        .collect();
    if !forced {
        let unfit: Vec<String> = in_scope
            .iter()
            .filter_map(|h| {
                h.unfit
                    .as_ref()
                    .map(|why| format!("{} is {why}", h.hostname))
            })
            .collect();
        if !unfit.is_empty() {
            return Err(ValidationError::new(
                field,
                format!(
                    "{}; bring them back, leave them out of the scope, or use forced",
                    unfit.join(", ")
                ),
            ));
        }
    }

    // BTreeMap orders clusters by name; None (no cluster) sorts first, so move it last.
    let mut by_cluster: BTreeMap<Option<&str>, Vec<&InventoryHost>> = BTreeMap::new();
    for host in in_scope {
        by_cluster
            .entry(host.cluster.as_deref())
            .or_default()
            .push(host);
    }
    let mut groups: Vec<(Option<&str>, Vec<&InventoryHost>)> = by_cluster.into_iter().collect();
    let unclustered_first = groups.first().is_some_and(|(c, _)| c.is_none());
    groups.rotate_left(usize::from(unclustered_first));

    let mut steps = Vec::new();
    let mut stage = 0u32;
    for (cluster, mut hosts) in groups {
        hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        for chunk in hosts.chunks(max_parallel as usize) {
            stage += 1;
            for host in chunk {
                steps.push(PlannedStep {
                    target: host.hostname.clone(),
                    stage,
                    cluster: cluster.map(str::to_string),
                    skipped: host
                        .unfit
                        .as_ref()
                        .map(|why| format!("Host {} is {why}", host.hostname)),
                });
            }
        }
    }
    Ok(steps)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(name: &str, cluster: Option<&str>) -> InventoryHost {
        InventoryHost {
            hostname: name.into(),
            zone: Some("zone-a".into()),
            pod: Some("pod-1".into()),
            cluster: cluster.map(Into::into),
            unfit: None,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exactly_one_scope() {
        let err = Scope::from_options(None, None, None, None).unwrap_err();
        assert_eq!(err.field, "scope");
        let err =
            Scope::from_options(Some(names(&["a"])), Some(names(&["c"])), None, None).unwrap_err();
        assert_eq!(err.field, "scope");
        let err = Scope::from_options(Some(vec![]), None, None, None).unwrap_err();
        assert_eq!(err.to_string(), "hosts: must name at least one");
        assert_eq!(
            Scope::from_options(None, None, Some(names(&["p"])), None).unwrap(),
            Scope::Pods(names(&["p"]))
        );
    }

    #[test]
    fn clusters_then_hosts_in_name_order_in_stages_per_cluster() {
        let inventory = [
            host("w3", Some("beta")),
            host("w1", Some("beta")),
            host("w2", Some("alpha")),
            host("w0", None),
            host("w4", Some("beta")),
        ];
        let plan =
            plan_rolling_maintenance(&inventory, &Scope::Zones(names(&["zone-a"])), 2, false)
                .unwrap();
        let got: Vec<(&str, u32, Option<&str>)> = plan
            .iter()
            .map(|s| (s.target.as_str(), s.stage, s.cluster.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("w2", 1, Some("alpha")),
                ("w1", 2, Some("beta")),
                ("w3", 2, Some("beta")),
                ("w4", 3, Some("beta")),
                ("w0", 4, None),
            ]
        );
    }

    #[test]
    fn unknown_names_are_refused_all_of_them() {
        let inventory = [host("w1", Some("c1"))];
        let err = plan_rolling_maintenance(
            &inventory,
            &Scope::Hosts(names(&["w9", "w1", "w8"])),
            1,
            false,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), r#"hosts: unknown host "w8", "w9""#);
        let err = plan_rolling_maintenance(&inventory, &Scope::Clusters(names(&["c2"])), 1, false)
            .unwrap_err();
        assert_eq!(err.to_string(), r#"clusters: unknown cluster "c2""#);
    }

    #[test]
    fn unfit_hosts_are_refused_unless_forced() {
        let mut offline = host("w2", Some("c1"));
        offline.unfit = Some("offline".into());
        let inventory = [host("w1", Some("c1")), offline];
        let scope = Scope::Clusters(names(&["c1"]));
        let err = plan_rolling_maintenance(&inventory, &scope, 1, false).unwrap_err();
        assert!(err.reason.starts_with("w2 is offline"), "{err}");
        let plan = plan_rolling_maintenance(&inventory, &scope, 1, true).unwrap();
        assert_eq!(plan[1].skipped.as_deref(), Some("Host w2 is offline"));
        assert_eq!(plan[0].skipped, None);
    }

    #[test]
    fn max_parallel_must_be_positive() {
        let err =
            plan_rolling_maintenance(&[host("w1", None)], &Scope::Hosts(names(&["w1"])), 0, false)
                .unwrap_err();
        assert_eq!(err.field, "max_parallel_hosts");
    }

    #[test]
    fn preflight_runs_wide_unless_told_otherwise() {
        assert_eq!(
            preflight_parallelism(None, 1),
            Ok(DEFAULT_MAX_PARALLEL_PREFLIGHT)
        );
        assert_eq!(preflight_parallelism(None, 500), Ok(500));
        assert_eq!(preflight_parallelism(Some(3), 20), Ok(3));
        let err = preflight_parallelism(Some(0), 1).unwrap_err();
        assert_eq!(err.field, "max_parallel_preflight");
        // What is stored is what sweeps, even below max-parallel-hosts; older strategies sweep
        // at max-parallel-hosts.
        assert_eq!(sweep_parallelism(Some(3), 20), 3);
        assert_eq!(sweep_parallelism(None, 20), 20);
    }

    proptest! {
        #[test]
        fn stages_never_exceed_max_parallel_nor_mix_clusters(
            hosts in proptest::collection::btree_map("[a-z]{1,6}", proptest::option::of(0u8..4), 1..30),
            max_parallel in 1u32..6,
        ) {
            let inventory: Vec<InventoryHost> = hosts
                .iter()
                .map(|(name, c)| host(name, c.map(|c| ["c0", "c1", "c2", "c3"][c as usize])))
                .collect();
            let plan = plan_rolling_maintenance(&inventory, &Scope::Zones(names(&["zone-a"])), max_parallel, false).unwrap();
            prop_assert_eq!(plan.len(), inventory.len());
            let mut stage_sizes: BTreeMap<u32, (usize, Option<String>)> = BTreeMap::new();
            for step in &plan {
                let entry = stage_sizes.entry(step.stage).or_insert((0, step.cluster.clone()));
                entry.0 += 1;
                prop_assert_eq!(&entry.1, &step.cluster);
            }
            for (size, _) in stage_sizes.values() {
                prop_assert!(*size <= max_parallel as usize);
            }
            // Stages are numbered 1..=n without gaps, in plan order.
            let stages: Vec<u32> = plan.iter().map(|s| s.stage).collect();
            prop_assert!(stages.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1));
            prop_assert_eq!(stages[0], 1);
            // Planning twice gives the same plan.
            let again = plan_rolling_maintenance(&inventory, &Scope::Zones(names(&["zone-a"])), max_parallel, false).unwrap();
            prop_assert_eq!(plan, again);
        }
    }
}
