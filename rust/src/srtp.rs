//! `rtpcore._core.SRTPSession` and the SRTP key-derivation helpers.
//!
//! Single calls hold the GIL (releasing it costs more than protecting a
//! packet); the batch forms copy their inputs into a session-owned arena,
//! run the crypto with the GIL released, and hand back one result per
//! packet.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyType};
use rtpcore_proto::srtp::{self, Profile, Session, SessionConfig, SrtpError};

use crate::buffer::with_bytes;
use crate::errors::parse_error;

/// Longest keystream or key `srtp_aes_cm_keystream` and
/// `srtp_derive_session_key` produce: one SRTP packet's 2^16 AES blocks.
const MAX_KEYSTREAM_LEN: usize = 16 << 16;

/// Largest batch arenas a session keeps between calls, in bytes (a few
/// hundred full-size packets); larger ones are freed after their batch.
const ARENA_KEEP_BYTES: usize = 1 << 20;

/// Raises `rtpcore.errors.<name>(*args)`.
fn srtp_exception<A>(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str, args: A) -> PyErr
where
    A: for<'py> IntoPyObject<'py, Target = pyo3::types::PyTuple> + Send + Sync + 'static,
{
    match cell.import(py, "rtpcore.errors", name) {
        Ok(cls) => PyErr::from_type(cls.clone(), args),
        Err(e) => e,
    }
}

/// The `rtpcore.errors` exception for an SRTP failure.
fn srtp_error(py: Python<'_>, err: &SrtpError) -> PyErr {
    static AUTHENTICATION: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static REPLAY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static SRTP: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match err {
        SrtpError::Parse(e) => parse_error(py, e),
        SrtpError::Authentication { .. } => {
            srtp_exception(py, &AUTHENTICATION, "AuthenticationError", (err.to_string(),))
        }
        SrtpError::Replay { reason, index, .. } => {
            srtp_exception(py, &REPLAY, "ReplayError", (err.to_string(), *index, reason.name()))
        }
        SrtpError::OutputTooSmall { .. } | SrtpError::IndexExhausted { .. } => {
            srtp_exception(py, &SRTP, "SRTPError", (err.to_string(),))
        }
    }
}

/// A non-negative integer argument that fits in a `u32`.
fn u32_arg(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| PyValueError::new_err(format!("{name}: must be 0 to {}, got {value}", u32::MAX)))
}

/// The four packet operations, for the batch forms.
#[derive(Clone, Copy)]
enum Op {
    Protect,
    Unprotect,
    ProtectRtcp,
    UnprotectRtcp,
}

impl Op {
    /// Room the result of the operation needs for a `len`-byte input.
    fn capacity(self, session: &Session, len: usize) -> usize {
        match self {
            Op::Protect => len + session.rtp_overhead(),
            Op::ProtectRtcp => len + session.rtcp_overhead(),
            Op::Unprotect | Op::UnprotectRtcp => len,
        }
    }

    fn apply(self, session: &mut Session, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        match self {
            Op::Protect => session.protect_rtp(packet, out),
            Op::Unprotect => session.unprotect_rtp(packet, out),
            Op::ProtectRtcp => session.protect_rtcp(packet, out),
            Op::UnprotectRtcp => session.unprotect_rtcp(packet, out),
        }
    }
}

/// SRTPSession(profile, master_key, master_salt, *, replay_window=128,
/// key_derivation_rate=0, srtcp_first_index=0, mki=None, allow_repeat_tx=False)
///
/// An SRTP/SRTCP session for one master key (RFC 3711, RFC 6188, RFC 7714).
/// `protect`/`unprotect` and `protect_rtcp`/`unprotect_rtcp` take any
/// bytes-like object and return bytes; refused packets raise `ParseError`,
/// `AuthenticationError` or `ReplayError` and change nothing. The `_batch`
/// forms release the GIL and return one item per packet: bytes, or the
/// exception instance the single call would have raised. See `rtpcore.srtp`.
#[pyclass(name = "SRTPSession", module = "rtpcore._core")]
pub struct PySrtpSession {
    session: Session,
    /// Output buffer of single calls, reused.
    scratch: Vec<u8>,
    /// Batch inputs, copied under the GIL (a bytearray could change while
    /// the GIL is released), and batch outputs; both reused.
    batch_in: Vec<u8>,
    batch_out: Vec<u8>,
}

