//! A simulated network and two call legs talking over it, in simulated
//! time: loss, delay, jitter (and so reordering) from a seeded generator,
//! so every run is the same.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use rtpcore_engine::{CallLeg, FrameData, LegConfig, LegEvent, SrtpKeying, Transmit};
use rtpcore_proto::srtp::Profile;

pub const MS: i64 = 1_000_000;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// xorshift64*: small, seeded, good enough for impairments.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the network does to every datagram.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub loss: f64,
    pub delay_ms: i64,
    /// Extra delay, uniform in 0..=jitter_ms: packets overtake each other.
    pub jitter_ms: i64,
}

pub const CLEAN: Impairment = Impairment { loss: 0.0, delay_ms: 20, jitter_ms: 0 };
pub const IMPAIRED: Impairment = Impairment { loss: 0.02, delay_ms: 20, jitter_ms: 30 };

#[derive(Debug)]
pub struct InFlight {
    pub at_ns: i64,
    pub order: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub at_ns: i64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub rtcp_socket: bool,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct Network {
    pub rng: Rng,
    pub impairment: Impairment,
    pub in_flight: Vec<InFlight>,
    order: u64,
    /// Every datagram sent when `record` is on, for wire checks.
    pub sent: Vec<Sent>,
    pub record: bool,
}

impl Network {
    pub fn new(seed: u64, impairment: Impairment) -> Self {
        Network { rng: Rng::new(seed), impairment, in_flight: Vec::new(), order: 0, sent: Vec::new(), record: false }
    }

    pub fn send(&mut self, from: SocketAddr, tx: Transmit<'_>, now_ns: i64) {
        if self.record {
            self.sent.push(Sent { at_ns: now_ns, from, to: tx.to, rtcp_socket: tx.rtcp_socket, data: tx.data.to_vec() });
        }
        let imp = self.impairment;
        if self.rng.unit() < imp.loss {
            return;
        }
        let extra = if imp.jitter_ms > 0 { (self.rng.next_u64() % (imp.jitter_ms as u64 + 1)) as i64 } else { 0 };
        self.order += 1;
        self.in_flight.push(InFlight {
            at_ns: now_ns + (imp.delay_ms + extra) * MS,
            order: self.order,
            from,
            to: tx.to,
            data: tx.data.to_vec(),
        });
    }

    /// Takes the datagrams due by `now_ns`, in arrival order.
    pub fn due(&mut self, now_ns: i64) -> Vec<InFlight> {
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at_ns <= now_ns {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at_ns, p.order));
        due
    }
}

pub const A: &str = "10.0.0.1:4000";
pub const B: &str = "10.0.0.2:5000";

pub fn keying(seed: u8) -> SrtpKeying {
    SrtpKeying {
        profile: Profile::AesCm128HmacSha1_80,
        master_key: (0..16).map(|i| seed.wrapping_mul(31).wrapping_add(i)).collect(),
        master_salt: (0..14).map(|i| seed.wrapping_mul(17).wrapping_add(100 + i)).collect(),
    }
}

/// Two legs, A and B, configured as the two ends of one call: what A
/// sends with its keys B receives with the same keys.
pub struct Call {
    pub legs: [CallLeg; 2],
    pub addrs: [SocketAddr; 2],
    pub net: Network,
    pub now_ns: i64,
    /// B ticks this many ms after A (the two ends' clocks are not aligned).
    pub phase_ms: i64,
    /// Frames each leg handed to its application, PCM concatenated.
    pub received_pcm: [Vec<i16>; 2],
    pub received_payload: [Vec<u8>; 2],
    pub events: [Vec<LegEvent>; 2],
}

impl Call {
    /// `configure` gets each leg's base config (index 0 = A, 1 = B).
    pub fn new(base: &LegConfig, srtp: bool, impairment: Impairment, seed: u64) -> Self {
        let mut configs = [base.clone(), base.clone()];
        for (i, c) in configs.iter_mut().enumerate() {
            c.cname = format!("leg{i}@test");
            c.rng_seed = seed * 2 + i as u64 + 1;
            if srtp {
                c.srtp_send = Some(keying(i as u8 + 1));
                c.srtp_recv = Some(keying(2 - i as u8));
            }
        }
        Self::with_configs(configs, impairment, seed)
    }

    pub fn with_configs(configs: [LegConfig; 2], impairment: Impairment, seed: u64) -> Self {
        let addrs = [addr(A), addr(B)];
        let [ca, cb] = configs;
        let a = CallLeg::new(ca, addrs[1], None, 0).expect("leg A");
        let b = CallLeg::new(cb, addrs[0], None, 0).expect("leg B");
        Call {
            legs: [a, b],
            addrs,
            net: Network::new(seed, impairment),
            now_ns: 0,
            phase_ms: 7,
            received_pcm: [Vec::new(), Vec::new()],
            received_payload: [Vec::new(), Vec::new()],
            events: [Vec::new(), Vec::new()],
        }
    }

