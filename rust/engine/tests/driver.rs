//! The driver end to end over loopback, with a minimal pipeline that sends
//! whatever the application wrote (one chunk per tick) and hands every
//! received datagram back as a frame with its arrival time.
//!
//! `echo_leg/` holds the pipeline; `fds.rs` runs alone in its own binary
//! because it counts the process's open descriptors.

mod echo_leg;

use std::time::{Duration, Instant};

use echo_leg::*;
use rtpcore_engine::{ready, AppAudio, Engine, EngineConfig, Pop, WriteError};

#[test]
fn audio_written_on_one_side_arrives_in_order_on_the_other() {
    let engine = engine(60_000);
    let (a, b) = pair(&engine, 10);
    for i in 1..=20u8 {
        a.write(AppAudio::Payload(vec![i; 4]), 60_000, false).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let (data, _) = wait_frame(&b);
        if data != [0] {
            got.push(data[0]);
        }
    }
    assert_eq!(got, (1..=20).collect::<Vec<u8>>());
    engine.close_stream(&a, true);
    engine.close_stream(&b, true);
    assert_eq!(engine.stats().ports_in_use, 0);
    assert_eq!(engine.stats().active_calls, 0);
}

#[test]
fn ticks_are_periodic_and_do_not_drift() {
    let engine = engine(60_000);
    let (a, b) = pair(&engine, 20);
    let mut arrivals = Vec::new();
    while arrivals.len() < 70 {
        arrivals.push(wait_frame(&b).1);
    }
    // Kernel arrival stamps of A's packets, minus where a drift-free clock
    // puts them (k * 20 ms): a late wake-up delays one packet, but the
    // offset of the last ones is where it was for the early ones. Medians
    // over 20 ticks, after a start-up the machine may have delayed: a
    // machine shared with other work makes single ticks late.
    let median = |mut v: Vec<i64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let offsets: Vec<i64> = arrivals.iter().enumerate().map(|(k, a)| a - k as i64 * 20_000_000).collect();
    let drift = median(offsets[50..70].to_vec()) - median(offsets[10..30].to_vec());
    assert!(drift.abs() < 2_000_000, "drifted {drift} ns over 40 ticks");
    let stats = engine.stats();
    assert!(stats.ticks >= 90, "{stats:?}");
    assert_eq!(stats.skipped_ticks, 0);
    drop((a, b));
}

#[test]
fn calls_tick_on_the_configured_grid() {
    // On a 10 ms grid, calls started at different moments all tick at
    // multiples of 10 ms (monotonic): their packets arrive at the same
    // phase. Medians over 20 packets, as above, for a machine that makes
    // single ticks late.
    let engine = Engine::new(EngineConfig { workers: 1, tick_grid_ms: 10, ..loopback_config() }).unwrap();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push(pair(&engine, 20));
        std::thread::sleep(Duration::from_micros(3_700));
    }
    const GRID: i64 = 10_000_000;
    for (_, b) in &pairs {
        let mut phases: Vec<i64> = (0..20).map(|_| wait_frame(b).1.rem_euclid(GRID)).collect();
        phases.sort_unstable();
        let median = phases[phases.len() / 2];
        assert!(median < 2_000_000, "arrival phases {phases:?}: not on the 10 ms grid");
    }
    for bad in [0, 11] {
        let config = EngineConfig { tick_grid_ms: bad, ..EngineConfig::default() };
        match Engine::<EchoLeg>::new(config) {
            Err(error) => assert!(error.to_string().contains("tick_grid_ms"), "{error}"),
            Ok(_) => panic!("tick_grid_ms {bad} accepted"),
        }
    }
}

