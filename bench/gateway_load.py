"""End-to-end concurrent calls through the gateway, over loopback.

Three kinds of process, so each one's CPU is its own:

- **the gateway** (``rtpcore gateway``, on uvloop when it is installed),
  the system under test, with a Media Streams agent URL and its ``/metrics``;
- **a stand-in agent** speaking Twilio's Media Streams protocol: every
  ``media`` message is sent back unchanged after a fixed think time (an echo
  with the latency of a model). It is written to cost as little as it can,
  since it runs on the cores the gateway is measured on: a plain asyncio
  protocol on uvloop (when installed) that does the WebSocket upgrade and
  framing itself, takes the payload out of each media message by position,
  and every 10 ms writes each connection's due echoes in one write;
  ``--agent-procs N`` runs N of them on one port (SO_REUSEPORT);
- **the callers** (this process): rtpcore's own user agent and media
  engine, one RTP stream per call, reading every call's frames through the
  engine's batched ``read_frames`` as μ-law (the jitter buffer's output
  passed through) once a 20 ms tick, as the gateway does, the level of
  every frame of a wake-up worked out in one numpy pass.

Each step of the ramp places N calls (at ``--cps``); every call sends a
continuous 440 Hz tone from its answer until it is hung up, ``--hold``
seconds after the last one was placed. What comes back is the tone,
echoed by the agent through the gateway: any silent or concealed 20 ms frame
between the first and the last echoed one is an *audible gap*; a call's
figure is its longest gap. Call setup is INVITE to 200 OK. A step passes
when every call connected, the gaps' p90 is under 50 ms and setup's p95
under 200 ms; the ramp stops at the first step that fails. CPU is read
from /proc for each process over the seconds all N calls run together
(user + system, every thread) and given per call-second; the gateway's
resident memory is its growth over its idle size, per call. At the end a
Markdown table of the steps is printed (``--json`` writes every figure).

On a machine other jobs share, their load decides the result as much as
the gateway does (a late wake-up of any of the three processes is a gap);
``--realtime`` (root) runs all three under SCHED_FIFO so that other jobs do
not preempt them. The kernel still keeps 5 % of each second for everything
else (``sched_rt_runtime_us``): when the rig itself needs nearly both
cores, that throttling shows up as gaps too.

    python bench/gateway_load.py                                # ramp 25..500
    python bench/gateway_load.py --steps 100,300,500 --hold 8   # prints the table
    python bench/gateway_load.py --steps 300,500 --realtime     # on a shared machine
    python bench/gateway_load.py --steps 150 --profile gw.prof  # where the gateway's CPU goes
    python bench/gateway_load.py agent --port 8765 --think 0.2  # the agent alone

Run it on a release build (``scripts/build-ext --release``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from rtpcore import g711
from rtpcore.gateway.server import READ_TICK_S  # the gateway's own pacing of read_frames

from websockets.utils import accept_key

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

RATE = 8000
FRAME_MS = 20
#: A received frame quieter than this (RMS) carries no echo: a gap.
QUIET_RMS = 500.0
GAP_P90_LIMIT_MS = 50.0
#: The square of each μ-law code's linear value: a frame's mean square from its bytes.
ULAW_SQUARES = g711.ulaw_decode(bytes(range(256))).astype(np.float64) ** 2
SETUP_P95_LIMIT_MS = 200.0


def realtime() -> None:
    """SCHED_FIFO for this process and the threads it starts from now on
    (root only)."""
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_block(size: int = 4000) -> tuple[int, int]:
    """A block of RTP ports no other run of this tool on the machine is likely
    to use at the same time (two runs sharing one range slow each other down
    with bind retries): a random one of the blocks between 20000 and 60000."""
    base = 20000 + random.randrange(40000 // size) * size
    return base, base + size - 1


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- the stand-in agent ----------------------------------------------------------------

#: How often the agent writes the echoes that are due: each connection gets
#: what fell due since the last tick in one write.
AGENT_TICK_S = 0.01


class EchoAgentConnection(asyncio.Protocol):
    """One Media Streams connection to the stand-in agent, kept as lean as
    the protocol allows so that the agent takes as little of the cores the
    gateway shares with it: the WebSocket upgrade, then frames read by hand
    (a client's frames are masked; ping answered, close echoed), each
    ``media`` message's payload found by position (the gateway writes a
    fixed shape) and queued as an echo; ``start`` is read as JSON for its
    streamSid, ``stop`` closes."""

    def __init__(self, echoes: deque[tuple[float, EchoAgentConnection, bytes]],
                 think: float) -> None:
        self.echoes = echoes
        self.think = think
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.echo_prefix = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's does not subclass asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        buffer, position = self.buffer, 0
        while len(buffer) - position >= 6:
            opcode, length, start = buffer[position] & 0x0F, buffer[position + 1] & 0x7F, \
                position + 2
            if length >= 126:
                size = 2 if length == 126 else 8
                if len(buffer) - start < size:
                    break
                length = int.from_bytes(buffer[start:start + size], "big")
                start += size
            end = start + 4 + length
            if end > len(buffer):
                break
            payload = apply_mask(bytes(buffer[start + 4:end]), bytes(buffer[start:start + 4]))
            position = end
            self._message(opcode, payload)
        del buffer[:position]

    def _upgrade(self) -> bool:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = bytes(self.buffer[:head_end]).decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = accept_key(key).encode()
        self._write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        del self.buffer[:head_end + 4]
        self.upgraded = True
        return True

    def _message(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if payload.startswith(b'{"event":"media"'):
                start = payload.index(b'"payload":"') + 11
                echo = self.echo_prefix + payload[start:payload.index(b'"', start)] + b'"}}'
                self.echoes.append((time.monotonic() + self.think, self, _server_frame(echo)))
            elif payload.startswith(b'{"event":"start"'):
                sid = json.loads(payload)["streamSid"]
                self.echo_prefix = (b'{"event":"media","streamSid":' + json.dumps(sid).encode()
                                    + b',"media":{"payload":"')
            elif payload.startswith(b'{"event":"stop"'):
                self._close()
        elif opcode == 0x8:  # close: echoed, then the TCP connection closed
            self._write(b"\x88" + bytes((len(payload),)) + payload)
            self._close()
        elif opcode == 0x9:  # ping
            self._write(b"\x8a" + bytes((len(payload),)) + payload)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _server_frame(payload: bytes) -> bytes:
    # A server's frames are not masked.
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


async def serve_echo_agent(port: int, think: float) -> None:
    """A Media Streams server that echoes each media message after ``think`` s.

    Echoes are due in the order the messages came (the think time is the
    same for all), so one queue holds them all; every ``AGENT_TICK_S`` the
    due ones are written, one write per connection."""
    loop = asyncio.get_running_loop()
    echoes: deque[tuple[float, EchoAgentConnection, bytes]] = deque()

    def tick() -> None:
        now = time.monotonic()
        due: dict[EchoAgentConnection, list[bytes]] = {}
        while echoes and echoes[0][0] <= now:
            _, connection, frame = echoes.popleft()
            due.setdefault(connection, []).append(frame)
        for connection, frames in due.items():
            connection._write(b"".join(frames))
        loop.call_at(loop.time() + AGENT_TICK_S, tick)

    server = await loop.create_server(lambda: EchoAgentConnection(echoes, think), "127.0.0.1",
                                      port, reuse_port=True)
    gc.freeze()  # as the gateway does: full collections do not walk the modules
    tick()
    async with server:
        await asyncio.Future()


def run_agent(port: int, think: float) -> None:
    """The agent on uvloop when it is installed (its C loop costs less CPU)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_echo_agent(port, think))
    else:
        uvloop.run(serve_echo_agent(port, think))


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Rig:
    """The gateway and agent processes, and where they listen."""

    gateway: subprocess.Popen[bytes]
    agents: list[subprocess.Popen[bytes]]
    sip_port: int
    http_port: int
    logs: Path


