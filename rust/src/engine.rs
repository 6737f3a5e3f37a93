//! `rtpcore.media`'s compiled half: the engine handle and one handle per
//! stream. Everything per packet happens on the engine's threads; these
//! methods only move frames, audio and commands across one mutex per
//! stream, and release the GIL whenever they may wait.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::intern;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType, PyWeakrefMethods, PyWeakrefReference};
use rtpcore_engine::call::{ntp_clock, Call, CallConfig};
use rtpcore_engine::leg::{AppFrame, FrameData, LegConfig, LegError, LegEvent, LegStats, SrtpKeying};
use rtpcore_engine::{ready, AppAudio, Engine, EngineConfig, EngineError, Pop, StreamCounters, StreamShared, WriteError};
use rtpcore_proto::jitter::{Codec, FrameKind};
use rtpcore_proto::srtp::Profile;

use crate::buffer::with_bytes;
use crate::errors::error_class;
use crate::jitter::{AudioFrame, KINDS};
use crate::pcm::{new_pcm16_array, with_pcm16};

type Stream = Arc<StreamShared<Call>>;

fn media_error(py: Python<'_>, name: &str, message: String) -> PyErr {
    static MEDIA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let cell = if name == "StreamClosedError" { &CLOSED } else { &MEDIA };
    match error_class(py, cell, name) {
        Ok(class) => PyErr::from_type(class.clone(), message),
        Err(e) => e,
    }
}

fn closed_error(py: Python<'_>) -> PyErr {
    media_error(py, "StreamClosedError", "the stream is closed".into())
}

fn engine_error(py: Python<'_>, err: EngineError<LegError>) -> PyErr {
    match err {
        EngineError::StreamClosed => closed_error(py),
        EngineError::InvalidConfig(message) => PyValueError::new_err(message),
        EngineError::Leg(LegError::Config { field, reason }) => PyValueError::new_err(format!("{field}: {reason}")),
        EngineError::Io(e) => PyOSError::new_err(e.to_string()),
        other => media_error(py, "MediaError", other.to_string()),
    }
}

/// What a handle needs to turn its stream's frames into Python objects,
/// whether its frames go to the engine's batch reader, and the Python
/// object that stands for the stream in wake-ups.
struct StreamInfo {
    /// A weak reference to the application's stream object: wake-ups and
    /// batched frames name it directly, sparing Python a lookup per frame.
    owner: OnceLock<Py<PyWeakrefReference>>,
    /// The application's sample rate (frames carry samples, not their rate).
    sample_rate: AtomicU32,
    /// Whether the application exchanges payload bytes instead of PCM.
    passthrough: AtomicBool,
    batch: bool,
}

/// A batch stream's frame, taken from its queue but not yet handed over.
type BatchFrame = (Arc<StreamInfo>, u64, AppFrame);

