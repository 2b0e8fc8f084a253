//! A site's controllers: which one is active, and the rule for a swact (moving activity to
//! the other controller), which a patch strategy runs before it locks the active controller.
//! Convoy runs no services of its own on controllers; the site records which one is active
//! so that operators and strategies act on the standby first.

use crate::host::{Administrative, Availability, Personality};

/// What the rule needs to know of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerHost {
    pub hostname: String,
    pub personality: Personality,
    pub administrative: Administrative,
    pub availability: Availability,
}

fn is_controller(personality: Personality) -> bool {
    matches!(
        personality,
        Personality::Controller | Personality::ControllerWorker
    )
}

/// The active controller: the recorded one while it is still a controller of the site, else
/// the first controller by name (a new site, or the recorded one deleted).
pub fn active_controller(hosts: &[ControllerHost], recorded: Option<&str>) -> Option<String> {
    let mut controllers: Vec<&str> = hosts
        .iter()
        .filter(|h| is_controller(h.personality))
        .map(|h| h.hostname.as_str())
        .collect();
    controllers.sort_unstable();
    recorded
        .filter(|r| controllers.contains(r))
        .or_else(|| controllers.first().copied())
        .map(str::to_string)
}

/// Why a swact is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwactRefusal {
    #[error("{0} is not a controller; only controllers swact")]
    NotAController(String),
    #[error("{host} is the standby controller; the active one is {active}")]
    NotActive { host: String, active: String },
    #[error("{0} is the only controller: a swact needs a second one to take over")]
    NoStandby(String),
    #[error(
        "the standby controller {standby} is not unlocked and available ({why}); unlock it or \
         wait for its agent before swacting"
    )]
    StandbyNotReady { standby: String, why: String },
}

/// The controller that becomes active when `from` swacts.
pub fn swact(
    hosts: &[ControllerHost],
    recorded: Option<&str>,
    from: &str,
) -> Result<String, SwactRefusal> {
    let host = hosts
        .iter()
        .find(|h| h.hostname == from && is_controller(h.personality))
        .ok_or_else(|| SwactRefusal::NotAController(from.into()))?;
    let active = active_controller(hosts, recorded).unwrap_or_default();
    if active != host.hostname {
        return Err(SwactRefusal::NotActive {
            host: from.into(),
            active,
        });
    }
    let mut standbys: Vec<&ControllerHost> = hosts
        .iter()
        .filter(|h| is_controller(h.personality) && h.hostname != from)
        .collect();
    standbys.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let Some(standby) = standbys.first() else {
        return Err(SwactRefusal::NoStandby(from.into()));
    };
    let ready = |h: &ControllerHost| {
        h.administrative == Administrative::Unlocked && h.availability == Availability::Available
    };
    match standbys.iter().find(|h| ready(h)) {
        Some(ready) => Ok(ready.hostname.clone()),
        None => Err(SwactRefusal::StandbyNotReady {
            standby: standby.hostname.clone(),
            why: format!(
                "{}, {}",
                standby.administrative.as_str(),
                match standby.availability {
                    Availability::Available => "available",
                    Availability::Offline => "offline",
                }
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, personality: Personality, locked: bool, online: bool) -> ControllerHost {
        ControllerHost {
            hostname: name.into(),
            personality,
            administrative: if locked {
                Administrative::Locked
            } else {
                Administrative::Unlocked
            },
            availability: if online {
                Availability::Available
            } else {
                Availability::Offline
            },
        }
    }

    fn site() -> Vec<ControllerHost> {
        vec![
            host("controller-1", Personality::Controller, false, true),
            host("controller-0", Personality::Controller, false, true),
            host("worker-0", Personality::Worker, false, true),
        ]
    }

    #[test]
    fn the_first_controller_is_active_until_a_swact_records_another() {
        let hosts = site();
        assert_eq!(
            active_controller(&hosts, None).as_deref(),
            Some("controller-0")
        );
        assert_eq!(
            active_controller(&hosts, Some("controller-1")).as_deref(),
            Some("controller-1")
        );
        // A recorded controller that is gone (deleted) gives way to the first one left.
        assert_eq!(
            active_controller(&hosts, Some("controller-9")).as_deref(),
            Some("controller-0")
        );
        assert_eq!(active_controller(&hosts[2..], None), None);
    }

    #[test]
    fn a_swact_moves_activity_to_a_ready_standby() {
        let hosts = site();
        assert_eq!(swact(&hosts, None, "controller-0").unwrap(), "controller-1");
        assert_eq!(
            swact(&hosts, Some("controller-1"), "controller-1").unwrap(),
            "controller-0"
        );
    }

    #[test]
    fn each_refusal_says_why() {
        let hosts = site();
        assert_eq!(
            swact(&hosts, None, "worker-0"),
            Err(SwactRefusal::NotAController("worker-0".into()))
        );
        assert!(matches!(
            swact(&hosts, None, "controller-1"),
            Err(SwactRefusal::NotActive { .. })
        ));
        assert_eq!(
            swact(&hosts[1..], None, "controller-0"),
            Err(SwactRefusal::NoStandby("controller-0".into()))
        );
        let mut locked = site();
        locked[0] = host("controller-1", Personality::Controller, true, true);
        let err = swact(&locked, None, "controller-0").unwrap_err();
        assert!(err.to_string().contains("locked, available"), "{err}");
        let mut offline = site();
        offline[0] = host("controller-1", Personality::Controller, false, false);
        let err = swact(&offline, None, "controller-0").unwrap_err();
        assert!(err.to_string().contains("unlocked, offline"), "{err}");
    }
}
