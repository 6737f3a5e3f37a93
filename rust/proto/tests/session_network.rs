//! Two sessions talking through a tiny in-memory network with a simulated
//! clock, one-way delay, jitter (hence reordering) and bursty loss: the
//! statistics, round-trip time, loss fractions and DTMF events that come
//! out must match what the network did.

use rtpcore_proto::rtp::RtpPacket;
use rtpcore_proto::session::dtmf::DtmfEvent;
use rtpcore_proto::session::ntp::NtpClock;
use rtpcore_proto::session::rng::SessionRng;
use rtpcore_proto::session::sender::{AudioFormat, Frame, SenderConfig};
use rtpcore_proto::session::{DropReason, Incoming, Session, SessionConfig, SessionEvent};

const MS: i64 = 1_000_000;
const A: u32 = 1;
const B: u32 = 2;
const MALLORY: u32 = 3;

struct InFlight {
    deliver_at: i64,
    from: u32,
    to: u32,
    bytes: Vec<u8>,
}

/// The network: a delay of `base_ms` plus uniform jitter of up to
/// `jitter_ms` each way; RTP from A to B is lost in the bursts `lose`
/// decides per packet index.
struct Network {
    rng: SessionRng,
    base_ms: i64,
    jitter_ms: i64,
    queue: Vec<InFlight>,
}

impl Network {
    fn send(&mut self, now: i64, from: u32, to: u32, bytes: &[u8]) {
        let jitter = (self.rng.next_f64() * self.jitter_ms as f64 * MS as f64) as i64;
        self.queue.push(InFlight { deliver_at: now + self.base_ms * MS + jitter, from, to, bytes: bytes.to_vec() });
    }

    fn due(&mut self, now: i64) -> Vec<InFlight> {
        let (due, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|p| p.deliver_at <= now);
        self.queue = rest;
        let mut due = due;
        due.sort_by_key(|p| p.deliver_at);
        due
    }
}

fn config(seed: u64, cname: &str) -> SessionConfig {
    let mut sender = SenderConfig::new(AudioFormat::pcmu(20));
    sender.telephone_event_pt = Some(101);
    sender.comfort_noise_pt = Some(13);
    // Both sides' clocks start at the same NTP time: one wall clock.
    SessionConfig::new(sender, cname, NtpClock { ntp_at_epoch: 0xE000_0000_0000_0000 }, seed)
}

#[derive(Default)]
struct Seen {
    events: Vec<SessionEvent>,
    media: u64,
    comfort_noise: u64,
    out_of_order: u64,
}

fn deliver(session: &mut Session<u32>, seen: &mut Seen, from: u32, bytes: &[u8], now: i64) {
    match session.handle_datagram(from, bytes, now) {
        Incoming::Media(m) => {
            seen.media += 1;
            seen.out_of_order += u64::from(m.out_of_order);
            assert_eq!(m.arrival_ns, now);
            seen.comfort_noise += u64::from(m.comfort_noise);
        }
        Incoming::Consumed | Incoming::Dropped(_) => {}
        Incoming::NotMedia(kind) => panic!("unexpected {kind:?}"),
    }
    while let Some(e) = session.poll_event() {
        seen.events.push(e);
    }
}

/// Drops A->B RTP packets number 100..103 (a burst of 4), every 50th from
/// 500 on (isolated losses) and 1000..1001, and nothing during the DTMF.
fn lost(index: u64) -> bool {
    (100..104).contains(&index) || ((500..1400).contains(&index) && index.is_multiple_of(50)) || (1000..1002).contains(&index)
}

