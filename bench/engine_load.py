"""Concurrent full-duplex calls over loopback: how many one process holds
with every frame on time, rtpcore's media engine against an aiortc-style
asyncio pipeline, in the same run.

Each call is G.711 μ-law, 20 ms, SRTP AES_CM_128_HMAC_SHA1_80 both ways,
jitter buffer on. The process under test (the "SUT") runs one of:

  engine        rtpcore.media: an application task per call reads every
                frame (``async for frame in stream``) and writes audio
                (``await stream.write(pcm)``) as it reads, keeping 60 ms
                queued ahead of the clock as a TTS-fed agent would
  engine-batch  the same application in one task for every call, through
                ``engine.read_frames()`` / ``engine.write_frames()``
  engine-block  the same application in one task, its bookkeeping done with
                numpy over ``engine.read_frame_block()`` (every frame of a
                wake-up as one 2-D array) and ``engine.write_frame_block()``
  engine-alone  the same engine and calls, Python touching no frame
  asyncio       bench/asyncio_pipeline.py (asyncio datagram endpoint,
                pylibsrtp, aiortc's RtpPacket and JitterBuffer, audioop, a
                20 ms asyncio clock per call) with the same application

The far end is a second process (the "peer"), so the SUT's CPU and memory
are its own. It runs on the SUT's two cores, and what it spends the SUT
cannot, so most of its calls are in the load generator
(rust/engine/examples/load_far_end.rs, built with cargo on first use): one
thread and one socket pair for every call, a millisecond's packets in one
sendmmsg, SRTP per packet and per call both ways, every packet the SUT
sends authenticated and its sequence checked, nothing decoded (at 800
calls 33 % of a core against 45-48 % for the same calls as engine streams,
see the README). Without cargo they
are rtpcore engine streams in G.711 pass-through on an engine with
``shared_sockets=True`` (``--peer-impl engine``), or asyncio pipeline calls
when the engine cannot be imported. A sample of the calls ("probes",
spread evenly) are plain sockets with SO_TIMESTAMPNS that send the SUT a
tone and record the kernel's arrival
time of every SUT packet. What counts, over the measuring window:

  interval error  |arrival(k+1) - arrival(k) - 20 ms| over consecutive
                  packets of every probe call, from kernel timestamps; the
                  99th percentile must stay under 2 ms
  late frames     frames the SUT's application read more than one ptime
                  after their slot, frames the SUT dropped unread or sent as
                  filler for want of application audio (its own counters),
                  plus packets the probes never got or got without the
                  application's audio, and packets of any call the
                  generator never got or could not authenticate: must be
                  zero
  far end behind  how far the generator fell behind its sending schedule
                  in the window: under one ptime, or the SUT was not
                  offered its calls' packets as they fell due (the far end
                  stands in for other machines; starved of the shared
                  cores it sends late, then in bursts, and the SUT
                  conceals instead of decrypting and decoding)
  CPU per call    the SUT's user+system time / window / calls (getrusage)
  memory per call (the SUT's resident set after the calls opened - before) / calls

A step holds when all three limits hold. What moving the calls' packets
alone costs, under any implementation, is bench/sockets_floor.py's to
measure. ``--ramp`` doubles N from ``--start``
until a step fails, then bisects between the last held and the first failed
N, for each implementation in turn, and prints the largest N held side by
side.

    python bench/engine_load.py --calls 200                        # one step, each impl
    python bench/engine_load.py --ramp --realtime --json load.json # the full ramp
    python bench/engine_load.py --ramp --impl asyncio --start 50
    python bench/engine_load.py --calls 2000 --impl engine-batch --seconds 10

``--realtime`` (root) runs the SUT and the far end under SCHED_FIFO, the
engines' worker threads one priority above the Python threads: on a
machine shared with other work, the scheduler's delays otherwise swamp the
2 ms budget whatever the implementation. Build the extension with
``scripts/build-ext --release`` first: debug-built Rust is far slower.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import hashlib
import json
import math
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
IMPLEMENTATIONS = ("engine", "engine-batch", "engine-block", "engine-alone", "asyncio")
PTIME_S = 0.020
SAMPLES = 160
LEAD_FRAMES = 3  # frames the application keeps queued ahead of the clock (60 ms)
LATE_S = PTIME_S  # a frame read more than one ptime after its slot is late
# How long the one-task applications let frames gather after a wake-up, so
# that one read serves many engine ticks (a quarter of LATE_S).
GATHER_S = 0.005
MAX_P99_ERROR_MS = 2.0
# Between the window counters' first reading and the window (see serve_sut).
CATCH_UP_S = 0.3
SUITE = "AES_CM_128_HMAC_SHA1_80"
# Disjoint port ranges for the two engines of one step.
SUT_PORTS = (20000, 39998)
PEER_PORTS = (40000, 59998)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; SCM_TIMESTAMPNS is the same


def tone() -> tuple[bytes, bytes]:
    """One 20 ms frame of a 400 Hz tone as μ-law codes and as the 16-bit PCM
    those codes decode to. Any G.711 encoder maps decoded values back to the
    same codes, so the far end can check the audio bit for bit."""
    from rtpcore import g711

    t = np.arange(SAMPLES) / 8000
    codes = g711.ulaw_encode((8000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16))
    return codes, g711.ulaw_decode(codes).tobytes()


TONE_ULAW, TONE_PCM = tone()


def crypto(call: int, sender: str) -> Any:
    """The SDES master key and salt ``sender`` ("sut" or "peer") uses on ``call``."""
    from rtpcore.srtp import CryptoAttribute

    digest = hashlib.sha256(f"engine_load:{call}:{sender}".encode()).digest()
    return CryptoAttribute(1, SUITE, digest[:16], digest[16:30])


def realtime() -> None:
    """Run this process (and the threads it starts from now on) under
    SCHED_FIFO, so other load on the machine does not preempt it: on a
    shared machine the scheduler's delays otherwise swamp a 2 ms budget."""
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def media_threads_first() -> None:
    """Under SCHED_FIFO, put the engine's worker threads one priority above
    the rest of this process: a worker's tick has a 2 ms budget, the
    application's frames one ptime, and equal FIFO priorities would let a
    long application step hold a worker off its core."""
    if os.sched_getscheduler(0) != os.SCHED_FIFO:
        return
    above = os.sched_param(os.sched_getparam(0).sched_priority + 1)
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().startswith("rtpcore-media"):
                os.sched_setscheduler(int(tid), os.SCHED_FIFO, above)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> tuple[float, float]:
    """This process's (user, system) CPU time so far, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """Another process's user + system time so far (a child not yet waited
    for is in none of its parent's rusage figures)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def read_json_line() -> Any:
    """The next line of stdin as JSON, read off the event loop."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("stdin closed")
    return json.loads(line)


def say(obj: Any) -> None:
    print(json.dumps(obj), flush=True)


# --- the application (the same code over every implementation) -----------------


@dataclass
class AppFigures:
    """What the application saw, summed over calls."""

    frames: int = 0
    late: int = 0
    tone_frames: int = 0
    worst_late_ms: float = 0.0
    refused_writes: int = 0
    reads: int = 0  # wake-ups of the application that returned frames


class CallState:
    """The application's bookkeeping for one call."""

    __slots__ = ("base", "read", "start", "written")

    def __init__(self, now: float) -> None:
        self.read = 0  # frames read
        self.base = math.inf  # smallest (read time - k * ptime) so far
        self.start = now
        self.written = 0  # frames written


