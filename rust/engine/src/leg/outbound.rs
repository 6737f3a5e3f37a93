//! The application's outbound audio, paced out one ptime per tick, with
//! play-out marks and barge-in (Twilio Media Streams semantics: a mark is
//! echoed once everything queued before it went out; `clear` drops the
//! queue and echoes the pending marks at once).

use std::collections::VecDeque;

use super::config::LegError;
use super::events::LegEvent;

/// A mark waiting for the audio before it.
#[derive(Debug)]
struct PendingMark {
    /// `written` when the mark was set: it plays once `sent` reaches it.
    at: u64,
    name: String,
}

/// Queued units (PCM samples or G.711 codes) and the marks between them.
#[derive(Debug)]
pub(crate) struct Outbound<T> {
    queue: VecDeque<T>,
    /// Units ever queued (dropped ones included) and units taken or
    /// dropped: positions on one time line for the marks.
    written: u64,
    sent: u64,
    marks: VecDeque<PendingMark>,
    /// Units per frame.
    frame_len: usize,
    /// Most units held.
    limit: usize,
    /// Units per millisecond, for `queued_ms`.
    per_ms: usize,
    /// A short tail waited one tick for the rest of its frame.
    tail_waited: bool,
    /// The unit that pads a short tail (0 for PCM, the code of silence
    /// for G.711).
    silence: T,
    /// Units dropped by `clear`.
    pub(crate) cleared: u64,
}

impl<T: Copy> Outbound<T> {
    /// A queue of frames of `frame_len` units at `per_ms` units per ms,
    /// holding at most `limit_ms`, padding short tails with `silence`.
    pub(crate) fn new(frame_len: usize, per_ms: usize, limit_ms: u32, silence: T) -> Self {
        Outbound {
            // Grows with what the application writes, shrinks when drained.
            queue: VecDeque::new(),
            written: 0,
            sent: 0,
            marks: VecDeque::new(),
            frame_len,
            limit: per_ms * limit_ms as usize,
            per_ms,
            tail_waited: false,
            silence,
            cleared: 0,
        }
    }

    /// Audio waiting, ms.
    pub(crate) fn queued_ms(&self) -> u32 {
        u32::try_from(self.queue.len() / self.per_ms).unwrap_or(u32::MAX)
    }

    /// Queues `units`, whole or not at all.
    pub(crate) fn write(&mut self, units: &[T]) -> Result<(), LegError> {
        if self.queue.len() + units.len() > self.limit {
            return Err(LegError::QueueFull { queued_ms: self.queued_ms(), limit_ms: (self.limit / self.per_ms) as u32 });
        }
        self.queue.extend(units);
        self.written += units.len() as u64;
        Ok(())
    }

    /// Sets a mark after everything queued so far; with nothing queued it
    /// has played already.
    pub(crate) fn mark(&mut self, name: String, events: &mut impl FnMut(LegEvent)) {
        if self.sent >= self.written {
            events(LegEvent::MarkPlayed { name, cleared: false });
        } else {
            self.marks.push_back(PendingMark { at: self.written, name });
        }
    }

    /// Drops everything queued; pending marks fire as cleared, in order.
    pub(crate) fn clear(&mut self, events: &mut impl FnMut(LegEvent)) {
        self.cleared += self.queue.len() as u64;
        self.queue.clear();
        self.sent = self.written;
        self.tail_waited = false;
        for mark in self.marks.drain(..) {
            events(LegEvent::MarkPlayed { name: mark.name, cleared: true });
        }
        self.shrink();
    }

    /// Fills `frame` (exactly one frame) with the next frame of audio and
    /// returns true, or returns false when there is none this tick.
    ///
    /// A tail shorter than a frame waits one tick for the rest (an
    /// application writing in chunks that do not line up with the frames
    /// then costs one frame of delay once, not a gap in every frame); it
    /// goes out padded with silence on the next tick, or at once when a
    /// mark follows it (the end of an utterance).
    pub(crate) fn take_frame(&mut self, frame: &mut [T], events: &mut impl FnMut(LegEvent)) -> bool {
        debug_assert_eq!(frame.len(), self.frame_len);
        let available = self.queue.len();
        if available == 0 {
            self.tail_waited = false;
            return false;
        }
        if available < self.frame_len {
            let mark_at_end = self.marks.back().is_some_and(|m| m.at == self.written);
            if !self.tail_waited && !mark_at_end {
                self.tail_waited = true;
                return false;
            }
        }
        self.tail_waited = false;
        let take = available.min(self.frame_len);
        for (slot, unit) in frame.iter_mut().zip(self.queue.drain(..take)) {
            *slot = unit;
        }
        frame[take..].fill(self.silence);
        self.sent += take as u64;
        while self.marks.front().is_some_and(|m| m.at <= self.sent) {
            let mark = self.marks.pop_front().expect("front checked just above");
            events(LegEvent::MarkPlayed { name: mark.name, cleared: false });
        }
        if self.queue.is_empty() {
            self.shrink();
        }
        true
    }

