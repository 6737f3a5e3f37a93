//! Receiving RFC 4733 telephone events: one start and one end per event,
//! whatever the packets' redundancy (updates, three end packets,
//! retransmissions) and losses.

use crate::payload::TelephoneEvent;

/// A DTMF (or other RFC 4733) event seen on the receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// An event began.
    Started {
        /// The event code (0..=15 are the DTMF digits).
        event: u8,
        /// The RTP timestamp of its first segment.
        timestamp: u32,
    },
    /// An event ended.
    Ended {
        /// The event code.
        event: u8,
        /// The RTP timestamp of its first segment.
        timestamp: u32,
        /// Its whole length in timestamp units, across segments.
        duration: u32,
        /// No end packet arrived: the event was ended by a timeout or by the
        /// next event, and `duration` is the last one reported.
        inferred: bool,
    },
}

impl DtmfEvent {
    /// The event code.
    pub fn event(&self) -> u8 {
        match *self {
            DtmfEvent::Started { event, .. } | DtmfEvent::Ended { event, .. } => event,
        }
    }

    /// The DTMF digit, if the event is one.
    pub fn digit(&self) -> Option<char> {
        TelephoneEvent { event: self.event(), ..Default::default() }.digit()
    }
}

#[derive(Debug, Clone, Copy)]
struct Active {
    event: u8,
    first_timestamp: u32,
    segment_timestamp: u32,
    /// Duration of the segments before the current one.
    earlier_segments: u32,
    duration: u16,
    last_ns: i64,
}

/// The largest duration one segment can state (RFC 4733 section 2.5.1.3).
const SEGMENT_MAX: u32 = 0xFFFF;

/// Turns telephone-event packets into [`DtmfEvent`]s; see the module docs.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    timeout_ns: i64,
    active: Option<Active>,
    /// Timestamp and code of the last event that ended, to ignore its
    /// repeated end packets.
    last_ended: Option<(u32, u8)>,
}

impl DtmfReceiver {
    /// A receiver that ends an event by itself when no packet of it came
    /// for `timeout_ns` (its end packets were all lost).
    pub fn new(timeout_ns: i64) -> Self {
        DtmfReceiver { timeout_ns, active: None, last_ended: None }
    }

    /// Takes one telephone-event packet with RTP timestamp `timestamp`;
    /// calls `emit` for the events it completes or begins, in order.
    pub fn on_packet(&mut self, timestamp: u32, ev: TelephoneEvent, now_ns: i64, mut emit: impl FnMut(DtmfEvent)) {
        if let Some(mut a) = self.active {
            if timestamp == a.segment_timestamp && ev.event == a.event {
                a.duration = a.duration.max(ev.duration);
                a.last_ns = now_ns;
                self.active = Some(a);
                if ev.end {
                    self.finish(false, &mut emit);
                }
                return;
            }
            let ahead = timestamp.wrapping_sub(a.segment_timestamp);
            if ev.event == a.event && ahead == SEGMENT_MAX {
                // Section 2.5.1.3: the next segment of a long event.
                a.earlier_segments = a.earlier_segments.saturating_add(SEGMENT_MAX);
                a.segment_timestamp = timestamp;
                a.duration = ev.duration;
                a.last_ns = now_ns;
                self.active = Some(a);
                if ev.end {
                    self.finish(false, &mut emit);
                }
                return;
            }
            if (ahead as i32) < 0 {
                // A straggler from before the current event.
                return;
            }
            // A newer event began without this one's end packets.
            self.finish(true, &mut emit);
        }
        if let Some((ts, code)) = self.last_ended {
            if (ts == timestamp && code == ev.event) || (timestamp.wrapping_sub(ts) as i32) < 0 {
                // Repeated end packets, or late packets of an ended event.
                return;
            }
        }
        emit(DtmfEvent::Started { event: ev.event, timestamp });
        self.active = Some(Active {
            event: ev.event,
            first_timestamp: timestamp,
            segment_timestamp: timestamp,
            earlier_segments: 0,
            duration: ev.duration,
            last_ns: now_ns,
        });
        if ev.end {
            // Only the end packets arrived: start and end at once.
            self.finish(false, &mut emit);
        }
    }

