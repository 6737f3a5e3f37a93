//! `rtpcore.jitter`: the adaptive jitter buffer and the `AudioFrame` it
//! hands out. Per-packet work is well under a microsecond, so neither call
//! releases the GIL (that would cost more than it saves).
use crate::buffer::with_bytes;
use crate::pcm::{new_pcm16_array, with_pcm16_out};
use numpy::{PyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::intern;
use pyo3::types::PyString;
use rtpcore_proto::jitter::delay::DelayConfig;
use rtpcore_proto::jitter::{Codec, Config, FrameKind, JitterBuffer as CoreBuffer, PushOutcome, Stats};

/// One frame of decoded audio: int16 samples with their sample rate, the
/// RTP timestamp of the first sample and how the frame was made.
#[pyclass(name = "AudioFrame", module = "rtpcore._core", frozen)]
pub struct AudioFrame {
    pcm: Py<PyArray1<i16>>,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    timestamp: Option<u32>,
    #[pyo3(get)]
    kind: &'static str,
}

/// Every frame kind, in the order of the media engine's frame blocks'
/// `kinds` indices (`FRAME_KINDS`).
pub(crate) const KINDS: [FrameKind; 7] = [
    FrameKind::Normal,
    FrameKind::Concealed,
    FrameKind::Accelerated,
    FrameKind::Expanded,
    FrameKind::Merged,
    FrameKind::ComfortNoise,
    FrameKind::Silence,
];

impl AudioFrame {
    /// A frame from parts Rust already knows to be valid (the media
    /// engine's frames): `kind` is a `FrameKind` name.
    pub(crate) fn from_parts(pcm: Py<PyArray1<i16>>, sample_rate: u32, timestamp: Option<u32>, kind: FrameKind) -> Self {
        AudioFrame { pcm, sample_rate, timestamp, kind: kind.name() }
    }
}

#[pymethods]
impl AudioFrame {
    #[new]
    #[pyo3(signature = (pcm, sample_rate, timestamp=None, kind="normal"))]
    fn new(pcm: &Bound<'_, PyAny>, sample_rate: u32, timestamp: Option<u32>, kind: &str) -> PyResult<Self> {
        let pcm = pcm
            .cast::<PyArray1<i16>>()
            .map_err(|_| PyTypeError::new_err("pcm: expected a 1-D numpy int16 array"))?;
        let kind = KINDS
            .iter()
            .map(|k| k.name())
            .find(|name| *name == kind)
            .ok_or_else(|| PyValueError::new_err(format!("kind: unknown frame kind {kind:?}")))?;
        if sample_rate == 0 {
            return Err(PyValueError::new_err("sample_rate: must be positive"));
        }
        Ok(AudioFrame { pcm: pcm.clone().unbind(), sample_rate, timestamp, kind })
    }

    /// The samples (numpy int16, mono).
    #[getter]
    fn pcm(&self, py: Python<'_>) -> Py<PyArray1<i16>> {
        self.pcm.clone_ref(py)
    }

    /// Length in seconds.
    #[getter]
    fn duration(&self, py: Python<'_>) -> f64 {
        self.pcm.bind(py).len() as f64 / f64::from(self.sample_rate)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.pcm.bind(py).len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let ts = self.timestamp.map_or("None".to_string(), |t| t.to_string());
        format!(
            "AudioFrame(kind={:?}, samples={}, sample_rate={}, timestamp={ts})",
            self.kind,
            self.pcm.bind(py).len(),
            self.sample_rate
        )
    }
}

/// An RFC 4733 telephone-event packet taken out of the audio stream by the
/// buffer, with its RTP timestamp and arrival time (the event itself is
/// `rtpcore.payload.TelephoneEvent`).
#[pyclass(name = "TelephoneEventPacket", module = "rtpcore._core", frozen, get_all)]
pub struct TelephoneEventPacket {
    event: u8,
    end: bool,
    volume: u8,
    duration: u16,
    timestamp: u32,
    arrival: f64,
}

#[pymethods]
impl TelephoneEventPacket {
    fn __repr__(&self) -> String {
        format!(
            "TelephoneEventPacket(event={}, end={}, volume={}, duration={}, timestamp={}, arrival={})",
            self.event,
            if self.end { "True" } else { "False" },
            self.volume,
            self.duration,
            self.timestamp,
            self.arrival
        )
    }
}

/// Counters and delays of a jitter buffer.
#[pyclass(name = "JitterStats", module = "rtpcore._core", frozen, get_all)]
pub struct JitterStats {
    received: u64,
    late: u64,
    duplicate: u64,
    lost: u64,
    malformed: u64,
    overflow: u64,
    events: u64,
    comfort_noise_packets: u64,
    frames: u64,
    concealed_ms: f64,
    comfort_noise_ms: f64,
    accelerated_ms: f64,
    expanded_ms: f64,
    stretched_ms: f64,
    current_delay_ms: f64,
    target_delay_ms: f64,
}

impl From<Stats> for JitterStats {
    fn from(s: Stats) -> Self {
        JitterStats {
            received: s.received,
            late: s.late,
            duplicate: s.duplicate,
            lost: s.lost,
            malformed: s.malformed,
            overflow: s.overflow,
            events: s.events,
            comfort_noise_packets: s.comfort_noise_packets,
            frames: s.frames,
            concealed_ms: s.concealed_ms,
            comfort_noise_ms: s.comfort_noise_ms,
            accelerated_ms: s.accelerated_ms,
            expanded_ms: s.expanded_ms,
            stretched_ms: s.accelerated_ms + s.expanded_ms,
            current_delay_ms: s.current_delay_ms,
            target_delay_ms: s.target_delay_ms,
        }
    }
}

#[pymethods]
impl JitterStats {
    fn __repr__(&self) -> String {
        format!(
            "JitterStats(received={}, late={}, duplicate={}, lost={}, malformed={}, concealed_ms={:.1}, stretched_ms={:.1}, current_delay_ms={:.1}, target_delay_ms={:.1})",
            self.received,
            self.late,
            self.duplicate,
            self.lost,
            self.malformed,
            self.concealed_ms,
            self.stretched_ms,
            self.current_delay_ms,
            self.target_delay_ms
        )
    }
}

/// The adaptive jitter buffer for one incoming RTP audio stream.
#[pyclass(name = "JitterBuffer", module = "rtpcore._core")]
pub struct JitterBuffer {
    core: CoreBuffer,
    events: Vec<TelephoneEventPacket>,
    /// The playout offset of the last frame (seconds), for timelines.
    last_offset: Option<f64>,
}

/// Telephone events kept for `pop_events` at most.
const MAX_PENDING_EVENTS: usize = 256;

/// The interned Python name of a frame kind.
fn kind_name(py: Python<'_>, kind: FrameKind) -> &Bound<'_, PyString> {
    match kind {
        FrameKind::Normal => intern!(py, "normal"),
        FrameKind::Concealed => intern!(py, "concealed"),
        FrameKind::Accelerated => intern!(py, "accelerated"),
        FrameKind::Expanded => intern!(py, "expanded"),
        FrameKind::Merged => intern!(py, "merged"),
        FrameKind::ComfortNoise => intern!(py, "comfort_noise"),
        FrameKind::Silence => intern!(py, "silence"),
    }
}

/// Pushes one datagram; also returns its RTP timestamp (for events).
fn push_datagram(core: &mut CoreBuffer, datagram: &[u8], arrival: f64) -> (PushOutcome, u32) {
    let timestamp = datagram.get(4..8).map_or(0, |t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
    (core.push(datagram, arrival), timestamp)
}

#[pymethods]
impl JitterBuffer {
    #[new]
    #[pyo3(signature = (clock_rate=8000, codec="PCMU", frame_ms=20, *, payload_type=None, event_payload_type=None, cn_payload_type=Some(13),
                        min_delay_ms=0.0, max_delay_ms=1000.0, initial_delay_ms=20.0, quantile=0.99, forget_factor=0.9983,
                        capacity=256))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        clock_rate: u32,
        codec: &str,
        frame_ms: u32,
        payload_type: Option<u8>,
        event_payload_type: Option<u8>,
        cn_payload_type: Option<u8>,
        min_delay_ms: f64,
        max_delay_ms: f64,
        initial_delay_ms: f64,
        quantile: f64,
        forget_factor: f64,
        capacity: usize,
    ) -> PyResult<Self> {
        let codec = Codec::from_name(codec).ok_or_else(|| PyValueError::new_err(format!("codec: unsupported codec {codec:?} (PCMU, PCMA, G722)")))?;
        if [payload_type, event_payload_type, cn_payload_type].iter().flatten().any(|&pt| pt > 127) {
            return Err(PyValueError::new_err("payload_type: must be 0..127"));
        }
        let mut config = Config::new(codec);
        config.clock_rate = clock_rate;
        config.frame_ms = frame_ms;
        config.payload_type = payload_type.unwrap_or(config.payload_type);
        config.event_payload_type = event_payload_type;
        config.cn_payload_type = cn_payload_type;
        config.capacity = capacity;
        config.delay = DelayConfig { min_delay_ms, max_delay_ms, initial_delay_ms, quantile, forget_factor, ..DelayConfig::default() };
        let core = CoreBuffer::new(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(JitterBuffer { core, events: Vec::new(), last_offset: None })
    }

    /// Takes one RTP datagram that arrived at `arrival` seconds. Returns what
    /// happened to it: "buffered", "late", "duplicate", "event",
    /// "comfort_noise" or "malformed" (never raises for bad packets).
    fn push<'py>(&mut self, py: Python<'py>, packet: &Bound<'py, PyAny>, arrival: f64) -> PyResult<Bound<'py, PyString>> {
        let core = &mut self.core;
        let pushed = match with_bytes(packet, "packet", |b| push_datagram(core, b, arrival)) {
            Ok(pushed) => pushed,
            // An RTPPacket object: serialise it once.
            Err(e) if packet.hasattr("__bytes__")? => {
                let _not_a_buffer = e;
                with_bytes(&packet.call_method0("__bytes__")?, "packet", |b| push_datagram(core, b, arrival))?
            }
            Err(e) => return Err(e),
        };
        // Interned: no string is made per packet.
        let outcome = match pushed {
            (PushOutcome::Buffered, _) => intern!(py, "buffered"),
            (PushOutcome::Late, _) => intern!(py, "late"),
            (PushOutcome::Duplicate, _) => intern!(py, "duplicate"),
            (PushOutcome::Malformed, _) => intern!(py, "malformed"),
            (PushOutcome::ComfortNoise, _) => intern!(py, "comfort_noise"),
            (PushOutcome::Event(rtpcore_proto::payload::TelephoneEvent { event, end, volume, duration }), ts) => {
                // Bounded, in case nobody collects them: the oldest go first.
                if self.events.len() >= MAX_PENDING_EVENTS {
                    self.events.remove(0);
                }
                self.events.push(TelephoneEventPacket { event, end, volume, duration, timestamp: ts, arrival });
                intern!(py, "event")
            }
        };
        Ok(outcome.clone())
    }

    /// The next frame of audio for time `now` (seconds).
    fn pop<'py>(&mut self, py: Python<'py>, now: f64) -> AudioFrame {
        let core = &mut self.core;
        let mut info = None;
        let pcm = new_pcm16_array(py, core.frame_len(), |out| info = Some(core.pop(now, out)));
        let info = info.expect("new_pcm16_array calls fill for a non-empty frame");
        self.last_offset = info.playout_offset;
        AudioFrame { pcm: pcm.unbind(), sample_rate: self.core.sample_rate(), timestamp: info.timestamp, kind: info.kind.name() }
    }

    /// Like `pop`, writing the samples into `out` (a writable int16 buffer of
    /// exactly `frame_len` samples) without allocating; returns the kind.
    fn pop_into<'py>(&mut self, now: f64, out: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
        let core = &mut self.core;
        let frame_len = core.frame_len();
        let info = with_pcm16_out(out, "out", |samples| {
            if samples.len() != frame_len {
                return Err(PyValueError::new_err(format!("out: needs exactly {frame_len} samples, got {}", samples.len())));
            }
            Ok(core.pop(now, samples))
        })??;
        self.last_offset = info.playout_offset;
        Ok(kind_name(out.py(), info.kind).clone())
    }

    /// Telephone events received since the last call, oldest first (at
    /// most the last 256).
    fn pop_events(&mut self) -> Vec<TelephoneEventPacket> {
        std::mem::take(&mut self.events)
    }

    /// Counters and delays.
    fn stats(&self) -> JitterStats {
        self.core.stats().into()
    }

    /// Samples per frame.
    #[getter]
    fn frame_len(&self) -> usize {
        self.core.frame_len()
    }

    /// Output sample rate, Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.core.sample_rate()
    }

    /// Packets waiting in the buffer.
    #[getter]
    fn buffered_packets(&self) -> usize {
        self.core.buffered_packets()
    }

    /// The playout offset of the last frame: `now - timestamp/clock` in
    /// seconds (how far playout runs behind the sender's timeline), or None
    /// before playout started.
    #[getter]
    fn playout_offset(&self) -> Option<f64> {
        self.last_offset
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AudioFrame>()?;
    m.add_class::<TelephoneEventPacket>()?;
    m.add_class::<JitterStats>()?;
    m.add_class::<JitterBuffer>()?;
    Ok(())
}
