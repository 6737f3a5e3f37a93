//! RTCP packets (RFC 3550 section 6, RFC 4585 feedback, RFC 3611 extended
//! reports) and compound packets: parsed into owned values and written back.
//!
//! Every packet type this crate does not know (and feedback messages or XR
//! blocks of unknown formats) is kept raw, so that a compound packet always
//! parses as long as its framing is sound and can be written back unchanged.
//! Padding is removed when parsing; writing adds it only where a body (APP
//! data, a report extension, a raw body) is not a whole number of 32-bit
//! words, so that anything parsed can be written back.

use crate::error::{BuildError, Layer, ParseError};

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of a source description.
pub const PT_SDES: u8 = 202;
/// Packet type of a goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const PT_APP: u8 = 204;
/// Packet type of transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback (RFC 4585).
pub const PT_PSFB: u8 = 206;
/// Packet type of an extended report (RFC 3611).
pub const PT_XR: u8 = 207;
/// RTPFB format of a generic NACK.
pub const FMT_GENERIC_NACK: u8 = 1;
/// PSFB format of a picture loss indication.
pub const FMT_PLI: u8 = 1;
/// XR block type of a receiver reference time (RFC 3611 section 4.4).
pub const XR_RECEIVER_REFERENCE_TIME: u8 = 4;
/// XR block type of a DLRR report (RFC 3611 section 4.5).
pub const XR_DLRR: u8 = 5;
/// XR block type of VoIP metrics (RFC 3611 section 4.7).
pub const XR_VOIP_METRICS: u8 = 7;
/// Length of an RTCP common header.
pub const HEADER_LEN: usize = 4;
/// Most items a 5-bit count field can announce.
const MAX_COUNT: usize = 31;

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the beginning, a signed 24-bit value (duplicates
    /// can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

/// A sender report (SR, packet type 200).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// 64-bit NTP timestamp of the report.
    pub ntp_timestamp: u64,
    /// The RTP timestamp that corresponds to `ntp_timestamp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
    /// Reception report blocks, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the blocks (RFC 3550 wants whole
    /// 32-bit words; other lengths are written with RTCP padding).
    pub extension: Vec<u8>,
}

/// A receiver report (RR, packet type 201).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// The reporter.
    pub ssrc: u32,
    /// Reception report blocks, at most 31.
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension after the blocks (see [`SenderReport`]).
    pub extension: Vec<u8>,
}

/// One SDES item: its type (1 CNAME, 2 NAME, ... 8 PRIV) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// Item type, 1..=255 (0 ends a chunk on the wire).
    pub kind: u8,
    /// The value, at most 255 bytes (for PRIV, prefix length and prefix included).
    pub value: Vec<u8>,
}

/// The items describing one source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its items, in order.
    pub items: Vec<SdesItem>,
}

/// A source description (SDES, packet type 202).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceDescription {
    /// One chunk per source, at most 31.
    pub chunks: Vec<SdesChunk>,
}

/// A goodbye (BYE, packet type 203).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Goodbye {
    /// The sources leaving, at most 31.
    pub sources: Vec<u32>,
    /// Why they leave, at most 255 bytes.
    pub reason: Option<Vec<u8>>,
}

/// An application-defined packet (APP, packet type 204).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct App {
    /// Subtype, 0..=31.
    pub subtype: u8,
    /// The sender.
    pub ssrc: u32,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application data (RFC 3550 wants whole 32-bit words; other lengths
    /// are written with RTCP padding).
    pub data: Vec<u8>,
}

/// One generic NACK entry: a lost packet and a bitmask of the 16 after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NackEntry {
    /// Packet ID: the sequence number of a lost packet.
    pub pid: u16,
    /// Bitmask of following lost packets: bit i set means `pid + i + 1` is lost.
    pub blp: u16,
}

/// A generic NACK (RTPFB, FMT 1, RFC 4585 section 6.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenericNack {
    /// The packet's sender.
    pub sender_ssrc: u32,
    /// The media source whose packets are lost.
    pub media_ssrc: u32,
    /// The lost packets.
    pub entries: Vec<NackEntry>,
}

