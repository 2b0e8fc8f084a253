//! The agent's connection to its controller: enrol once, then heartbeat and take commands,
//! reconnecting with backoff whenever the controller is away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use convoy_api::agent::{
    CarriedOutcome, CommandDelivery, Enrolment, FollowedBy, Heartbeat, OutcomeReport,
};
use convoy_api::hosts::CommandOutcome;
use convoy_api::{Client, ClientError, Trust};
use convoy_bundle::TrustedKeys;
use tracing::{info, warn};

use crate::Args;
use crate::commands::{Delivery, Runner};
use crate::facts::FactSource;
use crate::hooks::Hooks;
use crate::identity::{self, Identity};
use crate::instances::Instances;
use crate::ledger::Ledger;
use crate::maintenance::MaintenanceFlag;
use crate::patches::download::BundleSource;
use crate::patches::{HostPatches, Installer};

/// Error code convoyd answers when it does not know the host credential.
const UNKNOWN_CREDENTIAL: &str = "unknown_credential";
/// How long one command poll is held open by the controller.
const POLL_WAIT: Duration = Duration::from_secs(25);
const DEFAULT_PING_INTERVAL: u64 = 10;
/// How long the report of a command that carries another (entering maintenance, with the
/// Maintenance hook) waits for the carried one to end, so that both go in one request: a
/// trivial hook saves a request, and a long one is only shown in maintenance this much later.
const CARRIED_REPORT_WITHIN: Duration = Duration::from_secs(1);

pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    // The host credential, the hook journal and the patch record live here: the agent's only.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", args.state_dir.display()))?;
    }
    let facts = FactSource {
        state_dir: args.state_dir.clone(),
        capacity_cpus: args.capacity_cpus,
        capacity_memory_mib: args.capacity_memory_mib,
        load_cpus: args.load_cpus,
        load_memory_mib: args.load_memory_mib,
        maintenance: MaintenanceFlag::new(&args.state_dir),
        release: Some(args.release.clone()),
        instances: Instances::default(),
    };
    let hooks = Hooks {
        hooks_dir: args.hooks_dir.clone(),
        jobs_dir: args.state_dir.join("jobs"),
        agent_binary: std::env::current_exe().context("cannot find the agent's own executable")?,
        env: hook_env(&args)?,
    };
    // The instances are listed before enrolment, so the first facts carry them.
    facts.instances.refresh(&hooks).await;
    let ledger = Ledger::open(&args.state_dir)?;
    let trusted = TrustedKeys::read(&args.trusted_keys).context(
        "cannot read a --trusted-key; give the PEM public key the site's patches are signed with",
    )?;
    if trusted.is_empty() {
        warn!("no --trusted-key: every patch install will be refused");
    }
    let mut installer = Installer::new(
        &args.state_dir,
        &args.root,
        args.personality,
        args.release.clone(),
        trusted,
    );
    if convoy_api::trust::insecure_over_network(&args.controller) {
        warn!(
            controller = args.controller,
            "plain HTTP to the controller: the host credential and commands cross the network \
             in clear text; use https://"
        );
    }
    let interval = Arc::new(AtomicU64::new(DEFAULT_PING_INTERVAL));
    let saved = identity::load(&args.state_dir, &args.hostname)?;
    let trust = trust(&args, saved.as_ref())?;
    let controller = Client::with_trust(&args.controller, &trust)?;

    let identity = match saved {
        Some(identity) => {
            info!(host = identity.hostname, "starting with the saved identity");
            identity
        }
        None => enrol(&controller, &args, &facts, &interval).await?,
    };
    // Patch scripts of the controller's commands run under the hook runner, exactly once.
    installer.runner = Some(hooks.clone());
    let bundles = BundleSource::new(&args.controller, &identity.credential, &trust)?;
    let patches = HostPatches::new(installer, Some(bundles), args.reboot_command.clone());
    // Before taking commands: an install a crash interrupted is undone first.
    patches.start().await;
    let hooks_for_instances = hooks.clone();
    let runner = Runner::new(ledger, facts.clone(), hooks, patches);
    let client = controller.with_token(identity.credential);
    info!(
        host = identity.hostname,
        controller = args.controller,
        "agent running"
    );

    tokio::spawn(facts.instances.clone().keep_fresh(hooks_for_instances));
    tokio::select! {
        result = heartbeats(client.clone(), facts, interval.clone()) => result,
        result = take_commands(client, runner, interval) => result,
        _ = shutdown_signal() => {
            info!("stopping");
            Ok(())
        }
    }
}

