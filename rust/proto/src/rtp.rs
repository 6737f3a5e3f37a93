//! RTP packets (RFC 3550 section 5.1), read in place.
//!
//! Parsing is split in two so that SRTP can use the first half: the header
//! ([`RtpHeader::parse`]) covers the fixed header, the CSRC list and the
//! extension block, which SRTP leaves in the clear; the packet
//! ([`RtpPacket::parse`]) also removes padding, which SRTP encrypts.

use crate::error::{BuildError, Layer, ParseError};

/// The RTP version this crate speaks (RFC 3550).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// The "defined by profile" value of the RFC 8285 one-byte header form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// The RFC 8285 two-byte header form: the profile is `0x100` in its top 12
/// bits and four application-defined bits ("appbits") below.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;
/// Mask selecting the top 12 bits of a two-byte-form profile.
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
/// Most extension data a packet can carry: the length field counts 32-bit words.
pub const MAX_EXTENSION_DATA_LEN: usize = 4 * 0xFFFF;

/// The header extension block of an RTP packet (RFC 3550 section 5.3.1):
/// `profile` says how `data` is laid out (0xBEDE and 0x100x are the RFC 8285
/// one-byte and two-byte forms, whose elements [`ExtensionBlock::elements`]
/// reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionBlock<'a> {
    /// The 16-bit "defined by profile" field.
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes, without its 4-byte header.
    pub data: &'a [u8],
    /// Offset of `data` in the packet it was parsed from, so that errors in
    /// the elements point into the packet.
    pub data_offset: usize,
}

/// The layout of an extension block's data, from its profile field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// RFC 8285 one-byte headers: ids 1..=14, 1..=16 bytes each.
    OneByte,
    /// RFC 8285 two-byte headers: ids 1..=255, 0..=255 bytes each, with four
    /// application bits in the profile.
    TwoByte {
        /// The low four bits of the profile field.
        appbits: u8,
    },
    /// Any other profile: the data is opaque to this crate.
    Other(u16),
}

impl ExtensionForm {
    /// The form a profile field announces.
    pub fn of(profile: u16) -> Self {
        if profile == ONE_BYTE_PROFILE {
            ExtensionForm::OneByte
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            ExtensionForm::TwoByte { appbits: (profile & 0x0F) as u8 }
        } else {
            ExtensionForm::Other(profile)
        }
    }

    /// The profile field that announces this form.
    pub fn profile(self) -> u16 {
        match self {
            ExtensionForm::OneByte => ONE_BYTE_PROFILE,
            ExtensionForm::TwoByte { appbits } => TWO_BYTE_PROFILE | u16::from(appbits & 0x0F),
            ExtensionForm::Other(profile) => profile,
        }
    }
}

/// One RFC 8285 header extension element: a local id and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// The local identifier negotiated in SDP (`a=extmap`).
    pub id: u8,
    /// The element's value.
    pub data: &'a [u8],
}

impl<'a> ExtensionBlock<'a> {
    /// How the data is laid out.
    pub fn form(&self) -> ExtensionForm {
        ExtensionForm::of(self.profile)
    }

    /// The RFC 8285 elements, in wire order, skipping padding. Yields nothing
    /// for profiles other than the two RFC 8285 forms, and stops after the
    /// first error (an element running past the end of the block).
    pub fn elements(&self) -> ExtensionElements<'a> {
        let two_byte = match self.form() {
            ExtensionForm::OneByte => false,
            ExtensionForm::TwoByte { .. } => true,
            ExtensionForm::Other(_) => {
                return ExtensionElements { data: &[], pos: 0, two_byte: false, data_offset: self.data_offset }
            }
        };
        ExtensionElements { data: self.data, pos: 0, two_byte, data_offset: self.data_offset }
    }

    /// The value of the first element with local id `id`, if any (and if the
    /// elements before it are well formed).
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        self.elements().map_while(Result::ok).find(|e| e.id == id).map(|e| e.data)
    }

    /// Checks that every RFC 8285 element lies inside the block.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.elements().try_for_each(|e| e.map(drop))
    }
}

/// Iterator over the elements of an RFC 8285 extension block; see
/// [`ExtensionBlock::elements`].
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    data: &'a [u8],
    pos: usize,
    two_byte: bool,
    data_offset: usize,
}

