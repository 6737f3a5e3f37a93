//! Raising the exceptions of `rtpcore.errors` from Rust.
//!
//! The exception classes are defined once, in Python (`ParseError` must be both
//! an `RtpcoreError` and a `ValueError`, which `create_exception!` cannot
//! express); Rust looks each class up once and raises it with the same
//! arguments Python code would pass.
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use rtpcore_proto::ParseError;

/// Looks up `rtpcore.errors.<name>` once and caches the class.
pub fn error_class<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyType>>, name: &str) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "rtpcore.errors", name)
}

/// `rtpcore.errors.ParseError(message, offset=, layer=, field=)` for a core parse error.
pub fn parse_error(py: Python<'_>, err: &ParseError) -> PyErr {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match error_class(py, &CLASS, "ParseError") {
        Ok(cls) => PyErr::from_type(
            cls.clone(),
            (err.to_string(), err.offset, err.layer.name(), err.field),
        ),
        Err(e) => e,
    }
}

/// Converts a core `Result` into a `PyResult`, raising `ParseError` on error.
pub trait IntoPyResult<T> {
    /// Maps the error side to `rtpcore.errors.ParseError`.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, ParseError> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| parse_error(py, &e))
    }
}
