//! Reading any Python buffer (`bytes`, `bytearray`, `memoryview`, numpy
//! arrays) as bytes, with a copy-free fast path for `bytes`.
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Calls `f` with the contents of `obj` as a byte slice.
///
/// `bytes` is read in place; anything else that exports a C-contiguous buffer
/// is read through the buffer protocol. `what` names the argument in the
/// `TypeError` raised for objects that are not buffers.
pub fn with_bytes<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(f(bytes.as_bytes()));
    }
    let buffer = PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected a bytes-like object (bytes, bytearray, memoryview, numpy array), got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
        ))
    })?;
    if !buffer.is_c_contiguous() {
        return Err(PyTypeError::new_err(format!("{what}: buffer must be C-contiguous")));
    }
    // The buffer is pinned by `buffer` for the duration of `f`; Python code
    // cannot run (and so cannot resize a bytearray) while we hold the GIL here.
    let slice = buffer.as_slice(obj.py()).ok_or_else(|| PyTypeError::new_err(format!("{what}: buffer is not readable as bytes")))?;
    // SAFETY: `ReadOnlyCell<u8>` is `repr(transparent)` over `u8`, and the
    // exporter keeps the memory alive and unmoved while `buffer` holds its
    // view. We hold the GIL throughout `f`, so no Python code can write to it.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<u8>(), slice.len()) };
    Ok(f(bytes))
}