impl GenericNack {
    /// The sequence numbers the entries name, in order.
    pub fn lost(&self) -> Vec<u16> {
        let mut lost = Vec::new();
        for e in &self.entries {
            lost.push(e.pid);
            lost.extend((0..16).filter(|bit| e.blp & (1 << bit) != 0).map(|bit| e.pid.wrapping_add(bit + 1)));
        }
        lost
    }

    /// Entries naming `lost`, given in sending order: each starts a new entry
    /// unless it lies within the 16 packets after the current entry's PID.
    pub fn entries_for(lost: &[u16]) -> Vec<NackEntry> {
        let mut entries: Vec<NackEntry> = Vec::new();
        for &seq in lost {
            match entries.last_mut() {
                Some(e) if (1..=16).contains(&seq.wrapping_sub(e.pid)) => e.blp |= 1 << (seq.wrapping_sub(e.pid) - 1),
                Some(e) if e.pid == seq => {}
                _ => entries.push(NackEntry { pid: seq, blp: 0 }),
            }
        }
        entries
    }
}

/// A picture loss indication (PSFB, FMT 1, RFC 4585 section 6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PictureLossIndication {
    /// The packet's sender.
    pub sender_ssrc: u32,
    /// The media source asked for a new picture.
    pub media_ssrc: u32,
}

/// The VoIP metrics report block (RFC 3611 section 4.7). Field meanings and
/// units are those of the RFC; 127 / 0 mean "unavailable" where it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct VoipMetrics {
    /// The source reported on.
    pub ssrc: u32,
    pub loss_rate: u8,
    pub discard_rate: u8,
    pub burst_density: u8,
    pub gap_density: u8,
    pub burst_duration: u16,
    pub gap_duration: u16,
    pub round_trip_delay: u16,
    pub end_system_delay: u16,
    /// Signal level in dBm (signed).
    pub signal_level: i8,
    /// Noise level in dBm (signed).
    pub noise_level: i8,
    pub rerl: u8,
    pub gmin: u8,
    pub r_factor: u8,
    pub ext_r_factor: u8,
    pub mos_lq: u8,
    pub mos_cq: u8,
    pub rx_config: u8,
    pub jb_nominal: u16,
    pub jb_maximum: u16,
    pub jb_abs_max: u16,
}

/// Length of a VoIP metrics block's content, after its 4-byte header.
const VOIP_METRICS_LEN: usize = 32;
/// Length of one DLRR sub-block.
const DLRR_ITEM_LEN: usize = 12;

/// One sub-block of a DLRR report: the answer to one receiver reference
/// time, from which its sender computes the round-trip time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlrrItem {
    /// The receiver whose reference time is answered.
    pub ssrc: u32,
    /// Middle 32 bits of that reference time's NTP timestamp (LRR).
    pub last_rr: u32,
    /// Delay since it arrived, in 1/65536 s (DLRR).
    pub delay_since_last_rr: u32,
}

/// One report block of an extended report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XrBlock {
    /// A receiver's NTP time (block type 4), so that non-senders can get a
    /// round-trip time too.
    ReceiverReferenceTime {
        /// 64-bit NTP timestamp.
        ntp_timestamp: u64,
    },
    /// Answers to receiver reference times (block type 5).
    Dlrr(Vec<DlrrItem>),
    /// VoIP metrics (block type 7).
    VoipMetrics(VoipMetrics),
    /// Any other block type, kept as it was.
    Raw {
        /// Block type.
        block_type: u8,
        /// The type-specific byte of the block header.
        type_specific: u8,
        /// The block content, a multiple of 4 bytes.
        data: Vec<u8>,
    },
}

/// An extended report (XR, packet type 207, RFC 3611).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedReport {
    /// The reporter.
    pub ssrc: u32,
    /// Its report blocks.
    pub blocks: Vec<XrBlock>,
}

