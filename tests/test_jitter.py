"""rtpcore.jitter: the adaptive jitter buffer, driven by simulated clocks."""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore import g711
from rtpcore.jitter import AudioFrame, JitterBuffer, replay

SSRC = 0x11223344
KINDS = {"normal", "concealed", "accelerated", "expanded", "merged", "comfort_noise", "silence"}
REAL_KINDS = {"normal", "accelerated", "expanded", "merged"}


def voiced(start: int, n: int, f0: float = 140.0) -> np.ndarray:
    """A speech stand-in: harmonics of f0 with a falling spectrum, 300 ms
    on and 100 ms off (words and pauses)."""
    t = (start + np.arange(n)) / 8000.0
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 12))
    return np.where(t % 0.4 < 0.3, 4000 * x, 0).astype(np.int16)


def rtp(
    seq: int, ts: int, payload: bytes, *, ssrc: int = SSRC, marker: bool = False, pt: int = 0
) -> bytes:
    header = struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc
    )
    return header + payload


def packet(k: int, *, seq0: int = 0, ts0: int = 0, **kw: object) -> bytes:
    return rtp(seq0 + k, ts0 + 160 * k, g711.ulaw_encode(voiced(160 * k, 160)), **kw)  # type: ignore[arg-type]


def run(
    arrivals: list[tuple[float, bytes]], **options: object
) -> tuple[JitterBuffer, list[AudioFrame]]:
    """Pops every 20 ms from t=0 until the frame after the last arrival."""
    jb = JitterBuffer(**options)  # type: ignore[arg-type]
    order = sorted(arrivals, key=lambda a: a[0])
    frames = []
    i = 0
    now = 0.0
    while now <= order[-1][0] + 0.02 + 1e-9:
        while i < len(order) and order[i][0] <= now + 1e-9:
            jb.push(order[i][1], order[i][0])
            i += 1
        frames.append(jb.pop(now))
        now = round(now + 0.02, 6)
    return jb, frames


def clean(n: int, delay: float = 0.005) -> list[tuple[float, bytes]]:
    return [(0.02 * k + delay, packet(k)) for k in range(n)]


# --------------------------------------------------------------------------- frames


def test_a_clean_stream_comes_out_bit_exact() -> None:
    jb, frames = run(clean(50))
    real = [f for f in frames if f.timestamp is not None]
    assert len(real) == 50
    decoded = g711.ulaw_decode(g711.ulaw_encode(voiced(0, 50 * 160)))
    assert np.array_equal(np.concatenate([f.pcm for f in real]), decoded)
    assert [f.timestamp for f in real] == [160 * k for k in range(50)]
    assert all(f.kind == "normal" and f.sample_rate == 8000 for f in real)
    assert all(f.pcm.dtype == np.int16 and len(f) == 160 for f in frames)
    s = jb.stats()
    assert (s.received, s.lost, s.late, s.duplicate, s.malformed) == (50, 0, 0, 0, 0)


def test_audio_frame_is_a_general_type() -> None:
    pcm = np.arange(320, dtype=np.int16)
    frame = AudioFrame(pcm, 16000, timestamp=None, kind="comfort_noise")
    assert frame.pcm is pcm and frame.duration == 0.02 and frame.timestamp is None
    assert "comfort_noise" in repr(frame)
    with pytest.raises(ValueError, match="kind"):
        AudioFrame(pcm, 16000, kind="weird")
    with pytest.raises(TypeError, match="pcm"):
        AudioFrame(b"\x00\x00", 8000)  # type: ignore[arg-type]


