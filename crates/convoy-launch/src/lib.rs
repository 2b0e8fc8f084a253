//! Starts a local Convoy site as real processes: a `convoyd` and any number of
//! `convoy-agent`s, each with its own directory and log file. `convoy demo` and the end-to-end
//! tests both use it. Every process is killed when its handle is dropped.

mod binaries;
mod process;
mod wait;

pub use binaries::Binaries;
pub use process::{AgentOptions, AgentProcess, ControllerOptions, ControllerProcess};
pub use wait::{Deadline, wait_until, wait_until_every};

/// Why a site could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "cannot find {name} in {dir}; build the workspace first: cargo build --workspace --bins"
    )]
    MissingBinary { name: &'static str, dir: String },
    #[error("building the binaries failed: {0}")]
    Build(String),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} exited early ({status}); its log {log} ends with:\n{tail}")]
    Exited {
        what: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A free TCP port on the loopback interface (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