class Application:
    """Reads every frame of every call and, like an agent fed by a TTS,
    keeps LEAD_FRAMES of audio queued ahead of the wall clock, writing
    when it reads (usually one frame per frame read).

    Lateness: a call's k-th frame has the slot ``base + k * ptime``, where
    ``base`` is the smallest ``read time - k * ptime`` seen so far; a frame
    read more than LATE_S after its slot is late. Only frames read while
    ``measuring`` is set count.
    """

    def __init__(self) -> None:
        self.figures = AppFigures()
        self.measuring = False

    def _observe(self, call: CallState, now: float, pcm: Any) -> int:
        """Account for one frame read at ``now``; returns how many frames
        to write to keep the lead."""
        offset = now - call.read * PTIME_S
        call.read += 1
        if offset < call.base:
            call.base = offset
        if self.measuring:
            figures = self.figures
            figures.frames += 1
            figures.tone_frames += bytes(pcm) == TONE_PCM
            lateness = offset - call.base
            if lateness > LATE_S:
                figures.late += 1
                figures.worst_late_ms = max(figures.worst_late_ms, lateness * 1000)
        due = LEAD_FRAMES + int((now - call.start) / PTIME_S)
        missing = max(0, due - call.written)
        call.written += missing
        return missing

    async def run(self, stream: Any) -> None:
        """One call, the per-stream API: ``async for`` and ``await write``."""
        loop = asyncio.get_running_loop()
        call = CallState(loop.time())
        for _ in range(LEAD_FRAMES):
            await stream.write(TONE_PCM)
        call.written = LEAD_FRAMES
        async for frame in stream:
            for _ in range(self._observe(call, loop.time(), frame.pcm)):
                await stream.write(TONE_PCM)

    async def run_batch(self, engine: Any, streams: list[Any]) -> None:
        """Every call in one task: ``engine.read_frames()`` and ``write_frames``."""
        loop = asyncio.get_running_loop()
        calls = {stream: CallState(loop.time()) for stream in streams}
        for _ in range(LEAD_FRAMES):
            engine.write_frames([(stream, TONE_PCM) for stream in streams])
        for call in calls.values():
            call.written = LEAD_FRAMES
        while batch := await engine.read_frames():
            now = loop.time()
            self.figures.reads += self.measuring
            writes = [(stream, TONE_PCM) for stream, frame in batch
                      for _ in range(self._observe(calls[stream], now, frame.pcm))]
            self.figures.refused_writes += len(engine.write_frames(writes))

    async def run_block(self, engine: Any, streams: list[Any]) -> None:
        """Every call in one task, the bookkeeping of ``_observe`` done over
        whole blocks with numpy: ``engine.read_frame_block()`` and
        ``engine.write_frame_block()``. Rows of one call in one block are
        in order and read at the same time, so the k-th of them has the
        call's slot ``k`` later than the one before."""
        loop = asyncio.get_running_loop()
        ids = np.array([stream.id for stream in streams], np.uint64)
        by_id = np.argsort(ids)
        sorted_ids = ids[by_id]
        n = len(streams)
        read = np.zeros(n, np.int64)
        base = np.full(n, math.inf)
        start = np.full(n, loop.time())
        written = np.full(n, LEAD_FRAMES, np.int64)
        tone = np.frombuffer(TONE_PCM, np.int16)
        tones = np.tile(tone, (n, 1))
        tone_words = tone.copy().view(np.uint64)
        for _ in range(LEAD_FRAMES):
            engine.write_frame_block(streams, tones)
        figures = self.figures
        while block := await engine.read_frame_block(gather=GATHER_S):
            now = loop.time()
            figures.reads += self.measuring
            calls = by_id[np.searchsorted(sorted_ids, block.ids)]
            counts = np.bincount(calls, minlength=n)
            # Usually each call has one frame per block (the gather is
            # shorter than a ptime): then every rank is 0, without a sort.
            rank = occurrence_rank(calls) if counts.max(initial=0) > 1 else np.zeros(len(calls), np.int64)
            offset = now - (read[calls] + rank) * PTIME_S
            # Each row's slot base includes the rows before it; those have
            # larger offsets, so only the base from earlier blocks matters.
            lateness = np.maximum(offset - base[calls], 0.0)
            np.minimum.at(base, calls, offset)
            read += counts
            if self.measuring:
                figures.frames += len(calls)
                # Rows compared 8 bytes at a time: a quarter of the elements.
                figures.tone_frames += int((block.samples.view(np.uint64) == tone_words).all(axis=1).sum())
                late = lateness > LATE_S
                if late.any():
                    figures.late += int(late.sum())
                    figures.worst_late_ms = max(figures.worst_late_ms, float(lateness.max()) * 1000)
            firsts = rank == 0
            due_calls = calls[firsts]
            due = LEAD_FRAMES + ((now - start[due_calls]) / PTIME_S).astype(np.int64)
            missing = np.maximum(due - written[due_calls], 0)
            written[due_calls] += missing
            if firsts.all() and (missing == 1).all():
                targets = block.streams
            else:
                targets = [streams[i] for i in np.repeat(due_calls, missing)]
            for first in range(0, len(targets), n):  # tones has a row per call
                chunk = targets[first:first + n]
                figures.refused_writes += len(engine.write_frame_block(chunk, tones[:len(chunk)]))


