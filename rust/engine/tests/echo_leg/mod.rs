//! A minimal pipeline for driver tests: sends whatever the application
//! wrote (one chunk per tick, a one-byte filler otherwise) and hands every
//! received datagram back as a frame with its kernel arrival time.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtpcore_engine::{AppAudio, DrivenLeg, Engine, EngineConfig, Pop, StreamShared, Transmit};

pub struct EchoConfig {
    pub remote: SocketAddr,
    pub ptime_ms: i64,
}

pub struct EchoLeg {
    remote: SocketAddr,
    ptime_ns: i64,
    outbound: VecDeque<Vec<u8>>,
    frames: VecDeque<(Vec<u8>, i64)>,
    events: VecDeque<String>,
    rtcp_due: i64,
    last_sent: Vec<u8>,
}

impl DrivenLeg for EchoLeg {
    type Config = EchoConfig;
    type Frame = (Vec<u8>, i64);
    type Event = String;
    type Stats = usize;
    type Error = String;

    fn remote_addresses(config: &EchoConfig) -> (SocketAddr, Option<SocketAddr>) {
        // RTCP goes to RTP + 1 (on_rtcp_timer).
        (config.remote, Some(SocketAddr::new(config.remote.ip(), config.remote.port() + 1)))
    }

    fn new(config: EchoConfig, now_ns: i64) -> Result<Self, String> {
        if config.ptime_ms <= 0 {
            return Err("ptime must be positive".into());
        }
        Ok(EchoLeg {
            remote: config.remote,
            ptime_ns: config.ptime_ms * 1_000_000,
            outbound: VecDeque::new(),
            frames: VecDeque::new(),
            events: VecDeque::new(),
            rtcp_due: now_ns + 50_000_000,
            last_sent: Vec::new(),
        })
    }
    fn reconfigure(&mut self, config: EchoConfig, _now_ns: i64) -> Result<(), String> {
        self.remote = config.remote;
        self.ptime_ns = config.ptime_ms * 1_000_000;
        Ok(())
    }
    fn ptime_ns(&self) -> i64 {
        self.ptime_ns
    }
    fn handle_datagram(&mut self, _from: SocketAddr, datagram: &[u8], rtcp_socket: bool, arrival_ns: i64) {
        // Stands for a bug in a pipeline, for the isolation test.
        assert_ne!(datagram, PANIC, "the echo leg was told to panic");
        if rtcp_socket {
            self.events.push_back("rtcp".into());
        } else {
            self.frames.push_back((datagram.to_vec(), arrival_ns));
        }
    }
    fn on_tick(&mut self, _now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        let data = self.outbound.pop_front().unwrap_or_else(|| vec![0]);
        transmit(Transmit { to: self.remote, rtcp_socket: false, data: &data });
        self.last_sent = data;
    }
    fn next_rtcp_deadline_ns(&self) -> i64 {
        self.rtcp_due
    }
    fn on_rtcp_timer(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        let to = SocketAddr::new(self.remote.ip(), self.remote.port() + 1);
        transmit(Transmit { to, rtcp_socket: true, data: b"report" });
        self.rtcp_due = now_ns + 50_000_000;
    }
    fn write_audio(&mut self, audio: &AppAudio) -> Result<(), String> {
        match audio {
            AppAudio::Payload(bytes) => self.outbound.push_back(bytes.clone()),
            AppAudio::Pcm(_) => return Err("payload only".into()),
        }
        Ok(())
    }
    fn mark(&mut self, name: String) {
        self.events.push_back(format!("mark {name} behind {}", self.outbound.len()));
    }
    fn clear(&mut self) {
        self.outbound.clear();
    }
    fn send_dtmf(&mut self, digits: &str, _duration_ms: u32) -> Result<(), String> {
        self.events.push_back(format!("dtmf {digits}"));
        Ok(())
    }
    fn pop_frame(&mut self) -> Option<(Vec<u8>, i64)> {
        self.frames.pop_front()
    }
    fn poll_event(&mut self) -> Option<String> {
        self.events.pop_front()
    }
    fn close(&mut self, _now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        transmit(Transmit { to: self.remote, rtcp_socket: false, data: b"bye" });
    }
    fn stats(&self) -> usize {
        self.frames.len()
    }
    fn queued_ms(&self) -> u32 {
        (self.outbound.len() as i64 * self.ptime_ns / 1_000_000) as u32
    }
    fn app_sample_rate(&self) -> u32 {
        8000
    }
    fn frame_pcm(&self, frame: &(Vec<u8>, i64), out: &mut Vec<i16>) {
        out.extend(frame.0.iter().map(|&b| i16::from(b)));
    }
    fn last_sent_pcm(&self, out: &mut Vec<i16>) {
        out.extend(self.last_sent.iter().map(|&b| -i16::from(b)));
    }
}

/// An engine on a port range of its own: tests run in parallel, and a
/// port one test released must not receive another test's stray packets.
pub fn engine(max_queued_ms: u32) -> Engine<EchoLeg> {
    Engine::new(EngineConfig { workers: 2, max_queued_ms, ..loopback_config() }).unwrap()
}

/// Defaults on 127.0.0.1, with a port range no other engine of this test
/// binary uses.
pub fn loopback_config() -> EngineConfig {
    static NEXT_RANGE: AtomicU16 = AtomicU16::new(41000);
    let low = NEXT_RANGE.fetch_add(1000, Ordering::Relaxed);
    EngineConfig { bind_ip: "127.0.0.1".parse().unwrap(), port_range: (low, low + 999), ..EngineConfig::default() }
}

/// A datagram that makes the echo leg panic.
pub const PANIC: &[u8] = b"panic!";

pub type Stream = Arc<StreamShared<EchoLeg>>;

pub fn pair(engine: &Engine<EchoLeg>, ptime_ms: i64) -> (Stream, Stream) {
    let a = engine.allocate().unwrap();
    let b = engine.allocate().unwrap();
    engine.start(&a, EchoConfig { remote: b.local_rtp, ptime_ms }, None).unwrap();
    engine.start(&b, EchoConfig { remote: a.local_rtp, ptime_ms }, None).unwrap();
    (a, b)
}

pub fn wait_frame(stream: &Stream) -> (Vec<u8>, i64) {
    match stream.wait_frame(Some(Duration::from_secs(2))) {
        Pop::Item(frame) => frame,
        other => panic!("no frame: {other:?}"),
    }
}
