//! `rtpcore.rtp`: RTP packets, sequence/timestamp unwrapping and the
//! RTP/RTCP demultiplexer, over `rtpcore_proto::{rtp, seq, demux}`.
//!
//! An `RTPPacket` is its wire bytes (one `bytes` object, shared with the
//! caller when it parsed a `bytes`) plus the header fields decoded once and
//! the offsets of the extension block and payload. Parsing is then one pass
//! and one small allocation, `bytes(pkt)` is free, and the variable-length
//! parts (`payload`, `csrc`, `extensions`) are sliced out only when asked for.
use std::ffi::{c_int, c_void};
use std::ops::RangeInclusive;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use rtpcore_proto::demux;
use rtpcore_proto::rtp::{
    self, smallest_extension_form, write_extension_elements, ExtensionBlock, ExtensionElement, ExtensionForm, RtpPacket,
    RtpPacketBuilder,
};
use rtpcore_proto::seq;
use rtpcore_proto::BuildError;

use crate::buffer::with_bytes;
use crate::errors::{parse_error, IntoPyResult};

/// `ValueError` for a value the wire format cannot carry, naming the field.
pub fn build_error(err: BuildError) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// A Python int in `range`, converted to the field's type; anything else
/// raises `ValueError` (out of range) or `TypeError` (not an int) naming the
/// field.
pub fn int_in<T: TryFrom<i128>>(name: &str, value: &Bound<'_, PyAny>, range: RangeInclusive<i128>) -> PyResult<T> {
    let out_of_range = || PyValueError::new_err(format!("{name}: {value} is out of range {}..={}", range.start(), range.end()));
    // i64 first: it is the fast conversion (i128 is slow under the stable
    // ABI); only a value beyond it needs a second look, as a u64.
    let v = match value.extract::<i64>() {
        Ok(v) => Some(i128::from(v)),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => value.extract::<u64>().ok().map(i128::from),
        Err(_) => {
            let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            return Err(PyTypeError::new_err(format!("{name}: expected an int, got {type_name}")));
        }
    };
    match v {
        Some(v) if range.contains(&v) => T::try_from(v).map_err(|_| out_of_range()),
        _ => Err(out_of_range()),
    }
}

/// [`int_in`] for the unsigned fields of the wire formats: `0..=max`.
pub fn int_arg<T: TryFrom<i128>>(name: &str, value: &Bound<'_, PyAny>, max: u64) -> PyResult<T> {
    int_in(name, value, 0..=i128::from(max))
}

// Argument converters for the constructor (`from_py_with`), each naming its
// field in errors.
fn payload_type_arg(v: &Bound<'_, PyAny>) -> PyResult<u8> {
    int_arg("payload_type", v, 0x7F)
}
fn sequence_number_arg(v: &Bound<'_, PyAny>) -> PyResult<u16> {
    int_arg("sequence_number", v, 0xFFFF)
}
fn timestamp_arg(v: &Bound<'_, PyAny>) -> PyResult<u32> {
    int_arg("timestamp", v, 0xFFFF_FFFF)
}
fn ssrc_arg(v: &Bound<'_, PyAny>) -> PyResult<u32> {
    int_arg("ssrc", v, 0xFFFF_FFFF)
}
fn padding_arg(v: &Bound<'_, PyAny>) -> PyResult<u8> {
    int_arg("padding", v, 0xFF)
}
fn extension_profile_arg(v: &Bound<'_, PyAny>) -> PyResult<Option<u16>> {
    if v.is_none() {
        return Ok(None);
    }
    int_arg("extension_profile", v, 0xFFFF).map(Some)
}

