//! `convoy user ...`

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use convoy_api::users::NewUser;
use convoy_core::role::Role;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users and their roles.
    List,
    /// Add a user. Without --password-file or --password-stdin a password is generated and
    /// printed once.
    Add {
        name: String,
        /// admin, operator (may lock hosts and run strategies) or reader (may only read).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the new user's password from this file.
        #[arg(long, conflicts_with = "password_stdin")]
        password_file: Option<PathBuf>,
        /// Read the new user's password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user and every token issued to them.
    Delete { name: String },
}

fn parse_role(value: &str) -> Result<Role, String> {
    value
        .parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

impl UserCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self {
            UserCommand::List => {
                let client = connection.authenticated().await?;
                out.list(&client.users().await?, &["name", "role", "created_at"])
            }
            UserCommand::Add {
                name,
                role,
                password_file,
                password_stdin,
            } => {
                let (password, generated) = new_password(password_file, password_stdin)?;
                let client = connection.authenticated().await?;
                let user = client
                    .add_user(&NewUser {
                        name,
                        password: password.clone(),
                        role,
                    })
                    .await?;
                out.one(&user)?;
                if generated {
                    // Printed once, on stderr, so that it does not end up in piped output.
                    eprintln!("password for {}: {password}", user.name);
                }
                Ok(())
            }
            UserCommand::Delete { name } => {
                let client = connection.authenticated().await?;
                client.delete_user(&name).await?;
                out.note(&format!("user {name} deleted"));
                Ok(())
            }
        }
    }
}

fn new_password(file: Option<PathBuf>, stdin: bool) -> Result<(String, bool), Failure> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::bad_input(format!(
                "--password-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        return Ok((text.trim_end_matches(['\n', '\r']).to_string(), false));
    }
    if stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::bad_input(format!("--password-stdin: {e}")))?;
        return Ok((text.trim_end_matches(['\n', '\r']).to_string(), false));
    }
    Ok((generated_password(), true))
}

fn generated_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