impl PySrtpSession {
    fn single<'py>(
        &mut self,
        py: Python<'py>,
        packet: &Bound<'py, PyAny>,
        what: &str,
        op: Op,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (session, scratch) = (&mut self.session, &mut self.scratch);
        let result = with_bytes(packet, what, |packet| {
            let needed = op.capacity(session, packet.len());
            if scratch.len() < needed {
                scratch.resize(needed, 0);
            }
            op.apply(session, packet, scratch)
        })?;
        match result {
            Ok(len) => Ok(PyBytes::new(py, &scratch[..len])),
            Err(e) => Err(srtp_error(py, &e)),
        }
    }

    fn batch<'py>(&mut self, py: Python<'py>, packets: &Bound<'py, PyAny>, op: Op) -> PyResult<Bound<'py, PyList>> {
        // (input offset, input length, output offset) per packet.
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        self.batch_in.clear();
        let mut out_len = 0;
        for item in packets.try_iter()? {
            let item = item?;
            with_bytes(&item, "packets item", |packet| {
                spans.push((self.batch_in.len(), packet.len(), out_len));
                self.batch_in.extend_from_slice(packet);
                out_len += op.capacity(&self.session, packet.len());
            })?;
        }
        if self.batch_out.len() < out_len {
            self.batch_out.resize(out_len, 0);
        }
        let (session, inputs, outputs) = (&mut self.session, &self.batch_in, &mut self.batch_out);
        let results: Vec<Result<usize, SrtpError>> = py.detach(|| {
            spans
                .iter()
                .map(|&(at, len, out_at)| {
                    let out = &mut outputs[out_at..out_at + op.capacity(session, len)];
                    op.apply(session, &inputs[at..at + len], out)
                })
                .collect()
        });
        let items = results.iter().zip(&spans).map(|(result, &(_, _, out_at))| match result {
            Ok(len) => PyBytes::new(py, &self.batch_out[out_at..out_at + len]).into_any(),
            Err(e) => srtp_error(py, e).into_value(py).into_bound(py).into_any(),
        });
        let list = PyList::new(py, items);
        // Keep the arenas for the next batch, unless one huge batch grew them.
        if self.batch_out.capacity() > ARENA_KEEP_BYTES {
            self.batch_in = Vec::new();
            self.batch_out = Vec::new();
        }
        list
    }
}

#[pymethods]
impl PySrtpSession {
    #[new]
    // One argument per keyword of the Python constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (profile, master_key, master_salt, *, replay_window = 128, key_derivation_rate = 0, srtcp_first_index = 0, mki = None, allow_repeat_tx = false))]
    fn new(
        profile: &str,
        master_key: &Bound<'_, PyAny>,
        master_salt: &Bound<'_, PyAny>,
        replay_window: i64,
        key_derivation_rate: i64,
        srtcp_first_index: i64,
        mki: Option<&Bound<'_, PyAny>>,
        allow_repeat_tx: bool,
    ) -> PyResult<Self> {
        let profile = Profile::from_name(profile).ok_or_else(|| {
            let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
            PyValueError::new_err(format!(
                "profile: unknown SRTP profile {profile:?}; expected one of {}",
                names.join(", ")
            ))
        })?;
        let config = SessionConfig {
            replay_window: u32_arg("replay_window", replay_window)?,
            key_derivation_rate: u32_arg("key_derivation_rate", key_derivation_rate)?,
            srtcp_first_index: u32_arg("srtcp_first_index", srtcp_first_index)?,
            mki: match mki {
                Some(mki) => with_bytes(mki, "mki", <[u8]>::to_vec)?,
                None => Vec::new(),
            },
            allow_repeat_tx,
        };
        if mki.is_some() && config.mki.is_empty() {
            return Err(PyValueError::new_err("mki: must not be empty (pass None for no MKI)"));
        }
        let key = zeroize::Zeroizing::new(with_bytes(master_key, "master_key", <[u8]>::to_vec)?);
        let salt = zeroize::Zeroizing::new(with_bytes(master_salt, "master_salt", <[u8]>::to_vec)?);
        let session = Session::new(profile, &key, &salt, config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PySrtpSession { session, scratch: Vec::new(), batch_in: Vec::new(), batch_out: Vec::new() })
    }

