//! `rtpcore.rtcp`: compound RTCP packets, over `rtpcore_proto::rtcp`.
//!
//! RTCP is control traffic (a few packets a second per call), so the Python
//! classes are plain frozen dataclasses in `rtpcore/rtcp.py`, and this file
//! converts between them and the core's types through *records*: a tuple
//! `(class name, field, field, ...)` in the dataclass's field order, with
//! nested packets, blocks and chunks as records too and lists for repeated
//! fields. The wire format itself is only in the core.
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rtpcore_proto::rtcp::{
    parse_compound, write_compound, App, DlrrItem, ExtendedReport, GenericNack, Goodbye, PictureLossIndication, RawPacket,
    ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SdesItem, SenderReport, SourceDescription, VoipMetrics, XrBlock,
};

use crate::buffer::with_bytes;
use crate::errors::IntoPyResult;
use crate::rtp::{build_error, int_arg, int_in};

/// Builds a record tuple from values of mixed types.
macro_rules! record {
    ($py:expr, $($value:expr),+ $(,)?) => {
        PyTuple::new($py, [$($value.into_pyobject($py)?.into_any().unbind()),+])
    };
}

fn bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

fn report_records<'py>(py: Python<'py>, reports: &[ReportBlock]) -> PyResult<Bound<'py, PyList>> {
    let records = reports
        .iter()
        .map(|b| {
            record!(
                py,
                "ReportBlock",
                b.ssrc,
                b.fraction_lost,
                b.cumulative_lost,
                b.highest_sequence,
                b.jitter,
                b.last_sr,
                b.delay_since_last_sr
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, records)
}

fn xr_block_record<'py>(py: Python<'py>, block: &XrBlock) -> PyResult<Bound<'py, PyTuple>> {
    match block {
        XrBlock::ReceiverReferenceTime { ntp_timestamp } => record!(py, "ReceiverReferenceTime", *ntp_timestamp),
        XrBlock::Dlrr(items) => {
            let items = items
                .iter()
                .map(|i| record!(py, "DLRRItem", i.ssrc, i.last_rr, i.delay_since_last_rr))
                .collect::<PyResult<Vec<_>>>()?;
            record!(py, "DLRR", PyList::new(py, items)?)
        }
        XrBlock::VoipMetrics(m) => record!(
            py,
            "VoIPMetrics",
            m.ssrc,
            m.loss_rate,
            m.discard_rate,
            m.burst_density,
            m.gap_density,
            m.burst_duration,
            m.gap_duration,
            m.round_trip_delay,
            m.end_system_delay,
            m.signal_level,
            m.noise_level,
            m.rerl,
            m.gmin,
            m.r_factor,
            m.ext_r_factor,
            m.mos_lq,
            m.mos_cq,
            m.rx_config,
            m.jb_nominal,
            m.jb_maximum,
            m.jb_abs_max,
        ),
        XrBlock::Raw { block_type, type_specific, data } => record!(py, "XRBlock", *block_type, *type_specific, bytes(py, data)),
    }
}

fn packet_record<'py>(py: Python<'py>, packet: &RtcpPacket) -> PyResult<Bound<'py, PyTuple>> {
    match packet {
        RtcpPacket::SenderReport(p) => record!(
            py,
            "SenderReport",
            p.ssrc,
            p.ntp_timestamp,
            p.rtp_timestamp,
            p.packet_count,
            p.octet_count,
            report_records(py, &p.reports)?,
            bytes(py, &p.extension),
        ),
        RtcpPacket::ReceiverReport(p) => {
            record!(py, "ReceiverReport", p.ssrc, report_records(py, &p.reports)?, bytes(py, &p.extension))
        }
        RtcpPacket::SourceDescription(p) => {
            let chunks = p
                .chunks
                .iter()
                .map(|c| {
                    let items = c.items.iter().map(|i| record!(py, i.kind, bytes(py, &i.value))).collect::<PyResult<Vec<_>>>()?;
                    record!(py, "SDESChunk", c.ssrc, PyList::new(py, items)?)
                })
                .collect::<PyResult<Vec<_>>>()?;
            record!(py, "SourceDescription", PyList::new(py, chunks)?)
        }
        RtcpPacket::Goodbye(p) => {
            record!(py, "Bye", PyList::new(py, &p.sources)?, p.reason.as_deref().map(|r| bytes(py, r)))
        }
        RtcpPacket::App(p) => record!(py, "App", p.subtype, p.ssrc, bytes(py, &p.name), bytes(py, &p.data)),
        RtcpPacket::GenericNack(p) => record!(py, "GenericNACK", p.sender_ssrc, p.media_ssrc, PyList::new(py, p.lost())?),
        RtcpPacket::PictureLossIndication(p) => record!(py, "PLI", p.sender_ssrc, p.media_ssrc),
        RtcpPacket::ExtendedReport(p) => {
            let blocks = p.blocks.iter().map(|b| xr_block_record(py, b)).collect::<PyResult<Vec<_>>>()?;
            record!(py, "ExtendedReport", p.ssrc, PyList::new(py, blocks)?)
        }
        RtcpPacket::Raw(p) => record!(py, "UnknownRTCP", p.packet_type, p.count, bytes(py, &p.body)),
    }
}

