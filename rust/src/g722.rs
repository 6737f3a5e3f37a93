//! `rtpcore.g722`: streaming G.722 encoder and decoder objects.
use crate::pcm::{decode_call, encode_call, zeroed};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use crate::simd::avx2_dispatch;
use rtpcore_proto::codec::g722::{G722Decoder as CoreDecoder, G722Encoder as CoreEncoder, G722Mode};

// The ADPCM chain is serial, but the QMF dot products and the quantiser's
// level search are 32-bit multiplies that SSE2 lacks (pmulld is SSE4.1).
avx2_dispatch!(fn encode_kernel(encoder: &mut CoreEncoder, pcm: &[i16], codes: &mut [u8]) -> usize = CoreEncoder::encode_into;);
avx2_dispatch!(fn decode_kernel(decoder: &mut CoreDecoder, codes: &[u8], pcm: &mut [i16]) -> usize = CoreDecoder::decode_into;);

/// G.722 encoder at 64 kbit/s: 16 kHz int16 samples in (an even number per
/// call), one octet per pair of samples out.
#[pyclass(name = "G722Encoder", module = "rtpcore.g722")]
struct G722Encoder {
    inner: CoreEncoder,
}

#[pymethods]
impl G722Encoder {
    #[new]
    fn new() -> Self {
        G722Encoder { inner: CoreEncoder::new() }
    }

    /// Encodes `pcm` (16 kHz, even sample count) and returns the octets, or
    /// writes them into `out` and returns `out`.
    #[pyo3(signature = (pcm, out=None))]
    fn encode<'py>(&mut self, py: Python<'py>, pcm: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let encoder = &mut self.inner;
        let octets = |samples: usize| {
            if !samples.is_multiple_of(2) {
                return Err(PyValueError::new_err(format!(
                    "pcm: {samples} samples is odd; G.722 codes pairs of samples (pass even-length frames)"
                )));
            }
            Ok(samples / 2)
        };
        encode_call(py, pcm, out, octets, |samples, codes| {
            encode_kernel()(encoder, samples, codes);
        })
    }

    /// Returns to the initial state.
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// G.722 decoder: octets in, two 16 kHz int16 samples per octet out.
/// `bitrate` is 64000 (mode 1), 56000 or 48000 (modes 2 and 3, which ignore
/// the one or two least significant low-band bits).
#[pyclass(name = "G722Decoder", module = "rtpcore.g722")]
struct G722Decoder {
    inner: CoreDecoder,
}

#[pymethods]
impl G722Decoder {
    #[new]
    #[pyo3(signature = (bitrate=64000))]
    fn new(bitrate: i64) -> PyResult<Self> {
        let mode = u32::try_from(bitrate).ok().and_then(G722Mode::from_bitrate).ok_or_else(|| {
            PyValueError::new_err(format!("bitrate: {bitrate} is not a G.722 mode; use 64000, 56000 or 48000"))
        })?;
        Ok(G722Decoder { inner: CoreDecoder::new(mode) })
    }

    /// The bit rate (mode) this decoder was made for.
    #[getter]
    fn bitrate(&self) -> u32 {
        self.inner.mode().bitrate()
    }

    /// Decodes `data` (any bytes-like object) and returns a numpy int16
    /// array of `2 * len(data)` samples, or writes them into `out`.
    #[pyo3(signature = (data, out=None))]
    fn decode<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let decoder = &mut self.inner;
        decode_call(py, data, out, |octets| octets * 2, |codes, samples| {
            decode_kernel()(decoder, codes, zeroed(samples));
        })
    }

    /// Returns to the initial state (same bit rate).
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// Adds the G.722 classes to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<G722Encoder>()?;
    m.add_class::<G722Decoder>()?;
    Ok(())
}
