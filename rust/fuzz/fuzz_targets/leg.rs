//! A call leg under any sequence of datagrams (from its real peer, possibly
//! corrupted, and raw bytes from anyone), ticks, clock steps (backwards
//! too), application writes, marks, clears, DTMF, RTCP timers and close,
//! for every codec, SRTP on and off, PCM at any rate and passthrough: no
//! panic (overflow included), at most one packet per tick, and the queues
//! stay within their bounds.
#![no_main]
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use rtpcore_engine::{CallLeg, IdleMode, LegConfig, SrtpKeying};
use rtpcore_proto::jitter::Codec;
use rtpcore_proto::srtp::Profile;

const MS: i64 = 1_000_000;

fn keying() -> SrtpKeying {
    SrtpKeying { profile: Profile::AesCm128HmacSha1_80, master_key: vec![7; 16], master_salt: vec![9; 14] }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut ops)) = data.split_first() else { return };
    let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722][usize::from(selector % 3)];
    let mut config = LegConfig::new(codec, "fuzz", 1);
    config.ptime_ms = [20, 10, 30, 60][usize::from(selector >> 2 & 3)];
    config.app_sample_rate = [8000, 16000, 24000, 48000][usize::from(selector >> 4 & 3)];
    config.passthrough = selector & 0x40 != 0 && codec != Codec::G722;
    config.idle = if selector & 0x80 != 0 { IdleMode::ComfortNoise } else { IdleMode::Silence };
    config.telephone_event_pt = Some(101);
    config.comfort_noise_pt = Some(13);
    config.app_queue_frames = 8;
    config.max_queued_ms = 2000;
    let srtp = selector % 5 == 0;
    if srtp {
        config.srtp_send = Some(keying());
        config.srtp_recv = Some(keying());
    }
    let me: SocketAddr = "10.0.0.1:4000".parse().expect("literal address");
    let peer_addr: SocketAddr = "10.0.0.2:5000".parse().expect("literal address");
    let stranger: SocketAddr = "10.0.0.3:6000".parse().expect("literal address");
    let Ok(mut leg) = CallLeg::new(config.clone(), peer_addr, None, 0) else { return };
    config.rng_seed = 2;
    let Ok(mut peer) = CallLeg::new(config.clone(), me, None, 0) else { return };
    let ptime = i64::from(config.ptime_ms) * MS;
    let frame = leg.app_frame_len();
    let mut now = 0i64;
    let mut from_peer: Vec<Vec<u8>> = Vec::new();
    while let Some((&op, tail)) = ops.split_first() {
        ops = tail;
        let arg = ops.first().copied().unwrap_or(0);
        match op % 10 {
            0 => {
                // Raw bytes from the peer's address or a stranger's.
                let len = usize::from(arg).min(ops.len().saturating_sub(1));
                let bytes = ops.get(1..1 + len).unwrap_or(&[]);
                leg.handle_datagram(if op & 0x10 != 0 { stranger } else { peer_addr }, bytes, now);
                ops = ops.get(1 + len..).unwrap_or(&[]);
            }
            1 => {
                // The peer ticks; its packets arrive, some with a byte flipped.
                peer.write_audio(&vec![i16::from(op) * 97; frame]).ok();
                peer.write_payload(&vec![op; frame]).ok();
                peer.on_tick(now, &mut |tx| from_peer.push(tx.data.to_vec()));
                for mut packet in from_peer.drain(..) {
                    if op & 0x20 != 0 && !packet.is_empty() {
                        let at = usize::from(arg) % packet.len();
                        packet[at] ^= 1 << (op >> 5);
                    }
                    leg.handle_datagram(peer_addr, &packet, now);
                }
            }
            2 => {
                let mut sent = 0;
                leg.on_tick(now, &mut |_| sent += 1);
                assert!(sent <= 1, "one packet per tick");
                now = now.saturating_add(ptime);
            }
            3 => {
                let n = usize::from(arg) * 16 + usize::from(op >> 4);
                let _ = leg.write_audio(&vec![i16::from(arg) << 7; n]);
                let _ = leg.write_payload(&vec![arg; n]);
            }
            4 => leg.mark(format!("m{op}")),
            5 => leg.clear(),
            6 => {
                let digits = ["1", "#*", "0A9", "x", ""][usize::from(op >> 4) % 5];
                let _ = leg.send_dtmf(digits, u32::from(arg) * 10);
            }
            7 => {
                // The clock jumps, forwards or back.
                now = now.saturating_add(i64::from(arg as i8) * 37 * MS);
            }
            8 => {
                let due = leg.next_rtcp_deadline_ns();
                if due <= now || op & 0x10 != 0 {
                    leg.on_rtcp_timer(now.max(due.min(now + 10_000 * MS)), &mut |_| {});
                }
                peer.on_rtcp_timer(peer.next_rtcp_deadline_ns().min(now), &mut |tx| from_peer.push(tx.data.to_vec()));
            }
            _ => {
                if op & 0xF0 == 0xF0 {
                    leg.close(now, &mut |_| {});
                }
                while leg.pop_frame().is_some() {}
                while leg.poll_event().is_some() {}
            }
        }
        assert!(leg.frames_ready() <= 8);
        assert!(leg.queued_ms() <= 2000);
    }
    let stats = leg.stats();
    if let Some(q) = stats.quality {
        assert!((1.0..=4.5).contains(&q.mos_cq), "{q:?}");
    }
});
