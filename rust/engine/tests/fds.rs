//! Descriptor accounting: alone in its binary so no other test opens or
//! closes descriptors meanwhile.

mod echo_leg;

use std::sync::Arc;

use echo_leg::*;
use rtpcore_engine::{AppAudio, Pop, WriteError};

#[test]
fn closing_wakes_readers_and_releases_everything() {
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let engine = engine(60_000);
    let baseline = fds();
    let mut streams = Vec::new();
    for i in 0..200 {
        let (a, b) = pair(&engine, 20);
        if i % 2 == 0 {
            streams.push(a);
        } else {
            engine.close_stream(&a, true);
        }
        streams.push(b);
    }
    // Allocated but never started: closes without a worker.
    streams.push(engine.allocate().unwrap());
    assert!(fds() >= baseline + 300 * 2);
    let reader = {
        let b = Arc::clone(&streams[1]);
        std::thread::spawn(move || loop {
            if let Pop::Closed = b.wait_frame(None) {
                return;
            }
        })
    };
    for stream in &streams {
        engine.close_stream(stream, true);
        assert!(stream.is_closed());
        assert!(matches!(stream.write(AppAudio::Payload(vec![1]), 60_000, false), Err(WriteError::Closed)));
    }
    reader.join().unwrap();
    assert_eq!(fds(), baseline);
    let stats = engine.stats();
    assert_eq!((stats.ports_in_use, stats.active_calls), (0, 0), "{stats:?}");
}

