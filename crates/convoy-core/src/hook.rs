//! Operator hook scripts: the four stages of rolling maintenance and what their exit codes mean.

use serde::{Deserialize, Serialize};

use crate::names::named_enum;

/// A hook stage; its name is also the script's file name (`<hooks-dir>/<Stage>[.sh|.py]`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookStage {
    PreFlight,
    PreMaintenance,
    Maintenance,
    PostMaintenance,
    /// Not a maintenance stage: the optional script that lists, stops, starts and migrates
    /// the host's instances for software-update strategies (`InstanceAction list`, `stop
    /// NAME...`, `start NAME...`, `migrate NAME...`), since Convoy has no hypervisor.
    InstanceAction,
}

named_enum!(HookStage, field = "stage", {
    PreFlight => "PreFlight",
    PreMaintenance => "PreMaintenance",
    Maintenance => "Maintenance",
    PostMaintenance => "PostMaintenance",
    InstanceAction => "InstanceAction",
});

impl HookStage {
    /// The file names tried, in order; the first regular file found is the hook.
    pub fn candidate_file_names(self) -> [String; 3] {
        let name = self.as_str();
        [name.to_string(), format!("{name}.sh"), format!("{name}.py")]
    }
}

/// Exit code by which a PreFlight or PreMaintenance hook says "nothing to do on this host".
pub const EXIT_AVOID_MAINTENANCE: i32 = 70;

/// How a hook run ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// Path of the script that ran; None when the stage has no script.
    pub script: Option<String>,
    /// The exit code; None when the hook was killed by a signal or never ran.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Killed (with its whole process group) because it exceeded its timeout.
    pub timed_out: bool,
    /// The tail of its standard output and error (capped).
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    /// Set when the agent could not run it or lost track of it (e.g. its supervisor died).
    pub error: Option<String>,
}

/// What a hook run means for the phase that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Exit 0.
    Succeeded,
    /// Exit 70: nothing to do on this host.
    AvoidMaintenance,
    /// The stage has no script: a stage without a script is skipped.
    NoScript,
    /// Anything else, with a reason for the step's details.
    Failed(String),
}

impl HookRun {
    pub fn verdict(&self) -> HookVerdict {
        if let Some(error) = &self.error {
            return HookVerdict::Failed(error.clone());
        }
        if self.script.is_none() {
            return HookVerdict::NoScript;
        }
        if self.timed_out {
            return HookVerdict::Failed(format!(
                "timed out after {} s and was killed",
                self.duration_ms / 1000
            ));
        }
        match (self.exit_code, self.signal) {
            (Some(0), _) => HookVerdict::Succeeded,
            (Some(EXIT_AVOID_MAINTENANCE), _) => HookVerdict::AvoidMaintenance,
            (Some(code), _) => {
                HookVerdict::Failed(with_stderr(format!("exit code {code}"), &self.stderr))
            }
            (None, Some(signal)) => HookVerdict::Failed(with_stderr(
                format!("killed by signal {signal}"),
                &self.stderr,
            )),
            (None, None) => HookVerdict::Failed("ended without an exit code".into()),
        }
    }
}

fn with_stderr(what: String, stderr: &str) -> String {
    let tail: Vec<&str> = stderr
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        what
    } else {
        format!("{what}: {}", tail.join(" / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exit_code: Option<i32>) -> HookRun {
        HookRun {
            script: Some("/hooks/Maintenance.sh".into()),
            exit_code,
            signal: None,
            timed_out: false,
            stdout: String::new(),
            stderr: "line 1\nboom".into(),
            duration_ms: 1500,
            error: None,
        }
    }

    #[test]
    fn exit_codes_mean_what_cloudstack_says() {
        assert_eq!(run(Some(0)).verdict(), HookVerdict::Succeeded);
        assert_eq!(run(Some(70)).verdict(), HookVerdict::AvoidMaintenance);
        let HookVerdict::Failed(reason) = run(Some(3)).verdict() else {
            panic!()
        };
        assert!(reason.starts_with("exit code 3: "), "{reason}");
        assert!(reason.contains("boom"));
        let missing = HookRun {
            script: None,
            ..run(None)
        };
        assert_eq!(missing.verdict(), HookVerdict::NoScript);
        let killed = HookRun {
            timed_out: true,
            ..run(None)
        };
        assert!(matches!(killed.verdict(), HookVerdict::Failed(r) if r.contains("timed out")));
        let lost = HookRun {
            error: Some("supervisor died".into()),
            ..run(Some(0))
        };
        assert_eq!(
            lost.verdict(),
            HookVerdict::Failed("supervisor died".into())
        );
    }

    #[test]
    fn file_names_are_tried_in_cloudstack_order() {
        assert_eq!(
            HookStage::PreFlight.candidate_file_names(),
            ["PreFlight", "PreFlight.sh", "PreFlight.py"]
        );
    }
}
