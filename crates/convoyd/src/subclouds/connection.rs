//! Talking to a subcloud's convoyd: the trust its address needs, and a logged-in client for
//! the System Controller's service account, its token kept in memory between audits.

use std::collections::HashMap;
use std::sync::Mutex;

use convoy_api::{Client, ClientError, Trust};
use convoy_store::subclouds::SubcloudRecord;

use super::DcSettings;

/// How to trust a subcloud's certificate: the configured CA, else the pinned fingerprint, else
/// (plain HTTP) nothing to trust.
pub fn trust(settings: &DcSettings, fingerprint: Option<&str>) -> Result<Trust, ClientError> {
    if let Some(ca) = &settings.subcloud_ca {
        return Ok(ca.clone());
    }
    match fingerprint {
        Some(pinned) => Trust::fingerprint(pinned).map_err(|e| ClientError::Protocol {
            url: String::new(),
            reason: e.to_string(),
        }),
        None => Ok(Trust::System),
    }
}

/// Logged-in clients of the service accounts, by subcloud id. A token is reused until the
/// subcloud refuses it, so an audit costs the subcloud a password hash only once per token
/// lifetime, and a client keeps its connection between audits. Subclouds trusted by CA (or
/// reached over plain HTTP) share one connection pool; a pinned certificate needs a client
/// of its own.
#[derive(Debug, Default)]
pub struct Sessions {
    clients: Mutex<HashMap<i64, Client>>,
    shared: Mutex<Option<Client>>,
}

impl Sessions {
    /// A client for the subcloud logged in as the service account.
    pub async fn client(
        &self,
        settings: &DcSettings,
        subcloud: &SubcloudRecord,
    ) -> Result<Client, ClientError> {
        if let Some(client) = self.clients.lock().unwrap().get(&subcloud.id) {
            return Ok(client.clone());
        }
        let client = self.anonymous(settings, subcloud)?;
        let token = client
            .login(&subcloud.service_user, &subcloud.service_password)
            .await?;
        let client = client.with_token(token);
        self.clients
            .lock()
            .unwrap()
            .insert(subcloud.id, client.clone());
        Ok(client)
    }

    /// A client for the subcloud, not logged in.
    fn anonymous(
        &self,
        settings: &DcSettings,
        subcloud: &SubcloudRecord,
    ) -> Result<Client, ClientError> {
        match (&settings.subcloud_ca, &subcloud.tls_fingerprint) {
            (None, Some(pinned)) => {
                Client::with_trust(&subcloud.address, &trust(settings, Some(pinned))?)
            }
            _ => Ok(self.shared(settings)?.with_base(&subcloud.address)),
        }
    }

    /// The client every subcloud trusted by CA (or reached over plain HTTP) shares.
    pub fn shared(&self, settings: &DcSettings) -> Result<Client, ClientError> {
        let mut shared = self.shared.lock().unwrap();
        if let Some(client) = shared.as_ref() {
            return Ok(client.clone());
        }
        // The base is replaced for each subcloud.
        let client = Client::with_trust("http://localhost", &trust(settings, None)?)?;
        *shared = Some(client.clone());
        Ok(client)
    }

    /// Whether the subcloud accepts `password` for its sysadmin (`admin`): a login, whose
    /// token is revoked at once. Err when the subcloud could not say.
    pub async fn verify_sysadmin(
        &self,
        settings: &DcSettings,
        subcloud: &SubcloudRecord,
        password: &str,
    ) -> Result<bool, ClientError> {
        let client = self.anonymous(settings, subcloud)?;
        match client.login(super::registration::SYSADMIN, password).await {
            Ok(token) => {
                let _ = client.with_token(token.clone()).revoke_token(&token).await;
                Ok(true)
            }
            Err(e) if e.status() == Some(401) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets a subcloud's client and token (refused, or the subcloud is gone).
    pub fn forget(&self, id: i64) {
        self.clients.lock().unwrap().remove(&id);
    }
}

/// Whether an error means the token is no longer good (log in again).
pub fn token_refused(error: &ClientError) -> bool {
    error.status() == Some(401)
}
