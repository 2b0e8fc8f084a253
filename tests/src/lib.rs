//! The end-to-end harness: a real `convoyd` and real `convoy-agent`s on loopback, each site in
//! its own temporary directory, driven through the real `convoy` CLI or the typed client.
//!
//! The binaries must be built first (`cargo build --workspace --bins`; `scripts/test` does
//! it). Every wait is a condition polled until a deadline.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use convoy_api::Client;
use convoy_api::hosts::Host;
use convoy_core::host::{Availability, Personality};
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until,
};
use tempfile::TempDir;

pub mod dc;

pub use convoy_launch;

/// The ping interval the tests run with, in seconds.
pub const PING_INTERVAL: u64 = 1;

/// A site under test. Dropping it kills every process; if the test is failing, the logs'
/// tails are printed first.
pub struct Site {
    pub dir: TempDir,
    pub binaries: Binaries,
    pub controller: ControllerProcess,
    pub agents: Vec<AgentProcess>,
    admin_token: String,
    /// More flags for every agent started from now on.
    pub agent_args: Vec<String>,
}

/// One host to start an agent for.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub hostname: &'static str,
    pub personality: Personality,
    pub zone: Option<&'static str>,
    pub pod: Option<&'static str>,
    pub cluster: Option<&'static str>,
    /// CPU load the agent reports (capacity is 4 CPUs, 8192 MiB).
    pub load_cpus: f64,
}

impl HostSpec {
    pub fn new(hostname: &'static str, personality: Personality) -> Self {
        HostSpec {
            hostname,
            personality,
            zone: None,
            pod: None,
            cluster: None,
            load_cpus: 0.0,
        }
    }
}

/// `count` workers named `worker-0`, `worker-1`, ... in zone-a, pod-1, cluster-1.
pub fn workers(count: usize) -> Vec<HostSpec> {
    const NAMES: [&str; 8] = [
        "worker-0", "worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6",
        "worker-7",
    ];
    NAMES[..count]
        .iter()
        .map(|name| HostSpec {
            zone: Some("zone-a"),
            pod: Some("pod-1"),
            cluster: Some("cluster-1"),
            ..HostSpec::new(name, Personality::Worker)
        })
        .collect()
}

/// The usual three hosts: one controller and two workers in one cluster.
pub fn three_hosts() -> Vec<HostSpec> {
    let mut hosts = vec![
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("worker-0", Personality::Worker),
        HostSpec::new("worker-1", Personality::Worker),
    ];
    for host in &mut hosts {
        host.zone = Some("zone-a");
        host.pod = Some("pod-1");
        host.cluster = Some("cluster-1");
    }
    hosts
}

impl Site {
    /// A controller (with `config` as its settings file, if given) and no agents, on plain
    /// HTTP over loopback.
    pub async fn controller_only(config: Option<&str>) -> Site {
        Self::controller(config, false).await
    }

    /// A controller serving HTTPS with its self-signed certificate, which the site's agents
    /// and CLI runs trust as their CA.
    pub async fn with_tls(hosts: &[HostSpec]) -> Site {
        let mut site = Self::controller(None, true).await;
        for host in hosts {
            site.start_agent(host);
        }
        site.wait_available(hosts.len()).await;
        site
    }

    /// A controller with more convoyd flags and no agents; HTTPS if `tls`.
    pub async fn with_args(tls: bool, args: &[&str]) -> Site {
        Self::controller_with(None, tls, args).await
    }

    async fn controller(config: Option<&str>, tls: bool) -> Site {
        Self::controller_with(config, tls, &[]).await
    }

    async fn controller_with(config: Option<&str>, tls: bool, args: &[&str]) -> Site {
        convoy_api::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("convoy-e2e-")
            .tempdir()
            .expect("temporary directory");
        let binaries = Binaries::locate().expect("binaries built");
        let mut extra_args = vec![];
        if let Some(config) = config {
            let path = dir.path().join("convoyd.toml");
            std::fs::write(&path, config).expect("write config");
            extra_args = vec!["--config".into(), path.display().to_string()];
        }
        extra_args.extend(args.iter().map(|a| a.to_string()));
        let controller = ControllerProcess::start(
            &binaries,
            ControllerOptions {
                data_dir: dir.path().join("controller"),
                port: free_port().expect("free port"),
                ping_interval: PING_INTERVAL,
                tls,
                extra_args,
            },
        )
        .await
        .expect("convoyd starts");
        let password = controller.admin_password().expect("admin password");
        let admin_token = controller
            .client()
            .unwrap()
            .login("admin", &password)
            .await
            .expect("admin logs in");
        Site {
            dir,
            binaries,
            controller,
            agents: vec![],
            admin_token,
            agent_args: vec![],
        }
    }

