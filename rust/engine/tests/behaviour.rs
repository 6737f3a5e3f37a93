//! What a call leg promises besides audio getting through: pacing, DTMF,
//! marks and barge-in, passthrough, hostile input, RTCP and BYE, bounds.
mod common;

use common::*;
use rtpcore_engine::{CallLeg, DropReason, FrameData, IdleMode, LegConfig, LegError, LegEvent};
use rtpcore_proto::codec::g711;
use rtpcore_proto::demux::{classify, PacketKind};
use rtpcore_proto::jitter::Codec;
use rtpcore_proto::rtcp::{parse_compound, RtcpPacket};
use rtpcore_proto::rtp::{RtpPacket, RtpPacketBuilder};

fn dtmf_config(codec: Codec) -> LegConfig {
    let mut config = LegConfig::new(codec, "x", 0);
    config.telephone_event_pt = Some(101);
    config
}

/// RTP packets A put on the wire, parsed (SRTP off).
fn sent_rtp(call: &Call, leg: usize) -> Vec<(i64, u16, u32, bool, u8, Vec<u8>)> {
    call.net
        .sent
        .iter()
        .filter(|s| s.from == call.addrs[leg] && classify(&s.data) == PacketKind::Rtp)
        .map(|s| {
            let p = RtpPacket::parse(&s.data).expect("we send valid RTP");
            let h = p.header;
            (s.at_ns, h.sequence_number, h.timestamp, h.marker, h.payload_type, p.payload.to_vec())
        })
        .collect()
}

#[test]
fn exactly_one_packet_per_tick_however_the_application_writes() {
    for idle in [IdleMode::Silence, IdleMode::Nothing] {
        let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
        config.idle = idle;
        let mut call = Call::new(&config, false, IMPAIRED, 11);
        call.net.record = true;
        let signal = speechlike(8000, 4.0);
        let mut written = 0;
        let mut rng = Rng::new(5);
        // Bursts of random size at random ticks, with long pauses.
        call.run(6000, |leg, now_ms, l| {
            if leg == 0 && written < signal.len() && rng.unit() < 0.15 && !(2000..3000).contains(&now_ms) {
                let n = ((rng.next_u64() % 4000) as usize + 1).min(signal.len() - written);
                l.write_audio(&signal[written..written + n]).unwrap();
                written += n;
            }
        });
        let packets = sent_rtp(&call, 0);
        let ticks = 6000 / 20;
        if idle == IdleMode::Silence {
            assert_eq!(packets.len(), ticks, "one packet on every tick");
        }
        for w in packets.windows(2) {
            let (t0, s0, ts0, ..) = w[0];
            let (t1, s1, ts1, m1, ..) = &w[1];
            assert_eq!(s1.wrapping_sub(s0), 1, "contiguous sequence numbers");
            let ticks_between = (t1 - t0) / (20 * MS);
            assert!(ticks_between >= 1 && (t1 - t0) % (20 * MS) == 0, "on the tick grid, never two per tick");
            assert_eq!(ts1.wrapping_sub(ts0), 160 * ticks_between as u32, "timestamps follow the clock");
            // A pause (no packets) ends with a marked packet.
            if ticks_between > 1 {
                assert!(m1, "talk spurt after a pause carries the marker");
            }
        }
        assert!(packets[0].3, "the first packet starts a talk spurt");
        let stats = call.legs[0].stats();
        // All audio went out: whole frames, and short tails of bursts that
        // waited a tick for more, padded.
        assert_eq!((written, stats.queued_ms, stats.cleared_ms), (signal.len(), 0, 0), "{idle:?}");
        assert!(stats.frames_sent as usize >= written / 160);
        if idle == IdleMode::Nothing {
            assert_eq!(packets.len() as u64, stats.frames_sent, "nothing sent while idle");
        }
    }
}

