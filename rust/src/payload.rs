//! `rtpcore.payload`: RFC 4733 telephone events and RFC 3389 comfort noise
//! payloads, over `rtpcore_proto::payload`.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use rtpcore_proto::payload::{ComfortNoise, TelephoneEvent};

use crate::buffer::with_bytes;
use crate::errors::IntoPyResult;
use crate::rtp::{build_error, int_arg};

/// An RFC 4733 telephone event: `event` (0..=15 are DTMF `0-9 * # A-D`; a
/// digit string is accepted too), the `end` bit, `volume` in -dBm0 (0..=63)
/// and `duration` in timestamp units.
#[pyclass(module = "rtpcore.payload", name = "TelephoneEvent", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
struct PyTelephoneEvent(TelephoneEvent);

fn volume_arg(v: &Bound<'_, PyAny>) -> PyResult<u8> {
    int_arg("volume", v, 0x3F)
}

fn duration_arg(v: &Bound<'_, PyAny>) -> PyResult<u16> {
    int_arg("duration", v, 0xFFFF)
}

#[pymethods]
impl PyTelephoneEvent {
    #[new]
    #[pyo3(signature = (event, *, end = false, volume = 10, duration = 0))]
    fn new(
        event: &Bound<'_, PyAny>,
        end: bool,
        #[pyo3(from_py_with = volume_arg)] volume: u8,
        #[pyo3(from_py_with = duration_arg)] duration: u16,
    ) -> PyResult<Self> {
        let event = match event.extract::<String>() {
            Ok(digit) => {
                let mut chars = digit.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => TelephoneEvent::event_of_digit(c),
                    _ => None,
                }
                .ok_or_else(|| PyValueError::new_err(format!("event: {digit:?} is not a DTMF digit (0-9 * # A-D)")))?
            }
            Err(_) => int_arg("event", event, 0xFF)?,
        };
        let e = TelephoneEvent {
            event,
            end,
            volume,
            duration,
        };
        Ok(PyTelephoneEvent(e))
    }

    #[staticmethod]
    fn parse(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyTelephoneEvent(with_bytes(data, "data", TelephoneEvent::parse)?.or_raise(py)?))
    }

    #[getter]
    fn event(&self) -> u8 {
        self.0.event
    }

    #[getter]
    fn end(&self) -> bool {
        self.0.end
    }

    #[getter]
    fn volume(&self) -> u8 {
        self.0.volume
    }

    #[getter]
    fn duration(&self) -> u16 {
        self.0.duration
    }

    /// The DTMF digit (`"0"`..`"9"`, `"*"`, `"#"`, `"A"`..`"D"`), or None.
    #[getter]
    fn digit(&self) -> Option<char> {
        self.0.digit()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(TelephoneEvent::LEN);
        self.0.write(&mut out).map_err(build_error)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Pickles as its wire bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        Ok((slf.get_type().getattr("parse")?, (slf.get().__bytes__(slf.py())?,)))
    }

    fn __repr__(&self) -> String {
        let e = &self.0;
        let end = if e.end { "True" } else { "False" };
        format!("TelephoneEvent({}, end={end}, volume={}, duration={})", e.event, e.volume, e.duration)
    }
}

/// An RFC 3389 comfort noise payload: the noise `level` in -dBov (0..=127)
/// and the quantized reflection `coefficients` of its spectrum.
#[pyclass(module = "rtpcore.payload", name = "ComfortNoise", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
struct PyComfortNoise(ComfortNoise);

#[pymethods]
impl PyComfortNoise {
    #[new]
    #[pyo3(signature = (level, coefficients = None))]
    fn new(level: &Bound<'_, PyAny>, coefficients: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let coefficients = match coefficients {
            None => Vec::new(),
            Some(c) => c.try_iter()?.map(|k| int_arg("coefficients", &k?, 0xFF)).collect::<PyResult<_>>()?,
        };
        Ok(PyComfortNoise(ComfortNoise { level: int_arg("level", level, 0x7F)?, coefficients }))
    }

    #[staticmethod]
    fn parse(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyComfortNoise(with_bytes(data, "data", ComfortNoise::parse)?.or_raise(py)?))
    }

    #[getter]
    fn level(&self) -> u8 {
        self.0.level
    }

    #[getter]
    fn coefficients<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.0.coefficients)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(1 + self.0.coefficients.len());
        self.0.write(&mut out).map_err(build_error)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Pickles as its wire bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        Ok((slf.get_type().getattr("parse")?, (slf.get().__bytes__(slf.py())?,)))
    }

    fn __repr__(&self) -> String {
        let coefficients: Vec<String> = self.0.coefficients.iter().map(u8::to_string).collect();
        let trailing_comma = if coefficients.len() == 1 { "," } else { "" };
        format!("ComfortNoise({}, coefficients=({}{trailing_comma}))", self.0.level, coefficients.join(", "))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTelephoneEvent>()?;
    m.add_class::<PyComfortNoise>()?;
    Ok(())
}
