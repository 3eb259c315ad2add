//! Watching models after release: how far data moved from what a model was trained on.
//! `stats` holds the distances, `drift` the per-column verdicts over profiles and live
//! tallies, `monitor` the windows of logged predictions judged against them.

pub mod drift;
pub mod monitor;
pub mod stats;

pub use monitor::{AzureMlDrift, Judged, Monitor, MonitorError, Report, Verdict};