@contextlib.asynccontextmanager
async def rig(think: float, agent_procs: int = 1, workers: int | None = None,
              log_dir: Path | None = None, profile: str | None = None,
              gateway_loop: str = "auto", fifo: bool = False) -> AsyncIterator[Rig]:
    """Start the agent(s) and the gateway (on ``gateway_loop``; under
    cProfile, writing ``profile``, when given; SCHED_FIFO with ``fifo``);
    stop them on exit."""
    directory = Path(tempfile.mkdtemp(prefix="gateway-load-"))
    agent_port = free_port(socket.SOCK_STREAM)
    sip_port = free_port()
    http_port = free_port(socket.SOCK_STREAM)
    media_ports = port_block()
    config = directory / "gateway.toml"
    config.write_text(textwrap.dedent(f"""
        [sip]
        host = "127.0.0.1"
        udp_port = {sip_port}
        rate = "off"
        [media]
        host = "127.0.0.1"
        port_min = {media_ports[0]}
        port_max = {media_ports[1]}
        codecs = ["PCMU"]
        srtp = "off"
        {f"workers = {workers}" if workers else ""}
        [agent]
        url = "ws://127.0.0.1:{agent_port}"
        protocol = "twilio"
        [http]
        listen = "127.0.0.1:{http_port}"
        [logging]
        level = "warning"
    """))
    logs = log_dir or directory
    agents = [subprocess.Popen([sys.executable, __file__, "agent", "--port", str(agent_port),
                                "--think", str(think)],
                               stderr=open(logs / f"agent{i}.log", "wb"),  # noqa: SIM115
                               preexec_fn=realtime if fifo else None)
              for i in range(agent_procs)]
    profiling = ["-m", "cProfile", "-o", profile] if profile else []
    gateway = subprocess.Popen([sys.executable, *profiling, "-m", "rtpcore.cli", "gateway",
                                "--config", str(config), "--loop", gateway_loop],
                               stderr=subprocess.PIPE, preexec_fn=realtime if fifo else None)
    try:
        assert gateway.stderr is not None  # invariant: stderr=PIPE
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(gateway.stderr.readline)
            if not line:
                raise RuntimeError("the gateway exited during start-up")
            if b"HTTP (REST subset, /metrics)" in line:
                break
        # Keep reading its stderr (into a file) so it never blocks on a full pipe.
        log = open(logs / "gateway.log", "wb")  # noqa: SIM115
        stderr = gateway.stderr
        drain = asyncio.get_running_loop().run_in_executor(
            None, lambda: [log.write(chunk) for chunk in iter(stderr.readline, b"")])
        await asyncio.sleep(0.5)  # the agents listening
        yield Rig(gateway, agents, sip_port, http_port, logs)
    finally:
        for process in (gateway, *agents):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (gateway, *agents):
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
        with contextlib.suppress(NameError):
            await drain
            log.close()


