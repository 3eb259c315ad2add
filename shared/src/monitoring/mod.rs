//! Watching models after release: how far data moved from what a model was trained on.
//! `stats` holds the distances, `drift` the per-column verdicts over profiles and live
//! tallies.

pub mod drift;
pub mod stats;
