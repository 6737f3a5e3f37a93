//! `rtpcore.g711` and `rtpcore.audioop`: G.711 μ-law and A-law over Python
//! buffers. Encoders take int16 samples and return `bytes`; decoders take any
//! bytes-like object and return a numpy int16 array. With `out=` they write
//! into a caller's buffer instead and return it.
use crate::buffer::with_bytes;
use crate::fastcall::add_frame_function;
use crate::pcm::{decode_call, encode_call, run_detached_if_large};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyType};
use std::mem::MaybeUninit;
use rtpcore_proto::codec::g711::{self, SampleWidth, UlawRounding};

/// A slice encoder: `(samples, codes) -> count`.
type EncodeKernel = fn(&[i16], &mut [u8]) -> usize;
/// A slice decoder: `(codes, samples) -> count`. It only writes `samples`
/// (a new array's are uninitialised), each with a decoded value.
type DecodeKernel = fn(&[u8], &mut [MaybeUninit<i16>]) -> usize;

/// The G.711 slice kernels for this CPU: the encoders in their AVX2 build
/// (AVX2 doubles the lanes over SSE2, ~0.7 to ~0.25 ns per sample), the
/// decoders as `vpshufb` table lookups (see `simd::g711_avx2`).
mod kernels {
    use super::DecodeKernel;
    use crate::simd::avx2_dispatch;
    use std::mem::MaybeUninit;
    use rtpcore_proto::codec::g711;

    avx2_dispatch!(pub fn ulaw_encode(pcm: &[i16], codes: &mut [u8]) -> usize = g711::ulaw_encode_into;);
    avx2_dispatch!(pub fn alaw_encode(pcm: &[i16], codes: &mut [u8]) -> usize = g711::alaw_encode_into;);

    /// Decodes sample by sample with `decode` (CPUs without AVX2; generic so
    /// that `decode` is inlined into the loop).
    pub(super) fn scalar_decode(codes: &[u8], out: &mut [MaybeUninit<i16>], decode: impl Fn(u8) -> i16) -> usize {
        for (sample, &code) in out.iter_mut().zip(codes) {
            sample.write(decode(code));
        }
        codes.len().min(out.len())
    }

    #[cfg(target_arch = "x86_64")]
    macro_rules! shuffle_decoder {
        ($name:ident, $scalar:path, $law:expr) => {
            pub fn $name() -> DecodeKernel {
                use crate::simd::g711_avx2::{decode, NibbleTables};
                use std::sync::OnceLock;
                static TABLES: NibbleTables = NibbleTables::new($law);
                static CHOSEN: OnceLock<DecodeKernel> = OnceLock::new();
                fn avx2(codes: &[u8], out: &mut [MaybeUninit<i16>]) -> usize {
                    // SAFETY: chosen only when the CPU has AVX2 (below).
                    unsafe { decode(&TABLES, codes, out, $scalar) }
                }
                fn scalar(codes: &[u8], out: &mut [MaybeUninit<i16>]) -> usize {
                    scalar_decode(codes, out, $scalar)
                }
                *CHOSEN.get_or_init(|| if std::arch::is_x86_feature_detected!("avx2") { avx2 } else { scalar })
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    shuffle_decoder!(ulaw_decode, g711::ulaw_decode, crate::simd::g711_avx2::Law::Ulaw);
    #[cfg(target_arch = "x86_64")]
    shuffle_decoder!(alaw_decode, g711::alaw_decode, crate::simd::g711_avx2::Law::Alaw);

    #[cfg(not(target_arch = "x86_64"))]
    pub fn ulaw_decode() -> DecodeKernel {
        |codes, out| scalar_decode(codes, out, g711::ulaw_decode)
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub fn alaw_decode() -> DecodeKernel {
        |codes, out| scalar_decode(codes, out, g711::alaw_decode)
    }
}

fn encode_with<'py>(py: Python<'py>, pcm: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>, kernel: EncodeKernel) -> PyResult<Bound<'py, PyAny>> {
    // One code per sample.
    encode_call(py, pcm, out, Ok, |samples, codes| {
        kernel(samples, codes);
    })
}

#[inline]
fn decode_with<'py>(py: Python<'py>, data: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>, kernel: DecodeKernel) -> PyResult<Bound<'py, PyAny>> {
    // One sample per code.
    decode_call(py, data, out, |len| len, |codes, samples| {
        kernel(codes, samples);
    })
}

