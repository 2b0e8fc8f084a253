//! `convoyd`: the Convoy site controller daemon.

mod alarms;
mod api;
mod clock;
mod config;
mod credentials;
mod data_dir;
mod hashing;
mod ids;
mod login_throttles;
mod patches;
mod polls;
mod prestage;
mod secrets;
mod server;
mod state;
mod strategy;
mod subclouds;
mod telemetry;
mod tls;
mod wakeups;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::{Args, Settings};
use crate::state::AppState;

/// glibc's allocator spent a twentieth of the controller's CPU consolidating and splitting
/// chunks under many small, short-lived allocations across threads; mimalloc does not. It
/// serves C's `malloc` too (`override`): SQLite copies every value it hands to sqlx, on nine
/// connection threads, and glibc kept what they freed in an arena per thread (70-80 MiB of a
/// System Controller with 10,000 subclouds).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_memory_small();
    let args = Args::parse();
    let settings = match Settings::resolve(&args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("convoyd: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    convoy_api::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("convoyd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("convoyd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc asks the kernel for transparent huge pages on its arenas (`madvise`), and a
/// kernel that grants them on request (THP `madvise`, the default of most distributions) then
/// makes 2 MiB of the heap resident as soon as one byte of it is touched (20-25 MiB of a
/// System Controller with 10,000 subclouds, 24 MiB of an idle convoyd). Without huge pages
/// freed memory goes back to the kernel in small pieces.
fn keep_memory_small() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let site = data_dir::prepare(&settings).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let trusted = convoy_bundle::TrustedKeys::read(&settings.trusted_keys)
        .context("cannot read a --trusted-key")?;
    if trusted.is_empty() {
        tracing::warn!("no --trusted-key given: every patch upload will be refused");
    }
    let patch_dir = settings.data_dir.join("patches");
    std::fs::create_dir_all(&patch_dir).context("cannot create the patch directory")?;
    patches::sweep::report(&patches::sweep::sweep(&site.store, &patch_dir).await?);
    let state = AppState::new(
        Arc::new(site.store.clone()),
        Arc::new(site.store),
        site.enrolment_token,
        trusted,
        &settings,
    );
    strategy::driver::spawn(state.clone());
    alarms::spawn(state.clone());
    subclouds::audit::spawn(state.clone());
    subclouds::prestage::resume(&state).await;
    let app = api::router(state, &settings);
    let tls = tls::prepare(&settings)?;
    match &tls {
        Some(tls) => info!(
            address = %address,
            data_dir = %settings.data_dir.display(),
            cert = %tls.cert_path.display(),
            fingerprint = tls.fingerprint,
            "convoyd listening on https://{address}; its certificate's fingerprint is {}",
            tls.fingerprint
        ),
        None => tracing::warn!(
            address = %address,
            data_dir = %settings.data_dir.display(),
            "convoyd listening on http://{address} (--insecure-http): tokens, passwords, host \
             credentials and commands cross the network in clear text"
        ),
    }

    let limits = server::Limits {
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        body_timeout: settings.body_timeout,
        max_connections: settings.max_connections,
    };
    // Agents hold long polls open; give open requests a moment, then stop regardless.
    server::serve(
        listener,
        tls.map(|tls| tls.acceptor),
        app,
        limits,
        async {
            shutdown_signal().await;
            info!("shutting down");
        },
        std::time::Duration::from_secs(2),
    )
    .await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