/// The fields of a record, read in order with range checks.
struct Fields<'py> {
    class: String,
    items: std::vec::IntoIter<Bound<'py, PyAny>>,
}

impl<'py> Fields<'py> {
    /// Opens a record: any sequence whose first item is its class name.
    fn tagged(record: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut fields = Self::untagged(record, "record")?;
        fields.class = fields.next_value("class")?.extract()?;
        Ok(fields)
    }

    /// Opens a plain tuple of fields (an SDES item).
    fn untagged(record: &Bound<'py, PyAny>, class: &str) -> PyResult<Self> {
        let items = record.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        Ok(Fields { class: class.to_owned(), items: items.into_iter() })
    }

    fn next_value(&mut self, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let class = &self.class;
        self.items.next().ok_or_else(|| PyTypeError::new_err(format!("{class}: missing field {name}")))
    }

    fn int<T: TryFrom<i128>>(&mut self, name: &str, max: u64) -> PyResult<T> {
        let value = self.next_value(name)?;
        int_arg(&format!("{}.{name}", self.class), &value, max)
    }

    fn u8(&mut self, name: &str) -> PyResult<u8> {
        self.int(name, 0xFF)
    }

    fn u16(&mut self, name: &str) -> PyResult<u16> {
        self.int(name, 0xFFFF)
    }

    fn u32(&mut self, name: &str) -> PyResult<u32> {
        self.int(name, 0xFFFF_FFFF)
    }

    fn i8(&mut self, name: &str) -> PyResult<i8> {
        let value = self.next_value(name)?;
        int_in(&format!("{}.{name}", self.class), &value, -128..=127)
    }

    fn bytes(&mut self, name: &str) -> PyResult<Vec<u8>> {
        let value = self.next_value(name)?;
        with_bytes(&value, name, <[u8]>::to_vec)
    }

