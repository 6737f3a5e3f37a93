//! A hashed timer wheel for the worker's deadlines, and the drift-free
//! ptime clock each call runs on.
//!
//! The wheel keeps exact nanosecond deadlines; its slots only group them by
//! [`TimerWheel::RESOLUTION_NS`] so that inserting and expiring are O(1) per
//! timer however many calls a worker holds. Cancelling is left to the
//! caller (a stale entry carries a ticket its owner no longer matches),
//! which keeps the wheel free of handles and back-pointers.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

// A far entry, ordered by deadline only (earliest first in the max-heap).
#[derive(Debug)]
struct Far<T>(i64, T);

impl<T> PartialEq for Far<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T> Eq for Far<T> {}

impl<T> PartialOrd for Far<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Far<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}

/// Timers ordered by deadline, bucketed into 1 ms slots.
#[derive(Debug)]
pub struct TimerWheel<T> {
    slots: Vec<Vec<(i64, T)>>,
    // Every slot tick before `cursor` has been expired; ticks are
    // deadline_ns / RESOLUTION_NS.
    cursor: i64,
    // Deadlines a full lap or more ahead (RTCP intervals of seconds): a
    // min-heap, moved into the slots as they come within a lap. A heap (not
    // a list) because its earliest entry may precede the later slots' ones.
    far: BinaryHeap<Far<T>>,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// Width of one slot. Deadlines stay exact; this only bounds how much
    /// is scanned to find the next one.
    pub const RESOLUTION_NS: i64 = 1_000_000;
    const SLOTS: usize = 512;

    /// An empty wheel whose time starts at `now_ns`.
    pub fn new(now_ns: i64) -> Self {
        TimerWheel {
            slots: (0..Self::SLOTS).map(|_| Vec::new()).collect(),
            cursor: now_ns.div_euclid(Self::RESOLUTION_NS),
            far: BinaryHeap::new(),
            len: 0,
        }
    }

    /// How many timers are pending (stale ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a timer. A deadline already past fires at the next
    /// [`expire`](Self::expire).
    pub fn insert(&mut self, deadline_ns: i64, value: T) {
        self.len += 1;
        let tick = deadline_ns.div_euclid(Self::RESOLUTION_NS).max(self.cursor);
        if tick - self.cursor >= Self::SLOTS as i64 {
            self.far.push(Far(deadline_ns, value));
        } else {
            self.slots[Self::slot_of(tick)].push((deadline_ns, value));
        }
    }

    /// Removes every timer due at `now_ns` or before and hands it to `fire`
    /// with its deadline, earliest slot first.
    pub fn expire(&mut self, now_ns: i64, mut fire: impl FnMut(i64, T)) {
        let now_tick = now_ns.div_euclid(Self::RESOLUTION_NS);
        if now_tick - self.cursor >= Self::SLOTS as i64 {
            // Asleep for more than a lap (a stopped debugger, a suspended
            // VM): everything in the slots is due; fire it in slot order.
            for offset in 0..Self::SLOTS as i64 {
                let slot = Self::slot_of(self.cursor + offset);
                for (deadline, value) in std::mem::take(&mut self.slots[slot]) {
                    self.len -= 1;
                    fire(deadline, value);
                }
            }
            self.cursor = now_tick;
            self.pull_far();
        }
        while self.cursor <= now_tick {
            let slot = Self::slot_of(self.cursor);
            // In insertion order: calls re-arm in the order they fired, so
            // each keeps its place in every round and its packets leave at
            // the same offset from its deadline each ptime. (Taking entries
            // out by swapping reversed the order every round, moving a call
            // back and forth by up to a round's length.) Later deadlines
            // stay, in order, without a new allocation.
            for (deadline, value) in self.slots[slot].extract_if(.., |&mut (deadline, _)| deadline <= now_ns) {
                self.len -= 1;
                fire(deadline, value);
            }
            if self.cursor == now_tick {
                // The current slot may still hold later deadlines of this
                // millisecond; it stays the cursor until they are done.
                break;
            }
            self.cursor += 1;
            self.pull_far();
        }
        while self.far.peek().is_some_and(|far| far.0 <= now_ns) {
            if let Some(Far(deadline, value)) = self.far.pop() {
                self.len -= 1;
                fire(deadline, value);
            }
        }
    }

    /// The earliest pending deadline, to arm the worker's timerfd with.
    pub fn next_deadline(&self) -> Option<i64> {
        let far = self.far.peek().map(|far| far.0);
        for offset in 0..Self::SLOTS as i64 {
            let slot = &self.slots[Self::slot_of(self.cursor + offset)];
            if let Some(min) = slot.iter().map(|(d, _)| *d).min() {
                return Some(far.map_or(min, |far| far.min(min)));
            }
        }
        far
    }

