//! The state one call shares between its worker thread and the application:
//! bounded queues of frames and events going up, an inbox of audio and
//! commands going down, and the notification plumbing that wakes the
//! application at most once per worker round.
//!
//! Every exchange is one short mutex hold per tick per call; the worker
//! never waits on the application and the application never touches the
//! pipeline itself.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::driven::{AppAudio, DrivenLeg};
use crate::ports::PortAllocator;
use crate::sys::EventFd;

/// Bits of [`Engine::take_ready`](crate::Engine::take_ready): what became available.
pub mod ready {
    /// Frames can be read (or the stream ended).
    pub const FRAMES: u8 = 1;
    /// Events can be read (or the stream ended).
    pub const EVENTS: u8 = 2;
    /// Outbound audio fell below the backpressure limit (or the stream ended).
    pub const WRITABLE: u8 = 4;
    /// Everything at once.
    pub const ALL: u8 = FRAMES | EVENTS | WRITABLE;
}

/// An RTP port reservation: releases the port when dropped, after the
/// sockets that used it (field order in [`Sockets`]).
#[derive(Debug)]
pub struct PortLease {
    ports: Arc<Mutex<PortAllocator>>,
    port: u16,
}

impl PortLease {
    /// Takes ownership of an allocated `port`.
    pub fn new(ports: Arc<Mutex<PortAllocator>>, port: u16) -> Self {
        PortLease { ports, port }
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.ports).release(self.port);
    }
}

/// A call's RTP and RTCP sockets and their port reservation, or the
/// socket of a worker that every call on it shares
/// ([`EngineConfig::shared_sockets`](crate::EngineConfig::shared_sockets)).
#[derive(Debug)]
pub struct Sockets {
    /// The even RTP port's socket.
    pub rtp: Arc<UdpSocket>,
    /// RTP + 1, for RTCP when not multiplexed (kept open either way, so the
    /// port stays ours for the offer's fallback); the RTP socket itself
    /// when shared.
    pub rtcp: Arc<UdpSocket>,
    /// The worker whose shared socket these are, if shared.
    pub(crate) shared_by: Option<usize>,
    // Declared last so it drops last: the port is free only once closed.
    // None when shared: the worker's port outlives its calls.
    _lease: Option<PortLease>,
}

impl Sockets {
    /// Bundles bound sockets with their lease.
    pub fn new(rtp: UdpSocket, rtcp: UdpSocket, lease: PortLease) -> Self {
        Sockets { rtp: Arc::new(rtp), rtcp: Arc::new(rtcp), shared_by: None, _lease: Some(lease) }
    }

    /// The shared socket of worker `worker`, for RTP and RTCP alike.
    pub(crate) fn shared(socket: &Arc<UdpSocket>, worker: usize) -> Self {
        Sockets { rtp: Arc::clone(socket), rtcp: Arc::clone(socket), shared_by: Some(worker), _lease: None }
    }

    /// Whether these are a worker's shared socket.
    pub fn is_shared(&self) -> bool {
        self.shared_by.is_some()
    }
}

/// Why an application write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The outbound queue holds the maximum; wait for [`ready::WRITABLE`].
    Full,
    /// The stream is closed.
    Closed,
}

/// What a read from a queue found.
#[derive(Debug)]
pub enum Pop<T> {
    /// An item.
    Item(T),
    /// Nothing now; the stream is open.
    Empty,
    /// Nothing, and nothing will come: the stream closed.
    Closed,
}

/// Counters the driver keeps per stream, beside the pipeline's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Frames dropped, oldest first, because the application did not read.
    pub frames_overrun: u64,
    /// Events dropped because the application did not read them.
    pub events_overrun: u64,
    /// Audio chunks the pipeline refused (counted, then dropped).
    pub writes_rejected: u64,
    /// Ptime ticks skipped after a long stall of the worker.
    pub ticks_skipped: u64,
}

/// A command from the application, queued in order with its audio so that
/// marks follow exactly the audio written before them.
#[derive(Debug)]
pub(crate) enum InboxItem {
    Audio(AppAudio),
    Mark(String),
    Clear,
    Dtmf(String, u32),
}

/// Where a stream is in its life.
pub(crate) enum Phase {
    /// Ports reserved, no pipeline yet.
    Allocated(Sockets),
    /// Handed to the worker of this index.
    Running(usize),
    /// Over: sockets closed, ports released.
    Closed,
}

