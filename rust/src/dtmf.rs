//! `rtpcore.dtmf`: DTMF tone generation and the streaming detector.
use crate::pcm::{new_pcm16_array, with_pcm16};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rtpcore_proto::dtmf::{self, DtmfDetector as CoreDetector, DtmfEvent as CoreEvent, ToneParams};

fn rate_arg(sample_rate: i64) -> PyResult<u32> {
    u32::try_from(sample_rate)
        .ok()
        .filter(|r| (8_000..=192_000).contains(r))
        .ok_or_else(|| PyValueError::new_err(format!("sample_rate: {sample_rate} Hz is not supported (8000 to 192000)")))
}

/// One detected digit: `digit`, and its `start`/`end` in seconds (and in
/// samples) from the start of the stream.
#[pyclass(name = "DTMFEvent", module = "rtpcore.dtmf", frozen, eq)]
#[derive(Clone, PartialEq)]
struct DTMFEvent {
    #[pyo3(get)]
    digit: char,
    #[pyo3(get)]
    start_sample: u64,
    #[pyo3(get)]
    end_sample: u64,
    #[pyo3(get)]
    sample_rate: u32,
}

#[pymethods]
impl DTMFEvent {
    /// Start time in seconds.
    #[getter]
    fn start(&self) -> f64 {
        self.start_sample as f64 / f64::from(self.sample_rate)
    }

    /// End time in seconds.
    #[getter]
    fn end(&self) -> f64 {
        self.end_sample as f64 / f64::from(self.sample_rate)
    }

    /// Duration in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        self.end() - self.start()
    }

    fn __repr__(&self) -> String {
        format!("DTMFEvent(digit={:?}, start={:.3}, end={:.3})", self.digit.to_string(), self.start(), self.end())
    }
}

/// Streaming DTMF detector for one channel at `sample_rate` Hz.
#[pyclass(name = "DTMFDetector", module = "rtpcore.dtmf")]
struct DTMFDetector {
    inner: CoreDetector,
    events: Vec<CoreEvent>,
}

impl DTMFDetector {
    fn take_events(&mut self) -> Vec<DTMFEvent> {
        let rate = self.inner.sample_rate();
        self.events
            .drain(..)
            .map(|e| DTMFEvent { digit: e.digit, start_sample: e.start, end_sample: e.end, sample_rate: rate })
            .collect()
    }
}

#[pymethods]
impl DTMFDetector {
    #[new]
    fn new(sample_rate: i64) -> PyResult<Self> {
        let inner = CoreDetector::new(rate_arg(sample_rate)?).map_err(|e| PyValueError::new_err(format!("sample_rate: {e}")))?;
        Ok(DTMFDetector { inner, events: Vec::new() })
    }

    /// The sample rate in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    /// The digit in progress and its start time in seconds, or None.
    #[getter]
    fn current(&self) -> Option<(char, f64)> {
        let rate = f64::from(self.inner.sample_rate());
        self.inner.current().map(|(digit, start)| (digit, start as f64 / rate))
    }

    /// Feeds int16 samples; returns the digits that ended in them.
    fn process(&mut self, py: Python<'_>, pcm: &Bound<'_, PyAny>) -> PyResult<Vec<DTMFEvent>> {
        let (inner, events) = (&mut self.inner, &mut self.events);
        with_pcm16(pcm, "pcm", |samples| {
            crate::pcm::run_detached_if_large(py, samples.len(), || inner.process(samples, events))
        })?;
        Ok(self.take_events())
    }

    /// Ends the stream: returns a digit still in progress, and resets.
    fn flush(&mut self) -> Vec<DTMFEvent> {
        self.inner.flush(&mut self.events);
        self.take_events()
    }
}

/// The int16 samples for `digits` (0-9, *, #, A-D; spaces and commas
/// ignored): each tone `tone_ms` long followed by `pause_ms` of silence.
#[pyfunction]
#[pyo3(signature = (digits, sample_rate=8000, *, tone_ms=100.0, pause_ms=100.0, low_dbfs=-10.0, high_dbfs=-8.0))]
fn dtmf_generate<'py>(
    py: Python<'py>,
    digits: &str,
    sample_rate: i64,
    tone_ms: f64,
    pause_ms: f64,
    low_dbfs: f64,
    high_dbfs: f64,
) -> PyResult<Bound<'py, PyArray1<i16>>> {
    let rate = rate_arg(sample_rate)?;
    for (name, value) in [("tone_ms", tone_ms), ("pause_ms", pause_ms)] {
        if !(0.0..=60_000.0).contains(&value) {
            return Err(PyValueError::new_err(format!("{name}: {value} is not a duration in 0..60000 ms")));
        }
    }
    for (name, value) in [("low_dbfs", low_dbfs), ("high_dbfs", high_dbfs)] {
        if !(-100.0..=0.0).contains(&value) {
            return Err(PyValueError::new_err(format!("{name}: {value} is not a level in -100..0 dBFS")));
        }
    }
    let params = ToneParams { tone_ms, pause_ms, low_dbfs, high_dbfs };
    let samples = dtmf::generate(digits, rate, &params).map_err(|e| PyValueError::new_err(format!("digits: {e}")))?;
    Ok(new_pcm16_array(py, samples.len(), |out| out.copy_from_slice(&samples)))
}

/// Adds the DTMF classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DTMFEvent>()?;
    m.add_class::<DTMFDetector>()?;
    m.add_function(wrap_pyfunction!(dtmf_generate, m)?)?;
    Ok(())
}
