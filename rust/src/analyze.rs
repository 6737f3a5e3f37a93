//! `rtpcore.analyze`: RTP stream analysis of captures, over
//! `rtpcore_proto::analyze`. Python reads the file and shows progress; every
//! frame is decoded and counted here, without the GIL.
use std::collections::HashMap;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::net::{IpAddr, SocketAddr};

use rtpcore_proto::analyze::{static_payload_type, Analyzer, Counters, StreamReport};
use rtpcore_proto::capture::{decode, CaptureReader, Decoded};
use rtpcore_proto::demux::{classify, PacketKind};
use rtpcore_proto::rtp::RtpHeader;

use crate::buffer::with_bytes;
use crate::errors::IntoPyResult;

/// RTP stream analysis of a pcap or pcapng file fed in chunks:
/// `feed(chunk)` as often as needed, then `finish()` for the report.
/// `clock_rates` maps dynamic payload types to their RTP clock rate.
#[pyclass(module = "rtpcore.analyze", name = "CaptureAnalyzer")]
struct PyCaptureAnalyzer {
    /// `None` once `finish` has handed out the report.
    analyzer: Option<Analyzer>,
}

impl PyCaptureAnalyzer {
    fn analyzer(&mut self) -> PyResult<&mut Analyzer> {
        self.analyzer.as_mut().ok_or_else(|| PyRuntimeError::new_err("the analysis is finished"))
    }
}

fn stream_dict<'py>(py: Python<'py>, s: &StreamReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let st = &s.stats;
    d.set_item("source", s.key.source.ip().to_string())?;
    d.set_item("source_port", s.key.source.port())?;
    d.set_item("destination", s.key.destination.ip().to_string())?;
    d.set_item("destination_port", s.key.destination.port())?;
    d.set_item("ssrc", s.key.ssrc)?;
    d.set_item("payload_type", s.payload_type)?;
    d.set_item("payload_types", PyList::new(py, &s.payload_types)?)?;
    d.set_item("codec", static_payload_type(s.payload_type).map(|(name, _)| name))?;
    d.set_item("clock_rate", st.clock_rate())?;
    d.set_item("first_time", s.first_ns as f64 / 1e9)?;
    d.set_item("duration", (s.last_ns - s.first_ns) as f64 / 1e9)?;
    d.set_item("packets", st.packets())?;
    d.set_item("expected", st.expected())?;
    d.set_item("lost", st.lost())?;
    d.set_item("duplicates", st.duplicates())?;
    d.set_item("out_of_order", st.out_of_order())?;
    d.set_item("sequence_errors", st.sequence_errors())?;
    d.set_item("payload_bytes", s.payload_bytes)?;
    d.set_item("max_delta_ms", st.max_delta_ms())?;
    d.set_item("max_jitter_ms", st.max_jitter_ms())?;
    d.set_item("mean_jitter_ms", st.mean_jitter_ms())?;
    let rtcp = PyDict::new(py);
    rtcp.set_item("sender_reports", s.rtcp.sender_reports)?;
    rtcp.set_item("report_blocks", s.rtcp.report_blocks)?;
    if let Some(last) = s.rtcp.last_report {
        rtcp.set_item("last_fraction_lost", f64::from(last.fraction_lost) / 256.0)?;
        rtcp.set_item("last_cumulative_lost", last.cumulative_lost)?;
        rtcp.set_item("last_jitter", last.jitter)?;
    }
    d.set_item("rtcp", rtcp)?;
    Ok(d)
}

fn counters_dict<'py>(py: Python<'py>, c: &Counters) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in [
        ("frames", c.frames),
        ("udp", c.udp),
        ("rtp", c.rtp),
        ("rtcp", c.rtcp),
        ("skipped_udp", c.skipped_udp),
        ("not_udp", c.not_udp),
        ("fragments", c.fragments),
        ("malformed", c.malformed),
    ] {
        d.set_item(name, value)?;
    }
    Ok(d)
}

#[pymethods]
impl PyCaptureAnalyzer {
    #[new]
    #[pyo3(signature = (clock_rates = None))]
    fn new(clock_rates: Option<HashMap<u8, u32>>) -> Self {
        PyCaptureAnalyzer { analyzer: Some(Analyzer::new(clock_rates.unwrap_or_default())) }
    }

    /// Reads the next piece of the capture file.
    fn feed(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        let analyzer = self.analyzer()?;
        let result = match chunk.cast::<PyBytes>() {
            // An immutable bytes object can be read with the GIL released.
            Ok(bytes) => {
                let data = bytes.as_bytes();
                py.detach(|| analyzer.feed(data))
            }
            Err(_) => with_bytes(chunk, "chunk", |data| analyzer.feed(data))?,
        };
        result.or_raise(py)
    }

    /// Ends the capture: `{"streams": [...], "counters": {...}}`.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let analyzer = self.analyzer.take().ok_or_else(|| PyRuntimeError::new_err("the analysis is finished"))?;
        let report = analyzer.finish().or_raise(py)?;
        let streams = report.streams.iter().map(|s| stream_dict(py, s)).collect::<PyResult<Vec<_>>>()?;
        let d = PyDict::new(py);
        d.set_item("streams", PyList::new(py, streams)?)?;
        d.set_item("counters", counters_dict(py, &report.counters)?)?;
        Ok(d)
    }
}

/// The RTP packets of one stream of a capture, with their capture times:
/// what a replay through the jitter buffer needs. Fed in chunks like
/// `CaptureAnalyzer`; `finish()` returns `[(arrival_seconds, rtp_bytes)]`.
#[pyclass(module = "rtpcore.analyze", name = "CaptureStreamPackets")]
struct PyCaptureStreamPackets {
    reader: CaptureReader,
    source: SocketAddr,
    destination: SocketAddr,
    ssrc: u32,
    packets: Vec<(f64, Py<PyBytes>)>,
}

fn socket_address(what: &str, address: &str, port: u16) -> PyResult<SocketAddr> {
    let ip: IpAddr = address.parse().map_err(|_| PyValueError::new_err(format!("{what}: not an IP address: {address:?}")))?;
    Ok(SocketAddr::new(ip, port))
}

#[pymethods]
impl PyCaptureStreamPackets {
    #[new]
    fn new(source: &str, source_port: u16, destination: &str, destination_port: u16, ssrc: u32) -> PyResult<Self> {
        Ok(PyCaptureStreamPackets {
            reader: CaptureReader::new(),
            source: socket_address("source", source, source_port)?,
            destination: socket_address("destination", destination, destination_port)?,
            ssrc,
            packets: Vec::new(),
        })
    }

    /// Reads the next piece of the capture file.
    fn feed(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        let PyCaptureStreamPackets { reader, source, destination, ssrc, packets } = self;
        let result = with_bytes(chunk, "chunk", |data| {
            reader.feed(data, |frame| {
                let Decoded::Udp(d) = decode(&frame) else { return };
                if d.source != *source || d.destination != *destination || classify(d.payload) != PacketKind::Rtp {
                    return;
                }
                if RtpHeader::parse(d.payload).is_ok_and(|h| h.ssrc == *ssrc) {
                    packets.push((frame.timestamp_ns as f64 / 1e9, PyBytes::new(py, d.payload).unbind()));
                }
            })
        })?;
        result.or_raise(py)
    }

    /// Ends the capture: the stream's packets as `(arrival_seconds, bytes)`.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.reader.finish().or_raise(py)?;
        PyList::new(py, std::mem::take(&mut self.packets))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCaptureAnalyzer>()?;
    m.add_class::<PyCaptureStreamPackets>()?;
    Ok(())
}
