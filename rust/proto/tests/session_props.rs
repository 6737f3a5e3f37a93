//! Property tests: random operation sequences never panic a session, and
//! what the sender says about DTMF the receiver reads back exactly.

use proptest::prelude::*;
use rtpcore_proto::payload::TelephoneEvent;
use rtpcore_proto::rtcp::{Goodbye, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
use rtpcore_proto::rtp::{RtpPacket, RtpPacketBuilder};
use rtpcore_proto::session::dtmf::{DtmfEvent, DtmfReceiver};
use rtpcore_proto::session::ntp::NtpClock;
use rtpcore_proto::session::rng::SessionRng;
use rtpcore_proto::session::sender::{AudioFormat, Frame, RtpSender, SenderConfig};
use rtpcore_proto::session::{Incoming, Session, SessionConfig};

const MS: i64 = 1_000_000;

#[derive(Debug, Clone)]
enum Op {
    Raw(u8, Vec<u8>),
    Rtp { from: u8, pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: Vec<u8> },
    Rtcp { from: u8, ssrc: u32, block_ssrc_is_ours: bool, lsr: u32, dlsr: u32, lost: i32, sr: bool, bye: bool },
    Send(u8, u8),
    Dtmf(String, u32),
    Advance(u32),
    /// The clock jumps anywhere, backwards included: no panic either.
    Jump(i64),
    PollRtcp,
    Close,
    /// The real peer (address 1) sends `n` intervals of speech, silence or
    /// DTMF, so that sequences reach latching, DTMF and reports.
    Peer(u8, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let small_ssrc = prop_oneof![Just(1u32), Just(2u32), any::<u32>()];
    prop_oneof![
        (0u8..4, proptest::collection::vec(any::<u8>(), 0..80)).prop_map(|(f, b)| Op::Raw(f, b)),
        (0u8..4, prop_oneof![Just(0u8), Just(13), Just(101), 0u8..128], any::<u16>(), any::<u32>(), small_ssrc.clone(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(from, pt, seq, ts, ssrc, marker, payload)| Op::Rtp { from, pt, seq, ts, ssrc, marker, payload }),
        (0u8..4, small_ssrc, any::<bool>(), any::<u32>(), any::<u32>(), -0x80_0000i32..0x80_0000, any::<bool>(), any::<bool>())
            .prop_map(|(from, ssrc, block_ssrc_is_ours, lsr, dlsr, lost, sr, bye)| Op::Rtcp { from, ssrc, block_ssrc_is_ours, lsr, dlsr, lost, sr, bye }),
        (0u8..3, any::<u8>()).prop_map(|(k, l)| Op::Send(k, l)),
        ("[0-9A-Da-d*#x]{0,5}", 0u32..70_000).prop_map(|(d, ms)| Op::Dtmf(d, ms)),
        (0u32..10_000).prop_map(Op::Advance),
        prop_oneof![Just(i64::MIN), Just(i64::MAX - 1_000_000_000_000), any::<i64>()].prop_map(Op::Jump),
        Just(Op::PollRtcp),
        Just(Op::Close),
        (1u8..60, 0u8..3, any::<bool>()).prop_map(|(n, k, d)| Op::Peer(n, k, d)),
    ]
}

fn config() -> SessionConfig {
    let mut sender = SenderConfig::new(AudioFormat::pcma(20));
    sender.telephone_event_pt = Some(101);
    sender.comfort_noise_pt = Some(13);
    sender.ssrc = Some(7);
    SessionConfig::new(sender, "prop@test", NtpClock { ntp_at_epoch: 1 << 63 }, 3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_never_panic(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s: Session<u8> = Session::new(config(), 0).unwrap();
        let mut now = 0i64;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut peer_config = SenderConfig::new(AudioFormat::pcma(20));
        peer_config.telephone_event_pt = Some(101);
        peer_config.comfort_noise_pt = Some(13);
        let mut peer = RtpSender::new(peer_config, &mut SessionRng::new(4)).unwrap();
        for op in ops {
            match op {
                Op::Raw(from, bytes) => { s.handle_datagram(from, &bytes, now); }
                Op::Rtp { from, pt, seq, ts, ssrc, marker, payload } => {
                    buf.clear();
                    RtpPacketBuilder { marker, payload_type: pt, sequence_number: seq, timestamp: ts, ssrc, payload: &payload, ..Default::default() }
                        .write(&mut buf).unwrap();
                    if let Incoming::Media(m) = s.handle_datagram(from, &buf, now) {
                        prop_assert_eq!(m.packet.payload, &payload[..]);
                        prop_assert_eq!(m.packet.header.ssrc, ssrc);
                    }
                }
                Op::Rtcp { from, ssrc, block_ssrc_is_ours, lsr, dlsr, lost, sr, bye } => {
                    let block = ReportBlock { ssrc: if block_ssrc_is_ours { 7 } else { ssrc }, cumulative_lost: lost, last_sr: lsr, delay_since_last_sr: dlsr, ..Default::default() };
                    let mut packets = vec![if sr {
                        RtcpPacket::SenderReport(SenderReport { ssrc, ntp_timestamp: lsr.into(), reports: vec![block], ..Default::default() })
                    } else {
                        RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports: vec![block], extension: vec![] })
                    }];
                    if bye {
                        packets.push(RtcpPacket::Goodbye(Goodbye { sources: vec![ssrc], reason: None }));
                    }
                    buf.clear();
                    rtpcore_proto::rtcp::write_compound(&packets, &mut buf).unwrap();
                    prop_assert!(!matches!(s.handle_datagram(from, &buf, now), Incoming::Media(_)));
                }
                Op::Send(kind, level) => {
                    let payload = [level; 160];
                    let frame = match kind { 0 => Frame::Speech(&payload), 1 => Frame::Silence { noise_level: level }, _ => Frame::Nothing };
                    if let Some(sent) = s.send_frame(frame, now, &mut out) {
                        prop_assert_eq!(RtpPacket::parse(&out).unwrap().header.sequence_number, sent.sequence_number);
                    }
                }
                Op::Dtmf(digits, ms) => { let _ = s.send_dtmf(&digits, ms); }
                Op::Advance(ms) => {
                    now = now.saturating_add(i64::from(ms) * MS);
                    if now >= s.next_deadline_ns() { s.handle_timeout(now); }
                }
                Op::PollRtcp => {
                    if s.poll_rtcp(now, &mut out) {
                        prop_assert!(rtpcore_proto::rtcp::parse_compound(&out).is_ok());
                    }
                }
                Op::Close => { s.close(now, None, &mut out); }
                Op::Jump(to) => {
                    now = to;
                    s.handle_timeout(now);
                }
                Op::Peer(n, kind, dtmf) => {
                    if dtmf {
                        peer.queue_dtmf("9", 120).unwrap();
                    }
                    let payload = [0xD5u8; 160];
                    for _ in 0..n {
                        let frame = match kind { 0 => Frame::Speech(&payload), 1 => Frame::Silence { noise_level: 80 }, _ => Frame::Nothing };
                        if peer.send_frame(frame, now, &mut buf).is_some() {
                            s.handle_datagram(1, &buf, now);
                        }
                        now = now.saturating_add(20 * MS);
                    }
                }
            }
            while s.poll_event().is_some() {}
            if let Some(q) = s.quality() {
                prop_assert!((1.0..=4.5).contains(&q.mos_cq) && (1.0..=4.5).contains(&q.mos_lq));
            }
            let _ = s.voip_metrics();
            let st = s.stats();
            prop_assert!(st.packets_expected as i64 - st.packets_lost <= st.packets_received as i64 + 1);
        }
    }

    #[test]
    fn dtmf_sent_is_dtmf_received(digit in "[0-9*#A-D]", duration_ms in 1u32..30_000, ptime in prop_oneof![Just(10u32), Just(20), Just(30)]) {
        let mut config = SenderConfig::new(AudioFormat::pcmu(ptime));
        config.telephone_event_pt = Some(101);
        let mut sender = RtpSender::new(config, &mut SessionRng::new(1)).unwrap();
        sender.queue_dtmf(&digit, duration_ms).unwrap();
        let mut receiver = DtmfReceiver::new(1000 * MS);
        let mut events = Vec::new();
        let mut out = Vec::new();
        let mut ends = 0;
        let mut now = 0;
        while sender.dtmf_pending() {
            if sender.send_frame(Frame::Nothing, now, &mut out).is_some() {
                let p = RtpPacket::parse(&out).unwrap();
                let ev = TelephoneEvent::parse(p.payload).unwrap();
                ends += u32::from(ev.end);
                receiver.on_packet(p.header.timestamp, ev, now, |e| events.push(e));
            }
            now += i64::from(ptime) * MS;
        }
        prop_assert_eq!(ends, 3);
        let ticks = duration_ms * 8;
        prop_assert_eq!(events.len(), 2);
        let expected = DtmfEvent::Ended { event: TelephoneEvent::event_of_digit(digit.chars().next().unwrap()).unwrap(), timestamp: events[0].timestamp(), duration: ticks, inferred: false };
        prop_assert_eq!(events[1], expected);
    }
}

trait Timestamp {
    fn timestamp(self) -> u32;
}

impl Timestamp for DtmfEvent {
    fn timestamp(self) -> u32 {
        match self {
            DtmfEvent::Started { timestamp, .. } | DtmfEvent::Ended { timestamp, .. } => timestamp,
        }
    }
}
