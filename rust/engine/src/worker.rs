//! A worker thread: one shard of the engine's calls, with its own epoll set,
//! timer wheel and send batch. Nothing here takes a lock another worker
//! uses, except the per-stream mutex shared with the application and the
//! engine's ready list.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;

use crate::driven::{DrivenLeg, Transmit};
use crate::record::{self, interleave};
use crate::stream::{InboxItem, Notifier, Sockets, StreamShared, Wake};
use crate::sys::{monotonic_ns, realtime_ns, Epoll, EventFd, RecvBatch, SendBatch, TimerFd};
use crate::wheel::{PtimeClock, TimerWheel};

/// A request to a worker.
pub(crate) enum Command<L: DrivenLeg> {
    /// Run a new call, recording it through `recording` if given;
    /// `remotes` are its remote RTP and RTCP addresses (for a shared socket).
    Start {
        stream: Arc<StreamShared<L>>,
        sockets: Sockets,
        leg: L,
        recording: Option<Sender<record::Message>>,
        remotes: Remotes,
    },
    /// Apply a new configuration to a running call; the reply carries the
    /// pipeline's refusal, if any.
    Reconfigure { id: u64, config: L::Config, reply: SyncSender<Result<(), String>> },
    /// End a call (RTCP BYE, sockets closed, ports released), then reply.
    Close { id: u64, reply: Option<SyncSender<()>> },
    /// End every call and stop the thread.
    Shutdown,
}

/// One worker's counters; the engine sums them. Each worker has its own,
/// aligned apart, so counting never bounces a cache line between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Calls running on this worker.
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
    /// Calls ended because their pipeline panicked (a bug to report).
    pub calls_failed: AtomicU64,
    /// Datagrams on the shared socket from no call's remote address.
    pub datagrams_unmatched: AtomicU64,
}

/// A call's remote RTP address and, when not multiplexed, RTCP address.
pub(crate) type Remotes = (SocketAddr, Option<SocketAddr>);

/// Lateness beyond which a tick counts as late: the load benchmark's bound
/// on send-interval error.
pub const LATE_TICK_NS: i64 = 2_000_000;

/// Settings every worker shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerSettings {
    pub max_queued_ms: u32,
    /// Calls start their ptime clocks on this grid (EngineConfig::tick_grid_ms).
    pub tick_grid_ns: i64,
}

// Publish a statistics snapshot every this many ticks (and at start and
// close): stats() reads it without waiting for the worker.
const STATS_EVERY_TICKS: u64 = 10;
// Hand the pipeline at most this much audio ahead of the wire; the rest
// waits in the stream's inbox, where clear() can drop it instantly.
const FEED_AHEAD_MS: u32 = 200;
// Datagrams read per recvmmsg call.
const RECV_BATCH: usize = 32;
// Most recvmmsg calls per socket per tick: a flood at one call's port
// costs that call a bounded amount of work and the kernel drops the rest.
const MAX_RECV_BATCHES: usize = 4;
// Most recvmmsg calls on a shared socket per round: every call of the
// worker has a datagram there each ptime, read at least every millisecond.
const MAX_SHARED_RECV_BATCHES: usize = 256;

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
    remotes: Remotes,
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
    counters: Arc<WorkerCounters>,
    settings: WorkerSettings,
    // Wake-ups of this round, published in one go at its end.
    wakes: Vec<Wake<L>>,
    // CLOCK_MONOTONIC minus CLOCK_REALTIME, read once per round: kernel
    // receive stamps are on the realtime clock.
    realtime_to_monotonic: i64,
    // The socket every call of this worker shares, if the engine shares
    // sockets, and which call (slot) and socket role (RTCP?) each remote
    // address's datagrams belong to.
    shared: Option<Arc<UdpSocket>>,
    by_remote: HashMap<SocketAddr, (usize, bool)>,
}

