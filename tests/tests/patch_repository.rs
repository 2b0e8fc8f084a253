//! The patch repository under concurrent changes and after a crash: every patch row keeps its
//! bundle file, and what an interrupted upload left is swept at start.

use convoy_api::patches::PatchOperation;
use convoy_e2e::{PatchKeys, Site};

fn operation(id: &str) -> PatchOperation {
    PatchOperation {
        ids: vec![id.to_string()],
        ..Default::default()
    }
}

/// Every patch the controller lists has its bundle in the patch directory.
async fn assert_every_row_has_its_bundle(site: &Site, round: usize) {
    let patch_dir = site.controller.data_dir().join("patches");
    for row in site.admin().patches("all").await.unwrap() {
        let file = patch_dir.join(format!("{}.patch", row.patch_id));
        assert!(
            file.is_file(),
            "round {round}: patch {} is listed but its bundle {} is gone",
            row.patch_id,
            file.display()
        );
    }
}

async fn build(site: &Site, keys: &PatchKeys, id: &str) -> std::path::PathBuf {
    site.build_worker_patch(keys, id, "etc/race.conf", "race\n", &[])
        .await
}

/// Uploads, applies and deletes of one patch, sent at once, round after round: whatever
/// order they take, no round leaves a row without its bundle, and the patch can always be
/// uploaded again.
#[tokio::test]
async fn concurrent_uploads_applies_and_deletes_never_leave_a_row_without_its_bundle() {
    let (site, keys) = Site::with_patch_key(&[]).await;
    let file = build(&site, &keys, "RACE_0001").await;
    let client = site.admin();
    let race = operation("RACE_0001");
    for round in 0..40 {
        client.upload_patch(&file).await.unwrap();
        let (upload, apply, delete) = tokio::join!(
            client.upload_patch(&file),
            client.patch_operation("apply", &race),
            client.patch_operation("delete", &race),
        );
        for (what, result) in [("upload", upload), ("apply", apply), ("delete", delete)] {
            // Each may be refused by the state another left (404, 409); none fails.
            if let Err(e) = result {
                assert!(
                    matches!(e.status(), Some(404 | 409)),
                    "round {round}: {what} failed with other than a refusal: {e}"
                );
            }
        }
        assert_every_row_has_its_bundle(&site, round).await;
        // Back to no patch: remove it if it was applied, then delete it.
        let rows = client.patches("all").await.unwrap();
        if rows.iter().any(|r| r.patch_state != "Available") {
            client.patch_operation("remove", &race).await.unwrap();
        }
        if !rows.is_empty() {
            client.patch_operation("delete", &race).await.unwrap();
        }
        assert!(client.patches("all").await.unwrap().is_empty());
    }
}

/// A partial upload (a controller killed mid-upload leaves one in `incoming/`) and a bundle no
/// patch names are removed when the controller starts; a listed patch keeps its bundle.
#[tokio::test]
async fn a_restart_sweeps_partial_uploads_and_orphaned_bundles() {
    let (mut site, keys) = Site::with_patch_key(&[]).await;
    let file = build(&site, &keys, "KEEP_0001").await;
    site.admin().upload_patch(&file).await.unwrap();
    let patch_dir = site.controller.data_dir().join("patches");
    let partial = patch_dir.join("incoming").join("0f9c.part");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![7u8; 1 << 20]).unwrap();
    let orphan = patch_dir.join("GONE_0001.patch");
    std::fs::write(&orphan, b"left by a deletion cut short").unwrap();

    site.controller.kill();
    site.controller.restart().await.unwrap();

    assert!(!partial.exists(), "the partial upload is still there");
    assert!(!orphan.exists(), "the orphaned bundle is still there");
    assert!(patch_dir.join("KEEP_0001.patch").is_file());
    let rows = site.admin().patches("all").await.unwrap();
    assert_eq!(rows.len(), 1);
}
