//! One story through every SubcloudStore method, against a fresh SQLite file.

use convoy_core::alarm::Severity;
use convoy_core::subcloud::{ApplyType, Availability, Management, Reference, SyncStatus};
use convoy_store::subclouds::{
    AuditWrite, GroupChanges, GroupDeletion, NewGroup, NewSubcloud, SubcloudChanges,
    SubcloudDeletion,
};
use convoy_store::{AlarmRecord, SqliteStore, Store, StoreError, SubcloudStore};
use jiff::Timestamp;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn new_subcloud(name: &str, group_id: i64) -> NewSubcloud {
    NewSubcloud {
        name: name.into(),
        description: None,
        location: Some("YOW".into()),
        group_id,
        deploy_status: "complete".into(),
        software_version: Some("25.09".into()),
        address: "https://10.0.0.2:7400".into(),
        tls_fingerprint: Some("sha256:00".into()),
        service_user: "systemcontroller-1".into(),
        service_password: "secret".into(),
        bootstrap_values: None,
        endpoints: vec!["software".into()],
        created_at: at(0),
    }
}

fn alarm(id: &str, entity: &str) -> AlarmRecord {
    AlarmRecord {
        uuid: format!("{id}-{entity}"),
        alarm_id: id.into(),
        entity: entity.into(),
        severity: Severity::Critical,
        reason: "r".into(),
        mgmt_affecting: true,
        raised_at: at(5),
        source: "convoy".into(),
    }
}

