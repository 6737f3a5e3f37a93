//! Reading UDP datagrams out of packet captures, sans-IO: the caller feeds
//! the bytes of a pcap or pcapng file in chunks of any size and gets each
//! frame's timestamp and UDP payload back.
//!
//! The capture containers are read with the `pcap-parser` crate; the link
//! (Ethernet with VLAN tags, Linux cooked v1/v2, BSD loopback, raw IP), IPv4,
//! IPv6 and UDP headers are read here. Frames that are not UDP, IP fragments
//! and frames whose headers are broken are reported as such, not as errors:
//! a capture holds all sorts of traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pcap_parser::pcapng::Block;
use pcap_parser::{
    parse_block_be, parse_block_le, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header, PcapError,
};

use crate::error::{Layer, ParseError};

/// Link-layer types this module decodes (tcpdump.org LINKTYPE_ values).
mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// One frame of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The LINKTYPE_ of `data`.
    pub linktype: i32,
    /// The captured bytes, from the link-layer header on.
    pub data: &'a [u8],
}

/// A UDP datagram found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Source address and port.
    pub source: SocketAddr,
    /// Destination address and port.
    pub destination: SocketAddr,
    /// The UDP payload (trimmed to the UDP length field).
    pub payload: &'a [u8],
}

/// What a frame holds, as far as this module is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A UDP datagram.
    Udp(Datagram<'a>),
    /// An IP fragment: its UDP header, if any, is not reassembled.
    Fragment,
    /// Something other than UDP over IP (ARP, TCP, ICMP, an unknown link).
    NotUdp,
    /// Headers that contradict themselves or are cut short; the reason.
    Malformed(&'static str),
}

/// How the container is laid out, once its header has been read.
#[derive(Debug, Clone)]
enum Format {
    /// Nothing read yet.
    Unknown,
    /// Classic pcap.
    Pcap { big_endian: bool, nanoseconds: bool, linktype: i32 },
    /// pcapng: the byte order of the current section and its interfaces.
    PcapNg { big_endian: bool, interfaces: Vec<Interface> },
}

/// A pcapng interface: its link type and timestamp units.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// pcapng's section header block type, the first four bytes of the file.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// A pcapng block's type and its length, twice: the least a block can be.
const MIN_PCAPNG_BLOCK_LEN: u32 = 12;

/// Reads frames from a pcap or pcapng file fed in pieces; see the module
/// documentation.
#[derive(Debug, Clone)]
pub struct CaptureReader {
    buffer: Vec<u8>,
    /// File offset of `buffer[0]`, for error messages.
    buffer_offset: u64,
    format: Format,
}

impl Default for CaptureReader {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a pcap-parser error only means "feed me more".
fn needs_more<I>(e: &pcap_parser::nom::Err<PcapError<I>>) -> bool {
    use pcap_parser::nom::Err;
    matches!(e, Err::Incomplete(_) | Err::Error(PcapError::Incomplete(_)) | Err::Failure(PcapError::Incomplete(_)))
}

impl CaptureReader {
    /// A reader at the start of a file.
    pub fn new() -> Self {
        CaptureReader { buffer: Vec::new(), buffer_offset: 0, format: Format::Unknown }
    }

    fn error(&self, at: usize, field: &'static str, reason: impl Into<String>) -> ParseError {
        // A capture offset beyond usize only happens on 32-bit hosts with
        // >4 GiB files; saturate rather than wrap.
        let offset = usize::try_from(self.buffer_offset + at as u64).unwrap_or(usize::MAX);
        ParseError::new(Layer::Capture, field, offset, reason)
    }

    /// Appends `chunk` and calls `on_frame` for every frame now complete.
    /// Fails on a file that is not pcap or pcapng, or whose framing is
    /// broken; frames already delivered stay delivered.
    pub fn feed(&mut self, chunk: &[u8], mut on_frame: impl FnMut(Frame<'_>)) -> Result<(), ParseError> {
        self.buffer.extend_from_slice(chunk);
        let mut at = 0;
        let result = loop {
            match self.next_frame(at) {
                Ok(Some((next, frame))) => {
                    if let Some(frame) = frame {
                        on_frame(Frame { timestamp_ns: frame.0, linktype: frame.1, data: &self.buffer[frame.2.clone()] });
                    }
                    at = next;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buffer.drain(..at);
        self.buffer_offset += at as u64;
        result
    }

    /// Checks that the file ended on a frame boundary.
    pub fn finish(&self) -> Result<(), ParseError> {
        if matches!(self.format, Format::Unknown) {
            return Err(self.error(0, "header", "empty file: neither pcap nor pcapng"));
        }
        if !self.buffer.is_empty() {
            return Err(self.error(0, "frame", format!("the file ends inside a frame ({} bytes left over)", self.buffer.len())));
        }
        Ok(())
    }

    /// Reads the next block at `at`: `Ok(None)` when more bytes are needed,
    /// otherwise where the next block starts and the frame, if this block
    /// was one (time, link type, range of its data in the buffer).
    #[allow(clippy::type_complexity)]
    fn next_frame(&mut self, at: usize) -> Result<Option<(usize, Option<(i64, i32, std::ops::Range<usize>)>)>, ParseError> {
        let input = &self.buffer[at..];
        if input.is_empty() {
            return Ok(None);
        }
        let base = self.buffer.as_ptr() as usize;
        let range_of = |data: &[u8]| {
            let start = data.as_ptr() as usize - base;
            start..start + data.len()
        };
        match &mut self.format {
            Format::Unknown => {
                if input.len() < 4 {
                    return Ok(None);
                }
                if input[..4] == PCAPNG_MAGIC {
                    self.format = Format::PcapNg { big_endian: false, interfaces: Vec::new() };
                    return Ok(Some((at, None)));
                }
                match parse_pcap_header(input) {
                    Ok((rest, header)) => {
                        self.format = Format::Pcap {
                            big_endian: header.is_bigendian(),
                            nanoseconds: header.is_nanosecond_precision(),
                            linktype: header.network.0,
                        };
                        Ok(Some((self.buffer.len() - rest.len(), None)))
                    }
                    Err(e) if needs_more(&e) => Ok(None),
                    Err(_) => Err(self.error(at, "header", "neither a pcap nor a pcapng file")),
                }
            }
            Format::Pcap { big_endian, nanoseconds, linktype } => {
                let parsed = if *big_endian { parse_pcap_frame_be(input) } else { parse_pcap_frame(input) };
                match parsed {
                    Ok((rest, block)) => {
                        let fraction_ns = if *nanoseconds { i64::from(block.ts_usec) } else { i64::from(block.ts_usec) * 1000 };
                        let ts = i64::from(block.ts_sec) * 1_000_000_000 + fraction_ns;
                        let next = self.buffer.len() - rest.len();
                        Ok(Some((next, Some((ts, *linktype, range_of(block.data))))))
                    }
                    Err(e) if needs_more(&e) => Ok(None),
                    Err(_) => Err(self.error(at, "frame", "broken pcap record header")),
                }
            }
            Format::PcapNg { big_endian, interfaces } => {
                // pcap-parser 0.17 subtracts 12 from a block's length before
                // checking it (an overflow panic under overflow checks), so
                // lengths that cannot hold a block's framing stop here.
                if input.len() >= 8 && input[..4] != PCAPNG_MAGIC {
                    let raw = [input[4], input[5], input[6], input[7]];
                    let len = if *big_endian { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) };
                    if len < MIN_PCAPNG_BLOCK_LEN {
                        return Err(self.error(at + 4, "block length", format!("{len} bytes cannot hold a pcapng block")));
                    }
                }
                let parsed = if *big_endian { parse_block_be(input) } else { parse_block_le(input) };
                let (rest, block) = match parsed {
                    Ok(ok) => ok,
                    // A section header in the other byte order starts a new section.
                    Err(e) if needs_more(&e) => return Ok(None),
                    Err(_) => match if *big_endian { parse_block_le(input) } else { parse_block_be(input) } {
                        Ok(ok @ (_, Block::SectionHeader(_))) => ok,
                        Err(e) if needs_more(&e) => return Ok(None),
                        _ => return Err(self.error(at, "block", "broken pcapng block")),
                    },
                };
                let next = self.buffer.len() - rest.len();
                let frame = match block {
                    Block::SectionHeader(shb) => {
                        *big_endian = shb.big_endian();
                        interfaces.clear();
                        None
                    }
                    Block::InterfaceDescription(idb) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            // An invalid resolution leaves timestamps unusable,
                            // not the packets: fall back to the default (µs).
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset: idb.ts_offset(),
                        });
                        None
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(interface) = interfaces.get(epb.if_id as usize).copied() else {
                            return Err(self.error(at, "interface", format!("packet on undeclared interface {}", epb.if_id)));
                        };
                        let units = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
                        let ns = u128::from(units) * 1_000_000_000 / u128::from(interface.resolution);
                        let ts = i64::try_from(ns).unwrap_or(i64::MAX).saturating_add(interface.offset.saturating_mul(1_000_000_000));
                        let len = (epb.caplen as usize).min(epb.data.len());
                        Some((ts, interface.linktype, range_of(&epb.data[..len])))
                    }
                    Block::SimplePacket(spb) => {
                        let Some(interface) = interfaces.first().copied() else {
                            return Err(self.error(at, "interface", "simple packet before any interface"));
                        };
                        Some((0, interface.linktype, range_of(spb.data)))
                    }
                    _ => None,
                };
                Ok(Some((next, frame)))
            }
        }
    }
}

fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Finds the UDP datagram in a frame, if there is one.
pub fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    let data = frame.data;
    let ip = match frame.linktype {
        linktype::ETHERNET => {
            let mut at = 12;
            loop {
                if data.len() < at + 2 {
                    return Decoded::Malformed("ethernet header cut short");
                }
                match be16(data, at) {
                    // 802.1Q and 802.1ad tags: skip the tag control field.
                    0x8100 | 0x88A8 => at += 4,
                    0x0800 | 0x86DD => break &data[at + 2..],
                    _ => return Decoded::NotUdp,
                }
            }
        }
        linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Decoded::Malformed("linux cooked header cut short");
            }
            &data[16..]
        }
        linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Decoded::Malformed("linux cooked v2 header cut short");
            }
            &data[20..]
        }
        linktype::NULL | linktype::LOOP => {
            if data.len() < 4 {
                return Decoded::Malformed("loopback header cut short");
            }
            &data[4..]
        }
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => data,
        _ => return Decoded::NotUdp,
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(ip),
        Some(6) => decode_ipv6(ip),
        _ => Decoded::NotUdp,
    }
}

