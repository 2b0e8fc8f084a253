//! `convoy key ...`: signing keys for patches (offline).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use convoy_bundle::SigningKey;
use serde::Serialize;

use crate::failure::Failure;
use crate::output::Output;

/// File names `convoy key generate` writes in its --out directory.
pub const SIGNING_KEY_FILE: &str = "patch-signing.pem";
pub const PUBLIC_KEY_FILE: &str = "patch-signing.pub.pem";

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key pair for signing patches: patch-signing.pem (PKCS#8, mode
    /// 0600; keep it secret) and patch-signing.pub.pem (give it to controllers and agents).
    Generate {
        /// Directory to write the two files in (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Serialize)]
struct Generated {
    key_id: String,
    signing_key: String,
    public_key: String,
}

impl KeyCommand {
    pub fn run(self, out: &Output) -> Result<(), Failure> {
        match self {
            KeyCommand::Generate { out: dir } => generate(&dir, out),
        }
    }
}

fn generate(dir: &Path, out: &Output) -> Result<(), Failure> {
    let private = dir.join(SIGNING_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&private, &public] {
        if path.exists() {
            return Err(Failure::bad_input(format!(
                "{} already exists; keys are never replaced, choose another --out",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let key = SigningKey::generate().map_err(|e| Failure::failed(e.to_string()))?;
    key.write(&private)
        .map_err(|e| Failure::failed(e.to_string()))?;
    key.public_key()
        .write(&public)
        .map_err(|e| Failure::failed(e.to_string()))?;
    out.one(&Generated {
        key_id: key.id().to_string(),
        signing_key: private.display().to_string(),
        public_key: public.display().to_string(),
    })
}