/// The engine: worker threads, ports, the notification fd.
#[pyclass(name = "MediaEngine", module = "rtpcore._core", frozen)]
pub struct MediaEngine {
    core: Arc<Engine<Call>>,
    streams: Arc<Mutex<HashMap<u64, Arc<StreamInfo>>>>,
    /// Batch streams that have frames: their frames stay in the stream's
    /// own bounded queue (oldest dropped and counted if nobody reads)
    /// until `take_frames` or `take_block` drains them.
    batch_ready: Mutex<Vec<(Stream, Arc<StreamInfo>)>>,
    /// Frames drained for a block that did not fit it (another frame size
    /// or kind, after a re-INVITE): served first by the next take.
    batch_leftover: Mutex<Vec<BatchFrame>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only plain maps live behind these locks; a panic cannot leave them torn.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn frame_object(py: Python<'_>, frame: AppFrame, sample_rate: u32) -> PyResult<Py<PyAny>> {
    match frame.data {
        FrameData::Pcm(samples) => {
            // A fresh numpy array filled by one copy: cheaper than handing
            // numpy the Vec (which wraps it in a Python-level owner object).
            let pcm = new_pcm16_array(py, samples.len(), |out| out.copy_from_slice(&samples)).unbind();
            Ok(Py::new(py, AudioFrame::from_parts(pcm, sample_rate, frame.rtp_timestamp, frame.kind))?.into_any())
        }
        FrameData::Payload(payload) => Ok(Py::new(
            py,
            PayloadFrame {
                payload: PyBytes::new(py, &payload).unbind(),
                timestamp: frame.rtp_timestamp,
                kind: frame.kind,
            },
        )?
        .into_any()),
    }
}

fn address_tuple(py: Python<'_>, addr: SocketAddr) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, [addr.ip().to_string().into_pyobject(py)?.into_any(), addr.port().into_pyobject(py)?.into_any()])
}

fn event_tuple<'py>(py: Python<'py>, event: LegEvent) -> PyResult<Bound<'py, PyTuple>> {
    Ok(match event {
        LegEvent::Dtmf { digit, duration_ms } => ("dtmf", digit.to_string(), duration_ms).into_pyobject(py)?,
        LegEvent::SsrcChanged { old, new } => ("ssrc_changed", old, new).into_pyobject(py)?,
        LegEvent::RemoteLatched { addr, ssrc } => ("remote_latched", address_tuple(py, addr)?, ssrc).into_pyobject(py)?,
        LegEvent::PacketsDropped { reason, count } => ("packets_dropped", reason.name(), count).into_pyobject(py)?,
        LegEvent::RtcpReport { fraction_lost, cumulative_lost, jitter_ms, rtt_ms } => {
            ("rtcp_report", fraction_lost, cumulative_lost, jitter_ms, rtt_ms).into_pyobject(py)?
        }
        LegEvent::MarkPlayed { name, cleared } => ("mark_played", name, cleared).into_pyobject(py)?,
        LegEvent::Bye { reason } => ("bye", reason).into_pyobject(py)?,
    })
}

fn stats_dict<'py>(
    py: Python<'py>,
    stats: Option<LegStats>,
    counters: StreamCounters,
    queued_ms: u32,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("queued_ms", queued_ms)?;
    let dropped = PyDict::new(py);
    if let Some(s) = stats {
        d.set_item("codec", s.codec.name())?;
        d.set_item("packets_sent", s.session.packets_sent)?;
        d.set_item("octets_sent", s.session.octets_sent)?;
        d.set_item("packets_received", s.session.packets_received)?;
        d.set_item("packets_expected", s.session.packets_expected)?;
        d.set_item("packets_lost", s.session.packets_lost)?;
        d.set_item("jitter_ms", s.session.jitter_ms)?;
        d.set_item("rtt_ms", s.session.rtt_ns.map(|ns| ns as f64 / 1e6))?;
        d.set_item("concealed_ms", s.jitter.concealed_ms)?;
        d.set_item("jitter_delay_ms", s.jitter.current_delay_ms)?;
        for (reason, count) in s.dropped.nonzero() {
            dropped.set_item(reason.name(), count)?;
        }
        d.set_item("frames_to_app", s.frames_to_app)?;
        d.set_item("frames_overrun", s.frames_overrun + counters.frames_overrun)?;
        d.set_item("frames_sent", s.frames_sent)?;
        d.set_item("idle_frames", s.idle_frames)?;
        d.set_item("cleared_ms", s.cleared_ms)?;
        d.set_item("send_errors", s.send_errors)?;
        d.set_item("mos", s.quality.map(|q| q.mos_cq))?;
        d.set_item("mos_listening", s.quality.map(|q| q.mos_lq))?;
    } else {
        // Never started: nothing happened yet.
        d.set_item("codec", None::<&str>)?;
        for key in [
            "packets_sent",
            "octets_sent",
            "packets_received",
            "packets_expected",
            "packets_lost",
            "frames_to_app",
            "frames_overrun",
            "frames_sent",
            "idle_frames",
            "cleared_ms",
            "send_errors",
        ] {
            d.set_item(key, 0)?;
        }
        for key in ["jitter_ms", "concealed_ms", "jitter_delay_ms"] {
            d.set_item(key, 0.0)?;
        }
        for key in ["rtt_ms", "mos", "mos_listening"] {
            d.set_item(key, None::<f64>)?;
        }
    }
    d.set_item("dropped", dropped)?;
    d.set_item("events_overrun", counters.events_overrun)?;
    d.set_item("writes_rejected", counters.writes_rejected)?;
    d.set_item("ticks_skipped", counters.ticks_skipped)?;
    Ok(d)
}

