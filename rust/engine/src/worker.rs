//! A worker thread: one shard of the engine's calls, with its own epoll set,
//! timer wheel and send batch. Nothing here takes a lock another worker
//! uses, except the per-stream mutex shared with the application and the
//! engine's ready list.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;

use crate::driven::{DrivenLeg, Transmit};
use crate::record::{self, interleave};
use crate::stream::{InboxItem, Notifier, Sockets, StreamShared};
use crate::sys::{monotonic_ns, realtime_ns, Epoll, EventFd, RecvBatch, SendBatch, TimerFd};
use crate::wheel::{PtimeClock, TimerWheel};

/// A request to a worker.
pub(crate) enum Command<L: DrivenLeg> {
    /// Run a new call, recording it through `recording` if given.
    Start { stream: Arc<StreamShared<L>>, sockets: Sockets, leg: L, recording: Option<Sender<record::Message>> },
    /// Apply a new configuration to a running call; the reply carries the
    /// pipeline's refusal, if any.
    Reconfigure { id: u64, config: L::Config, reply: SyncSender<Result<(), String>> },
    /// End a call (RTCP BYE, sockets closed, ports released), then reply.
    Close { id: u64, reply: Option<SyncSender<()>> },
    /// End every call and stop the thread.
    Shutdown,
}

/// Engine-wide counters, summed over the workers.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// Calls running on the workers.
    pub active_calls: AtomicUsize,
    /// Times the application's event loop was signalled.
    pub app_wakeups: AtomicU64,
    /// Worker loop iterations (epoll wake-ups).
    pub rounds: AtomicU64,
    /// Datagrams received and handed to a call.
    pub datagrams_received: AtomicU64,
    /// Datagrams the kernel accepted for sending.
    pub datagrams_sent: AtomicU64,
    /// Datagrams that could not be sent (socket buffer full, ICMP error).
    pub send_failures: AtomicU64,
    /// Datagrams dropped for being longer than the receive buffer.
    pub datagrams_truncated: AtomicU64,
    /// Ptime ticks run.
    pub ticks: AtomicU64,
    /// Ticks that ran more than [`LATE_TICK_NS`] after their deadline.
    pub late_ticks: AtomicU64,
    /// Ticks skipped after stalls longer than the catch-up window.
    pub skipped_ticks: AtomicU64,
    /// Largest lateness of any tick, in nanoseconds.
    pub max_lateness_ns: AtomicU64,
}

/// Lateness beyond which a tick counts as late: the load benchmark's bound
/// on send-interval error.
pub const LATE_TICK_NS: i64 = 2_000_000;

/// Settings every worker shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerSettings {
    pub max_queued_ms: u32,
}

// Calls start their ptime clocks on this grid so that one timer wake-up
// serves every call of the same phase (at most 20 phases per 20 ms ptime).
const TICK_GRID_NS: i64 = 1_000_000;
// Publish a statistics snapshot every this many ticks (and at start and
// close): stats() reads it without waiting for the worker.
const STATS_EVERY_TICKS: u64 = 10;
// Hand the pipeline at most this much audio ahead of the wire; the rest
// waits in the stream's inbox, where clear() can drop it instantly.
const FEED_AHEAD_MS: u32 = 200;
// Datagrams read per recvmmsg call.
const RECV_BATCH: usize = 32;

const TOKEN_COMMANDS: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Ptime,
    Rtcp,
}

// A wheel entry. `ticket` must match the call's current ticket for that
// timer, otherwise the entry is stale (call closed or rescheduled).
#[derive(Debug, Clone, Copy)]
struct TimerKey {
    slot: usize,
    ticket: u64,
    kind: TimerKind,
}

struct Call<L: DrivenLeg> {
    stream: Arc<StreamShared<L>>,
    leg: L,
    sockets: Sockets,
    clock: PtimeClock,
    ptime_ticket: u64,
    rtcp_ticket: u64,
    ticks: u64,
    recording: Option<Sender<record::Message>>,
}

pub(crate) struct Worker<L: DrivenLeg> {
    epoll: Epoll,
    timer: TimerFd,
    wake: Arc<EventFd>,
    commands: Receiver<Command<L>>,
    wheel: TimerWheel<TimerKey>,
    calls: Vec<Option<Call<L>>>,
    free_slots: Vec<usize>,
    slot_of: HashMap<u64, usize>,
    next_ticket: u64,
    recv: RecvBatch,
    send: SendBatch,
    tokens: Vec<u64>,
    expired: Vec<(i64, TimerKey)>,
    // Scratch for one tick's output, reused by every call.
    frames: Vec<L::Frame>,
    events: Vec<L::Event>,
    left: Vec<i16>,
    right: Vec<i16>,
    notifier: Arc<Notifier<L>>,
    counters: Arc<EngineCounters>,
    settings: WorkerSettings,
    signal_app: bool,
}