@pytest.mark.parametrize("frame_ms", [10, 20, 30, 60])
def test_every_frame_period_gives_frames_of_that_length(frame_ms: int) -> None:
    jb = JitterBuffer(frame_ms=frame_ms)
    for k in range(20):
        jb.push(packet(k), 0.02 * k)
    n = 8 * frame_ms
    frames = [jb.pop(i * frame_ms / 1000) for i in range(400 // frame_ms)]
    assert all(len(f.pcm) == n for f in frames)
    assert sum(f.kind == "normal" for f in frames) >= 300 // frame_ms


def test_bad_configuration_names_the_argument() -> None:
    with pytest.raises(ValueError, match="codec"):
        JitterBuffer(codec="OPUS")
    with pytest.raises(ValueError, match="frame_ms"):
        JitterBuffer(frame_ms=5)
    with pytest.raises(ValueError, match="clock_rate"):
        JitterBuffer(clock_rate=16000)
    with pytest.raises(ValueError, match="payload_type"):
        JitterBuffer(payload_type=200)
    with pytest.raises(ValueError, match="delay settings"):
        JitterBuffer(initial_delay_ms=2000.0)
    with pytest.raises(ValueError, match="delay settings"):
        JitterBuffer(quantile=1.5)


def test_pcma_decodes_alaw() -> None:
    pcm = voiced(0, 160)
    jb = JitterBuffer(codec="PCMA")
    assert jb.push(rtp(1, 0, g711.alaw_encode(pcm), pt=8), 0.0) == "buffered"
    assert np.array_equal(jb.pop(0.02).pcm, g711.alaw_decode(g711.alaw_encode(pcm)))


def test_g722_is_decoded_at_16_khz_with_wideband_concealment() -> None:
    from rtpcore.g722 import G722Decoder, G722Encoder

    t = np.arange(60 * 320) / 16000.0
    pcm = (3000 * sum(np.sin(2 * np.pi * 210 * k * t) / k for k in range(1, 8))).astype(np.int16)
    codes = G722Encoder().encode(pcm)
    jb = JitterBuffer(codec="G722")
    assert (jb.frame_len, jb.sample_rate) == (320, 16000)
    frames = []
    for k in range(60):
        if k != 30:
            jb.push(rtp(k, 160 * k, codes[160 * k : 160 * (k + 1)], pt=9), 0.02 * k)
        frames.append(jb.pop(0.02 * (k + 1)))  # one frame of initial delay
    assert [f.kind for f in frames[29:32]] == ["normal", "concealed", "merged"]
    assert all(f.sample_rate == 16000 and len(f.pcm) == 320 for f in frames)
    reference = G722Decoder().decode(codes)
    assert np.array_equal(np.concatenate([f.pcm for f in frames[:30]]), reference[: 320 * 30])
    lost = reference[320 * 30 : 320 * 30 + 160]
    assert snr_db(lost, frames[30].pcm[:160]) > 6


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "wrap", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8)]
)
def test_any_buffer_is_accepted_alike(wrap: object) -> None:
    ref, _ = run(clean(10))
    jb = JitterBuffer()
    for k in range(10):
        assert jb.push(wrap(packet(k)), 0.02 * k + 0.005) == "buffered"  # type: ignore[operator]
    assert jb.stats().received == ref.stats().received == 10


def test_an_object_with_bytes_is_accepted() -> None:
    class Packet:
        def __bytes__(self) -> bytes:
            return packet(0)

    jb = JitterBuffer()
    assert jb.push(Packet(), 0.0) == "buffered"
    with pytest.raises(TypeError, match="packet"):
        jb.push(12345, 0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x80",
        b"\x00" * 12 + b"\xff" * 160,
        rtp(1, 0, b""),
        rtp(1, 0, b"\xff" * 160, pt=8),
        b"\xa0" + rtp(1, 0, b"\xff" * 10)[1:-1] + b"\x40",
    ],
    ids=["empty", "short", "version0", "no-payload", "wrong-pt", "bad-padding"],
)
def test_garbage_is_counted_never_raised(datagram: bytes) -> None:
    jb = JitterBuffer()
    assert jb.push(datagram, 0.0) == "malformed"
    assert jb.stats().malformed == 1 and jb.buffered_packets == 0