#[pymethods]
impl MediaEngine {
    #[new]
    #[pyo3(signature = (bind_host, port_low, port_high, workers, frame_queue, max_queued_ms, shared_sockets=false, tick_grid_ms=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bind_host: &str,
        port_low: u16,
        port_high: u16,
        workers: usize,
        frame_queue: usize,
        max_queued_ms: u32,
        shared_sockets: bool,
        tick_grid_ms: u32,
    ) -> PyResult<Self> {
        let bind_ip: IpAddr =
            bind_host.parse().map_err(|_| PyValueError::new_err(format!("bind_host: not an IP address: {bind_host:?}")))?;
        let config = EngineConfig {
            bind_ip,
            port_range: (port_low, port_high),
            workers,
            frame_queue,
            max_queued_ms,
            shared_sockets,
            tick_grid_ms,
            ..EngineConfig::default()
        };
        let core = Engine::new(config).map_err(|e| engine_error(py, e))?;
        Ok(MediaEngine {
            core: Arc::new(core),
            streams: Arc::new(Mutex::new(HashMap::new())),
            batch_ready: Mutex::new(Vec::new()),
            batch_leftover: Mutex::new(Vec::new()),
        })
    }

    /// The eventfd the event loop watches.
    fn fileno(&self) -> i32 {
        self.core.notify_fd()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Reserves a port pair; `batch` routes the stream's frames to
    /// `take_ready` instead of the stream's own reads.
    fn allocate(&self, py: Python<'_>, batch: bool) -> PyResult<MediaStreamHandle> {
        let stream = py.detach(|| self.core.allocate()).map_err(|e| engine_error(py, e))?;
        let info = Arc::new(StreamInfo {
            owner: OnceLock::new(),
            sample_rate: AtomicU32::new(8000),
            passthrough: AtomicBool::new(false),
            batch,
        });
        if batch {
            // Batch streams are always armed, so their first frame wakes the reader.
            let _ = stream.pop_frame(true);
        }
        lock(&self.streams).insert(stream.id, Arc::clone(&info));
        Ok(MediaStreamHandle { engine: Arc::clone(&self.core), streams: Arc::clone(&self.streams), stream, info })
    }

    /// `(wakes, batch_ready)`: `(stream, ready bits)` for the streams whose
    /// waiters should wake (`stream` is the object given to
    /// `MediaStreamHandle.bind`; streams whose object is gone are skipped),
    /// and whether batch streams have frames for `take_frames` /
    /// `take_block`.
    fn take_ready<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyList>, bool)> {
        let ready = self.core.take_ready();
        let wakes = PyList::empty(py);
        if ready.is_empty() {
            return Ok((wakes, false));
        }
        // The map's lock is released before any Python object is made or
        // dropped: either may run the garbage collector, whose finalizing
        // of a forgotten MediaStream (MediaStreamHandle::drop) takes this
        // lock on this same thread, a deadlock seen under load with
        // batch streams.
        let ready: Vec<_> = {
            let streams = lock(&self.streams);
            ready
                .into_iter()
                .filter_map(|(stream, bits)| {
                    let info = Arc::clone(streams.get(&stream.id)?);
                    Some((stream, bits, info))
                })
                .collect()
        };
        let mut batch = Vec::new();
        for (stream, mut bits, info) in ready {
            if info.batch && bits & ready::FRAMES != 0 {
                bits &= !ready::FRAMES;
                batch.push((Arc::clone(&stream), Arc::clone(&info)));
            }
            if bits != 0 {
                let Some(owner) = info.owner.get().and_then(|owner| owner.bind(py).upgrade()) else { continue };
                wakes.append((owner, bits))?;
            }
        }
        let batch_ready = {
            let mut pending = lock(&self.batch_ready);
            pending.extend(batch);
            !pending.is_empty()
        };
        Ok((wakes, batch_ready || !lock(&self.batch_leftover).is_empty()))
    }

    /// `(stream, frame)` for every frame of the batch streams that have
    /// some, in order per stream.
    fn take_frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let frames = PyList::empty(py);
        for (info, _, frame) in self.drain_batch() {
            let Some(owner) = info.owner.get().and_then(|owner| owner.bind(py).upgrade()) else { continue };
            frames.append((owner, frame_object(py, frame, info.sample_rate.load(Ordering::Relaxed))?))?;
        }
        Ok(frames)
    }

    /// The batch streams' frames as one block, or `None` when there are
    /// none: `(streams, ids, samples, timestamps, kinds)` with one row per
    /// frame (in order per stream): `samples` a 2-D int16 array of PCM
    /// (uint8 of codec payload for pass-through streams), `timestamps`
    /// int64 (-1: synthesized), `kinds` uint8 (index into `FRAME_KINDS`, the names of `jitter::KINDS`).
    /// Every row has the size and kind of the first frame; frames of
    /// another (after a re-INVITE) come in a later block.
    #[allow(clippy::type_complexity)]
    fn take_block<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<
        Option<(
            Bound<'py, PyList>,
            Bound<'py, PyArray1<u64>>,
            Bound<'py, PyAny>,
            Bound<'py, PyArray1<i64>>,
            Bound<'py, PyArray1<u8>>,
        )>,
    > {
        let frames = self.drain_batch();
        let Some(first) = frames.first() else { return Ok(None) };
        let shape = frame_shape(&first.2);
        // A stream's frames keep their order: once one of its frames is
        // left for a later block, so are the rest.
        let mut diverted: Vec<u64> = Vec::new();
        let mut rows = Vec::with_capacity(frames.len());
        let mut leftover = Vec::new();
        for item in frames {
            if frame_shape(&item.2) == shape && !diverted.contains(&item.1) {
                rows.push(item);
            } else {
                diverted.push(item.1);
                leftover.push(item);
            }
        }
        if !leftover.is_empty() {
            let mut pending = lock(&self.batch_leftover);
            leftover.append(&mut pending);
            *pending = leftover;
        }
        let streams = PyList::empty(py);
        let mut ids = Vec::with_capacity(rows.len());
        let mut timestamps = Vec::with_capacity(rows.len());
        let mut kinds = Vec::with_capacity(rows.len());
        let width = shape.1;
        let mut pcm: Vec<i16> = Vec::new();
        let mut payload: Vec<u8> = Vec::new();
        for (info, id, frame) in rows {
            let Some(owner) = info.owner.get().and_then(|owner| owner.bind(py).upgrade()) else { continue };
            streams.append(owner)?;
            ids.push(id);
            timestamps.push(frame.rtp_timestamp.map_or(-1, i64::from));
            kinds.push(frame_kind_index(frame.kind));
            match frame.data {
                FrameData::Pcm(samples) => pcm.extend_from_slice(&samples),
                FrameData::Payload(bytes) => payload.extend_from_slice(&bytes),
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let samples = if shape.0 {
            PyArray1::from_vec(py, payload).reshape([ids.len(), width])?.into_any()
        } else {
            PyArray1::from_vec(py, pcm).reshape([ids.len(), width])?.into_any()
        };
        Ok(Some((streams, PyArray1::from_vec(py, ids), samples, PyArray1::from_vec(py, timestamps), PyArray1::from_vec(py, kinds))))
    }

    /// Queues row `i` of `samples` (2-D: int16 PCM, or uint8 payload for
    /// pass-through streams) on `streams[i]` (a `MediaStream`), without
    /// waiting; returns the streams whose outbound queue was full. Closed
    /// streams are skipped.
    fn write_block<'py>(
        &self,
        py: Python<'py>,
        streams: &Bound<'py, PyAny>,
        samples: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let refused = PyList::empty(py);
        if let Ok(pcm) = samples.cast::<PyArray2<i16>>() {
            let pcm = pcm.readonly();
            let rows = pcm.as_array();
            self.write_rows(py, streams, rows.nrows(), &refused, |i, handle| {
                if handle.info.passthrough.load(Ordering::Relaxed) {
                    return Err(PyTypeError::new_err(
                        "samples: a pass-through stream takes codec payload bytes (uint8 rows), got int16 samples",
                    ));
                }
                Ok(AppAudio::Pcm(rows.row(i).to_vec()))
            })?;
        } else if let Ok(payload) = samples.cast::<PyArray2<u8>>() {
            let payload = payload.readonly();
            let rows = payload.as_array();
            self.write_rows(py, streams, rows.nrows(), &refused, |i, handle| {
                if !handle.info.passthrough.load(Ordering::Relaxed) {
                    return Err(PyTypeError::new_err("samples: a PCM stream takes int16 rows, got uint8 payload"));
                }
                Ok(AppAudio::Payload(rows.row(i).to_vec()))
            })?;
        } else {
            return Err(PyTypeError::new_err(
                "samples: expected a 2-D numpy array of int16 (PCM) or uint8 (pass-through payload)",
            ));
        }
        Ok(refused)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("workers", s.workers)?;
        d.set_item("active_calls", s.active_calls)?;
        d.set_item("ports_in_use", s.ports_in_use)?;
        d.set_item("app_wakeups", s.app_wakeups)?;
        d.set_item("rounds", s.rounds)?;
        d.set_item("datagrams_received", s.datagrams_received)?;
        d.set_item("datagrams_sent", s.datagrams_sent)?;
        d.set_item("send_failures", s.send_failures)?;
        d.set_item("datagrams_truncated", s.datagrams_truncated)?;
        d.set_item("ticks", s.ticks)?;
        d.set_item("late_ticks", s.late_ticks)?;
        d.set_item("skipped_ticks", s.skipped_ticks)?;
        d.set_item("max_lateness_ms", s.max_lateness_ns as f64 / 1e6)?;
        d.set_item("calls_failed", s.calls_failed)?;
        d.set_item("datagrams_unmatched", s.datagrams_unmatched)?;
        Ok(d)
    }

    /// Ends every running call and joins the worker threads.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.core.close());
    }
}

