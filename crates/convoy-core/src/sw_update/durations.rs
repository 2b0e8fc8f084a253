//! Every wait and timeout the original hard-codes (spec §4.5, §4.6), as settings: each on its
//! own, defaulting to the original's seconds, and all multiplied by one scale factor so tests
//! and benchmarks run the same strategies in milliseconds (`convoyd --step-time-scale F`).
//!
//! A zero duration used as a timeout means "no timeout" (the original's stage rule: a stage
//! whose steps all have timeout 0 has timeout 0), except for `system-stabilize`, whose timeout
//! is its wait: zero means it succeeds at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The durations, in seconds, before scaling. Deserialized from convoyd's settings file
/// (every key optional); [`StepDurations::get`] and the named methods return them scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepDurations {
    /// Multiplies every duration below (default 1; 0.001 turns seconds into milliseconds).
    pub step_time_scale: f64,

    // Waits inside the stage templates (§4.5).
    /// `MTCE_DELAY`: `system-stabilize` after the host action before unlocking (15 s).
    pub mtce_delay_seconds: u64,
    /// `NO_REBOOT_DELAY`: `system-stabilize` after an in-service update (30 s).
    pub no_reboot_delay_seconds: u64,
    /// `system-stabilize` ending a reboot worker stage with no controller (60 s, the step's
    /// default).
    pub system_stabilize_seconds: u64,
    /// `WAIT_ALARM_TIMEOUT`: `wait-alarms-clear` after unlocking a controller (2400 s).
    pub wait_alarms_clear_controller_seconds: u64,
    /// `wait-alarms-clear` after unlocking hosts that run instances (600 s).
    pub wait_alarms_clear_instances_seconds: u64,
    /// `wait-alarms-clear` when no template says (300 s).
    pub wait_alarms_clear_default_seconds: u64,
    /// `wait-data-sync` after unlocking storage hosts (1800 s).
    pub wait_data_sync_seconds: u64,
    /// `wait-alarms-clear` first queries alarms after this long (60 s).
    pub wait_alarms_clear_first_query_seconds: u64,
    /// `wait-data-sync` first polls alarms after this long (120 s).
    pub wait_data_sync_first_poll_seconds: u64,
    /// After locking the only controller of a simplex site, which never goes disabled, the
    /// lock step waits at least this long (`MTCE_DELAY`, 15 s).
    pub simplex_lock_wait_seconds: u64,
    /// Delay between `upgrade-hosts` retries (120 s; 3 retries).
    pub upgrade_hosts_retry_delay_seconds: u64,
    /// An alarm on the conditional ignore list (`750.006`) stops blocking once it has been
    /// active this long (1800 s).
    pub stale_alarm_seconds: u64,

    // Step timeouts (§4.6).
    pub query_alarms_timeout_seconds: u64,
    pub query_sw_patches_timeout_seconds: u64,
    pub query_sw_patch_hosts_timeout_seconds: u64,
    pub swact_hosts_timeout_seconds: u64,
    pub lock_hosts_timeout_seconds: u64,
    pub sw_patch_hosts_timeout_seconds: u64,
    pub unlock_hosts_timeout_seconds: u64,
    pub reboot_hosts_timeout_seconds: u64,
    pub stop_instances_timeout_seconds: u64,
    pub start_instances_timeout_seconds: u64,
    pub migrate_instances_timeout_seconds: u64,
    pub disable_host_services_timeout_seconds: u64,
    pub enable_host_services_timeout_seconds: u64,
    pub sw_deploy_precheck_timeout_seconds: u64,
    pub query_upgrade_timeout_seconds: u64,
    /// `[software-deploy] deploy_start_timeout`.
    pub start_upgrade_timeout_seconds: u64,
    /// `[software-deploy] deploy_host_execute_timeout`.
    pub upgrade_hosts_timeout_seconds: u64,
    /// `[software-deploy] deploy_activate_timeout`.
    pub activate_upgrade_timeout_seconds: u64,
    pub complete_upgrade_timeout_seconds: u64,
    pub deploy_delete_timeout_seconds: u64,
}

/// Retries of `upgrade-hosts` (not a duration; kept beside its delay).
pub const UPGRADE_HOSTS_RETRIES: u32 = 3;

impl Default for StepDurations {
    /// The original's values.
    fn default() -> Self {
        StepDurations {
            step_time_scale: 1.0,
            mtce_delay_seconds: 15,
            no_reboot_delay_seconds: 30,
            system_stabilize_seconds: 60,
            wait_alarms_clear_controller_seconds: 2400,
            wait_alarms_clear_instances_seconds: 600,
            wait_alarms_clear_default_seconds: 300,
            wait_data_sync_seconds: 1800,
            wait_alarms_clear_first_query_seconds: 60,
            wait_data_sync_first_poll_seconds: 120,
            simplex_lock_wait_seconds: 15,
            upgrade_hosts_retry_delay_seconds: 120,
            stale_alarm_seconds: 1800,
            query_alarms_timeout_seconds: 60,
            query_sw_patches_timeout_seconds: 60,
            query_sw_patch_hosts_timeout_seconds: 60,
            swact_hosts_timeout_seconds: 900,
            lock_hosts_timeout_seconds: 900,
            sw_patch_hosts_timeout_seconds: 1800,
            unlock_hosts_timeout_seconds: 1800,
            reboot_hosts_timeout_seconds: 900,
            stop_instances_timeout_seconds: 900,
            start_instances_timeout_seconds: 900,
            migrate_instances_timeout_seconds: 1800,
            disable_host_services_timeout_seconds: 180,
            enable_host_services_timeout_seconds: 180,
            sw_deploy_precheck_timeout_seconds: 60,
            query_upgrade_timeout_seconds: 60,
            start_upgrade_timeout_seconds: 3600,
            upgrade_hosts_timeout_seconds: 3600,
            activate_upgrade_timeout_seconds: 3600,
            complete_upgrade_timeout_seconds: 300,
            deploy_delete_timeout_seconds: 300,
        }
    }
}