impl<L: DrivenLeg> Worker<L> {
    pub(crate) fn new(
        wake: Arc<EventFd>,
        commands: Receiver<Command<L>>,
        notifier: Arc<Notifier<L>>,
        counters: Arc<EngineCounters>,
        settings: WorkerSettings,
    ) -> io::Result<Self> {
        let epoll = Epoll::new(256)?;
        let timer = TimerFd::new()?;
        epoll.add(wake.as_raw_fd(), TOKEN_COMMANDS)?;
        epoll.add(timer.as_raw_fd(), TOKEN_TIMER)?;
        Ok(Worker {
            epoll,
            timer,
            wake,
            commands,
            wheel: TimerWheel::new(monotonic_ns()),
            calls: Vec::new(),
            free_slots: Vec::new(),
            slot_of: HashMap::new(),
            next_ticket: 0,
            recv: RecvBatch::new(RECV_BATCH),
            send: SendBatch::new(),
            tokens: Vec::new(),
            expired: Vec::new(),
            frames: Vec::new(),
            events: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            notifier,
            counters,
            settings,
            signal_app: false,
        })
    }

    /// The thread's loop: wait, receive, run due timers, apply commands,
    /// send, wake the application once. Returns on shutdown.
    pub(crate) fn run(mut self) {
        loop {
            self.timer.set(self.wheel.next_deadline());
            self.tokens.clear();
            let waited = match self.epoll.wait() {
                Ok(ready) => {
                    self.tokens.extend(ready);
                    true
                }
                Err(_) => false,
            };
            if !waited {
                // epoll_wait only fails on a broken epoll fd, which would
                // make this loop spin; end the worker cleanly instead.
                self.shutdown();
                return;
            }
            self.counters.rounds.fetch_add(1, Ordering::Relaxed);
            // Kernel stamps are CLOCK_REALTIME; translate them to the
            // monotonic base once per round (both clocks read together).
            let realtime_to_monotonic = monotonic_ns() - realtime_ns();
            let mut commands_pending = false;
            for i in 0..self.tokens.len() {
                match self.tokens[i] {
                    TOKEN_COMMANDS => commands_pending = true,
                    TOKEN_TIMER => self.timer.acknowledge(),
                    token => self.receive((token >> 1) as usize, token & 1 == 1, realtime_to_monotonic),
                }
            }
            self.run_timers();
            if commands_pending {
                self.wake.drain();
                if !self.apply_commands() {
                    self.shutdown();
                    return;
                }
            }
            self.flush();
        }
    }

