//! The registry of kinds the daemon runs. Each provider crate adds its reconcilers here as it
//! lands; until then the engine, `/status` and `converged plan` run with what is registered.

use converged_core::reconciler::Registry;

use crate::config::DaemonConfig;

pub fn registry(_config: &DaemonConfig) -> Registry {
    Registry::default()
}
