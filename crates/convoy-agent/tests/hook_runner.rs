//! The built `convoy-agent` binary in its hidden `hook-runner` mode. (The unit tests in
//! src/hooks/ cover the protocol through the test binary; this checks the real binary's
//! command line reaches it, that it detaches and serves, and that normal runs still demand
//! their flags.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Sends one request line and returns the reply line.
fn ask(socket: &Path, request: &serde_json::Value) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[test]
fn the_agent_binary_runs_a_hook_once_and_records_its_outcome() {
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
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    // Not a pipe: the detached runner keeps its output open as long as it lives.
    let log = std::fs::File::create(dir.path().join("runner.log")).unwrap();
    let started = Command::new(AGENT)
        // The agent's own environment is inherited; it must not disturb this mode.
        .env("CONVOY_CONTROLLER", "http://127.0.0.1:9")
        .args(["hook-runner", "--idle-ms", "200", "--jobs-dir"])
        .arg(&jobs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    // The process started returns once the detached runner listens.
    assert!(started.success(), "{started:?}");
    let socket = jobs.join("runner.sock");
    let job = "0b5e3a52-8d6f-4c1e-9a57-3f0f1d2c4b6a";
    let request = serde_json::json!({
        "job": job,
        "stage": "PreFlight",
        "timeout_seconds": 30,
        "script": script,
        "args": ["--force", "two words"],
    });
    let reply = ask(&socket, &request);
    assert_eq!(reply["outcome"], "ended", "{reply}");
    let run = &reply["run"];
    assert_eq!(run["exit_code"], 70);
    assert_eq!(run["stdout"], "PreFlight --force two words\n");
    assert_eq!(run["error"], serde_json::Value::Null);

    // Asked again, it answers from its record and does not run the hook again.
    assert_eq!(ask(&socket, &request), reply);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "ran\n");
    let journal = std::fs::read_to_string(jobs.join("journal")).unwrap();
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{journal}");
    assert_eq!(records[0]["started"]["job"], job);
    assert_eq!(records[1]["ended"]["run"], *run);

    // Idle, it exits and takes its socket with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "the runner is still there");
}

#[test]
fn a_normal_run_still_requires_its_flags_and_help_hides_the_runner() {
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
    assert!(!help.contains("hook-runner"), "{help}");
}