    fn receive(&mut self, slot: usize, rtcp: bool, realtime_to_monotonic: i64) {
        let Some(Some(call)) = self.calls.get_mut(slot) else { return };
        let socket = if rtcp { &call.sockets.rtcp } else { &call.sockets.rtp };
        // A failing socket (e.g. a queued ICMP error) reports it once and
        // keeps working; nothing to do but read again next round.
        let Ok(count) = self.recv.recv(socket) else { return };
        let now = monotonic_ns();
        let mut delivered = 0;
        for i in 0..count {
            match self.recv.get(i) {
                Some(datagram) => {
                    let arrival = datagram
                        .arrival_realtime_ns
                        .map_or(now, |stamp| (stamp + realtime_to_monotonic).min(now));
                    call.leg.handle_datagram(datagram.from, datagram.data, rtcp, arrival);
                    delivered += 1;
                }
                None => {
                    self.counters.datagrams_truncated.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.counters.datagrams_received.fetch_add(delivered, Ordering::Relaxed);
    }

    fn run_timers(&mut self) {
        let now = monotonic_ns();
        let expired = &mut self.expired;
        self.wheel.expire(now, |deadline, key| expired.push((deadline, key)));
        let mut expired = std::mem::take(&mut self.expired);
        for &(deadline, key) in &expired {
            match key.kind {
                TimerKind::Ptime => self.tick(key, deadline),
                TimerKind::Rtcp => self.rtcp(key),
            }
        }
        expired.clear();
        self.expired = expired;
    }

    fn tick(&mut self, key: TimerKey, deadline: i64) {
        let Some(Some(call)) = self.calls.get_mut(key.slot) else { return };
        if call.ptime_ticket != key.ticket {
            return;
        }
        Self::feed(call);
        let now = monotonic_ns();
        let Call { leg, sockets, .. } = call;
        let send = &mut self.send;
        leg.on_tick(now, &mut |t: Transmit<'_>| send.push(pick(sockets, t.rtcp_socket), t.to, t.data));
        let lateness = now - deadline;
        self.counters.ticks.fetch_add(1, Ordering::Relaxed);
        if lateness > LATE_TICK_NS {
            self.counters.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.max_lateness_ns.fetch_max(lateness.max(0) as u64, Ordering::Relaxed);
        let advance = call.clock.advance(now);
        if advance.skipped > 0 {
            self.counters.skipped_ticks.fetch_add(advance.skipped, Ordering::Relaxed);
            call.stream.state().counters.ticks_skipped += advance.skipped;
        }
        self.wheel.insert(advance.next_deadline_ns, key);
        call.ticks += 1;
        while let Some(frame) = call.leg.pop_frame() {
            if call.recording.is_some() {
                call.leg.frame_pcm(&frame, &mut self.left);
            }
            self.frames.push(frame);
        }
        self.events.extend(std::iter::from_fn(|| call.leg.poll_event()));
        if let Some(recording) = &call.recording {
            call.leg.last_sent_pcm(&mut self.right);
            let mut interleaved = Vec::new();
            interleave(&self.left, &self.right, &mut interleaved);
            self.left.clear();
            self.right.clear();
            // The recorder only goes away after every worker has stopped.
            let _ = recording.send(record::Message::Samples { id: call.stream.id, interleaved });
        }
        let stats = (call.ticks % STATS_EVERY_TICKS == 0).then(|| call.leg.stats());
        self.signal_app |= call.stream.deliver(
            &mut self.frames,
            &mut self.events,
            call.leg.queued_ms(),
            self.settings.max_queued_ms,
            stats,
        );
    }

    // Moves the application's queued audio and commands into the pipeline,
    // in order, keeping at most FEED_AHEAD_MS of audio there.
    fn feed(call: &mut Call<L>) {
        let mut state = call.stream.state();
        while let Some(item) = state.inbox.front() {
            if matches!(item, InboxItem::Audio(_)) && call.leg.queued_ms() >= FEED_AHEAD_MS {
                break;
            }
            let Some(item) = state.inbox.pop_front() else { break };
            match item {
                InboxItem::Audio(audio) => {
                    state.inbox_units = state.inbox_units.saturating_sub(audio.units());
                    if call.leg.write_audio(&audio).is_err() {
                        state.counters.writes_rejected += 1;
                    }
                }
                InboxItem::Mark(name) => call.leg.mark(name),
                InboxItem::Clear => call.leg.clear(),
                InboxItem::Dtmf(digits, duration_ms) => {
                    if call.leg.send_dtmf(&digits, duration_ms).is_err() {
                        state.counters.writes_rejected += 1;
                    }
                }
            }
        }
        state.leg_queued_ms = call.leg.queued_ms();
    }

    fn rtcp(&mut self, key: TimerKey) {
        let Some(Some(call)) = self.calls.get_mut(key.slot) else { return };
        if call.rtcp_ticket != key.ticket {
            return;
        }
        let now = monotonic_ns();
        // The pipeline may have moved its deadline since this entry was
        // scheduled (RFC 3550 reconsideration); only run it when truly due.
        if call.leg.next_rtcp_deadline_ns() <= now {
            let Call { leg, sockets, .. } = &mut *call;
            let send = &mut self.send;
            leg.on_rtcp_timer(now, &mut |t: Transmit<'_>| send.push(pick(sockets, t.rtcp_socket), t.to, t.data));
        }
        // Never closer than 1 ms ahead: a pipeline whose deadline stays in
        // the past must not spin the worker.
        let next = call.leg.next_rtcp_deadline_ns().max(now + 1_000_000);
        self.wheel.insert(next, key);
    }

    // Returns false on shutdown.
    fn apply_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Start { stream, sockets, leg, recording }) => self.start(stream, sockets, leg, recording),
                Ok(Command::Reconfigure { id, config, reply }) => {
                    let result = self.reconfigure(id, config);
                    // The requester may have given up waiting; nothing to do then.
                    let _ = reply.send(result);
                }
                Ok(Command::Close { id, reply }) => {
                    if let Some(&slot) = self.slot_of.get(&id) {
                        self.close(slot);
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn start(&mut self, stream: Arc<StreamShared<L>>, sockets: Sockets, leg: L, recording: Option<Sender<record::Message>>) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        let token = (slot as u64) << 1;
        if self.epoll.add(sockets.rtp.as_raw_fd(), token).is_err()
            || self.epoll.add(sockets.rtcp.as_raw_fd(), token | 1).is_err()
        {
            // Out of kernel memory for epoll: the call cannot run. Its
            // sockets close here and the application sees it closed.
            let _ = self.epoll.delete(sockets.rtp.as_raw_fd());
            self.free_slots.push(slot);
            drop(sockets);
            if let Some(recording) = recording {
                let _ = recording.send(record::Message::Close { id: stream.id });
            }
            self.signal_app |= stream.finish(Some(leg.stats()));
            return;
        }
        let now = monotonic_ns();
        let clock = PtimeClock::aligned(now, leg.ptime_ns(), TICK_GRID_NS);
        let (ptime_ticket, rtcp_ticket) = (self.ticket(), self.ticket());
        self.wheel.insert(clock.deadline_ns(), TimerKey { slot, ticket: ptime_ticket, kind: TimerKind::Ptime });
        self.wheel.insert(leg.next_rtcp_deadline_ns(), TimerKey { slot, ticket: rtcp_ticket, kind: TimerKind::Rtcp });
        self.slot_of.insert(stream.id, slot);
        stream.state().stats = Some(leg.stats());
        self.calls[slot] = Some(Call { stream, leg, sockets, clock, ptime_ticket, rtcp_ticket, ticks: 0, recording });
        self.counters.active_calls.fetch_add(1, Ordering::Relaxed);
    }

    fn reconfigure(&mut self, id: u64, config: L::Config) -> Result<(), String> {
        let Some(&slot) = self.slot_of.get(&id) else { return Err("the stream is closed".into()) };
        let (ptime_ticket, rtcp_ticket) = (self.ticket(), self.ticket());
        let Some(Some(call)) = self.calls.get_mut(slot) else { return Err("the stream is closed".into()) };
        let now = monotonic_ns();
        let old_ptime = call.leg.ptime_ns();
        call.leg.reconfigure(config, now).map_err(|e| e.to_string())?;
        if call.leg.ptime_ns() != old_ptime {
            call.clock = PtimeClock::aligned(now, call.leg.ptime_ns(), TICK_GRID_NS);
            call.ptime_ticket = ptime_ticket;
            self.wheel.insert(call.clock.deadline_ns(), TimerKey { slot, ticket: ptime_ticket, kind: TimerKind::Ptime });
        }
        call.rtcp_ticket = rtcp_ticket;
        self.wheel.insert(call.leg.next_rtcp_deadline_ns(), TimerKey { slot, ticket: rtcp_ticket, kind: TimerKind::Rtcp });
        call.stream.state().stats = Some(call.leg.stats());
        Ok(())
    }

    fn close(&mut self, slot: usize) {
        let Some(mut call) = self.calls.get_mut(slot).and_then(Option::take) else { return };
        self.slot_of.remove(&call.stream.id);
        self.free_slots.push(slot);
        // Deregistering cannot fail for a registered fd; closing it would
        // deregister it anyway.
        let _ = self.epoll.delete(call.sockets.rtp.as_raw_fd());
        let _ = self.epoll.delete(call.sockets.rtcp.as_raw_fd());
        let now = monotonic_ns();
        let Call { leg, sockets, .. } = &mut call;
        let send = &mut self.send;
        leg.close(now, &mut |t: Transmit<'_>| send.push(pick(sockets, t.rtcp_socket), t.to, t.data));
        // The BYE must leave before its socket closes.
        self.flush();
        let Call { stream, leg, sockets, recording, .. } = call;
        if let Some(recording) = recording {
            let _ = recording.send(record::Message::Close { id: stream.id });
        }
        let stats = leg.stats();
        drop(leg);
        drop(sockets);
        self.counters.active_calls.fetch_sub(1, Ordering::Relaxed);
        self.signal_app |= stream.finish(Some(stats));
    }

    fn shutdown(&mut self) {
        for slot in 0..self.calls.len() {
            self.close(slot);
        }
        // Requests that raced with the shutdown: calls that never ran are
        // closed, and nobody is left waiting for an answer.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Start { stream, sockets, leg, recording } => {
                    drop(sockets);
                    if let Some(recording) = recording {
                        let _ = recording.send(record::Message::Close { id: stream.id });
                    }
                    self.signal_app |= stream.finish(Some(leg.stats()));
                }
                Command::Reconfigure { reply, .. } => drop(reply.send(Err("the engine is closed".into()))),
                Command::Close { reply, .. } => drop(reply.map(|reply| reply.send(()))),
                Command::Shutdown => {}
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        if !self.send.is_empty() {
            let outcome = self.send.flush();
            self.counters.datagrams_sent.fetch_add(outcome.sent, Ordering::Relaxed);
            self.counters.send_failures.fetch_add(outcome.failed, Ordering::Relaxed);
        }
        if std::mem::take(&mut self.signal_app) {
            self.counters.app_wakeups.fetch_add(1, Ordering::Relaxed);
            self.notifier.signal();
        }
    }
}

fn pick(sockets: &Sockets, rtcp: bool) -> &std::net::UdpSocket {
    if rtcp {
        &sockets.rtcp
    } else {
        &sockets.rtp
    }
}