impl MediaEngine {
    /// Every frame of the batch streams that have some (leftovers of the
    /// last block first), re-arming each stream so that its next frame
    /// puts it on the ready list again.
    fn drain_batch(&self) -> Vec<BatchFrame> {
        let mut frames = std::mem::take(&mut *lock(&self.batch_leftover));
        let ready = std::mem::take(&mut *lock(&self.batch_ready));
        let mut drained = Vec::new();
        for (stream, info) in ready {
            stream.drain_frames(&mut drained, true);
            frames.extend(drained.drain(..).map(|frame| (Arc::clone(&info), stream.id, frame)));
        }
        frames
    }

    fn write_rows<'py>(
        &self,
        py: Python<'py>,
        streams: &Bound<'py, PyAny>,
        rows: usize,
        refused: &Bound<'py, PyList>,
        mut audio: impl FnMut(usize, &MediaStreamHandle) -> PyResult<AppAudio>,
    ) -> PyResult<()> {
        let count = streams.len()?;
        if count != rows {
            return Err(PyValueError::new_err(format!("samples: {rows} rows for {count} streams")));
        }
        let max_queued_ms = self.core.config().max_queued_ms;
        for (i, stream) in streams.try_iter()?.enumerate() {
            let stream = stream?;
            let not_a_stream = || PyTypeError::new_err("streams: expected MediaStream objects");
            let core = stream.getattr(intern!(py, "_core")).map_err(|_| not_a_stream())?;
            let handle = core.cast::<MediaStreamHandle>().map_err(|_| not_a_stream())?.get();
            match handle.stream.write(audio(i, handle)?, max_queued_ms, false) {
                Ok(()) => {}
                Err(WriteError::Full) => refused.append(stream)?,
                Err(WriteError::Closed) => {}
            }
        }
        Ok(())
    }
}

