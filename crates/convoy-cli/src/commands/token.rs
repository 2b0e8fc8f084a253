//! `convoy token` and `convoy token revoke`.

use clap::{Args, Subcommand};

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: Option<TokenCommand>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Revoke a token: TOKEN, or without it the one in --token (CONVOY_TOKEN). Another
    /// user's token needs the admin role.
    Revoke {
        /// The token to revoke [default: the --token in use].
        #[arg(value_name = "TOKEN")]
        subject: Option<String>,
    },
}

impl TokenArgs {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self.command {
            // Without a subcommand: log in and print the token.
            None => {
                let client = connection.client().await?;
                let token = connection.token_of(&client).await?;
                println!("{token}");
                Ok(())
            }
            // Named `subject` (Keystone's word): `token` is the global --token's id.
            Some(TokenCommand::Revoke { subject }) => {
                let subject = match subject.or_else(|| connection.token.clone()) {
                    Some(token) => token,
                    None => {
                        return Err(Failure::bad_input(
                            "no token to revoke: give TOKEN or --token (CONVOY_TOKEN)",
                        ));
                    }
                };
                let client = connection.authenticated().await?;
                client.revoke_token(&subject).await?;
                out.note("token revoked");
                Ok(())
            }
        }
    }
}
