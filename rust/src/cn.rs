//! `rtpcore.cn`: RFC 3389 comfort noise estimation and generation with the
//! payload's plain numbers (level 0..127, reflection octets 0..254).
use crate::pcm::{new_pcm16_array, with_pcm16};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rtpcore_proto::codec::cn::{self, ComfortNoiseGenerator as CoreGenerator, MAX_LEVEL, MAX_ORDER};

fn level_arg(level: i64) -> PyResult<u8> {
    u8::try_from(level)
        .ok()
        .filter(|&l| l <= MAX_LEVEL)
        .ok_or_else(|| PyValueError::new_err(format!("level: {level} is outside 0..127 (-dBov)")))
}

fn reflection_arg(reflection: Vec<i64>) -> PyResult<Vec<u8>> {
    if reflection.len() > MAX_ORDER {
        return Err(PyValueError::new_err(format!(
            "reflection: {} coefficients, at most {MAX_ORDER}",
            reflection.len()
        )));
    }
    reflection
        .into_iter()
        .map(|q| u8::try_from(q).map_err(|_| PyValueError::new_err(format!("reflection: {q} is not an octet (0..255)"))))
        .collect()
}

/// Synthesises comfort noise from a CN level and reflection coefficients.
#[pyclass(name = "ComfortNoiseGenerator", module = "rtpcore.cn")]
struct ComfortNoiseGenerator {
    inner: CoreGenerator,
}

#[pymethods]
impl ComfortNoiseGenerator {
    #[new]
    #[pyo3(signature = (level, reflection=Vec::new(), *, seed=0))]
    fn new(level: i64, reflection: Vec<i64>, seed: u64) -> PyResult<Self> {
        Ok(ComfortNoiseGenerator { inner: CoreGenerator::new(level_arg(level)?, &reflection_arg(reflection)?, seed) })
    }

    /// Takes new parameters (from a new CN payload) without a click.
    #[pyo3(signature = (level, reflection=Vec::new()))]
    fn update(&mut self, level: i64, reflection: Vec<i64>) -> PyResult<()> {
        self.inner.update(level_arg(level)?, &reflection_arg(reflection)?);
        Ok(())
    }

    /// The next `samples` samples of noise as a numpy int16 array.
    fn generate<'py>(&mut self, py: Python<'py>, samples: i64) -> PyResult<Bound<'py, PyArray1<i16>>> {
        let count = usize::try_from(samples)
            .ok()
            .filter(|&n| n <= 100_000_000)
            .ok_or_else(|| PyValueError::new_err(format!("samples: {samples} is not a count in 0..100000000")))?;
        Ok(new_pcm16_array(py, count, |out| self.inner.generate_into(out)))
    }
}

/// Measures background noise: returns `(level, reflection)` for a CN payload.
#[pyfunction]
#[pyo3(signature = (pcm, order=10))]
fn estimate_comfort_noise(pcm: &Bound<'_, PyAny>, order: i64) -> PyResult<(u8, Vec<u16>)> {
    let order = usize::try_from(order)
        .ok()
        .filter(|&o| o <= MAX_ORDER)
        .ok_or_else(|| PyValueError::new_err(format!("order: {order} is outside 0..{MAX_ORDER}")))?;
    let description = with_pcm16(pcm, "pcm", |samples| cn::estimate(samples, order))?;
    // A list of ints, as the payload numbers are documented (pyo3 would
    // turn a Vec<u8> into bytes).
    Ok((description.level, description.reflection.into_iter().map(u16::from).collect()))
}

/// Adds the comfort noise class and function to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ComfortNoiseGenerator>()?;
    m.add_function(wrap_pyfunction!(estimate_comfort_noise, m)?)?;
    Ok(())
}