/// An immutable RTP packet (RFC 3550) with RFC 8285 header extensions.
///
/// `RTPPacket.parse(buf)` reads any buffer; `RTPPacket(**fields)` builds one;
/// `bytes(pkt)` is its wire form, also exported through the buffer protocol.
/// `padding` counts the padding bytes (count byte included), `extensions`
/// maps RFC 8285 local ids to values, `extension_profile` and
/// `extension_data` give the extension block raw. Packets are equal when
/// their wire bytes are; `pkt.replace(**changes)` makes a changed copy.
#[pyclass(module = "rtpcore.rtp", name = "RTPPacket", frozen, freelist = 1024)]
pub struct PyRtpPacket {
    wire: Py<PyBytes>,
    #[pyo3(get)]
    marker: bool,
    #[pyo3(get)]
    payload_type: u8,
    #[pyo3(get)]
    sequence_number: u16,
    #[pyo3(get)]
    timestamp: u32,
    #[pyo3(get)]
    ssrc: u32,
    /// Padding bytes at the end, count byte included (0: P bit clear).
    #[pyo3(get)]
    padding: u8,
    csrc_count: u8,
    /// The extension block's profile field, when the X bit is set.
    #[pyo3(get)]
    extension_profile: Option<u16>,
    /// Where the payload starts in `wire` (also where the extension data ends).
    payload_start: usize,
    /// Where the payload ends in `wire` (where padding starts).
    payload_end: usize,
}

impl PyRtpPacket {
    /// Decodes `bytes`, which the packet keeps as its wire form.
    fn from_wire(py: Python<'_>, wire: Bound<'_, PyBytes>) -> PyResult<Self> {
        let buf = wire.as_bytes();
        let p = RtpPacket::parse(buf).or_raise(py)?;
        let payload_start = p.header.len;
        let payload_end = payload_start + p.payload.len();
        Ok(PyRtpPacket {
            marker: p.header.marker,
            payload_type: p.header.payload_type,
            sequence_number: p.header.sequence_number,
            timestamp: p.header.timestamp,
            ssrc: p.header.ssrc,
            padding: p.padding_len,
            csrc_count: (p.header.csrc_bytes.len() / 4) as u8,
            extension_profile: p.header.extension.map(|e| e.profile),
            payload_start,
            payload_end,
            wire: wire.unbind(),
        })
    }

    /// Parses any buffer; a `bytes` object is kept as it is, anything else
    /// (mutable, or a view) is copied once.
    fn parse_any(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let wire = match data.cast::<PyBytes>() {
            Ok(bytes) => bytes.clone(),
            Err(_) => with_bytes(data, "data", |b| PyBytes::new(py, b))?,
        };
        Self::from_wire(py, wire)
    }

    /// The CSRC list, read again from the wire bytes.
    fn csrcs<'a>(&self, wire: &'a [u8]) -> impl ExactSizeIterator<Item = u32> + 'a {
        let list = &wire[rtp::FIXED_HEADER_LEN..rtp::FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count)];
        list.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The extension block, read again from the wire bytes.
    fn extension_block<'a>(&self, wire: &'a [u8]) -> Option<ExtensionBlock<'a>> {
        let profile = self.extension_profile?;
        let data_offset = rtp::FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count) + 4;
        Some(ExtensionBlock { profile, data: &wire[data_offset..self.payload_start], data_offset })
    }

    fn fields(&self, py: Python<'_>) -> Fields {
        let wire = self.wire.as_bytes(py);
        let (extensions, extension_data) = match self.extension_block(wire) {
            Some(block) if matches!(block.form(), ExtensionForm::Other(_)) => (Vec::new(), Some(block.data.to_vec())),
            Some(block) => (
                // Validated when the packet was parsed.
                block.elements().map_while(Result::ok).map(|e| (e.id, e.data.to_vec())).collect(),
                None,
            ),
            None => (Vec::new(), None),
        };
        Fields {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence_number,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrc: self.csrcs(wire).collect(),
            extensions,
            extension_profile: self.extension_profile,
            extension_data,
            payload: wire[self.payload_start..self.payload_end].to_vec(),
            padding: self.padding,
        }
    }
}

/// The values an `RTPPacket` is built from, checked and owned.
struct Fields {
    marker: bool,
    payload_type: u8,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
    csrc: Vec<u32>,
    extensions: Vec<(u8, Vec<u8>)>,
    extension_profile: Option<u16>,
    extension_data: Option<Vec<u8>>,
    payload: Vec<u8>,
    padding: u8,
}

