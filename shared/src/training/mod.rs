//! Training: the reference trainer and its parts (feature plan, logistic regression,
//! ONNX export, metrics) for binary, multiclass and regression models, and the per-model training config.

pub mod config;
pub mod configs;
pub mod features;
pub mod linear;
pub mod logistic;
pub mod metrics;
pub mod onnx;
pub mod trainer;

pub use config::TrainingConfig;
pub use trainer::{TrainReport, train};