#[tokio::test]
async fn subclouds_and_groups_story() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("convoy.db").display());
    let store = SqliteStore::open(&url).await.unwrap();

    // The Default group is there from the start.
    let groups = store.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].id, groups[0].name.as_str()), (1, "Default"));

    let east = store
        .insert_group(&NewGroup {
            name: "east".into(),
            description: "East".into(),
            update_apply_type: ApplyType::Serial,
            max_parallel_subclouds: 3,
            created_at: at(1),
        })
        .await
        .unwrap();
    assert_eq!(east.id, 2);
    let again = store
        .insert_group(&NewGroup {
            name: "east".into(),
            description: "x".into(),
            update_apply_type: ApplyType::Parallel,
            max_parallel_subclouds: 2,
            created_at: at(1),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })));

    // Subclouds: unmanaged, offline, endpoints unknown; names unique; groups must exist.
    let sc1 = store
        .insert_subcloud(&new_subcloud("sc1", 2))
        .await
        .unwrap();
    assert_eq!(sc1.management, Management::Unmanaged);
    assert_eq!(sc1.availability, Availability::Offline);
    assert_eq!(
        sc1.endpoints,
        vec![("software".into(), SyncStatus::Unknown)]
    );
    assert!(matches!(
        store.insert_subcloud(&new_subcloud("sc1", 1)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.insert_subcloud(&new_subcloud("sc2", 99)).await,
        Err(StoreError::Refused { .. })
    ));
    let sc2 = store
        .insert_subcloud(&new_subcloud("sc2", 1))
        .await
        .unwrap();
    assert_eq!(store.subclouds().await.unwrap().len(), 2);
    assert_eq!(
        store
            .subcloud(&Reference::Name("sc2".into()))
            .await
            .unwrap()
            .unwrap()
            .id,
        sc2.id
    );
    assert_eq!(store.subclouds_in_group(2).await.unwrap().len(), 1);
    assert_eq!(
        store.delete_group(2).await.unwrap(),
        GroupDeletion::NotEmpty
    );
    assert_eq!(
        store
            .group(&Reference::Id(2))
            .await
            .unwrap()
            .unwrap()
            .subcloud_count,
        1
    );

    // Manage, then an audit: online, in-sync, an alarm raised.
    let managed = store
        .update_subcloud(
            sc1.id,
            &SubcloudChanges {
                management: Some(Management::Managed),
                group_id: Some(1),
                updated_at: Some(at(2)),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(managed.management, Management::Managed);
    assert_eq!(managed.group_id, 1);
    assert_eq!(store.delete_group(2).await.unwrap(), GroupDeletion::Deleted);
    let audit = |management, status, raise: Vec<AlarmRecord>| AuditWrite {
        availability: Availability::Online,
        failed_audits: 0,
        software_version: Some("25.09".into()),
        audit: Some("{}".into()),
        audited_at: at(5),
        assumed_management: management,
        endpoints: vec![("software".into(), status)],
        raise,
        clear: vec![],
    };
    assert!(
        store
            .record_audit(
                sc1.id,
                &audit(
                    Management::Managed,
                    SyncStatus::OutOfSync,
                    vec![alarm("280.002", "subcloud=sc1.resource=software")]
                )
            )
            .await
            .unwrap()
    );
    let sc1_now = store
        .subcloud(&Reference::Id(sc1.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sc1_now.availability, Availability::Online);
    assert_eq!(sc1_now.endpoints[0].1, SyncStatus::OutOfSync);
    assert_eq!(store.alarms().await.unwrap().len(), 1);
    let raised = store.alarms().await.unwrap().remove(0);
    assert_eq!(raised.severity, Severity::Critical);
    assert!(raised.mgmt_affecting);
    assert_eq!(raised.raised_at, at(5));

    // Raised again while active: no second alarm, no second event.
    let again = audit(
        Management::Managed,
        SyncStatus::OutOfSync,
        vec![alarm("280.002", "subcloud=sc1.resource=software")],
    );
    assert!(store.record_audit(sc1.id, &again).await.unwrap());
    assert_eq!(store.alarms().await.unwrap(), vec![raised.clone()]);
    assert_eq!(store.alarm_events(10).await.unwrap().len(), 1);

    // A clear of an active alarm and of one that is not: one clear event, as raised.
    let clearing = AuditWrite {
        clear: vec![
            ("280.002".into(), "subcloud=sc1.resource=software".into()),
            ("280.001".into(), "subcloud=sc1".into()),
        ],
        ..audit(Management::Managed, SyncStatus::OutOfSync, vec![])
    };
    assert!(store.record_audit(sc1.id, &clearing).await.unwrap());
    assert!(store.alarms().await.unwrap().is_empty());
    let events = store.alarm_events(10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].state, "clear");
    assert_eq!(events[0].alarm, raised);
    assert_eq!(events[0].at, at(5));
    assert_eq!(events[0].by, "convoy");
    assert_eq!(events[1].state, "set");
    assert_eq!(events[1].alarm, raised);
    // Raised again for the rest of the story.
    store
        .record_audit(
            sc1.id,
            &audit(
                Management::Managed,
                SyncStatus::OutOfSync,
                vec![alarm("280.002", "subcloud=sc1.resource=software")],
            ),
        )
        .await
        .unwrap();
    assert_eq!(store.alarms().await.unwrap().len(), 1);
    // A subcloud that is gone: nothing written.
    assert!(!store.record_audit(9999, &clearing).await.unwrap());
    assert_eq!(store.alarms().await.unwrap().len(), 1);

    // An audit that assumed another management state writes no sync status.
    store
        .record_audit(
            sc1.id,
            &audit(Management::Unmanaged, SyncStatus::InSync, vec![]),
        )
        .await
        .unwrap();
    let sc1_now = store
        .subcloud(&Reference::Id(sc1.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sc1_now.endpoints[0].1, SyncStatus::OutOfSync);

    // Unmanaging makes every endpoint unknown; delete only unmanaged, alarms cleared with it.
    assert_eq!(
        store
            .delete_subcloud(sc1.id, "subcloud=sc1", at(6))
            .await
            .unwrap(),
        SubcloudDeletion::Managed
    );
    let unmanaged = store
        .update_subcloud(
            sc1.id,
            &SubcloudChanges {
                management: Some(Management::Unmanaged),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unmanaged.endpoints[0].1, SyncStatus::Unknown);
    assert_eq!(
        store
            .delete_subcloud(sc1.id, "subcloud=sc1", at(6))
            .await
            .unwrap(),
        SubcloudDeletion::Deleted
    );
    assert!(store.alarms().await.unwrap().is_empty());
    // Identity sync on a subcloud: users created or overwritten, others kept.
    let user = |name: &str, hash: &str| convoy_store::UserRecord {
        name: name.into(),
        role: convoy_core::role::Role::Operator,
        password_hash: hash.into(),
        created_at: at(8),
    };
    // A site always keeps an admin: a sync that would leave none changes nothing.
    assert!(matches!(
        store.sync_users(&[user("alice", "h1")]).await,
        Err(StoreError::Refused { .. })
    ));
    assert!(store.user("alice").await.unwrap().is_none());
    store
        .insert_user(&convoy_store::UserRecord {
            role: convoy_core::role::Role::Admin,
            ..user("admin", "h0")
        })
        .await
        .unwrap();
    assert!(matches!(
        store.sync_users(&[user("admin", "h0")]).await,
        Err(StoreError::Refused { .. })
    ));
    assert_eq!(store.sync_users(&[user("alice", "h1")]).await.unwrap(), 1);
    assert_eq!(store.sync_users(&[user("alice", "h1")]).await.unwrap(), 0);
    assert_eq!(
        store
            .sync_users(&[user("alice", "h2"), user("bob", "h3")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.user("alice").await.unwrap().unwrap().password_hash,
        "h2"
    );
    let events = store.alarm_events(10).await.unwrap();
    assert_eq!(events[0].state, "clear");
    assert!(
        !store
            .record_audit(
                sc1.id,
                &audit(Management::Managed, SyncStatus::InSync, vec![])
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .update_group(99, &GroupChanges::default(), at(7))
            .await
            .unwrap(),
        None
    );
}