impl Fields {
    /// Sets the field called `name` from a Python value.
    fn set(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match name {
            "marker" => self.marker = value.extract()?,
            "payload_type" => self.payload_type = payload_type_arg(value)?,
            "sequence_number" => self.sequence_number = sequence_number_arg(value)?,
            "timestamp" => self.timestamp = timestamp_arg(value)?,
            "ssrc" => self.ssrc = ssrc_arg(value)?,
            "padding" => self.padding = padding_arg(value)?,
            "csrc" => self.csrc = csrc_list(value)?,
            "extensions" => self.extensions = extension_list(value)?,
            "extension_profile" => self.extension_profile = extension_profile_arg(value)?,
            "extension_data" => {
                self.extension_data = if value.is_none() { None } else { Some(with_bytes(value, name, <[u8]>::to_vec)?) }
            }
            "payload" => self.payload = with_bytes(value, name, <[u8]>::to_vec)?,
            _ => return Err(PyValueError::new_err(format!("RTPPacket has no field {name:?}"))),
        }
        Ok(())
    }

    /// Encodes the fields and parses the result back, so that a built packet
    /// is indistinguishable from a received one.
    fn build(&self, py: Python<'_>) -> PyResult<PyRtpPacket> {
        let mut ext_data = Vec::new();
        let extension = match (&self.extension_data, self.extension_profile) {
            (Some(_), _) if !self.extensions.is_empty() => {
                return Err(PyValueError::new_err("give either extensions or extension_data, not both"))
            }
            (Some(data), Some(profile)) => Some((profile, data.as_slice())),
            (Some(_), None) => return Err(PyValueError::new_err("extension_data needs an extension_profile")),
            (None, profile) if profile.is_some() || !self.extensions.is_empty() => {
                let elements: Vec<ExtensionElement<'_>> =
                    self.extensions.iter().map(|(id, data)| ExtensionElement { id: *id, data }).collect();
                let form = profile.map_or_else(|| smallest_extension_form(&elements), ExtensionForm::of);
                write_extension_elements(&elements, form, &mut ext_data).map_err(build_error)?;
                Some((form.profile(), ext_data.as_slice()))
            }
            (None, _) => None,
        };
        let builder = RtpPacketBuilder {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence_number,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrcs: &self.csrc,
            extension,
            payload: &self.payload,
            padding_len: self.padding,
        };
        let mut wire = Vec::with_capacity(builder.wire_len());
        builder.write(&mut wire).map_err(build_error)?;
        PyRtpPacket::from_wire(py, PyBytes::new(py, &wire))
    }
}

fn csrc_list(value: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    value.try_iter()?.map(|item| int_arg("csrc", &item?, 0xFFFF_FFFF)).collect()
}

/// `{id: bytes}` or an iterable of `(id, bytes)` pairs, in order.
fn extension_list(value: &Bound<'_, PyAny>) -> PyResult<Vec<(u8, Vec<u8>)>> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    let pairs = match value.cast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => value.clone(),
    };
    pairs
        .try_iter()?
        .map(|item| {
            let (id, data): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            Ok((int_arg("extensions id", &id, 0xFF)?, with_bytes(&data, "extensions value", <[u8]>::to_vec)?))
        })
        .collect()
}

