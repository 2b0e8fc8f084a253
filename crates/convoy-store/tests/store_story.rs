//! One story through every Store method, run against a fresh SQLite file. A later backend
//! (PostgreSQL) runs the same story.

use convoy_core::command::CommandKind;
use convoy_core::host::{Administrative, HostFacts, Personality};
use convoy_core::role::Role;
use convoy_core::strategy::{StrategyKind, StrategyState};
use convoy_store::{
    AlarmRecord, CommandCompletion, CommandRecord, EnrolAuthority, HostEffects, HostEnrolToken,
    HostEnrolment, PhaseRecord, SqliteStore, StepBatch, StepRecord, StepWrite, Store, StoreError,
    StrategyRecord, UserDeletion, UserRecord,
};
use jiff::{SignedDuration, Timestamp};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn facts(load: f64) -> HostFacts {
    HostFacts {
        capacity_cpus: 8,
        capacity_memory_mib: 16384,
        load_cpus: load,
        load_memory_mib: 512,
        boot_id: "boot-1".into(),
        os: "Debian".into(),
        agent_version: "0.1.0".into(),
        state_fs_free_bytes: 1 << 40,
        maintenance: false,
        software: Default::default(),
        instances: vec!["vm-a".into()],
    }
}

async fn in_maintenance(store: &dyn Store, hostname: &str) -> bool {
    store
        .host(hostname)
        .await
        .unwrap()
        .unwrap()
        .facts
        .maintenance
}

