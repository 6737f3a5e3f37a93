//! A session under any sequence of datagrams, frames, DTMF requests, timer
//! polls and clock steps: no panic (overflow included), every RTCP packet it
//! writes parses, and its quality estimate stays on the MOS scale.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::rtcp::parse_compound;
use rtpcore_proto::session::ntp::NtpClock;
use rtpcore_proto::session::rng::SessionRng;
use rtpcore_proto::session::sender::{AudioFormat, Frame, RtpSender, SenderConfig};
use rtpcore_proto::session::{Session, SessionConfig};

const MS: i64 = 1_000_000;

fn sender_config() -> SenderConfig {
    let mut c = SenderConfig::new(AudioFormat::pcmu(20));
    c.telephone_event_pt = Some(101);
    c.comfort_noise_pt = Some(13);
    c
}

fuzz_target!(|data: &[u8]| {
    let config = SessionConfig::new(sender_config(), "fuzz", NtpClock { ntp_at_epoch: 0xE000_0000_0000_0000 }, 1);
    let Ok(mut session) = Session::<u8>::new(config, 0) else { return };
    let mut peer = RtpSender::new(sender_config(), &mut SessionRng::new(2)).expect("valid config");
    let (mut now, mut out, mut buf) = (0i64, Vec::new(), Vec::new());
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            0 => {
                // A datagram of the next `len` bytes from address op/8 % 4.
                let len = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len().saturating_sub(1));
                let bytes = rest.get(1..1 + len).unwrap_or(&[]);
                session.handle_datagram(op / 8 % 4, bytes, now);
                rest = rest.get(1 + len..).unwrap_or(&[]);
            }
            1 => {
                // The real peer sends a frame (speech, silence or nothing).
                let payload = [op; 160];
                let frame = match op / 8 % 3 {
                    0 => Frame::Speech(&payload),
                    1 => Frame::Silence { noise_level: op },
                    _ => Frame::Nothing,
                };
                if peer.send_frame(frame, now, &mut buf).is_some() {
                    session.handle_datagram(1, &buf, now);
                }
            }
            2 => {
                let payload = [op; 160];
                session.send_frame(Frame::Speech(&payload), now, &mut out);
            }
            3 => now = now.saturating_add(i64::from(op / 8) * 20 * MS),
            4 => {
                if session.poll_rtcp(now, &mut out) {
                    assert!(parse_compound(&out).is_ok());
                }
                session.handle_timeout(now);
            }
            5 => {
                let _ = session.send_dtmf("1#", u32::from(op) * 10);
                let _ = peer.queue_dtmf("5", u32::from(op) * 3);
            }
            6 => {
                if op > 200 {
                    session.close(now, Some(b"bye"), &mut out);
                }
            }
            _ => now = now.wrapping_add(i64::from(op) << 40),
        }
        while session.poll_event().is_some() {}
        if let Some(q) = session.quality() {
            assert!((1.0..=4.5).contains(&q.mos_cq));
        }
    }
});