#[test]
fn rtcp_timers_fire_on_the_rtcp_socket() {
    let engine = engine(60_000);
    let (_a, b) = pair(&engine, 20);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match b.pop_event(false) {
            Pop::Item(event) => {
                assert_eq!(event, "rtcp");
                break;
            }
            _ if Instant::now() > deadline => panic!("no RTCP"),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[test]
fn marks_and_dtmf_keep_their_place_and_clear_drops_audio() {
    let engine = engine(60_000);
    let (a, _b) = pair(&engine, 20);
    for _ in 0..3 {
        a.write(AppAudio::Payload(vec![1]), 60_000, false).unwrap();
    }
    a.mark("m1".into()).unwrap();
    a.send_dtmf("5".into(), 100).unwrap();
    assert_eq!(a.queued_ms(), 0, "payload units per ms defaults to 8: 3 bytes round down");
    a.set_units_per_ms(1);
    assert_eq!(a.queued_ms(), 3);
    a.clear().unwrap();
    assert_eq!(a.queued_ms(), 0);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while events.len() < 2 && Instant::now() < deadline {
        match a.pop_event(false) {
            Pop::Item(event) => events.push(event),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert_eq!(events, vec!["mark m1 behind 0", "dtmf 5"], "clear() dropped the audio before the mark");
}

#[test]
fn waiting_readers_are_put_on_the_ready_list_once() {
    let engine = engine(60_000);
    let (_a, b) = pair(&engine, 20);
    // Drain what is there, then arm.
    while let Pop::Item(_) = b.pop_frame(false) {}
    assert!(matches!(b.pop_frame(true), Pop::Empty));
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let ready = engine.take_ready();
        if !ready.is_empty() || Instant::now() > deadline {
            break ready;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].0.id, b.id);
    assert_eq!(ready[0].1, ready::FRAMES);
    // Not armed again: frames keep coming but nobody is notified.
    std::thread::sleep(Duration::from_millis(60));
    assert!(engine.take_ready().is_empty());
    assert!(matches!(b.pop_frame(false), Pop::Item(_)));
}

#[test]
fn backpressure_refuses_then_signals_writable() {
    let engine = engine(100);
    let (a, _b) = pair(&engine, 20);
    a.set_units_per_ms(1);
    a.write(AppAudio::Payload(vec![1; 100]), 100, true).unwrap();
    assert_eq!(a.write(AppAudio::Payload(vec![1; 10]), 100, true), Err(WriteError::Full));
    // The worker hands 100 "ms" to the pipeline as one 20 ms chunk; once
    // queued audio drops under the limit the stream turns writable.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ready = engine.take_ready();
        if let Some((stream, bits)) = ready.first() {
            assert_eq!(stream.id, a.id);
            assert_eq!(*bits, ready::WRITABLE);
            break;
        }
        assert!(Instant::now() < deadline, "never writable");
        std::thread::sleep(Duration::from_millis(2));
    }
    a.write(AppAudio::Payload(vec![1; 10]), 100, true).unwrap();
}

#[test]
fn engine_close_ends_running_streams() {
    let engine = engine(60_000);
    let (a, b) = pair(&engine, 20);
    let idle = engine.allocate().unwrap();
    engine.close();
    for stream in [&a, &b] {
        while let Pop::Item(_) = stream.pop_frame(false) {}
        assert!(matches!(stream.pop_frame(false), Pop::Closed));
    }
    assert!(engine.allocate().is_err());
    assert!(engine.start(&idle, EchoConfig { remote: a.local_rtp, ptime_ms: 20 }, None).is_err());
    engine.close_stream(&idle, true);
    assert_eq!(engine.stats().ports_in_use, 0);
}

#[test]
fn bad_configs_are_refused_synchronously() {
    let engine = engine(60_000);
    let a = engine.allocate().unwrap();
    let err = engine.start(&a, EchoConfig { remote: a.local_rtp, ptime_ms: 0 }, None).unwrap_err();
    assert_eq!(err.to_string(), "ptime must be positive");
    // Still allocated: a good config starts it.
    engine.start(&a, EchoConfig { remote: a.local_rtp, ptime_ms: 20 }, None).unwrap();
    // Starting again reconfigures the running call.
    engine.start(&a, EchoConfig { remote: a.local_rtp, ptime_ms: 10 }, None).unwrap();
    assert!(Engine::<EchoLeg>::new(EngineConfig { port_range: (5, 4), ..EngineConfig::default() }).is_err());
}

#[test]
fn garbage_and_oversized_datagrams_do_not_stop_a_stream() {
    let engine = engine(60_000);
    let (a, b) = pair(&engine, 20);
    let attacker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.send_to(&[0xff; 4000], b.local_rtp).unwrap();
    attacker.send_to(b"junk", b.local_rtp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while engine.stats().datagrams_truncated == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..5 {
        wait_frame(&b);
    }
    drop(a);
}

#[test]
fn recording_writes_both_directions_and_completes_on_close() {
    let engine = engine(60_000);
    let path = std::env::temp_dir().join(format!("rtpcore-driver-{}.wav", std::process::id()));
    let a = engine.allocate().unwrap();
    let b = engine.allocate().unwrap();
    engine.start(&a, EchoConfig { remote: b.local_rtp, ptime_ms: 10 }, Some(&path)).unwrap();
    engine.start(&b, EchoConfig { remote: a.local_rtp, ptime_ms: 10 }, None).unwrap();
    for i in 1..=5u8 {
        a.write(AppAudio::Payload(vec![i; 3]), 60_000, false).unwrap();
        b.write(AppAudio::Payload(vec![10 * i; 2]), 60_000, false).unwrap();
    }
    // Until A has heard all of B's chunks (on a loaded machine that can
    // take a while), then a few more ticks.
    let mut heard = 0;
    while heard < 5 {
        if wait_frame(&a).0[0] > 1 {
            heard += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    engine.close_stream(&a, true);
    let mut reader = hound::WavReader::open(&path).unwrap();
    assert_eq!((reader.spec().channels, reader.spec().sample_rate), (2, 8000));
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().filter(|&s| s > 1).collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().filter(|&s| s != 0).collect();
    // Left: what A received (B's chunks); right: what A sent (negated by
    // the echo leg so the channels cannot be confused).
    assert_eq!(left, [10, 10, 20, 20, 30, 30, 40, 40, 50, 50]);
    assert_eq!(right, [-1, -1, -1, -2, -2, -2, -3, -3, -3, -4, -4, -4, -5, -5, -5]);
    std::fs::remove_file(&path).unwrap();
    let err = engine.start(&b, EchoConfig { remote: a.local_rtp, ptime_ms: 10 }, None);
    assert!(err.is_ok(), "reconfiguring b still works");
    let c = engine.allocate().unwrap();
    let bad = engine.start(&c, EchoConfig { remote: a.local_rtp, ptime_ms: 10 }, Some(std::path::Path::new("/nonexistent/x.wav")));
    assert!(bad.unwrap_err().to_string().starts_with("record_path: cannot create"));
}

#[test]
fn a_panicking_pipeline_ends_its_call_only() {
    let engine = engine(60_000);
    let (a, b) = pair(&engine, 20);
    let (c, d) = pair(&engine, 20);
    let attacker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.send_to(PANIC, b.local_rtp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !b.is_closed() {
        assert!(Instant::now() < deadline, "the failed call was not closed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(engine.stats().calls_failed, 1);
    // The other calls, on the same workers, go on.
    for _ in 0..10 {
        wait_frame(&d);
        wait_frame(&c);
    }
    assert!(!a.is_closed());
    engine.close_stream(&b, true);
    assert_eq!(engine.stats().ports_in_use, 4 - 1);
}
