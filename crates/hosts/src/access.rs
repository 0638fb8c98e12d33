//! Whether a registry may write converged's own state (pure): the daemon's engine records ZooKeeper
//! ids, host key pins and the Mesos agents it manages; `converged plan` and `GET /v1/plan` only
//! read, and say what they would have recorded.

/// How the stores behind a registry's kinds treat the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Computes what would be recorded, records nothing, and runs no command that changes a
    /// host.
    ReadOnly,
    /// Records what it learns (the engine).
    ReadWrite,
}

impl Access {
    pub fn writes(self) -> bool {
        self == Self::ReadWrite
    }
}
