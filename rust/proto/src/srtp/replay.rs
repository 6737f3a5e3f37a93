//! The packet index estimate (RFC 3711 section 3.3.1) and the replay list
//! (section 3.3.2), kept as a sliding bitmap over the highest indices seen.

/// Largest replay window a session accepts, in packets (as libsrtp: beyond
/// 2^15 the index estimate itself becomes ambiguous).
pub const MAX_REPLAY_WINDOW: u32 = 1 << 15;

/// Smallest replay window, in packets (RFC 3711 section 3.3.2: at least 64).
pub const MIN_REPLAY_WINDOW: u32 = 64;

/// Largest SRTP packet index: 32-bit ROC, 16-bit sequence number.
pub const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// Why the replay list rejected a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayKind {
    /// The index was already received inside the window.
    Duplicate,
    /// The index lies behind the window, so nothing can tell whether it was
    /// received before.
    TooOld,
}

impl ReplayKind {
    /// `"duplicate"` or `"too old"`.
    pub fn name(self) -> &'static str {
        match self {
            ReplayKind::Duplicate => "duplicate",
            ReplayKind::TooOld => "too old",
        }
    }
}

/// The 48-bit index of a packet with sequence number `seq`, guessed from the
/// highest index seen so far (RFC 3711 section 3.3.1): the candidate among
/// ROC-1, ROC and ROC+1 that lies closest to `highest`.
///
/// With ROC 0 there is no earlier roll-over, so a sequence number that would
/// need ROC-1 is read as ahead in ROC 0 (libsrtp does the same).
pub fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as u16;
    let guessed_roc = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    (guessed_roc << 16) | u64::from(seq)
}

/// The replay list of one stream: which of the last `size` indices up to the
/// highest one were received.
///
/// The bitmap is a ring addressed by `index mod ring_bits` (a power of two
/// at least `size`), so advancing the window only clears the bits of the
/// indices it skips instead of shifting the whole map.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    highest: Option<u64>,
    ring: Vec<u64>,
}

impl ReplayWindow {
    /// An empty window of `size` packets; `size` must lie in
    /// `MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW` (the session checks it).
    pub fn new(size: u32) -> Self {
        let ring_bits = size.clamp(MIN_REPLAY_WINDOW, MAX_REPLAY_WINDOW).next_power_of_two();
        ReplayWindow { size: u64::from(size), highest: None, ring: vec![0; (ring_bits / 64) as usize] }
    }

    /// The highest index accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn ring_bits(&self) -> u64 {
        self.ring.len() as u64 * 64
    }

    fn slot(&self, index: u64) -> (usize, u64) {
        let bit = index & (self.ring_bits() - 1);
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    /// Whether a packet with this index may be accepted; changes nothing
    /// (the packet still has to pass authentication).
    pub fn check(&self, index: u64) -> Result<(), ReplayKind> {
        let Some(highest) = self.highest else { return Ok(()) };
        if index > highest {
            return Ok(());
        }
        if highest - index >= self.size {
            return Err(ReplayKind::TooOld);
        }
        let (word, mask) = self.slot(index);
        if self.ring[word] & mask != 0 {
            Err(ReplayKind::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated packet; `check(index)` must have passed.
    pub fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => {}
            Some(highest) if index - highest < self.ring_bits() => {
                // Forget the indices the window skips over.
                for skipped in highest + 1..index {
                    let (word, mask) = self.slot(skipped);
                    self.ring[word] &= !mask;
                }
                self.highest = Some(index);
            }
            _ => {
                self.ring.fill(0);
                self.highest = Some(index);
            }
        }
        let (word, mask) = self.slot(index);
        self.ring[word] |= mask;
    }

    /// Forgets every received index and makes `highest` the new top of the
    /// window (used when the ROC is set explicitly).
    pub fn reset(&mut self, highest: Option<u64>) {
        self.ring.fill(0);
        self.highest = highest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_follows_rfc_3711() {
        assert_eq!(estimate_index(65534, 0), 65536);
        assert_eq!(estimate_index(65536, 65535), 65535);
        assert_eq!(estimate_index(65536 + 5, 2), 65536 + 2);
        assert_eq!(estimate_index(10, 65000), 65000); // no ROC -1
        assert_eq!(estimate_index(3 << 16 | 100, 40000), 2 << 16 | 40000);
        assert_eq!(estimate_index(3 << 16 | 40000, 100), 4 << 16 | 100);
    }

    #[test]
    fn window_semantics() {
        let mut w = ReplayWindow::new(128);
        assert_eq!(w.check(5), Ok(()));
        w.accept(5);
        assert_eq!(w.check(5), Err(ReplayKind::Duplicate));
        w.accept(300);
        assert_eq!(w.check(5), Err(ReplayKind::TooOld));
        assert_eq!(w.check(300 - 127), Ok(()));
        assert_eq!(w.check(300 - 128), Err(ReplayKind::TooOld));
        w.accept(299);
        assert_eq!(w.check(299), Err(ReplayKind::Duplicate));
        // A jump smaller than the ring clears exactly the skipped slots.
        w.accept(300 + 256 + 43);
        assert_eq!(w.check(300 + 256 + 43 - 1), Ok(()));
    }
}