# --- the callers ------------------------------------------------------------------------


@dataclass
class CallResult:
    setup_ms: float | None = None  # None: not answered
    status_code: int | None = None
    longest_gap_ms: float = 0.0
    echoed_ms: float = 0.0
    silent_ms: float = 0.0
    concealed_ms: float = 0.0
    gaps_ms: list[float] = field(default_factory=list)


@dataclass
class StepResult:
    calls: int
    connected: int
    failed: int
    setup_p50_ms: float
    setup_p95_ms: float
    # Per call, its longest audible gap; the step's p50/p90/max over the calls.
    longest_gap_p50_ms: float
    longest_gap_p90_ms: float
    longest_gap_max_ms: float
    every_gap_p90_ms: float  # p90 over every gap of every call
    gap_percent: float  # share of the echoed time that was gap
    silent_ms_per_call: float  # gaps the gateway sent as silence (agent audio ran dry)
    concealed_ms_per_call: float  # gaps the caller concealed (RTP late or lost)
    echo_ms_mean: float
    gateway_cpu_cores: float
    gateway_cpu_ms_per_call_s: float
    gateway_rss_mb: float
    gateway_rss_kb_per_call: float
    agent_cpu_cores: float
    agent_cpu_ms_per_call_s: float
    caller_cpu_cores: float
    caller_cpu_ms_per_call_s: float
    # The gateway's full garbage collections while the step's calls were
    # placed and held (each one stops every call's audio at once).
    gateway_full_gcs: int
    gateway_full_gc_ms: float  # their total pause
    load_average: float  # the machine's 1-minute load when the step ended (shared hosts)
    passed: bool
    failures: dict[str, int] = field(default_factory=dict)


