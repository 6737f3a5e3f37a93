//! Builtins for per-frame calls, whose common call shapes skip PyO3's
//! argument handling.
//!
//! A `#[pyfunction]` spends ~13 ns a call (release build, measured against a
//! bare METH_FASTCALL builtin) in PyO3's trampoline and generic argument
//! parser before our code runs: as much as the G.711 kernel needs for a whole
//! 20 ms frame, and the margin between a per-frame decode and `audioop`'s.
//!
//! [`add`] registers, under the PyO3 function's name, signature and
//! docstring, a METH_FASTCALL builtin whose entry recognises only the shapes
//! a frame loop uses: `f(a)`, `f(a, b)` and `f(a, <second>=b)`. Those go
//! straight to the function's body ([`FastPath`]), the same Rust code the
//! PyO3 function runs. Every other call (`f(data=...)`, too many arguments,
//! unknown keywords), and any call the body hands back, goes to the PyO3
//! function itself with the same arguments, so argument errors keep PyO3's
//! exact messages and there is one implementation of each function.
//!
//! What the entry does not do that PyO3's trampoline does: it does not count
//! itself as a PyO3 attachment, so a `Py<T>` dropped inside a body is
//! released at the next PyO3 entry (PyO3's deferred pool) rather than at
//! once (bodies hold `Bound`s, released at once; `py.detach` works as under
//! PyO3). Panics are caught and raised as `PanicException`, as PyO3 does.
//! A keyword is recognised by identity with the interned name, which is what
//! call sites pass; a name built at run time takes the PyO3 route.
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyDict, PyString, PyTuple};
use std::ffi::CString;

/// A function's body: `Some(result)` when it handled the call, `None` to hand
/// it to the PyO3 function (for arguments whose conversion errors PyO3 words).
pub type FastPath = for<'py> fn(Python<'py>, &Bound<'py, PyAny>, Option<&Bound<'py, PyAny>>) -> Option<PyResult<Bound<'py, PyAny>>>;

/// One per-frame builtin: its body, the keyword its second argument may be
/// passed by, and the PyO3 function for every other call.
pub struct FrameFunction {
    fast: FastPath,
    second: &'static str,
    pyo3: PyOnceLock<Py<PyCFunction>>,
    second_name: PyOnceLock<Py<PyString>>,
}

impl FrameFunction {
    /// A builtin calling `fast` for `f(a)`, `f(a, b)` and `f(a, <second>=b)`.
    pub const fn new(fast: FastPath, second: &'static str) -> Self {
        FrameFunction { fast, second, pyo3: PyOnceLock::new(), second_name: PyOnceLock::new() }
    }

    /// The C entry's body (see [`frame_entry!`]).
    ///
    /// # Safety
    /// Called by CPython as a METH_FASTCALL | METH_KEYWORDS function: the
    /// thread is attached, `args` holds `nargs` positional arguments followed
    /// by one value per name in `kwnames` (a tuple of str, or null), all
    /// borrowed for the call.
    pub unsafe fn call(&self, args: *const *mut ffi::PyObject, nargs: ffi::Py_ssize_t, kwnames: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: CPython calls builtins with the thread attached.
        let py = unsafe { Python::assume_attached() };
        let keywords = if kwnames.is_null() {
            None
        } else {
            // SAFETY: a non-null `kwnames` is a tuple, borrowed for the call.
            Some(unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() })
        };
        let keyword_count = keywords.as_ref().map_or(0, |k| k.len());
        let only_second_by_keyword = keyword_count == 1
            && keywords
                .as_ref()
                .and_then(|k| k.get_borrowed_item(0).ok())
                .is_some_and(|name| name.as_ptr() == self.second_name(py).as_ptr());
        let common_shape = match (nargs, keyword_count) {
            (1 | 2, 0) => true,
            (1, 1) => only_second_by_keyword,
            _ => false,
        };
        let total = usize::try_from(nargs).expect("invariant: CPython passes a non-negative count") + keyword_count;
        // SAFETY: `args` holds `nargs` positional and `keyword_count` keyword
        // values (this function's contract).
        let values = unsafe { std::slice::from_raw_parts(args, total) };
        if common_shape {
            // SAFETY: each value is a live object borrowed for the call.
            let first = unsafe { Borrowed::from_ptr(py, values[0]) };
            // PyO3 passes `None` for an `Option` argument given as None.
            let second = values.get(1).map(|&v| unsafe { Borrowed::from_ptr(py, v) }).filter(|v| !v.is_none());
            let fast = self.fast;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fast(py, &first, second.as_deref())));
            match outcome {
                Ok(Some(Ok(result))) => return result.into_ptr(),
                Ok(Some(Err(error))) => return raise(py, error),
                Ok(None) => {}
                Err(payload) => return raise(py, panic_error(payload)),
            }
        }
        match self.call_pyo3(py, values, nargs, keywords.as_ref()) {
            Ok(result) => result.into_ptr(),
            Err(error) => raise(py, error),
        }
    }

    /// Calls the PyO3 function with the same arguments (tuple and dict form).
    fn call_pyo3<'py>(&self, py: Python<'py>, values: &[*mut ffi::PyObject], nargs: ffi::Py_ssize_t, keywords: Option<&Borrowed<'_, 'py, PyTuple>>) -> PyResult<Bound<'py, PyAny>> {
        let nargs = usize::try_from(nargs).expect("invariant: CPython passes a non-negative count");
        // SAFETY: every value is a live object borrowed for the call.
        let borrowed = |v: &*mut ffi::PyObject| unsafe { Borrowed::from_ptr(py, *v) };
        let positional = PyTuple::new(py, values[..nargs].iter().map(borrowed))?;
        let named = match keywords {
            None => None,
            Some(names) => {
                let dict = PyDict::new(py);
                for (name, value) in names.iter().zip(&values[nargs..]) {
                    dict.set_item(name, borrowed(value))?;
                }
                Some(dict)
            }
        };
        let pyo3 = self.pyo3.get(py).expect("invariant: set by `add` before the builtin exists");
        pyo3.bind(py).call(positional, named.as_ref())
    }

    fn second_name<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.second_name.get_or_init(py, || PyString::intern(py, self.second).unbind()).bind(py)
    }
}