#[test]
fn two_sessions_over_a_lossy_jittery_network() {
    let mut a = Session::new(config(11, "a@test"), 0).unwrap();
    let mut b = Session::new(config(22, "b@test"), 0).unwrap();
    let mut net = Network { rng: SessionRng::new(5), base_ms: 40, jitter_ms: 30, queue: Vec::new() };
    let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
    let mut out = Vec::new();
    let speech = [0x55u8; 160];
    let mut a_rtp_index = 0u64;
    let mut dropped = 0u64;
    let mut dtmf_window = (0u16, 0u16);
    let end = 32_000 * MS;
    let mut now = 0;
    while now <= end {
        if now % (20 * MS) == 0 && now < 30_000 * MS {
            if now == 5_000 * MS {
                a.send_dtmf("1#", 100).unwrap();
            }
            // A talks, with a pause from 10 s to 12 s (comfort noise).
            let frame = if (10_000 * MS..12_000 * MS).contains(&now) { Frame::Silence { noise_level: 70 } } else { Frame::Speech(&speech) };
            if let Some(sent) = a.send_frame(frame, now, &mut out) {
                if matches!(sent.kind, rtpcore_proto::session::sender::SentKind::TelephoneEvent(_)) {
                    if dtmf_window.0 == 0 {
                        dtmf_window.0 = sent.sequence_number;
                    }
                    dtmf_window.1 = sent.sequence_number;
                }
                let is_dtmf = matches!(sent.kind, rtpcore_proto::session::sender::SentKind::TelephoneEvent(_));
                if lost(a_rtp_index) && !is_dtmf && RtpPacket::parse(&out).unwrap().header.payload_type == 0 {
                    dropped += 1;
                } else {
                    net.send(now, A, B, &out);
                }
                a_rtp_index += 1;
            }
            if b.send_frame(Frame::Speech(&speech), now, &mut out).is_some() {
                net.send(now, B, A, &out);
            }
        }
        if now == 15_000 * MS {
            // A third party sprays packets at B mid-call.
            let mut s = rtpcore_proto::session::sender::RtpSender::new(SenderConfig::new(AudioFormat::pcmu(20)), &mut SessionRng::new(99)).unwrap();
            for i in 0..5 {
                s.send_frame(Frame::Speech(&speech), now + i, &mut out);
                assert_eq!(b.handle_datagram(MALLORY, &out, now), Incoming::Dropped(DropReason::Foreign));
            }
        }
        for p in net.due(now) {
            let (session, seen) = if p.to == A { (&mut a, &mut seen_a) } else { (&mut b, &mut seen_b) };
            deliver(session, seen, p.from, &p.bytes, now);
        }
        for (session, seen, from, to) in [(&mut a, &mut seen_a, A, B), (&mut b, &mut seen_b, B, A)] {
            if now >= session.next_deadline_ns() {
                session.handle_timeout(now);
                if session.poll_rtcp(now, &mut out) {
                    net.send(now, from, to, &out);
                }
                while let Some(e) = session.poll_event() {
                    seen.events.push(e);
                }
            }
        }
        now += MS;
    }

    // Both ends latched onto each other.
    assert_eq!((a.remote(), b.remote()), (Some(B), Some(A)));
    assert!(seen_b.events.contains(&SessionEvent::RemoteLatched { ssrc: a.ssrc() }));
    let sb = b.stats();
    assert_eq!(sb.dropped.foreign, 5, "the third party's packets");
    // B lost exactly what the network dropped (the first packet of A is
    // spent on latching, RFC 7362 style, and is not counted as received).
    assert_eq!(sb.packets_lost, dropped as i64);
    assert_eq!(sb.dropped.latching, 1);
    assert_eq!(sb.burst.lost, dropped);
    // The 2 s pause: one CN packet at its start (the refresh is 5 s).
    assert_eq!(seen_b.comfort_noise, 1);
    assert!(seen_b.out_of_order > 0, "30 ms of jitter on 20 ms packets reorders some");
    assert!(sb.jitter_ms > 1.0 && sb.jitter_ms < 30.0, "{}", sb.jitter_ms);
    // One burst of four (100..104) and one of two (1000, 1001 next to
    // 1000's isolated neighbour 1000 % 50 == 0) are bursts; the rest gaps.
    assert!(sb.burst.mean_burst_packets >= 2.0 && sb.burst.burst_density > 0.5, "{:?}", sb.burst);
    assert!(sb.burst.gap_density > 0.0 && sb.burst.gap_density < 0.03);
    assert!(sb.burst.burst_ratio > 1.0);

    // Round trip: 2 x 40 ms plus up to 2 x 30 ms of jitter.
    for s in [&a, &b] {
        let rtt = s.stats().rtt_ns.expect("RTT measured");
        assert!((80 * MS..=141 * MS).contains(&rtt), "{rtt}");
    }
    // A heard B's reports on its stream: the loss fraction and cumulative
    // loss follow what the network dropped.
    let reports: Vec<_> = seen_a
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ReportReceived(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert!(reports.len() >= 4, "{}", reports.len());
    let last = reports.last().unwrap();
    assert_eq!(last.block.ssrc, a.ssrc());
    assert!(last.block.cumulative_lost > 0 && last.block.cumulative_lost <= dropped as i32);
    assert!(reports.iter().any(|r| r.block.fraction_lost > 0));
    // B's XR VoIP metrics reached A.
    let xr = a.remote_voip_metrics().expect("XR received");
    assert!(xr.loss_rate > 0 && xr.round_trip_delay >= 80 && xr.gmin == 16);
    assert!((10..=45).contains(&xr.mos_cq), "{xr:?}");
    let q = b.quality().unwrap();
    assert!(q.mos_cq < 4.41 && q.mos_cq > 3.0, "{q:?}");

    // DTMF: each digit started and ended once, with its full 100 ms.
    let dtmf: Vec<DtmfEvent> = seen_b
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Dtmf(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(dtmf.len(), 4, "{dtmf:?}");
    assert_eq!((dtmf[0].digit(), dtmf[2].digit()), (Some('1'), Some('#')));
    for ended in [dtmf[1], dtmf[3]] {
        assert!(matches!(ended, DtmfEvent::Ended { duration: 800, inferred: false, .. }), "{ended:?}");
    }
    assert!(dtmf_window.1 > dtmf_window.0);

    // Closing A sends a BYE that B reports.
    let mut bye = Vec::new();
    assert!(a.close(end, Some(b"done"), &mut bye));
    deliver(&mut b, &mut seen_b, A, &bye, end + 40 * MS);
    assert!(seen_b.events.contains(&SessionEvent::ByeReceived { ssrc: a.ssrc(), reason: Some(b"done".to_vec()) }));
    assert!(a.send_frame(Frame::Speech(&speech), end, &mut out).is_none());
}
