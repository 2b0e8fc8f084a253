//! The patch repository end to end: signed bundles built by the real CLI, uploaded to a real
//! convoyd, and sw-patch's verbs with their rules and messages.

use convoy_api::ClientError;
use convoy_bundle::tamper::{Attack, tamper};
use convoy_e2e::{PatchKeys, Site, workers};
use serde_json::Value;

fn states(rows: &Value) -> Vec<(String, String)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["patch_id"].as_str().unwrap().to_string(),
                r["patch_state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(id: &str, state: &str) -> (String, String) {
    (id.to_string(), state.to_string())
}

async fn chain(site: &Site, keys: &PatchKeys) -> Vec<std::path::PathBuf> {
    let conf = site.source("c.conf", "c\n").display().to_string();
    let c = site
        .build_patch(
            keys,
            "PATCH_C",
            &[
                "--status",
                "REL",
                "--reboot-required",
                "N",
                "--worker",
                &format!("{conf}=etc/c.conf"),
            ],
        )
        .await;
    let b = site
        .build_patch(
            keys,
            "PATCH_B",
            &[
                "--status",
                "REL",
                "--reboot-required",
                "N",
                "--req",
                "PATCH_C",
                "--worker",
                &format!("{conf}=etc/b.conf"),
            ],
        )
        .await;
    let a = site
        .build_patch(
            keys,
            "PATCH_A",
            &[
                "--status",
                "DEV",
                "--reboot-required",
                "N",
                "--req",
                "PATCH_B",
                "--worker",
                &format!("{conf}=etc/a.conf"),
            ],
        )
        .await;
    vec![a, b, c]
}

#[tokio::test]
async fn a_chain_of_three_patches_follows_sw_patch_rules() {
    let (site, keys) = Site::with_patch_key(&workers(1)).await;
    let files = chain(&site, &keys).await;
    let dir = files[0].parent().unwrap().display().to_string();
    let uploaded = site.convoy(&["patch", "upload-dir", &dir]).await;
    let out = uploaded.ok();
    for id in ["PATCH_A", "PATCH_B", "PATCH_C"] {
        assert!(out.contains(&format!("{id} is now available")), "{out}");
    }
    let query = site.convoy(&["patch", "query", "-f", "json"]).await.json();
    assert_eq!(
        states(&query),
        [
            pair("PATCH_A", "Available"),
            pair("PATCH_B", "Available"),
            pair("PATCH_C", "Available")
        ]
    );

    // A needs B, which needs C: refused alone, accepted together.
    let refused = site.convoy(&["patch", "apply", "PATCH_A"]).await;
    assert_eq!(refused.fails(2), "error: PATCH_B is required by: PATCH_A");
    let refused = site.convoy(&["patch", "apply", "PATCH_A", "PATCH_B"]).await;
    assert_eq!(refused.fails(2), "error: PATCH_C is required by: PATCH_B");
    let applied = site.convoy(&["patch", "apply", "PATCH_C", "PATCH_B"]).await;
    assert_eq!(
        applied.ok(),
        "PATCH_C is now in the repo\nPATCH_B is now in the repo\n"
    );
    let query = site.convoy(&["patch", "query", "-f", "json"]).await.json();
    assert_eq!(
        states(&query),
        [
            pair("PATCH_A", "Available"),
            pair("PATCH_B", "Partial-Apply"),
            pair("PATCH_C", "Partial-Apply")
        ]
    );
    let applied = site
        .convoy(&["patch", "query", "applied", "-f", "value", "-c", "patch_id"])
        .await;
    assert_eq!(applied.ok(), "PATCH_B\nPATCH_C\n");

    // What requires what, and dependencies.
    let what = site
        .convoy(&["patch", "what-requires", "PATCH_C", "PATCH_A"])
        .await;
    // Ids are sorted and deduplicated first, as sw-patch does.
    assert_eq!(
        what.ok(),
        "PATCH_A is not required by any patches.\nPATCH_C is required by: PATCH_B\n"
    );
    let deps = site
        .convoy(&["patch", "query-dependencies", "PATCH_A", "--recursive"])
        .await;
    assert_eq!(deps.ok(), "PATCH_A\nPATCH_B\nPATCH_C\n");
    let deps = site
        .convoy(&["patch", "query-dependencies", "PATCH_A"])
        .await;
    assert_eq!(deps.ok(), "PATCH_A\nPATCH_B\n");

    // C cannot be removed while B needs it; both together can; delete only when available.
    let refused = site.convoy(&["patch", "remove", "PATCH_C"]).await;
    assert_eq!(refused.fails(2), "error: PATCH_C is required by: PATCH_B");
    let refused = site.convoy(&["patch", "delete", "PATCH_B"]).await;
    assert_eq!(
        refused.fails(2),
        "error: Patch PATCH_B not in Available state"
    );
    let removed = site
        .convoy(&["patch", "remove", "PATCH_B", "PATCH_C"])
        .await;
    assert_eq!(
        removed.ok(),
        "PATCH_B has been removed from the repo\nPATCH_C has been removed from the repo\n"
    );
    let query = site.convoy(&["patch", "query", "-f", "json"]).await.json();
    assert_eq!(query[1]["patch_state"], "Partial-Remove");

    // An application's dependency blocks removal unless skipped.
    site.convoy(&["patch", "apply", "PATCH_C"]).await.ok();
    site.convoy(&[
        "patch",
        "report-app-dependencies",
        "--app",
        "vault",
        "PATCH_C",
    ])
    .await
    .ok();
    let refused = site.convoy(&["patch", "remove", "PATCH_C"]).await;
    assert_eq!(
        refused.fails(2),
        "error: PATCH_C is required by application(s): vault"
    );
    site.convoy(&["patch", "remove", "PATCH_C", "--skip-app-check"])
        .await
        .ok();

    // Commit needs every patch of the system released.
    site.convoy(&["patch", "apply", "PATCH_C"]).await.ok();
    let refused = site.convoy(&["patch", "commit", "PATCH_C"]).await;
    let line = refused.fails(2);
    assert!(
        line.starts_with(
            "error: A commit cannot be performed with non-REL status patches in the system:"
        ),
        "{line}"
    );
    assert!(line.contains("PATCH_A"), "{line}");

    // Unknown ids.
    let unknown = site.convoy(&["patch", "apply", "PATCH_Z"]).await;
    assert_eq!(unknown.fails(2), "error: Patch PATCH_Z does not exist");
    let unknown = site.convoy(&["patch", "show", "PATCH_Z"]).await;
    assert_eq!(unknown.fails(2), "error: PATCH_Z is unrecognized");

    // Delete an available patch; its file is gone from the controller.
    site.convoy(&["patch", "delete", "PATCH_A"]).await.ok();
    assert!(
        !site
            .controller
            .data_dir()
            .join("patches/PATCH_A.patch")
            .exists()
    );
    let is_applied = site.convoy(&["patch", "is-applied", "PATCH_C"]).await;
    assert_eq!(is_applied.stdout, "false\n");
    assert_eq!(is_applied.code, 1);
}

