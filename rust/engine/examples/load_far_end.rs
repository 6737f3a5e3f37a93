//! The far end of `bench/engine_load.py`: many SRTP calls from one thread
//! and one socket pair, as cheaply as a machine can make them, so that the
//! process under test has as much of the (shared) machine as possible.
//!
//! Each call sends its remote a 20 ms G.711 packet every ptime (the calls
//! spread over the ptime's milliseconds, as real calls' clocks are), all of
//! a millisecond in one `sendmmsg`, and authenticates and decrypts every
//! packet the remote sends back, counting per call what arrived, what
//! failed SRTP and the sequence numbers that never came (RTCP, muxed or on
//! the port above, is only counted). Nothing decodes,
//! no jitter buffer: the timing and audio checks are the load tool's probes.
//!
//! Protocol on stdin/stdout, a line each:
//!   stdout  `port <local RTP port>` once bound (RTCP is the port above)
//!   stdin   `call <remote RTP port> <ssrc> <send key||salt hex> <receive key||salt hex>` (repeated)
//!   stdin   `start <payload hex>`   sending starts
//!   stdin   `stop`                  then stdout the counts as one JSON object; exit
//!
//! Among the counts, `behind` says when the sender was behind its schedule:
//! `[when a millisecond's packets were due (ns since the Unix epoch), how
//! late they went out (µs)]` for each millisecond sent more than 1 ms late,
//! and `unsent` the same for the first millisecond not sent when it stopped
//! (its lateness then, had it been sent at that moment).
//! The load tool fails a step whose measuring window saw the sender more
//! than a ptime behind: the process under test was then not offered its
//! calls' packets as they fell due.
//!
//! Build with `cargo build --release --example load_far_end` (the load tool
//! does this itself).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtpcore_engine::sys::{bind_udp, monotonic_ns, set_buffer_sizes, RecvBatch, SendBatch};
use rtpcore_proto::demux::{classify, PacketKind};
use rtpcore_proto::rtp::{RtpHeader, RtpPacketBuilder};
use rtpcore_proto::srtp::{Profile, Session, SessionConfig};

const PTIME: Duration = Duration::from_millis(20);
const PHASES: usize = 20; // one per millisecond of the ptime
const SAMPLES_PER_PACKET: u32 = 160;
const PAYLOAD_TYPE_PCMU: u8 = 0;
const RECV_BATCH: usize = 64;
// Room for every call's packets of a few ptimes should the thread stall.
const SOCKET_BUFFER_BYTES: usize = 16 << 20;
// Lateness is reported above this (a sleep's own overshoot is below it).
const BEHIND_REPORTED: Duration = Duration::from_millis(1);

struct Call {
    remote: SocketAddr,
    ssrc: u32,
    send: Session,
    receive: Session,
    sequence: u16,
    timestamp: u32,
    received: u64,
    refused: u64,
    missing: u64,
    last_sequence: Option<u16>,
}

fn session(hex_key_salt: &str) -> Result<Session, String> {
    let bytes = decode_hex(hex_key_salt)?;
    let profile = Profile::AesCm128HmacSha1_80;
    let (key, salt) = bytes.split_at(profile.key_len().min(bytes.len()));
    Session::new(profile, key, salt, SessionConfig::default()).map_err(|e| e.to_string())
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(|| format!("not hex: {text:?}"));
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(format!("odd-length hex {text:?}"));
    }
    pairs.map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

fn parse_call(fields: &[&str]) -> Result<Call, String> {
    let [port, ssrc, send, receive] = fields else {
        return Err(format!("call: expected 4 fields, got {}", fields.len()));
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    Ok(Call {
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
        ssrc: ssrc.parse().map_err(|e| format!("ssrc {ssrc:?}: {e}"))?,
        send: session(send)?,
        receive: session(receive)?,
        sequence: 0,
        timestamp: 0,
        received: 0,
        refused: 0,
        missing: 0,
        last_sequence: None,
    })
}

// An even RTP port with the RTCP port above it free too, as the remote
// expects RTCP at RTP + 1 (no rtcp-mux).
fn bind_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    for port in (41_000..60_000).step_by(2) {
        let Ok(rtp) = bind_udp(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))) else { continue };
        if let Ok(rtcp) = bind_udp(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port + 1))) {
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free even port pair in 41000-60000"))
}

