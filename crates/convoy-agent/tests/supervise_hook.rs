//! The built `convoy-agent` binary in its hidden `supervise-hook` mode. (The unit tests in
//! src/hooks.rs cover the protocol through the test binary; this checks the real binary's
//! command line reaches it, and that normal runs still demand their flags.)

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_convoy-agent");

fn write_script(path: &Path, body: &str) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)
        .unwrap();
    file.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
}

#[test]
fn the_agent_binary_supervises_a_hook_once_and_records_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("PreFlight.sh");
    let count = dir.path().join("count");
    write_script(
        &script,
        &format!(
            "echo ran >> '{}'\necho \"$CONVOY_HOOK_STAGE $*\"\nexit 70",
            count.display()
        ),
    );
    let job = dir.path().join("job");
    std::fs::create_dir(&job).unwrap();
    let supervise = || {
        Command::new(AGENT)
            // The agent's own environment is inherited; it must not disturb this mode.
            .env("CONVOY_CONTROLLER", "http://127.0.0.1:9")
            .args(["supervise-hook", "--job-dir"])
            .arg(&job)
            .args(["--stage", "PreFlight", "--timeout", "30", "--"])
            .arg(&script)
            .args(["--force", "two words"])
            .output()
            .unwrap()
    };
    let first = supervise();
    assert!(first.status.success(), "{first:?}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["exit_code"], 70);
    assert_eq!(result["stdout"], "PreFlight --force two words\n");
    assert_eq!(result["error"], serde_json::Value::Null);
    assert!(job.join("started").exists());

    let second = supervise();
    assert!(second.status.success(), "{second:?}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "ran\n");
}

#[test]
fn a_normal_run_still_requires_its_flags_and_help_hides_the_supervisor() {
    let bare = Command::new(AGENT)
        .env_remove("CONVOY_CONTROLLER")
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(stderr.contains("--state-dir"), "{stderr}");

    let help = Command::new(AGENT).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--hooks-dir"), "{help}");
    assert!(!help.contains("supervise-hook"), "{help}");
}
