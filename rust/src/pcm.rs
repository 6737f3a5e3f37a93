//! Reading and writing 16-bit PCM and codec octets across the Python boundary,
//! shared by the codec and audio DSP bindings (g711, g722, resample, dtmf, cn).
//!
//! Samples come in as `bytes`, numpy int16 arrays or any buffer whose format
//! is int16 or raw bytes; outputs are `bytes` (codes) and numpy int16 arrays
//! (samples), or a caller-provided writable buffer (`out=`). The common cases
//! (`bytes`, numpy arrays) skip the buffer protocol: a 20 ms frame must cost
//! well under a microsecond from Python, so every nanosecond here counts.
use numpy::npyffi::{get_type_object, npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use numpy::npyffi::NPY_TYPES;
use std::ffi::{c_int, CStr};
use std::mem::MaybeUninit;

/// Inputs of at least this many samples are processed with the GIL released;
/// below it, releasing and re-taking the GIL costs more than the work.
pub const DETACH_THRESHOLD: usize = 16 * 1024;

/// Runs `f` with the GIL released when `len` is large enough to be worth it.
pub fn run_detached_if_large<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len >= DETACH_THRESHOLD {
        py.detach(f)
    } else {
        f()
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A C-contiguous buffer view with its format, released on drop.
struct TypedView(ffi::Py_buffer);

impl TypedView {
    /// Requests a C-contiguous view with format information, writable if asked.
    fn get(obj: &Bound<'_, PyAny>, writable: bool) -> Option<Self> {
        let mut flags = ffi::PyBUF_FORMAT | ffi::PyBUF_C_CONTIGUOUS;
        if writable {
            flags |= ffi::PyBUF_WRITABLE;
        }
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: `obj` is alive (we hold the GIL through `Bound`) and `view`
        // is writable memory for one Py_buffer, filled in on success.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc != 0 {
            // SAFETY: we hold the GIL; clears the BufferError the exporter set.
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        // SAFETY: PyObject_GetBuffer succeeded, so the view is initialised.
        Some(TypedView(unsafe { view.assume_init() }))
    }

    /// The struct-module format character of one item, or `None` when it is
    /// not a single native-order item (e.g. `'<h'` on a big-endian host).
    fn item_format(&self) -> Option<u8> {
        if self.0.format.is_null() {
            return Some(b'B'); // no format means unsigned bytes (PEP 3118)
        }
        // SAFETY: a non-null format is a NUL-terminated string owned by the view.
        let format = unsafe { CStr::from_ptr(self.0.format) }.to_bytes();
        match format {
            [c] | [b'@' | b'=', c] => Some(*c),
            [b'<', c] if cfg!(target_endian = "little") => Some(*c),
            [b'>' | b'!', c] if cfg!(target_endian = "big") => Some(*c),
            _ => None,
        }
    }

    fn len_bytes(&self) -> usize {
        self.0.len.max(0) as usize
    }

    fn ptr(&self) -> *mut u8 {
        self.0.buf.cast()
    }
}

impl Drop for TypedView {
    fn drop(&mut self) {
        // SAFETY: obtained by PyObject_GetBuffer, released exactly once, with
        // the GIL held (views never leave the thread that holds it).
        unsafe { ffi::PyBuffer_Release(&mut self.0) };
    }
}

fn is_byte_format(format: u8) -> bool {
    matches!(format, b'B' | b'b' | b'c')
}

/// Checks that a buffer of `len` bytes holds whole int16 samples.
fn check_even(what: &str, len: usize) -> PyResult<()> {
    if !len.is_multiple_of(2) {
        return Err(PyValueError::new_err(format!(
            "{what}: {len} bytes is not a whole number of int16 samples (2 bytes each)"
        )));
    }
    Ok(())
}

/// Calls `f` with `len_bytes` bytes at `ptr` viewed as int16 samples,
/// copying only if the memory is not 2-byte aligned.
///
/// # Safety
/// `ptr` must point to `len_bytes` readable bytes (an even number) that stay
/// valid and unmodified for the duration of the call.
unsafe fn with_raw_i16<R>(ptr: *const u8, len_bytes: usize, f: impl FnOnce(&[i16]) -> R) -> R {
    let count = len_bytes / 2;
    if count == 0 {
        return f(&[]);
    }
    if ptr.align_offset(std::mem::align_of::<i16>()) == 0 {
        // SAFETY: aligned, `count * 2` readable bytes, valid for the call
        // (caller's contract); every bit pattern is a valid i16.
        f(unsafe { std::slice::from_raw_parts(ptr.cast::<i16>(), count) })
    } else {
        // SAFETY: as above, read as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, count * 2) };
        let copy: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_ne_bytes([b[0], b[1]])).collect();
        f(&copy)
    }
}

/// Checks a numpy array's element type and layout for use as int16 samples.
fn check_int16_array(array: &Bound<'_, PyUntypedArray>, what: &str) -> PyResult<()> {
    let dtype = array.dtype();
    // Comparing the type number and byte order directly is a field read;
    // `is_equiv_to` goes through numpy's API table and costs ~10 ns a call.
    let is_int16 = dtype.num() == numpy::npyffi::NPY_TYPES::NPY_SHORT as std::ffi::c_int
        && dtype.is_native_byteorder() != Some(false);
    if !is_int16 {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected an int16 array, got dtype {}",
            dtype.str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into())
        )));
    }
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("{what}: array must be C-contiguous")));
    }
    Ok(())
}