    /// Marks still waiting.
    pub(crate) fn pending_marks(&self) -> usize {
        self.marks.len()
    }

    /// Gives back the memory of a burst once it has played: a leg idles at
    /// a second of audio at most.
    fn shrink(&mut self) {
        let keep = self.per_ms * 1000;
        if self.queue.capacity() > keep {
            self.queue.shrink_to(keep.min(self.queue.len().max(self.frame_len * 4)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_out_whole_and_marks_follow_the_audio() {
        let mut events = Vec::new();
        let mut q = Outbound::<i16>::new(4, 1, 1000, 0);
        let mut frame = [0i16; 4];
        q.write(&[1, 2, 3, 4, 5, 6]).unwrap();
        q.mark("a".into(), &mut |e| events.push(e));
        q.write(&[7, 8]).unwrap();
        q.mark("b".into(), &mut |e| events.push(e));
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [1, 2, 3, 4]);
        assert!(events.is_empty());
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [5, 6, 7, 8]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], LegEvent::MarkPlayed { name: "a".into(), cleared: false });
        assert_eq!(events[1], LegEvent::MarkPlayed { name: "b".into(), cleared: false });
        // Nothing queued: a mark plays at once.
        events.clear();
        assert!(!q.take_frame(&mut frame, &mut |e| events.push(e)));
        q.mark("c".into(), &mut |e| events.push(e));
        assert_eq!(events, [LegEvent::MarkPlayed { name: "c".into(), cleared: false }]);
    }

    #[test]
    fn a_short_tail_waits_one_tick_unless_a_mark_ends_it() {
        let mut events = Vec::new();
        let mut q = Outbound::<u8>::new(4, 1, 1000, 0xFF);
        let mut frame = [0u8; 4];
        q.write(&[1, 2]).unwrap();
        assert!(!q.take_frame(&mut frame, &mut |e| events.push(e)));
        q.write(&[3, 4, 5]).unwrap();
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [1, 2, 3, 4]);
        assert!(!q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [5, 0xFF, 0xFF, 0xFF]);
        q.write(&[9]).unwrap();
        q.mark("end".into(), &mut |e| events.push(e));
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [9, 0xFF, 0xFF, 0xFF]);
        assert_eq!(events, [LegEvent::MarkPlayed { name: "end".into(), cleared: false }]);
    }

    #[test]
    fn clear_drops_audio_and_fires_marks_in_order() {
        let mut events = Vec::new();
        let mut q = Outbound::<i16>::new(2, 1, 1000, 0);
        let mut frame = [0i16; 2];
        q.write(&[1, 2, 3, 4]).unwrap();
        q.mark("x".into(), &mut |e| events.push(e));
        q.write(&[5, 6]).unwrap();
        q.mark("y".into(), &mut |e| events.push(e));
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        q.clear(&mut |e| events.push(e));
        assert_eq!(
            events,
            [LegEvent::MarkPlayed { name: "x".into(), cleared: true }, LegEvent::MarkPlayed { name: "y".into(), cleared: true }]
        );
        assert_eq!((q.cleared, q.queued_ms(), q.pending_marks()), (4, 0, 0));
        assert!(!q.take_frame(&mut frame, &mut |e| events.push(e)));
        // Audio after the clear plays normally, marks too.
        events.clear();
        q.write(&[7, 8]).unwrap();
        q.mark("z".into(), &mut |e| events.push(e));
        assert!(q.take_frame(&mut frame, &mut |e| events.push(e)));
        assert_eq!(frame, [7, 8]);
        assert_eq!(events, [LegEvent::MarkPlayed { name: "z".into(), cleared: false }]);
    }

    #[test]
    fn the_limit_refuses_whole_writes() {
        let mut q = Outbound::<i16>::new(2, 2, 3, 0);
        q.write(&[0; 5]).unwrap();
        assert_eq!(q.write(&[0; 2]), Err(LegError::QueueFull { queued_ms: 2, limit_ms: 3 }));
        q.write(&[0; 1]).unwrap();
        assert_eq!(q.queued_ms(), 3);
    }
}
