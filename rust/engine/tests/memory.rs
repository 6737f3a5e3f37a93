//! Memory per call leg, measured with a counting global allocator: the
//! heap a leg holds after construction and after seconds of two-way
//! traffic (the budget is 100 KB resident per call).
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use rtpcore_engine::{CallLeg, LegConfig};
use rtpcore_proto::jitter::Codec;

/// Bytes currently allocated by this test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const BUDGET: isize = 100 * 1024;

/// Heap of one boxed leg after construction, and of two legs after
/// `seconds` of a full-duplex call (application reading and writing every
/// frame, SRTP on, a lossy jittery network), divided by two.
fn measure(codec: Codec, app_rate: u32, seconds: i64) -> (isize, isize) {
    let mut config = LegConfig::new(codec, "leg@memory.test", 1);
    config.app_sample_rate = app_rate;
    config.telephone_event_pt = Some(101);
    config.srtp_send = Some(keying(1));
    config.srtp_recv = Some(keying(1));
    let before = live();
    let one = Box::new(CallLeg::new(config.clone(), addr(B), None, 0).unwrap());
    let constructed = live() - before;
    drop(one);

    let mut net = Network::new(3, IMPAIRED);
    net.in_flight.reserve(64);
    let frame = vec![1000i16; (app_rate / 50) as usize];
    let addrs = [addr(A), addr(B)];
    let before = live();
    let mut legs = [
        Box::new(CallLeg::new(config.clone(), addrs[1], None, 0).unwrap()),
        Box::new(CallLeg::new(config, addrs[0], None, 0).unwrap()),
    ];
    legs[0].send_dtmf("12", 100).unwrap();
    for ms in 0..seconds * 1000 {
        let now = ms * MS;
        for p in net.due(now) {
            let i = addrs.iter().position(|&a| a == p.to).unwrap();
            legs[i].handle_datagram(p.from, &p.data, p.at_ns);
        }
        if ms % 20 == 0 {
            for (i, leg) in legs.iter_mut().enumerate() {
                leg.write_audio(&frame).unwrap();
                leg.on_tick(now, &mut |tx| net.send(addrs[i], tx, now));
                while leg.pop_frame().is_some() {}
                while leg.poll_event().is_some() {}
            }
        }
        for (i, leg) in legs.iter_mut().enumerate() {
            if leg.next_rtcp_deadline_ns() <= now {
                leg.on_rtcp_timer(now, &mut |tx| net.send(addrs[i], tx, now));
            }
        }
    }
    let in_flight: isize = net.in_flight.iter().map(|p| p.data.capacity() as isize).sum();
    let per_leg = (live() - before - in_flight) / 2;
    assert!(legs[1].stats().session.packets_received > 0);
    (constructed, per_leg)
}

#[test]
fn a_leg_stays_under_100_kb() {
    for (codec, rate) in [(Codec::Pcmu, 8000), (Codec::Pcmu, 48000), (Codec::G722, 16000), (Codec::G722, 48000)] {
        let (constructed, running) = measure(codec, rate, 6);
        eprintln!(
            "{codec:?} at {rate} Hz: {constructed} bytes after construction, {running} after 6 s ({} bytes inline)",
            std::mem::size_of::<CallLeg>()
        );
        assert!(constructed < BUDGET, "{codec:?} {rate}: {constructed}");
        assert!(running < BUDGET, "{codec:?} {rate}: {running}");
    }
}