#[test]
fn dtmf_goes_across_with_digits_and_durations() {
    let config = dtmf_config(Codec::G722);
    let mut call = Call::new(&config, true, CLEAN, 2);
    call.legs[0].send_dtmf("1#9*", 120).unwrap();
    call.legs[1].send_dtmf("0A", 80).unwrap();
    // Audio queued behind the DTMF waits and still goes out whole.
    call.legs[0].write_audio(&speechlike(8000, 0.5)).unwrap();
    call.run(2500, |_, _, _| {});
    let digits = |i: usize| -> Vec<(char, u32)> {
        call.events[i]
            .iter()
            .filter_map(|e| match e {
                LegEvent::Dtmf { digit, duration_ms } => Some((*digit, *duration_ms)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(digits(1), [('1', 120), ('#', 120), ('9', 120), ('*', 120)]);
    assert_eq!(digits(0), [('0', 80), ('A', 80)]);
    assert_eq!(call.legs[0].stats().frames_sent, 25, "0.5 s of audio after the digits");
    assert_eq!(call.legs[0].send_dtmf("x", 100), Err(LegError::Dtmf(rtpcore_proto::session::sender::DtmfError::UnknownDigit('x'))));
    let mut plain = CallLeg::new(LegConfig::new(Codec::Pcmu, "x", 0), addr(A), None, 0).unwrap();
    assert!(matches!(plain.send_dtmf("1", 100), Err(LegError::Dtmf(_))), "telephone-event not negotiated");
}

#[test]
fn dtmf_survives_loss() {
    let config = dtmf_config(Codec::Pcmu);
    let mut call = Call::new(&config, false, Impairment { loss: 0.1, delay_ms: 30, jitter_ms: 40 }, 9);
    call.legs[0].send_dtmf("5551234", 100).unwrap();
    call.run(3000, |_, _, _| {});
    let digits: String = call.events[1]
        .iter()
        .filter_map(|e| if let LegEvent::Dtmf { digit, .. } = e { Some(*digit) } else { None })
        .collect();
    assert_eq!(digits, "5551234");
}

#[test]
fn marks_fire_when_their_audio_is_on_the_wire_and_clear_flushes_them() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.app_sample_rate = 16000;
    let mut call = Call::new(&config, false, CLEAN, 4);
    call.net.record = true;
    let leg = &mut call.legs[0];
    leg.write_audio(&vec![1000; 16000 / 10]).unwrap(); // 100 ms: 5 frames
    leg.mark("first".into());
    leg.write_audio(&vec![1000; 16000 / 20]).unwrap(); // 50 ms: 2.5 frames
    leg.mark("second".into());
    leg.write_audio(&vec![1000; 16000]).unwrap();
    leg.mark("third".into());
    leg.mark("fourth".into());
    assert_eq!((leg.queued_ms(), leg.pending_marks()), (1150, 4));
    let mut tick_of = std::collections::HashMap::new();
    let mut ticks = 0;
    call.run(200, |leg, _, l| {
        if leg == 0 {
            ticks += 1;
            if ticks == 9 {
                l.clear();
                l.mark("after-clear".into());
            }
        }
    });
    for (i, e) in call.events[0].iter().enumerate() {
        if let LegEvent::MarkPlayed { name, .. } = e {
            tick_of.insert(name.clone(), i);
        }
    }
    let marks: Vec<_> = call.events[0]
        .iter()
        .filter_map(|e| if let LegEvent::MarkPlayed { name, cleared } = e { Some((name.as_str(), *cleared)) } else { None })
        .collect();
    assert_eq!(marks, [("first", false), ("second", false), ("third", true), ("fourth", true), ("after-clear", false)]);
    let packets = sent_rtp(&call, 0);
    // 5 frames, then 2.5 frames that join the next write (no padding
    // mid-stream), and the clear before tick 9 stops the audio at once.
    let loud: Vec<bool> = packets.iter().map(|p| p.5.iter().any(|&c| c != 0xFF)).collect();
    assert!(loud[..8].iter().all(|&l| l), "8 ticks of audio");
    // Then silence, but for the resampler's filter tail (its delay is
    // 3 ms, the ringing after that is below -50 dBFS).
    assert!(packets[8].5[24..].iter().all(|&c| g711::ulaw_decode(c).abs() < 100), "{:?}", packets[8].5);
    assert!(loud[9..].iter().all(|&l| !l));
    let stats = call.legs[0].stats();
    assert_eq!((stats.queued_ms, stats.cleared_ms), (0, 1150 - 160));
}

#[test]
fn outbound_queue_is_bounded_and_writes_match_the_mode() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.max_queued_ms = 1000;
    let mut leg = CallLeg::new(config.clone(), addr(A), None, 0).unwrap();
    leg.write_audio(&[0; 8000]).unwrap();
    assert_eq!(leg.write_audio(&[0; 1]), Err(LegError::QueueFull { queued_ms: 1000, limit_ms: 1000 }));
    assert_eq!(leg.write_payload(&[0; 1]), Err(LegError::WrongMode { expected: "pcm" }));
    config.passthrough = true;
    let mut pass = CallLeg::new(config.clone(), addr(A), None, 0).unwrap();
    assert_eq!(pass.write_audio(&[0; 1]), Err(LegError::WrongMode { expected: "payload" }));
    pass.close(0, &mut |_| {});
    assert_eq!(pass.write_payload(&[0; 1]), Err(LegError::Closed));
    config.codec = Codec::G722;
    assert!(matches!(CallLeg::new(config, addr(A), None, 0), Err(LegError::Config { field: "passthrough", .. })));
}

#[test]
fn configuration_errors_name_the_field() {
    let bad = |f: &dyn Fn(&mut LegConfig)| {
        let mut c = LegConfig::new(Codec::Pcmu, "x", 0);
        f(&mut c);
        match CallLeg::new(c, addr(A), None, 0) {
            Err(LegError::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(bad(&|c| c.ptime_ms = 5), "ptime_ms");
    assert_eq!(bad(&|c| c.app_sample_rate = 44_100), "app_sample_rate");
    assert_eq!(bad(&|c| c.cname = String::new()), "session");
    assert_eq!(bad(&|c| c.payload_type = 200), "session");
    assert_eq!(bad(&|c| c.app_queue_frames = 0), "app_queue_frames");
    assert_eq!(
        bad(&|c| {
            let mut short_key = keying(1);
            short_key.master_key.truncate(3);
            c.srtp_send = Some(short_key);
        }),
        "srtp_send"
    );
}

#[test]
fn frames_for_a_sleeping_application_are_bounded() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.app_queue_frames = 10;
    let mut leg = CallLeg::new(config, addr(A), None, 0).unwrap();
    for k in 0..25 {
        leg.on_tick(k * 20 * MS, &mut |_| {});
    }
    let stats = leg.stats();
    assert_eq!((stats.frames_to_app, stats.frames_overrun, leg.frames_ready()), (25, 15, 10));
    let first = leg.pop_frame().unwrap();
    assert_eq!(first.index, 15, "the oldest were dropped");
    assert!(matches!(first.data, FrameData::Pcm(ref pcm) if pcm.len() == 160));
}

/// G.711 in passthrough: the payload the application writes is what goes
/// on the wire, byte for byte, and what the peer's application reads back
/// is the same payload.
#[test]
fn passthrough_round_trip_is_bit_exact_on_a_clean_network() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut config = LegConfig::new(codec, "x", 0);
        config.passthrough = true;
        let mut call = Call::new(&config, true, CLEAN, 6);
        call.net.record = false;
        let pcm = speechlike(8000, 3.0);
        let mut payload = vec![0u8; pcm.len()];
        match codec {
            Codec::Pcma => g711::alaw_encode_into(&pcm, &mut payload),
            _ => g711::ulaw_encode_into(&pcm, &mut payload),
        };
        call.legs[0].write_payload(&payload).unwrap();
        call.run(3500, |_, _, _| {});
        let received = &call.received_payload[1];
        assert!(call.received_pcm[1].is_empty());
        // The jitter buffer may shift its delay in the pauses (removing
        // silence), so each talk spurt is looked up on its own.
        let silence = payload[pcm.len() - 1];
        let mut spurts = 0;
        let mut at = 0;
        while at < payload.len() {
            let Some(start) = payload[at..].iter().position(|&c| c != silence).map(|s| at + s) else { break };
            let end = payload[start..].iter().position(|&c| c == silence).map_or(payload.len(), |e| start + e);
            at = end;
            if end - start < 400 {
                continue;
            }
            let spurt = &payload[start..end];
            // μ-law has two codes for zero (0x7F, 0xFF); the jitter buffer
            // plays PCM, so only the canonical one can come back.
            let canonical: Vec<u8> = spurt.iter().map(|&c| if codec == Codec::Pcmu && c == 0x7F { 0xFF } else { c }).collect();
            assert!(
                received.windows(canonical.len()).any(|w| w == canonical.as_slice()),
                "{codec:?}: spurt at {start}..{end} not found bit-exact"
            );
            spurts += 1;
        }
        assert!(spurts >= 5, "{spurts}");
    }
}

#[test]
fn passthrough_sends_the_written_payload_unchanged() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.passthrough = true;
    let mut call = Call::new(&config, false, CLEAN, 6);
    call.net.record = true;
    let payload: Vec<u8> = (0..8000u32).map(|i| (i * 7 % 256) as u8).collect();
    call.legs[0].write_payload(&payload).unwrap();
    call.run(1200, |_, _, _| {});
    let wire: Vec<u8> = sent_rtp(&call, 0).into_iter().flat_map(|p| p.5).collect();
    assert_eq!(&wire[..payload.len()], &payload[..]);
}

/// A stream that works, plus every kind of unwanted datagram mixed in:
/// the audio still gets through and every drop is counted by reason.
#[test]
fn garbage_and_foreign_packets_do_not_disturb_the_stream() {
    for srtp in [false, true] {
        let config = LegConfig::new(Codec::Pcmu, "x", 0);
        let mut call = Call::new(&config, srtp, CLEAN, 8);
        let signal = speechlike(8000, 3.0);
        call.legs[0].write_audio(&signal).unwrap();
        let mut rng = Rng::new(99);
        let stranger = addr("192.0.2.66:6666");
        let mut injected = 0;
        let mut wire = Vec::new();
        // Run in 10 ms steps, injecting between them.
        for step in 0..350 {
            call.run(10, |_, _, _| {});
            let now = call.now_ns;
            let ssrc_a = call.legs[0].ssrc();
            let garbage: Vec<u8> = (0..(rng.next_u64() % 300)).map(|_| rng.next_u64() as u8).collect();
            let kind = step % 7;
            let (from, data): (_, Vec<u8>) = match kind {
                0 => (addr(A), garbage),
                1 => {
                    // RTP from a stranger with its own SSRC (hijack attempt).
                    wire.clear();
                    RtpPacketBuilder { payload_type: 0, sequence_number: step as u16, timestamp: step * 160, ssrc: 0xBAD, payload: &[0x55; 160], ..Default::default() }
                        .write(&mut wire)
                        .unwrap();
                    (stranger, wire.clone())
                }
                2 => {
                    // The real SSRC, from the real address, but forged: a
                    // future sequence number and, with SRTP, a bad tag.
                    wire.clear();
                    RtpPacketBuilder { payload_type: 0, sequence_number: step as u16 ^ 0x5555, timestamp: 1, ssrc: ssrc_a, payload: &[0; 170], ..Default::default() }
                        .write(&mut wire)
                        .unwrap();
                    if srtp {
                        wire.extend_from_slice(&[0xAB; 10]);
                    }
                    (addr(A), wire.clone())
                }
                3 => (addr(A), vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
                4 => (addr(A), vec![0x80, 200, 0, 1, 0, 0, 0, 1]),
                5 => (addr(A), vec![0x80; 3000]),
                _ => (stranger, vec![0x81, 201, 0, 7, 0, 0, 0x0B, 0xAD, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]),
            };
            call.legs[1].handle_datagram(from, &data, now);
            injected += 1;
        }
        // One more tick reports the last drops.
        call.run(20, |_, _, _| {});
        let (corr_ok, corr) = {
            let c = segment_correlation(&signal, &call.received_pcm[1], 2000, 2400);
            (c > 0.99, c)
        };
        assert!(corr_ok, "srtp={srtp}: {corr}");
        let stats = call.legs[1].stats();
        let d = stats.dropped;
        eprintln!("srtp={srtp}: {:?}", d.nonzero().collect::<Vec<_>>());
        assert!(d.get(DropReason::NotMedia) > 0);
        assert!(d.get(DropReason::Malformed) > 0);
        if srtp {
            // Nobody without the key gets past authentication.
            assert!(d.get(DropReason::Authentication) > 100);
            assert_eq!(d.get(DropReason::Foreign) + d.get(DropReason::SequenceJump), 0);
        } else {
            assert!(d.get(DropReason::Foreign) > 0);
            assert!(d.get(DropReason::SequenceJump) > 0);
        }
        assert!(d.total() >= injected - 60, "almost every injected datagram is dropped: {} of {injected}", d.total());
        assert_eq!(stats.jitter.lost, 0, "no real packet was displaced");
        let reported: u64 = call.events[1]
            .iter()
            .filter_map(|e| if let LegEvent::PacketsDropped { count, .. } = e { Some(*count) } else { None })
            .sum();
        assert_eq!(reported, d.total(), "every drop reported once");
        assert!(!call.events[1].iter().any(|e| matches!(e, LegEvent::SsrcChanged { .. })), "the stranger took nothing over");
    }
}

#[test]
fn rtcp_flows_and_close_sends_bye() {
    let config = LegConfig::new(Codec::Pcmu, "x", 0);
    let mut call = Call::new(&config, true, IMPAIRED, 12);
    call.legs[0].write_audio(&speechlike(8000, 12.0)).unwrap();
    call.run(12_000, |_, _, _| {});
    let reports = call.events[0].iter().filter(|e| matches!(e, LegEvent::RtcpReport { .. })).count();
    assert!(reports >= 2, "{reports}");
    let rtt = call.events[0].iter().rev().find_map(|e| if let LegEvent::RtcpReport { rtt_ms, .. } = e { *rtt_ms } else { None });
    // The simulated path is 20..50 ms each way.
    assert!(rtt.is_some_and(|r| (40.0..110.0).contains(&r)), "{rtt:?}");
    let stats = call.legs[0].stats();
    assert!(stats.session.rtt_ns.is_some());
    call.net.record = true;
    let from = call.addrs[0];
    let now = call.now_ns;
    call.legs[0].close(now, &mut |tx| call.net.send(from, tx, now));
    assert!(call.legs[0].is_closed());
    let bye = call.net.sent.last().expect("the BYE went out").data.clone();
    assert_eq!(classify(&bye), PacketKind::Rtcp);
    // Closing twice sends nothing more; the peer hears the BYE.
    call.legs[0].close(now, &mut |_| panic!("closed already"));
    call.run(200, |_, _, _| {});
    assert!(call.events[1].iter().any(|e| matches!(e, LegEvent::Bye { reason: Some(r) } if r == "call ended")));
    assert_eq!(call.legs[0].next_rtcp_deadline_ns(), i64::MAX);
    // Unprotected, the BYE is the last packet of a compound.
    let mut plain = Call::new(&config, false, CLEAN, 1);
    let from = plain.addrs[1];
    plain.net.record = true;
    plain.legs[1].close(0, &mut |tx| plain.net.send(from, tx, 0));
    let packets = parse_compound(&plain.net.sent[0].data).unwrap();
    assert!(matches!(packets.last(), Some(RtcpPacket::Goodbye(_))));
}

#[test]
fn rtcp_goes_to_the_rtcp_port_without_mux() {
    let config = LegConfig::new(Codec::Pcmu, "x", 0);
    let rtcp = addr("10.0.0.2:5001");
    let mut leg = CallLeg::new(config, addr(B), Some(rtcp), 0).unwrap();
    let mut sent = Vec::new();
    let due = leg.next_rtcp_deadline_ns();
    leg.on_tick(0, &mut |tx| sent.push((tx.to, tx.rtcp_socket, classify(tx.data))));
    leg.on_rtcp_timer(due, &mut |tx| sent.push((tx.to, tx.rtcp_socket, classify(tx.data))));
    assert_eq!(sent, [(addr(B), false, PacketKind::Rtp), (rtcp, true, PacketKind::Rtcp)]);
}

#[test]
fn latching_follows_the_peer_and_set_remote_redirects() {
    let config = LegConfig::new(Codec::Pcmu, "x", 0);
    let mut call = Call::new(&config, false, CLEAN, 13);
    // A's NAT rewrites its address: B must answer where packets come from.
    let natted = addr("198.51.100.7:31000");
    call.addrs[0] = natted;
    call.run(500, |_, _, _| {});
    assert_eq!(call.legs[1].rtp_destination(), natted);
    assert!(call.events[1].iter().any(|e| *e == LegEvent::RemoteLatched { addr: natted, ssrc: call.legs[0].ssrc() }));
    // A re-INVITE with the same address (hold, say) keeps the latch.
    call.legs[1].set_remote(addr(A), None, call.now_ns);
    assert_eq!(call.legs[1].rtp_destination(), natted);
    let moved = addr("203.0.113.9:7000");
    call.legs[1].set_remote(moved, None, call.now_ns);
    assert_eq!(call.legs[1].rtp_destination(), moved, "signalling wins until media latches anew");
    // A's media did not in fact move: its old address may latch again, but
    // only after the silence_relatch window (2 s), so that a peer that did
    // move latches first while its last packets from there still arrive.
    call.run(1500, |_, _, _| {});
    assert_eq!(call.legs[1].rtp_destination(), moved);
    call.run(1000, |_, _, _| {});
    assert_eq!(call.legs[1].rtp_destination(), natted);
}

#[test]
fn comfort_noise_when_idle() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.comfort_noise_pt = Some(13);
    config.idle = IdleMode::ComfortNoise;
    let mut call = Call::new(&config, false, CLEAN, 14);
    call.net.record = true;
    call.legs[0].write_audio(&speechlike(8000, 0.2)).unwrap();
    call.run(1000, |_, _, _| {});
    let packets = sent_rtp(&call, 0);
    let cn: Vec<_> = packets.iter().filter(|p| p.4 == 13).collect();
    assert_eq!(packets.len() - cn.len(), 10);
    assert_eq!(cn.len(), 1, "one CN packet starts the pause (refreshes come every 5 s)");
    assert_eq!(cn[0].5, [70]);
    assert!(call.legs[1].stats().jitter.comfort_noise_packets == 1);
}

#[test]
fn the_recording_tap_shows_what_was_sent() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.app_sample_rate = 16000;
    let mut leg = CallLeg::new(config, addr(B), None, 0).unwrap();
    leg.write_audio(&[7; 320]).unwrap();
    leg.on_tick(0, &mut |_| {});
    assert_eq!(leg.last_sent_pcm(), &[7; 320][..]);
    leg.on_tick(20 * MS, &mut |_| {});
    assert_eq!(leg.last_sent_pcm(), &[0; 320][..]);
    assert!(leg.last_sent_payload().is_empty());
}

