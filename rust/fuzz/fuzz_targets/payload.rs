//! Telephone-event and comfort noise payloads: parse, write back, compare.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::payload::{ComfortNoise, TelephoneEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = TelephoneEvent::parse(data) {
        let mut out = Vec::new();
        event.write(&mut out).expect("a parsed event fits");
        assert_eq!(TelephoneEvent::parse(&out), Ok(event));
    }
    if let Ok(noise) = ComfortNoise::parse(data) {
        let mut out = Vec::new();
        noise.write(&mut out).expect("a parsed payload fits");
        assert_eq!(out, data);
    }
});