/// The one-byte form's id that ends element processing (RFC 8285 section 4.2).
const ONE_BYTE_STOP_ID: u8 = 15;

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = Result<ExtensionElement<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let at = self.pos;
            let first = *self.data.get(at)?;
            // Id 0 is a padding byte in both forms; like libwebrtc, skip one
            // byte whatever its length nibble says.
            if first == 0 || (!self.two_byte && first >> 4 == 0) {
                self.pos += 1;
                continue;
            }
            let (id, len, value_start) = if self.two_byte {
                let Some(&len) = self.data.get(at + 1) else {
                    self.pos = self.data.len();
                    return Some(Err(ParseError::truncated(
                        Layer::RtpExtension,
                        "element length",
                        self.data_offset + at + 1,
                        1,
                        self.data_offset + self.data.len(),
                    )));
                };
                (first, usize::from(len), at + 2)
            } else {
                let id = first >> 4;
                if id == ONE_BYTE_STOP_ID {
                    self.pos = self.data.len();
                    return None;
                }
                (id, usize::from(first & 0x0F) + 1, at + 1)
            };
            let value_end = value_start + len;
            if value_end > self.data.len() {
                self.pos = self.data.len();
                return Some(Err(ParseError::new(
                    Layer::RtpExtension,
                    "element length",
                    self.data_offset + at,
                    format!(
                        "element {id} of {len} bytes runs past the end of the {}-byte extension block",
                        self.data.len()
                    ),
                )));
            }
            self.pos = value_end;
            return Some(Ok(ExtensionElement { id, data: &self.data[value_start..value_end] }));
        }
    }
}