// What makes frames fit one block's rows: payload (true) or PCM, and length.
fn frame_shape(frame: &AppFrame) -> (bool, usize) {
    match &frame.data {
        FrameData::Pcm(samples) => (false, samples.len()),
        FrameData::Payload(bytes) => (true, bytes.len()),
    }
}

// The index of `kind` in `jitter::KINDS`, the order `FRAME_KINDS` names.
fn frame_kind_index(kind: FrameKind) -> u8 {
    let index = KINDS.iter().position(|&k| k == kind);
    // KINDS lists every kind (AudioFrame's constructor relies on it too).
    index.map_or(u8::MAX, |i| i as u8)
}

/// Received G.711 payload (passthrough mode): one ptime of codec bytes.
#[pyclass(name = "PayloadFrame", module = "rtpcore._core", frozen)]
pub struct PayloadFrame {
    payload: Py<PyBytes>,
    timestamp: Option<u32>,
    kind: FrameKind,
}

#[pymethods]
impl PayloadFrame {
    /// The codec payload (μ-law or A-law bytes, 8000 per second).
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload.clone_ref(py)
    }

    /// Always 8000: G.711 carries one byte per sample.
    #[getter]
    fn sample_rate(&self) -> u32 {
        8000
    }

    /// RTP timestamp of the first sample, `None` when wholly synthesized.
    #[getter]
    fn timestamp(&self) -> Option<u32> {
        self.timestamp
    }

    /// How the jitter buffer made the frame (`"normal"`, `"concealed"` ...).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Length in seconds.
    #[getter]
    fn duration(&self, py: Python<'_>) -> f64 {
        self.payload.bind(py).as_bytes().len() as f64 / 8000.0
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.payload.bind(py).as_bytes().len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let ts = self.timestamp.map_or("None".to_string(), |t| t.to_string());
        format!("PayloadFrame(kind={:?}, bytes={}, timestamp={ts})", self.kind.name(), self.__len__(py))
    }
}

