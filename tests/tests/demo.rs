//! `convoy demo` runs a site, shows its hosts and says what it does at each step.

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
    for host in ["controller-0", "controller-1", "worker-0", "worker-1"] {
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

    // It says what it does from its first line, each step as it starts and ends, and its
    // total time; with prebuilt binaries (no `CARGO`) it builds nothing.
    assert!(
        stdout.starts_with("Convoy demo: a controller and four hosts on this machine.\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("Building convoyd"), "{stdout}");
    let steps = [
        "==> Starting the controller (convoyd) on 127.0.0.1:",
        "\n    done in ",
        "==> Enrolling 4 agents (controller-0, controller-1, worker-0, worker-1)",
        "\n    done in ",
        "$ convoy host list",
        "==> Running a rolling maintenance strategy over cluster-1",
        "Rolling maintenance complete",
        "\n    done in ",
        "==> Building a signed reboot-required patch and rolling it over the site with a patch strategy",
        "$ convoy patch-strategy create --worker-apply-type parallel",
        "$ convoy patch-strategy apply --wait",
        "stage 0 sw-patch-controllers: lock-hosts [\"controller-1\"]",
        "stage 1 sw-patch-controllers: swact-hosts [\"controller-0\"]",
        "stage 2 sw-patch-worker-hosts: sw-patch-hosts [\"worker-0\",\"worker-1\"]",
        "state:",
        "applied",
        "$ convoy patch query-hosts",
        "\n    done in ",
        "The site is running (ready in ",
    ];
    let mut from = 0;
    for step in steps {
        let at = stdout[from..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing, or out of order, in:\n{stdout}"));
        from += at + step.len();
    }
    let ready = stdout
        .split("The site is running (ready in ")
        .nth(1)
        .and_then(|rest| rest.split(" s)").next())
        .unwrap();
    assert!(ready.parse::<f64>().is_ok(), "{ready}");
}

#[test]
fn demo_help_says_what_it_starts_where_it_writes_and_how_to_stop_it() {
    let binaries = convoy_e2e::convoy_launch::Binaries::locate().unwrap();
    let help = std::process::Command::new(&binaries.convoy)
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "convoyd",
        "convoy-agents",
        "temporary directory",
        "Ctrl-C",
        "--dir",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}