pub(crate) struct StreamState<L: DrivenLeg> {
    pub(crate) phase: Phase,
    frames: VecDeque<L::Frame>,
    events: VecDeque<L::Event>,
    pub(crate) inbox: VecDeque<InboxItem>,
    pub(crate) inbox_units: usize,
    units_per_ms: u32,
    pub(crate) leg_queued_ms: u32,
    pub(crate) stats: Option<L::Stats>,
    pub(crate) counters: StreamCounters,
    // Signalled once the recording thread has completed this stream's WAV.
    pub(crate) recording_done: Option<std::sync::mpsc::Receiver<()>>,
    // What the application is waiting for (ready bits); cleared when the
    // stream is put on the ready list, so each wait costs one notification.
    armed: u8,
    blocking_readers: u32,
}

/// Engine-wide notification: the ready list and the eventfd the
/// application's event loop watches.
pub struct Notifier<L: DrivenLeg> {
    // Weak: a stream the application dropped needs no wake-up, and the
    // list must not keep it (and its queues) alive.
    ready: Mutex<Vec<(Weak<StreamShared<L>>, u8)>>,
    fd: EventFd,
}

impl<L: DrivenLeg> Notifier<L> {
    /// A notifier with a fresh eventfd.
    pub fn new() -> std::io::Result<Self> {
        Ok(Notifier { ready: Mutex::new(Vec::new()), fd: EventFd::new()? })
    }

    /// The descriptor that becomes readable when streams are ready.
    pub fn fd(&self) -> &EventFd {
        &self.fd
    }

    /// Takes the streams that became ready since the last call, with their
    /// ready bits, and resets the descriptor.
    pub fn take_ready(&self) -> Vec<(Arc<StreamShared<L>>, u8)> {
        // Drain first: a worker that pushes after our take signals again,
        // so nothing pushed is ever left without a wake-up.
        self.fd.drain();
        let ready = std::mem::take(&mut *lock(&self.ready));
        ready.into_iter().filter_map(|(stream, bits)| Some((stream.upgrade()?, bits))).collect()
    }

    /// Moves `wakes` onto the ready list (one lock for a whole worker
    /// round) and signals the fd if the list was empty; returns whether it
    /// signalled. A list that was not empty means the application has not
    /// taken it yet, so the fd is still readable (or the application is
    /// about to take the list): one signal per batch is enough.
    pub(crate) fn publish(&self, wakes: &mut Vec<Wake<L>>) -> bool {
        if wakes.is_empty() {
            return false;
        }
        let was_empty = {
            let mut ready = lock(&self.ready);
            let was_empty = ready.is_empty();
            ready.append(wakes);
            was_empty
        };
        if was_empty {
            self.fd.signal();
        }
        was_empty
    }
}

/// A stream to put on the ready list, with what became ready.
pub(crate) type Wake<L> = (Weak<StreamShared<L>>, u8);

