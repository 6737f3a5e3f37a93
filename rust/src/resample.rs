//! `rtpcore.resample`: the streaming resampler over int16 or float32 numpy
//! arrays and buffers.
use crate::pcm::{new_pcm16_array, run_detached_if_large, with_pcm16};
use crate::simd::avx2_dispatch;
use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rtpcore_proto::resample::{Quality, ResampleError, Resampler as CoreResampler};

// The int16 paths, with the int16 <-> float conversions inlined: AVX2
// doubles their lanes over the baseline SSE2 build.
avx2_dispatch!(fn process_pcm16(resampler: &mut CoreResampler, input: &[i16], out: &mut [i16]) -> Result<usize, ResampleError> = CoreResampler::process_i16_into;);
avx2_dispatch!(fn flush_pcm16(resampler: &mut CoreResampler, out: &mut [i16]) -> Result<usize, ResampleError> = CoreResampler::flush_i16_into;);

/// The sample type a call came in with, and goes out with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SampleType {
    Int16,
    Float32,
}

/// Streaming resampler between 8, 11.025, 12, 16, 22.05, 24, 32, 44.1 and
/// 48 kHz.
#[pyclass(name = "Resampler", module = "rtpcore.resample")]
struct Resampler {
    inner: CoreResampler,
    /// The type of the last `process` input, which `flush` returns.
    sample_type: SampleType,
}

fn parse_quality(quality: &str) -> PyResult<Quality> {
    match quality.to_ascii_lowercase().as_str() {
        "low" => Ok(Quality::Low),
        "medium" => Ok(Quality::Medium),
        "high" => Ok(Quality::High),
        "very_high" => Ok(Quality::VeryHigh),
        _ => Err(PyValueError::new_err(format!(
            "quality: '{quality}' is not one of 'low', 'medium', 'high', 'very_high'"
        ))),
    }
}

/// Reads a float32 numpy array (C-contiguous), if `obj` is one.
fn float32_array<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> PyResult<Option<&'a Bound<'py, PyArray1<f32>>>> {
    let Ok(array) = obj.cast::<PyUntypedArray>() else { return Ok(None) };
    if !array.dtype().is_equiv_to(&numpy::dtype::<f32>(obj.py())) {
        return Ok(None);
    }
    if array.ndim() != 1 {
        return Err(PyValueError::new_err("pcm: float32 samples must be a 1-D array"));
    }
    let array = obj.cast::<PyArray1<f32>>().map_err(|_| PyTypeError::new_err("pcm: expected a float32 array"))?;
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err("pcm: array must be C-contiguous"));
    }
    Ok(Some(array))
}

/// A new int16 array of `len` samples, filled by `fill`, which runs even
/// when `len` is 0: a call that only buffers input still has work to do.
fn new_int16_array<'py>(py: Python<'py>, len: usize, fill: impl FnOnce(&mut [i16])) -> Bound<'py, PyArray1<i16>> {
    if len == 0 {
        fill(&mut []);
        return PyArray1::zeros(py, 0, false);
    }
    new_pcm16_array(py, len, fill)
}

/// A new float32 array of `len` samples, filled by `fill`, with the GIL
/// released when `work` (samples to go through) is large.
fn new_float32_array<'py>(
    py: Python<'py>,
    len: usize,
    work: usize,
    fill: impl FnOnce(&mut [f32]) + Send,
) -> Bound<'py, PyArray1<f32>> {
    let array = PyArray1::<f32>::zeros(py, len, false);
    {
        let mut view = array.readwrite();
        let out = view.as_slice_mut().expect("invariant: a new array is contiguous");
        run_detached_if_large(py, work, || fill(out));
    }
    array
}

#[pymethods]
impl Resampler {
    #[new]
    #[pyo3(signature = (in_rate, out_rate, quality="high"))]
    fn new(in_rate: i64, out_rate: i64, quality: &str) -> PyResult<Self> {
        let quality = parse_quality(quality)?;
        let rate = |which: &str, value: i64| {
            u32::try_from(value).map_err(|_| PyValueError::new_err(format!("{which}: {value} Hz is not a sample rate")))
        };
        let inner = CoreResampler::new(rate("in_rate", in_rate)?, rate("out_rate", out_rate)?, quality)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Resampler { inner, sample_type: SampleType::Int16 })
    }

    /// The input rate in Hz.
    #[getter]
    fn in_rate(&self) -> u32 {
        self.inner.in_rate()
    }

    /// The output rate in Hz.
    #[getter]
    fn out_rate(&self) -> u32 {
        self.inner.out_rate()
    }

    /// Input samples buffered before output appears, at most.
    #[getter]
    fn latency(&self) -> usize {
        self.inner.latency_samples()
    }

    /// Pushes samples and returns the output that is ready: int16 samples
    /// (numpy array or buffer) give an int16 array, a float32 numpy array
    /// (-1.0..1.0) gives a float32 array.
    fn process<'py>(&mut self, py: Python<'py>, pcm: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &mut self.inner;
        if let Some(array) = float32_array(pcm)? {
            self.sample_type = SampleType::Float32;
            let readonly = array.readonly();
            let input = readonly.as_slice().map_err(|_| PyValueError::new_err("pcm: array must be C-contiguous"))?;
            let len = inner.output_len(input.len());
            let output = new_float32_array(py, len, input.len(), |out| {
                inner.process_into(input, out).expect("invariant: the array was sized by output_len");
            });
            return Ok(output.into_any());
        }
        self.sample_type = SampleType::Int16;
        with_pcm16(pcm, "pcm", |samples| {
            let len = inner.output_len(samples.len());
            new_int16_array(py, len, |out| {
                run_detached_if_large(py, samples.len(), || {
                    process_pcm16()(inner, samples, out).expect("invariant: the array was sized by output_len");
                });
            })
            .into_any()
        })
    }

    /// Ends the stream: returns the remaining output (same type as the last
    /// `process` input) and resets for a new stream.
    fn flush<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyAny> {
        let inner = &mut self.inner;
        let len = inner.flush_len();
        match self.sample_type {
            SampleType::Float32 => new_float32_array(py, len, len, |out| {
                inner.flush_into(out).expect("invariant: the array was sized by flush_len");
            })
            .into_any(),
            SampleType::Int16 => new_int16_array(py, len, |out| {
                flush_pcm16()(inner, out).expect("invariant: the array was sized by flush_len");
            })
            .into_any(),
        }
    }

    /// Forgets the stream without producing its tail.
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// Adds the resampler to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Resampler>()?;
    Ok(())
}
