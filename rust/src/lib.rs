//! `rtpcore._core`: the Python binding of the protocol core. This crate is the
//! only place that knows about Python; each area registers its classes and
//! functions from its own file.
use pyo3::prelude::*;

mod analyze;
mod buffer;
mod cn;
mod dtmf;
mod engine;
mod errors;
mod fastcall;
mod g711;
mod g722;
mod jitter;
mod payload;
mod pcm;
mod resample;
mod rtcp;
mod rtp;
mod simd;
mod srtp;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    srtp::register(m)?;
    rtp::register(m)?;
    rtcp::register(m)?;
    payload::register(m)?;
    analyze::register(m)?;
    g711::register(m)?;
    jitter::register(m)?;
    g722::register(m)?;
    resample::register(m)?;
    dtmf::register(m)?;
    cn::register(m)?;
    engine::register(m)?;
    Ok(())
}
