//! Where the controller is and who we are to it: flags first, then the environment.

use clap::Args;
use convoy_api::Client;

use crate::failure::Failure;

pub const DEFAULT_URL: &str = "http://127.0.0.1:7400";

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
}

impl ConnectionArgs {
    /// A client for --url without credentials.
    pub async fn client(&self) -> Result<Client, Failure> {
        Ok(Client::new(&self.url)?)
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
