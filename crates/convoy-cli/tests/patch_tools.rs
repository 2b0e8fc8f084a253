//! The offline patch tools end to end, with the real `convoy` binary: key generate, patch
//! build, inspect and verify, and their refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use convoy_bundle::tamper::{Attack, tamper};

fn convoy(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(args)
        .current_dir(dir)
        .env_remove("PLATFORM_RELEASE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The one line on stderr of a command that failed with `code`.
fn failure(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr.trim_end().to_string()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// A directory with a key pair in keys/, sources, and PATCH_0001.patch built from them.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        ok(&convoy(root, &["key", "generate", "--out", "keys"]));
        std::fs::create_dir_all(root.join("rootfs/usr/bin")).unwrap();
        std::fs::write(root.join("rootfs/usr/bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
        std::fs::set_permissions(
            root.join("rootfs/usr/bin/hello"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("c.conf"), "role=controller\n").unwrap();
        std::fs::write(root.join("motd"), "patched\n").unwrap();
        std::fs::write(root.join("pre.sh"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::create_dir(root.join("out")).unwrap();
        let output = convoy(
            root,
            &[
                "patch",
                "build",
                "--id",
                "PATCH_0001",
                "--release",
                "25.09",
                "--status",
                "REL",
                "--reboot-required",
                "N",
                "--summary",
                "Fix hello",
                "--desc",
                "Says hello",
                "--warn",
                "None",
                "--inst",
                "Just apply",
                "--req",
                "PATCH_0000",
                "--unremovable",
                "--worker",
                "rootfs",
                "--controller",
                "c.conf=etc/convoy/c.conf",
                "--all-nodes",
                "motd=/etc/motd",
                "--pre-install",
                "pre.sh",
                "--key",
                "keys/patch-signing.pem",
                "-o",
                "out",
            ],
        );
        let text = ok(&output);
        assert!(text.contains("out/PATCH_0001.patch"), "{text}");
        Workspace { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn patch(&self) -> PathBuf {
        self.root().join("out/PATCH_0001.patch")
    }

    fn run(&self, args: &[&str]) -> Output {
        convoy(self.root(), args)
    }
}

#[test]
fn key_generate_writes_a_private_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(&convoy(
        dir.path(),
        &["key", "generate", "--out", "k", "-f", "json"],
    ));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["key_id"].as_str().unwrap().len(), 16);
    let private = dir.path().join("k/patch-signing.pem");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = std::fs::read_to_string(dir.path().join("k/patch-signing.pub.pem")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");

    let again = failure(&convoy(dir.path(), &["key", "generate", "--out", "k"]), 2);
    assert!(again.contains("already exists"), "{again}");
}

#[test]
fn build_inspect_and_verify() {
    let ws = Workspace::new();
    let table = ok(&ws.run(&["patch", "inspect", "out/PATCH_0001.patch"]));
    for expected in [
        "| id                        | PATCH_0001",
        "| sw_version                | 25.09",
        "| status                    | REL",
        "| summary                   | Fix hello",
        "| unremovable               | Y",
        "| reboot_required           | N",
        "| requires                  | PATCH_0000",
        "| controller                | etc/convoy/c.conf",
        "|                           | etc/motd",
        "| worker                    | etc/motd",
        "|                           | usr/bin/hello",
        "| storage                   | etc/motd",
        "| scripts                   | pre-install",
    ] {
        assert!(table.contains(expected), "{expected}\n{table}");
    }

    let json = ok(&ws.run(&[
        "patch",
        "inspect",
        "out/PATCH_0001.patch",
        "--format",
        "json",
    ]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["id"], "PATCH_0001");
    assert_eq!(json["description"], "Says hello");
    assert_eq!(json["warnings"], "None");
    assert_eq!(json["install_instructions"], "Just apply");
    assert_eq!(
        json["worker"],
        serde_json::json!(["etc/motd", "usr/bin/hello"])
    );
    assert_eq!(json["storage"], serde_json::json!(["etc/motd"]));
    assert_eq!(
        json["controller+worker"],
        serde_json::json!(["etc/convoy/c.conf", "etc/motd", "usr/bin/hello"])
    );
    assert_eq!(json["scripts"], serde_json::json!(["pre-install"]));
    assert_eq!(json["verified"], false);

    let verified = ok(&ws.run(&[
        "patch",
        "verify",
        "out/PATCH_0001.patch",
        "--trusted-key",
        "keys/patch-signing.pub.pem",
    ]));
    assert!(verified.starts_with("verified: "), "{verified}");
    assert!(verified.contains("patch PATCH_0001"), "{verified}");

    let json = ok(&ws.run(&[
        "patch",
        "verify",
        "out/PATCH_0001.patch",
        "--trusted-key",
        "keys/patch-signing.pub.pem",
        "-f",
        "json",
    ]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["members"], 7);
}

#[test]
fn verify_refuses_a_tampered_patch_with_the_reason() {
    let ws = Workspace::new();
    let cases = [
        (
            Attack::PayloadByteFlipped,
            "altered member: the SHA-256 of payload/all/etc/motd differs from the manifest",
        ),
        (
            Attack::MetadataFieldChanged,
            "altered member: the SHA-256 of metadata.json differs from the manifest",
        ),
        (Attack::ManifestEdited, "altered manifest: "),
        (Attack::SignatureFlipped, "bad signature: "),
        (Attack::SignatureMissing, "missing signature: "),
        (Attack::ParentDirPath, "climbs out with '..'"),
        (
            Attack::Symlink,
            "not a regular file: member \"payload/all/etc/motd\" is a symbolic link",
        ),
        (Attack::ExtraMember, "extra member: "),
        (Attack::MissingMember, "missing member: "),
    ];
    for (attack, reason) in cases {
        let dir = ws.root().join(format!("{attack:?}"));
        std::fs::create_dir(&dir).unwrap();
        tamper(&ws.patch(), attack, &dir.join("PATCH_0001.patch")).unwrap();
        let file = format!("{attack:?}/PATCH_0001.patch");
        let line = failure(
            &ws.run(&[
                "patch",
                "verify",
                &file,
                "--trusted-key",
                "keys/patch-signing.pub.pem",
            ]),
            1,
        );
        assert!(
            line.starts_with(&format!("error: {file} failed verification: ")),
            "{line}"
        );
        assert!(line.contains(reason), "{attack:?}: {line}");
    }
}

#[test]
fn verify_refuses_a_key_it_does_not_trust() {
    let ws = Workspace::new();
    ok(&ws.run(&["key", "generate", "--out", "other"]));
    let line = failure(
        &ws.run(&[
            "patch",
            "verify",
            "out/PATCH_0001.patch",
            "--trusted-key",
            "other/patch-signing.pub.pem",
        ]),
        1,
    );
    assert!(
        line.contains("untrusted key: the bundle is signed by key"),
        "{line}"
    );
}

#[test]
fn verify_refuses_a_renamed_patch() {
    let ws = Workspace::new();
    std::fs::copy(ws.patch(), ws.root().join("PATCH_0002.patch")).unwrap();
    let line = failure(
        &ws.run(&[
            "patch",
            "verify",
            "PATCH_0002.patch",
            "--trusted-key",
            "keys/patch-signing.pub.pem",
        ]),
        1,
    );
    assert!(
        line.ends_with("it holds patch PATCH_0001, so it must be named PATCH_0001.patch"),
        "{line}"
    );
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let ws = Workspace::new();
    let build = |extra: &[&str]| {
        let mut args = vec!["patch", "build", "--key", "keys/patch-signing.pem"];
        args.extend_from_slice(extra);
        ws.run(&args)
    };
    let cases: Vec<(Output, &str)> = vec![
        (
            build(&["--id", "a/b", "--release", "25.09", "--worker", "rootfs"]),
            "--id: \"a/b\" contains '/'",
        ),
        (
            build(&["--id", "P1", "--release", "25", "--worker", "rootfs"]),
            "--release: \"25\" is not a release",
        ),
        (
            build(&["--release", "25.09", "--worker", "rootfs"]),
            "--id <ID>",
        ),
        (
            build(&["--id", "P1", "--release", "25.09"]),
            "cannot generate an empty patch",
        ),
        (
            build(&["--id", "P1", "--release", "25.09", "--worker", "motd"]),
            "give the install path",
        ),
        (
            build(&["--id", "P1", "--release", "25.09", "--worker", "absent=x"]),
            "absent: no such file or directory",
        ),
        (
            build(&[
                "--id",
                "P1",
                "--release",
                "25.09",
                "--reboot-required",
                "maybe",
                "--worker",
                "rootfs",
            ]),
            "invalid value 'maybe'",
        ),
        (
            build(&[
                "--id",
                "P1",
                "--release",
                "25.09",
                "--status",
                "GA",
                "--worker",
                "rootfs",
            ]),
            "invalid value 'GA'",
        ),
        (
            build(&[
                "--id",
                "P1",
                "--release",
                "25.09",
                "--worker",
                "motd=../../etc/passwd",
            ]),
            "climbs out with '..'",
        ),
        (
            build(&[
                "--id",
                "P1",
                "--release",
                "25.09",
                "--worker",
                "rootfs",
                "-o",
                "nowhere",
            ]),
            "no such directory",
        ),
        (
            ws.run(&[
                "patch",
                "build",
                "--id",
                "P1",
                "--release",
                "25.09",
                "--worker",
                "rootfs",
                "--key",
                "keys/patch-signing.pub.pem",
            ]),
            "is not an ed25519 signing key",
        ),
        (
            ws.run(&["patch", "verify", "out/PATCH_0001.patch"]),
            "--trusted-key <PUB>",
        ),
        (
            ws.run(&[
                "patch",
                "verify",
                "absent.patch",
                "--trusted-key",
                "keys/patch-signing.pub.pem",
            ]),
            "cannot read absent.patch",
        ),
        (
            ws.run(&[
                "patch",
                "verify",
                "out/PATCH_0001.patch",
                "--trusted-key",
                "motd",
            ]),
            "is not an ed25519 public key",
        ),
        (
            ws.run(&["patch", "inspect", "motd"]),
            "motd: corrupt archive",
        ),
        (ws.run(&["patch", "inspect"]), "<FILE>"),
        (ws.run(&["key", "generate"]), "--out <DIR>"),
    ];
    for (output, reason) in cases {
        let line = failure(&output, 2);
        assert!(line.contains(reason), "{reason}: {line}");
    }
}