struct Far {
    calls: Vec<Call>,
    by_port: HashMap<u16, usize>,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    recv: RecvBatch,
    send: SendBatch,
    packet: Vec<u8>,
    protected: Vec<u8>,
    clear: Vec<u8>,
    rtcp_received: u64,
    unknown: u64,
    send_failed: u64,
    // (when a millisecond was due, ns since the Unix epoch; its lateness, µs)
    behind: Vec<(u128, u128)>,
    // The same for the first millisecond not sent, once stopped.
    unsent: (u128, u128),
}

impl Far {
    // Notes that the millisecond due `due_ns` (since the Unix epoch) went out `lateness` late.
    fn note_lateness(&mut self, (due_ns, lateness): (u128, Duration)) {
        if lateness > BEHIND_REPORTED {
            self.behind.push((due_ns, lateness.as_micros()));
        }
    }

    fn send_phase(&mut self, phase: usize, payload: &[u8]) {
        for call in self.calls.iter_mut().skip(phase).step_by(PHASES) {
            self.packet.clear();
            RtpPacketBuilder {
                payload_type: PAYLOAD_TYPE_PCMU,
                sequence_number: call.sequence,
                timestamp: call.timestamp,
                ssrc: call.ssrc,
                payload,
                ..Default::default()
            }
            .write(&mut self.packet)
            .expect("a PCMU packet without CSRCs or extensions is always writable");
            self.protected.resize(self.packet.len() + call.send.rtp_overhead(), 0);
            match call.send.protect_rtp(&self.packet, &mut self.protected) {
                Ok(len) => self.send.push(&self.rtp, call.remote, &self.protected[..len]),
                // Only index exhaustion (2^48 packets) can refuse a fresh index.
                Err(_) => self.send_failed += 1,
            }
            call.sequence = call.sequence.wrapping_add(1);
            call.timestamp = call.timestamp.wrapping_add(SAMPLES_PER_PACKET);
        }
        self.send_failed += self.send.flush().failed;
    }

    fn drain(&mut self) {
        while let Ok(count) = self.recv.recv(&self.rtp) {
            for i in 0..count {
                let Some(datagram) = self.recv.get(i) else { continue };
                let Some(&index) = self.by_port.get(&datagram.from.port()) else {
                    self.unknown += 1;
                    continue;
                };
                if classify(datagram.data) == PacketKind::Rtcp {
                    // rtcp-mux: the remote's reports come on the RTP port.
                    self.rtcp_received += 1;
                    continue;
                }
                let call = &mut self.calls[index];
                self.clear.resize(datagram.data.len(), 0);
                match call.receive.unprotect_rtp(datagram.data, &mut self.clear) {
                    Ok(len) => {
                        call.received += 1;
                        let sequence = RtpHeader::parse(&self.clear[..len])
                            .expect("SRTP authenticated a packet with a valid RTP header")
                            .sequence_number;
                        if let Some(last) = call.last_sequence {
                            // Loopback does not reorder: a step of more than one is loss.
                            call.missing += u64::from(sequence.wrapping_sub(last).wrapping_sub(1));
                        }
                        call.last_sequence = Some(sequence);
                    }
                    Err(_) => call.refused += 1,
                }
            }
            if count < RECV_BATCH {
                break;
            }
        }
        while let Ok(count) = self.recv.recv(&self.rtcp) {
            self.rtcp_received += count as u64;
            if count < RECV_BATCH {
                break;
            }
        }
    }

