//! Model artifacts as the rest of Sluice sees them: the signature a model declares and
//! the column tables it scores.

pub mod runtime;
pub mod session;
pub mod signature;
pub mod table;
pub mod task;

pub use runtime::Runtime;
pub use session::{InferenceError, ModelSession, Predictions};
pub use signature::Signature;
pub use table::{Table, Values};
pub use task::Task;