/// Largest scale accepted: a thousand times slower than the original is already days.
pub const MAX_SCALE: f64 = 1000.0;

impl StepDurations {
    /// The original's values, every one multiplied by `scale`.
    pub fn scaled(scale: f64) -> Result<StepDurations, ValidationError> {
        let d = StepDurations {
            step_time_scale: scale,
            ..StepDurations::default()
        };
        d.validate()?;
        Ok(d)
    }

    /// The scale must be a finite number from 0 to [`MAX_SCALE`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(self.step_time_scale.is_finite() && (0.0..=MAX_SCALE).contains(&self.step_time_scale))
        {
            return Err(ValidationError::new(
                "step-time-scale",
                format!(
                    "must be a number from 0 to {MAX_SCALE}, got {}",
                    self.step_time_scale
                ),
            ));
        }
        Ok(())
    }

    /// `seconds` of the original's time, scaled.
    pub fn get(&self, seconds: u64) -> Duration {
        // Validated scales are finite and non-negative; clamp anyway so a bad value read
        // around `validate` cannot panic in `from_secs_f64`.
        let scale = if self.step_time_scale.is_finite() {
            self.step_time_scale.clamp(0.0, MAX_SCALE)
        } else {
            1.0
        };
        Duration::from_secs_f64(seconds as f64 * scale)
    }

    /// The margin the original adds to a stage's and a phase's summed timeouts (1 s), scaled.
    pub fn timeout_margin(&self) -> Duration {
        self.get(1)
    }

    pub fn mtce_delay(&self) -> Duration {
        self.get(self.mtce_delay_seconds)
    }
    pub fn no_reboot_delay(&self) -> Duration {
        self.get(self.no_reboot_delay_seconds)
    }
    pub fn system_stabilize(&self) -> Duration {
        self.get(self.system_stabilize_seconds)
    }
    pub fn wait_alarms_clear_controller(&self) -> Duration {
        self.get(self.wait_alarms_clear_controller_seconds)
    }
    pub fn wait_alarms_clear_instances(&self) -> Duration {
        self.get(self.wait_alarms_clear_instances_seconds)
    }
    pub fn wait_alarms_clear_default(&self) -> Duration {
        self.get(self.wait_alarms_clear_default_seconds)
    }
    pub fn wait_data_sync(&self) -> Duration {
        self.get(self.wait_data_sync_seconds)
    }
    pub fn wait_alarms_clear_first_query(&self) -> Duration {
        self.get(self.wait_alarms_clear_first_query_seconds)
    }
    pub fn wait_data_sync_first_poll(&self) -> Duration {
        self.get(self.wait_data_sync_first_poll_seconds)
    }
    pub fn simplex_lock_wait(&self) -> Duration {
        self.get(self.simplex_lock_wait_seconds)
    }
    pub fn upgrade_hosts_retry_delay(&self) -> Duration {
        self.get(self.upgrade_hosts_retry_delay_seconds)
    }
    pub fn stale_alarm(&self) -> Duration {
        self.get(self.stale_alarm_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_the_originals() {
        let d = StepDurations::default();
        assert_eq!(d.mtce_delay(), Duration::from_secs(15));
        assert_eq!(d.no_reboot_delay(), Duration::from_secs(30));
        assert_eq!(d.system_stabilize(), Duration::from_secs(60));
        assert_eq!(d.wait_alarms_clear_controller(), Duration::from_secs(2400));
        assert_eq!(d.wait_alarms_clear_instances(), Duration::from_secs(600));
        assert_eq!(d.wait_data_sync(), Duration::from_secs(1800));
        assert_eq!(
            d.get(d.sw_patch_hosts_timeout_seconds),
            Duration::from_secs(1800)
        );
        assert_eq!(
            d.get(d.upgrade_hosts_timeout_seconds),
            Duration::from_secs(3600)
        );
        assert_eq!(d.timeout_margin(), Duration::from_secs(1));
    }

    #[test]
    fn each_key_may_be_set_alone_and_unknown_keys_are_refused() {
        let d: StepDurations =
            serde_json::from_str(r#"{"wait_data_sync_seconds": 5, "step_time_scale": 0.5}"#)
                .unwrap();
        assert_eq!(d.wait_data_sync(), Duration::from_millis(2500));
        assert_eq!(d.mtce_delay(), Duration::from_millis(7500));
        assert!(serde_json::from_str::<StepDurations>(r#"{"mtce_delay": 5}"#).is_err());
    }

    #[test]
    fn milliseconds_for_tests_and_bad_scales_refused() {
        let d = StepDurations::scaled(0.001).unwrap();
        assert_eq!(
            d.wait_alarms_clear_controller(),
            Duration::from_millis(2400)
        );
        assert_eq!(
            StepDurations::scaled(0.0).unwrap().mtce_delay(),
            Duration::ZERO
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert_eq!(
                StepDurations::scaled(bad).unwrap_err().field,
                "step-time-scale"
            );
        }
    }

    proptest! {
        #[test]
        fn scaling_is_linear_and_never_panics(secs in 0u64..100_000, scale in proptest::num::f64::ANY) {
            let d = StepDurations { step_time_scale: scale, ..StepDurations::default() };
            let got = d.get(secs);
            if d.validate().is_ok() {
                let want = secs as f64 * scale;
                prop_assert!((got.as_secs_f64() - want).abs() <= want * 1e-9 + 1e-9);
            }
        }
    }
}
