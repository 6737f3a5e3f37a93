//! The engine handle the application holds: port allocation, the worker
//! threads, stream lifecycle (allocate, start, reconfigure, close) and the
//! one notification fd.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::driven::DrivenLeg;
use crate::ports::PortAllocator;
use crate::record::{self, Recorder, WavFile};
use crate::stream::{lock, Notifier, Phase, PortLease, Sockets, StreamShared, StreamState};
use crate::sys::{bind_udp, monotonic_ns, set_buffer_sizes, EventFd};
use crate::worker::{Command, WorkerCounters, Worker, WorkerSettings};

/// How an engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address the call sockets bind to.
    pub bind_ip: IpAddr,
    /// Inclusive RTP/RTCP port range.
    pub port_range: (u16, u16),
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Frames kept per stream for an application that does not read
    /// (50 = 1 s at 20 ms); older ones are dropped and counted.
    pub frame_queue: usize,
    /// Events kept per stream for an application that does not read.
    pub event_queue: usize,
    /// Outbound audio per stream beyond which writes wait (backpressure).
    pub max_queued_ms: u32,
    /// One UDP socket per worker for all of its calls instead of a port
    /// pair per call: every call of a worker has the same local port, its
    /// datagrams are told apart by their source (each call's configured
    /// remote RTP and RTCP address, which must differ from every other
    /// call's on that worker; no latching onto another source), RTCP is
    /// multiplexed on it, and one `recvmmsg`/`sendmmsg` serves many calls.
    /// Meant for load generators and far ends under our control; SDP
    /// towards real peers wants the default, a port per call.
    pub shared_sockets: bool,
    /// Calls start their ptime clocks on a grid of this many milliseconds
    /// (1..=10), so that one wake-up of a worker serves every call of the
    /// same phase. Each wake-up costs a worker some 25-30 us of CPU on the
    /// virtual machines measured; a coarser grid pays it less often (2 ms:
    /// about 8% less CPU per call at 800 calls, nothing once the workers
    /// fall behind and their rounds run together anyway) but makes each round
    /// longer, and the calls late in a round send that much later (every
    /// call keeps its place in the round, so its own packets stay evenly
    /// spaced, but a round held up is felt by more calls at once).
    pub tick_grid_ms: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            port_range: (20000, 40000),
            workers: 0,
            frame_queue: 50,
            event_queue: 1000,
            max_queued_ms: 60_000,
            shared_sockets: false,
            tick_grid_ms: 1,
        }
    }
}

/// Why an engine operation failed.
#[derive(Debug)]
pub enum EngineError<E> {
    /// The engine was closed.
    EngineClosed,
    /// The stream was closed.
    StreamClosed,
    /// Every port of the range is in use.
    PortsExhausted,
    /// A bad engine setting (names the setting).
    InvalidConfig(String),
    /// A system call failed.
    Io(io::Error),
    /// The pipeline refused the configuration.
    Leg(E),
    /// The worker did not answer in time (it is overloaded or stuck).
    Timeout,
}

impl<E: fmt::Display> fmt::Display for EngineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::EngineClosed => f.write_str("the engine is closed"),
            EngineError::StreamClosed => f.write_str("the stream is closed"),
            EngineError::PortsExhausted => f.write_str("no free port pair left in the engine's port range"),
            EngineError::InvalidConfig(message) => f.write_str(message),
            EngineError::Io(e) => write!(f, "{e}"),
            EngineError::Leg(e) => write!(f, "{e}"),
            EngineError::Timeout => f.write_str("the engine's worker did not answer in time"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for EngineError<E> {}

impl<E> From<io::Error> for EngineError<E> {
    fn from(e: io::Error) -> Self {
        EngineError::Io(e)
    }
}

/// A snapshot of the engine-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Worker threads.
    pub workers: usize,
    /// Calls running on the workers.
    pub active_calls: usize,
    /// Port pairs in use.
    pub ports_in_use: usize,
    /// Times the application was signalled through the fd.
    pub app_wakeups: u64,
    /// Worker loop iterations.
    pub rounds: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that could not be sent.
    pub send_failures: u64,
    /// Oversized datagrams dropped.
    pub datagrams_truncated: u64,
    /// Ptime ticks run.
    pub ticks: u64,
    /// Ticks more than 2 ms late.
    pub late_ticks: u64,
    /// Ticks skipped after long stalls.
    pub skipped_ticks: u64,
    /// Worst tick lateness, nanoseconds.
    pub max_lateness_ns: u64,
    /// Datagrams on a shared socket from no call's remote address, dropped.
    pub datagrams_unmatched: u64,
    /// Calls ended because their pipeline panicked (a bug to report).
    pub calls_failed: u64,
}