    /// A controller and one agent per host, all enrolled and available.
    pub async fn with_hosts(hosts: &[HostSpec]) -> Site {
        let mut site = Site::controller_only(None).await;
        for host in hosts {
            site.start_agent(host);
        }
        site.wait_available(hosts.len()).await;
        site
    }

    pub fn start_agent(&mut self, host: &HostSpec) {
        let mut options = AgentOptions::new(
            host.hostname,
            host.personality,
            &self.dir.path().join("hosts"),
        );
        options.zone = host.zone.map(Into::into);
        options.pod = host.pod.map(Into::into);
        options.cluster = host.cluster.map(Into::into);
        options.capacity_cpus = Some(4);
        options.capacity_memory_mib = Some(8192);
        let hooks = self.hooks_dir(host.hostname);
        std::fs::create_dir_all(&hooks).expect("hooks dir");
        options.extra_args = vec![
            "--hooks-dir".into(),
            hooks.display().to_string(),
            "--load-cpus".into(),
            host.load_cpus.to_string(),
            "--load-memory-mib".into(),
            "0".into(),
        ];
        options.extra_args.extend(self.agent_args.iter().cloned());
        let agent =
            AgentProcess::start(&self.binaries, &self.controller, options).expect("agent starts");
        self.agents.push(agent);
    }

    /// Starts an agent whose `--root` is `root(hostname)`.
    pub fn start_agent_with_root(&mut self, host: &HostSpec) {
        let root = self.root(host.hostname);
        std::fs::create_dir_all(&root).expect("root dir");
        let saved = self.agent_args.clone();
        self.agent_args
            .extend(["--root".to_string(), root.display().to_string()]);
        self.start_agent(host);
        self.agent_args = saved;
    }

    /// The directory a host's agent installs patches under.
    pub fn root(&self, hostname: &str) -> std::path::PathBuf {
        self.dir.path().join("roots").join(hostname)
    }

    pub fn agent(&mut self, hostname: &str) -> &mut AgentProcess {
        self.agents
            .iter_mut()
            .find(|a| a.hostname() == hostname)
            .expect("agent of that host")
    }