/// The RFC 8285 form that can carry all of `elements`: the compact one-byte
/// form when every id is 1..=14 and every value 1..=16 bytes long, the
/// two-byte form (appbits 0) otherwise.
pub fn smallest_extension_form(elements: &[ExtensionElement<'_>]) -> ExtensionForm {
    let fits_one_byte = elements.iter().all(|e| (1..ONE_BYTE_STOP_ID).contains(&e.id) && (1..=16).contains(&e.data.len()));
    if fits_one_byte {
        ExtensionForm::OneByte
    } else {
        ExtensionForm::TwoByte { appbits: 0 }
    }
}

/// Appends the RFC 8285 encoding of `elements` in `form` to `out`, padded with
/// zero bytes to a multiple of 4 as the extension block requires.
///
/// `form` must be one of the two RFC 8285 forms; ids and lengths must fit it
/// (one-byte: ids 1..=14, values of 1..=16 bytes; two-byte: ids 1..=255,
/// values of up to 255 bytes).
pub fn write_extension_elements(
    elements: &[ExtensionElement<'_>],
    form: ExtensionForm,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    let start = out.len();
    for e in elements {
        match form {
            ExtensionForm::OneByte => {
                if !(1..ONE_BYTE_STOP_ID).contains(&e.id) {
                    return Err(BuildError::new("extensions", format!("id {} does not fit the one-byte form (1..=14)", e.id)));
                }
                if !(1..=16).contains(&e.data.len()) {
                    return Err(BuildError::new(
                        "extensions",
                        format!("element {} has {} bytes; the one-byte form carries 1..=16", e.id, e.data.len()),
                    ));
                }
                // In range by the check above: len - 1 is 0..=15.
                out.push(e.id << 4 | (e.data.len() - 1) as u8);
            }
            ExtensionForm::TwoByte { .. } => {
                if e.id == 0 {
                    return Err(BuildError::new("extensions", "id 0 is reserved for padding"));
                }
                let len = u8::try_from(e.data.len()).map_err(|_| {
                    BuildError::new(
                        "extensions",
                        format!("element {} has {} bytes; the two-byte form carries at most 255", e.id, e.data.len()),
                    )
                })?;
                out.extend_from_slice(&[e.id, len]);
            }
            ExtensionForm::Other(profile) => {
                return Err(BuildError::new(
                    "extension_profile",
                    format!("profile {profile:#06x} is not an RFC 8285 form; give the raw extension data instead"),
                ))
            }
        }
        out.extend_from_slice(e.data);
    }
    while (out.len() - start) % 4 != 0 {
        out.push(0);
    }
    if out.len() - start > MAX_EXTENSION_DATA_LEN {
        return Err(BuildError::new("extensions", format!("{} bytes of extension data exceed the 65535-word limit", out.len() - start)));
    }
    Ok(())
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
    ///
    /// Only the framing is checked here (lengths of the CSRC list and of the
    /// extension block), not the RFC 8285 elements inside the block: SRTP
    /// authenticates the header as it stands and must not drop a packet whose
    /// extension elements it has no reason to read. [`RtpPacket::parse`]
    /// validates them.
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
            Some(ExtensionBlock { profile: be16(buf, csrc_end), data: &buf[data_start..data_end], data_offset: data_start })
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
    /// as RFC 3550 section 5.1 requires of a valid packet, and RFC 8285
    /// extension elements that run past their block.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let header = RtpHeader::parse(buf)?;
        if let Some(block) = &header.extension {
            block.validate()?;
        }
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

/// Everything needed to write an RTP packet; [`RtpPacketBuilder::write`]
/// is the inverse of [`RtpPacket::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpPacketBuilder<'a> {
    /// The M bit.
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources, at most 15.
    pub csrcs: &'a [u32],
    /// The extension block as `(profile, data)`, data a multiple of 4 bytes
    /// (see [`write_extension_elements`] for the RFC 8285 forms).
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload.
    pub payload: &'a [u8],
    /// Padding bytes to append, including the count byte; 0 for none (the P
    /// bit is set exactly when this is not 0).
    pub padding_len: u8,
}

impl RtpPacketBuilder<'_> {
    /// The length of the packet [`write`](Self::write) produces.
    pub fn wire_len(&self) -> usize {
        FIXED_HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.map_or(0, |(_, data)| 4 + data.len())
            + self.payload.len()
            + usize::from(self.padding_len)
    }

    /// Appends the packet to `out`; on error `out` is left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        if self.payload_type > 0x7F {
            return Err(BuildError::new("payload_type", format!("{} does not fit in 7 bits", self.payload_type)));
        }
        if self.csrcs.len() > 15 {
            return Err(BuildError::new("csrc", format!("{} CSRCs; a packet carries at most 15", self.csrcs.len())));
        }
        if let Some((_, data)) = self.extension {
            if data.len() % 4 != 0 || data.len() > MAX_EXTENSION_DATA_LEN {
                return Err(BuildError::new(
                    "extension_data",
                    format!("{} bytes; must be a multiple of 4 and at most {MAX_EXTENSION_DATA_LEN}", data.len()),
                ));
            }
        }
        out.reserve(self.wire_len());
        let flags = RTP_VERSION << 6
            | u8::from(self.padding_len != 0) << 5
            | u8::from(self.extension.is_some()) << 4
            // At most 15 by the check above.
            | self.csrcs.len() as u8;
        out.extend_from_slice(&[flags, u8::from(self.marker) << 7 | self.payload_type]);
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in self.csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some((profile, data)) = self.extension {
            out.extend_from_slice(&profile.to_be_bytes());
            // At most 0xFFFF words by the check above.
            out.extend_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(self.payload);
        if self.padding_len != 0 {
            out.resize(out.len() + usize::from(self.padding_len) - 1, 0);
            out.push(self.padding_len);
        }
        Ok(())
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

    fn one_byte_block(data: &[u8]) -> ExtensionBlock<'_> {
        ExtensionBlock { profile: ONE_BYTE_PROFILE, data, data_offset: 16 }
    }

    #[test]
    fn one_byte_elements_skip_padding_and_stop_at_id_15() {
        let data = [0x10, 0xaa, 0x00, 0x21, 1, 2, 0xf3, 0x31, 9, 9];
        let block = one_byte_block(&data);
        let ids: Vec<_> = block.elements().map(|e| e.unwrap()).map(|e| (e.id, e.data.to_vec())).collect();
        assert_eq!(ids, vec![(1, vec![0xaa]), (2, vec![1, 2])]);
        assert_eq!(block.get(2), Some(&[1u8, 2][..]));
        assert_eq!(block.get(3), None);
    }

    #[test]
    fn header_parse_frames_the_extension_and_packet_parse_checks_its_elements() {
        // One 0xBEDE word whose only element claims 4 bytes of data.
        let buf = packet(0x90, &[0xbe, 0xde, 0, 1, 0x13, 0xaa, 0, 0, b'p']);
        let header = RtpHeader::parse(&buf).unwrap();
        assert_eq!(header.len, 20);
        let e = RtpPacket::parse(&buf).unwrap_err();
        assert_eq!((e.layer, e.field), (Layer::RtpExtension, "element length"));
    }

    #[test]
    fn element_past_the_block_is_an_error_at_its_offset() {
        let data = [0x10, 0xaa, 0x23, 1, 2, 0];
        let e = one_byte_block(&data).validate().unwrap_err();
        assert_eq!((e.layer, e.field, e.offset), (Layer::RtpExtension, "element length", 18));
        let two = ExtensionBlock { profile: 0x1005, data: &[0, 7], data_offset: 0 };
        assert_eq!(two.validate().unwrap_err().offset, 2);
    }

    #[test]
    fn two_byte_form_carries_empty_and_large_values() {
        let long = [7u8; 40];
        let elements = [ExtensionElement { id: 200, data: &[] }, ExtensionElement { id: 3, data: &long }];
        let form = smallest_extension_form(&elements);
        assert_eq!(form, ExtensionForm::TwoByte { appbits: 0 });
        let mut data = Vec::new();
        write_extension_elements(&elements, form, &mut data).unwrap();
        assert_eq!(data.len() % 4, 0);
        let block = ExtensionBlock { profile: form.profile(), data: &data, data_offset: 0 };
        let back: Vec<_> = block.elements().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, elements);
        assert_eq!(ExtensionForm::of(0x100a), ExtensionForm::TwoByte { appbits: 10 });
    }

    #[test]
    fn one_byte_form_rejects_what_it_cannot_carry() {
        let mut out = Vec::new();
        let too_long = [ExtensionElement { id: 1, data: &[0; 17] }];
        assert!(write_extension_elements(&too_long, ExtensionForm::OneByte, &mut out).is_err());
        let id15 = [ExtensionElement { id: 15, data: &[0] }];
        assert!(write_extension_elements(&id15, ExtensionForm::OneByte, &mut out).is_err());
        assert_eq!(smallest_extension_form(&id15), ExtensionForm::TwoByte { appbits: 0 });
    }

    #[test]
    fn builder_writes_what_parse_reads() {
        let elements = [ExtensionElement { id: 1, data: &[0x30] }, ExtensionElement { id: 5, data: b"abc" }];
        let mut ext = Vec::new();
        write_extension_elements(&elements, ExtensionForm::OneByte, &mut ext).unwrap();
        let builder = RtpPacketBuilder {
            marker: true,
            payload_type: 111,
            sequence_number: 65535,
            timestamp: 0xffff_fff0,
            ssrc: 42,
            csrcs: &[7, 8, 9],
            extension: Some((ONE_BYTE_PROFILE, &ext)),
            payload: b"hello",
            padding_len: 3,
        };
        let mut buf = Vec::new();
        builder.write(&mut buf).unwrap();
        assert_eq!(buf.len(), builder.wire_len());
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            (p.header.marker, p.header.payload_type, p.header.sequence_number, p.header.timestamp, p.header.ssrc),
            (true, 111, 65535, 0xffff_fff0, 42)
        );
        assert_eq!(p.header.csrcs().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(p.header.extension.unwrap().get(5), Some(&b"abc"[..]));
        assert_eq!((p.payload, p.padding_len), (&b"hello"[..], 3));
    }

    #[test]
    fn builder_rejects_values_the_wire_cannot_carry() {
        let mut out = vec![1];
        let bad_pt = RtpPacketBuilder { payload_type: 128, ..Default::default() };
        assert_eq!(bad_pt.write(&mut out).unwrap_err().field, "payload_type");
        let csrcs = [0u32; 16];
        assert_eq!(RtpPacketBuilder { csrcs: &csrcs, ..Default::default() }.write(&mut out).unwrap_err().field, "csrc");
        let odd = RtpPacketBuilder { extension: Some((1, &[1, 2, 3])), ..Default::default() };
        assert_eq!(odd.write(&mut out).unwrap_err().field, "extension_data");
        assert_eq!(out, vec![1]);
    }
}