class _Listening:
    """Per stream, what each received frame was: the echo, silence the gateway
    sent (its queue of agent audio ran dry), or a frame the caller's jitter
    buffer concealed (the gateway's RTP came late or not at all)."""

    ECHO, SILENT, CONCEALED = 0, 1, 2
    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames = bytearray()

    def add(self, kind: str, level: float) -> None:
        # Time-stretched frames ("accelerated", "expanded", "merged") are real
        # audio; concealment and comfort noise stand in for audio that is missing.
        if kind in ("concealed", "comfort_noise"):
            self.frames.append(self.CONCEALED)
        else:
            self.frames.append(self.ECHO if level >= QUIET_RMS else self.SILENT)

    def measure(self, result: CallResult) -> None:
        """Gaps between the first and the last echoed frame, into ``result``."""
        frames = bytes(self.frames)
        first, last = frames.find(self.ECHO), frames.rfind(self.ECHO)
        if first < 0:
            result.longest_gap_ms = float("inf")
            return
        span = frames[first:last + 1]
        runs = [float(len(run) * FRAME_MS)
                for run in span.replace(b"\x02", b"\x01").split(b"\x00") if run]
        result.gaps_ms = runs
        result.longest_gap_ms = max(runs, default=0)
        result.echoed_ms = len(span) * FRAME_MS
        result.silent_ms = span.count(self.SILENT) * FRAME_MS
        result.concealed_ms = span.count(self.CONCEALED) * FRAME_MS