/// IP protocol number of UDP.
const UDP: u8 = 17;

fn decode_ipv4(ip: &[u8]) -> Decoded<'_> {
    if ip.len() < 20 {
        return Decoded::Malformed("ipv4 header cut short");
    }
    let header_len = usize::from(ip[0] & 0x0F) * 4;
    let total_len = usize::from(be16(ip, 2));
    if header_len < 20 || total_len < header_len || ip.len() < header_len {
        return Decoded::Malformed("ipv4 lengths contradict each other");
    }
    if ip[9] != UDP {
        return Decoded::NotUdp;
    }
    // More-fragments set or a non-zero offset: part of a fragmented datagram.
    if be16(ip, 6) & 0x3FFF != 0 {
        return Decoded::Fragment;
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    // Ethernet pads short frames; the IP length says where the packet ends.
    decode_udp(src, dst, &ip[header_len..total_len.min(ip.len())])
}

fn decode_ipv6(ip: &[u8]) -> Decoded<'_> {
    if ip.len() < 40 {
        return Decoded::Malformed("ipv6 header cut short");
    }
    let payload_len = usize::from(be16(ip, 4));
    let end = (40 + payload_len).min(ip.len());
    let addr = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&ip[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let mut next_header = ip[6];
    let mut at = 40;
    loop {
        match next_header {
            UDP => return decode_udp(addr(8), addr(24), &ip[at.min(end)..end]),
            // Hop-by-hop, routing and destination options: skip them.
            0 | 43 | 60 => {
                if end < at + 2 {
                    return Decoded::Malformed("ipv6 extension header cut short");
                }
                next_header = ip[at];
                at += (usize::from(ip[at + 1]) + 1) * 8;
            }
            44 => return Decoded::Fragment,
            _ => return Decoded::NotUdp,
        }
    }
}