    /// The SDES name of the protection profile.
    #[getter]
    fn profile(&self) -> &'static str {
        self.session.profile().name()
    }

    /// Replay window, in packets.
    #[getter]
    fn replay_window(&self) -> u32 {
        self.session.config().replay_window
    }

    /// Key derivation rate (0: keys derived once).
    #[getter]
    fn key_derivation_rate(&self) -> u32 {
        self.session.config().key_derivation_rate
    }

    /// SRTCP index of the first SRTCP packet sent per SSRC.
    #[getter]
    fn srtcp_first_index(&self) -> u32 {
        self.session.config().srtcp_first_index
    }

    /// The MKI sent and expected on every packet, or None.
    #[getter]
    fn mki<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mki = &self.session.config().mki;
        (!mki.is_empty()).then(|| PyBytes::new(py, mki))
    }

    /// Whether `protect` may protect a sequence number again.
    #[getter]
    fn allow_repeat_tx(&self) -> bool {
        self.session.config().allow_repeat_tx
    }

    /// Bytes `protect` adds to an RTP packet.
    #[getter]
    fn rtp_overhead(&self) -> usize {
        self.session.rtp_overhead()
    }

    /// Bytes `protect_rtcp` adds to an RTCP packet.
    #[getter]
    fn rtcp_overhead(&self) -> usize {
        self.session.rtcp_overhead()
    }

    /// Protects one RTP packet.
    fn protect<'py>(&mut self, py: Python<'py>, rtp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        self.single(py, rtp, "rtp", Op::Protect)
    }

    /// Authenticates and decrypts one SRTP packet.
    fn unprotect<'py>(&mut self, py: Python<'py>, srtp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        self.single(py, srtp, "srtp", Op::Unprotect)
    }

    /// Protects one (compound) RTCP packet.
    fn protect_rtcp<'py>(&mut self, py: Python<'py>, rtcp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        self.single(py, rtcp, "rtcp", Op::ProtectRtcp)
    }

    /// Authenticates and decrypts one SRTCP packet.
    fn unprotect_rtcp<'py>(&mut self, py: Python<'py>, srtcp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        self.single(py, srtcp, "srtcp", Op::UnprotectRtcp)
    }

    /// `protect` over an iterable of RTP packets, with the GIL released.
    fn protect_batch<'py>(&mut self, py: Python<'py>, packets: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        self.batch(py, packets, Op::Protect)
    }

    /// `unprotect` over an iterable of SRTP packets, with the GIL released.
    fn unprotect_batch<'py>(&mut self, py: Python<'py>, packets: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        self.batch(py, packets, Op::Unprotect)
    }

    /// `protect_rtcp` over an iterable of RTCP packets, with the GIL released.
    fn protect_rtcp_batch<'py>(
        &mut self,
        py: Python<'py>,
        packets: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.batch(py, packets, Op::ProtectRtcp)
    }

    /// `unprotect_rtcp` over an iterable of SRTCP packets, with the GIL released.
    fn unprotect_rtcp_batch<'py>(
        &mut self,
        py: Python<'py>,
        packets: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.batch(py, packets, Op::UnprotectRtcp)
    }

    /// The roll-over counter of an SSRC.
    fn roc(&self, ssrc: i64) -> PyResult<u32> {
        Ok(self.session.roc(u32_arg("ssrc", ssrc)?))
    }

    /// Sets the roll-over counter of an SSRC in both directions.
    fn set_roc(&mut self, ssrc: i64, roc: i64) -> PyResult<()> {
        self.session.set_roc(u32_arg("ssrc", ssrc)?, u32_arg("roc", roc)?);
        Ok(())
    }

    fn __repr__(&self) -> String {
        let config = self.session.config();
        format!(
            "SRTPSession(profile={:?}, replay_window={}, key_derivation_rate={}, srtcp_first_index={}, mki={})",
            self.session.profile().name(),
            config.replay_window,
            config.key_derivation_rate,
            config.srtcp_first_index,
            if config.mki.is_empty() { "None".to_string() } else { format!("<{} bytes>", config.mki.len()) },
        )
    }
}