async def run_step(rig_: Rig, calls: int, hold: float, cps: float, think: float) -> StepResult:
    """``calls`` concurrent calls through the gateway, all up together for ``hold`` s."""
    from rtpcore.aio.sip import SIPEndpoint
    from rtpcore.media import Engine, MediaConfig, PayloadFrame
    from rtpcore.sip.ua import CallAnswered, CallEnded, UserAgent

    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[Any]] = {}
    ended: dict[str, asyncio.Future[Any]] = {}

    def on_event(event: object) -> None:
        if isinstance(event, (CallAnswered, CallEnded)):
            future = waiting.pop(event.call.call_id, None)
            if future is not None and not future.done():
                future.set_result(event)
        if isinstance(event, CallEnded):
            future = ended.get(event.call.call_id)
            if future is not None and not future.done():
                future.set_result(event)

    engine = Engine(port_range=port_block())
    endpoint = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, user="load"), on_event=on_event)
    listening: dict[Any, _Listening] = {}
    results = [CallResult() for _ in range(calls)]
    # Every call talks from its answer until the hang-up, so that all of them
    # overlap for ``hold`` s however long placing them took.
    talk = calls / cps + hold + think + 1.0
    tone = g711.ulaw_encode(
        (8000 * np.sin(2 * np.pi * 440 * np.arange(int(RATE * talk)) / RATE)).astype(np.int16)
        .tobytes())
    reading = True

    async def read_all() -> None:
        # Every call's frames of a wake-up at once: their levels in one numpy
        # pass over the μ-law bytes (the engine passes the received audio
        # through as μ-law: its jitter buffer's output, re-encoded); and a
        # wake-up a tick at most, as the gateway takes its own (the callers
        # share the cores it is measured on).
        while reading:
            batch = await engine.read_frames(tick=READ_TICK_S)
            if not batch:  # the engine has closed
                return
            payloads = [cast(PayloadFrame, frame).payload for _, frame in batch]
            squares = ULAW_SQUARES[np.frombuffer(b"".join(payloads), dtype=np.uint8)]
            lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            levels = np.sqrt(np.add.reduceat(squares, starts) / lengths).tolist()
            for (stream, frame), level in zip(batch, levels):
                state = listening.get(stream)
                if state is not None:
                    state.add(frame.kind, level)

    async def one_call(index: int) -> tuple[int, Any, Any] | None:
        stream = engine.allocate(batch=True)
        started = loop.time()
        call = endpoint.invite(f"sip:+1555{index:07d}@127.0.0.1:{rig_.sip_port}",
                               ("127.0.0.1", rig_.sip_port), "127.0.0.1", stream.local_port,
                               from_user="+15550100")
        future = waiting[call.call_id] = loop.create_future()
        ended[call.call_id] = loop.create_future()
        try:
            event = await asyncio.wait_for(future, 10)
        except TimeoutError:
            stream.close()
            results[index].status_code = 408
            return None
        if isinstance(event, CallEnded):
            stream.close()
            results[index].status_code = event.status_code
            return None
        results[index].setup_ms = (loop.time() - started) * 1000
        results[index].status_code = 200
        stream.start(MediaConfig.from_negotiated(call.media, sample_rate=RATE, passthrough=True))
        listening[stream] = _Listening()
        stream.write_nowait(tone)
        return index, call, stream

    reader = loop.create_task(read_all())
    rss_idle = rss_bytes(rig_.gateway.pid)
    gcs_start = await gateway_full_gcs(rig_)
    placed: list[asyncio.Task[tuple[int, Any, Any] | None]] = []
    for index in range(calls):  # paced at --cps, not all at once
        placed.append(loop.create_task(one_call(index)))
        await asyncio.sleep(1 / cps)
    live = [c for c in await asyncio.gather(*placed) if c is not None]
    # Every call is up: measure while all of them run.
    window_start = time.monotonic()
    cpu_start = {p.pid: cpu_seconds(p.pid) for p in (rig_.gateway, *rig_.agents)}
    caller_start = time.process_time()
    await asyncio.sleep(hold)
    window = time.monotonic() - window_start
    cpu_end = {p.pid: cpu_seconds(p.pid) for p in (rig_.gateway, *rig_.agents)}
    caller_end = time.process_time()
    rss_busy = rss_bytes(rig_.gateway.pid)
    await asyncio.sleep(think + 0.5)  # the last echoes
    gcs_end = await gateway_full_gcs(rig_)
    for _, call, _ in live:
        endpoint.hangup(call)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ended[c.call_id] for _, c, _ in live)), 15)
    reading = False
    for index, _, stream in live:
        listening[stream].measure(results[index])
        stream.close()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await endpoint.close()
    engine.close()

    connected = [r for r in results if r.setup_ms is not None]
    gaps = [r.longest_gap_ms for r in connected]
    setups = [r.setup_ms for r in connected if r.setup_ms is not None]
    failures: dict[str, int] = {}
    for r in results:
        if r.setup_ms is None:
            failures[str(r.status_code)] = failures.get(str(r.status_code), 0) + 1
    gateway_cpu = (cpu_end[rig_.gateway.pid] - cpu_start[rig_.gateway.pid]) / window
    agent_cpu = sum(cpu_end[a.pid] - cpu_start[a.pid] for a in rig_.agents) / window
    caller_cpu = (caller_end - caller_start) / window
    per_call_s = 1000 / max(1, len(connected))  # cores -> ms of CPU per call-second
    gap_p90, setup_p95 = percentile(gaps, 90), percentile(setups, 95)
    return StepResult(
        calls=calls, connected=len(connected), failed=calls - len(connected),
        setup_p50_ms=round(percentile(setups, 50), 1), setup_p95_ms=round(setup_p95, 1),
        longest_gap_p50_ms=percentile(gaps, 50), longest_gap_p90_ms=gap_p90,
        longest_gap_max_ms=max(gaps) if gaps else float("nan"),
        every_gap_p90_ms=percentile([g for r in connected for g in r.gaps_ms], 90),
        gap_percent=round(100 * sum(sum(r.gaps_ms) for r in connected)
                          / max(1.0, sum(r.echoed_ms for r in connected)), 2),
        silent_ms_per_call=round(float(np.mean([r.silent_ms for r in connected])), 1)
        if connected else 0.0,
        concealed_ms_per_call=round(float(np.mean([r.concealed_ms for r in connected])), 1)
        if connected else 0.0,
        echo_ms_mean=round(float(np.mean([r.echoed_ms for r in connected])), 0)
        if connected else 0.0,
        gateway_cpu_cores=round(gateway_cpu, 3),
        gateway_cpu_ms_per_call_s=round(gateway_cpu * per_call_s, 3),
        gateway_rss_mb=round(rss_busy / 2**20, 1),
        gateway_rss_kb_per_call=round((rss_busy - rss_idle) / 1024 / max(1, len(connected)), 1),
        agent_cpu_cores=round(agent_cpu, 3),
        agent_cpu_ms_per_call_s=round(agent_cpu * per_call_s, 3),
        caller_cpu_cores=round(caller_cpu, 3),
        caller_cpu_ms_per_call_s=round(caller_cpu * per_call_s, 3),
        gateway_full_gcs=int(gcs_end[0] - gcs_start[0]),
        gateway_full_gc_ms=round((gcs_end[1] - gcs_start[1]) * 1000, 1),
        load_average=round(os.getloadavg()[0], 2),
        passed=(len(connected) == calls and gap_p90 < GAP_P90_LIMIT_MS
                and setup_p95 < SETUP_P95_LIMIT_MS),
        failures=failures)


