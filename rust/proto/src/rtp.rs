//! RTP packets (RFC 3550 section 5.1), read in place.
//!
//! Parsing is split in two so that SRTP can use the first half: the header
//! ([`RtpHeader::parse`]) covers the fixed header, the CSRC list and the
//! extension block, which SRTP leaves in the clear; the packet
//! ([`RtpPacket::parse`]) also removes padding, which SRTP encrypts.

use crate::error::{Layer, ParseError};

/// The RTP version this crate speaks (RFC 3550).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// The header extension block of an RTP packet (RFC 3550 section 5.3.1),
/// still undecoded: `profile` says how `data` is laid out (0xBEDE and
/// 0x100x are the RFC 8285 one-byte and two-byte forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionBlock<'a> {
    /// The 16-bit "defined by profile" field.
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes, without its 4-byte header.
    pub data: &'a [u8],
}

/// The header of an RTP packet: fixed part, CSRC list and extension block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    /// The P bit: the packet ends in padding (encrypted under SRTP).
    pub padding: bool,
    /// The M bit; its meaning is set by the profile (start of a talk spurt
    /// for audio).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp, in the clock rate of the payload format.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The CSRC list as it is on the wire: `4 * CC` bytes, big-endian.
    pub csrc_bytes: &'a [u8],
    /// The header extension, when the X bit is set.
    pub extension: Option<ExtensionBlock<'a>>,
    /// Bytes from the start of the packet to the first payload byte.
    pub len: usize,
}

fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

impl<'a> RtpHeader<'a> {
    /// Parses the header at the start of `buf`; the rest of `buf` is payload
    /// (and padding, when the P bit is set).
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        if buf.len() < FIXED_HEADER_LEN {
            return Err(ParseError::truncated(Layer::Rtp, "header", 0, FIXED_HEADER_LEN, buf.len()));
        }
        let version = buf[0] >> 6;
        if version != RTP_VERSION {
            return Err(ParseError::new(Layer::Rtp, "version", 0, format!("expected 2, got {version}")));
        }
        let csrc_count = usize::from(buf[0] & 0x0f);
        let csrc_end = FIXED_HEADER_LEN + 4 * csrc_count;
        if buf.len() < csrc_end {
            return Err(ParseError::truncated(Layer::Rtp, "csrc", FIXED_HEADER_LEN, 4 * csrc_count, buf.len()));
        }
        let mut len = csrc_end;
        let extension = if buf[0] & 0x10 != 0 {
            if buf.len() < csrc_end + 4 {
                return Err(ParseError::truncated(Layer::Rtp, "extension", csrc_end, 4, buf.len()));
            }
            let words = usize::from(be16(buf, csrc_end + 2));
            let data_start = csrc_end + 4;
            let data_end = data_start + 4 * words;
            if buf.len() < data_end {
                return Err(ParseError::new(
                    Layer::Rtp,
                    "extension length",
                    csrc_end + 2,
                    format!("{words} words of extension data run past the end of the {}-byte packet", buf.len()),
                ));
            }
            len = data_end;
            Some(ExtensionBlock { profile: be16(buf, csrc_end), data: &buf[data_start..data_end] })
        } else {
            None
        };
        Ok(RtpHeader {
            padding: buf[0] & 0x20 != 0,
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence_number: be16(buf, 2),
            timestamp: be32(buf, 4),
            ssrc: be32(buf, 8),
            csrc_bytes: &buf[FIXED_HEADER_LEN..csrc_end],
            extension,
            len,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrc_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// A whole RTP packet: its header, its payload and the padding length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header (fixed part, CSRCs, extension).
    pub header: RtpHeader<'a>,
    /// The payload, without padding.
    pub payload: &'a [u8],
    /// Number of padding bytes at the end, including the count byte itself;
    /// 0 when the P bit is clear.
    pub padding_len: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses a complete RTP packet.
    ///
    /// Rejects a padding count of zero and one that reaches into the header,
    /// as RFC 3550 section 5.1 requires of a valid packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let header = RtpHeader::parse(buf)?;
        let mut end = buf.len();
        let mut padding_len = 0;
        if header.padding {
            let last = buf.len() - 1;
            if buf.len() == header.len {
                return Err(ParseError::new(Layer::Rtp, "padding", last, "P bit set but the packet has no payload"));
            }
            padding_len = buf[last];
            if padding_len == 0 {
                return Err(ParseError::new(Layer::Rtp, "padding", last, "padding count is 0"));
            }
            if usize::from(padding_len) > buf.len() - header.len {
                return Err(ParseError::new(
                    Layer::Rtp,
                    "padding",
                    last,
                    format!("padding count {padding_len} exceeds the {} bytes after the header", buf.len() - header.len),
                ));
            }
            end -= usize::from(padding_len);
        }
        Ok(RtpPacket { payload: &buf[header.len..end], header, padding_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![first, 0x80 | 8, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef];
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn parses_fixed_header_and_payload() {
        let buf = packet(0x80, b"abc");
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(p.header.sequence_number, 0x1234);
        assert_eq!(p.header.timestamp, 320);
        assert_eq!(p.header.ssrc, 0xdeadbeef);
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.header.len, 12);
    }

    #[test]
    fn csrcs_and_extension_are_located() {
        let mut rest = vec![0, 0, 0, 1, 0, 0, 0, 2];
        rest.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        rest.extend_from_slice(b"pp");
        let buf = packet(0x92, &rest);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.header.csrcs().collect::<Vec<_>>(), vec![1, 2]);
        let ext = p.header.extension.unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, &[0x10, 0xaa, 0, 0]);
        assert_eq!(p.payload, b"pp");
    }

    #[test]
    fn padding_is_removed_and_checked() {
        let p = packet(0xa0, &[1, 2, 0, 0, 3]);
        assert_eq!(RtpPacket::parse(&p).unwrap().payload, &[1, 2]);
        let zero = packet(0xa0, &[1, 0]);
        assert_eq!(RtpPacket::parse(&zero).unwrap_err().field, "padding");
        let too_long = packet(0xa0, &[1, 3]);
        assert_eq!(RtpPacket::parse(&too_long).unwrap_err().offset, 13);
        let empty = packet(0xa0, &[]);
        assert_eq!(RtpPacket::parse(&empty).unwrap_err().field, "padding");
        // The header alone does not look at padding: SRTP encrypts it.
        assert!(RtpHeader::parse(&zero).is_ok());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut rest = vec![0, 0, 0, 1];
        rest.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        let buf = packet(0x91, &rest);
        assert!(RtpPacket::parse(&buf).is_ok());
        for n in 0..buf.len() {
            assert!(RtpPacket::parse(&buf[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn wrong_version_names_the_field() {
        let e = RtpPacket::parse(&packet(0x40, b"")).unwrap_err();
        assert_eq!((e.layer, e.field, e.offset), (Layer::Rtp, "version", 0));
    }
}