/// One stream's shared half.
pub struct StreamShared<L: DrivenLeg> {
    /// Engine-unique id.
    pub id: u64,
    /// Local RTP address (the port to put in SDP).
    pub local_rtp: SocketAddr,
    /// Local RTCP address (RTP port + 1).
    pub local_rtcp: SocketAddr,
    state: Mutex<StreamState<L>>,
    changed: Condvar,
    frame_capacity: usize,
    event_capacity: usize,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain queues behind,
    // still consistent; keep serving rather than propagating the poison.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<L: DrivenLeg> StreamShared<L> {
    pub(crate) fn new(
        id: u64,
        sockets: Sockets,
        frame_capacity: usize,
        event_capacity: usize,
    ) -> std::io::Result<Self> {
        let local_rtp = sockets.rtp.local_addr()?;
        let local_rtcp = sockets.rtcp.local_addr()?;
        Ok(StreamShared {
            id,
            local_rtp,
            local_rtcp,
            state: Mutex::new(StreamState {
                phase: Phase::Allocated(sockets),
                frames: VecDeque::new(),
                events: VecDeque::new(),
                inbox: VecDeque::new(),
                inbox_units: 0,
                units_per_ms: 8,
                leg_queued_ms: 0,
                stats: None,
                counters: StreamCounters::default(),
                recording_done: None,
                armed: 0,
                blocking_readers: 0,
            }),
            changed: Condvar::new(),
            frame_capacity: frame_capacity.max(1),
            event_capacity: event_capacity.max(1),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, StreamState<L>> {
        lock(&self.state)
    }

    /// Whether the stream has closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state().phase, Phase::Closed)
    }

    /// Pops the next frame; when there is none and `arm` is set, the stream
    /// will be put on the ready list with [`ready::FRAMES`] as soon as one
    /// arrives.
    pub fn pop_frame(&self, arm: bool) -> Pop<L::Frame> {
        let mut state = self.state();
        if let Some(frame) = state.frames.pop_front() {
            return Pop::Item(frame);
        }
        if matches!(state.phase, Phase::Closed) {
            return Pop::Closed;
        }
        if arm {
            state.armed |= ready::FRAMES;
        }
        Pop::Empty
    }

    /// Moves every queued frame into `out`. With `arm`, the stream goes on
    /// the ready list when the next frame arrives, as with
    /// [`pop_frame`](Self::pop_frame).
    pub fn drain_frames(&self, out: &mut Vec<L::Frame>, arm: bool) {
        let mut state = self.state();
        out.extend(state.frames.drain(..));
        if arm && !matches!(state.phase, Phase::Closed) {
            state.armed |= ready::FRAMES;
        }
    }

    /// Waits up to `timeout` (forever with `None`) for a frame. Meant to be
    /// called without the GIL.
    pub fn wait_frame(&self, timeout: Option<Duration>) -> Pop<L::Frame> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state();
        state.blocking_readers += 1;
        let result = loop {
            if let Some(frame) = state.frames.pop_front() {
                break Pop::Item(frame);
            }
            if matches!(state.phase, Phase::Closed) {
                break Pop::Closed;
            }
            match deadline {
                None => state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Pop::Empty;
                    }
                    state = self.changed.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        };
        state.blocking_readers -= 1;
        result
    }

    /// Pops the next event, arming [`ready::EVENTS`] like
    /// [`pop_frame`](Self::pop_frame).
    pub fn pop_event(&self, arm: bool) -> Pop<L::Event> {
        let mut state = self.state();
        if let Some(event) = state.events.pop_front() {
            return Pop::Item(event);
        }
        if matches!(state.phase, Phase::Closed) {
            return Pop::Closed;
        }
        if arm {
            state.armed |= ready::EVENTS;
        }
        Pop::Empty
    }

    /// Queues application audio behind what is already queued. Refused
    /// with [`WriteError::Full`] when `max_queued_ms` is already queued
    /// (arming [`ready::WRITABLE`] if `arm`), so a producer faster than
    /// real time is slowed down instead of growing memory.
    pub fn write(&self, audio: AppAudio, max_queued_ms: u32, arm: bool) -> Result<(), WriteError> {
        let mut state = self.state();
        if matches!(state.phase, Phase::Closed) {
            return Err(WriteError::Closed);
        }
        if state.queued_ms() >= max_queued_ms {
            if arm {
                state.armed |= ready::WRITABLE;
            }
            return Err(WriteError::Full);
        }
        state.inbox_units += audio.units();
        state.inbox.push_back(InboxItem::Audio(audio));
        Ok(())
    }

    /// Queues a play-out mark behind the audio written so far.
    pub fn mark(&self, name: String) -> Result<(), WriteError> {
        self.push_command(InboxItem::Mark(name))
    }

    /// Barge-in: drops the audio not yet handed to the pipeline at once,
    /// and asks the worker to clear the pipeline's queue at its next tick.
    /// Marks and DTMF keep their order.
    pub fn clear(&self) -> Result<(), WriteError> {
        let mut state = self.state();
        if matches!(state.phase, Phase::Closed) {
            return Err(WriteError::Closed);
        }
        state.inbox.retain(|item| !matches!(item, InboxItem::Audio(_)));
        state.inbox_units = 0;
        state.inbox.push_back(InboxItem::Clear);
        Ok(())
    }

    /// Queues DTMF digits (validated by the pipeline when they are sent).
    pub fn send_dtmf(&self, digits: String, duration_ms: u32) -> Result<(), WriteError> {
        self.push_command(InboxItem::Dtmf(digits, duration_ms))
    }

    fn push_command(&self, item: InboxItem) -> Result<(), WriteError> {
        let mut state = self.state();
        if matches!(state.phase, Phase::Closed) {
            return Err(WriteError::Closed);
        }
        state.inbox.push_back(item);
        Ok(())
    }

    /// Milliseconds of outbound audio waiting: in the pipeline plus not yet
    /// handed to it.
    pub fn queued_ms(&self) -> u32 {
        self.state().queued_ms()
    }

    /// Sets how many inbox units (samples or payload bytes) make one
    /// millisecond, for the backpressure accounting.
    pub fn set_units_per_ms(&self, units_per_ms: u32) {
        self.state().units_per_ms = units_per_ms.max(1);
    }

    /// The latest statistics snapshot the worker published, and the
    /// driver's own counters.
    pub fn stats(&self) -> (Option<L::Stats>, StreamCounters) {
        let state = self.state();
        (state.stats.clone(), state.counters)
    }

    /// Worker side: queues the frames and events the pipeline produced
    /// this tick (taking them out of the buffers), publishes its outbound
    /// level and statistics, and wakes blocked readers. Returns the wake-up
    /// for the ready list if the application waits for what came.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        frames: &mut Vec<L::Frame>,
        events: &mut Vec<L::Event>,
        leg_queued_ms: u32,
        max_queued_ms: u32,
        stats: Option<L::Stats>,
    ) -> Option<Wake<L>> {
        let mut state = self.state();
        let mut new = 0u8;
        for frame in frames.drain(..) {
            if state.frames.len() >= self.frame_capacity {
                state.frames.pop_front();
                state.counters.frames_overrun += 1;
            }
            state.frames.push_back(frame);
            new |= ready::FRAMES;
        }
        for event in events.drain(..) {
            if state.events.len() >= self.event_capacity {
                state.events.pop_front();
                state.counters.events_overrun += 1;
            }
            state.events.push_back(event);
            new |= ready::EVENTS;
        }
        state.leg_queued_ms = leg_queued_ms;
        if state.queued_ms() < max_queued_ms {
            new |= ready::WRITABLE;
        }
        if stats.is_some() {
            state.stats = stats;
        }
        if new & ready::FRAMES != 0 && state.blocking_readers > 0 {
            self.changed.notify_all();
        }
        self.notify(state, new)
    }