    /// A client logged in as admin.
    pub fn admin(&self) -> Client {
        self.controller
            .client()
            .unwrap()
            .with_token(&self.admin_token)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn url(&self) -> String {
        self.controller.url()
    }

    /// Waits until `count` hosts are known and all available.
    pub async fn wait_available(&self, count: usize) -> Vec<Host> {
        let admin = self.admin();
        let hosts = wait_until(
            Deadline::after(Duration::from_secs(30)),
            &format!("{count} available hosts"),
            || async {
                let hosts = admin.hosts().await.ok()?;
                (hosts.len() == count
                    && hosts
                        .iter()
                        .all(|h| h.availability == Availability::Available))
                .then_some(hosts)
            },
        )
        .await
        .expect("hosts become available");
        // The controller counts a host available from its enrolment, a moment before the
        // agent has saved what the enrolment answered: wait for that too.
        wait_until(
            Deadline::after(Duration::from_secs(30)),
            "every agent's saved identity",
            || async {
                self.agents
                    .iter()
                    .all(|a| a.options.state_dir.join("identity.json").exists())
                    .then_some(())
            },
        )
        .await
        .expect("agents save their identity");
        hosts
    }

    /// Waits until `hostname` has the given availability; returns how long it took.
    pub async fn wait_availability(
        &self,
        hostname: &str,
        wanted: Availability,
        within: Duration,
    ) -> Duration {
        let admin = self.admin();
        let started = std::time::Instant::now();
        wait_until(
            Deadline::after(within),
            &format!("{hostname} to be {wanted:?}"),
            || async {
                let host = admin.host(hostname).await.ok()?;
                (host.availability == wanted).then_some(())
            },
        )
        .await
        .expect("availability changes");
        started.elapsed()
    }

    /// Runs the real `convoy` CLI against this site, authenticated as admin.
    pub async fn convoy(&self, args: &[&str]) -> CliRun {
        self.convoy_as(&[("CONVOY_TOKEN", self.admin_token.as_str())], args)
            .await
    }

    /// Adds user `name` with `role` (password `<name>-password`) and returns the environment
    /// that makes the CLI log in as them.
    pub async fn add_user(
        &self,
        name: &'static str,
        role: convoy_core::role::Role,
    ) -> [(&'static str, String); 2] {
        let password = format!("{name}-password");
        self.admin()
            .add_user(&convoy_api::users::NewUser {
                name: name.into(),
                password: password.clone(),
                role,
            })
            .await
            .unwrap();
        [
            ("CONVOY_USERNAME", name.to_string()),
            ("CONVOY_PASSWORD", password),
        ]
    }

    /// Runs the real `convoy` CLI with only the given environment for credentials.
    pub async fn convoy_as<V: AsRef<str>>(&self, env: &[(&str, V)], args: &[&str]) -> CliRun {
        let ca_cert = self.controller.ca_cert().map(|c| c.display().to_string());
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        if let Some(ca_cert) = &ca_cert {
            env.push(("CONVOY_CA_CERT", ca_cert));
        }
        run_cli(&self.binaries.convoy, &self.url(), &env, args).await
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- convoyd log ({}):\n{}",
                self.controller.log().display(),
                tail(self.controller.log())
            );
            for agent in &self.agents {
                eprintln!("--- {} log:\n{}", agent.hostname(), tail(agent.log()));
            }
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Site {
    /// The hooks directory of a host's agent.
    pub fn hooks_dir(&self, hostname: &str) -> std::path::PathBuf {
        self.dir.path().join("hooks").join(hostname)
    }

    /// The file every standard hook appends `<host> <Stage> <args...>` to.
    pub fn hook_log(&self) -> std::path::PathBuf {
        self.dir.path().join("hooks.log")
    }

    /// Writes an executable `#!/bin/sh` hook for a host's stage. `{log}`, `{host}` and
    /// `{stage}` in `body` are replaced.
    pub fn write_hook(&self, hostname: &str, stage: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.hooks_dir(hostname).join(stage);
        let body = body
            .replace("{log}", &self.hook_log().display().to_string())
            .replace("{host}", hostname)
            .replace("{stage}", stage)
            .replace("{dir}", &self.dir.path().display().to_string());
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod hook");
    }

    /// The four stages, each logging its line and printing `<Stage> done on <host>`.
    pub fn write_standard_hooks(&self, hostname: &str) {
        for stage in [
            "PreFlight",
            "PreMaintenance",
            "Maintenance",
            "PostMaintenance",
        ] {
            self.write_hook(hostname, stage, STANDARD_HOOK);
        }
    }

    /// The hook log's lines, each split into words.
    pub fn hook_lines(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.hook_log())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// Waits until the strategy reaches a terminal state and returns it.
    pub async fn wait_strategy_end(&self, within: Duration) -> convoy_api::strategies::Strategy {
        let admin = self.admin();
        wait_until(Deadline::after(within), "the strategy to end", || async {
            let strategy = admin.rolling_maintenance().await.ok()?;
            strategy.state.is_terminal().then_some(strategy)
        })
        .await
        .expect("the strategy ends")
    }

    /// Waits until the step of `target` is in `state`.
    pub async fn wait_step_state(&self, target: &str, state: &str, within: Duration) {
        let admin = self.admin();
        wait_until(
            Deadline::after(within),
            &format!("step {target} to be {state}"),
            || async {
                let steps = admin.strategy_steps().await.ok()?;
                steps
                    .iter()
                    .any(|s| s.target == target && s.state == state)
                    .then_some(())
            },
        )
        .await
        .expect("the step reaches the state");
    }
}

/// Patch signing for tests: a key made by the real `convoy key generate`.
pub struct PatchKeys {
    pub signing: std::path::PathBuf,
    pub public: std::path::PathBuf,
}

impl Site {
    /// Generates a signing key with the CLI into the site's directory.
    pub async fn generate_patch_key(&self, name: &str) -> PatchKeys {
        let dir = self.dir.path().join(name);
        let dir_arg = dir.display().to_string();
        self.convoy(&["key", "generate", "--out", &dir_arg])
            .await
            .ok();
        PatchKeys {
            signing: dir.join("patch-signing.pem"),
            public: dir.join("patch-signing.pub.pem"),
        }
    }

    /// A controller that trusts a freshly generated key, and that key.
    pub async fn with_patch_key(hosts: &[HostSpec]) -> (Site, PatchKeys) {
        Self::with_patch_key_and(hosts, "").await
    }

    /// As [`Site::with_patch_key`], with `settings` added to the controller's settings file.
    pub async fn with_patch_key_and(hosts: &[HostSpec], settings: &str) -> (Site, PatchKeys) {
        // The key must exist before the controller starts, so it is made in a directory of
        // its own and copied into the site's afterwards.
        let keys_dir = tempfile::tempdir().expect("temp dir");
        let binaries = Binaries::locate().expect("binaries built");
        let dir_arg = keys_dir.path().display().to_string();
        run_cli(
            &binaries.convoy,
            "http://127.0.0.1:1",
            &[],
            &["key", "generate", "--out", &dir_arg],
        )
        .await
        .ok();
        let config = format!(
            "trusted_keys = [{:?}]\n{settings}",
            keys_dir
                .path()
                .join("patch-signing.pub.pem")
                .display()
                .to_string()
        );
        let mut site = Site::controller_only(Some(&config)).await;
        let keys = PatchKeys {
            signing: site.dir.path().join("patch-signing.pem"),
            public: site.dir.path().join("patch-signing.pub.pem"),
        };
        std::fs::copy(keys_dir.path().join("patch-signing.pem"), &keys.signing).expect("copy key");
        std::fs::copy(keys_dir.path().join("patch-signing.pub.pem"), &keys.public)
            .expect("copy key");
        // A restarted controller reads its settings again: they name the site's own copy.
        std::fs::write(
            site.dir.path().join("convoyd.toml"),
            format!(
                "trusted_keys = [{:?}]\n{settings}",
                keys.public.display().to_string()
            ),
        )
        .expect("rewrite config");
        // Agents trust the same key, install under their own root, and "reboot" by restarting.
        site.agent_args = vec![
            "--trusted-key".into(),
            keys.public.display().to_string(),
            "--reboot-command".into(),
            "restart-agent".into(),
        ];
        for host in hosts {
            site.start_agent_with_root(host);
        }
        site.wait_available(hosts.len()).await;
        (site, keys)
    }

    /// Builds `<id>.patch` with the real CLI into `<site>/patches-out`; `args` are more
    /// `convoy patch build` options. Returns the file.
    pub async fn build_patch(
        &self,
        keys: &PatchKeys,
        id: &str,
        args: &[&str],
    ) -> std::path::PathBuf {
        let out = self.dir.path().join("patches-out");
        std::fs::create_dir_all(&out).expect("out dir");
        let key = keys.signing.display().to_string();
        let out_arg = out.display().to_string();
        let mut argv = vec![
            "patch",
            "build",
            "--id",
            id,
            "--release",
            "25.09",
            "--key",
            &key,
            "-o",
            &out_arg,
        ];
        argv.extend_from_slice(args);
        self.convoy(&argv).await.ok();
        out.join(format!("{id}.patch"))
    }

    /// Builds a released, in-service patch `id` that puts `contents` at `install_path` on
    /// workers; `more` are more `convoy patch build` options (scripts, say).
    pub async fn build_worker_patch(
        &self,
        keys: &PatchKeys,
        id: &str,
        install_path: &str,
        contents: &str,
        more: &[&str],
    ) -> std::path::PathBuf {
        let source = self.source(&format!("{id}.source"), contents);
        let file = format!("{}={install_path}", source.display());
        let mut args = vec![
            "--status",
            "REL",
            "--reboot-required",
            "N",
            "--worker",
            &file,
        ];
        args.extend_from_slice(more);
        self.build_patch(keys, id, &args).await
    }

    /// Builds a released worker bundle `id` (reboot-required if `reboot`) that puts `k` at
    /// `etc/<id>.conf`, with `pre_install` (a `/bin/sh` body) as its pre-install script.
    pub async fn build_worker_patch_with_pre_install(
        &self,
        keys: &PatchKeys,
        id: &str,
        reboot: bool,
        pre_install: &str,
    ) -> std::path::PathBuf {
        let pre = self.source(
            &format!("{id}-pre.sh"),
            &format!("#!/bin/sh\n{pre_install}\n"),
        );
        let source = self.source(&format!("{id}.source"), "k\n");
        let payload = format!("{}=etc/{id}.conf", source.display());
        let pre = pre.display().to_string();
        let args = [
            "--status",
            "REL",
            "--reboot-required",
            if reboot { "Y" } else { "N" },
            "--worker",
            &payload,
            "--pre-install",
            &pre,
        ];
        self.build_patch(keys, id, &args).await
    }

    /// As [`Site::build_worker_patch_with_pre_install`], the script appending the output of
    /// `line` (a shell command) to `log` and then waiting until `gate` exists: a test holds
    /// an install where it wants it.
    pub async fn build_gated_worker_patch(
        &self,
        keys: &PatchKeys,
        id: &str,
        reboot: bool,
        line: &str,
        log: &std::path::Path,
        gate: &std::path::Path,
    ) -> std::path::PathBuf {
        let script = format!(
            "{line} >> {}\nwhile [ ! -e {} ]; do sleep 0.05; done",
            log.display(),
            gate.display()
        );
        self.build_worker_patch_with_pre_install(keys, id, reboot, &script)
            .await
    }

    /// As [`Site::build_worker_patch_with_pre_install`], the install failing ("injected
    /// failure") on a host that has a file `fail` in its root.
    pub async fn build_worker_patch_failing_on_flag(
        &self,
        keys: &PatchKeys,
        id: &str,
        reboot: bool,
    ) -> std::path::PathBuf {
        let script = "if [ -e \"$CONVOY_ROOT/fail\" ]; then echo injected failure; exit 1; fi";
        self.build_worker_patch_with_pre_install(keys, id, reboot, script)
            .await
    }

    /// Writes a payload source file under `<site>/sources`.
    pub fn source(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let dir = self.dir.path().join("sources");
        std::fs::create_dir_all(&dir).expect("sources dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write source");
        path
    }
}

/// Settings that run the original's waits and timeouts in hundredths (system-stabilize 15 s
/// takes 0.15 s, an install may take 18 s).
pub const FAST_STEPS: &str = "[step_durations]\nstep_time_scale = 0.01\n";

/// Two controllers and two workers.
pub fn duplex_site() -> Vec<HostSpec> {
    vec![
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("controller-1", Personality::Controller),
        HostSpec::new("worker-0", Personality::Worker),
        HostSpec::new("worker-1", Personality::Worker),
    ]
}

impl Site {
    /// The software-update strategy of `kind` as the VIM API shows it (null when none).
    pub async fn sw_update_strategy(
        &self,
        kind: convoy_core::sw_update::options::SwUpdateKind,
    ) -> serde_json::Value {
        self.admin().sw_update_strategy(kind).await.unwrap()["strategy"].clone()
    }

    /// Waits until the strategy of `kind` is in VIM state `wanted`; panics with the hosts
    /// and the strategy if it never is.
    pub async fn wait_sw_update_state(
        &self,
        kind: convoy_core::sw_update::options::SwUpdateKind,
        wanted: &str,
    ) -> serde_json::Value {
        let waited = wait_until(
            Deadline::after(Duration::from_secs(60)),
            &format!("the strategy to be {wanted}"),
            || async {
                let s = self.sw_update_strategy(kind).await;
                (s["state"] == wanted).then_some(s)
            },
        )
        .await;
        match waited {
            Ok(s) => s,
            Err(e) => panic!(
                "{e:?}; hosts {:?} {:?}; the strategy is {:#}",
                self.admin().patch_hosts().await,
                self.admin().hosts().await,
                self.sw_update_strategy(kind).await
            ),
        }
    }
}

/// A hook that logs `<host> <Stage> <args...>` and prints a line.
pub const STANDARD_HOOK: &str =
    "echo \"{host} {stage} $*\" >> {log}\necho \"{stage} done on {host}\"";

/// Waits until the agent's process has exited on its own.
pub async fn wait_exited(agent: &mut AgentProcess, within: Duration) {
    let deadline = Deadline::after(within);
    while agent.check_running().is_ok() {
        assert!(
            !deadline.passed(),
            "{} still running after {within:?}",
            agent.hostname()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a CLI run printed and how it exited.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "convoy failed: {self:?}");
        &self.stdout
    }

    /// Parses stdout as JSON (after asserting success).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts failure with `code` and a single line on stderr, and returns that line.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        let line = self.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "stderr must be one line: {self:?}");
        line
    }
}

pub async fn run_cli(binary: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> CliRun {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .env_remove("CONVOY_TOKEN")
        .env_remove("CONVOY_USERNAME")
        .env_remove("CONVOY_PASSWORD")
        .env_remove("CONVOY_CA_CERT")
        .env_remove("CONVOY_TLS_FINGERPRINT")
        .env("CONVOY_URL", url)
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let output: Output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("convoy finishes within 60s")
        .expect("convoy runs");
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Facts of a small host, for requests that enrol or heartbeat without a real agent.
pub fn host_facts() -> convoy_api::agent::HostFacts {
    convoy_api::agent::HostFacts {
        capacity_cpus: 1,
        capacity_memory_mib: 1024,
        load_cpus: 0.0,
        load_memory_mib: 0,
        boot_id: "b".into(),
        os: "test".into(),
        agent_version: "0".into(),
        state_fs_free_bytes: 1,
        maintenance: false,
        software: Default::default(),
        instances: Vec::new(),
    }
}
