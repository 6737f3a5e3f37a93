//! Capture analysis: any bytes, split anywhere, never panic, and the split
//! does not change the result.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::analyze::Analyzer;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut pieces = Analyzer::default();
    let in_pieces = pieces.feed(&data[..split]).and_then(|()| pieces.feed(&data[split..]));
    let mut whole = Analyzer::default();
    let at_once = whole.feed(data);
    assert_eq!(in_pieces.is_ok(), at_once.is_ok());
    if let (Ok(a), Ok(b)) = (pieces.finish(), whole.finish()) {
        assert_eq!(a.counters, b.counters);
        assert_eq!(a.streams.len(), b.streams.len());
    }
});
