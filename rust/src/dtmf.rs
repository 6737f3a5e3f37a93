//! `rtpcore.dtmf`: DTMF tone generation and the streaming detector.
use crate::pcm::{new_pcm16_array, with_pcm16};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rtpcore_proto::dtmf::{self, DtmfDetector as CoreDetector, DtmfEvent as CoreEvent, ToneGenerator, ToneParams};

fn rate_arg(sample_rate: i64) -> PyResult<u32> {
    u32::try_from(sample_rate)
        .ok()
        .filter(|r| (8_000..=192_000).contains(r))
        .ok_or_else(|| PyValueError::new_err(format!("sample_rate: {sample_rate} Hz is not supported (8000 to 192000)")))
}

/// The most samples `generate` returns (about 35 minutes at 48 kHz).
const MAX_GENERATED_SAMPLES: usize = 100_000_000;

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

fn level_args(low_dbfs: f64, high_dbfs: f64) -> PyResult<()> {
    for (name, value) in [("low_dbfs", low_dbfs), ("high_dbfs", high_dbfs)] {
        if !(-100.0..=0.0).contains(&value) {
            return Err(PyValueError::new_err(format!("{name}: {value} is not a level in -100..0 dBFS")));
        }
    }
    Ok(())
}

fn count_arg(samples: i64) -> PyResult<usize> {
    usize::try_from(samples)
        .ok()
        .filter(|&n| n <= MAX_GENERATED_SAMPLES)
        .ok_or_else(|| PyValueError::new_err(format!("samples: {samples} is not a count in 0..{MAX_GENERATED_SAMPLES}")))
}

/// Streaming tone source for playing RFC 4733 events in-band packet by
/// packet: the same digit in consecutive calls continues without a click.
#[pyclass(name = "DTMFGenerator", module = "rtpcore.dtmf")]
struct DTMFGenerator {
    inner: ToneGenerator,
}

#[pymethods]
impl DTMFGenerator {
    #[new]
    #[pyo3(signature = (sample_rate=8000, *, low_dbfs=-10.0, high_dbfs=-8.0))]
    fn new(sample_rate: i64, low_dbfs: f64, high_dbfs: f64) -> PyResult<Self> {
        level_args(low_dbfs, high_dbfs)?;
        let params = ToneParams { low_dbfs, high_dbfs, ..ToneParams::default() };
        let inner = ToneGenerator::new(rate_arg(sample_rate)?, &params).map_err(|e| PyValueError::new_err(format!("sample_rate: {e}")))?;
        Ok(DTMFGenerator { inner })
    }

    /// The next `samples` samples of `digit`'s tone.
    fn tone<'py>(&mut self, py: Python<'py>, digit: char, samples: i64) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let count = count_arg(samples)?;
        let mut result = Ok(());
        let array = new_pcm16_array(py, count, |out| result = self.inner.tone_into(digit, out));
        result.map_err(|e| PyValueError::new_err(format!("digit: {e}")))?;
        Ok(array)
    }

    /// `samples` samples of silence; the next tone starts afresh.
    fn silence<'py>(&mut self, py: Python<'py>, samples: i64) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let count = count_arg(samples)?;
        Ok(new_pcm16_array(py, count, |out| self.inner.silence_into(out)))
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
    level_args(low_dbfs, high_dbfs)?;
    // Bound the output before allocating it: a long string of long tones
    // must raise, not exhaust memory.
    let digits_count = digits.chars().filter(|c| !matches!(c, ' ' | ',')).count() as f64;
    let total = digits_count * (tone_ms + pause_ms) * f64::from(rate) / 1000.0;
    if total > MAX_GENERATED_SAMPLES as f64 {
        return Err(PyValueError::new_err(format!(
            "digits: {total:.0} samples of tones requested; at most {MAX_GENERATED_SAMPLES}"
        )));
    }
    let params = ToneParams { tone_ms, pause_ms, low_dbfs, high_dbfs };
    let samples = dtmf::generate(digits, rate, &params).map_err(|e| PyValueError::new_err(format!("digits: {e}")))?;
    Ok(new_pcm16_array(py, samples.len(), |out| out.copy_from_slice(&samples)))
}

/// Adds the DTMF classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DTMFEvent>()?;
    m.add_class::<DTMFDetector>()?;
    m.add_class::<DTMFGenerator>()?;
    m.add_function(wrap_pyfunction!(dtmf_generate, m)?)?;
    Ok(())
}
