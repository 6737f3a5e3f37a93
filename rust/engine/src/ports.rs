//! The RTP port allocator: which even ports of the configured range are
//! free. Pure bookkeeping (binding is the caller's job, so a port another
//! process holds is simply skipped and tried again later).

use std::fmt;

/// Why a port range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRangeError(String);

impl fmt::Display for PortRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortRangeError {}

/// Hands out even RTP ports (RTCP takes RTP + 1, RFC 3550 section 11) from
/// an inclusive range, round-robin.
///
/// Round-robin rather than lowest-free: a port released by one call is
/// reused as late as possible, so stray packets still in flight to the old
/// call do not land in a new one.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    // One flag per even port: first, first + 2, ...
    in_use: Vec<bool>,
    used: usize,
    cursor: usize,
}

impl PortAllocator {
    /// An allocator over `low..=high`. The pairs are the even ports `p` with
    /// both `p` and `p + 1` inside the range; there must be at least one.
    pub fn new(low: u16, high: u16) -> Result<Self, PortRangeError> {
        if low == 0 || low > high {
            return Err(PortRangeError(format!("port_range: need 1 <= low <= high, got ({low}, {high})")));
        }
        let first = low + (low & 1);
        if first >= high {
            return Err(PortRangeError(format!(
                "port_range: ({low}, {high}) holds no even RTP port with its RTCP port after it"
            )));
        }
        let pairs = usize::from((high - first - 1) / 2 + 1);
        Ok(PortAllocator { first, in_use: vec![false; pairs], used: 0, cursor: 0 })
    }

    /// How many RTP ports (pairs) the range holds.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    /// How many are allocated.
    pub fn in_use(&self) -> usize {
        self.used
    }

    /// Allocates the next free even port for which `bind` succeeds and
    /// returns `bind`'s value. Ports whose `bind` fails (held by another
    /// process) stay free and are skipped; after one full lap the last
    /// error is returned, or `None` if every port was already allocated.
    pub fn allocate<T, E>(&mut self, mut bind: impl FnMut(u16) -> Result<T, E>) -> Option<Result<(u16, T), E>> {
        let mut last_error = None;
        for _ in 0..self.in_use.len() {
            let index = self.cursor;
            self.cursor = (self.cursor + 1) % self.in_use.len();
            if self.in_use[index] {
                continue;
            }
            let port = self.port_at(index);
            match bind(port) {
                Ok(value) => {
                    self.in_use[index] = true;
                    self.used += 1;
                    return Some(Ok((port, value)));
                }
                Err(e) => last_error = Some(e),
            }
        }
        last_error.map(Err)
    }

    /// Returns `port` to the pool. Ports that were not allocated here are
    /// ignored (releasing twice is harmless).
    pub fn release(&mut self, port: u16) {
        if port < self.first || !(port - self.first).is_multiple_of(2) {
            return;
        }
        let index = usize::from((port - self.first) / 2);
        if let Some(flag) = self.in_use.get_mut(index) {
            if *flag {
                *flag = false;
                self.used -= 1;
            }
        }
    }

    fn port_at(&self, index: usize) -> u16 {
        // index < in_use.len(), which `new` sized to fit below `high`.
        self.first + 2 * index as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(port: u16) -> Result<u16, ()> {
        Ok(port)
    }

    #[test]
    fn hands_out_even_pairs_inside_the_range() {
        let mut ports = PortAllocator::new(10001, 10008).unwrap();
        // 10002..10003, 10004..10005, 10006..10007; 10008 has no room for RTCP.
        assert_eq!(ports.capacity(), 3);
        let got: Vec<u16> = (0..3).map(|_| ports.allocate(ok).unwrap().unwrap().0).collect();
        assert_eq!(got, vec![10002, 10004, 10006]);
        assert!(ports.allocate(ok).is_none(), "exhausted");
        assert_eq!(ports.in_use(), 3);
    }

    #[test]
    fn reuses_released_ports_last() {
        let mut ports = PortAllocator::new(2000, 2009).unwrap();
        let a = ports.allocate(ok).unwrap().unwrap().0;
        ports.release(a);
        let b = ports.allocate(ok).unwrap().unwrap().0;
        assert_ne!(a, b, "round-robin, not lowest-first");
        ports.release(b);
        ports.release(b);
        ports.release(1);
        ports.release(2001);
        assert_eq!(ports.in_use(), 0);
        let all: Vec<u16> = (0..5).map(|_| ports.allocate(ok).unwrap().unwrap().0).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, vec![2000, 2002, 2004, 2006, 2008]);
    }

    #[test]
    fn skips_ports_that_fail_to_bind() {
        let mut ports = PortAllocator::new(3000, 3005).unwrap();
        let got = ports.allocate(|p| if p == 3000 { Err("busy") } else { Ok(p) });
        assert_eq!(got, Some(Ok((3002, 3002))));
        assert_eq!(ports.in_use(), 1);
        let all_busy = ports.allocate(|_| Err::<(), _>("busy"));
        assert_eq!(all_busy, Some(Err("busy")));
        assert_eq!(ports.in_use(), 1, "failed binds allocate nothing");
    }

    #[test]
    fn rejects_ranges_without_a_pair() {
        assert!(PortAllocator::new(0, 10).is_err());
        assert!(PortAllocator::new(10, 9).is_err());
        assert!(PortAllocator::new(10, 10).is_err());
        assert!(PortAllocator::new(11, 12).is_err());
        assert_eq!(PortAllocator::new(10, 11).unwrap().capacity(), 1);
        assert_eq!(PortAllocator::new(1, 65535).unwrap().capacity(), 32767);
    }

    #[test]
    fn matches_a_reference_model_under_any_sequence() {
        // A deterministic pseudo-random walk of allocations and releases,
        // checked against a set: nothing is handed out twice.
        let mut ports = PortAllocator::new(5000, 5019).unwrap();
        let mut held = std::collections::BTreeSet::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 3 == 0 && !held.is_empty() {
                let victim = *held.iter().nth((state as usize / 3) % held.len()).unwrap();
                held.remove(&victim);
                ports.release(victim);
            } else {
                match ports.allocate(ok) {
                    Some(Ok((port, _))) => assert!(held.insert(port), "port {port} handed out twice"),
                    None => assert_eq!(held.len(), 10),
                    Some(Err(())) => unreachable!(),
                }
            }
            assert_eq!(ports.in_use(), held.len());
        }
    }
}