def test_telephone_events_are_passed_around_the_buffer() -> None:
    jb = JitterBuffer(event_payload_type=101)
    jb.push(packet(0), 0.0)
    event = rtp(1, 160, bytes([11, 0x80 | 10, 0x03, 0x20]), pt=101)
    assert jb.push(event, 0.01) == "event"
    [e] = jb.pop_events()
    assert (e.event, e.end, e.volume, e.duration, e.timestamp, e.arrival) == (
        11,
        True,
        10,
        800,
        160,
        0.01,
    )
    assert jb.pop_events() == [] and jb.buffered_packets == 1
    assert jb.push(rtp(2, 160, b"\x01", pt=101), 0.02) == "malformed"
    for k in range(300):
        jb.push(rtp(3 + k, 320, bytes([k % 16, 0, 0, 160]), pt=101), 0.03)
    pending = jb.pop_events()
    assert len(pending) == 256 and pending[-1].event == 299 % 16


# --------------------------------------------------------------------------- network


def test_reordering_within_the_delay_loses_nothing() -> None:
    arrivals = [(0.02 * k + (0.045 if k % 10 == 3 else 0.005), packet(k)) for k in range(300)]
    jb, frames = run(arrivals)
    s = jb.stats()
    # Only while the first reorderings are being learnt (the first second).
    assert s.late == s.lost <= 8
    assert s.target_delay_ms >= 40
    assert sum(f.kind == "concealed" for f in frames[60:]) == 0


def test_duplicates_are_dropped_and_counted() -> None:
    arrivals = clean(100) + [(0.02 * k + 0.015, packet(k)) for k in range(0, 100, 4)]
    jb, frames = run(arrivals)
    s = jb.stats()
    assert (s.received, s.duplicate, s.lost) == (100, 25, 0)
    stamps = [f.timestamp for f in frames if f.timestamp is not None]
    assert stamps == sorted(set(stamps))


def test_late_packet_is_counted_and_its_gap_concealed() -> None:
    arrivals = [(0.02 * k + (0.3 if k == 45 else 0.005), packet(k)) for k in range(80)]
    jb, frames = run(arrivals)
    s = jb.stats()
    assert (s.late, s.lost) == (1, 1)
    kinds = [f.kind for f in frames]
    i = kinds.index("concealed")
    assert frames[i].timestamp is None and kinds[i + 1] == "merged"


def test_sequence_and_timestamp_wrap() -> None:
    arrivals = [(0.02 * k + 0.005, packet(k, seq0=65500, ts0=2**32 - 3200)) for k in range(100)]
    jb, frames = run(arrivals)
    stamps = [f.timestamp for f in frames if f.timestamp is not None]
    assert len(stamps) == 100 and stamps[25] == 800
    assert jb.stats().lost == 0


def test_ssrc_change_starts_the_new_source() -> None:
    arrivals = clean(50)
    arrivals += [
        (1.0 + 0.02 * k + 0.03, packet(k, seq0=9000, ts0=7_000_000, ssrc=0xABC, marker=k == 0))
        for k in range(50)
    ]
    jb, frames = run(arrivals)
    stamps = [f.timestamp for f in frames if f.timestamp is not None]
    assert len(stamps) == 100 and 7_000_000 in stamps
    assert jb.stats().late == 0


def test_dtx_gap_is_silence_and_the_next_spurt_starts_on_its_own() -> None:
    quiet = g711.ulaw_encode(np.zeros(160, dtype=np.int16))
    arrivals = [
        (0.02 * k + 0.005, packet(k) if k < 17 else rtp(k, 160 * k, quiet)) for k in range(20)
    ]
    arrivals += [
        (
            0.02 * (70 + k) + 0.005,
            rtp(20 + k, 160 * (70 + k), g711.ulaw_encode(voiced(0, 160)), marker=k == 0),
        )
        for k in range(20)
    ]
    jb, frames = run(arrivals)
    s = jb.stats()
    assert (s.lost, s.late, s.concealed_ms) == (0, 0, 0.0)
    assert sum(f.kind == "silence" for f in frames) >= 45
    assert sum(f.timestamp is not None for f in frames) == 40