/// Calls `f` with the int16 samples in `obj`: `bytes` or any byte buffer of
/// even length (native byte order), a numpy int16 array, or a buffer whose
/// format is int16 (`memoryview(array('h'))`). Wrong types raise `TypeError`,
/// odd lengths and non-contiguous arrays `ValueError`, each naming `what`.
pub fn with_pcm16<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&[i16]) -> R) -> PyResult<R> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        let data = bytes.as_bytes();
        check_even(what, data.len())?;
        // SAFETY: `bytes` is immutable and alive for the whole call.
        return Ok(unsafe { with_raw_i16(data.as_ptr(), data.len(), f) });
    }
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        check_int16_array(array, what)?;
        let len_bytes = array.len() * 2;
        // SAFETY: the array is int16 and C-contiguous (checked), so its data
        // pointer covers len() items; it is kept alive by `obj` for the call.
        // Only this thread runs Python code while the GIL is held; when the
        // caller releases it for a large buffer, the buffer stays alive and a
        // concurrent writer could at worst change the samples we read.
        let ptr = unsafe { (*array.as_array_ptr()).fields.data }.cast::<u8>().cast_const();
        return Ok(unsafe { with_raw_i16(ptr, len_bytes, f) });
    }
    let view = TypedView::get(obj, false).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{what}: expected int16 samples (bytes-like object or numpy int16 array), got {}",
            type_name(obj)
        ))
    })?;
    match view.item_format() {
        Some(b'h') => {}
        Some(c) if is_byte_format(c) => check_even(what, view.len_bytes())?,
        _ => return Err(PyTypeError::new_err(format!("{what}: expected int16 samples, got a buffer of another item type"))),
    }
    // SAFETY: the view is contiguous, `len_bytes` long and held until it drops
    // after the call.
    Ok(unsafe { with_raw_i16(view.ptr(), view.len_bytes(), f) })
}

/// Calls `f` with `obj` (a writable bytes-like object) as a mutable byte slice.
pub fn with_bytes_out<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&mut [u8]) -> R) -> PyResult<R> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        // A numpy array's fields read directly: its buffer export formats a
        // dtype string for every call.
        if !matches!(array.dtype().num(), n if n == NPY_TYPES::NPY_UBYTE as c_int || n == NPY_TYPES::NPY_BYTE as c_int) {
            return Err(PyTypeError::new_err(format!("{what}: expected a writable buffer of bytes (uint8)")));
        }
        // SAFETY: `array` is a live ndarray; reading its data and flags fields.
        let data = unsafe { writable_array_data(array, what)? };
        let len = array.len();
        if len == 0 {
            return Ok(f(&mut []));
        }
        // SAFETY: a writeable, C-contiguous array of `len` one-byte items
        // (checked), kept alive by `obj` for the call.
        return Ok(f(unsafe { std::slice::from_raw_parts_mut(data, len) }));
    }
    let view = writable_view(obj, what)?;
    match view.item_format() {
        Some(c) if is_byte_format(c) => {}
        _ => return Err(PyTypeError::new_err(format!("{what}: expected a writable buffer of bytes (uint8)"))),
    }
    let len = view.len_bytes();
    if len == 0 {
        return Ok(f(&mut []));
    }
    // SAFETY: a writable contiguous view of `len` bytes, held until the end of
    // this function; nothing else borrows it meanwhile.
    Ok(f(unsafe { std::slice::from_raw_parts_mut(view.ptr(), len) }))
}