impl<L: DrivenLeg> Worker<L> {
    pub(crate) fn new(
        wake: Arc<EventFd>,
        commands: Receiver<Command<L>>,
        notifier: Arc<Notifier<L>>,
        counters: Arc<WorkerCounters>,
        settings: WorkerSettings,
        shared: Option<Arc<UdpSocket>>,
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
            wakes: Vec::new(),
            realtime_to_monotonic: 0,
            shared,
            by_remote: HashMap::new(),
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
            self.realtime_to_monotonic = monotonic_ns() - realtime_ns();
            let mut commands_pending = false;
            for i in 0..self.tokens.len() {
                match self.tokens[i] {
                    TOKEN_COMMANDS => commands_pending = true,
                    TOKEN_TIMER => self.timer.acknowledge(),
                    token => {
                        let slot = (token >> 1) as usize;
                        self.guarded(slot, |worker| worker.receive(slot, token & 1 == 1));
                    }
                }
            }
            // A shared socket is read once per round, not watched: it has a
            // datagram for some call nearly all the time, and the ticks'
            // timer wakes the worker every millisecond anyway.
            self.receive_shared();
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

    // Hands everything queued on one of a call's sockets to its leg, with
    // each datagram's kernel arrival time: reading late (at the tick) or
    // in batches does not change what the jitter buffer sees.
    fn receive(&mut self, slot: usize, rtcp: bool) {
        let Some(Some(call)) = self.calls.get_mut(slot) else { return };
        let socket = if rtcp { &call.sockets.rtcp } else { &call.sockets.rtp };
        let now = monotonic_ns();
        let mut delivered = 0;
        for _ in 0..MAX_RECV_BATCHES {
            // A failing socket (e.g. a queued ICMP error) reports it once
            // and keeps working; nothing to do but read again next time.
            let Ok(count) = self.recv.recv(socket) else { break };
            for i in 0..count {
                match self.recv.get(i) {
                    Some(datagram) => {
                        let arrival = datagram
                            .arrival_realtime_ns
                            .map_or(now, |stamp| (stamp + self.realtime_to_monotonic).min(now));
                        call.leg.handle_datagram(datagram.from, datagram.data, rtcp, arrival);
                        delivered += 1;
                    }
                    None => {
                        self.counters.datagrams_truncated.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if count < RECV_BATCH {
                break;
            }
        }
        self.counters.datagrams_received.fetch_add(delivered, Ordering::Relaxed);
    }

    // Hands everything queued on the shared socket to the calls whose
    // remote address sent it; the rest is counted and dropped.
    fn receive_shared(&mut self) {
        let Some(socket) = self.shared.clone() else { return };
        let now = monotonic_ns();
        let (mut delivered, mut unmatched) = (0, 0);
        let mut failed = Vec::new();
        for _ in 0..MAX_SHARED_RECV_BATCHES {
            let Ok(count) = self.recv.recv(&socket) else { break };
            for i in 0..count {
                let Some(datagram) = self.recv.get(i) else {
                    self.counters.datagrams_truncated.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let Some(&(slot, rtcp)) = self.by_remote.get(&datagram.from) else {
                    unmatched += 1;
                    continue;
                };
                let Some(Some(call)) = self.calls.get_mut(slot) else { continue };
                let arrival =
                    datagram.arrival_realtime_ns.map_or(now, |stamp| (stamp + self.realtime_to_monotonic).min(now));
                // A panic in one call's pipeline ends that call alone (below).
                let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    call.leg.handle_datagram(datagram.from, datagram.data, rtcp, arrival)
                }));
                match handled {
                    Ok(()) => delivered += 1,
                    Err(_) => failed.push(slot),
                }
            }
            if count < RECV_BATCH {
                break;
            }
        }
        self.counters.datagrams_received.fetch_add(delivered, Ordering::Relaxed);
        self.counters.datagrams_unmatched.fetch_add(unmatched, Ordering::Relaxed);
        for slot in failed {
            self.fail(slot);
        }
    }

    fn run_timers(&mut self) {
        let now = monotonic_ns();
        let expired = &mut self.expired;
        self.wheel.expire(now, |deadline, key| expired.push((deadline, key)));
        let mut expired = std::mem::take(&mut self.expired);
        for &(deadline, key) in &expired {
            match key.kind {
                TimerKind::Ptime => self.guarded(key.slot, |worker| worker.tick(key, deadline)),
                TimerKind::Rtcp => self.guarded(key.slot, |worker| worker.rtcp(key)),
            }
        }
        expired.clear();
        self.expired = expired;
    }

    // Runs one call's work so that a panic in its pipeline (a bug, never
    // expected) ends that call alone instead of the worker and every other
    // call on it.
    fn guarded(&mut self, slot: usize, work: impl FnOnce(&mut Self)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| work(self))).is_err() {
            self.fail(slot);
        }
    }

