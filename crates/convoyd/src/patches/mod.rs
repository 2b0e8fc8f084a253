//! The site's patch repository: verified uploads, the sw-patch operations (decided by the pure
//! rules of `convoy_core::patch`), installs on hosts through their agents, and the software
//! deploy of a release (USM) over the same repository.

pub mod deploy;
pub mod repository;
pub mod sweep;
pub mod upload;