/// Calls `f` with `obj` (a writable int16 numpy array, or writable buffer of
/// int16 or bytes, 2-byte aligned) as a mutable int16 slice.
pub fn with_pcm16_out<R>(obj: &Bound<'_, PyAny>, what: &str, f: impl FnOnce(&mut [i16]) -> R) -> PyResult<R> {
    if let Ok(array) = obj.cast::<PyUntypedArray>() {
        check_int16_array(array, what)?;
        // SAFETY: `array` is a live ndarray; reading its data and flags fields.
        let data = unsafe { writable_array_data(array, what)? };
        let count = array.len();
        // A writeable, C-contiguous int16 array (checked) of `count` items,
        // kept alive by `obj`; numpy keeps its data aligned for its dtype
        // unless the array says otherwise (checked below).
        let ptr = data.cast::<i16>();
        if count == 0 {
            return Ok(f(&mut []));
        }
        if !array.is_aligned() {
            return Err(PyValueError::new_err(format!("{what}: array is not 2-byte aligned")));
        }
        return Ok(f(unsafe { std::slice::from_raw_parts_mut(ptr, count) }));
    }
    let view = writable_view(obj, what)?;
    match view.item_format() {
        Some(b'h') => {}
        Some(c) if is_byte_format(c) => check_even(what, view.len_bytes())?,
        _ => return Err(PyTypeError::new_err(format!("{what}: expected a writable int16 buffer"))),
    }
    let count = view.len_bytes() / 2;
    if count == 0 {
        return Ok(f(&mut []));
    }
    if view.ptr().align_offset(std::mem::align_of::<i16>()) != 0 {
        return Err(PyValueError::new_err(format!("{what}: buffer is not 2-byte aligned")));
    }
    // SAFETY: writable, contiguous, aligned, `count * 2` bytes, held until the
    // end of this function; every bit pattern is a valid i16.
    Ok(f(unsafe { std::slice::from_raw_parts_mut(view.ptr().cast::<i16>(), count) }))
}

/// The data pointer of a writeable, C-contiguous numpy array.
///
/// # Safety
/// `array` must be a live ndarray (any `Bound` of one is).
unsafe fn writable_array_data(array: &Bound<'_, PyUntypedArray>, what: &str) -> PyResult<*mut u8> {
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("{what}: array must be C-contiguous")));
    }
    // SAFETY: a live ndarray (caller's contract); reading two fields.
    let fields = unsafe { &(*array.as_array_ptr()).fields };
    if fields.flags & numpy::npyffi::NPY_ARRAY_WRITEABLE == 0 {
        return Err(PyValueError::new_err(format!("{what}: array is read-only")));
    }
    Ok(fields.data.cast())
}

fn writable_view(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<TypedView> {
    TypedView::get(obj, true).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{what}: expected a writable contiguous buffer (bytearray, numpy array), got {}",
            type_name(obj)
        ))
    })
}

/// Checks that an `out=` buffer of `available` items can take `needed`.
pub fn check_out_len(what: &str, available: usize, needed: usize) -> PyResult<()> {
    if available < needed {
        return Err(PyValueError::new_err(format!(
            "{what}: buffer holds {available} items, {needed} needed"
        )));
    }
    Ok(())
}

