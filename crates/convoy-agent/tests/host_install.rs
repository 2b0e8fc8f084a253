//! The real agent binary installing patches for a stand-in controller: the reboot a
//! reboot-required patch waits for, an agent SIGKILLed in the middle of an install, and patches
//! installed by `install-local` reported once the agent runs.

mod common;

use common::{Agent, FakeConvoyd, Site, eventually};
use convoy_api::patches::InstallPatches;
use convoy_bundle::{Script, Section};
use convoy_core::patch::AgentState;

fn ids(set: &std::collections::BTreeSet<convoy_core::patch::PatchId>) -> Vec<&str> {
    set.iter().map(|id| id.as_str()).collect()
}

#[tokio::test]
async fn after_a_reboot_required_install_the_reboot_command_restarts_the_agent_once() {
    let site = Site::new();
    let controller = FakeConvoyd::start().await;
    let mut agent = Agent::start(&site, &controller);
    let pid = agent.pid();
    let (_, facts) = controller
        .wait_for_heartbeat("the first heartbeat", |_| true)
        .await;
    let first_boot = facts.boot_id;

    let bundle = site
        .bundle("RR1")
        .reboot_required()
        .file(Section::All, "etc/kernel.conf", b"patched\n")
        .build();
    let change = controller.serve(&bundle, true);
    let refused = controller.send(&InstallPatches {
        remove: vec![],
        install: vec![change.clone()],
        force: false,
        host_locked: false,
    });
    let (_, outcome) = controller.wait_for_outcome(refused).await;
    assert!(!outcome.succeeded);
    assert_eq!(outcome.message, "Node must be locked.");
    controller
        .wait_for_heartbeat("install-rejected", |f| {
            f.software.state == AgentState::InstallRejected
        })
        .await;

    let command = controller.send(&InstallPatches {
        remove: vec![],
        install: vec![change],
        force: false,
        host_locked: true,
    });
    let (_, outcome) = controller.wait_for_outcome(command).await;
    assert!(outcome.succeeded, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        "installed RR1; the host needs a reboot: unlocking it reboots it"
    );
    // The install itself does not reboot: the host waits for its unlock's reboot command.
    let (_, facts) = controller
        .wait_for_heartbeat("the report of the install", |f| {
            !f.software.changed_since_boot.is_empty()
        })
        .await;
    assert_eq!(facts.boot_id, first_boot);

    let reboot = controller.send_kind(
        convoy_core::command::CommandKind::Reboot,
        serde_json::Value::Null,
    );
    let (reported_at, outcome) = controller.wait_for_outcome(reboot).await;
    assert!(outcome.succeeded, "{}", outcome.message);
    assert_eq!(outcome.message, "rebooting");

    let (back_at, facts) = controller
        .wait_for_heartbeat("a heartbeat from the new boot", |f| f.boot_id != first_boot)
        .await;
    assert!(
        reported_at < back_at,
        "the outcome was reported before the reboot"
    );
    assert_eq!(ids(&facts.software.installed), ["RR1"]);
    assert!(
        facts.software.changed_since_boot.is_empty(),
        "the reboot took the change in"
    );
    assert_eq!(facts.software.state, AgentState::Idle);
    assert_eq!(site.read("etc/kernel.conf"), "patched\n");
    // The simulated reboot re-executed the agent in place.
    assert!(agent.is_running());
    assert_eq!(agent.pid(), pid);
    let first_heartbeat_of_new_boot = {
        let seen = controller.seen.lock().unwrap();
        seen.heartbeats
            .iter()
            .find(|(_, f)| f.boot_id != first_boot)
            .map(|(n, _)| *n)
            .unwrap()
    };
    assert!(reported_at < first_heartbeat_of_new_boot);
}