    // Ends a call whose pipeline panicked, without calling into it again:
    // no BYE, sockets closed, ports released, the application woken.
    fn fail(&mut self, slot: usize) {
        let Some(call) = self.calls.get_mut(slot).and_then(Option::take) else { return };
        self.slot_of.remove(&call.stream.id);
        self.free_slots.push(slot);
        self.unwatch(slot, &call.sockets, call.remotes);
        self.counters.active_calls.fetch_sub(1, Ordering::Relaxed);
        self.counters.calls_failed.fetch_add(1, Ordering::Relaxed);
        if let Some(recording) = &call.recording {
            let _ = recording.send(record::Message::Close { id: call.stream.id });
        }
        // What the call left half-done this round is not another call's.
        self.frames.clear();
        self.events.clear();
        self.left.clear();
        self.right.clear();
        // Queued datagrams name its sockets by descriptor: out before they close.
        self.flush();
        let stream = Arc::clone(&call.stream);
        // Dropping a pipeline that panicked may panic again; what is left of
        // it then leaks rather than the worker being lost.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(call)));
        self.wakes.extend(stream.finish(None));
    }

    fn tick(&mut self, key: TimerKey, deadline: i64) {
        let Some(Some(call)) = self.calls.get_mut(key.slot) else { return };
        if call.ptime_ticket != key.ticket {
            return;
        }
        // RTP is read here, once per tick, rather than on every readiness:
        // one packet per ptime would otherwise wake the worker once per
        // packet. The kernel stamps keep the arrival times exact. (A shared
        // socket was read at the start of the round.)
        if !call.sockets.is_shared() {
            self.receive(key.slot, false);
        }
        let Some(Some(call)) = self.calls.get_mut(key.slot) else { return };
        Self::feed(call);
        let now = monotonic_ns();
        let Call { leg, sockets, .. } = call;
        let send = &mut self.send;
        leg.on_tick(now, &mut |t: Transmit<'_>| send.push(pick(sockets, t.rtcp_socket), t.to, t.data));
        if !sockets.is_shared() {
            // A call of its own sockets sends one datagram per socket, so
            // holding it for the round's end would save no system call: out
            // now, it leaves at the call's own place in the round each
            // ptime instead of whenever the whole round is done.
            send_out(&mut self.send, &self.counters);
        }
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
        let wake =
            call.stream.deliver(&mut self.frames, &mut self.events, call.leg.queued_ms(), self.settings.max_queued_ms, stats);
        self.wakes.extend(wake);
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
                Ok(Command::Start { stream, sockets, leg, recording, remotes }) => {
                    self.start(stream, sockets, leg, recording, remotes)
                }
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

    fn start(
        &mut self,
        stream: Arc<StreamShared<L>>,
        sockets: Sockets,
        leg: L,
        recording: Option<Sender<record::Message>>,
        remotes: Remotes,
    ) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        if self.watch(slot, &sockets, remotes).is_err() {
            // Out of kernel memory for epoll, or (shared socket) a remote
            // address another call already has: the call cannot run. Its
            // sockets close here and the application sees it closed.
            self.free_slots.push(slot);
            drop(sockets);
            if let Some(recording) = recording {
                let _ = recording.send(record::Message::Close { id: stream.id });
            }
            self.wakes.extend(stream.finish(Some(leg.stats())));
            return;
        }
        let now = monotonic_ns();
        let clock = PtimeClock::aligned(now, leg.ptime_ns(), self.settings.tick_grid_ns);
        let (ptime_ticket, rtcp_ticket) = (self.ticket(), self.ticket());
        self.wheel.insert(clock.deadline_ns(), TimerKey { slot, ticket: ptime_ticket, kind: TimerKind::Ptime });
        self.wheel.insert(leg.next_rtcp_deadline_ns(), TimerKey { slot, ticket: rtcp_ticket, kind: TimerKind::Rtcp });
        self.slot_of.insert(stream.id, slot);
        stream.state().stats = Some(leg.stats());
        self.calls[slot] = Some(Call { stream, leg, sockets, clock, ptime_ticket, rtcp_ticket, ticks: 0, recording, remotes });
        self.counters.active_calls.fetch_add(1, Ordering::Relaxed);
    }

    fn reconfigure(&mut self, id: u64, config: L::Config) -> Result<(), String> {
        let Some(&slot) = self.slot_of.get(&id) else { return Err("the stream is closed".into()) };
        let (ptime_ticket, rtcp_ticket) = (self.ticket(), self.ticket());
        let remotes = L::remote_addresses(&config);
        let shared = matches!(self.calls.get(slot), Some(Some(call)) if call.sockets.is_shared());
        if shared && self.remote_taken(slot, remotes) {
            return Err("remote: another call on this worker's shared socket has that address".into());
        }
        let Some(Some(call)) = self.calls.get_mut(slot) else { return Err("the stream is closed".into()) };
        let now = monotonic_ns();
        let old_ptime = call.leg.ptime_ns();
        call.leg.reconfigure(config, now).map_err(|e| e.to_string())?;
        if shared {
            let old = std::mem::replace(&mut call.remotes, remotes);
            self.forget_remotes(slot, old);
            self.claim_remotes(slot, remotes);
        }
        let Some(Some(call)) = self.calls.get_mut(slot) else { return Err("the stream is closed".into()) };
        if call.leg.ptime_ns() != old_ptime {
            call.clock = PtimeClock::aligned(now, call.leg.ptime_ns(), self.settings.tick_grid_ns);
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
        self.unwatch(slot, &call.sockets, call.remotes);
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
        self.wakes.extend(stream.finish(Some(stats)));
    }

    // Makes a new call's datagrams reach it: its RTCP socket in the epoll
    // set (the RTP socket is read at each tick), or on a shared socket its
    // remote addresses in the demultiplexing map.
    fn watch(&mut self, slot: usize, sockets: &Sockets, remotes: Remotes) -> Result<(), ()> {
        if sockets.is_shared() {
            if self.remote_taken(slot, remotes) {
                return Err(());
            }
            self.claim_remotes(slot, remotes);
            return Ok(());
        }
        // Only the RTCP socket wakes the worker (a report every few
        // seconds); the RTP socket is read at each tick.
        let token = (slot as u64) << 1 | 1;
        self.epoll.add(sockets.rtcp.as_raw_fd(), token).map_err(drop)
    }

    fn unwatch(&mut self, slot: usize, sockets: &Sockets, remotes: Remotes) {
        if sockets.is_shared() {
            self.forget_remotes(slot, remotes);
        } else {
            // Deregistering cannot fail for a registered fd; closing it
            // would deregister it anyway.
            let _ = self.epoll.delete(sockets.rtcp.as_raw_fd());
        }
    }

    // Whether another call than `slot` already receives from one of `remotes`.
    fn remote_taken(&self, slot: usize, (rtp, rtcp): Remotes) -> bool {
        [Some(rtp), rtcp].into_iter().flatten().any(|addr| self.by_remote.get(&addr).is_some_and(|&(s, _)| s != slot))
    }

    fn claim_remotes(&mut self, slot: usize, (rtp, rtcp): Remotes) {
        if let Some(rtcp) = rtcp.filter(|&rtcp| rtcp != rtp) {
            self.by_remote.insert(rtcp, (slot, true));
        }
        self.by_remote.insert(rtp, (slot, false));
    }

    fn forget_remotes(&mut self, slot: usize, (rtp, rtcp): Remotes) {
        for addr in [Some(rtp), rtcp].into_iter().flatten() {
            if self.by_remote.get(&addr).is_some_and(|&(s, _)| s == slot) {
                self.by_remote.remove(&addr);
            }
        }
    }

    fn shutdown(&mut self) {
        for slot in 0..self.calls.len() {
            self.close(slot);
        }
        // Requests that raced with the shutdown: calls that never ran are
        // closed, and nobody is left waiting for an answer.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Start { stream, sockets, leg, recording, .. } => {
                    drop(sockets);
                    if let Some(recording) = recording {
                        let _ = recording.send(record::Message::Close { id: stream.id });
                    }
                    self.wakes.extend(stream.finish(Some(leg.stats())));
                }
                Command::Reconfigure { reply, .. } => drop(reply.send(Err("the engine is closed".into()))),
                Command::Close { reply, .. } => drop(reply.map(|reply| reply.send(()))),
                Command::Shutdown => {}
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        send_out(&mut self.send, &self.counters);
        if self.notifier.publish(&mut self.wakes) {
            self.counters.app_wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// Sends what `send` holds, counting the outcome.
fn send_out(send: &mut SendBatch, counters: &WorkerCounters) {
    if !send.is_empty() {
        let outcome = send.flush();
        counters.datagrams_sent.fetch_add(outcome.sent, Ordering::Relaxed);
        counters.send_failures.fetch_add(outcome.failed, Ordering::Relaxed);
    }
}

fn pick(sockets: &Sockets, rtcp: bool) -> &std::net::UdpSocket {
    if rtcp {
        &sockets.rtcp
    } else {
        &sockets.rtp
    }
}