/// numpy's native int16 dtype, looked up once: `PyArray_DescrFromType` on
/// every array costs a call through numpy's API table per frame.
fn int16_descr(py: Python<'_>) -> &Bound<'_, PyArrayDescr> {
    static DESCR: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();
    DESCR.get_or_init(py, || PyArrayDescr::of::<i16>(py).unbind()).bind(py)
}

/// A new numpy int16 array of `len` samples, filled by `fill` (which must
/// write every element and never de-initialise one).
///
/// Made by one `PyArray_NewFromDescr` call with the cached dtype, as
/// `np.empty` does, and handed to `fill` uninitialised: per 20 ms frame the
/// array's creation is most of a decoder call, and zeroing what a kernel
/// overwrites cost ~4 ns of ~110. Its memory comes from numpy's default
/// allocator called directly ([`numpy_memory`]), unless it is empty or
/// another allocator was in effect at the first array.
pub fn new_pcm16_array_uninit<'py>(py: Python<'py>, len: usize, fill: impl FnOnce(&mut [MaybeUninit<i16>])) -> Bound<'py, PyArray1<i16>> {
    let mut dims = [npy_intp::try_from(len).expect("invariant: a slice length fits in npy_intp")];
    // numpy allocates one byte for an empty array (and zeroes its strides);
    // those stay numpy's own.
    let memory = if len > 0 { numpy_memory::DataMemory::allocate(py, len * 2) } else { None };
    // SAFETY: PyArray_NewFromDescr steals the descriptor reference we pass
    // (`into_ptr`); with null strides it makes a C-contiguous array of `len`
    // int16 items: over `memory`'s `len * 2` bytes (flags CARRAY: aligned,
    // writeable; it does not own them until `give_to`), or, with null data,
    // over memory it allocates and owns. A null result (MemoryError) panics
    // in `from_owned_ptr`, as `PyArray1::new` did, after `memory` is freed.
    let array = unsafe {
        let data = memory.as_ref().map_or(std::ptr::null_mut(), |m| m.data());
        let flags = if memory.is_some() { numpy::npyffi::NPY_ARRAY_CARRAY } else { 0 };
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            get_type_object(py, NpyTypes::PyArray_Type),
            int16_descr(py).clone().into_ptr().cast(),
            1,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data,
            flags,
            std::ptr::null_mut(),
        );
        if !ptr.is_null() {
            if let Some(memory) = memory {
                memory.give_to(ptr.cast());
            }
        }
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked::<PyArray1<i16>>()
    };
    if len > 0 {
        // SAFETY: a fresh C-contiguous array of `len` i16, owned only by us;
        // as MaybeUninit nothing reads it before `fill` writes it.
        fill(unsafe { std::slice::from_raw_parts_mut(array.data().cast::<MaybeUninit<i16>>(), len) });
    }
    array
}

/// Array data allocated as numpy allocates it, for [`new_pcm16_array_uninit`].
///
/// numpy (>= 1.22, NEP 49) allocates an array's data through the memory
/// handler in effect: it reads a context variable and checks the handler
/// capsule's name with `strcmp` on every allocation. Per 20 ms frame that is
/// a fifth of a decoder call, and more in a process whose context holds
/// other variables (asyncio, pytest): reading an unset context variable
/// searches the whole context every time, ~20 ns a call in the benchmark.
///
/// Here numpy's default handler is resolved once, when the first array is
/// made (if the handler in effect then is another, numpy's own path is used
/// for every array), and each array's data comes from its allocator called
/// directly, registered with tracemalloc under numpy's domain, and owned by
/// the array with that handler recorded: exactly how numpy leaves an array
/// it allocated, so numpy frees, resizes and pickles it as its own. The one
/// difference: a memory policy that a C extension sets after that first
/// array does not apply to these arrays (they keep numpy's default).
mod numpy_memory {
    use numpy::npyffi::{PyArrayObject, NPY_ARRAY_OWNDATA, PY_ARRAY_API};
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::types::{PyCapsule, PyCapsuleMethods};
    use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

    /// `PyDataMemAllocator` (numpy's `ndarraytypes.h`).
    #[repr(C)]
    struct Allocator {
        ctx: *mut c_void,
        malloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
        calloc: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
        realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void,
        free: unsafe extern "C" fn(*mut c_void, *mut c_void, usize),
    }

    /// `PyDataMem_Handler`, the struct in a `"mem_handler"` capsule.
    #[repr(C)]
    struct Handler {
        name: [c_char; 127],
        version: u8,
        allocator: Allocator,
    }

    /// `PyArrayObject_fields` up to `mem_handler` (numpy >= 1.22; the numpy
    /// crate declares the fields up to `weakreflist`).
    #[repr(C)]
    struct ArrayWithHandler {
        array: PyArrayObject,
        buffer_info: *mut c_void,
        mem_handler: *mut ffi::PyObject,
    }

    /// numpy's C API feature version that added memory handlers.
    const NPY_1_22_API_VERSION: c_uint = 0x0000_000f;
    /// `PyDataMem_GetHandler`'s slot in numpy's C API table.
    const GET_HANDLER_SLOT: usize = 305;
    /// `NPY_TRACE_DOMAIN`: numpy's tracemalloc domain for array data.
    const NPY_TRACE_DOMAIN: c_uint = 389_047;

    unsafe extern "C" {
        // CPython's C API (not in the limited API's headers, exported by
        // every CPython since 3.7); numpy calls it for every allocation.
        fn PyTraceMalloc_Track(domain: c_uint, ptr: usize, size: usize) -> c_int;
        fn PyTraceMalloc_Untrack(domain: c_uint, ptr: usize) -> c_int;
    }

