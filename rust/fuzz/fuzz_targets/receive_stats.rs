//! Receive statistics and unwrapping under any sequence of packets: no
//! panic (overflow included) and the counts stay consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtpcore_proto::stats::ReceiveStats;

fuzz_target!(|data: &[u8]| {
    let mut stats = ReceiveStats::new(Some(8000));
    let mut arrival: i64 = 0;
    for op in data.chunks_exact(9) {
        let seq = u16::from_be_bytes([op[0], op[1]]);
        let ts = u32::from_be_bytes([op[2], op[3], op[4], op[5]]);
        // Arrival moves by a signed step, as capture clocks can.
        arrival = arrival.saturating_add(i64::from(i16::from_be_bytes([op[6], op[7]])) * 1_000_000);
        stats.on_packet(seq, ts, op[8] & 1 != 0, arrival);
        assert_eq!(stats.lost(), stats.expected() as i64 - stats.packets() as i64);
        assert!(stats.duplicates() + stats.out_of_order() <= stats.sequence_errors());
        assert!(stats.max_jitter_ms().is_some_and(|j| j >= 0.0 && j.is_finite()));
    }
    let _ = stats.report();
});