/// Encodes int16 samples to μ-law (ITU-T G.191).
#[pyfunction]
#[pyo3(signature = (pcm, out=None))]
fn ulaw_encode<'py>(py: Python<'py>, pcm: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    encode_with(py, pcm, out, kernels::ulaw_encode())
}

/// Decodes μ-law codes to int16 samples.
#[pyfunction]
#[pyo3(signature = (data, out=None))]
fn ulaw_decode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    decode_with(py, data, out, kernels::ulaw_decode())
}

/// Encodes int16 samples to A-law (ITU-T G.191).
#[pyfunction]
#[pyo3(signature = (pcm, out=None))]
fn alaw_encode<'py>(py: Python<'py>, pcm: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    encode_with(py, pcm, out, kernels::alaw_encode())
}

/// Decodes A-law codes to int16 samples.
#[pyfunction]
#[pyo3(signature = (data, out=None))]
fn alaw_decode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    decode_with(py, data, out, kernels::alaw_decode())
}

/// `rtpcore.errors.AudioopError` (exported as `rtpcore.audioop.error`) with `message`.
fn audioop_error(py: Python<'_>, message: &str) -> PyErr {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match CLASS.import(py, "rtpcore.errors", "AudioopError") {
        Ok(cls) => PyErr::from_type(cls.clone(), message.to_owned()),
        Err(e) => e,
    }
}

/// Validates `width` with `audioop`'s message.
fn audioop_width(py: Python<'_>, width: isize) -> PyResult<SampleWidth> {
    usize::try_from(width)
        .ok()
        .and_then(SampleWidth::new)
        .ok_or_else(|| audioop_error(py, "Size should be 1, 2, 3 or 4"))
}

fn audioop_encode(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize, encode: fn(i16) -> u8) -> PyResult<Py<PyBytes>> {
    let width = audioop_width(py, width)?;
    with_bytes(fragment, "fragment", |data| {
        if data.len() % width.bytes() != 0 {
            return Err(audioop_error(py, "not a whole number of frames"));
        }
        let count = data.len() / width.bytes();
        Ok(PyBytes::new_with(py, count, |codes| {
            run_detached_if_large(py, count, || g711::encode_wide_into(data, width, codes, encode));
            Ok(())
        })?
        .unbind())
    })?
}

fn audioop_decode(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize, decode: fn(u8) -> i16, kernel: DecodeKernel) -> PyResult<Py<PyBytes>> {
    let width = audioop_width(py, width)?;
    with_bytes(fragment, "fragment", |codes| {
        Ok(PyBytes::new_with(py, codes.len() * width.bytes(), |samples| {
            run_detached_if_large(py, codes.len(), || decode_wide(codes, width, samples, decode, kernel));
            Ok(())
        })?
        .unbind())
    })?
}

/// Decodes `codes` into `out` as samples of `width` bytes (audioop's layout).
/// Width 2, what voice stacks ask for, is native int16: the vectorised kernel
/// writes it directly when `out` is 2-byte aligned (a `bytes` buffer always
/// is in CPython); otherwise, and for the other widths, sample by sample with
/// the same table.
fn decode_wide(codes: &[u8], width: SampleWidth, out: &mut [u8], decode: fn(u8) -> i16, kernel: DecodeKernel) {
    if width.bytes() == 2 {
        // SAFETY: the kernel writes only whole i16 values, so `out` stays
        // initialised bytes; align_to_mut only hands out the aligned middle
        // part, and we use it only when nothing is left over.
        let (head, samples, tail) = unsafe { out.align_to_mut::<MaybeUninit<i16>>() };
        if head.is_empty() && tail.is_empty() {
            kernel(codes, samples);
            return;
        }
    }
    g711::decode_wide_into(codes, width, out, decode);
}

