//! Reading any Python buffer (`bytes`, `bytearray`, `memoryview`, numpy
//! arrays of any dtype) as raw bytes, with a copy-free fast path for `bytes`.
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A contiguous buffer view held on a Python object, released on drop.
struct BufferView(ffi::Py_buffer);

impl BufferView {
    /// Requests a simple (contiguous, byte-addressed) view of `obj`.
    fn get(obj: &Bound<'_, PyAny>) -> Option<Self> {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: `obj` is a live object (we hold the GIL through `Bound`),
        // `view` is writable memory for one Py_buffer, and on success the
        // exporter has filled it in, so it is initialised.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            // SAFETY: we hold the GIL; clears the BufferError the exporter set.
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        Some(BufferView(unsafe { view.assume_init() }))
    }

    fn as_bytes(&self) -> &[u8] {
        if self.0.len == 0 || self.0.buf.is_null() {
            return &[];
        }
        // SAFETY: a PyBUF_SIMPLE view is `len` contiguous bytes at `buf`, kept
        // alive and unmoved by the exporter until the view is released in
        // `drop`, which cannot happen while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.0.buf.cast::<u8>(), self.0.len as usize) }
    }
}

impl Drop for BufferView {
    fn drop(&mut self) {
        // SAFETY: the view was obtained by PyObject_GetBuffer and is released
        // exactly once; views are only created and dropped with the GIL held.
        unsafe { ffi::PyBuffer_Release(&mut self.0) };
    }
}

/// The contents of `obj` if it is exactly `bytes` (subclasses take the
/// buffer protocol, with the same result): a type pointer comparison and
/// one call, where `cast` and `as_bytes` make three calls in the limited API
/// (a per-frame decoder's input).
fn exact_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    if !obj.is_exact_instance_of::<PyBytes>() {
        return None;
    }
    let mut data = std::ptr::null_mut();
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live `bytes` object; on success `data` points to
    // its `len` bytes, immutable and alive as long as `obj` is borrowed.
    if unsafe { ffi::PyBytes_AsStringAndSize(obj.as_ptr(), &mut data, &mut len) } != 0 {
        // Cannot fail for a bytes object; clear rather than leave it set.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    let len = usize::try_from(len).expect("invariant: a bytes object's size is non-negative");
    // SAFETY: as above.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>().cast_const(), len) })
}

/// Calls `f` with the contents of `obj` as a byte slice.
///
/// `bytes` is read in place; anything else that exports a contiguous buffer
/// is read through the buffer protocol, also without a copy. `what` names the
/// argument in the `TypeError` raised for objects that are not buffers.
pub fn with_bytes<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Some(data) = exact_bytes(obj) {
        return Ok(f(data));
    }
    let view = BufferView::get(obj).ok_or_else(|| {
        let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!(
            "{what}: expected a contiguous bytes-like object (bytes, bytearray, memoryview, numpy array), got {type_name}"
        ))
    })?;
    Ok(f(view.as_bytes()))
}
