//! Prestage: shipping a release's bundles to subclouds ahead of their deploy.
//!
//! On every site (the subcloud's side): a content-addressed chunk store and the prestage
//! store for installs ([`site_store`]). On the System Controller: the once-per-strategy
//! preparation that cuts each bundle into chunks ([`preparation`]), the bandwidth caps
//! ([`bandwidth`]) and the resumable transfer to one subcloud ([`transfer`]).

pub mod bandwidth;
pub mod preparation;
pub mod site_store;
pub mod transfer;