#[pymethods]
impl PyRtpPacket {
    #[new]
    #[pyo3(signature = (
        *, payload_type = 0, sequence_number = 0, timestamp = 0, ssrc = 0, marker = false,
        csrc = None, extensions = None, extension_profile = None, extension_data = None,
        payload = None, padding = 0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = payload_type_arg)] payload_type: u8,
        #[pyo3(from_py_with = sequence_number_arg)] sequence_number: u16,
        #[pyo3(from_py_with = timestamp_arg)] timestamp: u32,
        #[pyo3(from_py_with = ssrc_arg)] ssrc: u32,
        marker: bool,
        csrc: Option<&Bound<'_, PyAny>>,
        extensions: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = extension_profile_arg)] extension_profile: Option<u16>,
        extension_data: Option<&Bound<'_, PyAny>>,
        payload: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = padding_arg)] padding: u8,
    ) -> PyResult<Self> {
        Fields {
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrc: csrc.map(csrc_list).transpose()?.unwrap_or_default(),
            extensions: extensions.map(extension_list).transpose()?.unwrap_or_default(),
            extension_profile,
            extension_data: extension_data.map(|d| with_bytes(d, "extension_data", <[u8]>::to_vec)).transpose()?,
            payload: payload.map(|p| with_bytes(p, "payload", <[u8]>::to_vec)).transpose()?.unwrap_or_default(),
            padding,
        }
        .build(py)
    }

    #[staticmethod]
    fn parse(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::parse_any(py, data)
    }

    /// A copy with some fields changed, e.g. `pkt.replace(ssrc=1)`.
    #[pyo3(signature = (**changes))]
    fn replace(&self, py: Python<'_>, changes: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut fields = self.fields(py);
        if let Some(changes) = changes {
            // New elements pick their own RFC 8285 form unless one is asked for.
            if changes.contains("extensions")? && !changes.contains("extension_profile")? {
                fields.extension_profile = None;
                fields.extension_data = None;
            }
            for (name, value) in changes.iter() {
                fields.set(&name.extract::<String>()?, &value)?;
            }
        }
        fields.build(py)
    }

    #[getter]
    fn version(&self) -> u8 {
        rtp::RTP_VERSION
    }

    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.wire.as_bytes(py)[self.payload_start..self.payload_end])
    }

    #[getter]
    fn csrc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.csrcs(self.wire.as_bytes(py)))
    }

    /// `{id: value}` of the RFC 8285 elements (empty for other profiles).
    #[getter]
    fn extensions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        if let Some(block) = self.extension_block(self.wire.as_bytes(py)) {
            for element in block.elements().map_while(Result::ok) {
                if !dict.contains(element.id)? {
                    dict.set_item(element.id, PyBytes::new(py, element.data))?;
                }
            }
        }
        Ok(dict)
    }

    /// The raw extension data (without its 4-byte header), or None.
    #[getter]
    fn extension_data<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.extension_block(self.wire.as_bytes(py)).map(|b| PyBytes::new(py, b.data))
    }

    /// The value of the RFC 8285 element with local id `id`, or None.
    fn extension<'py>(&self, py: Python<'py>, id: u8) -> Option<Bound<'py, PyBytes>> {
        let block = self.extension_block(self.wire.as_bytes(py))?;
        block.get(id).map(|data| PyBytes::new(py, data))
    }

    fn __bytes__(&self, py: Python<'_>) -> Py<PyBytes> {
        self.wire.clone_ref(py)
    }

    /// The wire bytes, as `bytes(pkt)` gives them, by a method call: the
    /// name aiortc's `RtpPacket` uses, and cheaper than the `bytes()` type
    /// call on the per-packet path.
    fn serialize(&self, py: Python<'_>) -> Py<PyBytes> {
        self.wire.clone_ref(py)
    }

    /// The buffer protocol, read-only over the wire bytes: a packet can go
    /// straight to `socket.sendto` or `memoryview` without `bytes()`.
    ///
    /// # Safety
    /// Called by CPython with a valid `view` to fill in.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let wire = slf.get().wire.bind(slf.py()).as_bytes();
        let len = isize::try_from(wire.len()).expect("a bytes object's length fits in Py_ssize_t");
        // SAFETY: `view` comes from CPython; the view references `slf`
        // (FillInfo takes a reference), which keeps the immutable `bytes`
        // object, and so `wire`, alive and unchanged until it is released.
        let rc = unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), wire.as_ptr() as *mut c_void, len, 1, flags) };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// Pickles as its wire bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Py<PyBytes>,))> {
        Ok((slf.get_type().getattr("parse")?, (slf.get().wire.clone_ref(slf.py()),)))
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.wire.as_bytes(py).len()
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|o| self.wire.as_bytes(py) == o.get().wire.as_bytes(py))
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.wire.bind(py).hash()
    }

    fn __repr__(&self) -> String {
        let mut extra = String::new();
        if self.csrc_count > 0 {
            extra += &format!(", csrc=<{}>", self.csrc_count);
        }
        if let Some(profile) = self.extension_profile {
            extra += &format!(", extension_profile={profile:#06x}");
        }
        if self.padding > 0 {
            extra += &format!(", padding={}", self.padding);
        }
        format!(
            "RTPPacket(payload_type={}, sequence_number={}, timestamp={}, ssrc={:#010x}, marker={}, payload=<{} bytes>{extra})",
            self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
            if self.marker { "True" } else { "False" },
            self.payload_end - self.payload_start,
        )
    }
}