/// One stream: its queues, its commands, its lifecycle.
#[pyclass(name = "MediaStreamHandle", module = "rtpcore._core", frozen)]
pub struct MediaStreamHandle {
    engine: Arc<Engine<Call>>,
    streams: Arc<Mutex<HashMap<u64, Arc<StreamInfo>>>>,
    stream: Stream,
    info: Arc<StreamInfo>,
}

fn socket_addr(what: &str, (host, port): (String, u16)) -> PyResult<SocketAddr> {
    let ip: IpAddr = host.parse().map_err(|_| PyValueError::new_err(format!("{what}: not an IP address: {host:?}")))?;
    Ok(SocketAddr::new(ip, port))
}

fn keying(what: &str, keying: Option<(String, Vec<u8>, Vec<u8>)>) -> PyResult<Option<SrtpKeying>> {
    keying
        .map(|(suite, master_key, master_salt)| {
            let profile = Profile::from_name(&suite)
                .ok_or_else(|| PyValueError::new_err(format!("{what}: unsupported crypto suite {suite:?}")))?;
            Ok(SrtpKeying { profile, master_key, master_salt })
        })
        .transpose()
}

// A fresh value per call for the SSRC, sequence and timestamp origins and
// the RTCP timing (RFC 3550 section 8: random, so calls never collide).
fn call_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl MediaStreamHandle {
    fn frame(&self, py: Python<'_>, pop: Pop<AppFrame>) -> PyResult<Option<Py<PyAny>>> {
        match pop {
            Pop::Item(frame) => frame_object(py, frame, self.info.sample_rate.load(Ordering::Relaxed)).map(Some),
            Pop::Empty | Pop::Closed => Ok(None),
        }
    }
}

