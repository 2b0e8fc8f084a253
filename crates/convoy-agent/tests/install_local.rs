//! `convoy-agent install-local`, end to end with the real binary: installs, refusals and
//! their exit codes, and a crash in the middle.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{AGENT, Site, stranger, tampered};
use convoy_bundle::{Script, Section};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 2 with one line on stderr that contains `reason`, and nothing installed.
fn assert_bad_input(site: &Site, output: &Output, reason: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(reason), "{reason:?} not in {err}");
    assert!(site.snapshot().is_empty(), "the root is untouched");
}

fn installed(site: &Site) -> Vec<String> {
    let record = site.patch_record();
    record["installed"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn install_local_is_listed_in_the_help() {
    let output = Command::new(AGENT).arg("--help").output().unwrap();
    let help = stdout(&output);
    assert!(help.contains("install-local"), "{help}");
    assert!(!help.contains("hook-runner"), "{help}");
}

#[test]
fn a_chain_installs_in_requirement_order_and_the_record_keeps_it() {
    let site = Site::new();
    let p1 = site
        .bundle("P1")
        .file(Section::All, "etc/chain", b"one\n")
        .build();
    let p2 = site
        .bundle("P2")
        .requires("P1")
        .file(Section::Worker, "usr/bin/tool", b"two\n")
        .file(Section::Controller, "etc/controller-only", b"no\n")
        .build();
    let p3 = site
        .bundle("P3")
        .requires("P2")
        .reboot_required()
        .file(Section::All, "etc/chain", b"three\n")
        .build();

    let output = site.install_local(&[&p3, &p1, &p2]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "installed P1\ninstalled P2\ninstalled P3\nP3 requires a reboot: reboot the host to finish\n"
    );
    assert_eq!(site.read("etc/chain"), "three\n");
    assert_eq!(site.read("usr/bin/tool"), "two\n");
    assert!(!site.root().join("etc/controller-only").exists());
    assert_eq!(installed(&site), ["P1", "P2", "P3"]);
    let record = site.patch_record();
    assert_eq!(record["state"], "idle");
    assert_eq!(
        record["changed_since_boot"],
        serde_json::json!(["P1", "P2", "P3"])
    );

    let again = site.install_local(&[&p1]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), "P1 is already installed\n");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let site = Site::new();
    let good = site
        .bundle("P1")
        .file(Section::All, "etc/x", b"payload-bytes-to-alter")
        .build();

    let missing = site.path("nowhere/P9.patch");
    assert_bad_input(
        &site,
        &site.install_local(&[&good, &missing]),
        "nowhere/P9.patch: no such file",
    );

    let altered = tampered(&good, b"bytes", &site.path("tampered"));
    assert_bad_input(
        &site,
        &site.install_local(&[&altered]),
        "is refused: altered member: the SHA-256 of payload/all/etc/x differs from the manifest",
    );

    let untrusted = site
        .bundle("P2")
        .file(Section::All, "etc/y", b"y")
        .build_with(&stranger());
    assert_bad_input(
        &site,
        &site.install_local(&[&untrusted]),
        "is refused: untrusted key: the bundle is signed by key",
    );

    let orphan = site
        .bundle("P3")
        .requires("P0")
        .file(Section::All, "etc/z", b"z")
        .build();
    assert_bad_input(
        &site,
        &site.install_local(&[&orphan, &good]),
        "P3 requires P0, which is neither given nor installed; give its file too",
    );

    let other_release = site
        .bundle("P4")
        .release("24.09")
        .file(Section::All, "etc/w", b"w")
        .build();
    assert_bad_input(
        &site,
        &site.install_local(&[&other_release]),
        "P4 is for release 24.09, and this host runs 25.09",
    );

    let controllers_only = site
        .bundle("P5")
        .file(Section::Controller, "etc/c", b"c")
        .build();
    assert_bad_input(
        &site,
        &site.install_local(&[&controllers_only]),
        "P5 is not for worker hosts (it is for controller, controller+worker)",
    );

    let not_a_key = site.path("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let output = Command::new(AGENT)
        .arg("install-local")
        .arg(&good)
        .arg("--state-dir")
        .arg(site.state_dir())
        .args(["--personality", "worker", "--root"])
        .arg(site.root())
        .arg("--trusted-key")
        .arg(&not_a_key)
        .output()
        .unwrap();
    assert_bad_input(&site, &output, "is not an ed25519 public key in PEM form");

    // clap's own refusals are bad input too.
    let output = Command::new(AGENT)
        .arg("install-local")
        .arg(&good)
        .args(["--state-dir", "s", "--personality", "worker"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--trusted-key"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_failing_script_exits_1_and_leaves_the_root_unchanged() {
    let site = Site::new();
    site.write("etc/x", b"before", 0o600);
    let before = site.snapshot();
    let bundle = site
        .bundle("P1")
        .file(Section::All, "etc/x", b"after")
        .script(
            Script::PreInstall,
            "echo 'refusing on this host' >&2\nexit 5",
        )
        .build();
    let output = site.install_local(&[&bundle]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        "error: installing P1 failed: the pre-install script of P1 exited with code 5: \
         refusing on this host\n"
    );
    assert_eq!(site.snapshot(), before);
    let record = site.patch_record();
    assert_eq!(record["state"], "install-failed");
    assert!(installed(&site).is_empty());
}

#[test]
fn an_install_killed_midway_is_rolled_back_by_the_next_run() {
    let site = Site::new();
    site.write("etc/x", b"before", 0o640);
    let before = site.snapshot();
    // The post-install script runs once every file is in place: it kills the installer
    // (its parent) with SIGKILL, as a crash at the worst moment.
    let doomed = site
        .bundle("P1")
        .file(Section::All, "etc/x", b"after")
        .file(Section::All, "opt/new/file", b"new")
        .script(Script::PostInstall, "kill -9 $PPID\nsleep 5")
        .build();
    let output = site.install_local(&[&doomed]);
    assert_eq!(output.status.signal(), Some(9), "{}", stderr(&output));
    assert_eq!(
        site.read("etc/x"),
        "after",
        "the crash came after the files"
    );
    assert_eq!(site.patch_record()["unfinished"]["patch"], "P1");

    let other = site.bundle("Q1").file(Section::All, "etc/q", b"q").build();
    let output = site.install_local(&[&other]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "note: the agent stopped while installing P1; the install was rolled back\n"
    );
    let mut expected = before;
    let now = site.snapshot();
    expected.insert("etc/q".into(), now["etc/q"].clone());
    assert_eq!(now, expected);
    assert_eq!(installed(&site), ["Q1"]);
    assert!(site.patch_record()["unfinished"].is_null());
    assert!(!Path::new(&site.state_dir().join("patches/installed/P1")).exists());
}
