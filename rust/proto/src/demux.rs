//! Telling apart the protocols that share one UDP port: RTP and RTCP
//! multiplexed (RFC 5761 section 4) and, for WebRTC-style peers, STUN, DTLS,
//! ZRTP and TURN channel data by their first byte (RFC 7983 section 7).

/// What a datagram on a multiplexed port most likely is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// An RTP packet (version 2, payload type outside the RTCP range).
    Rtp,
    /// An RTCP packet (version 2, packet type 192..=223).
    Rtcp,
    /// A STUN message (first byte 0..=3).
    Stun,
    /// A ZRTP packet (first byte 16..=19).
    Zrtp,
    /// A DTLS record (first byte 20..=63).
    Dtls,
    /// TURN channel data (first byte 64..=79).
    TurnChannel,
    /// Nothing a media port expects.
    Unknown,
}

impl PacketKind {
    /// The lowercase name used on the Python side.
    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Rtp => "rtp",
            PacketKind::Rtcp => "rtcp",
            PacketKind::Stun => "stun",
            PacketKind::Zrtp => "zrtp",
            PacketKind::Dtls => "dtls",
            PacketKind::TurnChannel => "turn-channel",
            PacketKind::Unknown => "unknown",
        }
    }
}

/// Smallest RTCP packet: a header and the sender SSRC.
const MIN_RTCP_LEN: usize = 8;

/// Classifies a datagram by its first two bytes, without parsing it.
///
/// RFC 5761 section 4: with RTP and RTCP on one port, the second byte of a
/// version-2 packet is an RTCP packet type when it lies in 192..=223 (RTP
/// payload types 64..=95 with the marker bit set, which must not be used).
pub fn classify(buf: &[u8]) -> PacketKind {
    let Some(&first) = buf.first() else {
        return PacketKind::Unknown;
    };
    match first {
        0..=3 => PacketKind::Stun,
        16..=19 => PacketKind::Zrtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::TurnChannel,
        128..=191 => match buf.get(1) {
            Some(192..=223) if buf.len() >= MIN_RTCP_LEN => PacketKind::Rtcp,
            Some(192..=223) => PacketKind::Unknown,
            Some(_) if buf.len() >= crate::rtp::FIXED_HEADER_LEN => PacketKind::Rtp,
            _ => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_byte_and_packet_type() {
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                let mut buf = [0u8; 12];
                buf[0] = first;
                buf[1] = second;
                let kind = classify(&buf);
                let expected = match first {
                    0..=3 => PacketKind::Stun,
                    16..=19 => PacketKind::Zrtp,
                    20..=63 => PacketKind::Dtls,
                    64..=79 => PacketKind::TurnChannel,
                    128..=191 if (192..=223).contains(&second) => PacketKind::Rtcp,
                    128..=191 => PacketKind::Rtp,
                    _ => PacketKind::Unknown,
                };
                assert_eq!(kind, expected, "{first} {second}");
            }
        }
    }

    #[test]
    fn too_short_for_its_kind_is_unknown() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80, 200, 0, 1]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80, 0, 0, 1, 0, 0, 0, 0]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80, 200, 0, 1, 0, 0, 0, 0]), PacketKind::Rtcp);
    }
}
