//! converged-mesos: the `marathon_app` kind (and, with its issue, `mesos_agent`): HTTP clients
//! behind narrow traits, pure normalization and plans, and the reconciler glue.

pub mod agent;
pub mod dial;
pub mod error;
pub mod marathon;

pub use error::MesosError;
