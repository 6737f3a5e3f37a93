//! `rtpcore.resample`: the streaming resampler over int16 or float32 numpy
//! arrays and buffers.
use crate::pcm::{run_detached_if_large, with_pcm16};
use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use crate::simd::avx2_dispatch;
use rtpcore_proto::resample::{f32_to_i16, i16_to_f32, Quality, Resampler as CoreResampler};

// The int16 <-> float conversions around the resampler: AVX2 doubles the
// lanes of the baseline SSE2 build.
avx2_dispatch!(fn to_floats(input: &[i16], out: &mut Vec<f32>) -> () = i16_to_f32;);
avx2_dispatch!(fn to_int16(input: &[f32], out: &mut [i16]) -> () = f32_to_i16;);

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
    /// Reused float buffers for int16 calls.
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
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

impl Resampler {
    fn output<'py>(&mut self, py: Python<'py>, produced: &[f32]) -> Bound<'py, PyAny> {
        match self.sample_type {
            SampleType::Float32 => PyArray1::from_slice(py, produced).into_any(),
            SampleType::Int16 => crate::pcm::new_pcm16_array(py, produced.len(), |out| to_int16()(produced, out)).into_any(),
        }
    }
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
        Ok(Resampler { inner, sample_type: SampleType::Int16, scratch_in: Vec::new(), scratch_out: Vec::new() })
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
        let mut produced = std::mem::take(&mut self.scratch_out);
        produced.clear();
        if let Some(array) = float32_array(pcm)? {
            self.sample_type = SampleType::Float32;
            let readonly = array.readonly();
            let input = readonly.as_slice().map_err(|_| PyValueError::new_err("pcm: array must be C-contiguous"))?;
            let inner = &mut self.inner;
            run_detached_if_large(py, input.len(), || inner.process(input, &mut produced));
        } else {
            let mut floats = std::mem::take(&mut self.scratch_in);
            floats.clear();
            with_pcm16(pcm, "pcm", |samples| to_floats()(samples, &mut floats))?;
            self.sample_type = SampleType::Int16;
            let inner = &mut self.inner;
            run_detached_if_large(py, floats.len(), || inner.process(&floats, &mut produced));
            self.scratch_in = floats;
        }
        let result = self.output(py, &produced);
        self.scratch_out = produced;
        Ok(result)
    }

    /// Ends the stream: returns the remaining output (same type as the last
    /// `process` input) and resets for a new stream.
    fn flush<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyAny> {
        let mut produced = std::mem::take(&mut self.scratch_out);
        produced.clear();
        self.inner.flush(&mut produced);
        let result = self.output(py, &produced);
        self.scratch_out = produced;
        result
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
