//! How the CLI fails: one line on stderr, exit code 2 for bad input, 1 for everything else.

use std::process::ExitCode;

use convoy_api::ClientError;

#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The user asked for something invalid (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Something failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// An exit code without a message (the output already said it, e.g. `is-applied`).
    pub fn silent(code: u8) -> Self {
        Failure {
            code,
            message: String::new(),
        }
    }

    /// The same exit code, its message already printed.
    pub fn quiet(self) -> Self {
        Failure::silent(self.code)
    }

    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            let line = self.message.replace('\n', " ");
            eprintln!("error: {line}");
        }
        ExitCode::from(self.code)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            // The controller refused the request as given: bad input, unknown names, conflicts
            // (not: authentication, roles, and too many attempts, which a retry may cure).
            ClientError::Api { status, .. }
                if (400..500).contains(status) && ![401, 403, 429].contains(status) =>
            {
                Failure::bad_input(e.to_string())
            }
            ClientError::InvalidUrl { .. } => Failure::bad_input(e.to_string()),
            _ => Failure::failed(e.to_string()),
        }
    }
}

/// A command line clap refused: its first line (the reason), exit 2. Help and version are
/// printed as clap renders them.
pub fn usage(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's reason is its first paragraph (some reasons list arguments on further lines);
    // the usage and tips that follow are left to --help.
    let rendered = error.render().to_string();
    let reason: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let reason = reason.join(" ");
    let reason = reason.trim_start_matches("error: ");
    eprintln!("error: {reason} (see --help)");
    ExitCode::from(2)
}
