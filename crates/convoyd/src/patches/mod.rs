//! The site's patch repository: verified uploads, the sw-patch operations (decided by the pure
//! rules of `convoy_core::patch`), and installs on hosts through their agents.

pub mod repository;
pub mod sweep;
pub mod upload;
