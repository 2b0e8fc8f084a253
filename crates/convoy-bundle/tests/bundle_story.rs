//! A bundle's life: built, inspected, verified, read and unpacked; and the refusals that need
//! more than a tampered copy of the good fixture.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Fixture, id, key, trusted, verify_default};
use convoy_bundle::tamper::{read_members, resign, write_members};
use convoy_bundle::{
    BuildError, BuildSpec, LayoutConflict, PayloadFile, Script, Section, UnpackError, VerifyError,
    build, inspect,
};
use convoy_core::host::Personality;
use convoy_core::patch::PatchStatus;

#[test]
fn inspect_shows_what_the_bundle_says() {
    let fixture = Fixture::new();
    let inspection = inspect(&fixture.bundle).unwrap();
    let m = &inspection.metadata;
    assert_eq!(m.id.as_str(), "PATCH_0001");
    assert_eq!(m.sw_version.as_str(), "25.09");
    assert_eq!(m.summary, "Fix the frobnicator");
    assert_eq!(m.status, PatchStatus::Development);
    assert!(m.reboot_required);
    assert_eq!(m.requires, [id("PATCH_0000")]);
    assert_eq!(
        m.contents[&Personality::Controller],
        ["etc/convoy/role.conf", "etc/motd"]
    );
    assert_eq!(
        m.contents[&Personality::Worker],
        ["etc/motd", "usr/local/bin/tool"]
    );
    assert_eq!(
        inspection.manifest.scripts(),
        [Script::PreInstall, Script::PostInstall]
    );
    assert_eq!(inspection.signed_by.as_ref(), Some(key().id()));
    let paths: Vec<&str> = inspection
        .manifest
        .members
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "metadata.json",
            "scripts/pre-install",
            "scripts/post-install",
            "payload/all/etc/motd",
            "payload/controller/etc/convoy/role.conf",
            "payload/storage/etc/convoy/role.conf",
            "payload/worker/usr/local/bin/tool",
        ]
    );
    assert_eq!(
        inspection.size,
        std::fs::metadata(&fixture.bundle).unwrap().len()
    );
}

#[test]
fn a_verified_bundle_hands_out_its_members() {
    let fixture = Fixture::new();
    let bundle = verify_default(&fixture.bundle).unwrap();
    assert_eq!(
        bundle.read_member("payload/all/etc/motd").unwrap(),
        b"welcome\n"
    );
    assert!(matches!(
        bundle.read_member("payload/all/nothing"),
        Err(UnpackError::NoSuchMember(_))
    ));

    let script = fixture.path("pre-install");
    bundle
        .unpack_member("scripts/pre-install", &script)
        .unwrap();
    assert_eq!(std::fs::read(&script).unwrap(), b"#!/bin/sh\nexit 0\n");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    // A second unpack does not replace the file.
    assert!(
        bundle
            .unpack_member("scripts/pre-install", &script)
            .is_err()
    );
}

#[test]
fn each_personality_unpacks_its_own_files() {
    let fixture = Fixture::new();
    let bundle = verify_default(&fixture.bundle).unwrap();
    let cases = [
        (
            Personality::Controller,
            vec!["etc/convoy/role.conf", "etc/motd"],
        ),
        (Personality::Worker, vec!["etc/motd", "usr/local/bin/tool"]),
        (
            Personality::Storage,
            vec!["etc/convoy/role.conf", "etc/motd"],
        ),
        (
            Personality::ControllerWorker,
            vec!["etc/convoy/role.conf", "etc/motd", "usr/local/bin/tool"],
        ),
    ];
    for (personality, expected) in cases {
        let dest = fixture.path(personality.as_str());
        std::fs::create_dir(&dest).unwrap();
        let files = bundle.unpack_payload(personality, &dest).unwrap();
        let installed: Vec<&str> = files.iter().map(|f| f.install_path.as_str()).collect();
        assert_eq!(installed, expected, "{personality}");
        for file in &files {
            let on_disk = std::fs::read(dest.join(&file.install_path)).unwrap();
            assert_eq!(on_disk, bundle.read_member(&file.member).unwrap());
        }
    }
    let root = fixture.path("storage");
    assert_eq!(
        std::fs::read(root.join("etc/convoy/role.conf")).unwrap(),
        b"role=storage\n"
    );
    let worker = fixture.path("worker");
    let tool = std::fs::metadata(worker.join("usr/local/bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o777, 0o755);
    let motd = std::fs::metadata(worker.join("etc/motd")).unwrap();
    assert_eq!(motd.permissions().mode() & 0o777, 0o644);
}

#[test]
fn unpacking_needs_an_empty_directory() {
    let fixture = Fixture::new();
    let bundle = verify_default(&fixture.bundle).unwrap();
    let dest = fixture.path("root");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("already"), "x").unwrap();
    assert!(matches!(
        bundle.unpack_payload(Personality::Worker, &dest),
        Err(UnpackError::NotEmpty(_))
    ));
}

#[test]
fn a_bundle_changed_after_verification_hands_out_nothing() {
    let fixture = Fixture::new();
    let copy = fixture.path("copy.patch");
    std::fs::copy(&fixture.bundle, &copy).unwrap();
    let bundle = verify_default(&copy).unwrap();

    // Overwrite the bundle in place, as someone with write access could.
    let mut bytes = std::fs::read(&copy).unwrap();
    let at = bytes
        .windows(3)
        .position(|w| w == [0xAB, 0xAB, 0xAB])
        .unwrap();
    bytes[at] = 0xAC;
    std::fs::write(&copy, &bytes).unwrap();

    let err = bundle
        .read_member("payload/worker/usr/local/bin/tool")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "altered member: payload/worker/usr/local/bin/tool changed on disk after the bundle was verified"
    );
    let dest = fixture.path("root");
    std::fs::create_dir(&dest).unwrap();
    assert!(matches!(
        bundle.unpack_payload(Personality::Worker, &dest),
        Err(UnpackError::Altered(_))
    ));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "left behind");
}