fn decode_udp(src: IpAddr, dst: IpAddr, udp: &[u8]) -> Decoded<'_> {
    if udp.len() < 8 {
        return Decoded::Malformed("udp header cut short");
    }
    let len = usize::from(be16(udp, 4));
    if len < 8 || len > udp.len() {
        return Decoded::Malformed("udp length does not match the packet");
    }
    Decoded::Udp(Datagram {
        source: SocketAddr::new(src, be16(udp, 0)),
        destination: SocketAddr::new(dst, be16(udp, 2)),
        payload: &udp[8..len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut v = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, UDP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        v.extend_from_slice(&[0x13, 0x88, 0x13, 0x8a, 0, (8 + payload.len()) as u8, 0, 0]);
        v.extend_from_slice(payload);
        v
    }

    fn pcap(linktype: u32, frames: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut v = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        for word in [0u32, 0, 65535, linktype] {
            v.extend_from_slice(&word.to_le_bytes());
        }
        for (sec, usec, data) in frames {
            for word in [*sec, *usec, data.len() as u32, data.len() as u32] {
                v.extend_from_slice(&word.to_le_bytes());
            }
            v.extend_from_slice(data);
        }
        v
    }

    #[test]
    fn pcap_fed_byte_by_byte_gives_the_same_frames() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ipv4_udp(b"hello"));
        let file = pcap(1, &[(1, 500_000, eth.clone()), (2, 0, eth)]);
        let mut whole = Vec::new();
        CaptureReader::new().feed(&file, |f| whole.push((f.timestamp_ns, f.data.to_vec()))).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].0, 1_500_000_000);
        let mut reader = CaptureReader::new();
        let mut pieces = Vec::new();
        for b in &file {
            reader.feed(std::slice::from_ref(b), |f| pieces.push((f.timestamp_ns, f.data.to_vec()))).unwrap();
        }
        reader.finish().unwrap();
        assert_eq!(pieces, whole);
        let frame = Frame { timestamp_ns: 0, linktype: 1, data: &whole[0].1 };
        let Decoded::Udp(d) = decode(&frame) else { panic!("not udp: {:?}", decode(&frame)) };
        assert_eq!((d.source.port(), d.destination.port(), d.payload), (5000, 5002, &b"hello"[..]));
    }

    fn ipv6_udp_after_a_hop_by_hop_header(payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let mut v = vec![0x60, 0, 0, 0, 0, (8 + udp_len) as u8, 0, 64];
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v.extend_from_slice(&[0; 11]);
        v.push(1);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v.extend_from_slice(&[0; 11]);
        v.push(2);
        // Hop-by-hop options: next header UDP, 8 bytes long.
        v.extend_from_slice(&[UDP, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&[0x0f, 0xa0, 0x13, 0x88, 0, udp_len as u8, 0, 0]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn every_link_type_leads_to_the_same_datagram() {
        let ip4 = ipv4_udp(b"rtp!");
        let ip6 = ipv6_udp_after_a_hop_by_hop_header(b"rtp!");
        let with = |prefix: &[u8], ip: &[u8]| [prefix, ip].concat();
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0; 18]);
        let cases = [
            (linktype::ETHERNET, with(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd], &ip6)),
            (linktype::LINUX_SLL, with(&sll, &ip4)),
            (linktype::LINUX_SLL2, with(&sll2, &ip6)),
            (linktype::NULL, with(&2u32.to_le_bytes(), &ip4)),
            (linktype::LOOP, with(&2u32.to_be_bytes(), &ip4)),
            (linktype::IPV4, ip4.clone()),
            (linktype::IPV6, ip6.clone()),
        ];
        for (linktype, data) in &cases {
            let frame = Frame { timestamp_ns: 0, linktype: *linktype, data };
            let Decoded::Udp(d) = decode(&frame) else { panic!("linktype {linktype}: {:?}", decode(&frame)) };
            assert_eq!(d.payload, b"rtp!", "linktype {linktype}");
            if d.source.is_ipv6() {
                assert_eq!((d.source.port(), d.destination.to_string()), (4000, "[2001:db8::2]:5000".to_string()));
            }
        }
    }

    #[test]
    fn fragments_other_protocols_and_broken_headers_are_told_apart() {
        let frame = |linktype, data: &'static [u8]| Frame { timestamp_ns: 0, linktype, data };
        let mut fragment = ipv4_udp(b"x");
        fragment[6] = 0x20;
        assert_eq!(decode(&Frame { timestamp_ns: 0, linktype: linktype::RAW, data: &fragment }), Decoded::Fragment);
        let mut tcp = ipv4_udp(b"x");
        tcp[9] = 6;
        assert_eq!(decode(&Frame { timestamp_ns: 0, linktype: linktype::RAW, data: &tcp }), Decoded::NotUdp);
        assert!(matches!(decode(&frame(linktype::RAW, &[0x45, 0, 0])), Decoded::Malformed(_)));
        assert_eq!(decode(&frame(147, &[1, 2, 3])), Decoded::NotUdp);
        let short_udp = ipv4_udp(b"abc");
        assert!(matches!(decode(&Frame { timestamp_ns: 0, linktype: linktype::RAW, data: &short_udp[..30] }), Decoded::Malformed(_)));
    }

    #[test]
    fn pcapng_blocks_too_short_for_their_framing_are_errors() {
        // A section header, then a process information block claiming 1 byte
        // (found by the capture fuzz target: pcap-parser would underflow).
        let mut file = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        file.extend_from_slice(&[0xff; 8]);
        file.extend_from_slice(&28u32.to_le_bytes());
        file.extend_from_slice(&[0x00, 0x00, 0x00, 0x80, 1, 0, 0, 0, 0, 0, 0, 0]);
        let e = CaptureReader::new().feed(&file, |_| {}).unwrap_err();
        assert_eq!((e.field, e.offset), ("block length", 32));
    }

    #[test]
    fn garbage_files_and_truncated_files_are_errors() {
        let mut r = CaptureReader::new();
        assert_eq!(r.feed(b"GIF89a..", |_| {}).unwrap_err().field, "header");
        let file = pcap(101, &[(0, 0, ipv4_udp(b"abc"))]);
        let mut r = CaptureReader::new();
        r.feed(&file[..file.len() - 1], |_| {}).unwrap();
        assert_eq!(r.finish().unwrap_err().field, "frame");
        assert_eq!(CaptureReader::new().finish().unwrap_err().field, "header");
    }
}
