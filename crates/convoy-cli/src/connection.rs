//! Where the controller is and who we are to it: flags first, then the environment.

use clap::Args;
use convoy_api::{Client, Trust};

use crate::failure::Failure;

pub const DEFAULT_URL: &str = "https://127.0.0.1:7400";

#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// URL of the convoyd to talk to.
    #[arg(long, global = true, env = "CONVOY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// User name to log in with (with --password).
    #[arg(long, global = true, env = "CONVOY_USERNAME")]
    pub username: Option<String>,
    /// Password to log in with.
    #[arg(long, global = true, env = "CONVOY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A token from `convoy token`; used instead of a user name and password.
    #[arg(long, global = true, env = "CONVOY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to verify convoyd with (its self-signed DATA_DIR/tls/cert.pem will
    /// do) [default: the system's certificate authorities].
    #[arg(
        long,
        global = true,
        env = "CONVOY_CA_CERT",
        conflicts_with = "tls_fingerprint"
    )]
    pub ca_cert: Option<std::path::PathBuf>,
    /// SHA-256 fingerprint of convoyd's certificate, as convoyd prints it: only that
    /// certificate is accepted.
    #[arg(long, global = true, env = "CONVOY_TLS_FINGERPRINT")]
    pub tls_fingerprint: Option<String>,
}

impl ConnectionArgs {
    /// A client for --url without credentials, trusting convoyd as --ca-cert or
    /// --tls-fingerprint say. Warns (once, on stderr) of plain HTTP to another machine.
    pub async fn client(&self) -> Result<Client, Failure> {
        let trust = match (&self.ca_cert, &self.tls_fingerprint) {
            (Some(ca), _) => Trust::ca_file(ca),
            (None, Some(fingerprint)) => Trust::fingerprint(fingerprint),
            (None, None) => Ok(Trust::System),
        }
        .map_err(|e| Failure::bad_input(e.to_string()))?;
        if convoy_api::trust::insecure_over_network(&self.url) {
            eprintln!(
                "warning: {} is plain HTTP: the password or token crosses the network in clear \
                 text; use https://",
                self.url
            );
        }
        Ok(Client::with_trust(&self.url, &trust)?)
    }

    /// A client that carries a token: the given one, or one obtained by logging in.
    pub async fn authenticated(&self) -> Result<Client, Failure> {
        let client = self.client().await?;
        let token = self.token_of(&client).await?;
        Ok(client.with_token(token))
    }

    pub async fn token_of(&self, client: &Client) -> Result<String, Failure> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => Ok(client.login(user, password).await?),
            (Some(_), None) => Err(Failure::bad_input(
                "--password (or CONVOY_PASSWORD) is required with --username",
            )),
            _ => Err(Failure::bad_input(
                "no credentials: give --token (CONVOY_TOKEN) or --username and --password \
                 (CONVOY_USERNAME, CONVOY_PASSWORD)",
            )),
        }
    }
}