    fn finish(&mut self, inferred: bool, emit: &mut impl FnMut(DtmfEvent)) {
        if let Some(a) = self.active.take() {
            self.last_ended = Some((a.segment_timestamp, a.event));
            emit(DtmfEvent::Ended {
                event: a.event,
                timestamp: a.first_timestamp,
                duration: a.earlier_segments.saturating_add(u32::from(a.duration)),
                inferred,
            });
        }
    }

    /// When the active event times out, if one is active (ns).
    pub fn deadline_ns(&self) -> Option<i64> {
        self.active.map(|a| a.last_ns.saturating_add(self.timeout_ns))
    }

    /// Ends the active event if its timeout passed.
    pub fn poll(&mut self, now_ns: i64, mut emit: impl FnMut(DtmfEvent)) {
        if self.deadline_ns().is_some_and(|d| now_ns >= d) {
            self.finish(true, &mut emit);
        }
    }

    /// Forgets everything (a new SSRC: a new timestamp space).
    pub fn reset(&mut self) {
        self.active = None;
        self.last_ended = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent { event, end, volume: 10, duration }
    }

    fn feed(r: &mut DtmfReceiver, packets: &[(u32, TelephoneEvent)]) -> Vec<DtmfEvent> {
        let mut out = Vec::new();
        for (i, &(ts, e)) in packets.iter().enumerate() {
            r.on_packet(ts, e, i as i64 * 20 * MS, |d| out.push(d));
        }
        out
    }

    #[test]
    fn one_start_one_end_despite_three_end_packets() {
        let mut r = DtmfReceiver::new(500 * MS);
        let got = feed(
            &mut r,
            &[(800, ev(5, false, 160)), (800, ev(5, false, 320)), (800, ev(5, true, 400)), (800, ev(5, true, 400)), (800, ev(5, true, 400))],
        );
        assert_eq!(
            got,
            vec![
                DtmfEvent::Started { event: 5, timestamp: 800 },
                DtmfEvent::Ended { event: 5, timestamp: 800, duration: 400, inferred: false }
            ]
        );
        assert_eq!(got[0].digit(), Some('5'));
        assert_eq!(r.deadline_ns(), None);
    }

    #[test]
    fn lost_start_and_lost_end() {
        let mut r = DtmfReceiver::new(500 * MS);
        // Only an end packet: start and end together.
        let got = feed(&mut r, &[(100, ev(1, true, 800)), (100, ev(1, true, 800))]);
        assert_eq!(got.len(), 2);
        // No end packets: the timeout ends it with the last duration.
        let mut out = Vec::new();
        r.on_packet(5000, ev(2, false, 160), 0, |d| out.push(d));
        r.on_packet(5000, ev(2, false, 320), 20 * MS, |d| out.push(d));
        assert_eq!(r.deadline_ns(), Some(520 * MS));
        r.poll(519 * MS, |d| out.push(d));
        assert_eq!(out.len(), 1);
        r.poll(520 * MS, |d| out.push(d));
        assert_eq!(out[1], DtmfEvent::Ended { event: 2, timestamp: 5000, duration: 320, inferred: true });
        // Late updates of the ended event start nothing.
        r.on_packet(5000, ev(2, false, 480), 600 * MS, |d| out.push(d));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_new_event_ends_the_previous_one() {
        let mut r = DtmfReceiver::new(500 * MS);
        let got = feed(&mut r, &[(0, ev(1, false, 160)), (1600, ev(2, false, 160))]);
        assert_eq!(got[1], DtmfEvent::Ended { event: 1, timestamp: 0, duration: 160, inferred: true });
        assert_eq!(got[2], DtmfEvent::Started { event: 2, timestamp: 1600 });
        // A straggler of event 1 changes nothing.
        let got = feed(&mut r, &[(0, ev(1, true, 320))]);
        assert!(got.is_empty());
    }

    #[test]
    fn long_event_segments_add_up() {
        let mut r = DtmfReceiver::new(500 * MS);
        let ts = 0xFFFF_0000u32;
        let got = feed(
            &mut r,
            &[(ts, ev(0, false, 65000)), (ts, ev(0, false, 0xFFFF)), (ts.wrapping_add(0xFFFF), ev(0, false, 160)), (ts.wrapping_add(0xFFFF), ev(0, true, 14465))],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], DtmfEvent::Ended { event: 0, timestamp: ts, duration: 80_000, inferred: false });
    }
}
