//! The Mesos side of the simulator: master, agent, leader location and their internal messages.
pub mod agent;
pub mod locator;
pub mod master;
pub mod protocol;