async def gateway_metrics(rig_: Rig) -> list[Any]:
    """The samples of the gateway's /metrics now."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{rig_.http_port}/metrics") as response:
        text = await response.text()
    return [sample for family in text_string_to_metric_families(text)
            for sample in family.samples]


async def gateway_calls(rig_: Rig) -> float:
    """Calls the gateway has connected now, from its /metrics."""
    return sum(sample.value for sample in await gateway_metrics(rig_)
               if sample.name == "rtpcore_gateway_calls_active")


async def gateway_full_gcs(rig_: Rig) -> tuple[float, float]:
    """How many full garbage collections the gateway has made so far, and
    their total pause in seconds."""
    totals = {sample.name: sample.value for sample in await gateway_metrics(rig_)
              if sample.name.startswith("rtpcore_gateway_gc_pause_seconds_")
              and sample.labels.get("generation") == "2"}
    return (totals["rtpcore_gateway_gc_pause_seconds_count"],
            totals["rtpcore_gateway_gc_pause_seconds_sum"])


async def wait_idle(rig_: Rig, timeout: float = 60.0) -> None:
    """Until the gateway has no call left (a step that overloaded it leaves a
    backlog that would count against the next one), then 2 s more."""
    deadline = time.monotonic() + timeout
    while await gateway_calls(rig_) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(1)
    await asyncio.sleep(2)


async def ramp(steps: list[int], hold: float, cps: float, think: float, agent_procs: int,
               workers: int | None, profile: str | None = None,
               keep_going: bool = False, gateway_loop: str = "auto",
               fifo: bool = False) -> dict[str, Any]:
    results: list[StepResult] = []
    async with rig(think, agent_procs, workers, profile=profile,
                   gateway_loop=gateway_loop, fifo=fifo) as rig_:
        # The gateway's first calls pay for imports and first connections: not measured.
        await run_step(rig_, calls=2, hold=1.0, cps=cps, think=think)
        for calls in steps:
            result = await run_step(rig_, calls, hold, cps, think)
            results.append(result)
            print(_row(result), file=sys.stderr, flush=True)
            if not (result.passed or keep_going):
                break
            await wait_idle(rig_)
    held = [r.calls for r in results if r.passed]
    return {"max_calls_held": max(held) if held else 0, "hold_s": hold, "cps": cps,
            "logs": str(rig_.logs),
            "think_s": think, "agent_procs": agent_procs, "cores": os.cpu_count(),
            "gateway_loop": gateway_loop, "realtime": fifo,
            "steps": [asdict(r) for r in results]}


def _row(r: StepResult) -> str:
    return (f"{r.calls:5d} calls: {r.connected} up, setup p50/p95 {r.setup_p50_ms:.0f}/"
            f"{r.setup_p95_ms:.0f} ms, longest gap p50/p90/max {r.longest_gap_p50_ms:.0f}/"
            f"{r.longest_gap_p90_ms:.0f}/{r.longest_gap_max_ms:.0f} ms (every gap p90 "
            f"{r.every_gap_p90_ms:.0f} ms, {r.gap_percent:.1f} % of the echo; silent "
            f"{r.silent_ms_per_call:.0f} / concealed {r.concealed_ms_per_call:.0f} ms per call), "
            f"gateway {r.gateway_cpu_cores:.2f} cores "
            f"({r.gateway_cpu_ms_per_call_s:.2f} ms CPU per call-second), "
            f"{r.gateway_rss_mb:.0f} MB ({r.gateway_rss_kb_per_call:.0f} KB/call), agent "
            f"{r.agent_cpu_cores:.2f} cores, callers {r.caller_cpu_cores:.2f} cores, "
            f"gateway full GCs {r.gateway_full_gcs} ({r.gateway_full_gc_ms:.0f} ms in all), "
            f"load average {r.load_average:.1f}"
            f"{'' if r.passed else '  FAILED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    a = sub.add_parser("agent", help="run the stand-in echo agent alone")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--think", type=float, default=0.2)
    parser.add_argument("--steps", default="25,50,100,200,300,400,500",
                        help="concurrent calls per step (comma-separated)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds all the calls of a step run together")
    parser.add_argument("--cps", type=float, default=50.0, help="calls placed per second")
    parser.add_argument("--think", type=float, default=0.2, help="the agent's think time, s")
    parser.add_argument("--agent-procs", type=int, default=1, help="echo agent processes")
    parser.add_argument("--workers", type=int, help="the gateway's media worker threads")
    parser.add_argument("--gateway-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="the gateway's event loop (rtpcore gateway --loop)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON here")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every step even after one failed (CPU and memory figures)")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the gateway under cProfile and write its stats here")
    parser.add_argument("--realtime", action="store_true",
                        help="run the gateway, the agent and the callers under SCHED_FIFO "
                        "(root): on a shared machine, other jobs then do not preempt them")
    args = parser.parse_args(argv)
    if args.command == "agent":
        run_agent(args.port, args.think)
        return 0
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    if args.realtime:
        realtime()  # the callers' engine threads, started later, inherit it
    report = asyncio.run(ramp(steps, args.hold, args.cps, args.think, args.agent_procs,
                              args.workers, args.profile, args.keep_going,
                              args.gateway_loop, args.realtime))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(table(report))
    return 0


def table(report: dict[str, Any]) -> str:
    """The ramp as a Markdown table (the README's), and the largest step held."""
    lines = ["| calls | up | setup p50 / p95 | longest gap p50 / p90 | CPU, ms per call-second: "
             "gateway / agent / callers | gateway RSS (per call) | load |",
             "|---|---|---|---|---|---|---|"]
    for r in report["steps"]:
        setup_ok = "" if r["setup_p95_ms"] < SETUP_P95_LIMIT_MS else " ✗"
        gap_ok = "" if r["longest_gap_p90_ms"] < GAP_P90_LIMIT_MS else " ✗"
        up_ok = "" if r["connected"] == r["calls"] else " ✗"
        calls = f"**{r['calls']}**" if r["calls"] == report["max_calls_held"] else r["calls"]
        lines.append(
            f"| {calls} | {r['connected']}{up_ok} | {r['setup_p50_ms']:.0f} / "
            f"{r['setup_p95_ms']:.0f} ms{setup_ok} | {r['longest_gap_p50_ms']:.0f} / "
            f"{r['longest_gap_p90_ms']:.0f} ms{gap_ok} | {r['gateway_cpu_ms_per_call_s']:.2f} / "
            f"{r['agent_cpu_ms_per_call_s']:.2f} / {r['caller_cpu_ms_per_call_s']:.2f} "
            f"({r['gateway_cpu_cores']:.2f} / {r['agent_cpu_cores']:.2f} / "
            f"{r['caller_cpu_cores']:.2f} cores) | {r['gateway_rss_mb']:.0f} MB "
            f"(+{r['gateway_rss_kb_per_call']:.0f} KB) | {r['load_average']:.1f} |")
    lines.append(f"\nheld: {report['max_calls_held']} concurrent calls "
                 f"(gateway loop: {report['gateway_loop']}"
                 f"{', SCHED_FIFO' if report['realtime'] else ''}; logs in {report['logs']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
