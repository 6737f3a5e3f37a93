"""The media engine: many full-duplex RTP calls driven off the GIL, one
:class:`MediaStream` per call.

An :class:`Engine` owns worker threads (one per core by default) that run
every call's pipeline in Rust: UDP sockets read and written in batches
(``recvmmsg``/``sendmmsg``), SRTP, the adaptive jitter buffer, decoding,
concealment, resampling, encoding and packetization on a drift-free ptime
clock, RTCP and DTMF. Python is never woken per packet: it gets one frame
per call per ptime, through one file descriptor per engine that the asyncio
loop watches (woken at most once per engine tick, however many calls have
frames).

>>> import asyncio
>>> from rtpcore.media import Engine, MediaConfig
>>> async def loopback():
...     with Engine(port_range=(30000, 30099)) as engine:
...         a, b = engine.allocate(), engine.allocate()
...         a.start(MediaConfig(codec="PCMU", remote=b.local_address))
...         b.start(MediaConfig(codec="PCMU", remote=a.local_address))
...         frame = await anext(aiter(b))
...         return frame.sample_rate, len(frame.pcm)
>>> asyncio.run(loopback())
(8000, 160)

Closing a stream, leaving its ``with``/``async with`` block, an exception
in the task that holds it or cancelling its ``async for`` all release its
ports and sockets (RTCP BYE sent first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Union

from rtpcore import _core
from rtpcore._core import AudioFrame, PayloadFrame
from rtpcore.errors import MediaError, QueueFullError, StreamClosedError
from rtpcore.srtp import CryptoAttribute

if TYPE_CHECKING:
    import numpy.typing as npt
    from typing_extensions import Buffer, TypeAlias

    from rtpcore.sdp import NegotiatedAudio

    #: What ``write`` takes: int16 PCM as a numpy array or any buffer, or
    #: payload bytes in passthrough.
    AudioInput: TypeAlias = Buffer | npt.NDArray[Any]

__all__ = [
    "Engine",
    "EngineStats",
    "MediaStream",
    "MediaConfig",
    "MediaStats",
    "AudioFrame",
    "PayloadFrame",
    "FrameBlock",
    "MediaEvent",
    "DTMFReceived",
    "SSRCChanged",
    "RemoteLatched",
    "PacketsDropped",
    "RTCPReport",
    "MarkPlayed",
    "RemoteBye",
    "StreamClosed",
    "MediaError",
    "QueueFullError",
    "StreamClosedError",
]

#: Codecs the engine runs, with their static payload type and audio rate.
CODECS: dict[str, tuple[int, int]] = {"PCMU": (0, 8000), "PCMA": (8, 8000), "G722": (9, 16000)}
#: Rates the application may exchange PCM at.
SAMPLE_RATES = (8000, 16000, 24000, 48000)
#: Media directions (RFC 3264), ours as negotiated.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# Ready bits of _core (what a wake-up says became available).
_FRAMES, _EVENTS, _WRITABLE = 1, 2, 4
_ALL = _FRAMES | _EVENTS | _WRITABLE

Address = tuple[str, int]


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: must be {low} to {high}, got {value}")
    return value


def _check_address(name: str, value: Any) -> Address:
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{name}: expected a (host, port) tuple, got {value!r}")
    host, port = value
    if not isinstance(host, str):
        raise TypeError(f"{name}: host must be a str, got {type(host).__name__}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # Media addresses come from SDP as literals; resolving a name here
        # would block the caller and is the signalling layer's job.
        raise ValueError(f"{name}: host must be an IP address literal, got {host!r}") from None
    return (str(ip), _check_int(f"{name}: port", port, 1, 65535))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """What a stream needs to run: the negotiated media plus the
    application's choices. Every field is checked here; a bad value raises
    ``ValueError`` (or ``TypeError``) naming it.

    ``remote`` is where RTP goes; ``remote_rtcp`` where RTCP goes, or
    ``None`` to multiplex it on the RTP port (rtcp-mux, RFC 5761).
    ``payload_type`` defaults to the codec's static one. ``telephone_event``
    and ``comfort_noise`` are the negotiated payload types of RFC 4733 DTMF
    and RFC 3389 CN, or ``None``. ``srtp_send`` keys what we send and
    ``srtp_recv`` what the peer sends (both or neither). ``sample_rate`` is
    the rate of the PCM exchanged with the application; with
    ``passthrough`` (G.711 only) the application reads and writes the codec
    payload bytes instead. ``record_path`` records both directions to a
    stereo WAV (left received, right sent). ``latch`` sends to where the
    peer's media actually comes from (symmetric RTP, for NAT).
    ``direction`` is ours as negotiated: with ``recvonly`` or ``inactive``
    (on hold) no RTP is sent, while time, RTCP and receiving go on.
    """

    codec: str = "PCMU"
    remote: Address
    remote_rtcp: Address | None = None
    payload_type: int | None = None
    ptime: int = 20
    telephone_event: int | None = 101
    comfort_noise: int | None = None
    srtp_send: CryptoAttribute | None = None
    srtp_recv: CryptoAttribute | None = None
    sample_rate: int = 8000
    passthrough: bool = False
    record_path: str | os.PathLike[str] | None = None
    latch: bool = True
    direction: str = "sendrecv"

    def __post_init__(self) -> None:
        if not isinstance(self.codec, str):
            raise TypeError(f"codec: expected a str, got {type(self.codec).__name__}")
        codec = self.codec.upper()
        if codec not in CODECS:
            raise ValueError(f"codec: must be one of {', '.join(CODECS)}, got {self.codec!r}")
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "remote", _check_address("remote", self.remote))
        if self.remote_rtcp is not None:
            object.__setattr__(self, "remote_rtcp", _check_address("remote_rtcp", self.remote_rtcp))
        if self.payload_type is None:
            object.__setattr__(self, "payload_type", CODECS[codec][0])
        else:
            _check_int("payload_type", self.payload_type, 0, 127)
        _check_int("ptime", self.ptime, 10, 60)
        for name in ("telephone_event", "comfort_noise"):
            value = getattr(self, name)
            if value is not None and _check_int(name, value, 0, 127) == self.payload_type:
                raise ValueError(f"{name}: payload type {value} is already the audio codec's")
        if (self.telephone_event is not None and self.telephone_event == self.comfort_noise):
            raise ValueError(f"comfort_noise: payload type {self.comfort_noise} is already telephone_event's")
        for name in ("srtp_send", "srtp_recv"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, CryptoAttribute):
                raise TypeError(f"{name}: expected a rtpcore.srtp.CryptoAttribute, got {type(value).__name__}")
        if (self.srtp_send is None) != (self.srtp_recv is None):
            raise ValueError("srtp_send/srtp_recv: SRTP needs keys for both directions, or neither")
        if _check_int("sample_rate", self.sample_rate, 0, 2**31) not in SAMPLE_RATES:
            raise ValueError(f"sample_rate: must be one of {SAMPLE_RATES}, got {self.sample_rate}")
        for name in ("passthrough", "latch"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {type(getattr(self, name)).__name__}")
        for crypto in (self.srtp_send, self.srtp_recv):
            if crypto is not None and (crypto.mki is not None or crypto.session_params):
                # The engine's SRTP contexts take the plain suite, key and salt.
                raise ValueError("srtp_send/srtp_recv: MKI and session parameters (KDR, WSH ...) are not supported")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.passthrough and codec == "G722":
            raise ValueError("passthrough: only G.711 (PCMU, PCMA) payloads can be passed through")
        if self.record_path is not None:
            object.__setattr__(self, "record_path", os.fspath(self.record_path))

    @classmethod
    def from_negotiated(
        cls,
        media: NegotiatedAudio,
        *,
        sample_rate: int | None = None,
        passthrough: bool = False,
        record_path: str | os.PathLike[str] | None = None,
        latch: bool = True,
    ) -> MediaConfig:
        """The configuration for what offer/answer settled
        (:class:`rtpcore.sdp.NegotiatedAudio`): codec, payload types, ptime,
        remote addresses (rtcp-mux or not), direction and SDES keys. ``sample_rate``
        defaults to the codec's own rate (8000 for G.711, 16000 for G.722).
        """
        codec = media.codec.encoding.upper()
        if codec not in CODECS:
            raise ValueError(f"media.codec: the engine does not run {media.codec.encoding!r}")
        remote = (media.remote_address, media.remote_port)
        return cls(
            codec=codec,
            payload_type=media.codec.payload_type,
            remote=remote,
            remote_rtcp=None if media.rtcp_mux else (media.remote_address, media.remote_rtcp_port),
            ptime=media.ptime,
            telephone_event=media.telephone_event.payload_type if media.telephone_event else None,
            comfort_noise=media.comfort_noise.payload_type if media.comfort_noise else None,
            srtp_send=media.local_crypto,
            srtp_recv=media.remote_crypto,
            sample_rate=CODECS[codec][1] if sample_rate is None else sample_rate,
            passthrough=passthrough,
            record_path=record_path,
            latch=latch,
            direction=media.direction,
        )


# --- events ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DTMFReceived:
    """The peer pressed ``digit`` (``0-9 * # A-D``) for ``duration_ms``
    (RFC 4733, reported when the digit ended)."""

    digit: str
    duration_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class SSRCChanged:
    """The peer's SSRC changed (a restart or transfer); receive statistics
    start over."""

    old: int
    new: int


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteLatched:
    """Media is now accepted from, and (with latching) sent to, ``address``."""

    address: Address
    ssrc: int


@dataclasses.dataclass(frozen=True, slots=True)
class PacketsDropped:
    """``count`` datagrams were dropped for ``reason`` (``"malformed"``,
    ``"authentication"``, ``"foreign"``, ``"late"`` ...) since the last such
    event. Reported at most once per tick and reason."""

    reason: str
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class RTCPReport:
    """The peer reported on our stream (RTCP SR/RR report block)."""

    fraction_lost: float
    cumulative_lost: int
    jitter_ms: float
    rtt_ms: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class MarkPlayed:
    """Everything written before :meth:`MediaStream.mark` has gone out on
    the wire (``cleared=False``), or it was dropped by
    :meth:`MediaStream.clear` or close (``cleared=True``)."""

    name: str
    cleared: bool


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteBye:
    """The peer sent an RTCP BYE, with its reason if it gave one."""

    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class StreamClosed:
    """The stream closed: the last event of every stream."""


MediaEvent = Union[
    DTMFReceived, SSRCChanged, RemoteLatched, PacketsDropped, RTCPReport, MarkPlayed, RemoteBye, StreamClosed
]

_EVENT_TYPES: dict[str, Any] = {
    "dtmf": DTMFReceived,
    "ssrc_changed": SSRCChanged,
    "remote_latched": RemoteLatched,
    "packets_dropped": PacketsDropped,
    "rtcp_report": RTCPReport,
    "mark_played": MarkPlayed,
    "bye": RemoteBye,
}


def _event(raw: tuple[Any, ...]) -> MediaEvent:
    event: MediaEvent = _EVENT_TYPES[raw[0]](*raw[1:])
    return event


# --- statistics -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MediaStats:
    """A stream's statistics (a snapshot at most ten ticks old).

    ``packets_sent``/``octets_sent`` (payload octets, as RTCP counts them),
    ``packets_received``/``packets_expected``/``packets_lost`` and
    ``jitter_ms`` (RFC 3550 A.3/A.8) of what we receive, ``rtt_ms`` from
    RTCP, the jitter buffer's ``concealed_ms`` and current delay
    (``jitter_delay_ms``), datagrams ``dropped`` by reason
    (``{"malformed": 3, ...}``), frames handed to the application and
    dropped because it did not read in time (``frames_overrun``), send
    intervals that carried application audio (``frames_sent``) or not
    (``idle_frames``), audio dropped by ``clear`` (``cleared_ms``) and
    still queued (``queued_ms``), and the ITU-T G.107 E-model estimate of
    the receive direction: ``mos`` (conversational) and ``mos_listening``
    (``None`` before media came).
    """

    codec: str | None
    packets_sent: int
    octets_sent: int
    packets_received: int
    packets_expected: int
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None
    concealed_ms: float
    jitter_delay_ms: float
    dropped: dict[str, int]
    frames_to_app: int
    frames_overrun: int
    frames_sent: int
    idle_frames: int
    cleared_ms: int
    queued_ms: int
    send_errors: int
    mos: float | None
    mos_listening: float | None
    events_overrun: int
    writes_rejected: int
    ticks_skipped: int


@dataclasses.dataclass(frozen=True)
class EngineStats:
    """Engine-wide counters: worker threads, running calls, ports in use,
    how often Python was woken (``app_wakeups``), datagrams in and out,
    ptime ticks, ticks more than 2 ms late and the worst lateness, and
    calls ended because their pipeline failed (``calls_failed``: a bug to
    report; the other calls run on)."""

    workers: int
    active_calls: int
    ports_in_use: int
    app_wakeups: int
    rounds: int
    datagrams_received: int
    datagrams_sent: int
    send_failures: int
    datagrams_truncated: int
    ticks: int
    late_ticks: int
    skipped_ticks: int
    max_lateness_ms: float
    calls_failed: int
    datagrams_unmatched: int


# --- engine and streams ---------------------------------------------------


class FrameBlock:
    """Frames of many batch streams as arrays, one row per frame (from
    :meth:`Engine.read_frame_block`); a stream's rows are in order.

    ``streams``: the :class:`MediaStream` of each row; ``ids``: their
    :attr:`MediaStream.id` (uint64), to index per-call arrays without a
    Python loop; ``samples``: a 2-D array, int16 PCM at the streams'
    sample rate (uint8 codec payload for pass-through streams);
    ``timestamps``: int64 RTP timestamps (-1 for wholly synthesized
    frames); ``kinds``: uint8 indices into :attr:`KINDS` (``"normal"``,
    ``"concealed"``...). Every row of a block has the same size and kind of
    data; after a re-INVITE changes a stream's frames, its new ones come in
    a later block.
    """

    __slots__ = ("streams", "ids", "samples", "timestamps", "kinds")

    #: The frame kind of each index in :attr:`kinds`.
    KINDS: tuple[str, ...] = _core.FRAME_KINDS

    def __init__(self, streams: list[MediaStream], ids: npt.NDArray[Any], samples: npt.NDArray[Any],
                 timestamps: npt.NDArray[Any], kinds: npt.NDArray[Any]) -> None:
        self.streams = streams
        self.ids = ids
        self.samples = samples
        self.timestamps = timestamps
        self.kinds = kinds

    def __len__(self) -> int:
        return len(self.streams)

    def __repr__(self) -> str:
        return f"<FrameBlock {len(self)} frames of {self.samples.shape[1]} {self.samples.dtype}>"


_Batch = TypeVar("_Batch")


def _next_tick_due(due: float | None, now: float, tick: float) -> float:
    """When a read paced by ``tick`` that happened at ``now`` lets the next
    one happen: a tick after the last one was due (a fixed grid), or a tick
    after ``now`` if it came more than a tick late or is the first."""
    return now + tick if due is None or now - due > tick else due + tick


class Engine:
    """The media engine: worker threads, the port range and every stream.

    ``bind_host`` is the local address the RTP sockets bind to (the one
    to put in SDP, or ``"0.0.0.0"`` for every interface); ``port_range``
    the inclusive range of RTP/RTCP ports; ``workers`` the number of worker
    threads (``None``: one per core). ``frame_queue`` frames are kept for a
    stream whose application does not read (then the oldest are dropped and
    counted); writes wait once ``max_queued_ms`` of outbound audio is
    queued.

    ``shared_sockets=True`` gives each worker one UDP socket for all of its
    calls instead of a port pair per call: one ``recvmmsg``/``sendmmsg``
    then serves many calls, which matters with thousands of them. Every
    call of a worker has the same ``local_port`` (RTCP multiplexed on it);
    datagrams are told apart by their source, each call's configured
    ``remote`` (and ``remote_rtcp``), which must differ from every other
    call's on that worker (a start that reuses one closes the stream, an
    update that would is refused); there is no latching onto another
    source, and datagrams from no call's remote are dropped and counted
    (``EngineStats.datagrams_unmatched``).
    Meant for load generators and far ends under your control: SDP towards
    real peers, behind NAT, wants the default.

    ``tick_grid_ms`` (1 to 10): calls start their ptime clocks on a grid of
    this many milliseconds, so that one wake-up of a worker serves every
    call of the same phase. A wake-up costs a worker some 25-30 µs of CPU
    (on the virtual machines measured), so with many calls a coarser grid
    saves CPU (2: about 8 % per call at 800 calls; nothing once the workers
    fall behind and their rounds run together anyway), at the price of
    longer rounds: each call keeps its place in its round, so its packets
    stay evenly spaced, but whatever holds a round up delays more calls at
    once.
    """

    def __init__(
        self,
        bind_host: str = "127.0.0.1",
        port_range: tuple[int, int] = (20000, 40000),
        workers: int | None = None,
        *,
        frame_queue: int = 50,
        max_queued_ms: int = 60_000,
        shared_sockets: bool = False,
        tick_grid_ms: int = 1,
    ) -> None:
        if not isinstance(bind_host, str):
            raise TypeError(f"bind_host: expected a str, got {type(bind_host).__name__}")
        try:
            ipaddress.ip_address(bind_host)
        except ValueError:
            raise ValueError(f"bind_host: must be an IP address literal, got {bind_host!r}") from None
        if not isinstance(port_range, tuple) or len(port_range) != 2:
            raise TypeError(f"port_range: expected a (low, high) tuple, got {port_range!r}")
        low = _check_int("port_range: low", port_range[0], 1, 65535)
        high = _check_int("port_range: high", port_range[1], 1, 65535)
        if workers is not None:
            _check_int("workers", workers, 1, 1024)
        _check_int("frame_queue", frame_queue, 1, 100_000)
        _check_int("max_queued_ms", max_queued_ms, 1, 3_600_000)
        _check_int("tick_grid_ms", tick_grid_ms, 1, 10)
        self._core = _core.MediaEngine(bind_host, low, high, workers or 0, frame_queue, max_queued_ms,
                                       bool(shared_sockets), tick_grid_ms)
        self._streams: weakref.WeakValueDictionary[int, MediaStream] = weakref.WeakValueDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch_waiter: asyncio.Future[None] | None = None
        self._tick_due: float | None = None  # read_frames(tick=...): the next read's time

    def allocate(self, *, batch: bool = False) -> MediaStream:
        """Reserves an even RTP port and the next one for RTCP (sockets
        open) and returns the stream, ready for :meth:`MediaStream.start`.

        With ``batch=True`` the stream's frames are read through
        :meth:`read_frames` (one task serving many calls) instead of the
        stream's own iterators. Raises ``MediaError`` when the range is
        exhausted or the engine is closed.
        """
        stream = MediaStream(self, self._core.allocate(batch))
        self._streams[stream.id] = stream
        return stream

    async def read_frames(self, *, gather: float = 0.0,
                          tick: float = 0.0) -> list[tuple[MediaStream, AudioFrame | PayloadFrame]]:
        """Waits for frames of the streams allocated with ``batch=True`` and
        returns every one available, in order per stream, as ``(stream,
        frame)`` pairs: one wake-up and one call for many calls' frames.
        Returns an empty list once the engine is closed.

        Untaken, the engine signals the loop whenever a worker round finds
        the application's list empty: about once per frame with a few calls
        and a thousand times a second with hundreds. Two ways to take more
        per wake-up, each delaying a frame by at most what it waits:

        ``gather`` (seconds) waits that much longer once the first frame is
        there, so that one read collects the frames of many engine ticks.

        ``tick`` (seconds) paces the reads on a fixed grid, at most one a
        tick: a read waits for the tick after the last one's, so each call's
        frames come at the same phase of every tick (a grid that drifted
        against the calls' ptime would now and then hand a call two frames in
        one read and none in the next); a read more than a tick late starts
        the grid again. With a ptime's tick, every call's frame of a tick
        comes in one read.

        While either waits, the engine's descriptor is out of the event loop
        (watching it would cost the wake-ups saved), so every wake-up of this
        engine's other streams waits as long: keep ``gather`` well under a
        ptime and ``tick`` at most one."""
        return await self._take_batch(self._core.take_frames, gather, tick) or []

    async def read_frame_block(self, *, gather: float = 0.0, tick: float = 0.0) -> FrameBlock | None:
        """Like :meth:`read_frames`, but every frame available in one
        :class:`FrameBlock`: one 2-D numpy array with a row per frame, so
        that an application serving thousands of calls handles them with
        array operations instead of an object per frame. Returns ``None``
        once the engine is closed. ``gather`` and ``tick`` as for
        :meth:`read_frames`.

        >>> while block := await engine.read_frame_block(gather=0.005):  # doctest: +SKIP
        ...     loud = np.abs(block.samples).max(axis=1) > 1000
        ...     engine.write_frame_block(block.streams, replies(block.samples))
        """
        block = await self._take_batch(self._core.take_block, gather, tick)
        return None if block is None else FrameBlock(*block)

    def write_frames(self, items: Iterable[tuple[MediaStream, AudioInput]]) -> list[MediaStream]:
        """Queues one chunk of audio on each of many streams without
        waiting; returns the streams that refused theirs because their
        outbound queue is full (try those again later). Streams that have
        closed are skipped: one call hanging up must not cost the others
        their frames (its end comes as :class:`StreamClosed`)."""
        refused = []
        for stream, audio in items:
            try:
                if not stream._core.write(audio, False):
                    refused.append(stream)
            except StreamClosedError:
                continue
        return refused

    def write_frame_block(self, streams: Sequence[MediaStream], samples: npt.NDArray[Any]) -> list[MediaStream]:
        """:meth:`write_frames` for a 2-D array: row ``i`` of ``samples``
        (int16 PCM at the stream's rate, or uint8 payload for pass-through
        streams) is queued on ``streams[i]`` in one call, without an object
        per frame. Returns the streams whose outbound queue was full;
        closed streams are skipped. ``block.streams`` of a
        :class:`FrameBlock` is a valid ``streams``."""
        return self._core.write_block(streams, samples)

    async def _take_batch(self, take: Callable[[], _Batch | None], gather: float,
                          tick: float) -> _Batch | None:
        """What ``take`` returns once it is not empty (``read_frames``'
        ``gather`` and ``tick``); None once the engine is closed."""
        await self._until_tick(tick)
        while not (batch := take()):
            if not await self._wait_batch(gather):
                return None
        self._took(tick)
        return batch

    async def _wait_batch(self, gather: float) -> bool:
        """Waits until batch streams may have frames, then ``gather``
        seconds more; False once closed."""
        if self._core.closed:
            return False
        loop = self._watch()
        self._batch_waiter = loop.create_future()
        try:
            await self._batch_waiter
        finally:
            self._batch_waiter = None
        await self._unwatched(loop, gather)
        return True

    async def _until_tick(self, tick: float) -> None:
        """Until the grid's next read (``read_frames``' ``tick``)."""
        if tick > 0 and self._tick_due is not None and not self._core.closed:
            loop = self._watch()
            await self._unwatched(loop, self._tick_due - loop.time())

    def _took(self, tick: float) -> None:
        self._tick_due = (_next_tick_due(self._tick_due, asyncio.get_running_loop().time(), tick)
                          if tick > 0 else None)

    async def _unwatched(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Sleeps ``seconds`` with the engine's descriptor out of the loop:
        the workers keep adding to the ready list without signalling it (they
        signal only the round that finds it empty), so what became ready
        meanwhile is taken in one go at the end."""
        if seconds <= 0:
            return
        fd = self._core.fileno()
        loop.remove_reader(fd)
        try:
            await asyncio.sleep(seconds)
        finally:
            # Engine.close() removes the descriptor itself (and its fd may
            # be gone): watched again only while the engine runs.
            if self._loop is loop and not self._core.closed:
                loop.add_reader(fd, self._on_ready)
                self._on_ready()  # what became ready meanwhile

    def stats(self) -> EngineStats:
        """Engine-wide counters now."""
        return EngineStats(**self._core.stats())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return bool(self._core.closed)

    def close(self) -> None:
        """Closes every stream (RTCP BYE, ports released) and stops the
        worker threads. Idempotent."""
        # The workers end every running call at once; what is left closes
        # here (streams allocated but never started) and wakes its waiters.
        self._core.close()
        for stream in list(self._streams.values()):
            stream.close()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._core.fileno())
        self._loop = None
        self._wake_batch()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # The engine's fd joins the running loop the first time a coroutine
    # waits; every wait-up after that is one callback for all streams.
    def _watch(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            loop.add_reader(self._core.fileno(), self._on_ready)
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this Engine already serves another event loop")
        return loop

    def _on_ready(self) -> None:
        # _core hands back the MediaStream objects themselves (bound at
        # allocation), so a wake-up costs no lookup per stream. Batch
        # streams' frames stay in their bounded queues until read.
        wakes, batch_ready = self._core.take_ready()
        for stream, bits in wakes:
            stream._wake(bits)
        if batch_ready:
            self._wake_batch()

    def _wake_batch(self) -> None:
        waiter = self._batch_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class MediaStream:
    """One call's media: iterate it for received frames, write audio to
    it, read its events. Made by :meth:`Engine.allocate`."""

    __slots__ = ("_core", "_engine", "_waiters", "_closed_reported", "config", "__weakref__")

    def __init__(self, engine: Engine, core: _core.MediaStreamHandle) -> None:
        self._core = core
        core.bind(self)
        self._engine = engine
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._closed_reported = False
        #: The configuration the stream runs with, once started.
        self.config: MediaConfig | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self.config else "allocated")
        return f"<MediaStream {self.id} {state} local={self.local_address}>"

    @property
    def id(self) -> int:
        """Engine-unique id."""
        return int(self._core.id)

    @property
    def local_address(self) -> Address:
        """``(host, port)`` of the RTP socket: what goes in the SDP (with an
        engine bound to ``0.0.0.0``, put the host's reachable address there
        instead)."""
        return self._core.local_address

    @property
    def local_port(self) -> int:
        """The (even) local RTP port."""
        return int(self._core.local_address[1])

    @property
    def local_rtcp_port(self) -> int:
        """The local RTCP port (RTP + 1; unused with rtcp-mux)."""
        return int(self._core.local_rtcp_port)

    @property
    def closed(self) -> bool:
        """Whether the stream has closed."""
        return bool(self._core.closed)

    @property
    def queued_ms(self) -> int:
        """Milliseconds of outbound audio waiting to be sent."""
        return int(self._core.queued_ms)

    def start(self, config: MediaConfig) -> None:
        """Starts media with ``config``; on a running stream, applies it
        (the re-INVITE case: new remote address, keys or codec). A bad
        configuration raises ``ValueError`` and leaves the stream as it was."""
        if not isinstance(config, MediaConfig):
            raise TypeError(f"config: expected a MediaConfig, got {type(config).__name__}")
        if self.config is not None and self.config.record_path != config.record_path:
            raise ValueError("record_path: a recording is set when the stream first starts and cannot change")
        if self.config is not None and self.config.record_path is not None and (
            (self.config.sample_rate, self.config.passthrough) != (config.sample_rate, config.passthrough)
        ):
            # The WAV's rate was fixed by the first start.
            raise ValueError("sample_rate: cannot change while the stream is recording")
        # __post_init__ filled in the codec's static payload type.
        assert config.payload_type is not None
        self._core.start(
            codec=config.codec,
            payload_type=config.payload_type,
            remote=config.remote,
            remote_rtcp=config.remote_rtcp,
            ptime=config.ptime,
            telephone_event=config.telephone_event,
            comfort_noise=config.comfort_noise,
            srtp_send=_keying(config.srtp_send),
            srtp_recv=_keying(config.srtp_recv),
            sample_rate=config.sample_rate,
            passthrough=config.passthrough,
            latch=config.latch,
            record_path=None if config.record_path is None else os.fspath(config.record_path),
            send=config.direction in ("sendrecv", "sendonly"),
        )
        self.config = config

    update = start

    # --- receiving ---

    def __aiter__(self) -> AsyncIterator[AudioFrame | PayloadFrame]:
        return self

    async def __anext__(self) -> AudioFrame | PayloadFrame:
        """The next frame; ends when the stream closes. Cancelling the
        iteration closes the stream (the reader is gone, so is the call):
        use :meth:`read` to wait with a timeout instead."""
        core = self._core
        frame = core.pop_frame(True)
        if frame is not None:
            return frame
        try:
            frame = await self._next_frame()
        except asyncio.CancelledError:
            self.close()
            raise
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def read(self) -> AudioFrame | PayloadFrame | None:
        """The next frame, or ``None`` once the stream has closed. Unlike
        ``async for``, cancelling it (``asyncio.timeout``) leaves the stream
        open."""
        return await self._next_frame()

    async def _next_frame(self) -> AudioFrame | PayloadFrame | None:
        core = self._core
        while True:
            frame = core.pop_frame(True)
            if frame is not None:
                return frame
            if core.closed:
                return None
            await self._wait(_FRAMES)

    def frames(self, timeout: float | None = None) -> Iterator[AudioFrame | PayloadFrame]:
        """Blocking iterator over received frames, for a thread of its own
        (the GIL is released while waiting). Ends when the stream closes;
        raises ``TimeoutError`` if no frame came within ``timeout`` seconds."""
        core = self._core
        while True:
            frame = core.wait_frame(timeout)
            if frame is not None:
                yield frame
            elif core.closed:
                return
            else:
                raise TimeoutError(f"no frame within {timeout} s")

    def read_nowait(self) -> list[AudioFrame | PayloadFrame]:
        """Every frame queued now, without waiting (possibly none)."""
        frames: list[AudioFrame | PayloadFrame] = self._core.pop_frames()
        return frames

    # --- sending ---

    async def write(self, audio: AudioInput) -> None:
        """Queues ``audio`` (int16 PCM at the configured sample rate as a
        numpy array or any buffer; payload bytes in passthrough) to be paced
        out one ptime per tick. Returns at once unless ``max_queued_ms`` is
        already queued, then waits until there is room (backpressure).
        Raises ``StreamClosedError`` once the stream has closed."""
        core = self._core
        while not core.write(audio, True):
            await self._wait(_WRITABLE)

    def write_nowait(self, audio: AudioInput) -> None:
        """Like :meth:`write`, but raises ``QueueFullError`` instead of
        waiting when the outbound queue is full."""
        if not self._core.write(audio, False):
            raise QueueFullError(f"outbound queue full ({self.queued_ms} ms queued)")

    def mark(self, name: str) -> None:
        """Sets a play-out mark behind the audio written so far:
        :class:`MarkPlayed` ``(name, cleared=False)`` comes once that audio
        has gone out on the wire, or ``cleared=True`` if :meth:`clear` (or
        close) dropped it first."""
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self._core.mark(name)

    def clear(self) -> None:
        """Barge-in: drops the queued outbound audio (within one frame);
        pending marks fire with ``cleared=True``."""
        self._core.clear()

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Sends RFC 4733 DTMF ``digits`` (``0-9 * # A-D``), each lasting
        ``duration_ms``, interrupting queued audio for their duration."""
        if not isinstance(digits, str):
            raise TypeError(f"digits: expected a str, got {type(digits).__name__}")
        bad = [d for d in digits if d.upper() not in "0123456789*#ABCD"]
        if bad or not digits:
            raise ValueError(f"digits: must be 1 or more of 0-9 * # A-D, got {digits!r}")
        _check_int("duration_ms", duration_ms, 40, 8000)
        self._core.send_dtmf(digits.upper(), duration_ms)

    # --- events and statistics ---

    def poll_events(self) -> list[MediaEvent]:
        """Every event queued now; the last one of a closed stream is
        :class:`StreamClosed`."""
        events = [_event(raw) for raw in self._core.pop_events()]
        if self._core.closed and not self._closed_reported:
            self._closed_reported = True
            events.append(StreamClosed())
        return events

    async def next_event(self) -> MediaEvent:
        """Waits for the next event. After :class:`StreamClosed` has been
        returned, raises ``StreamClosedError``."""
        core = self._core
        while True:
            raw = core.pop_event(True)
            if raw is not None:
                return _event(raw)
            if core.closed:
                if self._closed_reported:
                    raise StreamClosedError("the stream is closed")
                self._closed_reported = True
                return StreamClosed()
            await self._wait(_EVENTS)

    def stats(self) -> MediaStats:
        """The stream's statistics (see :class:`MediaStats`)."""
        return MediaStats(**self._core.stats())

    # --- closing ---

    def close(self) -> None:
        """Ends the call: RTCP BYE, sockets closed, ports released, readers
        woken (their iteration ends). Idempotent."""
        self._core.close()
        self._wake(_ALL)

    async def aclose(self) -> None:
        """:meth:`close`, for ``async with`` and symmetry with async APIs."""
        self.close()

    def __enter__(self) -> MediaStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> MediaStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- waiting ---

    async def _wait(self, bit: int) -> None:
        # _core armed the notification in the call that found nothing; the
        # wake-up is delivered by Engine._on_ready on this same loop, so it
        # cannot slip in before the future is registered.
        loop = self._engine._watch()
        future = loop.create_future()
        self._waiters.setdefault(bit, []).append(future)
        try:
            await future
        finally:
            waiters = self._waiters.get(bit)
            if waiters and future in waiters:
                waiters.remove(future)

    def _wake(self, bits: int) -> None:
        for bit in (_FRAMES, _EVENTS, _WRITABLE):
            if bits & bit:
                for future in self._waiters.pop(bit, ()):
                    if not future.done():
                        future.set_result(None)


def _keying(crypto: CryptoAttribute | None) -> tuple[str, bytes, bytes] | None:
    if crypto is None:
        return None
    return (crypto.suite, crypto.key, crypto.salt)
