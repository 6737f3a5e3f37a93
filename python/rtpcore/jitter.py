"""Adaptive jitter buffer with loss concealment and time-stretching.

:class:`JitterBuffer` takes RTP packets as they arrive and hands out one
:class:`AudioFrame` per frame period. It never reads a clock: ``push`` and
``pop`` take the time (seconds on any monotonic clock) as an argument, so it
runs the same under a real event loop, a media engine or a simulation.

- The target delay adapts to the network like WebRTC NetEQ's: a histogram of
  packet delays (relative to the fastest recent packet) with exponential
  forgetting, whose 99% quantile is the target, plus a detector for
  recurring delay spikes.
- Inside a talk spurt the delay moves towards the target by dropping or
  repeating single pitch periods, crossfaded where the audio is periodic
  (``"accelerated"`` / ``"expanded"`` frames); at the start of a talk spurt
  (marker bit, DTX gap, new SSRC) playout simply starts later or earlier.
- G.711 (``"PCMU"``, ``"PCMA"``) and G.722 (``"G722"``: 16 kHz frames on the
  8 kHz RTP clock) are decoded in the buffer.
- Lost packets are concealed by pitch-period repetition that fades into
  comfort noise (``"concealed"``, ``"comfort_noise"``); real audio returning
  is crossfaded in (``"merged"``). Silence is never "concealed".
- Reordering, duplicates, late packets, sequence/timestamp wrap, SSRC changes
  and timestamp jumps are handled; malformed datagrams are counted in
  ``stats().malformed`` and never raise. RFC 4733 telephone events
  (``event_payload_type=``) bypass the buffer: :meth:`JitterBuffer.pop_events`.
  RFC 3389 comfort-noise packets (``cn_payload_type=``, 13 by default) mark
  a pause and set the noise played in it.

>>> from rtpcore.jitter import JitterBuffer
>>> jb = JitterBuffer(clock_rate=8000, codec="PCMU", frame_ms=20)
>>> packet = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7]) + bytes([0xFF]) * 160
>>> jb.push(packet, arrival=0.000)
'buffered'
>>> jb.pop(now=0.000).kind  # the initial delay: 20 ms while the first packets are learnt
'silence'
>>> frame = jb.pop(now=0.020)
>>> frame.kind, len(frame.pcm), frame.sample_rate, frame.timestamp
('normal', 160, 8000, 160)

:func:`replay` runs a whole capture (packets with arrival times) through a
buffer and returns the audio with a per-frame timeline; :func:`plot_timeline`
draws the delays (matplotlib needed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rtpcore._core import AudioFrame, JitterBuffer, JitterStats, TelephoneEventPacket

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "AudioFrame",
    "JitterBuffer",
    "JitterStats",
    "TelephoneEventPacket",
    "Timeline",
    "plot_timeline",
    "replay",
]


@dataclasses.dataclass(frozen=True)
class Timeline:
    """What the buffer did, one entry per frame (all arrays of one length).

    ``time`` is when the frame was popped (s); ``kind`` its kind;
    ``timestamp`` the RTP timestamp of its first sample (-1 when wholly
    synthesized); ``playout_offset`` ``time - timestamp/clock`` (s, NaN
    before playout starts); ``current_delay_ms`` and ``target_delay_ms`` the
    buffer's own view of its delay. ``arrival`` and ``packet_delay_ms`` list
    every packet pushed: its arrival time (s) and how much later than the
    fastest packet of the preceding 5 s it came (ms, the buffer's reference).
    """

    time: npt.NDArray[np.float64]
    kind: npt.NDArray[np.str_]
    timestamp: npt.NDArray[np.int64]
    playout_offset: npt.NDArray[np.float64]
    current_delay_ms: npt.NDArray[np.float64]
    target_delay_ms: npt.NDArray[np.float64]
    arrival: npt.NDArray[np.float64]
    packet_delay_ms: npt.NDArray[np.float64]
    stats: JitterStats
    events: list[TelephoneEventPacket]


def replay(
    packets: Iterable[tuple[float, bytes]],
    *,
    clock_rate: int = 8000,
    codec: str = "PCMU",
    frame_ms: int = 20,
    start: float | None = None,
    drain: float = 1.0,
    **options: Any,
) -> tuple[npt.NDArray[np.int16], Timeline]:
    """Runs captured packets through a :class:`JitterBuffer` on a simulated clock.

    ``packets`` are ``(arrival_seconds, rtp_bytes)`` pairs (any order; they
    are replayed in arrival order). Frames are popped every ``frame_ms`` from
    ``start`` (default: the first arrival) until ``drain`` seconds after the
    last arrival. Returns the concatenated int16 audio and a :class:`Timeline`.
    Extra keyword ``options`` go to :class:`JitterBuffer`.
    """
    ordered = sorted(packets, key=lambda p: p[0])
    jb = JitterBuffer(clock_rate, codec, frame_ms, **options)
    period = frame_ms / 1000.0
    if not ordered:
        empty = np.zeros(0, dtype=np.float64)
        timeline = Timeline(
            empty,
            np.zeros(0, dtype="<U13"),
            np.zeros(0, dtype=np.int64),
            empty,
            empty,
            empty,
            empty,
            empty,
            jb.stats(),
            [],
        )
        return np.zeros(0, dtype=np.int16), timeline
    t0 = ordered[0][0] if start is None else start
    n_frames = int(np.ceil((ordered[-1][0] + drain - t0) / period)) + 1
    pcm = np.zeros(n_frames * jb.frame_len, dtype=np.int16)
    times = (t0 + np.arange(n_frames) * period).astype(np.float64)
    kinds: list[str] = []
    stamps = np.full(n_frames, -1, dtype=np.int64)
    offsets = np.full(n_frames, np.nan)
    current = np.zeros(n_frames)
    target = np.zeros(n_frames)
    arrival = np.array([p[0] for p in ordered], dtype=np.float64)
    i = 0
    events: list[TelephoneEventPacket] = []
    for f, now in enumerate(times):
        while i < len(ordered) and ordered[i][0] <= now:
            at, data = ordered[i]
            jb.push(data, at)
            i += 1
        frame = jb.pop(float(now))
        pcm[f * jb.frame_len : (f + 1) * jb.frame_len] = frame.pcm
        kinds.append(frame.kind)
        if frame.timestamp is not None:
            stamps[f] = frame.timestamp
        offset = jb.playout_offset
        offsets[f] = np.nan if offset is None else offset
        st = jb.stats()
        current[f], target[f] = st.current_delay_ms, st.target_delay_ms
        events.extend(jb.pop_events())
    timeline = Timeline(
        times,
        np.array(kinds),
        stamps,
        offsets,
        current,
        target,
        arrival,
        _packet_delays(ordered, clock_rate),
        jb.stats(),
        events,
    )
    return pcm, timeline


def _packet_delays(ordered: list[tuple[float, bytes]], clock_rate: int) -> npt.NDArray[np.float64]:
    """Each packet's delay beyond the fastest packet of the 5 s before it
    (ms), per source; a new SSRC or a timestamp jump starts afresh."""
    delays = np.full(len(ordered), np.nan)
    history: list[tuple[float, float]] = []  # (arrival, transit) of the current source
    last: dict[int, tuple[int, int]] = {}  # ssrc -> (wire ts, extended ts)
    source = None
    for i, (at, data) in enumerate(ordered):
        if len(data) < 12:
            continue
        ts, ssrc = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
        wire, ext = last.get(ssrc, (ts, ts))
        ext += (ts - wire + 2**31) % 2**32 - 2**31
        last[ssrc] = (ts, ext)
        transit = at - ext / clock_rate
        if ssrc != source or (history and abs(transit - history[-1][1]) > 1.0):
            source, history = ssrc, []
        history = [h for h in history if h[0] >= at - 5.0] + [(at, transit)]
        delays[i] = (transit - min(h[1] for h in history)) * 1000.0
    return delays


def plot_timeline(timeline: Timeline, path: str | PathLike[str], title: str = "") -> None:
    """Draws packet delays, target and playout delay over time to a PNG.

    Delays are relative to the fastest packet of the preceding 5 s (the
    buffer's own reference): dots are packets, the lines the buffer's target
    and its actual playout delay; red frames were concealed.
    Needs matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    t0 = float(timeline.time[0]) if timeline.time.size else 0.0
    ax.plot(
        timeline.arrival - t0,
        timeline.packet_delay_ms,
        ".",
        ms=2,
        color="0.5",
        label="packet delay",
    )
    played = np.isfinite(timeline.playout_offset)
    ax.plot(
        timeline.time[played] - t0,
        timeline.current_delay_ms[played],
        "-",
        lw=1,
        color="tab:blue",
        label="playout delay",
    )
    ax.plot(
        timeline.time[played] - t0,
        timeline.target_delay_ms[played],
        "-",
        lw=1,
        color="tab:orange",
        label="target delay",
    )
    concealed = np.isin(timeline.kind, ["concealed", "comfort_noise"])
    for t in timeline.time[concealed] - t0:
        ax.axvspan(t, t + 0.02, color="tab:red", alpha=0.3, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("delay beyond the fastest recent packet (ms)")
    ax.set_title(title)
    finite = timeline.packet_delay_ms[np.isfinite(timeline.packet_delay_ms)]
    top = max(float(np.percentile(finite, 99.9)) if finite.size else 100.0, 50.0) * 1.3
    ax.set_ylim(-5, top)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
