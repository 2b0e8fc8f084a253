//! One module per subcommand.

pub mod demo;
pub mod host;
pub mod user;
