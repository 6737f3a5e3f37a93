//! RTP parsing: never panics, and whatever parses is rebuilt to bytes that
//! parse to the same packet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::demux::classify;
use rtpcore_proto::rtp::{RtpPacket, RtpPacketBuilder};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let Ok(p) = RtpPacket::parse(data) else { return };
    let h = &p.header;
    let csrcs: Vec<u32> = h.csrcs().collect();
    let builder = RtpPacketBuilder {
        marker: h.marker,
        payload_type: h.payload_type,
        sequence_number: h.sequence_number,
        timestamp: h.timestamp,
        ssrc: h.ssrc,
        csrcs: &csrcs,
        extension: h.extension.map(|e| (e.profile, e.data)),
        payload: p.payload,
        padding_len: p.padding_len,
    };
    let mut out = Vec::new();
    builder.write(&mut out).expect("a parsed packet's fields fit the wire format");
    let again = RtpPacket::parse(&out).expect("a built packet parses");
    assert_eq!((again.header.marker, again.header.payload_type, again.header.sequence_number), (h.marker, h.payload_type, h.sequence_number));
    assert_eq!((again.header.timestamp, again.header.ssrc, again.payload, again.padding_len), (h.timestamp, h.ssrc, p.payload, p.padding_len));
    assert_eq!(again.header.extension.map(|e| (e.profile, e.data)), h.extension.map(|e| (e.profile, e.data)));
});