/// Parses many datagrams in one call. With `strict`, the first bad one raises
/// `ParseError` (its message says which); otherwise it becomes `None`.
#[pyfunction]
#[pyo3(signature = (datagrams, *, strict = true))]
fn parse_rtp_batch<'py>(py: Python<'py>, datagrams: &Bound<'py, PyAny>, strict: bool) -> PyResult<Bound<'py, PyList>> {
    let parse_one = |index: usize, item: &Bound<'py, PyAny>| -> PyResult<Bound<'py, PyAny>> {
        match PyRtpPacket::parse_any(py, item) {
            Ok(p) => Ok(Bound::new(py, p)?.into_any()),
            Err(e) if !strict && e.is_instance_of::<PyValueError>(py) => Ok(py.None().into_bound(py)),
            Err(e) if e.is_instance_of::<PyValueError>(py) => Err(batch_error(py, index, item)),
            Err(e) => Err(e),
        }
    };
    let packets = match datagrams.cast::<PyList>() {
        Ok(list) => list.iter().enumerate().map(|(index, item)| parse_one(index, &item)).collect::<PyResult<Vec<_>>>()?,
        Err(_) => datagrams
            .try_iter()?
            .enumerate()
            .map(|(index, item)| parse_one(index, &item?))
            .collect::<PyResult<Vec<_>>>()?,
    };
    PyList::new(py, packets)
}

/// The `ParseError` of datagram `index` in a batch, its message prefixed
/// with the index.
fn batch_error(py: Python<'_>, index: usize, item: &Bound<'_, PyAny>) -> PyErr {
    match with_bytes(item, "datagram", |b| RtpPacket::parse(b).err()) {
        Ok(Some(mut err)) => {
            err.reason = format!("datagram {index}: {}", err.reason);
            parse_error(py, &err)
        }
        Ok(None) => PyValueError::new_err(format!("datagram {index} is not a valid RTP packet")),
        Err(e) => e,
    }
}

/// Extends 16-bit RTP sequence numbers to ever-growing integers: each value
/// lands at the extension nearest the highest one seen.
#[pyclass(module = "rtpcore.rtp", name = "SequenceUnwrapper")]
#[derive(Default)]
struct PySequenceUnwrapper(seq::SequenceUnwrapper);

#[pymethods]
impl PySequenceUnwrapper {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn unwrap(&mut self, #[pyo3(from_py_with = sequence_number_arg)] sequence_number: u16) -> u64 {
        self.0.unwrap(sequence_number)
    }

    #[getter]
    fn highest(&self) -> Option<u64> {
        self.0.highest()
    }
}

/// Extends 32-bit RTP timestamps to ever-growing integers: each value lands
/// at the extension nearest the highest one seen.
#[pyclass(module = "rtpcore.rtp", name = "TimestampUnwrapper")]
#[derive(Default)]
struct PyTimestampUnwrapper(seq::TimestampUnwrapper);

#[pymethods]
impl PyTimestampUnwrapper {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn unwrap(&mut self, #[pyo3(from_py_with = timestamp_arg)] timestamp: u32) -> u64 {
        self.0.unwrap(timestamp)
    }

    #[getter]
    fn highest(&self) -> Option<u64> {
        self.0.highest()
    }
}

/// What a datagram on a shared port is: "rtp", "rtcp", "stun", "dtls",
/// "zrtp", "turn-channel" or "unknown" (RFC 5761, RFC 7983).
#[pyfunction]
fn classify_datagram(data: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    with_bytes(data, "data", |b| demux::classify(b).name())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRtpPacket>()?;
    m.add_class::<PySequenceUnwrapper>()?;
    m.add_class::<PyTimestampUnwrapper>()?;
    m.add_function(wrap_pyfunction!(parse_rtp_batch, m)?)?;
    m.add_function(wrap_pyfunction!(classify_datagram, m)?)?;
    Ok(())
}