    // Far timers that came within one lap of the cursor move into their slots.
    fn pull_far(&mut self) {
        while let Some(far) = self.far.peek() {
            let tick = far.0.div_euclid(Self::RESOLUTION_NS).max(self.cursor);
            if tick - self.cursor >= Self::SLOTS as i64 {
                break;
            }
            if let Some(Far(deadline, value)) = self.far.pop() {
                self.slots[Self::slot_of(tick)].push((deadline, value));
            }
        }
    }

    fn slot_of(tick: i64) -> usize {
        tick.rem_euclid(Self::SLOTS as i64) as usize
    }
}

/// A call's packetization clock: tick `k` is due at exactly
/// `start + k * period`, so lateness of one tick never shifts the next
/// (repeated sleeps of `period` would accumulate every wake-up's lateness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtimeClock {
    start_ns: i64,
    period_ns: i64,
    next: i64,
}

/// What [`PtimeClock::advance`] decided after a tick ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// When the following tick is due.
    pub next_deadline_ns: i64,
    /// Ticks given up because the worker was too far behind to catch up.
    pub skipped: u64,
}

impl PtimeClock {
    /// How far behind the clock may fall and still run every missed tick
    /// back to back. Beyond it (the thread was descheduled for long), missed
    /// ticks are skipped rather than bursting a backlog of packets.
    pub const MAX_CATCH_UP_NS: i64 = 100_000_000;

    /// A clock of `period_ns` (positive) whose first tick is due at
    /// `start_ns`.
    pub fn new(start_ns: i64, period_ns: i64) -> Self {
        PtimeClock { start_ns, period_ns: period_ns.max(1), next: 0 }
    }

    /// A clock whose first tick is `start_ns` rounded up to a multiple of
    /// `grid_ns`. Calls of one worker sharing a grid tick at the same few
    /// phases, so one wake-up serves many calls instead of one each.
    pub fn aligned(start_ns: i64, period_ns: i64, grid_ns: i64) -> Self {
        let grid = grid_ns.max(1);
        let start = start_ns.div_euclid(grid).saturating_add(1).saturating_mul(grid);
        Self::new(start, period_ns)
    }

    /// The period.
    pub fn period_ns(&self) -> i64 {
        self.period_ns
    }

    /// When the next tick is due.
    pub fn deadline_ns(&self) -> i64 {
        self.start_ns.saturating_add(self.next.saturating_mul(self.period_ns))
    }

