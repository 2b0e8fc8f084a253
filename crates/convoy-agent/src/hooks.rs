//! Operator hook scripts. (Being written: resolution, the supervisor that survives agent
//! restarts, timeouts that kill the whole process group.)

use std::path::PathBuf;

use convoy_api::agent::{HookPresence, HookRequest};
use convoy_core::hook::{HookRun, HookStage};
use uuid::Uuid;

/// Where hooks live and where their runs are recorded.
#[derive(Debug, Clone)]
pub struct Hooks {
    pub hooks_dir: Option<PathBuf>,
    pub jobs_dir: PathBuf,
    pub agent_binary: PathBuf,
}

impl Hooks {
    pub fn presence(&self, _stage: HookStage) -> HookPresence {
        HookPresence { script: None }
    }

    pub async fn run(&self, _id: Uuid, _request: &HookRequest) -> HookRun {
        HookRun {
            script: None,
            exit_code: None,
            signal: None,
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0,
            error: Some("hooks are not implemented yet".into()),
        }
    }
}
