"""The media engine end to end: streams of one engine calling each other over
loopback, through real sockets, real SDP offer/answer and real SRTP keys.

Audio written on one side must come out on the other (checked by
normalized cross-correlation, so a delay is fine but distortion is not),
and everything the engine promises around it — DTMF, marks and barge-in,
pass-through, events, statistics, recording, backpressure, cancellation,
resource release, hostile input and bad configurations — is exercised the
way an application would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore import _core
from rtpcore.errors import MediaError, QueueFullError, StreamClosedError
from rtpcore.g711 import ulaw_decode, ulaw_encode
from rtpcore.media import (
    AudioFrame,
    DTMFReceived,
    Engine,
    FrameBlock,
    MarkPlayed,
    MediaConfig,
    MediaStream,
    PacketsDropped,
    PayloadFrame,
    RemoteBye,
    RemoteLatched,
    RTCPReport,
    SAMPLE_RATES,
    StreamClosed,
    _next_tick_due,
)
from rtpcore.sdp import AudioPolicy, create_answer, create_offer, negotiate
from rtpcore.srtp import CryptoAttribute
from sip_peers import port_block

# A range from a port the system just handed out, not a fixed one that
# another test run on this machine may be using at the same moment.
PORTS = port_block(2000)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(port_range=PORTS, workers=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def shared_engine() -> Iterator[Engine]:
    # Hypothesis runs many examples per test: one engine for all of them.
    with Engine(port_range=PORTS, workers=1) as engine:
        yield engine


def speechlike(rate: int, seconds: float, seed: int, high: float = 3400.0) -> np.ndarray:
    """Forty tones at random frequencies and phases under a syllable-rate
    envelope: noise-like, so two different seeds never correlate, and
    inside the band every codec and resampler passes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(200, high, 40), rng.uniform(0, 2 * np.pi, 40)))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal = envelope * tones
    scaled: np.ndarray = (9000 * signal / np.max(np.abs(signal))).astype(np.int16)
    return scaled


def _best_match(piece: np.ndarray, received: np.ndarray) -> float:
    n = len(piece)
    if len(received) < n:
        return 0.0
    size = 1 << int(np.ceil(np.log2(len(received) + n)))
    xcorr = np.fft.irfft(np.fft.rfft(received, size) * np.conj(np.fft.rfft(piece, size)), size)[: len(received) - n + 1]
    energy = np.concatenate(([0.0], np.cumsum(received**2)))
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9))
    return float(np.max(xcorr / (window * np.linalg.norm(piece))))


def correlation(sent: np.ndarray, received: np.ndarray, rate: int = 8000) -> float:
    """Median over 100 ms pieces of `sent` of each piece's best normalized
    cross-correlation anywhere in `received`: a delay, a jitter buffer
    stretching the audio or a concealed packet on a loaded machine cost
    little, but distortion or the wrong audio do."""
    sent = sent.astype(np.float64)
    received = received.astype(np.float64)
    piece = rate // 10
    scores = [_best_match(sent[i : i + piece], received) for i in range(0, len(sent) - piece + 1, piece)]
    return float(np.median(scores))


def pcm_of(frames: list[Any]) -> np.ndarray:
    return np.concatenate([f.pcm for f in frames]) if frames else np.zeros(0, np.int16)


async def collect(stream: MediaStream, seconds: float) -> list[Any]:
    """Frames of `seconds` of playout (ptime 20 ms)."""
    frames = []
    async for frame in stream:
        frames.append(frame)
        if len(frames) >= int(seconds * 50):
            break
    return frames


async def hear(stream: MediaStream, seconds: float, timeout: float = 8.0) -> list[Any]:
    """The frames from the first one with sound on, `seconds` of them and a
    little more: on a machine shared with other work a thread may stall for
    a second, which delays the audio but must not fail the test."""

    def sound(frame: Any) -> bool:
        pcm = frame.pcm if isinstance(frame, AudioFrame) else np.frombuffer(ulaw_decode(frame.payload), np.int16)
        return bool(np.any(pcm))

    frames: list[Any] = []
    async with asyncio.timeout(timeout):
        async for frame in stream:
            if frames or sound(frame):
                frames.append(frame)
            if len(frames) >= int(seconds * 50) + 15:
                break
    return frames