    type GetHandler = unsafe extern "C" fn() -> *mut ffi::PyObject;

    /// numpy's default handler: its capsule, kept alive here (so the
    /// address cannot be reused), and the handler inside.
    struct Resolved {
        capsule: Py<PyCapsule>,
        handler: *const Handler,
    }

    // SAFETY: `handler` points into a capsule `Resolved` keeps alive, used
    // only with the GIL held.
    unsafe impl Send for Resolved {}
    unsafe impl Sync for Resolved {}

    fn resolved(py: Python<'_>) -> Option<&'static Resolved> {
        static RESOLVED: PyOnceLock<Option<Resolved>> = PyOnceLock::new();
        RESOLVED.get_or_init(py, || resolve(py).ok().flatten()).as_ref()
    }

    fn resolve(py: Python<'_>) -> PyResult<Option<Resolved>> {
        // SAFETY: a numpy C API call (slot 211) with the GIL held.
        if unsafe { PY_ARRAY_API.PyArray_GetNDArrayCFeatureVersion(py) } < NPY_1_22_API_VERSION {
            return Ok(None);
        }
        let module = py.import("numpy._core.multiarray").or_else(|_| py.import("numpy.core.multiarray"))?;
        let api = module.getattr("_ARRAY_API")?.cast_into::<PyCapsule>()?;
        let table = api.pointer_checked(None)?.cast::<*const c_void>();
        // SAFETY: numpy's API table has a GetHandler slot from 1.22 on
        // (checked above); the table lives as long as numpy, which stays
        // imported (the capsule is kept, as the numpy crate keeps it).
        let get_handler: GetHandler = unsafe { std::mem::transmute::<*const c_void, GetHandler>(*table.as_ptr().add(GET_HANDLER_SLOT)) };
        std::mem::forget(api);
        // SAFETY: returns a new reference to the handler capsule in effect.
        let capsule = unsafe { Bound::from_owned_ptr_or_err(py, get_handler())? }.cast_into::<PyCapsule>()?;
        let handler = capsule.pointer_checked(Some(c"mem_handler"))?.cast::<Handler>().as_ptr().cast_const();
        // SAFETY: a handler's name is a NUL-terminated string in its struct.
        let name = unsafe { CStr::from_ptr((*handler).name.as_ptr()) };
        Ok((name == c"default_allocator").then(|| Resolved { capsule: capsule.unbind(), handler }))
    }

    /// `nbytes` of data from the resolved handler, with a reference to it.
    pub struct DataMemory {
        data: *mut c_void,
        nbytes: usize,
        handler: *const Handler,
        capsule: *mut ffi::PyObject,
    }

    impl DataMemory {
        /// Allocates `nbytes` (non-zero) with numpy's default handler;
        /// `None` without one or when the allocation failed (numpy's own
        /// path then allocates, or raises).
        pub fn allocate(py: Python<'_>, nbytes: usize) -> Option<Self> {
            let resolved = resolved(py)?;
            // The array's reference to its handler, as numpy takes one.
            let capsule = resolved.capsule.clone_ref(py).into_ptr();
            let handler = resolved.handler;
            // SAFETY: the resolved handler's allocator, as numpy's
            // PyDataMem_UserNEW calls it.
            let data = unsafe { ((*handler).allocator.malloc)((*handler).allocator.ctx, nbytes) };
            let memory = DataMemory { data, nbytes, handler, capsule };
            // SAFETY: as numpy registers its allocations (-1: tracemalloc
            // could not record it; numpy frees and reports no memory).
            if data.is_null() || unsafe { PyTraceMalloc_Track(NPY_TRACE_DOMAIN, data as usize, nbytes) } == -1 {
                return None;
            }
            Some(memory)
        }

        pub fn data(&self) -> *mut c_void {
            self.data
        }

        /// Makes `array`, created over this memory, its owner: numpy then
        /// frees it with the handler, as for an array it allocated.
        ///
        /// # Safety
        /// `array` is a live ndarray whose data is this memory, not yet seen
        /// by anyone else.
        pub unsafe fn give_to(self, array: *mut PyArrayObject) {
            let fields = array.cast::<ArrayWithHandler>();
            // SAFETY: numpy >= 1.22 (checked when resolving) lays arrays out
            // with `mem_handler` after `weakreflist`; with data passed in,
            // numpy left it null and OWNDATA clear.
            unsafe {
                (*fields).mem_handler = self.capsule;
                (*fields).array.fields.flags |= NPY_ARRAY_OWNDATA;
            }
            std::mem::forget(self);
        }
    }

    impl Drop for DataMemory {
        /// Frees memory no array took (the array's creation failed).
        fn drop(&mut self) {
            // SAFETY: memory from this handler, not handed over; the
            // capsule reference is ours. The GIL is held (created under it,
            // never sent).
            unsafe {
                if !self.data.is_null() {
                    PyTraceMalloc_Untrack(NPY_TRACE_DOMAIN, self.data as usize);
                    let allocator = &(*self.handler).allocator;
                    (allocator.free)(allocator.ctx, self.data, self.nbytes);
                }
                ffi::Py_DecRef(self.capsule);
            }
        }
    }
}

/// A new numpy int16 array of `len` samples, zeroed and then filled by `fill`.
pub fn new_pcm16_array<'py>(py: Python<'py>, len: usize, fill: impl FnOnce(&mut [i16])) -> Bound<'py, PyArray1<i16>> {
    new_pcm16_array_uninit(py, len, |samples| fill(zeroed(samples)))
}