fn raise(py: Python<'_>, error: PyErr) -> *mut ffi::PyObject {
    error.restore(py);
    std::ptr::null_mut()
}

/// The exception for a panic in a body, as PyO3 raises for a `#[pyfunction]`.
fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic from Rust code".into());
    PanicException::new_err(message)
}

/// Defines the C entry `$entry` of the builtin described by `$function` (a
/// `static FrameFunction`).
macro_rules! frame_entry {
    ($entry:ident => $function:path) => {
        unsafe extern "C" fn $entry(
            _module: *mut pyo3::ffi::PyObject,
            args: *const *mut pyo3::ffi::PyObject,
            nargs: pyo3::ffi::Py_ssize_t,
            kwnames: *mut pyo3::ffi::PyObject,
        ) -> *mut pyo3::ffi::PyObject {
            // SAFETY: registered by `fastcall::add` as METH_FASTCALL | METH_KEYWORDS.
            unsafe { $function.call(args, nargs, kwnames) }
        }
    };
}
pub(crate) use frame_entry;

/// Adds to `m` a builtin with `pyo3`'s name, signature and docstring whose
/// entry is `entry` (made by [`frame_entry!`] for `function`).
pub fn add(m: &Bound<'_, PyModule>, pyo3: Bound<'_, PyCFunction>, function: &'static FrameFunction, entry: ffi::PyCFunctionFastWithKeywords) -> PyResult<()> {
    let py = m.py();
    let name: String = pyo3.getattr("__name__")?.extract()?;
    let signature: String = pyo3.getattr("__text_signature__")?.extract()?;
    let doc: String = pyo3.getattr("__doc__")?.extract::<Option<String>>()?.unwrap_or_default();
    function.second_name(py);
    // A second initialisation of the module (a re-import) keeps the first
    // PyO3 function: the same code behind the same signature.
    let _ = function.pyo3.set(py, pyo3.unbind());
    let to_c = |s: String| CString::new(s).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()));
    // The method table entry must outlive the builtin, which lives as long
    // as the process (extension modules are never unloaded): leaked once.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: Box::leak(to_c(name.clone())?.into_boxed_c_str()).as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: entry },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        // CPython reads `__text_signature__` from this form of the docstring.
        ml_doc: Box::leak(to_c(format!("{name}{signature}\n--\n\n{doc}"))?.into_boxed_c_str()).as_ptr(),
    }));
    let module_name = m.name()?;
    // SAFETY: `def` is 'static; the module and its name are live objects.
    let builtin = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyCFunction_NewEx(def, m.as_ptr(), module_name.as_ptr()))? };
    m.add(name.as_str(), builtin)
}

/// Adds the `#[pyfunction]` `$pyo3` to module `$m` behind a builtin whose
/// common call shapes run `$fast` (a [`FastPath`]; `$second` is the keyword
/// name of the second argument).
macro_rules! add_frame_function {
    ($m:expr, $pyo3:ident, $second:literal, $fast:expr) => {{
        static FUNCTION: $crate::fastcall::FrameFunction = $crate::fastcall::FrameFunction::new($fast, $second);
        $crate::fastcall::frame_entry!(entry => FUNCTION);
        $crate::fastcall::add($m, pyo3::wrap_pyfunction!($pyo3, $m)?, &FUNCTION, entry)
    }};
}
pub(crate) use add_frame_function;
