//! `rtpcore._core`: the Python binding of the protocol core. This crate is the
//! only place that knows about Python; each area registers its classes and
//! functions from its own file.
use pyo3::prelude::*;

mod buffer;
mod errors;
mod g711;
mod jitter;
mod pcm;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    g711::register(m)?;
    jitter::register(m)?;
    Ok(())
}