#[test]
fn without_latching_media_goes_to_the_signalled_address() {
    let mut config = LegConfig::new(Codec::Pcmu, "x", 0);
    config.latch = false;
    let mut call = Call::new(&config, false, CLEAN, 15);
    let natted = addr("198.51.100.7:31000");
    call.addrs[0] = natted;
    call.run(300, |_, _, _| {});
    // B still hears A (the session accepts the source) but answers where
    // signalling said.
    assert!(call.legs[1].stats().session.packets_received > 5);
    assert_eq!(call.legs[1].rtp_destination(), addr(A));
}

#[test]
fn a_restarted_peer_is_an_ssrc_change_and_audio_goes_on() {
    let mut config = LegConfig::new(Codec::G722, "x", 0);
    config.app_sample_rate = 16000;
    let mut call = Call::new(&config, true, CLEAN, 16);
    call.legs[0].write_audio(&speechlike(16000, 1.0)).unwrap();
    call.run(1200, |_, _, _| {});
    let old = call.legs[0].ssrc();
    // A's process restarts: a new leg (new SSRC, sequence, timestamp, keys
    // unchanged) at the same address.
    let mut restarted = config.clone();
    restarted.cname = "leg0@test".into();
    restarted.rng_seed = 1234;
    restarted.srtp_send = Some(keying(1));
    restarted.srtp_recv = Some(keying(2));
    call.legs[0] = CallLeg::new(restarted, addr(B), None, call.now_ns).unwrap();
    let second = speechlike(16000, 1.5)[8000..].to_vec();
    call.legs[0].write_audio(&second).unwrap();
    let heard_before = call.received_pcm[1].len();
    call.run(1300, |_, _, _| {});
    let new = call.legs[0].ssrc();
    assert!(call.events[1].contains(&LegEvent::SsrcChanged { old, new }), "{:?}", call.events[1]);
    let corr = segment_correlation(&second, &call.received_pcm[1][heard_before..], 4000, 3200);
    assert!(corr > 0.95, "{corr}");
}