/// A packet this crate has no type for (or a feedback message of an unknown
/// format), kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPacket {
    /// The packet type.
    pub packet_type: u8,
    /// The 5-bit count / format field.
    pub count: u8,
    /// The body after the common header, padding removed (written back with
    /// RTCP padding when it is not whole 32-bit words).
    pub body: Vec<u8>,
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR.
    SenderReport(SenderReport),
    /// RR.
    ReceiverReport(ReceiverReport),
    /// SDES.
    SourceDescription(SourceDescription),
    /// BYE.
    Goodbye(Goodbye),
    /// APP.
    App(App),
    /// RTPFB generic NACK.
    GenericNack(GenericNack),
    /// PSFB picture loss indication.
    PictureLossIndication(PictureLossIndication),
    /// XR.
    ExtendedReport(ExtendedReport),
    /// Anything else.
    Raw(RawPacket),
}

/// Reads big-endian fields of one packet, reporting offsets in the whole
/// compound buffer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the buffer handed to `parse_compound`.
    base: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        if self.remaining() < n {
            return Err(ParseError::truncated(Layer::Rtcp, field, self.offset(), n, self.base + self.buf.len()));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Skips to the next multiple of 4 from the start of the packet body.
    fn align(&mut self, field: &'static str) -> Result<(), ParseError> {
        let pad = (4 - self.pos % 4) % 4;
        self.bytes(pad, field).map(drop)
    }

    fn error(&self, field: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError::new(Layer::Rtcp, field, self.offset(), reason)
    }
}

fn parse_report_blocks(r: &mut Reader<'_>, count: u8) -> Result<Vec<ReportBlock>, ParseError> {
    (0..count)
        .map(|_| {
            let ssrc = r.u32("report block")?;
            let lost = r.u32("report block")?;
            // The low 24 bits are a two's-complement count: shift them to the
            // top and back to extend the sign.
            let cumulative_lost = ((lost << 8) as i32) >> 8;
            Ok(ReportBlock {
                ssrc,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost,
                highest_sequence: r.u32("report block")?,
                jitter: r.u32("report block")?,
                last_sr: r.u32("report block")?,
                delay_since_last_sr: r.u32("report block")?,
            })
        })
        .collect()
}

fn parse_sdes(r: &mut Reader<'_>, count: u8) -> Result<SourceDescription, ParseError> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let ssrc = r.u32("sdes chunk")?;
        let mut items = Vec::new();
        loop {
            let kind = r.u8("sdes item")?;
            if kind == 0 {
                break;
            }
            let len = r.u8("sdes item length")?;
            items.push(SdesItem { kind, value: r.bytes(usize::from(len), "sdes item")?.to_vec() });
        }
        r.align("sdes chunk")?;
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(SourceDescription { chunks })
}

fn parse_bye(r: &mut Reader<'_>, count: u8) -> Result<Goodbye, ParseError> {
    let sources = (0..count).map(|_| r.u32("bye ssrc")).collect::<Result<_, _>>()?;
    let reason = if r.remaining() > 0 {
        let len = r.u8("reason length")?;
        Some(r.bytes(usize::from(len), "reason")?.to_vec())
    } else {
        None
    };
    Ok(Goodbye { sources, reason })
}

fn parse_xr(r: &mut Reader<'_>) -> Result<ExtendedReport, ParseError> {
    let ssrc = r.u32("ssrc")?;
    let mut blocks = Vec::new();
    while r.remaining() > 0 {
        let block_type = r.u8("xr block")?;
        let type_specific = r.u8("xr block")?;
        let words_at = r.offset();
        let len = 4 * usize::from(r.u16("xr block length")?);
        if len > r.remaining() {
            return Err(ParseError::new(
                Layer::Rtcp,
                "xr block length",
                words_at,
                format!("block of {len} bytes runs past the end of the packet ({} left)", r.remaining()),
            ));
        }
        let data = r.bytes(len, "xr block")?;
        let wrong_length = |what: &str, expected: &str| {
            ParseError::new(Layer::Rtcp, "xr block length", words_at, format!("a {what} block has {expected} bytes, not {len}"))
        };
        blocks.push(match block_type {
            XR_RECEIVER_REFERENCE_TIME => {
                let ntp: [u8; 8] = data.try_into().map_err(|_| wrong_length("receiver reference time", "8"))?;
                XrBlock::ReceiverReferenceTime { ntp_timestamp: u64::from_be_bytes(ntp) }
            }
            XR_DLRR => {
                if len % DLRR_ITEM_LEN != 0 {
                    return Err(wrong_length("DLRR", "a multiple of 12"));
                }
                let word = |c: &[u8], at: usize| u32::from_be_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]]);
                let items = data
                    .chunks_exact(DLRR_ITEM_LEN)
                    .map(|c| DlrrItem { ssrc: word(c, 0), last_rr: word(c, 4), delay_since_last_rr: word(c, 8) })
                    .collect();
                XrBlock::Dlrr(items)
            }
            XR_VOIP_METRICS => {
                if len != VOIP_METRICS_LEN {
                    return Err(wrong_length("VoIP metrics", "32"));
                }
                XrBlock::VoipMetrics(parse_voip_metrics(data))
            }
            _ => XrBlock::Raw { block_type, type_specific, data: data.to_vec() },
        });
    }
    Ok(ExtendedReport { ssrc, blocks })
}

