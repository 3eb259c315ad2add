//! Watching models after release: how far data moved from what a model was trained on.
//! `stats` holds the distances, `drift` the per-column verdicts over profiles and live
//! tallies, `monitor` the windows of logged predictions judged against them. `feedback`
//! takes ground truth in, and `live` matches it with the predictions it judges: live
//! metrics per version and window, and the guard on production's. `layout` is where all
//! of it is stored.

pub mod drift;
pub mod feedback;
pub mod layout;
pub mod live;
pub mod monitor;
pub mod stats;

pub use monitor::{AzureMlDrift, Judged, Monitor, MonitorError, Report, Verdict};