/// Runs `fill(key, salt, out)` into a new `length`-byte `bytes` object: the
/// shared part of the two key-material functions below. `key_arg` and
/// `salt_arg` name the arguments in errors.
fn key_material<'py>(
    py: Python<'py>,
    (key_arg, key): (&str, &Bound<'py, PyAny>),
    (salt_arg, salt): (&str, &Bound<'py, PyAny>),
    length: i64,
    index: u64,
    fill: impl FnOnce(&[u8], &[u8], &mut [u8]) -> Option<()>,
) -> PyResult<Bound<'py, PyBytes>> {
    let length = usize::try_from(length)
        .ok()
        .filter(|&n| n <= MAX_KEYSTREAM_LEN)
        .ok_or_else(|| PyValueError::new_err(format!("length: must be 0 to {MAX_KEYSTREAM_LEN}, got {length}")))?;
    if index > srtp::MAX_RTP_INDEX {
        return Err(PyValueError::new_err(format!("index: must be below 2^48, got {index}")));
    }
    let key = zeroize::Zeroizing::new(with_bytes(key, key_arg, <[u8]>::to_vec)?);
    with_bytes(salt, salt_arg, |salt| {
        PyBytes::new_with(py, length, |out| {
            fill(&key, salt, out).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{key_arg} must be 16 or 32 bytes and {salt_arg} at most 14, got {} and {}",
                    key.len(),
                    salt.len()
                ))
            })
        })
    })?
}

/// RFC 3711 section 4.3 session key material for `label`.
#[pyfunction]
#[pyo3(signature = (master_key, master_salt, label, length, *, index = 0, key_derivation_rate = 0))]
fn srtp_derive_session_key<'py>(
    py: Python<'py>,
    master_key: &Bound<'py, PyAny>,
    master_salt: &Bound<'py, PyAny>,
    label: u8,
    length: i64,
    index: u64,
    key_derivation_rate: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let kdr = u32_arg("key_derivation_rate", key_derivation_rate)?;
    key_material(py, ("master_key", master_key), ("master_salt", master_salt), length, index, |key, salt, out| {
        srtp::derive_session_key(key, salt, label, index, kdr, out)
    })
}

/// The SRTP AES-CM keystream for a packet (RFC 3711 section 4.1.1).
#[pyfunction]
#[pyo3(signature = (session_key, session_salt, length, *, ssrc = 0, index = 0))]
fn srtp_aes_cm_keystream<'py>(
    py: Python<'py>,
    session_key: &Bound<'py, PyAny>,
    session_salt: &Bound<'py, PyAny>,
    length: i64,
    ssrc: u32,
    index: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    key_material(py, ("session_key", session_key), ("session_salt", session_salt), length, index, |key, salt, out| {
        srtp::aes_cm_keystream(key, salt, ssrc, index, out)
    })
}

/// Adds the SRTP classes and functions to `rtpcore._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySrtpSession>()?;
    m.add_function(wrap_pyfunction!(srtp_derive_session_key, m)?)?;
    m.add_function(wrap_pyfunction!(srtp_aes_cm_keystream, m)?)?;
    Ok(())
}