    /// Runs for `ms` milliseconds of simulated time, 1 ms at a time;
    /// `app(leg, now_ms, &mut CallLeg)` runs right before each tick.
    pub fn run(&mut self, ms: i64, mut app: impl FnMut(usize, i64, &mut CallLeg)) {
        let ptime = i64::from(self.legs[0].ptime_ms());
        let end = self.now_ns + ms * MS;
        while self.now_ns < end {
            let now = self.now_ns;
            for p in self.net.due(now) {
                if let Some(i) = self.addrs.iter().position(|&a| a == p.to) {
                    self.legs[i].handle_datagram(p.from, &p.data, p.at_ns);
                }
            }
            let now_ms = now / MS;
            for i in 0..2 {
                let phase = if i == 0 { 0 } else { self.phase_ms };
                let from = self.addrs[i];
                let net = &mut self.net;
                let leg = &mut self.legs[i];
                if (now_ms - phase).rem_euclid(ptime) == 0 && now_ms >= phase {
                    app(i, now_ms, leg);
                    leg.on_tick(now, &mut |tx| net.send(from, tx, now));
                }
                if leg.next_rtcp_deadline_ns() <= now {
                    leg.on_rtcp_timer(now, &mut |tx| net.send(from, tx, now));
                }
                while let Some(frame) = leg.pop_frame() {
                    match frame.data {
                        FrameData::Pcm(pcm) => self.received_pcm[i].extend_from_slice(&pcm),
                        FrameData::Payload(p) => self.received_payload[i].extend_from_slice(&p),
                    }
                }
                while let Some(e) = leg.poll_event() {
                    self.events[i].push(e);
                }
            }
            self.now_ns += MS;
        }
    }
}

/// A speech-like test signal at `rate`: voiced "syllables" (harmonics of a
/// gliding pitch under a formant-ish tilt, below 3.4 kHz) with pauses.
pub fn speechlike(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f0 = 140.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / f64::from(rate);
            // 4 syllables a second, with a pause every 1.5 s.
            let syllable = (std::f64::consts::PI * 4.0 * t).sin().abs();
            let pause = if (t % 1.5) > 1.2 { 0.0 } else { 1.0 };
            let mut x = 0.0;
            let mut k = 1.0;
            while k * f0 < 3300.0 {
                x += (k * phase).sin() / k;
                k += 1.0;
            }
            (6000.0 * syllable * pause * x) as i16
        })
        .collect()
}

/// Normalised correlation of `sent[from..to]` with `received` shifted by
/// `lag`, looking at every `step`th sample.
fn correlation_at(sent: &[i16], received: &[i16], from: usize, to: usize, lag: usize, step: usize) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
    for i in (from..to).step_by(step) {
        let x = f64::from(sent[i]);
        let y = f64::from(received.get(i + lag).copied().unwrap_or(0));
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

/// How well `received` reproduces `sent` through a path of unknown,
/// varying delay (the jitter buffer adapts its delay by time-stretching,
/// so one lag does not fit a whole call): `sent` is cut into segments of
/// `segment` samples, each finds its best lag up to `max_lag` (every lag,
/// summing over every 4th sample, then refined at the best few with every
/// sample; a coarser lag grid would catch pitch-period multiples of
/// voiced speech instead), and the segments' correlations are
/// averaged weighted by their energy (pauses do not count).
pub fn segment_correlation(sent: &[i16], received: &[i16], segment: usize, max_lag: usize) -> f64 {
    let (mut total, mut weight) = (0.0, 0.0);
    for from in (0..sent.len().saturating_sub(segment)).step_by(segment) {
        let to = from + segment;
        let energy: f64 = sent[from..to].iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if energy < segment as f64 * 1e4 {
            continue;
        }
        let coarse = (0..max_lag)
            .max_by(|&a, &b| correlation_at(sent, received, from, to, a, 4).total_cmp(&correlation_at(sent, received, from, to, b, 4)))
            .unwrap_or(0);
        let best = (coarse.saturating_sub(3)..coarse + 4)
            .map(|lag| correlation_at(sent, received, from, to, lag, 1))
            .fold(f64::MIN, f64::max);
        total += best * energy;
        weight += energy;
    }
    if weight == 0.0 {
        0.0
    } else {
        total / weight
    }
}

/// The shared data directory (`RTPCORE_SHARED`, else `shared/` beside the
/// repository), as the Python tests find it.
pub fn shared_path(parts: &[&str]) -> PathBuf {
    let base = std::env::var_os("RTPCORE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = parts.iter().fold(base, |p, part| p.join(part));
    assert!(path.exists(), "shared data not found at {}; set RTPCORE_SHARED", path.display());
    path
}

/// The samples of a 16-bit mono PCM WAV file.
pub fn read_wav(path: &std::path::Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).expect("readable WAV");
    assert_eq!(&bytes[..4], b"RIFF");
    let mut at = 12;
    let mut rate = 0;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "PCM");
            assert_eq!(u16::from_le_bytes([body[2], body[3]]), 1, "mono");
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            return (rate, body.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect());
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}