/// `samples` zeroed, as initialised samples.
pub fn zeroed(samples: &mut [MaybeUninit<i16>]) -> &mut [i16] {
    samples.fill(MaybeUninit::new(0));
    // SAFETY: every element was just initialised; MaybeUninit<i16> has the
    // layout of i16.
    unsafe { &mut *(std::ptr::from_mut(samples) as *mut [i16]) }
}

/// `samples` as a slice for a decoder kernel to write.
fn as_uninit(samples: &mut [i16]) -> &mut [MaybeUninit<i16>] {
    // SAFETY: same layout; decoder kernels only write initialised samples
    // (`decode_call`'s contract), so `samples` stays initialised.
    unsafe { &mut *(std::ptr::from_mut(samples) as *mut [MaybeUninit<i16>]) }
}

/// The common shape of an encoder call: reads int16 samples from `pcm`,
/// runs `kernel(samples, codes)` on `codes_len(samples.len())?` code octets
/// in a new `bytes` object or in `out` (which is then returned), with the GIL
/// released for large inputs.
pub fn encode_call<'py>(
    py: Python<'py>,
    pcm: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    codes_len: impl FnOnce(usize) -> PyResult<usize>,
    kernel: impl FnOnce(&[i16], &mut [u8]) + Send,
) -> PyResult<Bound<'py, PyAny>> {
    with_pcm16(pcm, "pcm", |samples| {
        let len = codes_len(samples.len())?;
        match out {
            None => PyBytes::new_with(py, len, |codes| {
                run_detached_if_large(py, samples.len(), || kernel(samples, codes));
                Ok(())
            })
            .map(Bound::into_any),
            Some(out) => {
                with_bytes_out(out, "out", |codes| {
                    check_out_len("out", codes.len(), len)?;
                    run_detached_if_large(py, samples.len(), || kernel(samples, &mut codes[..len]));
                    Ok::<(), PyErr>(())
                })??;
                Ok(out.clone())
            }
        }
    })?
}

/// The common shape of a decoder call: reads code octets from `data` (any
/// bytes-like object), runs `kernel(codes, samples)` on
/// `samples_len(codes.len())` samples in a new numpy int16 array or in `out`
/// (which is then returned), with the GIL released for large inputs.
///
/// `kernel` must write every sample and only initialised values (a new
/// array is passed uninitialised; [`zeroed`] adapts kernels over `&mut [i16]`).
pub fn decode_call<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    samples_len: impl FnOnce(usize) -> usize,
    kernel: impl FnOnce(&[u8], &mut [MaybeUninit<i16>]) + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(out) = out else {
        // The per-frame case on its own: one `PyResult` from reading `data`
        // to the new array, none of the `out=` checks.
        return crate::buffer::with_bytes(data, "data", |codes| {
            let len = samples_len(codes.len());
            new_pcm16_array_uninit(py, len, |samples| run_detached_if_large(py, len, || kernel(codes, samples))).into_any()
        });
    };
    crate::buffer::with_bytes(data, "data", |codes| {
        let len = samples_len(codes.len());
        with_pcm16_out(out, "out", |samples| {
            check_out_len("out", samples.len(), len)?;
            run_detached_if_large(py, len, || kernel(codes, as_uninit(&mut samples[..len])));
            Ok::<(), PyErr>(())
        })?
    })??;
    Ok(out.clone())
}
