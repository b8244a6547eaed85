//! The runtime's errors: each names what was wrong, with expected versus got.

/// A runtime error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("expected {expected} input(s), got {got}")]
    InputCount { expected: usize, got: usize },
    #[error("expected {expected} output tensor(s), got {got}")]
    OutputCount { expected: usize, got: usize },
    #[error("input '{name}': expected shape {expected}, got {got:?}")]
    InputShape { name: String, expected: String, got: Vec<usize> },
    #[error("input '{name}': expected dtype float32, got {got}")]
    InputDType { name: String, got: String },
    #[error("input '{name}': data has {got} elements, its shape {shape:?} needs {expected}")]
    InputData { name: String, shape: Vec<usize>, expected: usize, got: usize },
    #[error("no input named '{0}'")]
    UnknownInput(String),
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// A `.resin` file (or its bytes) that cannot be loaded; the message is complete.
    #[error("{0}")]
    Format(String),
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