#[test]
fn the_same_inputs_build_the_same_bytes() {
    let fixture = Fixture::new();
    let first = std::fs::read(&fixture.bundle).unwrap();
    let again = Fixture::new();
    assert_eq!(first, std::fs::read(&again.bundle).unwrap());
}

#[test]
fn a_duplicate_member_is_refused() {
    let fixture = Fixture::new();
    let mut members = read_members(&fixture.bundle).unwrap();
    let copy = members[3].clone();
    members.push(copy);
    let bad = fixture.path("dup.patch");
    write_members(&bad, &members).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert!(matches!(err, VerifyError::DuplicateMember { .. }), "{err}");
}

#[test]
fn a_changed_mode_is_refused() {
    let fixture = Fixture::new();
    let mut members = read_members(&fixture.bundle).unwrap();
    let motd = members
        .iter_mut()
        .find(|m| m.name() == "payload/all/etc/motd")
        .unwrap();
    motd.header.set_mode(0o4755);
    motd.header.set_cksum();
    let bad = fixture.path("setuid.patch");
    write_members(&bad, &members).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "altered member: payload/all/etc/motd has mode 4755, the manifest says 644"
    );
}

#[test]
fn a_changed_size_is_refused() {
    let fixture = Fixture::new();
    let mut members = read_members(&fixture.bundle).unwrap();
    let motd = members
        .iter_mut()
        .find(|m| m.name() == "payload/all/etc/motd")
        .unwrap();
    motd.set_data(b"welcome, attacker\n".to_vec());
    let bad = fixture.path("longer.patch");
    write_members(&bad, &members).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "altered member: payload/all/etc/motd is 18 bytes, the manifest says 8"
    );
}

