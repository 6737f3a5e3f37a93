//! The per-packet path allocates nothing in steady state: thousands of
//! calls share a process, and an allocation per packet is both time and
//! fragmentation. A counting global allocator watches a call after warm-up.
//! It counts per thread: the test harness allocates on its own threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rtpcore_proto::session::ntp::NtpClock;
use rtpcore_proto::session::sender::{AudioFormat, Frame, SenderConfig};
use rtpcore_proto::session::{Incoming, Session, SessionConfig};

struct Counting;

thread_local! {
    // Const-initialized and without a destructor: reading it never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // During thread teardown the slot may be gone; those are not ours.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MS: i64 = 1_000_000;

fn config(seed: u64) -> SessionConfig {
    let mut sender = SenderConfig::new(AudioFormat::pcma(20));
    sender.telephone_event_pt = Some(101);
    sender.comfort_noise_pt = Some(13);
    SessionConfig::new(sender, "alloc@test", NtpClock { ntp_at_epoch: 0 }, seed)
}

#[test]
fn rtp_send_and_receive_allocate_nothing_in_steady_state() {
    let mut a: Session<u8> = Session::new(config(1), 0).unwrap();
    let mut b: Session<u8> = Session::new(config(2), 0).unwrap();
    let mut out = Vec::with_capacity(1500);
    let speech = [0xD5u8; 160];
    let mut exchange = |a: &mut Session<u8>, b: &mut Session<u8>, i: i64| {
        let now = i * 20 * MS;
        // Speech with pauses (comfort noise) and a DTMF digit now and then:
        // every kind of packet the sender makes.
        let frame = if i % 100 < 80 { Frame::Speech(&speech) } else { Frame::Silence { noise_level: 60 } };
        if a.send_frame(frame, now, &mut out).is_some() {
            // Skip a packet now and then so that loss is tracked too.
            if i % 37 != 0 {
                let got = b.handle_datagram(1, &out, now + 30 * MS);
                // Only the packet that starts latching is held back.
                assert!(i == 1 || !matches!(got, Incoming::Dropped(_)), "{i}: {got:?}");
            }
        }
        while b.poll_event().is_some() {}
    };
    // Warm-up: latching, the first SSRC's statistics, the duplicate window.
    for i in 0..200 {
        exchange(&mut a, &mut b, i);
    }
    a.send_dtmf("5", 100).unwrap();
    let before = allocations();
    for i in 200..2200 {
        exchange(&mut a, &mut b, i);
        if i == 1000 {
            a.send_dtmf("7", 100).unwrap();
        }
    }
    let after = allocations();
    assert_eq!(after - before, 0, "allocations in 2000 packet intervals");
    assert!(b.stats().packets_received > 1500);
    assert!(b.stats().packets_lost > 0);
}
