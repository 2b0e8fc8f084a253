//! `convoy demo` runs a site and shows its hosts.

use std::time::Duration;

#[tokio::test]
async fn the_demo_shows_its_hosts_and_maintains_them() {
    let binaries = convoy_e2e::convoy_launch::Binaries::locate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&binaries.convoy)
            .args(["demo", "--once", "--dir"])
            .arg(dir.path())
            .env_remove("CARGO")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the demo finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for host in ["controller-0", "worker-0", "worker-1"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {host} ")))
            .unwrap_or_else(|| panic!("{host} missing from {stdout}"));
        assert!(row.contains("available"), "{row}");
    }
    assert!(stdout.contains("export CONVOY_URL="), "{stdout}");
    // It also ran a rolling maintenance over its hosts and printed the report.
    assert!(
        stdout.contains("Rolling maintenance complete: success=true details=OK"),
        "{stdout}"
    );
    for host in ["controller-0", "worker-0", "worker-1"] {
        assert!(
            stdout.contains(&format!("updating packages on {host}")),
            "{stdout}"
        );
    }
}