fn parse_voip_metrics(d: &[u8]) -> VoipMetrics {
    let be16 = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
    VoipMetrics {
        ssrc: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
        loss_rate: d[4],
        discard_rate: d[5],
        burst_density: d[6],
        gap_density: d[7],
        burst_duration: be16(8),
        gap_duration: be16(10),
        round_trip_delay: be16(12),
        end_system_delay: be16(14),
        signal_level: d[16] as i8,
        noise_level: d[17] as i8,
        rerl: d[18],
        gmin: d[19],
        r_factor: d[20],
        ext_r_factor: d[21],
        mos_lq: d[22],
        mos_cq: d[23],
        rx_config: d[24],
        jb_nominal: be16(26),
        jb_maximum: be16(28),
        jb_abs_max: be16(30),
    }
}

/// Parses the body of one packet, given its header's count and type.
fn parse_body(r: &mut Reader<'_>, count: u8, packet_type: u8) -> Result<RtcpPacket, ParseError> {
    Ok(match (packet_type, count) {
        (PT_SR, _) => RtcpPacket::SenderReport(SenderReport {
            ssrc: r.u32("ssrc")?,
            ntp_timestamp: r.u64("ntp timestamp")?,
            rtp_timestamp: r.u32("rtp timestamp")?,
            packet_count: r.u32("packet count")?,
            octet_count: r.u32("octet count")?,
            reports: parse_report_blocks(r, count)?,
            extension: r.rest().to_vec(),
        }),
        (PT_RR, _) => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: r.u32("ssrc")?,
            reports: parse_report_blocks(r, count)?,
            extension: r.rest().to_vec(),
        }),
        (PT_SDES, _) => RtcpPacket::SourceDescription(parse_sdes(r, count)?),
        (PT_BYE, _) => RtcpPacket::Goodbye(parse_bye(r, count)?),
        (PT_APP, _) => RtcpPacket::App(App {
            subtype: count,
            ssrc: r.u32("ssrc")?,
            name: r.array("name")?,
            data: r.rest().to_vec(),
        }),
        (PT_RTPFB, FMT_GENERIC_NACK) => {
            let sender_ssrc = r.u32("sender ssrc")?;
            let media_ssrc = r.u32("media ssrc")?;
            let mut entries = Vec::with_capacity(r.remaining() / 4);
            while r.remaining() > 0 {
                entries.push(NackEntry { pid: r.u16("nack pid")?, blp: r.u16("nack blp")? });
            }
            RtcpPacket::GenericNack(GenericNack { sender_ssrc, media_ssrc, entries })
        }
        (PT_PSFB, FMT_PLI) => {
            let pli = PictureLossIndication { sender_ssrc: r.u32("sender ssrc")?, media_ssrc: r.u32("media ssrc")? };
            if r.remaining() > 0 {
                return Err(r.error("fci", format!("a PLI carries no FCI, found {} bytes", r.remaining())));
            }
            RtcpPacket::PictureLossIndication(pli)
        }
        (PT_XR, _) => RtcpPacket::ExtendedReport(parse_xr(r)?),
        _ => RtcpPacket::Raw(RawPacket { packet_type, count, body: r.rest().to_vec() }),
    })
}