    /// Marks the stream closed (after the worker or the application let go
    /// of its pipeline and sockets) and wakes blocked readers. Returns the
    /// wake-up for the ready list if the application waits on the stream.
    pub(crate) fn finish(self: &Arc<Self>, final_stats: Option<L::Stats>) -> Option<Wake<L>> {
        self.finish_locked(self.state(), final_stats)
    }

    /// [`finish`](Self::finish) with the state already locked. Closing an
    /// allocated stream closes its sockets here; closing twice does nothing.
    pub(crate) fn finish_locked(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, StreamState<L>>,
        final_stats: Option<L::Stats>,
    ) -> Option<Wake<L>> {
        if matches!(state.phase, Phase::Closed) {
            return None;
        }
        state.phase = Phase::Closed;
        if final_stats.is_some() {
            state.stats = final_stats;
        }
        state.inbox.clear();
        state.inbox_units = 0;
        self.changed.notify_all();
        self.notify(state, ready::ALL)
    }

    fn notify(self: &Arc<Self>, mut state: MutexGuard<'_, StreamState<L>>, new: u8) -> Option<Wake<L>> {
        let fire = state.armed & new;
        if fire == 0 {
            return None;
        }
        state.armed &= !fire;
        Some((Arc::downgrade(self), fire))
    }
}

impl<L: DrivenLeg> StreamState<L> {
    fn queued_ms(&self) -> u32 {
        let inbox_ms = self.inbox_units / self.units_per_ms.max(1) as usize;
        self.leg_queued_ms.saturating_add(u32::try_from(inbox_ms).unwrap_or(u32::MAX))
    }

    /// Takes the sockets of a stream that was allocated but never started.
    /// The stream is then running on `worker`.
    pub(crate) fn take_sockets(&mut self, worker: usize) -> Option<Sockets> {
        match std::mem::replace(&mut self.phase, Phase::Running(worker)) {
            Phase::Allocated(sockets) => Some(sockets),
            other => {
                self.phase = other;
                None
            }
        }
    }
}