def pair(engine: Engine, **config: Any) -> tuple[MediaStream, MediaStream]:
    a, b = engine.allocate(), engine.allocate()
    a.start(MediaConfig(remote=b.local_address, **config))
    b.start(MediaConfig(remote=a.local_address, **config))
    return a, b


async def wait_event(stream: MediaStream, kind: type, timeout: float = 3.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            event = await stream.next_event()
            if isinstance(event, kind):
                return event


def negotiated_pair(engine: Engine, codec: str, srtp: bool, **options: Any) -> tuple[MediaStream, MediaStream]:
    """A calls B through a real SDP offer/answer (SDES keys when `srtp`)."""
    a, b = engine.allocate(), engine.allocate()
    policy = AudioPolicy(codecs=(codec,), srtp="required" if srtp else "off")
    offer = create_offer("127.0.0.1", a.local_port, policy)
    answer, media_b = create_answer(offer, "127.0.0.1", b.local_port, policy)
    media_a = negotiate(offer, answer)
    assert (media_a.local_crypto is not None) == srtp
    a.start(MediaConfig.from_negotiated(media_a, **options))
    b.start(MediaConfig.from_negotiated(media_b, **options))
    return a, b


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
@pytest.mark.parametrize(
    ("codec", "rate", "floor"),
    [("PCMU", 8000, 0.98), ("PCMA", 8000, 0.98), ("G722", 16000, 0.9), ("PCMU", 48000, 0.95)],
)
async def test_audio_written_on_one_side_comes_out_on_the_other(
    engine: Engine, codec: str, rate: int, floor: float, srtp: bool
) -> None:
    a, b = negotiated_pair(engine, codec, srtp, sample_rate=rate)
    high = 3400.0 if codec != "G722" else 6800.0
    sent = speechlike(rate, 1.0, seed=1, high=high)
    reply = speechlike(rate, 1.0, seed=2, high=high)
    await a.write(sent)
    await b.write(reply)
    heard_by_b, heard_by_a = await asyncio.gather(hear(b, 1.0), hear(a, 1.0))
    assert all(isinstance(f, AudioFrame) and f.sample_rate == rate for f in heard_by_b)
    assert {len(f.pcm) for f in heard_by_b} == {rate // 50}
    assert correlation(sent, pcm_of(heard_by_b), rate) > floor
    assert correlation(reply, pcm_of(heard_by_a), rate) > floor
    # Not just any audio: B did not hear its own reply.
    assert correlation(reply, pcm_of(heard_by_b), rate) < 0.3
    stats = b.stats()
    assert stats.codec == codec
    assert stats.packets_received >= 50 and stats.packets_lost == 0
    assert stats.dropped.get("authentication", 0) == 0


async def test_srtp_with_mismatched_keys_is_dropped_and_counted(engine: Engine) -> None:
    keys = {side: CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80") for side in "ab"}
    wrong = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80")
    a, b = engine.allocate(), engine.allocate()
    a.start(MediaConfig(remote=b.local_address, srtp_send=keys["a"], srtp_recv=keys["b"]))
    b.start(MediaConfig(remote=a.local_address, srtp_send=keys["b"], srtp_recv=wrong))
    await a.write(speechlike(8000, 0.5, seed=3))
    frames = await collect(b, 0.6)
    assert all(f.kind == "silence" for f in frames)
    assert b.stats().dropped.get("authentication", 0) > 10
    dropped = await wait_event(b, PacketsDropped)
    assert dropped.reason in ("authentication", "latching")


async def test_dtmf_both_ways(engine: Engine) -> None:
    a, b = pair(engine)
    a.send_dtmf("12#", duration_ms=80)
    b.send_dtmf("9")
    digits_at_b = [(await wait_event(b, DTMFReceived)).digit for _ in range(3)]
    at_a = await wait_event(a, DTMFReceived)
    assert digits_at_b == ["1", "2", "#"]
    assert (at_a.digit, at_a.duration_ms) == ("9", 100)


async def test_marks_follow_the_audio_and_clear_drops_it(engine: Engine) -> None:
    a, _b = pair(engine)
    await a.write(np.zeros(800, np.int16))  # 100 ms
    started = time.monotonic()
    a.mark("short")
    played = await wait_event(a, MarkPlayed)
    assert played == MarkPlayed("short", cleared=False)
    assert time.monotonic() - started > 0.06, "the mark waited for its audio"
    await a.write(np.zeros(8000 * 5, np.int16))  # 5 s
    a.mark("long")
    assert a.queued_ms > 4000
    await asyncio.sleep(0.1)
    a.clear()
    assert await wait_event(a, MarkPlayed) == MarkPlayed("long", cleared=True)
    assert a.queued_ms == 0
    async with asyncio.timeout(3):
        while a.stats().cleared_ms == 0:  # the snapshot is up to ten ticks old
            await asyncio.sleep(0.05)


async def test_passthrough_carries_ulaw_payload_untouched(engine: Engine, tmp_path: Path) -> None:
    a, b = engine.allocate(), engine.allocate()
    a.start(MediaConfig(remote=b.local_address, passthrough=True, record_path=tmp_path / "a.wav"))
    b.start(MediaConfig(remote=a.local_address, passthrough=True))
    sent = speechlike(8000, 1.0, seed=4)
    await a.write(ulaw_encode(sent.tobytes()))
    frames = await hear(b, 1.0)
    assert all(isinstance(f, PayloadFrame) and len(f.payload) == 160 for f in frames)
    heard = np.frombuffer(ulaw_decode(b"".join(f.payload for f in frames)), np.int16)
    # The receive side re-encodes the jitter buffer's output: a second
    # quantization, nothing more.
    assert correlation(sent, heard) > 0.98
    with pytest.raises(TypeError):
        await a.write(3.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^audio: a pass-through stream takes codec payload bytes"):
        a.write_nowait(sent)
    a.write_nowait(np.frombuffer(ulaw_encode(sent.tobytes()), np.uint8))
    a.close()
    # The recording of a pass-through call holds the decoded audio.
    with wave.open(str(tmp_path / "a.wav"), "rb") as wav:
        assert wav.getframerate() == 8000
        right = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)[1::2]
    assert correlation(sent, right) > 0.99


async def test_a_coarser_tick_grid_still_carries_every_frame() -> None:
    # Calls on a 10 ms grid (the coarsest) share wake-ups; the audio is the
    # same. The Rust driver tests check the phases themselves.
    low, high = port_block(6)
    with Engine(port_range=(low, high), tick_grid_ms=10) as engine:
        a, b = pair(engine)
        sent = speechlike(8000, 1.0, seed=6)
        await a.write(sent)
        assert correlation(sent, pcm_of(await hear(b, 1.0))) > 0.98
    with pytest.raises(ValueError, match="^tick_grid_ms"):
        Engine(tick_grid_ms=0)
    with pytest.raises(TypeError, match="^tick_grid_ms"):
        Engine(tick_grid_ms=2.0)  # type: ignore[arg-type]
    # The core checks it too, for callers of the binding itself.
    with pytest.raises(ValueError, match="^tick_grid_ms"):
        _core.MediaEngine("127.0.0.1", low, high, 1, 50, 60_000, False, 11)


async def test_events_tell_latching_drops_and_close(engine: Engine) -> None:
    a, b = pair(engine)
    latched = await wait_event(b, RemoteLatched)
    assert latched.address == a.local_address
    a.close()
    events = []
    async with asyncio.timeout(3):
        while not isinstance(event := await a.next_event(), StreamClosed):
            events.append(event)
    with pytest.raises(StreamClosedError):
        await a.next_event()
    assert a.poll_events() == []


async def test_rtcp_on_its_own_port_reports_and_says_bye(engine: Engine) -> None:
    a, b = engine.allocate(), engine.allocate()
    # No rtcp-mux: RTCP goes between the RTCP sockets (RTP port + 1).
    for me, peer in ((a, b), (b, a)):
        host = peer.local_address[0]
        me.start(MediaConfig(remote=peer.local_address, remote_rtcp=(host, peer.local_rtcp_port)))
    # The first report is due after 2.5 s at most (RFC 3550 A.7, halved).
    report = await wait_event(b, RTCPReport, timeout=8)
    assert report.fraction_lost == 0.0 and report.cumulative_lost == 0
    a.close()
    bye = await wait_event(b, RemoteBye)
    assert bye.reason is not None


async def test_garbage_at_the_port_is_counted_and_the_stream_keeps_playing(engine: Engine) -> None:
    a, b = pair(engine)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        junk = [os.urandom(n) for n in (1, 11, 12, 60, 172, 1400)] + [b"\x80" * 40, b"\x00" * 5000]
        for datagram in junk * 10:
            attacker.sendto(datagram, b.local_address)
        sent = speechlike(8000, 1.0, seed=5)
        await a.write(sent)
        frames = await hear(b, 1.0)
    finally:
        attacker.close()
    assert correlation(sent, pcm_of(frames)) > 0.98
    dropped = b.stats().dropped
    assert sum(dropped.values()) >= 60, dropped
    assert engine.stats().datagrams_truncated >= 10


async def test_recording_holds_received_left_and_sent_right(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    a, b = engine.allocate(), engine.allocate()
    a.start(MediaConfig(remote=b.local_address, sample_rate=16000, record_path=path))
    b.start(MediaConfig(remote=a.local_address, sample_rate=16000))
    mine, theirs = speechlike(16000, 1.0, seed=6), speechlike(16000, 1.0, seed=7)
    await a.write(mine)
    await b.write(theirs)
    await hear(a, 1.0)
    with pytest.raises(ValueError, match="^sample_rate"):
        a.update(MediaConfig(remote=b.local_address, sample_rate=8000, record_path=path))
    with pytest.raises(ValueError, match="^record_path"):
        a.update(MediaConfig(remote=b.local_address, sample_rate=16000))
    a.close()
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 16000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).reshape(-1, 2)
    assert len(samples) >= 16000 * 1.0
    left, right = samples[:, 0], samples[:, 1]
    assert correlation(theirs, left, 16000) > 0.95
    # What was sent is recorded before encoding: exact.
    assert correlation(mine, right, 16000) > 0.999
    assert correlation(mine, left, 16000) < 0.3


async def test_backpressure_waits_instead_of_growing() -> None:
    with Engine(port_range=PORTS, max_queued_ms=300) as engine:
        a, _b = pair(engine)
        chunk = np.zeros(800, np.int16)  # 100 ms
        # Accepted whole while under the limit; then the queue is full for
        # the 700 ms it takes to drain below 300 ms again.
        a.write_nowait(np.zeros(8000, np.int16))
        with pytest.raises(QueueFullError):
            a.write_nowait(chunk)
        started = time.monotonic()
        for _ in range(5):
            await a.write(chunk)
        assert time.monotonic() - started > 0.5
        assert a.queued_ms <= 400


def test_thousand_streams_open_and_close_back_to_baseline() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with Engine(port_range=PORTS, workers=2) as engine:
        baseline = fds()
        sink = ("127.0.0.1", 9)  # discard: nothing listens
        for _ in range(10):
            streams = [engine.allocate() for _ in range(100)]
            for i, stream in enumerate(streams):
                if i % 4:
                    stream.start(MediaConfig(remote=sink))
            assert fds() >= baseline + 200
            assert engine.stats().ports_in_use == 100
            for stream in streams:
                stream.close()
            assert engine.stats().ports_in_use == 0
        assert fds() == baseline
        assert engine.stats().active_calls == 0


async def test_cancelling_an_iteration_releases_the_stream(engine: Engine) -> None:
    a, b = pair(engine)

    async def reader() -> None:
        async for _ in b:
            pass

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.closed
    assert engine.stats().ports_in_use == 1 and engine.stats().active_calls == 1
    a.close()
    assert engine.stats().ports_in_use == 0


async def test_an_exception_in_the_app_task_releases_the_stream(engine: Engine) -> None:
    class AgentCrashed(Exception):
        pass

    stream = engine.allocate()
    with pytest.raises(AgentCrashed):
        async with stream:
            stream.start(MediaConfig(remote=("127.0.0.1", 9)))
            raise AgentCrashed
    assert stream.closed and engine.stats().ports_in_use == 0
    # A stream nobody holds any more closes too.
    orphan = engine.allocate()
    orphan.start(MediaConfig(remote=("127.0.0.1", 9)))
    del orphan
    await asyncio.sleep(0.05)
    assert engine.stats().ports_in_use == 0


async def test_read_with_a_timeout_leaves_the_stream_open(engine: Engine) -> None:
    stream = engine.allocate()  # never started: no frames
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await stream.read()
    assert not stream.closed
    stream.close()
    assert await stream.read() is None
    assert [f async for f in stream] == []


def test_blocking_iterator_in_a_thread() -> None:
    with Engine(port_range=PORTS) as engine:
        a, b = pair(engine)
        got: list[Any] = []

        def consume() -> None:
            for frame in b.frames(timeout=2.0):
                got.append(frame)

        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.5)
        b.close()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert len(got) >= 3
        idle = engine.allocate()
        with pytest.raises(TimeoutError):
            next(idle.frames(timeout=0.05))


async def test_batch_reads_serve_many_calls_in_one_task() -> None:
    # One worker: calls started together tick in the same millisecond and
    # wake the application once for all of them.
    with Engine(port_range=PORTS, workers=1) as engine:
        streams = [engine.allocate(batch=True) for _ in range(8)]
        for i, stream in enumerate(streams):
            stream.start(MediaConfig(remote=streams[i ^ 1].local_address))
        counts = {s.id: 0 for s in streams}
        most_calls_in_one_read = 0
        async with asyncio.timeout(5):
            while min(counts.values()) < 25:
                batch = await engine.read_frames()
                for stream, frame in batch:
                    assert isinstance(frame, AudioFrame)
                    counts[stream.id] += 1
                most_calls_in_one_read = max(most_calls_in_one_read, len({s.id for s, _ in batch}))
                assert engine.write_frames((s, np.zeros(160, np.int16)) for s in streams) == []
        assert most_calls_in_one_read >= 4, "one wake-up served several calls"
        # A call that hung up does not cost the others their frames.
        streams[0].close()
        assert engine.write_frames((s, np.zeros(160, np.int16)) for s in streams) == []
        assert streams[0].closed and not streams[1].closed


def _tone_frame(amplitude: int, codec_bytes: bool = False) -> np.ndarray:
    """20 ms of a tone as μ-law codes, or as the PCM those codes decode to
    (which survives PCMU both ways bit for bit)."""
    t = np.arange(160) / 8000
    codes = ulaw_encode((amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.int16))
    return np.frombuffer(codes, np.uint8) if codec_bytes else ulaw_decode(codes)


async def test_frame_blocks_carry_every_calls_frames_and_write_row_by_row() -> None:
    # Each call writes its own tone through one write_frame_block per read;
    # its partner must get exactly that tone, so a row never goes to the
    # wrong stream either way.
    with Engine(port_range=PORTS, workers=1) as engine:
        streams = [engine.allocate(batch=True) for _ in range(8)]
        for i, stream in enumerate(streams):
            stream.start(MediaConfig(remote=streams[i ^ 1].local_address))
        tones = np.stack([_tone_frame(1000 * (i + 1)) for i in range(8)])
        index = {s.id: i for i, s in enumerate(streams)}
        heard = {s.id: 0 for s in streams}
        most_rows = 0
        async with asyncio.timeout(5):
            while min(heard.values()) < 10:
                block = await engine.read_frame_block()
                assert isinstance(block, FrameBlock) and len(block) == len(block.ids) > 0
                assert block.samples.dtype == np.int16 and block.samples.shape == (len(block), 160)
                assert [s.id for s in block.streams] == block.ids.tolist()
                assert {FrameBlock.KINDS[k] for k in block.kinds} <= set(FrameBlock.KINDS)
                most_rows = max(most_rows, len(block))
                for row, stream_id in zip(block.samples, block.ids.tolist(), strict=True):
                    partner = index[stream_id] ^ 1
                    heard[stream_id] += bool(np.array_equal(row, tones[partner]))
                rows = np.stack([tones[index[s.id]] for s in block.streams])
                assert engine.write_frame_block(block.streams, rows) == []
        assert most_rows >= 4, "one block served several calls"
        # Gathering: one read collects several ticks, a stream's rows in order.
        block = await engine.read_frame_block(gather=0.06)
        assert block is not None
        rows_of_one = block.timestamps[block.ids == streams[1].id]
        assert len(rows_of_one) >= 3
        assert (np.diff(rows_of_one.astype(np.int64)) == 160).all()
        frames = await engine.read_frames(gather=0.06)
        assert len([f for s, f in frames if s is streams[1]]) >= 3
        # Silence before the first packet comes as the "silence" kind, with no timestamp.
        late = engine.allocate(batch=True)
        late.start(MediaConfig(remote=("127.0.0.1", 9)))
        async with asyncio.timeout(5):
            while True:
                block = await engine.read_frame_block()
                assert block is not None
                rows = block.ids == late.id
                if rows.any():
                    break
        assert {FrameBlock.KINDS[k] for k in block.kinds[rows]} == {"silence"}
        assert (block.timestamps[rows] == -1).all()
        # A closed stream is skipped; the others still get their rows.
        streams[0].close()
        assert engine.write_frame_block(streams[:2], tones[:2]) == []
        assert streams[1].queued_ms > 0
    assert await engine.read_frame_block() is None


def test_paced_reads_keep_a_fixed_grid() -> None:
    """The next read is due a tick after the last one was due, not after it
    ran (a grid that drifted would now and then give a call two frames in
    one read); a read later than a tick past its due time, or the first,
    starts the grid again from then."""
    due = None
    dues = []
    for now in (10.0, 10.023, 10.041, 10.0605, 10.09, 10.2, 10.221):
        due = _next_tick_due(due, now, 0.02)
        dues.append(round(due, 4))
    assert dues == [10.02, 10.04, 10.06, 10.08, 10.1, 10.22, 10.24]


async def test_paced_reads_come_once_a_tick_with_every_calls_frame() -> None:
    with Engine(port_range=PORTS, workers=1) as engine:
        streams = [engine.allocate(batch=True) for _ in range(4)]
        for i, stream in enumerate(streams):
            stream.start(MediaConfig(remote=streams[i ^ 1].local_address))
        loop = asyncio.get_running_loop()
        read_at, frames = [], 0
        async with asyncio.timeout(5):
            for _ in range(26):
                batch = await engine.read_frames(tick=0.02)
                read_at.append(loop.time())
                frames += len(batch)
                engine.write_frames((s, _tone_frame(1000)) for s, _ in batch)
    # Read k comes no earlier than k ticks after the first (1 ms for the
    # loop's clock resolution) ...
    assert all(t - read_at[0] >= k * 0.02 - 0.001 for k, t in enumerate(read_at)), read_at
    # ... and carries the frames of the tick: four calls, about four frames.
    assert frames / len(read_at) >= 3, frames


async def test_frame_blocks_in_passthrough_and_write_block_errors() -> None:
    with Engine(port_range=PORTS, workers=1, max_queued_ms=100) as engine:
        a, b = engine.allocate(batch=True), engine.allocate(batch=True)
        a.start(MediaConfig(remote=b.local_address, passthrough=True))
        b.start(MediaConfig(remote=a.local_address, passthrough=True))
        codes = _tone_frame(3000, codec_bytes=True)
        async with asyncio.timeout(5):
            while True:
                block = await engine.read_frame_block()
                assert block is not None and block.samples.dtype == np.uint8
                assert block.samples.shape[1] == 160
                engine.write_frame_block(block.streams, np.tile(codes, (len(block), 1)))
                if any(np.array_equal(row, codes) for row in block.samples):
                    break
        pcm_rows = np.zeros((2, 160), np.int16)
        with pytest.raises(TypeError, match="pass-through"):
            engine.write_frame_block([a, b], pcm_rows)
        with pytest.raises(ValueError, match="2 rows for 1 streams"):
            engine.write_frame_block([a], np.tile(codes, (2, 1)))
        with pytest.raises(TypeError, match="2-D"):
            engine.write_frame_block([a], codes)
        with pytest.raises(TypeError, match="MediaStream"):
            engine.write_frame_block(["a"], np.tile(codes, (1, 1)))
        # Backpressure: past max_queued_ms the stream comes back refused.
        refused: list[MediaStream] = []
        for _ in range(20):
            refused += engine.write_frame_block([a], np.tile(codes, (1, 1)))
        assert refused and all(stream is a for stream in refused)
        pcm = engine.allocate(batch=True)
        pcm.start(MediaConfig(remote=("127.0.0.1", 9)))
        with pytest.raises(TypeError, match="int16"):
            engine.write_frame_block([pcm], np.tile(codes, (1, 1)))


async def test_shared_sockets_serve_many_calls_from_one_port_per_worker() -> None:
    # A shared-socket engine (a load generator's far end) against one with a
    # port per call, SRTP both ways: every call hears its own peer's audio.
    keys = [CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80") for _ in range(4)]
    with Engine(port_range=PORTS, workers=2, shared_sockets=True) as shared, \
            Engine(port_range=PORTS, workers=1) as own:
        near = [shared.allocate() for _ in range(4)]
        far = [own.allocate() for _ in range(4)]
        assert len({s.local_port for s in near}) == 2, "one port per worker"
        for i, (n, f) in enumerate(zip(near, far, strict=True)):
            n.start(MediaConfig(remote=f.local_address, srtp_send=keys[i], srtp_recv=keys[3 - i]))
            f.start(MediaConfig(remote=n.local_address, srtp_send=keys[3 - i], srtp_recv=keys[i]))
        tones = [_tone_frame(2000 * (i + 1)) for i in range(4)]

        async def hears(stream: MediaStream, tone: np.ndarray) -> None:
            async for frame in stream:
                if np.array_equal(frame.pcm, tone):
                    return

        for i, stream in enumerate(far):
            for _ in range(20):
                await stream.write(tones[i])
        async with asyncio.timeout(5):
            await asyncio.gather(*(hears(n, tone) for n, tone in zip(near, tones, strict=True)))
        before = shared.stats().datagrams_unmatched
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(b"\x80" * 20, near[0].local_address)
        stranger.close()
        async with asyncio.timeout(5):
            while shared.stats().datagrams_unmatched == before:
                await asyncio.sleep(0.01)


async def test_reinvite_moves_the_remote_without_a_new_session(engine: Engine) -> None:
    a, b = engine.allocate(), engine.allocate()
    a.start(MediaConfig(remote=("127.0.0.1", 9)))
    b.start(MediaConfig(remote=a.local_address))
    a.update(MediaConfig(remote=b.local_address))
    sent = speechlike(8000, 0.6, seed=8)
    await a.write(sent)
    latched = await wait_event(b, RemoteLatched)
    assert latched.address == a.local_address
    assert correlation(sent, pcm_of(await hear(b, 0.6))) > 0.98


async def test_hold_stops_rtp_but_not_rtcp_and_resume_brings_it_back(engine: Engine) -> None:
    a, b = pair(engine)
    await collect(b, 0.2)
    received = b.stats().packets_received
    assert received > 0
    a.update(MediaConfig(remote=b.local_address, direction="recvonly"))  # we put the peer on hold
    # B's count stops growing (its snapshot is up to ten ticks old, more on
    # a loaded machine); if RTP kept flowing this times out.
    async with asyncio.timeout(5):
        while True:
            before = b.stats().packets_received
            await asyncio.sleep(0.4)
            if b.stats().packets_received - before <= 2:
                break
    a.update(MediaConfig(remote=b.local_address))
    b.read_nowait()  # what queued up while nobody read
    sent = speechlike(8000, 0.6, seed=10)
    await a.write(sent)
    assert correlation(sent, pcm_of(await hear(b, 0.6))) > 0.98


async def test_engine_close_ends_every_stream(engine: Engine) -> None:
    a, b = pair(engine)
    engine.close()
    assert a.closed and b.closed
    assert [f async for f in b] == [] or b.closed
    with pytest.raises(StreamClosedError):
        await a.write(np.zeros(160, np.int16))
    with pytest.raises(MediaError):
        engine.allocate()


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"codec": "OPUS"}, ValueError, "codec"),
        ({"codec": 0}, TypeError, "codec"),
        ({"remote": ("example.com", 4000)}, ValueError, "remote"),
        ({"remote": ("127.0.0.1", 0)}, ValueError, "remote: port"),
        ({"remote": "127.0.0.1:4000"}, TypeError, "remote"),
        ({"remote_rtcp": ("127.0.0.1", 70000)}, ValueError, "remote_rtcp: port"),
        ({"payload_type": 128}, ValueError, "payload_type"),
        ({"payload_type": "0"}, TypeError, "payload_type"),
        ({"ptime": 5}, ValueError, "ptime"),
        ({"ptime": 20.0}, TypeError, "ptime"),
        ({"telephone_event": 0}, ValueError, "telephone_event"),
        ({"comfort_noise": 101}, ValueError, "comfort_noise"),
        ({"sample_rate": 44100}, ValueError, "sample_rate"),
        ({"direction": "sendreceive"}, ValueError, "direction"),
        ({"passthrough": 1}, TypeError, "passthrough"),
        ({"codec": "G722", "passthrough": True}, ValueError, "passthrough"),
        ({"srtp_send": CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80")}, ValueError, "srtp_send/srtp_recv"),
        ({"srtp_send": "key", "srtp_recv": "key"}, TypeError, "srtp_send"),
    ],
)
def test_bad_configs_raise_precise_errors(kwargs: dict[str, Any], error: type, field: str) -> None:
    kwargs.setdefault("remote", ("127.0.0.1", 4000))
    with pytest.raises(error, match=f"^{field}"):
        MediaConfig(**kwargs)


_maybe_int = st.one_of(st.none(), st.integers(-5, 300), st.booleans(), st.text(max_size=3))
_address = st.one_of(
    st.tuples(st.sampled_from(["127.0.0.1", "::1", "10.0.0.300", "host", ""]), st.integers(-1, 70000)),
    st.text(max_size=5),
    st.none(),
)


@settings(max_examples=100, deadline=None)
@given(
    codec=st.one_of(st.sampled_from(["PCMU", "pcma", "G722", "OPUS", ""]), st.integers(0, 9)),
    remote=_address,
    remote_rtcp=_address,
    payload_type=_maybe_int,
    ptime=st.one_of(st.integers(0, 100), st.floats(0, 100)),
    telephone_event=_maybe_int,
    comfort_noise=_maybe_int,
    sample_rate=st.one_of(st.sampled_from(SAMPLE_RATES), st.integers(0, 100000)),
    passthrough=st.one_of(st.booleans(), st.integers(0, 1)),
    direction=st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive", "send"]),
)
def test_any_config_is_refused_precisely_or_runs(shared_engine: Engine, **fields: Any) -> None:
    """Whatever the fields, MediaConfig raises ValueError/TypeError, or the
    engine accepts and runs it: nothing in between (no other exception, no
    crash)."""
    try:
        config = MediaConfig(**fields)
    except (ValueError, TypeError):
        return
    with shared_engine.allocate() as stream:
        stream.start(config)
        assert not stream.closed


def test_bad_engine_arguments_and_commands() -> None:
    with pytest.raises(ValueError, match="^bind_host"):
        Engine(bind_host="localhost")
    with pytest.raises(ValueError, match="^port_range"):
        Engine(port_range=(40001, 40001))
    with pytest.raises(TypeError, match="^port_range"):
        Engine(port_range=[20000, 30000])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^workers"):
        Engine(workers=0)
    with Engine(port_range=(37990, 37993)) as engine:
        streams = [engine.allocate(), engine.allocate()]
        with pytest.raises(MediaError, match="no free port"):
            engine.allocate()
        stream = streams[0]
        with pytest.raises(ValueError, match="^digits"):
            stream.send_dtmf("12x")
        with pytest.raises(ValueError, match="^duration_ms"):
            stream.send_dtmf("1", duration_ms=5)
        with pytest.raises(TypeError, match="^name"):
            stream.mark(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="^audio"):
            stream.write_nowait(b"\x00\x01\x02")  # odd length: not int16
        with pytest.raises(TypeError, match="^config"):
            stream.start({"codec": "PCMU"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="^record_path"):
            stream.start(MediaConfig(remote=("127.0.0.1", 9), record_path="/nonexistent/dir/x.wav"))
        stream.start(MediaConfig(remote=("127.0.0.1", 9)))


async def test_any_buffer_of_int16_is_accepted_alike(engine: Engine) -> None:
    a, _b = pair(engine)
    samples = speechlike(8000, 0.02, seed=9)
    for audio in (samples, samples.tobytes(), bytearray(samples.tobytes()), memoryview(samples.tobytes())):
        before = a.queued_ms
        a.write_nowait(audio)
        assert a.queued_ms - before in (20, 0)  # 0 if a tick took it meanwhile


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_ipv6_loopback() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with Engine(bind_host="::1", port_range=PORTS) as engine:
        a, b = pair(engine)
        assert a.local_address[0] == "::1"
        sent = speechlike(8000, 0.6, seed=11)
        await a.write(sent)
        assert correlation(sent, pcm_of(await hear(b, 0.6))) > 0.98


def test_stats_of_a_stream_that_never_ran() -> None:
    with Engine(port_range=PORTS) as engine:
        stream = engine.allocate()
        stats = stream.stats()
        assert stats.codec is None and stats.packets_sent == 0 and stats.mos is None
        assert repr(stream).startswith("<MediaStream") and "allocated" in repr(stream)
        engine_stats = engine.stats()
        assert engine_stats.workers >= 1 and engine_stats.ports_in_use == 1