/// Grows the wait between attempts from 200 ms up to the ping interval, so a returning
/// controller is found again within one interval.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_millis(200),
        }
    }

    fn wait(&mut self, cap_seconds: u64) -> Duration {
        let cap = Duration::from_secs(cap_seconds.max(1));
        let now = self.next.min(cap);
        self.next = (self.next * 2).min(cap);
        now
    }
}

async fn enrol(
    controller: &Client,
    args: &Args,
    facts: &FactSource,
    interval: &AtomicU64,
) -> anyhow::Result<Identity> {
    let token = std::fs::read_to_string(&args.enrol_token_file).with_context(|| {
        format!(
            "cannot read the enrolment token file {}",
            args.enrol_token_file.display()
        )
    })?;
    let mut backoff = Backoff::new();
    loop {
        let request = Enrolment {
            enrolment_token: token.trim().to_string(),
            hostname: args.hostname.clone(),
            personality: args.personality,
            zone: args.zone.clone(),
            pod: args.pod.clone(),
            cluster: args.cluster.clone(),
            facts: facts.collect(),
        };
        match controller.enrol(&request).await {
            Ok(accepted) => {
                // The certificate this client's trust accepted is pinned for later starts.
                let tls_fingerprint = match args.tls_fingerprint.clone() {
                    Some(pinned) => Some(pinned),
                    None => controller.controller_fingerprint().await.unwrap_or(None),
                };
                let identity = Identity {
                    hostname: accepted.hostname,
                    credential: accepted.credential,
                    tls_fingerprint,
                };
                identity::save(&args.state_dir, &identity)?;
                interval.store(accepted.ping_interval_seconds, Ordering::Relaxed);
                info!(host = identity.hostname, "enrolled");
                return Ok(identity);
            }
            Err(ClientError::Api {
                status, message, ..
            }) if (400..500).contains(&status) => {
                bail!("{message}")
            }
            Err(e) => {
                let pause = backoff.wait(interval.load(Ordering::Relaxed));
                warn!("enrolment: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// What every hook is told of its agent: the controller, the state directory and the agent's
/// binary, so that `"$CONVOY_AGENT" alarm raise ...` works from a hook without flags.
fn hook_env(args: &Args) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut env = std::collections::BTreeMap::new();
    let exe = std::env::current_exe().context("cannot find the agent's own executable")?;
    env.insert("CONVOY_AGENT".into(), exe.display().to_string());
    env.insert("CONVOY_CONTROLLER".into(), args.controller.clone());
    env.insert(
        "CONVOY_AGENT_STATE_DIR".into(),
        std::path::absolute(&args.state_dir)?.display().to_string(),
    );
    if let Some(ca) = &args.ca_cert {
        env.insert(
            "CONVOY_CA_CERT".into(),
            std::path::absolute(ca)?.display().to_string(),
        );
    }
    Ok(env)
}

/// How the agent trusts its controller: `--ca-cert`, else `--tls-fingerprint`, else the
/// fingerprint pinned at enrolment, else the system's certificate authorities.
fn trust(args: &Args, saved: Option<&Identity>) -> anyhow::Result<Trust> {
    if let Some(ca) = &args.ca_cert {
        return Ok(Trust::ca_file(ca)?);
    }
    let pinned = args
        .tls_fingerprint
        .as_deref()
        .or_else(|| saved.and_then(|s| s.tls_fingerprint.as_deref()));
    Ok(match pinned {
        Some(fingerprint) => Trust::fingerprint(fingerprint)?,
        None => Trust::System,
    })
}

fn credential_revoked(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { code, .. } if code == UNKNOWN_CREDENTIAL)
}

async fn heartbeats(
    client: Client,
    facts: FactSource,
    interval: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new();
    let mut connected = None;
    loop {
        let facts_now = {
            let facts = facts.clone();
            tokio::task::spawn_blocking(move || facts.collect()).await?
        };
        let pause = match client.heartbeat(&Heartbeat { facts: facts_now }).await {
            Ok(accepted) => {
                interval.store(accepted.ping_interval_seconds, Ordering::Relaxed);
                if connected != Some(true) {
                    info!("connected to the controller");
                }
                connected = Some(true);
                backoff = Backoff::new();
                Duration::from_secs(accepted.ping_interval_seconds.max(1))
            }
            Err(e) if credential_revoked(&e) => bail!("{e}"),
            Err(e) => {
                if connected != Some(false) {
                    warn!("heartbeat failed: {e}; retrying with backoff");
                }
                connected = Some(false);
                backoff.wait(interval.load(Ordering::Relaxed))
            }
        };
        tokio::time::sleep(pause).await;
    }
}

async fn take_commands(
    client: Client,
    runner: Runner,
    interval: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    // A new session per run of the agent: the controller hands this run every command an
    // earlier run was given and did not answer.
    let session = uuid::Uuid::new_v4().simple().to_string();
    let (deliver, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    let carrier = Carrier {
        client: client.clone(),
        runner,
        interval: interval.clone(),
        session: session.clone(),
        deliver: deliver.clone(),
    };
    // Each delivery, from a poll or from the answer to a report, runs in a task of its own.
    tokio::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            let carrier = carrier.clone();
            tokio::spawn(async move { carrier.carry_out(delivery).await });
        }
    });
    let mut backoff = Backoff::new();
    loop {
        match client.poll_commands(&session, POLL_WAIT).await {
            Ok(batch) => {
                backoff = Backoff::new();
                for delivery in batch {
                    let _ = deliver.send(delivery);
                }
            }
            Err(e) if credential_revoked(&e) => bail!("{e}"),
            Err(_) => {
                // The heartbeat loop reports the outage; just wait and poll again.
                tokio::time::sleep(backoff.wait(interval.load(Ordering::Relaxed))).await;
            }
        }
    }
}

/// Carries out deliveries for one run of the agent.
#[derive(Clone)]
struct Carrier {
    client: Client,
    runner: Runner,
    interval: Arc<AtomicU64>,
    session: String,
    /// Where the commands handed back with a report's answer go.
    deliver: tokio::sync::mpsc::UnboundedSender<CommandDelivery>,
}

impl Carrier {
    /// Runs one delivery (or finds its recorded outcome) and reports the outcome. If reporting
    /// keeps failing the controller delivers the command again later and gets the recorded
    /// outcome then. Work that must follow the report (a reboot) runs after it.
    async fn carry_out(&self, delivery: CommandDelivery) {
        let Some(outcome) = self.outcome_of(&delivery).await else {
            return;
        };
        match followed_by(&delivery, &outcome) {
            None => self.report_and_deliver(&delivery, &outcome, None).await,
            Some(then) => self.carry_out_both(&delivery, outcome, then).await,
        }
        self.runner.after_report().await;
    }

    /// Runs the carried command at once. If it ends within [`CARRIED_REPORT_WITHIN`], both
    /// outcomes go in one report. Otherwise the first is reported alone, and the carried one's
    /// report waits for the answer to it: by then the controller has recorded the first outcome
    /// and waits for the carried one.
    async fn carry_out_both(
        &self,
        delivery: &CommandDelivery,
        outcome: CommandOutcome,
        then: CommandDelivery,
    ) {
        let run = self.outcome_of(&then);
        tokio::pin!(run);
        match tokio::time::timeout(CARRIED_REPORT_WITHIN, &mut run).await {
            Ok(then_outcome) => {
                let carried = then_outcome.map(|outcome| CarriedOutcome {
                    id: then.id,
                    outcome,
                });
                self.report_and_deliver(delivery, &outcome, carried).await;
            }
            Err(_) => {
                let (_, then_outcome) =
                    tokio::join!(self.report_and_deliver(delivery, &outcome, None), run);
                if let Some(then_outcome) = then_outcome {
                    self.report_and_deliver(&then, &then_outcome, None).await;
                }
            }
        }
    }

    /// Runs the delivery, or finds its recorded outcome; None if there is nothing to report
    /// (it is running already, or its outcome could not be recorded).
    async fn outcome_of(&self, delivery: &CommandDelivery) -> Option<CommandOutcome> {
        match self.runner.handle(delivery).await {
            Ok(Delivery::Ran(outcome)) => {
                info!(command = %delivery.id, kind = %delivery.kind, succeeded = outcome.succeeded, "command ran");
                Some(outcome)
            }
            Ok(Delivery::Recorded(outcome)) => {
                info!(command = %delivery.id, "command delivered again; reporting its recorded outcome");
                Some(outcome)
            }
            Ok(Delivery::AlreadyRunning) => None,
            Err(e) => {
                warn!(command = %delivery.id, "cannot record the outcome: {e:#}");
                None
            }
        }
    }

    /// Reports the outcome (with a carried command's) and runs the commands handed back with
    /// the answer.
    async fn report_and_deliver(
        &self,
        delivery: &CommandDelivery,
        outcome: &CommandOutcome,
        carried: Option<CarriedOutcome>,
    ) {
        let report = OutcomeReport::new(outcome.clone(), carried);
        for next in self.report(delivery, &report).await {
            let _ = self.deliver.send(next);
        }
    }

    /// Reports the outcome; returns the commands handed back with the answer.
    async fn report(
        &self,
        delivery: &CommandDelivery,
        report: &OutcomeReport,
    ) -> Vec<CommandDelivery> {
        let mut backoff = Backoff::new();
        for _ in 0..10 {
            match self
                .client
                .report_outcome(&self.session, delivery.id, report)
                .await
            {
                Ok(handed) => return handed,
                Err(ClientError::Api {
                    status, message, ..
                }) if (400..500).contains(&status) => {
                    warn!(command = %delivery.id, "the controller refused the outcome: {message}");
                    return vec![];
                }
                Err(_) => {
                    tokio::time::sleep(backoff.wait(self.interval.load(Ordering::Relaxed))).await
                }
            }
        }
        vec![]
    }
}

/// The command to run after `delivery`, if it carries one and succeeded.
fn followed_by(delivery: &CommandDelivery, outcome: &CommandOutcome) -> Option<CommandDelivery> {
    if !outcome.succeeded {
        return None;
    }
    serde_json::from_value::<FollowedBy>(delivery.payload.clone())
        .ok()
        .map(|followed| followed.then)
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carried_command_runs_only_after_a_success() {
        let then = CommandDelivery {
            id: uuid::Uuid::new_v4(),
            kind: convoy_core::command::CommandKind::RunHook,
            payload: serde_json::json!({"stage": "Maintenance", "timeout_seconds": 5}),
        };
        let delivery = CommandDelivery {
            id: uuid::Uuid::new_v4(),
            kind: convoy_core::command::CommandKind::EnterMaintenance,
            payload: serde_json::to_value(FollowedBy { then: then.clone() }).unwrap(),
        };
        let outcome = |succeeded| CommandOutcome {
            succeeded,
            message: String::new(),
            output: serde_json::Value::Null,
        };
        assert_eq!(followed_by(&delivery, &outcome(true)), Some(then));
        assert_eq!(followed_by(&delivery, &outcome(false)), None);
        let alone = CommandDelivery {
            payload: serde_json::Value::Null,
            ..delivery
        };
        assert_eq!(followed_by(&alone, &outcome(true)), None);
    }

    #[test]
    fn backoff_grows_to_the_ping_interval() {
        let mut backoff = Backoff::new();
        let waits: Vec<_> = (0..6).map(|_| backoff.wait(2)).collect();
        assert_eq!(waits[0], Duration::from_millis(200));
        assert_eq!(waits[1], Duration::from_millis(400));
        assert_eq!(waits[5], Duration::from_secs(2));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}
