//! The data directory: created and filled on first start, reused on every later one.
//!
//! ```text
//! DIR/convoy.db        the SQLite database (WAL)
//! DIR/admin-password   the generated password of the `admin` user (0600)
//! DIR/agent-token      the token agents enrol with (0600)
//! ```

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::Context;
use convoy_core::role::Role;
use convoy_store::{SqliteStore, Store, UserRecord};
use tracing::info;

use crate::config::Settings;
use crate::secrets;

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
pub const AGENT_TOKEN_FILE: &str = "agent-token";

pub struct Site {
    pub store: SqliteStore,
    pub enrolment_token: String,
}

pub async fn prepare(settings: &Settings) -> anyhow::Result<Site> {
    let dir = &settings.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let store = SqliteStore::open(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", settings.database_url))?;
    ensure_admin(&store, dir).await?;
    let enrolment_token = ensure_agent_token(dir)?;
    Ok(Site {
        store,
        enrolment_token,
    })
}

/// Creates the `admin` user on a fresh database. The password file is written before the user
/// is stored, so a crash in between never leaves an admin whose password nobody knows.
async fn ensure_admin(store: &SqliteStore, dir: &Path) -> anyhow::Result<()> {
    if !store.users().await?.is_empty() {
        return Ok(());
    }
    let password = secrets::generate_password();
    let path = dir.join(ADMIN_PASSWORD_FILE);
    secrets::write_private_file(&path, &password)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot hash the admin password: {e}"))?;
    store
        .insert_user(&UserRecord {
            name: ADMIN_USER.into(),
            role: Role::Admin,
            password_hash: hash,
            created_at: crate::clock::now(),
        })
        .await?;
    info!(
        "created user {ADMIN_USER:?}; its password is in {}",
        path.display()
    );
    Ok(())
}

fn ensure_agent_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(AGENT_TOKEN_FILE);
    if path.exists() {
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if !token.trim().is_empty() {
            return Ok(token.trim().to_string());
        }
    }
    let token = secrets::generate("cve_", 32);
    secrets::write_private_file(&path, &token)
        .with_context(|| format!("cannot write {}", path.display()))?;
    info!("agents enrol with the token in {}", path.display());
    Ok(token)
}