#[tokio::test]
async fn an_agent_killed_mid_install_rolls_back_when_it_restarts() {
    let site = Site::new();
    site.write("etc/app.conf", b"operator's config\n", 0o600);
    let before = site.snapshot();
    let controller = FakeConvoyd::start().await;
    // A command handed to the killed agent is not handed out again, so the roll back shows.
    controller.seen.lock().unwrap().redeliver = false;
    let mut agent = Agent::start(&site, &controller);
    controller
        .wait_for_heartbeat("the first heartbeat", |_| true)
        .await;

    // The first run's post-install script signals it has started (every file is in place by
    // then) and hangs; later runs finish at once.
    let started = site.path("post-install-started");
    let bundle = site
        .bundle("P1")
        .file(Section::All, "etc/app.conf", b"patched config\n")
        .file(Section::Worker, "opt/vendor/bin/tool", b"tool")
        .script(
            Script::PostInstall,
            &format!(
                "test -e '{0}' && exit 0\necho $$ > '{0}'\nexec sleep 60",
                started.display()
            ),
        )
        .build();
    let change = controller.serve(&bundle, false);
    let request = InstallPatches {
        remove: vec![],
        install: vec![change],
        force: false,
        host_locked: false,
    };
    let first = controller.send(&request);
    let script_pid: i32 = eventually(
        || {
            std::fs::read_to_string(&started)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        },
        "the post-install script",
    )
    .await;
    assert_eq!(site.read("etc/app.conf"), "patched config\n");
    agent.kill();
    // The hung script leads its own process group; end it as the host's reboot would.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(script_pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(controller.outcome(first).is_none());
    assert_eq!(site.patch_record()["unfinished"]["patch"], "P1");

    let restarted = Agent::start(&site, &controller);
    let (_, facts) = controller
        .wait_for_heartbeat("the report after recovery", |f| {
            f.software.state == AgentState::InstallFailed
        })
        .await;
    assert!(facts.software.installed.is_empty());
    assert_eq!(
        facts.software.last_error.as_deref(),
        Some("the agent stopped while installing P1; the install was rolled back")
    );
    assert_eq!(
        site.snapshot(),
        before,
        "the root is as before, byte for byte"
    );

    // Asked again, the agent completes the install.
    let again = controller.send(&request);
    let (_, outcome) = controller.wait_for_outcome(again).await;
    assert!(outcome.succeeded, "{}", outcome.message);
    assert_eq!(outcome.message, "installed P1");
    assert_eq!(site.read("etc/app.conf"), "patched config\n");
    controller
        .wait_for_heartbeat("patch current", |f| {
            ids(&f.software.installed) == ["P1"] && f.software.state == AgentState::Idle
        })
        .await;
    drop(restarted);
}

/// An agent SIGKILLed while a patch script runs, and asked the same command again once it is
/// back: the script goes on under the hook runner, and the restarted agent adopts it instead
/// of starting a second copy. Every script of the patch runs exactly once.
#[tokio::test]
async fn an_agent_killed_during_a_patch_script_adopts_it_and_never_runs_it_twice() {
    let site = Site::new();
    let controller = FakeConvoyd::start().await;
    let mut agent = Agent::start(&site, &controller);
    controller
        .wait_for_heartbeat("the first heartbeat", |_| true)
        .await;

    // Each script notes each run; post-install then waits for the test's go-ahead.
    let runs = site.path("runs");
    let go = site.path("go");
    let bundle = site
        .bundle("P1")
        .file(Section::All, "etc/app.conf", b"patched config\n")
        .script(
            Script::PreInstall,
            &format!("echo pre-install >> '{}'", runs.display()),
        )
        .script(
            Script::PostInstall,
            &format!(
                "echo post-install >> '{0}'\nwhile [ ! -e '{1}' ]; do sleep 0.05; done",
                runs.display(),
                go.display()
            ),
        )
        .build();
    let change = controller.serve(&bundle, false);
    let command = controller.send(&InstallPatches {
        remove: vec![],
        install: vec![change],
        force: false,
        host_locked: false,
    });
    eventually(
        || {
            std::fs::read_to_string(&runs)
                .ok()?
                .contains("post-install")
                .then_some(())
        },
        "the post-install script to start",
    )
    .await;
    agent.kill();
    assert!(controller.outcome(command).is_none());

    // The restarted agent gets the same command again (a new session): it rolls the
    // unfinished change back, places the files again and finds both scripts' runs.
    let restarted = Agent::start(&site, &controller);
    std::fs::write(&go, b"").unwrap();
    let (_, outcome) = controller.wait_for_outcome(command).await;
    assert!(outcome.succeeded, "{}", outcome.message);
    assert_eq!(site.read("etc/app.conf"), "patched config\n");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "pre-install\npost-install\n",
        "a script ran twice"
    );
    drop(restarted);
}

#[tokio::test]
async fn patches_installed_locally_are_reported_once_the_agent_runs() {
    let site = Site::new();
    let a = site.bundle("A").file(Section::All, "etc/a", b"a").build();
    let b = site
        .bundle("B")
        .requires("A")
        .file(Section::All, "etc/b", b"b")
        .build();
    let output = site.install_local(&[&b, &a]);
    assert!(output.status.success());

    let controller = FakeConvoyd::start().await;
    let _agent = Agent::start(&site, &controller);
    let (_, facts) = controller
        .wait_for_heartbeat("the first heartbeat", |_| true)
        .await;
    assert_eq!(ids(&facts.software.installed), ["A", "B"]);
    assert_eq!(ids(&facts.software.changed_since_boot), ["A", "B"]);
    assert_eq!(facts.software.release.unwrap().as_str(), "25.09");
    assert_eq!(facts.software.state, AgentState::Idle);
}
