//! RTP stream analysis of a packet capture, sans-IO: the bytes of a pcap or
//! pcapng file go in (in chunks), a report comes out with one entry per RTP
//! stream (5-tuple and SSRC) and the RTCP seen about it.
//!
//! Every UDP datagram is classified on its own (RFC 5761 rules, see
//! [`crate::demux`]); RTP candidates are grouped into streams, and a stream
//! only counts once it has shown [`crate::stats::MIN_SEQUENTIAL`] consecutive
//! sequence numbers, so stray datagrams that happen to look like RTP end up
//! in the "skipped" count instead of as bogus streams.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::capture::{decode, CaptureReader, Decoded};
use crate::demux::{classify, PacketKind};
use crate::error::ParseError;
use crate::rtcp::{parse_compound, ReportBlock, RtcpPacket};
use crate::rtp::RtpPacket;
use crate::stats::ReceiveStats;

/// Name and clock rate of the static payload types (RFC 3551 section 6).
pub fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        // G.722's RTP clock is 8 kHz although it samples at 16 kHz (RFC 3551 4.5.2).
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        25 => ("CelB", 90000),
        26 => ("JPEG", 90000),
        28 => ("nv", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        33 => ("MP2T", 90000),
        34 => ("H263", 90000),
        _ => return None,
    })
}

/// One RTP stream: who sends to whom, with which SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Sender's address and port.
    pub source: SocketAddr,
    /// Receiver's address and port.
    pub destination: SocketAddr,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// The RTCP seen about one SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcpSeen {
    /// Sender reports sent by this SSRC.
    pub sender_reports: u64,
    /// Reception report blocks about this SSRC (in SRs and RRs from anyone).
    pub report_blocks: u64,
    /// The last of those blocks.
    pub last_report: Option<ReportBlock>,
}

/// What the analysis found about one stream.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// The stream.
    pub key: StreamKey,
    /// Payload type of its first packet.
    pub payload_type: u8,
    /// Every payload type seen, in order of first appearance.
    pub payload_types: Vec<u8>,
    /// Capture time of the first and last packet, ns since the Unix epoch.
    pub first_ns: i64,
    /// See `first_ns`.
    pub last_ns: i64,
    /// Payload bytes received.
    pub payload_bytes: u64,
    /// The receive statistics.
    pub stats: ReceiveStats,
    /// RTCP about this SSRC.
    pub rtcp: RtcpSeen,
}

/// What the capture held besides RTP streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames in the capture.
    pub frames: u64,
    /// UDP datagrams.
    pub udp: u64,
    /// RTP packets in the reported streams.
    pub rtp: u64,
    /// Well-formed RTCP compound packets.
    pub rtcp: u64,
    /// UDP datagrams that were neither (garbage, other protocols, RTCP that
    /// does not parse, RTP-looking datagrams that never formed a stream).
    pub skipped_udp: u64,
    /// Frames that are not UDP over IP.
    pub not_udp: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// Frames whose link, IP or UDP headers are broken.
    pub malformed: u64,
}

/// The result of an analysis.
#[derive(Debug, Clone)]
pub struct Report {
    /// The streams, in order of their first packet.
    pub streams: Vec<StreamReport>,
    /// Everything else.
    pub counters: Counters,
}

/// Analyses a capture fed in chunks; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Analyzer {
    reader: CaptureReader,
    clock_rates: HashMap<u8, u32>,
    index: HashMap<StreamKey, usize>,
    streams: Vec<StreamReport>,
    rtcp: HashMap<u32, RtcpSeen>,
    counters: Counters,
}

impl Analyzer {
    /// An analyzer; `clock_rates` gives the clock of dynamic payload types
    /// (from SDP), without which their jitter cannot be computed.
    pub fn new(clock_rates: HashMap<u8, u32>) -> Self {
        Analyzer { clock_rates, ..Default::default() }
    }

    /// Reads the next piece of the capture file.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ParseError> {
        let Analyzer { reader, clock_rates, index, streams, rtcp, counters } = self;
        reader.feed(chunk, |frame| {
            counters.frames += 1;
            let datagram = match decode(&frame) {
                Decoded::Udp(d) => d,
                Decoded::Fragment => return counters.fragments += 1,
                Decoded::NotUdp => return counters.not_udp += 1,
                Decoded::Malformed(_) => return counters.malformed += 1,
            };
            counters.udp += 1;
            match classify(datagram.payload) {
                PacketKind::Rtp => {
                    let Ok(packet) = RtpPacket::parse(datagram.payload) else {
                        return counters.skipped_udp += 1;
                    };
                    let h = &packet.header;
                    let key = StreamKey { source: datagram.source, destination: datagram.destination, ssrc: h.ssrc };
                    let i = *index.entry(key).or_insert_with(|| {
                        let clock = clock_rates
                            .get(&h.payload_type)
                            .copied()
                            .or_else(|| static_payload_type(h.payload_type).map(|(_, rate)| rate));
                        streams.push(StreamReport {
                            key,
                            payload_type: h.payload_type,
                            payload_types: Vec::new(),
                            first_ns: frame.timestamp_ns,
                            last_ns: frame.timestamp_ns,
                            payload_bytes: 0,
                            stats: ReceiveStats::new(clock),
                            rtcp: RtcpSeen::default(),
                        });
                        streams.len() - 1
                    });
                    let stream = &mut streams[i];
                    if !stream.payload_types.contains(&h.payload_type) {
                        stream.payload_types.push(h.payload_type);
                    }
                    stream.last_ns = frame.timestamp_ns;
                    stream.payload_bytes += packet.payload.len() as u64;
                    stream.stats.on_packet(h.sequence_number, h.timestamp, h.marker, frame.timestamp_ns);
                }
                PacketKind::Rtcp => match parse_compound(datagram.payload) {
                    Ok(packets) => {
                        counters.rtcp += 1;
                        for packet in &packets {
                            note_rtcp(rtcp, packet);
                        }
                    }
                    Err(_) => counters.skipped_udp += 1,
                },
                _ => counters.skipped_udp += 1,
            }
        })
    }

    /// Ends the capture and returns the report.
    pub fn finish(self) -> Result<Report, ParseError> {
        self.reader.finish()?;
        let mut counters = self.counters;
        let mut streams = Vec::with_capacity(self.streams.len());
        for mut stream in self.streams {
            if stream.stats.is_validated() {
                counters.rtp += stream.stats.packets();
                stream.rtcp = self.rtcp.get(&stream.key.ssrc).copied().unwrap_or_default();
                streams.push(stream);
            } else {
                counters.skipped_udp += stream.stats.packets();
            }
        }
        Ok(Report { streams, counters })
    }
}

fn note_rtcp(seen: &mut HashMap<u32, RtcpSeen>, packet: &RtcpPacket) {
    let blocks = match packet {
        RtcpPacket::SenderReport(sr) => {
            seen.entry(sr.ssrc).or_default().sender_reports += 1;
            &sr.reports
        }
        RtcpPacket::ReceiverReport(rr) => &rr.reports,
        _ => return,
    };
    for block in blocks {
        let entry = seen.entry(block.ssrc).or_default();
        entry.report_blocks += 1;
        entry.last_report = Some(*block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_payload_types_name_their_codec() {
        assert_eq!(static_payload_type(0), Some(("PCMU", 8000)));
        assert_eq!(static_payload_type(9), Some(("G722", 8000)));
        assert_eq!(static_payload_type(96), None);
    }
}
