//! Compound RTCP: never panics, and whatever parses writes back to bytes that
//! parse to the same packets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::rtcp::{parse_compound, write_compound};

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = parse_compound(data) else { return };
    let mut out = Vec::new();
    write_compound(&packets, &mut out).expect("parsed packets fit the wire format");
    assert_eq!(parse_compound(&out).expect("written packets parse"), packets);
});