def occurrence_rank(values: Any) -> Any:
    """For each element, how many equal elements come before it."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    positions = np.arange(len(values))
    starts = np.maximum.accumulate(np.where(np.r_[True, ordered[1:] != ordered[:-1]], positions, 0))
    rank = np.empty_like(positions)
    rank[order] = positions - starts
    return rank


class GcPauses:
    """The garbage collector's pauses while ``measuring``: how many, the
    longest and their sum, in ms."""

    def __init__(self) -> None:
        self.measuring = False
        self.count, self.longest, self.total = 0, 0.0, 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.measuring:
            pause = (time.perf_counter() - self._started) * 1000
            self.count += 1
            self.longest = max(self.longest, pause)
            self.total += pause

    def figures(self) -> dict[str, float]:
        return {"pauses": self.count, "longest_ms": self.longest, "total_ms": self.total}


# --- the calls of each implementation ------------------------------------------------


async def spread_over_ptime(starts: list[Callable[[], None]], groups: int = 20) -> None:
    """Run ``starts`` in ``groups`` spread over one ptime, so the calls'
    clocks tick at different phases, as independent calls' do, rather than
    all in the same instant."""
    for group in range(groups):
        for start in starts[group::groups]:
            start()
        await asyncio.sleep(PTIME_S / groups)


class EngineCalls:
    """Calls on one rtpcore.media Engine; with ``batch`` the application
    serves them all from one task."""

    # per-stream counters summed over the measuring window
    WINDOW_COUNTERS = ("frames_to_app", "frames_overrun", "idle_frames", "packets_received",
                       "packets_lost", "concealed_ms")

    def __init__(self, port_range: tuple[int, int], batch: bool = False, block: bool = False,
                 passthrough: bool = False, shared_sockets: bool = False) -> None:
        from rtpcore.media import Engine

        self.engine = Engine(bind_host="127.0.0.1", port_range=port_range,
                             shared_sockets=shared_sockets)
        media_threads_first()
        self.batch = batch or block
        self.block = block
        self.passthrough = passthrough
        self.streams: list[Any] = []
        self.configs: list[tuple[Any, Any]] = []

    async def open(self, ids: list[int], sender: str, receiver: str) -> list[int]:
        """Allocate a stream per call; returns their RTP ports."""
        self.streams = [self.engine.allocate(batch=self.batch) for _ in ids]
        self.configs = [(crypto(i, sender), crypto(i, receiver)) for i in ids]
        return [int(s.local_port) for s in self.streams]

    async def start(self, remotes: list[int]) -> None:
        """Start media towards ``remotes``."""
        from rtpcore.media import MediaConfig

        await spread_over_ptime([
            functools.partial(stream.start, MediaConfig(
                codec="PCMU", payload_type=0, remote=("127.0.0.1", port), ptime=20,
                telephone_event=None, srtp_send=send, srtp_recv=recv, sample_rate=8000,
                passthrough=self.passthrough))
            for stream, (send, recv), port in zip(self.streams, self.configs, remotes, strict=True)])

    def applications(self, app: Application) -> list[Coroutine[Any, Any, None]]:
        if self.block:
            return [app.run_block(self.engine, self.streams)]
        if self.batch:
            return [app.run_batch(self.engine, self.streams)]
        return [app.run(stream) for stream in self.streams]

    def snapshot(self) -> dict[str, float]:
        """The window counters summed over calls, now."""
        total = dict.fromkeys(self.WINDOW_COUNTERS, 0.0)
        for stream in self.streams:
            stats = stream.stats()
            for name in self.WINDOW_COUNTERS:
                total[name] += getattr(stats, name)
        return total

    def underruns(self, window: dict[str, float]) -> int:
        """Frames that went out as filler (no application audio queued) or
        were dropped unread, over the window."""
        return int(window["idle_frames"] + window["frames_overrun"])

    def counters(self) -> dict[str, Any]:
        return {"engine": dataclasses.asdict(self.engine.stats())}

    async def close(self) -> None:
        self.engine.close()


class PipelineCalls:
    """Calls of the asyncio pipeline, all on this process's event loop."""

    def __init__(self, app: bool) -> None:
        import asyncio_pipeline

        self.module = asyncio_pipeline
        self.app = app
        self.calls: list[Any] = []

    async def open(self, ids: list[int], sender: str, receiver: str) -> list[int]:
        def key(call: int, who: str) -> bytes:
            attribute = crypto(call, who)
            return bytes(attribute.key + attribute.salt)

        self.calls = [self.module.PipelineCall(key(i, sender), key(i, receiver), ssrc=0x10000 + i,
                                               app=self.app) for i in ids]
        return [await call.open() for call in self.calls]

    async def start(self, remotes: list[int]) -> None:
        await spread_over_ptime([functools.partial(call.start, ("127.0.0.1", port))
                                 for call, port in zip(self.calls, remotes, strict=True)])

    def applications(self, app: Application) -> list[Coroutine[Any, Any, None]]:
        return [app.run(call) for call in self.calls]

    def snapshot(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for call in self.calls:
            for name, value in vars(call.stats).items():
                total[name] = total.get(name, 0) + value
        return total

    def underruns(self, window: dict[str, float]) -> int:
        return int(window["underruns"])

    def counters(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        for call in self.calls:
            call.close()


class GeneratorCalls:
    """Far-end calls in the load generator, rust/engine/examples/load_far_end.rs:
    one thread and one socket pair send every call's SRTP packets (a
    millisecond's in one sendmmsg) and authenticate every packet the SUT
    sends back, with no decoding or jitter buffer. Of the far ends it takes
    the least of the machine the SUT shares with it."""

    def __init__(self, binary: Path) -> None:
        self.process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None and self.process.stdout is not None  # PIPEs
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        word, port = self.stdout.readline().split()
        assert word == "port", word
        self.port = int(port)
        # Under --realtime, one priority below this process, and so below
        # the SUT's threads: the far end stands in for the network and the
        # other side's machines, which take nothing of the SUT's cores. It
        # still runs whenever a core is free, and when it cannot keep up,
        # the step fails on how far behind it fell (far_end_behind_ms).
        if os.sched_getscheduler(0) == os.SCHED_FIFO:
            below = os.sched_param(os.sched_getparam(0).sched_priority - 1)
            os.sched_setscheduler(self.process.pid, os.SCHED_FIFO, below)
        self.ids: list[int] = []
        self.counts: dict[str, Any] = {}

    async def open(self, ids: list[int], sender: str, receiver: str) -> list[int]:
        """Every call shares the generator's port."""
        self.ids, self.sender, self.receiver = ids, sender, receiver
        return [self.port] * len(ids)

    async def start(self, remotes: list[int]) -> None:
        def hex_key(call: int, who: str) -> str:
            attribute = crypto(call, who)
            return bytes(attribute.key + attribute.salt).hex()

        for call, remote in zip(self.ids, remotes, strict=True):
            self.stdin.write(f"call {remote} {0x30000 + call} {hex_key(call, self.sender)} "
                             f"{hex_key(call, self.receiver)}\n")
        self.stdin.write(f"start {TONE_ULAW.hex()}\n")
        self.stdin.flush()

    def cpu_seconds(self) -> float:
        """The generator's user + system time so far."""
        return process_cpu_seconds(self.process.pid)

    async def close(self) -> None:
        """Stops the generator and keeps its counts (``counts``)."""
        self.stdin.write("stop\n")
        self.stdin.flush()
        self.counts = json.loads(self.stdout.readline())
        self.process.wait(timeout=10)


def build_example(name: str) -> Path | None:
    """Builds one of rust/engine/examples/ (a second when it is up to date)
    and returns the binary's path; None without cargo."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", HERE.parent / "rust" / "target"))
    try:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", name,
                        "-p", "rtpcore-engine", "--manifest-path", str(HERE.parent / "rust" / "Cargo.toml")],
                       check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return target / "release" / "examples" / name


def far_end_generator() -> Path | None:
    """The load generator, built; None without cargo."""
    return build_example("load_far_end")


def make_calls(impl: str, port_range: tuple[int, int]) -> EngineCalls | PipelineCalls:
    if impl in ("engine", "engine-batch", "engine-block", "engine-alone"):
        return EngineCalls(port_range, batch=impl == "engine-batch", block=impl == "engine-block")
    if impl == "engine-far-end":  # nobody reads or writes: no decode, no encode
        return EngineCalls(port_range, passthrough=True, shared_sockets=True)
    if impl in ("asyncio", "asyncio-alone"):
        return PipelineCalls(app=impl == "asyncio")
    raise ValueError(f"impl: one of {IMPLEMENTATIONS}, got {impl!r}")


def engine_available() -> bool:
    try:
        import rtpcore.media  # noqa: F401
    except ImportError:
        return False
    return True


# --- the process under test ----------------------------------------------------------


async def serve_sut(impl: str, calls: int, warmup: float, seconds: float) -> None:
    raise_fd_limit()
    media = make_calls(impl, SUT_PORTS)
    rss_before = rss_bytes()
    peer_ports = (await read_json_line())["ports"]
    ports = await media.open(list(range(calls)), "sut", "peer")
    await media.start(peer_ports)
    say({"ports": ports})
    # As a long-running media service does once started (`rtpcore gateway`
    # does the same): a full collection would otherwise walk every object
    # of start-up, numpy and the calls, stalling the application's thread
    # for milliseconds. Pauses that remain are reported.
    gc.collect()
    gc.freeze()
    pauses = GcPauses()
    app = Application()
    with_app = impl != "engine-alone"
    tasks = [asyncio.create_task(run) for run in media.applications(app)] if with_app else []
    await asyncio.sleep(warmup)
    snapshot_started = time.perf_counter()
    counters_before = media.snapshot()
    snapshot_ms = (time.perf_counter() - snapshot_started) * 1000
    # Reading every call's counters holds this thread (19 ms at 1,000 engine
    # calls), which is the tool's doing, not the application's: let the
    # application catch up on the frames that waited before its reads count,
    # and the far end on the packets it could not send meanwhile (the two
    # share the cores: 13-18 ms behind at 1,125-1,250 calls, caught up
    # within 100 ms).
    await asyncio.sleep(CATCH_UP_S)
    app.measuring = pauses.measuring = True
    cpu_before, started, load_before = cpu_seconds(), time.time_ns(), os.getloadavg()[0]
    await asyncio.sleep(seconds)
    ended, cpu_after, load_after = time.time_ns(), cpu_seconds(), os.getloadavg()[0]
    user, system = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
    app.measuring = pauses.measuring = False
    counters_after = media.snapshot()
    rss_after = rss_bytes()
    window = {name: counters_after[name] - counters_before[name] for name in counters_after}
    result = {
        "window": [started, ended],
        "cpu_s": user + system,
        "cpu_user_s": user,
        "cpu_system_s": system,
        "load_average": [load_before, load_after],
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        "rss_per_call_kb": (rss_after - rss_before) / calls / 1024,
        "app": vars(app.figures),
        "gc": pauses.figures(),
        "snapshot_ms": snapshot_ms,
        "underruns": media.underruns(window) if with_app else 0,
        "window_counters": window,
        **media.counters(),
    }
    # An application that died is a broken step, not a slow one: say so.
    failed = [task.exception() for task in tasks if task.done() and not task.cancelled()]
    if any(failed):
        result["app_error"] = repr(next(error for error in failed if error))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await media.close()
    say(result)


# --- the far end -------------------------------------------------------------------------


class Probe:
    """A far-end call made of a bare socket: sends the SUT the tone on its
    own 20 ms clock and records the kernel's arrival time of each SUT packet
    (SO_TIMESTAMPNS), so the figures do not depend on this process's
    scheduling."""

    def __init__(self, call: int) -> None:
        from rtpcore.errors import RtpcoreError
        from rtpcore.rtp import RTPPacket, classify

        self.refusal = RtpcoreError
        self.packet, self.classify = RTPPacket, classify
        self.send = crypto(call, "peer").session()
        self.receive = crypto(call, "sut").session()
        self.ssrc = 0x20000 + call
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.arrivals: list[tuple[int, int, bool]] = []  # kernel ns, sequence, carries the tone
        self.refused = 0
        self.send_failed = 0
        self.clock: asyncio.Task[None] | None = None

    def start(self, remote_port: int) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._drain)
        self.clock = loop.create_task(self._send(("127.0.0.1", remote_port)))

    def close(self) -> None:
        if self.clock is not None:
            self.clock.cancel()
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def _drain(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except BlockingIOError:
                return
            if self.classify(data) != "rtp":
                continue  # RTCP on the muxed port
            stamp = next(struct.unpack("qq", d) for level, kind, d in ancillary
                         if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS)
            try:
                packet = self.packet.parse(self.receive.unprotect(data))
            except self.refusal:
                self.refused += 1
                continue
            self.arrivals.append((stamp[0] * 1_000_000_000 + stamp[1], packet.sequence_number,
                                  packet.payload == TONE_ULAW))

    async def _send(self, remote: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            await asyncio.sleep(start + k * PTIME_S - loop.time())
            rtp = self.packet(payload_type=0, sequence_number=k & 0xFFFF,
                              timestamp=(k * SAMPLES) & 0xFFFFFFFF, ssrc=self.ssrc,
                              payload=TONE_ULAW)
            try:
                self.sock.sendto(self.send.protect(rtp.serialize()), remote)
            except BlockingIOError:
                self.send_failed += 1
            k += 1


def probe_indices(calls: int, probes: int) -> list[int]:
    """``probes`` call indices spread evenly over ``calls``."""
    count = min(calls, probes)
    return sorted({i * calls // count for i in range(count)})


def summarize_probes(probes: list[Probe], window: tuple[int, int]) -> dict[str, Any]:
    """Interval errors, missing packets and packets without the application's
    audio, over the packets that arrived inside ``window`` (ns)."""
    started, ended = window
    expected = int((ended - started) / 1e9 / PTIME_S)
    errors: list[float] = []
    missing = received = without_tone = 0
    for probe in probes:
        inside = [a for a in probe.arrivals if started <= a[0] < ended]
        received += len(inside)
        missing += max(0, expected - 1 - len(inside))  # one either side of the window edges
        without_tone += sum(not tone for _, _, tone in inside)
        for (t0, s0, _), (t1, s1, _) in zip(inside, inside[1:], strict=False):
            if (s1 - s0) & 0xFFFF == 1:
                errors.append(abs((t1 - t0) / 1e6 - PTIME_S * 1000))
    p = np.percentile(errors, [50, 99, 100]) if errors else [math.inf] * 3
    return {"probes": len(probes), "received": received, "missing": missing,
            "without_tone": without_tone, "refused": sum(p.refused for p in probes),
            "intervals": len(errors), "interval_error_p50_ms": float(p[0]),
            "interval_error_p99_ms": float(p[1]), "interval_error_max_ms": float(p[2])}


async def serve_peer(calls: int, probes: int, peer_impl: str, generator: Path) -> None:
    raise_fd_limit()
    probe_ids = probe_indices(calls, probes)
    bulk_ids = sorted(set(range(calls)) - set(probe_ids))
    bulk: EngineCalls | PipelineCalls | GeneratorCalls
    if peer_impl == "generator":
        bulk = GeneratorCalls(generator)
    else:
        bulk = make_calls("engine-far-end" if peer_impl == "engine" else "asyncio-alone", PEER_PORTS)
    ports = dict(zip(bulk_ids, await bulk.open(bulk_ids, "peer", "sut"), strict=True))
    sampled = [Probe(i) for i in probe_ids]
    ports.update((i, probe.port) for i, probe in zip(probe_ids, sampled, strict=True))
    say({"ports": [ports[i] for i in range(calls)]})
    sut_ports = (await read_json_line())["ports"]
    await bulk.start([sut_ports[i] for i in bulk_ids])
    for i, probe in zip(probe_ids, sampled, strict=True):
        probe.start(sut_ports[i])
    def peer_cpu() -> float:
        return sum(cpu_seconds()) + (bulk.cpu_seconds() if isinstance(bulk, GeneratorCalls) else 0)

    cpu_before, started = peer_cpu(), time.monotonic()
    window = (await read_json_line())["window"]
    report = summarize_probes(sampled, window)
    report["peer_cpu_percent"] = 100 * (peer_cpu() - cpu_before) / (time.monotonic() - started)
    report["peer_impl"] = peer_impl
    report["probe_send_failed"] = sum(p.send_failed for p in sampled)
    for probe in sampled:
        probe.close()
    await bulk.close()
    if isinstance(bulk, GeneratorCalls):
        behind, unsent = bulk.counts.pop("behind"), bulk.counts.pop("unsent")
        report["bulk"] = bulk.counts
        report["far_end_behind_ms"] = far_end_behind_ms(behind, unsent, window)
        report["far_end_behind_spells"] = far_end_behind_spells(behind, window)
    say(report)


def far_end_behind_ms(behind: list[list[int]], unsent: list[int], window: tuple[int, int]) -> float:
    """How late the generator sent the packets due in ``window`` (ns since
    the epoch), at worst, from its ``[due ns, lateness µs]`` pairs; packets
    it never sent count as late as they were when it stopped (``unsent``:
    the first of them, as a pair too)."""
    started, ended = window
    worst_us = max((late for due, late in behind if started <= due < ended), default=0)
    unsent_due, unsent_late_us = unsent
    if unsent_due < ended:  # what fell due from then on, the window's share included, never went
        stopped = unsent_due + unsent_late_us * 1000
        worst_us = max(worst_us, (stopped - max(unsent_due, started)) // 1000)
    return worst_us / 1000


def far_end_behind_spells(behind: list[list[int]], window: tuple[int, int],
                          over_ms: float = 5.0) -> list[list[float]]:
    """The spells in which the generator was more than ``over_ms`` behind,
    as ``[first due, last due (s from the window's start), worst lateness
    (ms)]``, for plotting against the SUT's own figures."""
    spells: list[list[float]] = []
    for due, late in behind:
        if late / 1000 <= over_ms:
            continue
        at = (due - window[0]) / 1e9
        if spells and at - spells[-1][1] <= 0.005:
            spells[-1][1], spells[-1][2] = at, max(spells[-1][2], late / 1000)
        else:
            spells.append([at, at, late / 1000])
    return spells


# --- the driver ------------------------------------------------------------------------


class _Child:
    """One role in its own process, talking JSON lines over stdin/stdout."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__)), *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=HERE)

    def send(self, obj: Any) -> None:
        assert self.process.stdin is not None  # invariant: stdin=PIPE
        self.process.stdin.write(json.dumps(obj) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> Any:
        import selectors

        assert self.process.stdout is not None  # invariant: stdout=PIPE
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"no answer from {self.process.args[2:5]} in {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args[2:5]} exited with {self.process.wait()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass
class StepOptions:
    warmup: float = 2.0
    seconds: float = 5.0
    probes: int = 32
    realtime: bool = False
    # the far end's bulk calls: "generator" (built on first use), or, where
    # cargo cannot build it, "engine" or "asyncio"
    peer_impl: str = "generator"
    generator: Path | None = None

    def far_end(self) -> list[str]:
        """The peer's arguments naming its bulk calls; builds the generator
        on first use, falling back to the engine or asyncio without cargo."""
        if self.peer_impl == "generator" and self.generator is None:
            self.generator = far_end_generator()
            if self.generator is None:
                self.peer_impl = "engine" if engine_available() else "asyncio"
        generator = ["--generator", str(self.generator)] if self.peer_impl == "generator" else []
        return ["--peer-impl", self.peer_impl, *generator]


def run_step(impl: str, calls: int, options: StepOptions) -> dict[str, Any]:
    """N calls of ``impl`` against a fresh peer; the SUT's and the probes'
    figures, and whether the step held."""
    opening = 30 + calls / 100  # seconds to open the calls, generous
    priority = ["--realtime"] if options.realtime else []
    peer = _Child("--role", "peer", "--calls", str(calls), "--probes", str(options.probes),
                  *options.far_end(), *priority)
    sut = _Child("--role", "sut", "--impl", impl, "--calls", str(calls),
                 "--warmup", str(options.warmup), "--seconds", str(options.seconds), *priority)
    try:
        sut.send(peer.receive(opening))
        peer.send(sut.receive(opening))
        result = sut.receive(options.warmup + options.seconds + opening)
        peer.send({"window": result["window"]})
        probes = peer.receive(opening)
    except (TimeoutError, RuntimeError) as error:
        # far past its limit a step can starve its own processes of any answer
        return {"impl": impl, "calls": calls, "held": False, "error": str(error)}
    finally:
        sut.stop()
        peer.stop()
    with_app = impl != "engine-alone"
    # The generator checks every bulk call's packets too (the probes only time a sample):
    # those that failed SRTP or never came count as late, over the whole step.
    bulk = probes.get("bulk", {})
    late = (result["app"]["late"] + result["underruns"] + probes["missing"]
            + (probes["without_tone"] if with_app else 0)
            + bulk.get("refused", 0) + bulk.get("missing", 0))
    seconds = (result["window"][1] - result["window"][0]) / 1e9
    figures = {
        "impl": impl, "calls": calls, "seconds": seconds,
        "interval_error_p99_ms": probes["interval_error_p99_ms"],
        "late_frames": late,
        "cpu_percent": 100 * result["cpu_s"] / seconds,
        "cpu_system_percent": 100 * result["cpu_system_s"] / seconds,
        "cpu_per_call_percent": 100 * result["cpu_s"] / seconds / calls,
        "rss_per_call_kb": result["rss_per_call_kb"],
        "app_frames": result["app"]["frames"],
        "sut": result, "probes": probes,
    }
    if "app_error" in result:
        figures["error"] = f"the application failed: {result['app_error']}"
    figures["held"] = ("app_error" not in result
                       and probes["interval_error_p99_ms"] < MAX_P99_ERROR_MS and late == 0
                       and probes.get("far_end_behind_ms", 0) < PTIME_S * 1000
                       and probes["received"] > 0 and bulk.get("silent_calls", 0) == 0
                       and (result["app"]["frames"] > 0 or not with_app))
    return figures


def ramp(impl: str, start: int, limit: int, options: StepOptions,
         report: Callable[[dict[str, Any]], None], bisections: int = 3) -> tuple[int, list[dict[str, Any]]]:
    """The largest N that held: doubling from ``start`` up to ``limit``, then
    bisecting between the last held and the first failed N."""
    steps: list[dict[str, Any]] = []

    def step(n: int) -> bool:
        figures = run_step(impl, n, options)
        steps.append(figures)
        report(figures)
        return bool(figures["held"])

    held, failed, n = 0, None, start
    while n <= limit:
        if step(n):
            held, n = n, n * 2
        else:
            failed = n
            break
    while held == 0 and failed is not None and failed > 10:  # even the start failed: go down
        n = failed // 2
        if step(n):
            held = n
        else:
            failed = n
    if held and failed is None and held < limit:  # doubling overshot the limit: try it
        if step(limit):
            held = limit
        else:
            failed = limit
    for _ in range(bisections):
        if failed is None or failed - held <= max(10, held // 20):
            break
        n = (held + failed) // 2
        if step(n):
            held = n
        else:
            failed = n
    return held, steps


def line(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"{figures['impl']:>13} N={figures['calls']:<6} FAILED {figures['error']}"
    return (f"{figures['impl']:>13} N={figures['calls']:<6} "
            f"{'held  ' if figures['held'] else 'FAILED'} "
            f"p99 interval error {figures['interval_error_p99_ms']:6.2f} ms, "
            f"late frames {figures['late_frames']:<6} "
            f"far end behind {figures['probes'].get('far_end_behind_ms', 0):5.1f} ms, "
            f"CPU {figures['cpu_percent']:5.1f}% (system {figures['cpu_system_percent']:4.1f}%; "
            f"{figures['cpu_per_call_percent']:.3f}% per call), "
            f"RSS {figures['rss_per_call_kb']:6.1f} KB per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated, from {', '.join(IMPLEMENTATIONS)} (default: all)")
    parser.add_argument("--calls", type=int, default=100, help="N for a single step")
    parser.add_argument("--ramp", action="store_true", help="search for the largest N held")
    parser.add_argument("--start", type=int, default=250, help="first N of the ramp")
    parser.add_argument("--max", type=int, default=8000, help="largest N the ramp tries")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds measured per step")
    parser.add_argument("--probes", type=int, default=32, help="far-end calls that time packets")
    parser.add_argument("--peer-impl", choices=["generator", "engine", "asyncio"],
                        help="the far end's bulk calls (default: the generator, "
                             "rust/engine/examples/load_far_end.rs, where cargo builds it)")
    parser.add_argument("--generator", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--realtime", action="store_true",
                        help="run the process under test and the far end under SCHED_FIFO "
                             "(root), so unrelated load on the machine does not preempt them")
    parser.add_argument("--json", metavar="FILE", help="write every step's figures here")
    parser.add_argument("--role", choices=["sut", "peer"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role and args.realtime:
        realtime()
    if args.role == "sut":
        asyncio.run(serve_sut(args.impl, args.calls, args.warmup, args.seconds))
        return
    if args.role == "peer":
        asyncio.run(serve_peer(args.calls, args.probes, args.peer_impl, args.generator))
        return

    options = StepOptions(args.warmup, args.seconds, args.probes, args.realtime)
    if args.peer_impl:
        options.peer_impl = args.peer_impl
    impls = args.impl.split(",")
    for impl in impls:
        if impl not in IMPLEMENTATIONS:
            parser.error(f"--impl: unknown implementation {impl!r}")
    options.far_end()  # build the generator before the first step
    print(f"far end: {options.peer_impl} streams + {options.probes} timing probes; "
          f"{args.warmup:g} s warm-up, {args.seconds:g} s measured per step"
          f"{'; both processes SCHED_FIFO' if args.realtime else ''}", flush=True)
    steps: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    for impl in impls:
        if args.ramp:
            best[impl], done = ramp(impl, args.start, args.max, options,
                                    lambda f: print(line(f), flush=True))
            steps += done
        else:
            figures = run_step(impl, args.calls, options)
            print(line(figures), flush=True)
            steps.append(figures)
    if args.ramp:
        print("\nlargest N held (p99 interval error < 2 ms, zero late frames):")
        for impl, n in best.items():
            at = [s for s in steps if s["impl"] == impl and s["calls"] == n]
            print(f"  {impl:>13}: {n:<5}" + (
                f" CPU {at[0]['cpu_per_call_percent']:.3f}% of a core per call, "
                f"RSS {at[0]['rss_per_call_kb']:.1f} KB per call" if at else ""))
        if best.get("asyncio"):
            for impl, n in best.items():
                if impl != "asyncio":
                    print(f"  {impl} / asyncio: {n / best['asyncio']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"best": best, "steps": steps}, indent=2))


if __name__ == "__main__":
    main()