struct WorkerHandle<L: DrivenLeg> {
    commands: Sender<Command<L>>,
    wake: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
    load: usize,
    // With shared sockets: the worker's socket, and the lease that keeps
    // its port pair reserved until the engine closes.
    shared: Option<(Arc<UdpSocket>, PortLease)>,
}

/// Socket buffers of a worker's shared socket: room for every call's
/// datagrams between two reads with thousands of calls.
const SHARED_SOCKET_BUFFER: usize = 8 << 20;

/// How long the application waits for a worker to confirm a close or a
/// reconfiguration: far above a healthy worker's round (microseconds), low
/// enough that a wedged worker cannot hang the application.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The media engine: worker threads that run many calls' pipelines off the
/// application's threads, and the ports and sockets they use.
pub struct Engine<L: DrivenLeg> {
    config: EngineConfig,
    ports: Arc<Mutex<PortAllocator>>,
    notifier: Arc<Notifier<L>>,
    workers: Mutex<Vec<WorkerHandle<L>>>,
    // One per worker, kept after close() so the totals stay readable.
    counters: Vec<Arc<WorkerCounters>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    // Started by the first recording; dropped (joined) after the workers.
    recorder: Mutex<Option<Recorder>>,
}

impl<L: DrivenLeg> Engine<L> {
    /// Validates `config` and starts the worker threads.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError<L::Error>> {
        let (low, high) = config.port_range;
        let ports = PortAllocator::new(low, high).map_err(|e| EngineError::InvalidConfig(e.to_string()))?;
        if config.frame_queue == 0 || config.event_queue == 0 {
            return Err(EngineError::InvalidConfig("frame_queue/event_queue: must be at least 1".into()));
        }
        if !(1..=10).contains(&config.tick_grid_ms) {
            return Err(EngineError::InvalidConfig(format!(
                "tick_grid_ms: must be 1..=10 (at most the shortest ptime), got {}",
                config.tick_grid_ms
            )));
        }
        let count = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let ports = Arc::new(Mutex::new(ports));
        let notifier = Arc::new(Notifier::new()?);
        let mut counters = Vec::with_capacity(count);
        let settings = WorkerSettings {
            max_queued_ms: config.max_queued_ms,
            tick_grid_ns: i64::from(config.tick_grid_ms) * 1_000_000,
        };
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (commands, receiver) = mpsc::channel();
            let wake = Arc::new(EventFd::new()?);
            let worker_counters = Arc::new(WorkerCounters::default());
            counters.push(Arc::clone(&worker_counters));
            let shared = if config.shared_sockets { Some(Self::shared_socket(&ports, config.bind_ip)?) } else { None };
            let socket = shared.as_ref().map(|(socket, _)| Arc::clone(socket));
            let worker =
                Worker::new(Arc::clone(&wake), receiver, Arc::clone(&notifier), worker_counters, settings, socket)?;
            let thread = std::thread::Builder::new().name(format!("rtpcore-media-{index}")).spawn(move || worker.run())?;
            workers.push(WorkerHandle { commands, wake, thread: Some(thread), load: 0, shared });
        }
        Ok(Engine {
            config,
            ports,
            notifier,
            workers: Mutex::new(workers),
            counters,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            recorder: Mutex::new(None),
        })
    }

    // A worker's shared socket on the RTP port of a pair of the range.
    fn shared_socket(
        ports: &Arc<Mutex<PortAllocator>>,
        ip: IpAddr,
    ) -> Result<(Arc<UdpSocket>, PortLease), EngineError<L::Error>> {
        let bound = lock(ports).allocate(|port| bind_udp(SocketAddr::new(ip, port)));
        let (port, socket) = match bound {
            None => return Err(EngineError::PortsExhausted),
            Some(result) => result?,
        };
        set_buffer_sizes(&socket, SHARED_SOCKET_BUFFER);
        Ok((Arc::new(socket), PortLease::new(Arc::clone(ports), port)))
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The descriptor the application's event loop watches: readable when
    /// [`take_ready`](Self::take_ready) has something.
    pub fn notify_fd(&self) -> RawFd {
        self.notifier.fd().as_raw_fd()
    }

    /// Streams that became ready since the last call, with their ready bits.
    pub fn take_ready(&self) -> Vec<(Arc<StreamShared<L>>, u8)> {
        self.notifier.take_ready()
    }

    /// Reserves an even RTP port and RTP + 1 for RTCP, both sockets bound.
    pub fn allocate(&self) -> Result<Arc<StreamShared<L>>, EngineError<L::Error>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::EngineClosed);
        }
        if self.config.shared_sockets {
            return self.allocate_shared();
        }
        let ip = self.config.bind_ip;
        let bound = lock(&self.ports).allocate(|port| -> io::Result<_> {
            let rtp = bind_udp(SocketAddr::new(ip, port))?;
            let rtcp = bind_udp(SocketAddr::new(ip, port + 1))?;
            Ok((rtp, rtcp))
        });
        let (port, (rtp, rtcp)) = match bound {
            None => return Err(EngineError::PortsExhausted),
            Some(Err(e)) if e.kind() == io::ErrorKind::AddrInUse => return Err(EngineError::PortsExhausted),
            Some(Err(e)) => return Err(EngineError::Io(e)),
            Some(Ok(bound)) => bound,
        };
        let sockets = Sockets::new(rtp, rtcp, PortLease::new(Arc::clone(&self.ports), port));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stream = StreamShared::new(id, sockets, self.config.frame_queue, self.config.event_queue)?;
        Ok(Arc::new(stream))
    }

    // With shared sockets the worker is chosen here, since its socket's
    // port is the stream's: round robin, which spreads calls as evenly as
    // the least-loaded choice when they start in the order allocated.
    fn allocate_shared(&self) -> Result<Arc<StreamShared<L>>, EngineError<L::Error>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sockets = {
            let workers = lock(&self.workers);
            let index = (id as usize) % workers.len().max(1);
            let Some((socket, _)) = workers.get(index).and_then(|w| w.shared.as_ref()) else {
                return Err(EngineError::EngineClosed);
            };
            Sockets::shared(socket, index)
        };
        let stream = StreamShared::new(id, sockets, self.config.frame_queue, self.config.event_queue)?;
        Ok(Arc::new(stream))
    }

    /// Starts media on an allocated stream with a new pipeline built from
    /// `config`, or, if it already runs, reconfigures its pipeline (the
    /// re-INVITE case). Configuration errors come back synchronously.
    ///
    /// `record` (first start only) records the call into a stereo WAV at
    /// the application's rate; the file is created here, so a bad path is
    /// an error of this call.
    pub fn start(
        &self,
        stream: &Arc<StreamShared<L>>,
        config: L::Config,
        record: Option<&Path>,
    ) -> Result<(), EngineError<L::Error>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError::EngineClosed);
        }
        let mut state = stream.state();
        match state.phase {
            Phase::Closed => return Err(EngineError::StreamClosed),
            Phase::Running(worker) => {
                drop(state);
                return self.reconfigure(stream, worker, config);
            }
            Phase::Allocated(_) => {}
        }
        let shared_by = match &state.phase {
            Phase::Allocated(sockets) => sockets.shared_by,
            _ => None,
        };
        let remotes = L::remote_addresses(&config);
        // Built here, on the caller's thread, so that a bad key or codec
        // raises at start() instead of surfacing later from a worker.
        let leg = L::new(config, monotonic_ns()).map_err(EngineError::Leg)?;
        let recording = match record {
            Some(path) => Some(self.open_recording(&mut state, stream.id, path, leg.app_sample_rate())?),
            None => None,
        };
        let mut workers = lock(&self.workers);
        // Least-loaded worker: calls spread evenly over the cores (or the
        // one whose shared socket the stream has).
        let chosen = match shared_by {
            Some(index) => workers.get_mut(index).map(|handle| (index, handle)),
            None => workers.iter_mut().enumerate().min_by_key(|(_, w)| w.load),
        };
        let Some((index, handle)) = chosen else {
            return Err(EngineError::EngineClosed);
        };
        let Some(sockets) = state.take_sockets(index) else { return Err(EngineError::StreamClosed) };
        drop(state);
        let command = Command::Start { stream: Arc::clone(stream), sockets, leg, recording, remotes };
        if let Err(mpsc::SendError(command)) = handle.commands.send(command) {
            // The worker is gone (engine closing): nothing runs the call.
            drop(command);
            self.finish_locally(stream);
            return Err(EngineError::EngineClosed);
        }
        handle.load += 1;
        handle.wake.signal();
        Ok(())
    }

    fn open_recording(
        &self,
        state: &mut StreamState<L>,
        id: u64,
        path: &Path,
        sample_rate: u32,
    ) -> Result<Sender<record::Message>, EngineError<L::Error>> {
        let file = WavFile::create(path, sample_rate)
            .map_err(|e| EngineError::InvalidConfig(format!("record_path: cannot create {}: {e}", path.display())))?;
        let mut recorder = lock(&self.recorder);
        if recorder.is_none() {
            *recorder = Some(Recorder::spawn()?);
        }
        let sender = recorder.as_ref().map(Recorder::sender).ok_or(EngineError::EngineClosed)?;
        let (done, finished) = mpsc::sync_channel(1);
        sender.send(record::Message::Open { id, file, done }).map_err(|_| EngineError::EngineClosed)?;
        state.recording_done = Some(finished);
        Ok(sender)
    }

    fn reconfigure(
        &self,
        stream: &Arc<StreamShared<L>>,
        worker: usize,
        config: L::Config,
    ) -> Result<(), EngineError<L::Error>> {
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Reconfigure { id: stream.id, config, reply };
        self.send(worker, command)?;
        match answer.recv_timeout(REPLY_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(EngineError::InvalidConfig(message)),
            Err(RecvTimeoutError::Timeout) => Err(EngineError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(EngineError::EngineClosed),
        }
    }

    /// Closes a stream: RTCP BYE, sockets closed, ports released, waiters
    /// woken; with `wait`, returns only once all that is done. Idempotent.
    pub fn close_stream(&self, stream: &Arc<StreamShared<L>>, wait: bool) {
        let state = stream.state();
        let worker = match state.phase {
            Phase::Closed => return,
            Phase::Running(worker) => worker,
            Phase::Allocated(_) => {
                // Never started: the sockets are still ours to close.
                let wake = stream.finish_locked(state, None);
                self.notifier.publish(&mut wake.into_iter().collect());
                return;
            }
        };
        drop(state);
        let (reply, answer) = mpsc::sync_channel(1);
        let reply = wait.then_some(reply);
        if self.send(worker, Command::Close { id: stream.id, reply }).is_err() {
            self.finish_locally(stream);
            return;
        }
        if let Some(load) = lock(&self.workers).get_mut(worker).map(|w| &mut w.load) {
            *load = load.saturating_sub(1);
        }
        if wait {
            if answer.recv_timeout(REPLY_TIMEOUT).is_err() {
                // The worker is gone or wedged; the stream is over for the app.
                self.finish_locally(stream);
            }
            self.wait_recording(stream);
        }
    }

    // A closed stream's recording is complete once this returns (or the
    // recorder failed to answer in time).
    fn wait_recording(&self, stream: &Arc<StreamShared<L>>) {
        let done = stream.state().recording_done.take();
        if let Some(done) = done {
            let _ = done.recv_timeout(REPLY_TIMEOUT);
        }
    }

    fn send(&self, worker: usize, command: Command<L>) -> Result<(), EngineError<L::Error>> {
        let workers = lock(&self.workers);
        let handle = workers.get(worker).ok_or(EngineError::EngineClosed)?;
        handle.commands.send(command).map_err(|_| EngineError::EngineClosed)?;
        handle.wake.signal();
        Ok(())
    }

    // Marks a stream closed from the application's side, when no worker
    // will do it; its sockets (if any are still ours) close now.
    fn finish_locally(&self, stream: &Arc<StreamShared<L>>) {
        self.notifier.publish(&mut stream.finish(None).into_iter().collect());
    }

    /// The engine-wide counters now (summed over the workers).
    pub fn stats(&self) -> EngineStats {
        let mut stats = EngineStats {
            workers: self.counters.len(),
            ports_in_use: lock(&self.ports).in_use(),
            ..EngineStats::default()
        };
        for c in &self.counters {
            let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            stats.active_calls += c.active_calls.load(Ordering::Relaxed);
            stats.app_wakeups += get(&c.app_wakeups);
            stats.rounds += get(&c.rounds);
            stats.datagrams_received += get(&c.datagrams_received);
            stats.datagrams_sent += get(&c.datagrams_sent);
            stats.send_failures += get(&c.send_failures);
            stats.datagrams_truncated += get(&c.datagrams_truncated);
            stats.ticks += get(&c.ticks);
            stats.late_ticks += get(&c.late_ticks);
            stats.skipped_ticks += get(&c.skipped_ticks);
            stats.max_lateness_ns = stats.max_lateness_ns.max(get(&c.max_lateness_ns));
            stats.calls_failed += get(&c.calls_failed);
            stats.datagrams_unmatched += get(&c.datagrams_unmatched);
        }
        stats
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends every running call and joins the worker threads. Streams that
    /// were allocated but never started close when their handles drop (or
    /// through [`close_stream`](Self::close_stream)). Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let handles: Vec<WorkerHandle<L>> = std::mem::take(&mut *lock(&self.workers));
        for handle in &handles {
            // A worker that already exited has dropped its receiver.
            let _ = handle.commands.send(Command::Shutdown);
            handle.wake.signal();
        }
        for mut handle in handles {
            if let Some(thread) = handle.thread.take() {
                // A worker that panicked has nothing left to clean up.
                let _ = thread.join();
            }
        }
        // The workers closed their recordings; this completes the files.
        drop(lock(&self.recorder).take());
    }
}

impl<L: DrivenLeg> Drop for Engine<L> {
    fn drop(&mut self) {
        self.close();
    }
}