async fn story(store: &dyn Store) {
    // Users and tokens.
    let admin = UserRecord {
        name: "admin".into(),
        role: Role::Admin,
        password_hash: "$argon2id$x".into(),
        created_at: at(0),
    };
    store.insert_user(&admin).await.unwrap();
    assert!(matches!(
        store.insert_user(&admin).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.user("admin").await.unwrap(), Some(admin.clone()));
    assert_eq!(store.user("nobody").await.unwrap(), None);
    store
        .insert_token("h1", "admin", at(0), at(10))
        .await
        .unwrap();
    store
        .insert_token("h2", "admin", at(0), at(100))
        .await
        .unwrap();
    let owner = store.token_owner("h1").await.unwrap().unwrap();
    assert_eq!(
        (owner.user.name.as_str(), owner.expires_at),
        ("admin", at(10))
    );
    store
        .insert_token("h3", "admin", at(0), at(100))
        .await
        .unwrap();
    assert!(store.revoke_token("h3").await.unwrap());
    assert!(!store.revoke_token("h3").await.unwrap());
    assert!(store.token_owner("h3").await.unwrap().is_none());
    assert_eq!(store.purge_expired_tokens(at(50)).await.unwrap(), 1);
    assert!(store.token_owner("h1").await.unwrap().is_none());
    assert!(store.token_owner("h2").await.unwrap().is_some());

    // Hosts: enrol, heartbeat, lock, re-enrol keeps the administrative state.
    let enrolment = HostEnrolment {
        authority: EnrolAuthority::SiteToken,
        hostname: "worker-0".into(),
        personality: Personality::Worker,
        zone: Some("z".into()),
        pod: None,
        cluster: Some("c".into()),
        credential_hash: "cred-1".into(),
        facts: facts(0.5),
        now: at(1),
    };
    let host = store.enrol_host(&enrolment).await.unwrap();
    assert_eq!(host.administrative, Administrative::Unlocked);
    assert_eq!(host.last_seen, Some(at(1)));
    store
        .record_heartbeat("worker-0", &facts(1.5), at(2))
        .await
        .unwrap();
    let host = store.host_by_credential("cred-1").await.unwrap().unwrap();
    assert_eq!((host.facts.load_cpus, host.last_seen), (1.5, Some(at(2))));
    let locked = store
        .set_administrative("worker-0", Administrative::Locked, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(locked.administrative, Administrative::Locked);
    assert!(
        store
            .set_administrative("nope", Administrative::Locked, None)
            .await
            .unwrap()
            .is_none()
    );
    // The site token never takes over a known host; a per-host token must be its own,
    // unexpired and unused, and is used up by the enrolment.
    let takeover = HostEnrolment {
        credential_hash: "cred-evil".into(),
        now: at(5),
        ..enrolment.clone()
    };
    assert!(matches!(
        store.enrol_host(&takeover).await,
        Err(StoreError::Conflict { .. })
    ));
    let token = |hash: &str, hostname: &str, expires: i64| HostEnrolToken {
        token_hash: hash.into(),
        hostname: hostname.into(),
        created_at: at(0),
        expires_at: at(expires),
        created_by: "admin".into(),
    };
    let with_token = |hash: &str| HostEnrolment {
        authority: EnrolAuthority::HostToken {
            token_hash: hash.into(),
        },
        credential_hash: "cred-2".into(),
        now: at(5),
        ..enrolment.clone()
    };
    store
        .insert_host_enrol_token(&token("t-other", "worker-9", 100))
        .await
        .unwrap();
    store
        .insert_host_enrol_token(&token("t-old", "worker-0", 4))
        .await
        .unwrap();
    for refused in ["t-other", "t-old", "t-unknown"] {
        assert!(
            matches!(
                store.enrol_host(&with_token(refused)).await,
                Err(StoreError::Refused { .. })
            ),
            "{refused}"
        );
    }
    assert!(store.host_by_credential("cred-1").await.unwrap().is_some());
    // A new token for the host replaces its unused earlier one.
    store
        .insert_host_enrol_token(&token("t-1", "worker-0", 100))
        .await
        .unwrap();
    let again = store.enrol_host(&with_token("t-1")).await.unwrap();
    assert!(matches!(
        store.enrol_host(&with_token("t-1")).await,
        Err(StoreError::Refused { .. })
    ));
    assert_eq!(again.administrative, Administrative::Locked);
    assert_eq!(again.enrolled_at, at(1));
    assert!(store.host_by_credential("cred-1").await.unwrap().is_none());

    // A host's cluster: it and the hosts that share its cluster, none of another, nothing for
    // an unknown host; hosts without a cluster share "none".
    for (name, cluster) in [
        ("worker-1", Some("c")),
        ("other", Some("d")),
        ("loner", None),
    ] {
        store
            .enrol_host(&HostEnrolment {
                hostname: name.into(),
                cluster: cluster.map(String::from),
                credential_hash: format!("cred-{name}"),
                ..enrolment.clone()
            })
            .await
            .unwrap();
    }
    let names = |hosts: Vec<convoy_store::HostRecord>| -> Vec<String> {
        hosts.into_iter().map(|h| h.hostname).collect()
    };
    assert_eq!(
        names(store.cluster_of("worker-1").await.unwrap()),
        ["worker-0", "worker-1"]
    );
    assert_eq!(names(store.cluster_of("loner").await.unwrap()), ["loner"]);
    assert!(store.cluster_of("nope").await.unwrap().is_empty());

    // Commands: delivered once, again only after the redelivery delay, completed once.
    let command = CommandRecord {
        id: "c1".into(),
        hostname: "worker-0".into(),
        kind: CommandKind::Ping,
        payload: "null".into(),
        created_at: at(10),
        dispatched_at: None,
        dispatched_session: None,
        completed_at: None,
        outcome: None,
    };
    store.insert_command(&command).await.unwrap();
    let again_after = SignedDuration::from_secs(30);
    let first = store
        .dispatch_due_commands("worker-0", "s1", at(11), again_after)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].dispatched_at, Some(at(11)));
    assert!(
        store
            .dispatch_due_commands("worker-0", "s1", at(20), again_after)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .dispatch_due_commands("worker-0", "s1", at(41), again_after)
            .await
            .unwrap()
            .len(),
        1
    );
    // The first outcome brings its effects on the host with it; a repeat brings none.
    let installed = convoy_core::patch::HostSoftware {
        release: Some("25.09".parse().unwrap()),
        ..Default::default()
    };
    let effects = |kind: CommandKind| {
        assert_eq!(kind, CommandKind::Ping);
        HostEffects {
            maintenance: Some(true),
            software: Some(installed.clone()),
            clear_interim: true,
        }
    };
    let done = store
        .complete_command("worker-0", "c1", r#"{"first":true}"#, at(42), &effects)
        .await
        .unwrap()
        .unwrap();
    assert!(done.first);
    let done = done.command;
    assert_eq!(done.outcome.as_deref(), Some(r#"{"first":true}"#));
    let host = store.host("worker-0").await.unwrap().unwrap();
    assert!(host.facts.maintenance);
    assert_eq!(host.facts.software, installed);
    let undo = |_: CommandKind| HostEffects {
        maintenance: Some(false),
        ..Default::default()
    };
    let repeat = store
        .complete_command("worker-0", "c1", r#"{"second":true}"#, at(43), &undo)
        .await
        .unwrap()
        .unwrap();
    assert!(!repeat.first);
    let repeat = repeat.command;
    assert_eq!(repeat.outcome.as_deref(), Some(r#"{"first":true}"#));
    assert_eq!(repeat.completed_at, Some(at(42)));
    assert!(in_maintenance(store, "worker-0").await);
    assert!(
        store
            .complete_command("other", "c1", "{}", at(44), &undo)
            .await
            .unwrap()
            .is_none()
    );
    // A new run of the agent (session s2) gets an unfinished command at once.
    let command2 = CommandRecord {
        id: "c2".into(),
        ..command.clone()
    };
    store.insert_command(&command2).await.unwrap();
    let to_s1 = store
        .dispatch_due_commands("worker-0", "s1", at(50), again_after)
        .await
        .unwrap();
    assert_eq!(to_s1.len(), 1);
    let to_s2 = store
        .dispatch_due_commands("worker-0", "s2", at(51), again_after)
        .await
        .unwrap();
    assert_eq!(to_s2[0].dispatched_session.as_deref(), Some("s2"));
    store
        .complete_command("worker-0", "c2", "{}", at(52), &|_| HostEffects::default())
        .await
        .unwrap();
    assert!(
        store
            .dispatch_due_commands("worker-0", "s1", at(100), again_after)
            .await
            .unwrap()
            .is_empty()
    );

    // Maintenance comes from the agent's confirmation (c1's), not from heartbeats.
    store
        .record_heartbeat("worker-0", &facts(0.1), at(60))
        .await
        .unwrap();
    assert!(in_maintenance(store, "worker-0").await);
    let leave = CommandRecord {
        id: "c3".into(),
        kind: CommandKind::ExitMaintenance,
        ..command.clone()
    };
    store.insert_command(&leave).await.unwrap();
    store
        .complete_command("worker-0", "c3", "{}", at(61), &|_| HostEffects {
            maintenance: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();

    strategy_story(store).await;
    alarm_story(store).await;

    // The active controller: set from nothing, then only from what it was.
    assert_eq!(store.active_controller().await.unwrap(), None);
    assert!(
        store
            .set_active_controller(None, "controller-1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_active_controller(None, "controller-0")
            .await
            .unwrap()
    );
    assert!(
        store
            .set_active_controller(Some("controller-1"), "controller-0")
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_controller().await.unwrap().as_deref(),
        Some("controller-0")
    );

    // Deleting a host forgets its commands and clears its alarms (not another host's whose
    // name starts the same); deleting a user forgets their tokens.
    for (uuid, entity) in [
        ("d1", "host=worker-0"),
        ("d2", "host=worker-0.disk=sda"),
        ("d3", "host=worker-01"),
    ] {
        store
            .raise_alarm(&AlarmRecord {
                uuid: uuid.into(),
                alarm_id: "100.101".into(),
                entity: entity.into(),
                severity: convoy_core::alarm::Severity::Minor,
                reason: "r".into(),
                mgmt_affecting: false,
                raised_at: at(90),
                source: "agent".into(),
            })
            .await
            .unwrap();
    }
    assert!(store.delete_host("worker-0", at(95)).await.unwrap());
    assert!(!store.delete_host("worker-0", at(96)).await.unwrap());
    let left: Vec<String> = store
        .alarms()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.entity)
        .collect();
    assert_eq!(left, ["host=worker-01"]);
    let last = &store.alarm_events(2).await.unwrap();
    assert!(
        last.iter()
            .all(|e| (e.state.as_str(), e.by.as_str(), e.at) == ("clear", "convoy", at(95)))
    );
    assert!(store.command("c1").await.unwrap().is_none());
    assert_eq!(
        store.delete_user("admin").await.unwrap(),
        UserDeletion::LastAdmin
    );
    let successor = UserRecord {
        name: "successor".into(),
        ..admin
    };
    store.insert_user(&successor).await.unwrap();
    assert_eq!(
        store.delete_user("admin").await.unwrap(),
        UserDeletion::Deleted
    );
    assert_eq!(
        store.delete_user("admin").await.unwrap(),
        UserDeletion::NotFound
    );
    assert!(store.token_owner("h2").await.unwrap().is_none());
    assert_eq!(
        store.delete_user("successor").await.unwrap(),
        UserDeletion::LastAdmin
    );
}

/// Two admins, the only ones, deleting each other at once: one deletion wins, the other is
/// refused, whatever the interleaving. Each survivor is one of the next pair.
async fn last_admin_story(store: &dyn Store) {
    let admin = |name: &str| UserRecord {
        name: name.into(),
        role: Role::Admin,
        password_hash: "$argon2id$x".into(),
        created_at: at(0),
    };
    let mut survivor = "first".to_string();
    store.insert_user(&admin(&survivor)).await.unwrap();
    for pair in 0..5 {
        let other = format!("admin-{pair}");
        store.insert_user(&admin(&other)).await.unwrap();
        let (one, two) = tokio::join!(store.delete_user(&other), store.delete_user(&survivor));
        let mut outcomes = [one.unwrap(), two.unwrap()];
        outcomes.sort_by_key(|o| *o != UserDeletion::Deleted);
        assert_eq!(
            outcomes,
            [UserDeletion::Deleted, UserDeletion::LastAdmin],
            "pair {pair}"
        );
        let admins = store.users().await.unwrap();
        assert_eq!(admins.len(), 1, "pair {pair}: {admins:?}");
        survivor = admins[0].name.clone();
    }
}

async fn alarm_story(store: &dyn Store) {
    use convoy_core::alarm::Severity;
    let disk = AlarmRecord {
        uuid: "u1".into(),
        alarm_id: "100.101".into(),
        entity: "host=worker-0".into(),
        severity: Severity::Major,
        reason: "disk 91% full".into(),
        mgmt_affecting: true,
        raised_at: at(70),
        source: "agent".into(),
    };
    let (raised, changed) = store.raise_alarm(&disk).await.unwrap();
    assert!(changed);
    assert_eq!(raised, disk);
    // The same again changes nothing; a new reason updates the one alarm, keeping its uuid.
    let again = AlarmRecord {
        uuid: "u2".into(),
        raised_at: at(71),
        ..disk.clone()
    };
    assert_eq!(
        store.raise_alarm(&again).await.unwrap(),
        (disk.clone(), false)
    );
    let worse = AlarmRecord {
        reason: "disk 99% full".into(),
        severity: Severity::Critical,
        ..again
    };
    let (updated, changed) = store.raise_alarm(&worse).await.unwrap();
    assert!(changed);
    assert_eq!((updated.uuid.as_str(), updated.raised_at), ("u1", at(70)));
    assert_eq!(
        store.alarms().await.unwrap(),
        std::slice::from_ref(&updated)
    );
    assert_eq!(store.alarm("u1").await.unwrap(), Some(updated.clone()));

    let cleared = store
        .clear_alarm("100.101", "host=worker-0", at(80), "operator")
        .await
        .unwrap();
    assert_eq!(cleared, Some(updated));
    assert!(
        store
            .clear_alarm("100.101", "host=worker-0", at(81), "operator")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.alarms().await.unwrap().is_empty());
    // History, newest first: set, set (updated), clear.
    let events = store.alarm_events(10).await.unwrap();
    let states: Vec<(&str, &str, Timestamp)> = events
        .iter()
        .map(|e| (e.state.as_str(), e.by.as_str(), e.at))
        .collect();
    assert_eq!(
        states,
        [
            ("clear", "operator", at(80)),
            ("set", "agent", at(71)),
            ("set", "agent", at(70))
        ]
    );
    assert_eq!(events[0].alarm.reason, "disk 99% full");
    assert_eq!(store.alarm_events(1).await.unwrap().len(), 1);
}

async fn strategy_story(store: &dyn Store) {
    let strategy = StrategyRecord {
        id: "s1".into(),
        kind: StrategyKind::RollingMaintenance,
        state: StrategyState::Initial,
        max_parallel: 2,
        stop_on_failure: true,
        options: "{}".into(),
        stop_at_stage: None,
        details: String::new(),
        created_at: at(100),
        updated_at: at(100),
    };
    let step = |target: &str, position: u32| StepRecord {
        target: target.into(),
        position,
        stage: 1,
        group: Some("c".into()),
        state: "initial".into(),
        swept: false,
        details: String::new(),
        pending_end: None,
        command_id: None,
        phase_started_at: None,
        started_at: None,
        finished_at: None,
        created_at: at(100),
        updated_at: at(100),
    };
    store
        .create_strategy(&strategy, &[step("worker-0", 0), step("b", 1)])
        .await
        .unwrap();
    // One strategy at a time.
    let second = StrategyRecord {
        id: "s2".into(),
        ..strategy.clone()
    };
    let err = store.create_strategy(&second, &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "a rolling-maintenance strategy (state initial) already exists"
    );
    assert_eq!(store.strategy().await.unwrap(), Some(strategy.clone()));
    let targets: Vec<String> = store
        .steps("s1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(targets, ["worker-0", "b"]);

    // State changes are compare-and-set.
    assert!(
        store
            .set_strategy_state(
                "s1",
                StrategyState::Initial,
                StrategyState::Applying,
                "",
                at(101)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_strategy_state(
                "s1",
                StrategyState::Initial,
                StrategyState::Applying,
                "",
                at(102)
            )
            .await
            .unwrap()
    );

    // A step's change, its phases and its command are written together.
    let mut running = step("worker-0", 0);
    running.state = "pre-flight".into();
    running.command_id = Some("c9".into());
    running.phase_started_at = Some(at(103));
    let phase = PhaseRecord {
        target: "worker-0".into(),
        phase: "pre-flight".into(),
        started_at: at(103),
        finished_at: None,
        result: None,
        details: String::new(),
        output: "null".into(),
    };
    let command = CommandRecord {
        id: "c9".into(),
        hostname: "worker-0".into(),
        kind: CommandKind::RunHook,
        payload: r#"{"stage":"PreFlight","args":[],"timeout_seconds":5}"#.into(),
        created_at: at(103),
        dispatched_at: None,
        dispatched_session: None,
        completed_at: None,
        outcome: None,
    };
    store
        .write_steps(
            "s1",
            &StepBatch {
                subclouds: vec![],
                completions: vec![],
                steps: vec![StepWrite {
                    step: running.clone(),
                    finished_phase: None,
                    started_phase: Some(phase.clone()),
                    command: Some(command.clone()),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(store.steps("s1").await.unwrap()[0], running);
    assert_eq!(
        store.phases("s1", None).await.unwrap(),
        std::slice::from_ref(&phase)
    );
    assert_eq!(
        store.phases("s1", Some("worker-0")).await.unwrap(),
        std::slice::from_ref(&phase)
    );
    assert!(store.phases("s1", Some("b")).await.unwrap().is_empty());
    assert_eq!(
        store.command("c9").await.unwrap().unwrap().payload,
        command.payload
    );
    // A batch that fails (its second command exists) changes nothing, not even its first
    // write.
    let mut later = running.clone();
    later.state = "check-script".into();
    let mut other = step("b", 1);
    other.state = "pre-flight".into();
    let fresh = CommandRecord {
        id: "c10".into(),
        ..command.clone()
    };
    let steps = vec![
        StepWrite {
            step: other,
            finished_phase: None,
            started_phase: None,
            command: Some(fresh),
        },
        StepWrite {
            step: later,
            finished_phase: None,
            started_phase: None,
            command: Some(command.clone()),
        },
    ];
    let batch = StepBatch {
        subclouds: vec![],
        completions: vec![],
        steps,
    };
    assert!(store.write_steps("s1", &batch).await.is_err());
    assert_eq!(store.steps("s1").await.unwrap()[1].state, "initial");
    assert!(store.command("c10").await.unwrap().is_none());
    assert_eq!(store.steps("s1").await.unwrap()[0].state, "pre-flight");

    // A tick's outcomes are recorded with the changes they cause, the first outcome of a
    // command stays, and a confirmed maintenance state reaches the host.
    let completion = |outcome: &str, at_ms| CommandCompletion {
        id: "c9".into(),
        hostname: "worker-0".into(),
        outcome: outcome.into(),
        completed_at: at(at_ms),
        effects: HostEffects {
            maintenance: Some(true),
            ..HostEffects::default()
        },
    };
    let mut swept = running.clone();
    swept.state = "initial".into();
    swept.swept = true;
    swept.command_id = None;
    for (outcome, at_ms) in [(r#"{"first":true}"#, 104), (r#"{"second":true}"#, 105)] {
        store
            .write_steps(
                "s1",
                &StepBatch {
                    subclouds: vec![],
                    completions: vec![completion(outcome, at_ms)],
                    steps: vec![StepWrite {
                        step: swept.clone(),
                        finished_phase: None,
                        started_phase: None,
                        command: None,
                    }],
                },
            )
            .await
            .unwrap();
    }
    let c9 = store.command("c9").await.unwrap().unwrap();
    assert_eq!(c9.outcome.as_deref(), Some(r#"{"first":true}"#));
    assert_eq!(c9.completed_at, Some(at(104)));
    assert_eq!(store.steps("s1").await.unwrap()[0], swept);
    assert!(in_maintenance(store, "worker-0").await);

    // Clusters: disabled by a strategy, enabled again only for it.
    store.disable_cluster("c", "s1", at(104)).await.unwrap();
    store.disable_cluster("c", "other", at(105)).await.unwrap();
    let clusters = store.clusters().await.unwrap();
    assert!(!clusters[0].enabled);
    assert_eq!(clusters[0].disabled_by.as_deref(), Some("s1"));
    assert!(
        store
            .enable_clusters("other", None, at(106))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .enable_clusters("s1", Some("c"), at(107))
            .await
            .unwrap(),
        ["c"]
    );
    assert!(store.clusters().await.unwrap()[0].enabled);

    assert!(store.delete_strategy("s1").await.unwrap());
    assert!(store.strategy().await.unwrap().is_none());
    assert!(store.steps("s1").await.unwrap().is_empty());
    assert!(store.phases("s1", None).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_store_story() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("convoy.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    // Hashes of passwords and tokens live in it: its owner's only, WAL included.
    for name in ["convoy.db", "convoy.db-wal"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
    story(&store).await;
    // Reopening runs no migration twice and keeps the data.
    drop(store);
    let reopened = SqliteStore::open(&url).await.unwrap();
    assert_eq!(reopened.users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_keeps_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("convoy.db").display());
    last_admin_story(&SqliteStore::open(&url).await.unwrap()).await;
}

/// An outcome and its effects on the host are one transaction: when writing the effects
/// fails (here a trigger refuses the host's update, as a crash would cut it off), the
/// outcome is not recorded either, so the agent's retry applies both.
#[tokio::test]
async fn an_outcome_is_recorded_with_its_host_effects_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("convoy.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store
        .enrol_host(&HostEnrolment {
            authority: EnrolAuthority::SiteToken,
            hostname: "worker-0".into(),
            personality: Personality::Worker,
            zone: None,
            pod: None,
            cluster: None,
            credential_hash: "cred-1".into(),
            facts: facts(0.5),
            now: at(0),
        })
        .await
        .unwrap();
    let command = CommandRecord {
        id: "c1".into(),
        hostname: "worker-0".into(),
        kind: CommandKind::EnterMaintenance,
        payload: "{}".into(),
        created_at: at(0),
        dispatched_at: None,
        dispatched_session: None,
        completed_at: None,
        outcome: None,
    };
    store.insert_command(&command).await.unwrap();

    let side_door = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER cut_off BEFORE UPDATE OF maintenance ON hosts \
         BEGIN SELECT RAISE(ABORT, 'cut off'); END",
    )
    .execute(&side_door)
    .await
    .unwrap();
    let enter = |_: CommandKind| HostEffects {
        maintenance: Some(true),
        ..Default::default()
    };
    assert!(
        store
            .complete_command("worker-0", "c1", "{}", at(1), &enter)
            .await
            .is_err()
    );
    let stored = store.command("c1").await.unwrap().unwrap();
    assert_eq!(
        stored.completed_at, None,
        "the outcome went without its effects"
    );

    sqlx::query("DROP TRIGGER cut_off")
        .execute(&side_door)
        .await
        .unwrap();
    let retried = store
        .complete_command("worker-0", "c1", "{}", at(2), &enter)
        .await
        .unwrap()
        .unwrap();
    assert!(retried.first);
    let host = store.host("worker-0").await.unwrap().unwrap();
    assert!(host.facts.maintenance);
}

#[tokio::test]
async fn other_databases_are_refused_with_a_clear_message() {
    let err = SqliteStore::open("postgres://localhost/convoy")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("use sqlite://PATH"), "{err}");
}
