//! converged-core: the desired-state model and its validation, resource identities, plans,
//! conditions, backoff, the decision core and the `Reconciler` trait. Pure, except three
//! modules that do I/O and say so: `load` reads the desired-state folder, `secret` resolves
//! `file:`/`env:` references, `durable` replaces state files atomically.

pub mod api;
pub mod backoff;
pub mod condition;
pub mod decide;
pub mod digest;
pub mod durable;
pub mod error;
pub mod load;
mod locate;
pub mod model;
pub mod plan;
pub mod reconciler;
pub mod resource;
pub mod secret;
mod suggest;
mod validate;

pub use error::{Classified, ErrorClass, ReconcileError};
pub use load::{LoadError, Problem, load_desired_state};
pub use model::DesiredState;
pub use resource::{Kind, ResourceId};
