//! `EngineConfig::shared_sockets`: one socket per worker for all its calls,
//! datagrams told apart by their source, against an engine with a port
//! pair per call (what a load generator and the engine it loads are).

mod echo_leg;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_leg::*;
use rtpcore_engine::{AppAudio, Engine, EngineConfig, Pop, StreamShared};

fn shared_engine(low: u16) -> Engine<EchoLeg> {
    Engine::new(EngineConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        port_range: (low, low + 99),
        workers: 2,
        shared_sockets: true,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn start(engine: &Engine<EchoLeg>, stream: &Arc<StreamShared<EchoLeg>>, remote: SocketAddr) {
    engine.start(stream, EchoConfig { remote, ptime_ms: 10 }, None).unwrap();
}

// The frames of `stream` for a while, fillers (a lone 0) left out.
fn payloads(stream: &Arc<StreamShared<EchoLeg>>, want: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Pop::Item((data, _)) = stream.wait_frame(Some(Duration::from_millis(50))) {
            if data != [0] {
                got.push(data);
            }
        }
    }
    got
}

// Whether the echo leg reported a datagram from its remote RTCP address.
fn heard_rtcp(stream: &Arc<StreamShared<EchoLeg>>) -> bool {
    let mut heard = false;
    while let Pop::Item(event) = stream.pop_event(false) {
        heard |= event == "rtcp";
    }
    heard
}

#[test]
fn calls_on_shared_sockets_each_get_their_own_peers_datagrams() {
    let shared = shared_engine(46000);
    let own = engine(60_000);
    let calls = 6;
    let near: Vec<_> = (0..calls).map(|_| shared.allocate().unwrap()).collect();
    let far: Vec<_> = (0..calls).map(|_| own.allocate().unwrap()).collect();
    // One port per worker, whatever the number of calls; the two workers' differ.
    let ports: std::collections::BTreeSet<u16> = near.iter().map(|s| s.local_rtp.port()).collect();
    assert_eq!(ports.len(), 2);
    assert!(near.iter().all(|s| s.local_rtcp == s.local_rtp), "RTCP multiplexed");
    for (n, f) in near.iter().zip(&far) {
        start(&shared, n, f.local_rtp);
    }
    // A shared socket drops what comes from an address no running call
    // expects: the far ends may only send once the workers run every call.
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.stats().active_calls < calls && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    for (n, f) in near.iter().zip(&far) {
        start(&own, f, n.local_rtp);
    }
    for (i, (n, f)) in near.iter().zip(&far).enumerate() {
        let tag = i as u8 + 1;
        for _ in 0..5 {
            n.write(AppAudio::Payload(vec![tag; 3]), 60_000, false).unwrap();
            f.write(AppAudio::Payload(vec![100 + tag; 3]), 60_000, false).unwrap();
        }
    }
    for (i, (n, f)) in near.iter().zip(&far).enumerate() {
        let tag = i as u8 + 1;
        // Each call hears its own far end only, and the far end only it.
        assert_eq!(payloads(n, 5), vec![vec![100 + tag; 3]; 5], "call {i} on the shared socket");
        assert_eq!(payloads(f, 5), vec![vec![tag; 3]; 5], "call {i}'s far end");
    }
    // RTCP leaves the shared socket for each far end's RTCP port.
    std::thread::sleep(Duration::from_millis(150));
    assert!(far.iter().all(heard_rtcp));
    // A stranger's datagram reaches no call and is counted.
    let before = shared.stats().datagrams_unmatched;
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"who", near[0].local_rtp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.stats().datagrams_unmatched == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(shared.stats().datagrams_unmatched, before + 1);
    for stream in near.iter().chain(&far) {
        while let Pop::Item((data, _)) = stream.pop_frame(false) {
            assert_ne!(data, b"who");
        }
    }
    // Closing calls keeps the worker's socket: the others run on.
    shared.close_stream(&near[0], true);
    shared.close_stream(&near[1], true);
    far[2].write(AppAudio::Payload(vec![9; 3]), 60_000, false).unwrap();
    assert_eq!(payloads(&near[2], 1), vec![vec![9; 3]]);
    assert_eq!(shared.stats().ports_in_use, 2, "one pair per worker, not per call");
    shared.close();
    assert_eq!(shared.stats().ports_in_use, 0);
}

#[test]
fn a_remote_address_belongs_to_one_call_per_shared_socket() {
    let shared = Engine::<EchoLeg>::new(EngineConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        port_range: (46200, 46299),
        workers: 1,
        shared_sockets: true,
        ..EngineConfig::default()
    })
    .unwrap();
    // The echo leg's RTCP remote is its RTP remote + 1.
    let peer = UdpSocket::bind("127.0.0.1:46400").unwrap();
    let peer_rtcp = UdpSocket::bind("127.0.0.1:46401").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let first = shared.allocate().unwrap();
    let second = shared.allocate().unwrap();
    let third = shared.allocate().unwrap();
    start(&shared, &first, peer.local_addr().unwrap());
    // The same remote again: that call cannot run, and says so by closing.
    start(&shared, &second, peer.local_addr().unwrap());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !second.is_closed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(second.is_closed());
    // A re-INVITE onto a taken address is refused; the call keeps its own.
    start(&shared, &third, other.local_addr().unwrap());
    let refused = shared.start(&third, EchoConfig { remote: peer.local_addr().unwrap(), ptime_ms: 10 }, None);
    assert!(refused.is_err());
    peer.send_to(b"to-first", first.local_rtp).unwrap();
    other.send_to(b"to-third", third.local_rtp).unwrap();
    assert_eq!(payloads(&first, 1), vec![b"to-first".to_vec()]);
    // From the remote RTCP address: the call's, as RTCP.
    peer_rtcp.send_to(b"report", first.local_rtp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !heard_rtcp(&first) {
        assert!(Instant::now() < deadline, "the RTCP datagram reached the call as RTCP");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(payloads(&third, 1), vec![b"to-third".to_vec()]);
    // Once the first call is gone its address is free for a moved call.
    shared.close_stream(&first, true);
    shared.start(&third, EchoConfig { remote: peer.local_addr().unwrap(), ptime_ms: 10 }, None).unwrap();
    peer.send_to(b"moved", third.local_rtp).unwrap();
    assert_eq!(payloads(&third, 1), vec![b"moved".to_vec()]);
    assert_eq!(shared.stats().datagrams_unmatched, 0);
}
