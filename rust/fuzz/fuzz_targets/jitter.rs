//! The jitter buffer under any sequence of pushes and pops: datagrams that
//! are valid RTP of the configured stream (so the decode, concealment and
//! stretching paths run) mixed with raw garbage, arrivals and pop times that
//! move by any step, including backwards: no panic, overflow included.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::jitter::{Codec, Config, JitterBuffer};
use rtpcore_proto::rtp::RtpPacketBuilder;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut ops)) = data.split_first() else { return };
    let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722][usize::from(selector % 3)];
    let mut config = Config::new(codec);
    config.frame_ms = [10, 20, 30, 60][usize::from(selector >> 2 & 3)];
    config.event_payload_type = Some(101);
    let Ok(mut jb) = JitterBuffer::new(config) else { return };
    let mut frame = vec![0i16; jb.frame_len()];
    let mut now = 0.0f64;
    let mut wire = Vec::new();
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        // Time moves by -64..=190 ms at each step.
        now += f64::from(i16::from(op) - 64) / 1000.0;
        match op % 4 {
            0 => {
                let _ = jb.pop(now, &mut frame);
            }
            1 if ops.len() >= 6 => {
                let (head, rest) = ops.split_at(6);
                ops = rest;
                let len = usize::from(head[5]) % 200;
                let payload_type = match head[4] % 8 {
                    0 => 101,
                    1 => 13,
                    2 => head[4] & 0x7f,
                    _ => codec.static_payload_type(),
                };
                let builder = RtpPacketBuilder {
                    payload_type,
                    sequence_number: u16::from_be_bytes([head[0], head[1]]),
                    timestamp: u32::from(u16::from_be_bytes([head[2], head[3]])) * 80,
                    ssrc: 0x1234,
                    marker: head[4] & 0x80 != 0,
                    payload: &ops[..len.min(ops.len())],
                    ..Default::default()
                };
                wire.clear();
                if builder.write(&mut wire).is_ok() {
                    let _ = jb.push(&wire, now);
                }
            }
            _ => {
                let len = usize::from(op >> 2).min(ops.len());
                let _ = jb.push(&ops[..len], now);
                ops = &ops[len..];
            }
        }
    }
    let _ = jb.stats();
});