def test_rfc3389_comfort_noise_fills_the_pause() -> None:
    arrivals = clean(20)
    arrivals.append((0.405, rtp(20, 3200, bytes([40]), pt=13)))  # SID at -40 dBov
    arrivals += [
        (
            0.02 * (70 + k) + 0.005,
            rtp(21 + k, 160 * (70 + k), g711.ulaw_encode(voiced(0, 160)), marker=k == 0),
        )
        for k in range(20)
    ]
    jb, frames = run(arrivals)
    s = jb.stats()
    assert (s.comfort_noise_packets, s.lost, s.late, s.concealed_ms) == (1, 0, 0, 0.0)
    noise = np.concatenate([f.pcm for f in frames if f.kind == "comfort_noise"])
    assert noise.size >= 40 * 160
    rms = np.sqrt(np.mean(noise[160:].astype(float) ** 2))
    assert 250 < rms < 420  # -40 dBov
    assert sum(f.timestamp is not None for f in frames) == 40
    assert JitterBuffer(cn_payload_type=None).push(rtp(1, 0, b"\x28", pt=13), 0.0) == "malformed"


def test_clock_drift_is_absorbed() -> None:
    # Sender 0.5% fast: packets every 19.9 ms of receiver time.
    arrivals = [(0.0199 * k + 0.005, packet(k)) for k in range(1500)]
    jb, _frames = run(arrivals)
    s = jb.stats()
    assert s.accelerated_ms >= 100 and s.late == 0
    assert s.current_delay_ms < 60


def test_a_delay_spike_raises_delay_then_it_comes_back_down() -> None:
    arrivals = [
        (max(0.02 * k + 0.005, 1.2 if 50 <= k < 60 else 0.0), packet(k)) for k in range(400)
    ]
    jb, _frames = run(arrivals)
    s = jb.stats()
    assert (s.late, s.lost) == (0, 0)
    assert s.concealed_ms > 0 and s.accelerated_ms >= 100
    assert s.current_delay_ms < 40


# --------------------------------------------------------------------------- quality


def snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    err = ref.astype(float) - out.astype(float)
    return 10 * math.log10(np.sum(ref.astype(float) ** 2) / max(np.sum(err**2), 1e-9))


def test_concealment_beats_silence_and_merges_without_a_click() -> None:
    arrivals = [(0.02 * k + 0.005, packet(k)) for k in range(60) if k != 30]
    _jb, frames = run(arrivals)
    kinds = [f.kind for f in frames]
    i = kinds.index("concealed")
    lost = g711.ulaw_decode(g711.ulaw_encode(voiced(160 * 30, 160)))
    # Pitch repetition tracks a voiced signal far better than silence (0 dB).
    assert snr_db(lost[:80], frames[i].pcm[:80]) > 6
    # No click where concealment meets the real audio again.
    joined = np.concatenate([frames[i].pcm, frames[i + 1].pcm]).astype(int)
    typical = np.percentile(np.abs(np.diff(lost.astype(int))), 99)
    assert np.abs(np.diff(joined)).max() <= 1.5 * typical


def test_long_loss_fades_to_comfort_noise() -> None:
    arrivals = [(0.02 * k + 0.005, packet(k)) for k in range(100) if not 30 <= k < 50]
    _jb, frames = run(arrivals)
    kinds = [f.kind for f in frames]
    assert kinds.count("comfort_noise") >= 10
    faded = [f for f in frames if f.kind == "comfort_noise"]
    assert max(np.abs(f.pcm).max() for f in faded) < 100


def test_stretching_keeps_the_waveform_smooth() -> None:
    arrivals = [
        (max(0.02 * k + 0.005, 1.2 if 50 <= k < 60 else 0.0), packet(k)) for k in range(400)
    ]
    _jb, frames = run(arrivals)
    typical = np.percentile(
        np.abs(np.diff(g711.ulaw_decode(g711.ulaw_encode(voiced(0, 8000))).astype(int))), 99.9
    )
    for prev, frame in itertools.pairwise(frames):
        if frame.kind == "accelerated":
            joined = np.concatenate([prev.pcm, frame.pcm]).astype(int)
            assert np.abs(np.diff(joined)).max() <= 1.5 * typical