fn ulaw_encode_audioop(x: i16) -> u8 {
    g711::ulaw_encode_with(x, UlawRounding::Audioop)
}

/// Converts samples of `width` bytes to μ-law, as `audioop.lin2ulaw(fragment, width)`
/// (byte-identical: audioop's rounding). Exported as `rtpcore.audioop.lin2ulaw`.
#[pyfunction]
fn audioop_lin2ulaw(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize) -> PyResult<Py<PyBytes>> {
    audioop_encode(py, fragment, width, ulaw_encode_audioop)
}

/// Converts μ-law codes to samples of `width` bytes, as `audioop.ulaw2lin(fragment, width)`.
/// Exported as `rtpcore.audioop.ulaw2lin`.
#[pyfunction]
fn audioop_ulaw2lin(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize) -> PyResult<Py<PyBytes>> {
    audioop_decode(py, fragment, width, g711::ulaw_decode, kernels::ulaw_decode())
}

/// Converts samples of `width` bytes to A-law, as `audioop.lin2alaw(fragment, width)`.
/// Exported as `rtpcore.audioop.lin2alaw`.
#[pyfunction]
fn audioop_lin2alaw(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize) -> PyResult<Py<PyBytes>> {
    audioop_encode(py, fragment, width, g711::alaw_encode)
}

/// Converts A-law codes to samples of `width` bytes, as `audioop.alaw2lin(fragment, width)`.
/// Exported as `rtpcore.audioop.alaw2lin`.
#[pyfunction]
fn audioop_alaw2lin(py: Python<'_>, fragment: &Bound<'_, PyAny>, width: isize) -> PyResult<Py<PyBytes>> {
    audioop_decode(py, fragment, width, g711::alaw_decode, kernels::alaw_decode())
}

/// `rtpcore.audioop`'s call `f(fragment, width)` with an `int` width, for
/// [`add_frame_function!`]; other widths go through PyO3's conversion.
fn audioop_fast_path<'py>(
    py: Python<'py>,
    fragment: &Bound<'py, PyAny>,
    width: Option<&Bound<'py, PyAny>>,
    function: fn(Python<'py>, &Bound<'py, PyAny>, isize) -> PyResult<Py<PyBytes>>,
) -> Option<PyResult<Bound<'py, PyAny>>> {
    let width = width?.cast::<PyInt>().ok()?.extract::<isize>().ok()?;
    Some(function(py, fragment, width).map(|bytes| bytes.into_bound(py).into_any()))
}

/// Adds the G.711 and audioop functions to `_core`, each behind a builtin
/// whose per-frame calls skip PyO3's argument parsing (see `fastcall`).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    add_frame_function!(m, ulaw_encode, "out", |py, pcm, out| Some(ulaw_encode(py, pcm, out)))?;
    add_frame_function!(m, ulaw_decode, "out", |py, data, out| Some(ulaw_decode(py, data, out)))?;
    add_frame_function!(m, alaw_encode, "out", |py, pcm, out| Some(alaw_encode(py, pcm, out)))?;
    add_frame_function!(m, alaw_decode, "out", |py, data, out| Some(alaw_decode(py, data, out)))?;
    add_frame_function!(m, audioop_lin2ulaw, "width", |py, f, w| audioop_fast_path(py, f, w, audioop_lin2ulaw))?;
    add_frame_function!(m, audioop_ulaw2lin, "width", |py, f, w| audioop_fast_path(py, f, w, audioop_ulaw2lin))?;
    add_frame_function!(m, audioop_lin2alaw, "width", |py, f, w| audioop_fast_path(py, f, w, audioop_lin2alaw))?;
    add_frame_function!(m, audioop_alaw2lin, "width", |py, f, w| audioop_fast_path(py, f, w, audioop_alaw2lin))?;
    Ok(())
}