#[pymethods]
impl MediaStreamHandle {
    #[getter]
    fn id(&self) -> u64 {
        self.stream.id
    }

    /// Names `owner` (held weakly) as the object that stands for this
    /// stream in the engine's wake-ups; once only.
    fn bind(&self, owner: &Bound<'_, PyAny>) -> PyResult<()> {
        let weak = PyWeakrefReference::new(owner)?.unbind();
        self.info.owner.set(weak).map_err(|_| PyValueError::new_err("owner: this stream is already bound"))
    }

    #[getter]
    fn local_address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, self.stream.local_rtp)
    }

    #[getter]
    fn local_rtcp_port(&self) -> u16 {
        self.stream.local_rtcp.port()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.stream.is_closed()
    }

    #[getter]
    fn queued_ms(&self) -> u32 {
        self.stream.queued_ms()
    }

    /// Starts (or reconfigures) the call; arguments are checked by
    /// `MediaConfig` and again here, where a mistake would otherwise panic.
    #[pyo3(signature = (*, codec, payload_type, remote, remote_rtcp, ptime, telephone_event, comfort_noise,
                        srtp_send, srtp_recv, sample_rate, passthrough, latch, record_path, send=true))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        py: Python<'_>,
        codec: &str,
        payload_type: u8,
        remote: (String, u16),
        remote_rtcp: Option<(String, u16)>,
        ptime: u32,
        telephone_event: Option<u8>,
        comfort_noise: Option<u8>,
        srtp_send: Option<(String, Vec<u8>, Vec<u8>)>,
        srtp_recv: Option<(String, Vec<u8>, Vec<u8>)>,
        sample_rate: u32,
        passthrough: bool,
        latch: bool,
        record_path: Option<PathBuf>,
        send: bool,
    ) -> PyResult<()> {
        let codec = Codec::from_name(codec).ok_or_else(|| PyValueError::new_err(format!("codec: unknown codec {codec:?}")))?;
        if payload_type > 127 {
            return Err(PyValueError::new_err(format!("payload_type: must be 0 to 127, got {payload_type}")));
        }
        let seed = call_seed();
        let mut leg = LegConfig::new(codec, format!("rtpcore-{seed:016x}"), seed);
        leg.payload_type = payload_type;
        leg.ptime_ms = ptime;
        leg.telephone_event_pt = telephone_event;
        leg.comfort_noise_pt = comfort_noise;
        leg.srtp_send = keying("srtp_send", srtp_send)?;
        leg.srtp_recv = keying("srtp_recv", srtp_recv)?;
        leg.app_sample_rate = sample_rate;
        leg.passthrough = passthrough;
        leg.latch = latch;
        leg.ntp = ntp_clock();
        let config = CallConfig {
            leg,
            remote_rtp: socket_addr("remote", remote)?,
            remote_rtcp: remote_rtcp.map(|r| socket_addr("remote_rtcp", r)).transpose()?,
            send,
        };
        let rate = if passthrough { 8000 } else { sample_rate };
        // The inbox counts PCM samples, or payload bytes (8 per ms for
        // G.711), to turn backpressure into milliseconds.
        self.stream.set_units_per_ms(rate / 1000);
        py.detach(|| self.engine.start(&self.stream, config, record_path.as_deref())).map_err(|e| engine_error(py, e))?;
        self.info.sample_rate.store(rate, Ordering::Relaxed);
        self.info.passthrough.store(passthrough, Ordering::Relaxed);
        Ok(())
    }

    /// The next frame, or `None` (then, with `arm`, the engine's fd wakes
    /// the loop when one arrives).
    fn pop_frame(&self, py: Python<'_>, arm: bool) -> PyResult<Option<Py<PyAny>>> {
        self.frame(py, self.stream.pop_frame(arm))
    }

    /// Every queued frame.
    fn pop_frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut frames = Vec::new();
        self.stream.drain_frames(&mut frames, false);
        let rate = self.info.sample_rate.load(Ordering::Relaxed);
        let list = PyList::empty(py);
        for frame in frames {
            list.append(frame_object(py, frame, rate)?)?;
        }
        Ok(list)
    }

    /// Waits (GIL released) up to `timeout` seconds for a frame.
    #[pyo3(signature = (timeout=None))]
    fn wait_frame(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let timeout = timeout
            .map(|t| {
                Duration::try_from_secs_f64(t)
                    .map_err(|_| PyValueError::new_err(format!("timeout: must be a non-negative number of seconds, got {t}")))
            })
            .transpose()?;
        let pop = py.detach(|| self.stream.wait_frame(timeout));
        self.frame(py, pop)
    }

    /// The next event as a tuple `(kind, ...)`, or `None`.
    fn pop_event<'py>(&self, py: Python<'py>, arm: bool) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.stream.pop_event(arm) {
            Pop::Item(event) => event_tuple(py, event).map(Some),
            Pop::Empty | Pop::Closed => Ok(None),
        }
    }

    /// Every queued event.
    fn pop_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while let Pop::Item(event) = self.stream.pop_event(false) {
            list.append(event_tuple(py, event)?)?;
        }
        Ok(list)
    }

    /// Queues audio; False when the outbound queue is full (then, with
    /// `arm`, the fd wakes the loop once there is room).
    fn write(&self, py: Python<'_>, audio: &Bound<'_, PyAny>, arm: bool) -> PyResult<bool> {
        let audio = if self.info.passthrough.load(Ordering::Relaxed) {
            // Samples written to a pass-through stream would go out as
            // noise; an array of wider items is that mistake.
            if let Ok(array) = audio.cast::<PyUntypedArray>() {
                if array.dtype().itemsize() != 1 {
                    return Err(PyTypeError::new_err(
                        "audio: a pass-through stream takes codec payload bytes, got an array of samples",
                    ));
                }
            }
            AppAudio::Payload(with_bytes(audio, "audio", <[u8]>::to_vec)?)
        } else {
            AppAudio::Pcm(with_pcm16(audio, "audio", <[i16]>::to_vec)?)
        };
        match self.stream.write(audio, self.engine.config().max_queued_ms, arm) {
            Ok(()) => Ok(true),
            Err(WriteError::Full) => Ok(false),
            Err(WriteError::Closed) => Err(closed_error(py)),
        }
    }

    fn mark(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.stream.mark(name).map_err(|_| closed_error(py))
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.stream.clear().map_err(|_| closed_error(py))
    }

    fn send_dtmf(&self, py: Python<'_>, digits: String, duration_ms: u32) -> PyResult<()> {
        if digits.is_empty() || !digits.chars().all(|c| "0123456789*#ABCDabcd".contains(c)) {
            return Err(PyValueError::new_err(format!("digits: must be 1 or more of 0-9 * # A-D, got {digits:?}")));
        }
        self.stream.send_dtmf(digits, duration_ms).map_err(|_| closed_error(py))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (stats, counters) = self.stream.stats();
        stats_dict(py, stats, counters, self.stream.queued_ms())
    }

    /// Closes the stream and waits (GIL released) until its sockets are
    /// closed and ports released.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.engine.close_stream(&self.stream, true));
        lock(&self.streams).remove(&self.stream.id);
    }
}

impl Drop for MediaStreamHandle {
    // A handle dropped without close() (a crashed task, a forgotten
    // stream) still ends its call; without waiting, since this may run
    // anywhere the garbage collector does.
    fn drop(&mut self) {
        self.engine.close_stream(&self.stream, false);
        lock(&self.streams).remove(&self.stream.id);
    }
}

/// Registers the engine's classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MediaEngine>()?;
    m.add_class::<MediaStreamHandle>()?;
    m.add_class::<PayloadFrame>()?;
    m.add("FRAME_KINDS", PyTuple::new(m.py(), KINDS.map(FrameKind::name))?)?;
    Ok(())
}