    fn report(&self) -> String {
        let sum = |f: fn(&Call) -> u64| self.calls.iter().map(f).sum::<u64>();
        let silent = self.calls.iter().filter(|c| c.received == 0).count();
        let behind: Vec<String> = self.behind.iter().map(|(due, late)| format!("[{due}, {late}]")).collect();
        format!(
            "{{\"calls\": {}, \"sent\": {}, \"received\": {}, \"refused\": {}, \"missing\": {}, \
             \"silent_calls\": {}, \"rtcp_received\": {}, \"unknown\": {}, \"send_failed\": {}, \
             \"behind\": [{}], \"unsent\": [{}, {}]}}",
            self.calls.len(),
            sum(|c| u64::from(c.sequence)),
            sum(|c| c.received),
            sum(|c| c.refused),
            sum(|c| c.missing),
            silent,
            self.rtcp_received,
            self.unknown,
            self.send_failed,
            behind.join(", "),
            self.unsent.0,
            self.unsent.1,
        )
    }
}

fn run() -> Result<(), String> {
    let (rtp, rtcp) = bind_pair().map_err(|e| e.to_string())?;
    for socket in [&rtp, &rtcp] {
        set_buffer_sizes(socket, SOCKET_BUFFER_BYTES);
    }
    println!("port {}", rtp.local_addr().map_err(|e| e.to_string())?.port());
    io::stdout().flush().map_err(|e| e.to_string())?;

    let mut lines = io::stdin().lines();
    let mut calls = Vec::new();
    let payload = loop {
        let line = lines.next().ok_or("stdin closed before start")?.map_err(|e| e.to_string())?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["call", rest @ ..] => calls.push(parse_call(rest)?),
            ["start", payload] => break decode_hex(payload)?,
            _ => return Err(format!("unexpected line {line:?}")),
        }
    };
    let by_port = calls.iter().enumerate().map(|(i, c)| (c.remote.port(), i)).collect();
    let mut far = Far {
        calls,
        by_port,
        rtp,
        rtcp,
        recv: RecvBatch::new(RECV_BATCH),
        send: SendBatch::new(),
        packet: Vec::new(),
        protected: Vec::new(),
        clear: Vec::new(),
        rtcp_received: 0,
        unknown: 0,
        send_failed: 0,
        behind: Vec::new(),
        unsent: (0, 0),
    };
    // The control line arrives on its own thread; the sending loop only
    // looks at a flag between milliseconds.
    // (stdin's buffer is global: what `lines` read ahead is not lost.)
    drop(lines);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    std::thread::spawn(move || {
        for line in io::stdin().lines() {
            if line.map_or(true, |l| l.trim() == "stop") {
                break;
            }
        }
        stopper.store(true, Ordering::Release);
    });

    let step = PTIME / PHASES as u32;
    // Half a millisecond off the grid the engine's ticks fall on (whole
    // milliseconds of CLOCK_MONOTONIC): the far end, below the engine's
    // workers in priority, wakes between their rounds instead of with them.
    let grid = 1_000_000;
    let off_grid = (grid / 2 - monotonic_ns().rem_euclid(grid)).rem_euclid(grid);
    std::thread::sleep(Duration::from_nanos(off_grid as u64));
    let started = Instant::now();
    let started_since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?;
    // When millisecond `slot` falls due (ns since the Unix epoch), and how late it is now.
    let lateness_of = |slot: u32| {
        let due = step * slot;
        ((started_since_epoch + due).as_nanos(), started.elapsed().saturating_sub(due))
    };
    let mut slot: u32 = 0;
    while !stop.load(Ordering::Acquire) {
        // Behind schedule, the packets still go out, late, as a real
        // sender's would, without sleeping until the schedule is caught up.
        far.note_lateness(lateness_of(slot));
        far.send_phase(slot as usize % PHASES, &payload);
        far.drain();
        slot += 1;
        if let Some(wait) = (step * slot).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let (due_ns, lateness) = lateness_of(slot);
    far.unsent = (due_ns, lateness.as_micros());
    far.drain();
    println!("{}", far.report());
    Ok(())
}

fn main() {
    if let Err(error) = run() {
        eprintln!("load_far_end: {error}");
        std::process::exit(2);
    }
}