/// Parses a compound RTCP packet (or a single, non-compound one) into its
/// packets, in order.
///
/// Each packet's length field must fit the buffer and its padding (P bit)
/// must be sound; the body must hold what its type and count announce. It
/// does not enforce RFC 3550's rule that a compound packet starts with an SR
/// or RR, since RFC 5506 reduced-size RTCP drops it.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, ParseError> {
    if buf.is_empty() {
        return Err(ParseError::truncated(Layer::Rtcp, "header", 0, HEADER_LEN, 0));
    }
    let mut packets = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        if buf.len() - at < HEADER_LEN {
            return Err(ParseError::truncated(Layer::Rtcp, "header", at, HEADER_LEN, buf.len()));
        }
        let version = buf[at] >> 6;
        if version != 2 {
            return Err(ParseError::new(Layer::Rtcp, "version", at, format!("expected 2, got {version}")));
        }
        let padded = buf[at] & 0x20 != 0;
        let count = buf[at] & 0x1F;
        let packet_type = buf[at + 1];
        let len = 4 * (usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])) + 1);
        if len > buf.len() - at {
            return Err(ParseError::new(
                Layer::Rtcp,
                "length",
                at + 2,
                format!("packet of {len} bytes runs past the end of the buffer ({} left)", buf.len() - at),
            ));
        }
        let mut body = &buf[at + HEADER_LEN..at + len];
        if padded {
            let pad = usize::from(body.last().copied().unwrap_or(0));
            if pad == 0 || pad > body.len() {
                return Err(ParseError::new(
                    Layer::Rtcp,
                    "padding",
                    at + len - 1,
                    format!("padding count {pad} does not fit the {}-byte body", body.len()),
                ));
            }
            body = &body[..body.len() - pad];
        }
        let mut reader = Reader { buf: body, pos: 0, base: at + HEADER_LEN };
        packets.push(parse_body(&mut reader, count, packet_type)?);
        at += len;
    }
    Ok(packets)
}

fn too_many(field: &'static str, n: usize) -> BuildError {
    BuildError::new(field, format!("{n} entries; an RTCP count field holds at most {MAX_COUNT}"))
}

fn count_of(field: &'static str, n: usize) -> Result<u8, BuildError> {
    if n > MAX_COUNT {
        return Err(too_many(field, n));
    }
    // At most 31 by the check above.
    Ok(n as u8)
}

fn check_words(field: &'static str, data: &[u8]) -> Result<(), BuildError> {
    if data.len() % 4 != 0 {
        return Err(BuildError::new(field, format!("{} bytes; must be a multiple of 4", data.len())));
    }
    Ok(())
}