#[tokio::test]
async fn every_kind_of_tampering_is_refused_at_upload_and_leaves_nothing() {
    let (site, keys) = Site::with_patch_key(&[]).await;
    let conf = site.source("x.conf", "payload\n").display().to_string();
    let good = site
        .build_patch(
            &keys,
            "PATCH_T",
            &[
                "--worker",
                &format!("{conf}=etc/x.conf"),
                "--all-nodes",
                &format!("{conf}=etc/y.conf"),
            ],
        )
        .await;
    let attacks = [
        (Attack::PayloadByteFlipped, "payload/"),
        (Attack::MetadataFieldChanged, "metadata.json"),
        (Attack::ManifestEdited, "altered manifest"),
        (Attack::SignatureFlipped, "signature"),
        (Attack::SignatureMissing, "manifest.sig"),
        (Attack::ParentDirPath, ".."),
        (Attack::Symlink, "link"),
    ];
    let dir = site.dir.path().join("tampered");
    for (attack, expected) in attacks {
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("PATCH_T.patch");
        tamper(&good, attack, &bad).unwrap();
        let run = site
            .convoy(&["patch", "upload", &bad.display().to_string()])
            .await;
        let line = run.fails(2);
        assert!(
            line.starts_with("error: Patch validation failed for PATCH_T:"),
            "{attack:?}: {line}"
        );
        assert!(
            line.to_lowercase().contains(expected),
            "{attack:?}: expected {expected:?} in {line}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Signed by a key the controller does not trust.
    let stranger = site.generate_patch_key("stranger").await;
    let untrusted = site
        .build_patch(
            &stranger,
            "PATCH_U",
            &["--worker", &format!("{conf}=etc/x.conf")],
        )
        .await;
    let run = site
        .convoy(&["patch", "upload", &untrusted.display().to_string()])
        .await;
    let line = run.fails(2);
    assert!(
        line.contains("Patch validation failed for PATCH_U") && line.contains("trusted"),
        "{line}"
    );

    // Nothing was kept: no patch, no stray file.
    assert!(site.admin().patches("all").await.unwrap().is_empty());
    let patch_dir = site.controller.data_dir().join("patches");
    let leftovers: Vec<_> = walk(&patch_dir);
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The good one is accepted.
    site.convoy(&["patch", "upload", &good.display().to_string()])
        .await
        .ok();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn bad_patch_requests_are_refused_and_change_nothing() {
    let (site, keys) = Site::with_patch_key(&[]).await;
    let conf = site.source("x.conf", "x\n").display().to_string();
    let good = site
        .build_patch(
            &keys,
            "PATCH_1",
            &["--worker", &format!("{conf}=etc/x.conf")],
        )
        .await;
    site.convoy(&["patch", "upload", &good.display().to_string()])
        .await
        .ok();
    let admin = site.admin();

    // Wrong names.
    let renamed = site.dir.path().join("PATCH_2.patch");
    std::fs::copy(&good, &renamed).unwrap();
    let run = site
        .convoy(&["patch", "upload", &renamed.display().to_string()])
        .await;
    assert!(run.fails(2).contains("holds patch PATCH_1"), "{run:?}");
    let other = site.dir.path().join("PATCH_1.tar");
    std::fs::copy(&good, &other).unwrap();
    let run = site
        .convoy(&["patch", "upload", &other.display().to_string()])
        .await;
    assert!(
        run.fails(2)
            .contains("File must end in .patch extension: PATCH_1.tar"),
        "{run:?}"
    );
    let run = site
        .convoy(&["patch", "upload", "/nonexistent/PATCH_9.patch"])
        .await;
    assert!(run.fails(2).contains("no such file"), "{run:?}");
    let run = site.convoy(&["patch", "apply"]).await;
    assert_eq!(run.code, 2);
    let run = site.convoy(&["patch", "apply", "bad/id"]).await;
    assert!(run.fails(2).starts_with("error: ids: "), "{run:?}");

    // Raw API: unknown fields, wrong types.
    for (body, expected) in [
        (
            r#"{"ids": ["PATCH_1"], "colour": 1}"#,
            "colour: unknown field",
        ),
        (r#"{"ids": "PATCH_1"}"#, "ids: invalid type"),
        (r#"{"ids": []}"#, "ids: name at least one patch"),
    ] {
        let result: Result<Value, _> = admin
            .call(
                reqwest::Method::POST,
                "/v1/patches/apply",
                Some(&serde_json::from_str::<Value>(body).unwrap()),
            )
            .await;
        match result {
            Err(ClientError::Api {
                status: 400,
                message,
                ..
            }) => assert!(message.starts_with(expected), "{message}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    // Every route refuses what it cannot take, naming the field.
    let cli_cases: &[(&[&str], i32, &str)] = &[
        (
            &["patch", "query", "everything"],
            2,
            "invalid value 'everything'",
        ),
        (
            &["patch", "remove", "PATCH_9"],
            2,
            "Patch PATCH_9 does not exist",
        ),
        (&["patch", "delete", "bad id"], 2, "ids: "),
        (
            &["patch", "commit", "PATCH_1"],
            2,
            "A commit cannot be performed with non-REL status patches",
        ),
        (
            &["patch", "what-requires", "PATCH_9"],
            2,
            "Patch PATCH_9 does not exist",
        ),
        (
            &["patch", "query-dependencies", "PATCH_9"],
            2,
            "PATCH_9 is unrecognized",
        ),
        (
            &["patch", "host-install", "nowhere"],
            2,
            "Unknown host specified: nowhere",
        ),
        (
            &[
                "patch",
                "report-app-dependencies",
                "--app",
                "bad/app",
                "PATCH_1",
            ],
            2,
            "app: contains '/'",
        ),
        (&["patch", "upload-dir", "/nonexistent"], 2, "/nonexistent"),
    ];
    for (args, code, expected) in cli_cases {
        let run = site.convoy(args).await;
        let line = run.fails(*code);
        assert!(
            line.contains(expected),
            "{args:?}: expected {expected:?} in {line:?}"
        );
    }
    for (path, expected) in [
        ("/v1/patches/is-applied", "ids: is required"),
        (
            "/v1/patches/dependencies?ids=PATCH_1&recursive=maybe",
            "recursive: ",
        ),
        ("/v1/patches?show=some", "show: "),
    ] {
        let result: Result<Value, _> = admin.call(reqwest::Method::GET, path, None::<&()>).await;
        match result {
            Err(ClientError::Api {
                status: 400,
                message,
                ..
            }) => assert!(message.starts_with(expected), "{path}: {message}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    let rows = admin.patches("all").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].repo_state, "Available");

    // A reader may query, not upload.
    let reader = site.add_user("rita", convoy_core::role::Role::Reader).await;
    site.convoy_as(&reader, &["patch", "query"]).await.ok();
    let run = site
        .convoy_as(&reader, &["patch", "upload", &good.display().to_string()])
        .await;
    assert!(run.fails(1).contains("needs the operator role"), "{run:?}");
}