#[test]
fn signed_metadata_that_lies_about_the_members_is_refused() {
    let fixture = Fixture::new();
    let mut members = read_members(&fixture.bundle).unwrap();
    // Drop the worker's file from the metadata, fix the manifest and sign it all again.
    let meta_at = members
        .iter()
        .position(|m| m.name() == "metadata.json")
        .unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(&members[meta_at].data).unwrap();
    meta["contents"]["worker"] = serde_json::json!(["etc/motd"]);
    let meta_bytes = serde_json::to_vec(&meta).unwrap();
    let manifest_at = members
        .iter()
        .position(|m| m.name() == "manifest.json")
        .unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&members[manifest_at].data).unwrap();
    let entry = &mut manifest["members"][0];
    assert_eq!(entry["path"], "metadata.json");
    entry["size"] = meta_bytes.len().into();
    entry["sha256"] = sha256(&meta_bytes).into();
    members[manifest_at].set_data(serde_json::to_vec(&manifest).unwrap());
    members[meta_at].set_data(meta_bytes);
    let unsigned = fixture.path("unsigned.patch");
    write_members(&unsigned, &members).unwrap();
    let bad = fixture.path("lying.patch");
    resign(&unsigned, &key(), &bad).unwrap();

    let err = verify_default(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "metadata does not match the members: the payload holds usr/local/bin/tool for worker hosts, which contents.worker does not list"
    );
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn build_refuses_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let payload = vec![PayloadFile {
        section: Section::All,
        source: file.clone(),
        install_path: "etc/f".into(),
    }];
    let attempt = |edit: &dyn Fn(&mut BuildSpec)| {
        let mut spec = BuildSpec::new(id("PATCH_1"), "25.09".parse().unwrap());
        spec.payload = payload.clone();
        edit(&mut spec);
        build(&spec, &key(), dir.path()).unwrap_err()
    };
    let err = attempt(&|s| s.requires = vec![id("PATCH_1")]);
    assert_eq!(err.to_string(), "requires: PATCH_1 must not require itself");
    let err = attempt(&|s| s.summary = "two\nlines".into());
    assert!(matches!(err, BuildError::Metadata(_)), "{err}");
    assert!(matches!(attempt(&|s| s.payload.clear()), BuildError::Empty));
    assert!(matches!(
        attempt(&|s| s.payload[0].install_path = "../../etc/passwd".into()),
        BuildError::Layout(LayoutConflict::UnsafePath { .. })
    ));
    assert!(matches!(
        attempt(&|s| s.payload.push(PayloadFile {
            section: Section::Worker,
            source: file.clone(),
            install_path: "etc/f".into(),
        })),
        BuildError::Layout(LayoutConflict::Twice { .. })
    ));
    let err = attempt(&|s| s.payload[0].source = dir.path().join("absent"));
    assert!(err.is_bad_input());
    assert!(
        err.to_string()
            .ends_with("absent: no such file or directory"),
        "{err}"
    );
    let err = attempt(&|s| s.payload[0].install_path = format!("{}/f", "d".repeat(300)));
    assert!(matches!(err, BuildError::NameTooLong(_)), "{err}");
    // Nothing was left behind by the failed builds.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn payload_arguments_name_files_and_trees() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rootfs");
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::write(tree.join("usr/bin/tool"), "t").unwrap();
    std::fs::write(tree.join("motd"), "m").unwrap();
    let tree_arg = tree.to_str().unwrap();

    let files = PayloadFile::from_arg(Section::Worker, tree_arg).unwrap();
    let installs: Vec<&str> = files.iter().map(|f| f.install_path.as_str()).collect();
    assert_eq!(installs, ["motd", "usr/bin/tool"]);

    let files = PayloadFile::from_arg(Section::Worker, &format!("{tree_arg}=/opt/x/")).unwrap();
    let installs: Vec<&str> = files.iter().map(|f| f.install_path.as_str()).collect();
    assert_eq!(installs, ["opt/x/motd", "opt/x/usr/bin/tool"]);

    let motd = tree.join("motd");
    let files =
        PayloadFile::from_arg(Section::All, &format!("{}=etc/motd", motd.display())).unwrap();
    assert_eq!(files[0].install_path, "etc/motd");
    assert_eq!(files[0].source, motd);

    let err = PayloadFile::from_arg(Section::All, motd.to_str().unwrap()).unwrap_err();
    assert!(err.to_string().contains("give the install path"), "{err}");

    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
    let err = PayloadFile::from_arg(Section::Worker, tree_arg).unwrap_err();
    assert!(err.to_string().contains("regular files only"), "{err}");
}

#[test]
fn a_verified_bundle_reports_its_signer() {
    let fixture = Fixture::new();
    let bundle = convoy_bundle::verify(&fixture.bundle, &trusted(), &Default::default()).unwrap();
    assert_eq!(bundle.key_id(), key().id());
    assert_eq!(bundle.manifest().members.len(), 7);
    assert_eq!(bundle.path(), fixture.bundle);
}

#[test]
fn a_scripts_only_patch_is_for_every_host() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("post");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let mut spec = BuildSpec::new(id("SCRIPTS_1"), "25.09".parse().unwrap());
    spec.scripts.insert(Script::PostInstall, script);
    let bundle = verify_default(&build(&spec, &key(), dir.path()).unwrap()).unwrap();
    for personality in Personality::ALL {
        assert!(bundle.is_for(personality), "{personality}");
        assert!(bundle.install_files(personality).is_empty());
    }
    assert_eq!(bundle.manifest().scripts(), [Script::PostInstall]);
    assert!(bundle.has_script(Script::PostInstall));
    assert!(!bundle.has_script(Script::PreInstall));
}

#[test]
fn a_worker_patch_is_not_for_controllers() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("tool");
    std::fs::write(&tool, "t").unwrap();
    let mut spec = BuildSpec::new(id("WORKER_1"), "25.09".parse().unwrap());
    spec.payload.push(PayloadFile {
        section: Section::Worker,
        source: tool,
        install_path: "usr/bin/tool".into(),
    });
    let bundle = verify_default(&build(&spec, &key(), dir.path()).unwrap()).unwrap();
    assert!(bundle.is_for(Personality::Worker));
    assert!(bundle.is_for(Personality::ControllerWorker));
    assert!(!bundle.is_for(Personality::Controller));
    assert!(!bundle.is_for(Personality::Storage));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    assert!(
        bundle
            .unpack_payload(Personality::Controller, &root)
            .unwrap()
            .is_empty()
    );
}