fn write_report_blocks(reports: &[ReportBlock], out: &mut Vec<u8>) -> Result<(), BuildError> {
    for b in reports {
        if !(-0x80_0000..=0x7F_FFFF).contains(&b.cumulative_lost) {
            return Err(BuildError::new(
                "cumulative_lost",
                format!("{} does not fit in a signed 24-bit field", b.cumulative_lost),
            ));
        }
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = u32::from(b.fraction_lost) << 24 | (b.cumulative_lost as u32 & 0xFF_FFFF);
        out.extend_from_slice(&lost.to_be_bytes());
        for word in [b.highest_sequence, b.jitter, b.last_sr, b.delay_since_last_sr] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
    Ok(())
}

fn write_voip_metrics(m: &VoipMetrics, out: &mut Vec<u8>) {
    out.extend_from_slice(&m.ssrc.to_be_bytes());
    out.extend_from_slice(&[m.loss_rate, m.discard_rate, m.burst_density, m.gap_density]);
    for v in [m.burst_duration, m.gap_duration, m.round_trip_delay, m.end_system_delay] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&[m.signal_level as u8, m.noise_level as u8, m.rerl, m.gmin]);
    out.extend_from_slice(&[m.r_factor, m.ext_r_factor, m.mos_lq, m.mos_cq, m.rx_config, 0]);
    for v in [m.jb_nominal, m.jb_maximum, m.jb_abs_max] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

impl RtcpPacket {
    /// The packet type and count/format field of its common header.
    fn type_and_count(&self) -> Result<(u8, u8), BuildError> {
        Ok(match self {
            RtcpPacket::SenderReport(p) => (PT_SR, count_of("reports", p.reports.len())?),
            RtcpPacket::ReceiverReport(p) => (PT_RR, count_of("reports", p.reports.len())?),
            RtcpPacket::SourceDescription(p) => (PT_SDES, count_of("chunks", p.chunks.len())?),
            RtcpPacket::Goodbye(p) => (PT_BYE, count_of("sources", p.sources.len())?),
            RtcpPacket::App(p) => {
                if usize::from(p.subtype) > MAX_COUNT {
                    return Err(BuildError::new("subtype", format!("{} does not fit in 5 bits", p.subtype)));
                }
                (PT_APP, p.subtype)
            }
            RtcpPacket::GenericNack(_) => (PT_RTPFB, FMT_GENERIC_NACK),
            RtcpPacket::PictureLossIndication(_) => (PT_PSFB, FMT_PLI),
            RtcpPacket::ExtendedReport(_) => (PT_XR, 0),
            RtcpPacket::Raw(p) => {
                if usize::from(p.count) > MAX_COUNT {
                    return Err(BuildError::new("count", format!("{} does not fit in 5 bits", p.count)));
                }
                (p.packet_type, p.count)
            }
        })
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        match self {
            RtcpPacket::SenderReport(p) => {
                out.extend_from_slice(&p.ssrc.to_be_bytes());
                out.extend_from_slice(&p.ntp_timestamp.to_be_bytes());
                for word in [p.rtp_timestamp, p.packet_count, p.octet_count] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                write_report_blocks(&p.reports, out)?;
                out.extend_from_slice(&p.extension);
            }
            RtcpPacket::ReceiverReport(p) => {
                out.extend_from_slice(&p.ssrc.to_be_bytes());
                write_report_blocks(&p.reports, out)?;
                out.extend_from_slice(&p.extension);
            }
            RtcpPacket::SourceDescription(p) => {
                for chunk in &p.chunks {
                    let start = out.len();
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    for item in &chunk.items {
                        if item.kind == 0 {
                            return Err(BuildError::new("items", "item type 0 is the end-of-chunk marker"));
                        }
                        let len = u8::try_from(item.value.len()).map_err(|_| {
                            BuildError::new("items", format!("{}-byte value; an SDES item holds at most 255", item.value.len()))
                        })?;
                        out.extend_from_slice(&[item.kind, len]);
                        out.extend_from_slice(&item.value);
                    }
                    // The end marker, then zeros to the next 32-bit boundary.
                    out.push(0);
                    out.resize(start + (out.len() - start).div_ceil(4) * 4, 0);
                }
            }
            RtcpPacket::Goodbye(p) => {
                for ssrc in &p.sources {
                    out.extend_from_slice(&ssrc.to_be_bytes());
                }
                if let Some(reason) = &p.reason {
                    let len = u8::try_from(reason.len()).map_err(|_| {
                        BuildError::new("reason", format!("{} bytes; a BYE reason holds at most 255", reason.len()))
                    })?;
                    let start = out.len();
                    out.push(len);
                    out.extend_from_slice(reason);
                    out.resize(start + (out.len() - start).div_ceil(4) * 4, 0);
                }
            }
            RtcpPacket::App(p) => {
                out.extend_from_slice(&p.ssrc.to_be_bytes());
                out.extend_from_slice(&p.name);
                out.extend_from_slice(&p.data);
            }
            RtcpPacket::GenericNack(p) => {
                out.extend_from_slice(&p.sender_ssrc.to_be_bytes());
                out.extend_from_slice(&p.media_ssrc.to_be_bytes());
                for e in &p.entries {
                    out.extend_from_slice(&e.pid.to_be_bytes());
                    out.extend_from_slice(&e.blp.to_be_bytes());
                }
            }
            RtcpPacket::PictureLossIndication(p) => {
                out.extend_from_slice(&p.sender_ssrc.to_be_bytes());
                out.extend_from_slice(&p.media_ssrc.to_be_bytes());
            }
            RtcpPacket::ExtendedReport(p) => {
                out.extend_from_slice(&p.ssrc.to_be_bytes());
                for block in &p.blocks {
                    match block {
                        XrBlock::ReceiverReferenceTime { ntp_timestamp } => {
                            out.extend_from_slice(&[XR_RECEIVER_REFERENCE_TIME, 0, 0, 2]);
                            out.extend_from_slice(&ntp_timestamp.to_be_bytes());
                        }
                        XrBlock::Dlrr(items) => {
                            let words = u16::try_from(items.len() * 3)
                                .map_err(|_| BuildError::new("items", format!("{} sub-blocks are too many for one DLRR block", items.len())))?;
                            out.extend_from_slice(&[XR_DLRR, 0]);
                            out.extend_from_slice(&words.to_be_bytes());
                            for item in items {
                                for word in [item.ssrc, item.last_rr, item.delay_since_last_rr] {
                                    out.extend_from_slice(&word.to_be_bytes());
                                }
                            }
                        }
                        XrBlock::VoipMetrics(m) => {
                            out.extend_from_slice(&[XR_VOIP_METRICS, 0, 0, (VOIP_METRICS_LEN / 4) as u8]);
                            write_voip_metrics(m, out);
                        }
                        XrBlock::Raw { block_type, type_specific, data } => {
                            check_words("data", data)?;
                            let words = u16::try_from(data.len() / 4)
                                .map_err(|_| BuildError::new("data", format!("{} bytes is too long for an XR block", data.len())))?;
                            out.extend_from_slice(&[*block_type, *type_specific]);
                            out.extend_from_slice(&words.to_be_bytes());
                            out.extend_from_slice(data);
                        }
                    }
                }
            }
            RtcpPacket::Raw(p) => out.extend_from_slice(&p.body),
        }
        Ok(())
    }

    /// Appends this packet to `out`; on error `out` is left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        let start = out.len();
        let result = self.write_unchecked(out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_unchecked(&self, out: &mut Vec<u8>, start: usize) -> Result<(), BuildError> {
        let (packet_type, count) = self.type_and_count()?;
        out.extend_from_slice(&[0x80 | count, packet_type, 0, 0]);
        self.write_body(out)?;
        let unpadded = out.len() - start;
        let pad = (4 - unpadded % 4) % 4;
        if pad != 0 {
            out.resize(out.len() + pad - 1, 0);
            // 1..=3 by construction.
            out.push(pad as u8);
            out[start] |= 0x20;
        }
        let len = out.len() - start;
        let words = u16::try_from(len / 4 - 1)
            .map_err(|_| BuildError::new("length", format!("{len} bytes is too long for one RTCP packet")))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

/// Writes `packets` one after the other as a compound packet.
pub fn write_compound(packets: &[RtcpPacket], out: &mut Vec<u8>) -> Result<(), BuildError> {
    let start = out.len();
    for p in packets {
        if let Err(e) = p.write(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(packets: Vec<RtcpPacket>) -> Vec<u8> {
        let mut buf = Vec::new();
        write_compound(&packets, &mut buf).unwrap();
        assert_eq!(parse_compound(&buf).unwrap(), packets);
        buf
    }

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock { ssrc, fraction_lost: 12, cumulative_lost: lost, highest_sequence: 70000, jitter: 33, last_sr: 9, delay_since_last_sr: 65536 }
    }

    #[test]
    fn every_type_round_trips_in_one_compound_packet() {
        let buf = round_trip(vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp_timestamp: 0xE000_0000_8000_0000,
                rtp_timestamp: 160,
                packet_count: 5,
                octet_count: 800,
                reports: vec![block(2, -3), block(3, 0x7F_FFFF)],
                extension: vec![1, 2, 3, 4],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 4, reports: vec![], extension: vec![] }),
            RtcpPacket::SourceDescription(SourceDescription {
                chunks: vec![
                    SdesChunk { ssrc: 1, items: vec![SdesItem { kind: 1, value: b"alice@example.com".to_vec() }] },
                    SdesChunk { ssrc: 2, items: vec![] },
                ],
            }),
            RtcpPacket::Goodbye(Goodbye { sources: vec![1, 2], reason: Some(b"done".to_vec()) }),
            RtcpPacket::App(App { subtype: 3, ssrc: 1, name: *b"TEST", data: vec![0; 8] }),
            RtcpPacket::GenericNack(GenericNack {
                sender_ssrc: 1,
                media_ssrc: 2,
                entries: vec![NackEntry { pid: 100, blp: 0b101 }],
            }),
            RtcpPacket::PictureLossIndication(PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 }),
            RtcpPacket::ExtendedReport(ExtendedReport {
                ssrc: 1,
                blocks: vec![
                    XrBlock::VoipMetrics(VoipMetrics { ssrc: 2, signal_level: -20, noise_level: -70, mos_lq: 41, ..Default::default() }),
                    XrBlock::ReceiverReferenceTime { ntp_timestamp: 0xE000_0001_8000_0000 },
                    XrBlock::Dlrr(vec![DlrrItem { ssrc: 2, last_rr: 3, delay_since_last_rr: 4 }, DlrrItem::default()]),
                    XrBlock::Raw { block_type: 42, type_specific: 9, data: vec![0; 8] },
                ],
            }),
            RtcpPacket::Raw(RawPacket { packet_type: 210, count: 7, body: vec![9; 4] }),
            RtcpPacket::Raw(RawPacket { packet_type: PT_RTPFB, count: 15, body: vec![0; 12] }),
        ]);
        // SR header: V=2, RC=2, PT=200, length = 6 + 2*6 + 1 words - 1.
        assert_eq!(&buf[..4], &[0x82, 200, 0, 19]);
    }

    #[test]
    fn nack_entries_and_lost_list_agree() {
        let lost = [65530, 65531, 65535, 0, 9, 40, 40];
        let entries = GenericNack::entries_for(&lost);
        assert_eq!(entries, vec![NackEntry { pid: 65530, blp: 0b11_0001 | 1 << 14 }, NackEntry { pid: 40, blp: 0 }]);
        let nack = GenericNack { sender_ssrc: 0, media_ssrc: 0, entries };
        assert_eq!(nack.lost(), vec![65530, 65531, 65535, 0, 9, 40]);
    }

    #[test]
    fn bodies_that_are_not_whole_words_get_rtcp_padding() {
        let raw = RtcpPacket::Raw(RawPacket { packet_type: 241, count: 29, body: vec![1, 2, 0xff, 0xf7, 0, 0] });
        let buf = round_trip(vec![raw]);
        assert_eq!(buf, [0xbd, 241, 0, 2, 1, 2, 0xff, 0xf7, 0, 0, 0, 2]);
    }

    #[test]
    fn padding_is_removed_and_checked() {
        let mut buf = vec![0xA0, 201, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4];
        assert_eq!(parse_compound(&buf).unwrap(), vec![RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 7, ..Default::default() })]);
        buf[11] = 9;
        assert_eq!(parse_compound(&buf).unwrap_err().field, "padding");
    }

    #[test]
    fn framing_errors_point_at_the_field() {
        let mut buf = Vec::new();
        write_compound(&[RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 1, reports: vec![block(1, 1)], extension: vec![] })], &mut buf).unwrap();
        for n in 0..buf.len() {
            assert!(parse_compound(&buf[..n]).is_err(), "prefix of {n}");
        }
        let mut wrong_count = buf.clone();
        wrong_count[0] = 0x82;
        let e = parse_compound(&wrong_count).unwrap_err();
        assert_eq!((e.field, e.offset), ("report block", 32));
        let mut two = buf.clone();
        two.extend_from_slice(&[0x40, 201, 0, 0]);
        assert_eq!(parse_compound(&two).unwrap_err().offset, buf.len());
    }

    #[test]
    fn builder_rejects_what_the_wire_cannot_carry() {
        let mut out = vec![7];
        let many = RtcpPacket::Goodbye(Goodbye { sources: vec![0; 32], reason: None });
        assert_eq!(many.write(&mut out).unwrap_err().field, "sources");
        let far = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0, reports: vec![block(0, 1 << 23)], extension: vec![] });
        assert_eq!(far.write(&mut out).unwrap_err().field, "cumulative_lost");
        assert_eq!(out, vec![7]);
    }
}
