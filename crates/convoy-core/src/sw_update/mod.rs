//! Software-update strategies on a site, after StarlingX's VIM (`sw-manager patch-strategy`,
//! strategy `sw-patch`, and `sw-manager sw-deploy-strategy`, strategy `sw-upgrade`):
//! spec/patching.md §4 and §5.
//!
//! Everything here is a pure decision over plain values: no IO, no clock (callers pass `now`
//! and the durations), so the engine that runs strategies only persists and acts.
//!
//! - [`options`]: what an operator chooses at create, validated, with the REST body's keys.
//! - [`durations`]: every wait and timeout the original hard-codes, as settings.
//! - [`inventory`]: what the build needs to know of the site's hosts and alarms.
//! - [`stages`]: the stage templates, step names and timeouts.
//! - [`build`]: the build checks with the original's reasons, and the alarm filter.
//! - [`lifecycle`]: strategy states, phases, results; apply and abort rules and messages;
//!   timeouts, result folding and completion percentage.
//! - [`abort`]: the abort phase: compensations of the unfinished stage, in reverse.
//! - [`release`]: USM's release, deploy and host-deploy states.

pub mod abort;
pub mod build;
pub mod durations;
pub mod inventory;
pub mod kind;
pub mod lifecycle;
pub mod options;
pub mod release;
pub mod stages;