# --------------------------------------------------------------------------- replay


def test_replay_returns_audio_and_a_timeline() -> None:
    pcm, timeline = replay([(t + 100.0, p) for t, p in clean(50)], drain=0.1)
    assert pcm.dtype == np.int16 and pcm.size == 160 * timeline.time.size
    assert set(timeline.kind) <= KINDS
    assert (timeline.timestamp >= 0).sum() == 50
    assert timeline.stats.received == 50
    assert np.all(timeline.packet_delay_ms < 1) and np.all(timeline.packet_delay_ms >= 0)


# --------------------------------------------------------------------------- properties

operation = st.one_of(
    st.tuples(
        st.just("push"),
        st.integers(0, 40),
        st.floats(0, 0.3),
        st.sampled_from(["ok", "dup", "junk", "ssrc"]),
    ),
    st.tuples(st.just("pop"), st.floats(0.005, 0.04)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=150), st.sampled_from([10, 20, 30, 60]))
def test_random_operation_sequences(ops: list[tuple], frame_ms: int) -> None:
    jb = JitterBuffer(frame_ms=frame_ms, event_payload_type=101)
    now = 0.0
    pops = 0
    counted = {"buffered": 0, "late": 0, "duplicate": 0, "malformed": 0, "event": 0}
    for op in ops:
        if op[0] == "push":
            _, k, jitter, how = op
            if how == "junk":
                data = packet(k)[: k % 20]
            elif how == "ssrc":
                data = packet(k, ssrc=k)
            else:
                data = packet(k)
            counted[jb.push(data, now + jitter)] += 1
            if how == "dup":
                counted[jb.push(data, now + jitter)] += 1
        else:
            now += op[1]
            frame = jb.pop(now)
            pops += 1
            assert len(frame.pcm) == 8 * frame_ms and frame.kind in KINDS
            if frame.kind in REAL_KINDS:
                assert frame.timestamp is not None
    s = jb.stats()
    assert s.frames == pops
    assert s.malformed == counted["malformed"] and s.duplicate == counted["duplicate"]
    assert s.late == counted["late"] and s.events == counted["event"]
    # Late stragglers of a replaced source are not "received"; everything else is.
    assert counted["buffered"] <= s.received <= counted["buffered"] + counted["late"]
    assert s.concealed_ms + s.comfort_noise_ms <= pops * frame_ms + 1e-6
    assert (
        s.accelerated_ms >= 0
        and s.expanded_ms >= 0
        and s.stretched_ms == s.accelerated_ms + s.expanded_ms
    )


@pytest.mark.parametrize(("packet_ms", "frame_ms"), [(30, 20), (10, 20), (20, 60), (60, 10)])
def test_packet_and_frame_sizes_need_not_match(packet_ms: int, frame_ms: int) -> None:
    n = 8 * packet_ms
    count = 3000 // packet_ms
    audio = voiced(0, n * count)
    codes = g711.ulaw_encode(audio)
    jb = JitterBuffer(frame_ms=frame_ms, initial_delay_ms=float(max(packet_ms, frame_ms)))
    out = []
    t = 0.0
    i = 0
    while t < count * packet_ms / 1000 + 0.2:
        while i < count and i * packet_ms / 1000 <= t + 1e-9:
            jb.push(rtp(i, n * i, codes[n * i : n * (i + 1)]), i * packet_ms / 1000)
            i += 1
        frame = jb.pop(t)
        if frame.kind == "normal":
            out.append(frame)
            concealed_while_playing = jb.stats().concealed_ms
        t = round(t + frame_ms / 1000, 6)
    s = jb.stats()
    assert (s.lost, s.late, concealed_while_playing) == (0, 0, 0.0)
    decoded = g711.ulaw_decode(codes)
    assert len(out) * frame_ms >= 2500
    for f in out:  # every normal frame is the decode at its timestamp
        assert np.array_equal(f.pcm, decoded[f.timestamp : f.timestamp + len(f.pcm)])