    /// Records that the due tick ran at `now_ns` and returns when the next
    /// one is due: one period later, or, if that is more than
    /// [`MAX_CATCH_UP_NS`](Self::MAX_CATCH_UP_NS) in the past, the first
    /// future tick of the same grid.
    pub fn advance(&mut self, now_ns: i64) -> Advance {
        self.next += 1;
        let mut skipped = 0;
        let behind = now_ns - self.deadline_ns();
        if behind > Self::MAX_CATCH_UP_NS {
            let missed = behind / self.period_ns + 1;
            self.next += missed;
            skipped = missed as u64;
        }
        Advance { next_deadline_ns: self.deadline_ns(), skipped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn drain(wheel: &mut TimerWheel<u32>, now: i64) -> Vec<(i64, u32)> {
        let mut fired = Vec::new();
        wheel.expire(now, |d, v| fired.push((d, v)));
        fired.sort();
        fired
    }

    #[test]
    fn fires_exactly_at_deadline_not_at_slot_start() {
        let mut wheel = TimerWheel::new(0);
        wheel.insert(5 * MS + 700_000, 1);
        assert_eq!(wheel.next_deadline(), Some(5 * MS + 700_000));
        assert!(drain(&mut wheel, 5 * MS + 699_999).is_empty());
        assert_eq!(drain(&mut wheel, 5 * MS + 700_000), vec![(5 * MS + 700_000, 1)]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn timers_of_one_slot_fire_in_insertion_order_round_after_round() {
        // As the worker uses it: every timer re-armed one period later, in
        // the order they fired. Each must keep its place in every round.
        let mut wheel = TimerWheel::new(0);
        let period = 20 * MS;
        for id in 0..50u32 {
            wheel.insert(period + i64::from(id) * 1_000, id);
        }
        for round in 1..=5 {
            let mut fired = Vec::new();
            wheel.expire(round * period + MS / 2, |deadline, id| fired.push((deadline, id)));
            assert_eq!(fired.iter().map(|&(_, id)| id).collect::<Vec<_>>(), (0..50).collect::<Vec<_>>(), "round {round}");
            for (deadline, id) in fired {
                wheel.insert(deadline + period, id);
            }
        }
        // A later deadline in the same slot stays behind, still in order.
        let mut wheel = TimerWheel::new(0);
        for (id, offset) in [(1u32, 100), (2, 900_000), (3, 200), (4, 950_000)] {
            wheel.insert(5 * MS + offset, id);
        }
        let mut fired = Vec::new();
        wheel.expire(5 * MS + 500_000, |_, id| fired.push(id));
        wheel.expire(6 * MS, |_, id| fired.push(id));
        assert_eq!(fired, [1, 3, 2, 4]);
    }

    #[test]
    fn past_deadlines_fire_at_once_and_far_ones_wait() {
        let mut wheel = TimerWheel::new(100 * MS);
        wheel.insert(3 * MS, 1);
        wheel.insert(5_000 * MS, 2);
        wheel.insert(100 * MS + 1, 3);
        assert_eq!(wheel.next_deadline(), Some(3 * MS));
        assert_eq!(drain(&mut wheel, 100 * MS), vec![(3 * MS, 1)]);
        assert_eq!(wheel.next_deadline(), Some(100 * MS + 1));
        assert_eq!(drain(&mut wheel, 4_999 * MS), vec![(100 * MS + 1, 3)]);
        assert_eq!(wheel.next_deadline(), Some(5_000 * MS));
        assert_eq!(drain(&mut wheel, 5_000 * MS), vec![(5_000 * MS, 2)]);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn agrees_with_a_sorted_reference_under_random_use() {
        // Random inserts (near, far, past) and random expiry steps, checked
        // against a plain sorted list: same timers fire at the same calls,
        // and next_deadline is always the true minimum.
        let mut wheel = TimerWheel::new(0);
        let mut reference: Vec<(i64, u32)> = Vec::new();
        let mut now = 0i64;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for id in 0..20_000u32 {
            let r = rand();
            if r % 4 != 0 {
                let offset = match r % 7 {
                    0 => -((rand() % (5 * MS as u64)) as i64),
                    1 => (rand() % (3_000 * MS as u64)) as i64,
                    _ => (rand() % (40 * MS as u64)) as i64,
                };
                wheel.insert(now + offset, id);
                reference.push((now + offset, id));
            } else {
                now += (rand() % (30 * MS as u64)) as i64;
                let fired = drain(&mut wheel, now);
                let mut due: Vec<_> = reference.iter().copied().filter(|(d, _)| *d <= now).collect();
                due.sort();
                reference.retain(|(d, _)| *d > now);
                assert_eq!(fired, due);
            }
            assert_eq!(wheel.next_deadline(), reference.iter().map(|(d, _)| *d).min());
            assert_eq!(wheel.len(), reference.len());
        }
    }

    #[test]
    fn a_long_sleep_fires_everything_due() {
        let mut wheel = TimerWheel::new(0);
        for i in 0..50 {
            wheel.insert(i * 37 * MS, i as u32);
        }
        let fired = drain(&mut wheel, 10_000 * MS);
        assert_eq!(fired.len(), 50);
        assert!(wheel.is_empty());
        wheel.insert(10_000 * MS + 3, 99);
        assert_eq!(drain(&mut wheel, 10_000 * MS + 3), vec![(10_000 * MS + 3, 99)]);
    }

    #[test]
    fn ptime_clock_does_not_drift_when_ticks_run_late() {
        let mut clock = PtimeClock::new(1_000, 20 * MS);
        assert_eq!(clock.deadline_ns(), 1_000);
        // Every tick runs 3 ms late; deadlines stay on start + k * 20 ms.
        for k in 1..=1_000i64 {
            let late_now = clock.deadline_ns() + 3 * MS;
            let advance = clock.advance(late_now);
            assert_eq!(advance, Advance { next_deadline_ns: 1_000 + k * 20 * MS, skipped: 0 });
        }
    }

    #[test]
    fn ptime_clock_catches_up_then_skips_long_stalls() {
        let mut clock = PtimeClock::new(0, 20 * MS);
        // 50 ms late: the next two ticks are already due and run back to back.
        let advance = clock.advance(50 * MS);
        assert_eq!(advance.next_deadline_ns, 20 * MS);
        assert_eq!(advance.skipped, 0);
        // A 1 s stall: resume on the grid after now, counting what was skipped.
        let advance = clock.advance(1_000 * MS + 5 * MS);
        assert_eq!(advance.next_deadline_ns, 1_020 * MS);
        assert_eq!(advance.skipped, 49);
        assert_eq!(advance.next_deadline_ns % (20 * MS), 0);
    }

    #[test]
    fn aligned_clocks_share_grid_phases() {
        let clock = PtimeClock::aligned(12_345_678, 20 * MS, MS);
        assert_eq!(clock.deadline_ns(), 13 * MS);
        assert_eq!(clock.period_ns(), 20 * MS);
    }
}