    fn list<T>(&mut self, name: &str, mut each: impl FnMut(&Bound<'py, PyAny>) -> PyResult<T>) -> PyResult<Vec<T>> {
        self.next_value(name)?.try_iter()?.map(|item| each(&item?)).collect()
    }
}

fn report_block_from(record: &Bound<'_, PyAny>) -> PyResult<ReportBlock> {
    let mut f = Fields::tagged(record)?;
    let ssrc = f.u32("ssrc")?;
    let fraction_lost = f.u8("fraction_lost")?;
    // The core checks the 24-bit range when writing, with a precise message.
    let cumulative_lost = int_in("ReportBlock.cumulative_lost", &f.next_value("cumulative_lost")?, i128::from(i32::MIN)..=i128::from(i32::MAX))?;
    Ok(ReportBlock {
        ssrc,
        fraction_lost,
        cumulative_lost,
        highest_sequence: f.u32("highest_sequence")?,
        jitter: f.u32("jitter")?,
        last_sr: f.u32("last_sr")?,
        delay_since_last_sr: f.u32("delay_since_last_sr")?,
    })
}

fn xr_block_from(record: &Bound<'_, PyAny>) -> PyResult<XrBlock> {
    let mut f = Fields::tagged(record)?;
    Ok(match f.class.as_str() {
        "ReceiverReferenceTime" => XrBlock::ReceiverReferenceTime { ntp_timestamp: f.int("ntp_timestamp", u64::MAX)? },
        "DLRR" => XrBlock::Dlrr(f.list("items", |item| {
            let mut i = Fields::tagged(item)?;
            Ok(DlrrItem {
                ssrc: i.u32("ssrc")?,
                last_rr: i.u32("last_rr")?,
                delay_since_last_rr: i.u32("delay_since_last_rr")?,
            })
        })?),
        "VoIPMetrics" => XrBlock::VoipMetrics(VoipMetrics {
            ssrc: f.u32("ssrc")?,
            loss_rate: f.u8("loss_rate")?,
            discard_rate: f.u8("discard_rate")?,
            burst_density: f.u8("burst_density")?,
            gap_density: f.u8("gap_density")?,
            burst_duration: f.u16("burst_duration")?,
            gap_duration: f.u16("gap_duration")?,
            round_trip_delay: f.u16("round_trip_delay")?,
            end_system_delay: f.u16("end_system_delay")?,
            signal_level: f.i8("signal_level")?,
            noise_level: f.i8("noise_level")?,
            rerl: f.u8("rerl")?,
            gmin: f.u8("gmin")?,
            r_factor: f.u8("r_factor")?,
            ext_r_factor: f.u8("ext_r_factor")?,
            mos_lq: f.u8("mos_lq")?,
            mos_cq: f.u8("mos_cq")?,
            rx_config: f.u8("rx_config")?,
            jb_nominal: f.u16("jb_nominal")?,
            jb_maximum: f.u16("jb_maximum")?,
            jb_abs_max: f.u16("jb_abs_max")?,
        }),
        "XRBlock" => {
            XrBlock::Raw { block_type: f.u8("block_type")?, type_specific: f.u8("type_specific")?, data: f.bytes("data")? }
        }
        other => return Err(PyTypeError::new_err(format!("not an XR block: {other}"))),
    })
}

fn packet_from(record: &Bound<'_, PyAny>) -> PyResult<RtcpPacket> {
    let mut f = Fields::tagged(record)?;
    Ok(match f.class.as_str() {
        "SenderReport" => RtcpPacket::SenderReport(SenderReport {
            ssrc: f.u32("ssrc")?,
            ntp_timestamp: f.int("ntp_timestamp", u64::MAX)?,
            rtp_timestamp: f.u32("rtp_timestamp")?,
            packet_count: f.u32("packet_count")?,
            octet_count: f.u32("octet_count")?,
            reports: f.list("reports", report_block_from)?,
            extension: f.bytes("extension")?,
        }),
        "ReceiverReport" => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: f.u32("ssrc")?,
            reports: f.list("reports", report_block_from)?,
            extension: f.bytes("extension")?,
        }),
        "SourceDescription" => RtcpPacket::SourceDescription(SourceDescription {
            chunks: f.list("chunks", |chunk| {
                let mut c = Fields::tagged(chunk)?;
                Ok(SdesChunk {
                    ssrc: c.u32("ssrc")?,
                    items: c.list("items", |item| {
                        let mut i = Fields::untagged(item, "SDES item")?;
                        Ok(SdesItem { kind: i.u8("kind")?, value: i.bytes("value")? })
                    })?,
                })
            })?,
        }),
        "Bye" => RtcpPacket::Goodbye(Goodbye {
            sources: f.list("sources", |s| int_arg("Bye.sources", s, 0xFFFF_FFFF))?,
            reason: {
                let reason = f.next_value("reason")?;
                if reason.is_none() { None } else { Some(with_bytes(&reason, "reason", <[u8]>::to_vec)?) }
            },
        }),
        "App" => RtcpPacket::App(App {
            subtype: f.u8("subtype")?,
            ssrc: f.u32("ssrc")?,
            name: f.bytes("name")?.try_into().map_err(|_| PyValueError::new_err("App.name: must be exactly 4 bytes"))?,
            data: f.bytes("data")?,
        }),
        "GenericNACK" => RtcpPacket::GenericNack(GenericNack {
            sender_ssrc: f.u32("sender_ssrc")?,
            media_ssrc: f.u32("media_ssrc")?,
            entries: GenericNack::entries_for(&f.list("lost", |s| int_arg("GenericNACK.lost", s, 0xFFFF))?),
        }),
        "PLI" => RtcpPacket::PictureLossIndication(PictureLossIndication {
            sender_ssrc: f.u32("sender_ssrc")?,
            media_ssrc: f.u32("media_ssrc")?,
        }),
        "ExtendedReport" => {
            RtcpPacket::ExtendedReport(ExtendedReport { ssrc: f.u32("ssrc")?, blocks: f.list("blocks", xr_block_from)? })
        }
        "UnknownRTCP" => RtcpPacket::Raw(RawPacket {
            packet_type: f.u8("packet_type")?,
            count: f.u8("count")?,
            body: f.bytes("body")?,
        }),
        other => return Err(PyTypeError::new_err(format!("not an RTCP packet: {other}"))),
    })
}

/// The packets of a compound RTCP packet, as records.
#[pyfunction]
fn rtcp_parse_compound<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let packets = with_bytes(data, "data", parse_compound)?.or_raise(py)?;
    let records = packets.iter().map(|p| packet_record(py, p)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, records)
}

/// A compound RTCP packet made of the packets given as records.
#[pyfunction]
fn rtcp_build_compound<'py>(py: Python<'py>, records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let packets = records.try_iter()?.map(|r| packet_from(&r?)).collect::<PyResult<Vec<_>>>()?;
    let mut out = Vec::new();
    write_compound(&packets, &mut out).map_err(build_error)?;
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rtcp_parse_compound, m)?)?;
    m.add_function(wrap_pyfunction!(rtcp_build_compound, m)?)?;
    Ok(())
}
