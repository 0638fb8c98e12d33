//! converged-zookeeper: the `zookeeper_ensemble` kind. Stable ids persisted in the state
//! directory, the rendered `zoo.cfg` every member shares, observation through the
//! four-letter words, and rolling restarts that never lose quorum.

pub mod config;
pub mod diff;
pub mod error;
pub mod fourlw;
pub mod ids;
pub mod reconciler;

pub use error::ZookeeperError;
pub use ids::{EnsembleFiles, IdStore};
pub use reconciler::Ensemble;
