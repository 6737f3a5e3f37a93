"""The gateway end to end: real SIP calls from rtpcore's own user agent with
real media (the engine) to in-process, Twilio Media Streams and raw PCM
agents, the default agent, recording, reports, transfer, allowlist,
registration, outbound calls and graceful shutdown."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import socket
import textwrap
import wave
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_helpers import Caller, rms, running, wait_until
from websockets.asyncio.server import ServerConnection, serve

from rtpcore import g711
from rtpcore.errors import CallFailed
from rtpcore.gateway import Call, Gateway, GatewayCall
from rtpcore.gateway.bridge import CallReport
from rtpcore.gateway.config import (
    AgentSettings,
    GatewayConfig,
    MediaSettings,
    RecordingSettings,
    SIPSettings,
    TrunkSettings,
)
from rtpcore.gateway.default_agent import prompt
from rtpcore.gateway.demo import place_demo_call
from rtpcore.sip import Response, parse_message
from rtpcore.sip.auth import DigestServer

pytestmark = pytest.mark.timeout(60)


def tone(ms: int, rate: int, freq: float = 440.0, dbfs: float = -12.0) -> np.ndarray:
    n = rate * ms // 1000
    return np.round(32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * np.arange(n) / rate)
                    ).astype(np.int16)


def config(tmp_path: Path | None = None, **overrides: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "sip": SIPSettings(host="127.0.0.1", udp_port=0),
        "media": MediaSettings(host="127.0.0.1", port_min=43000, port_max=43999,
                               sample_rate=16000),
    }
    if tmp_path is not None:
        settings["recording"] = RecordingSettings(dir=str(tmp_path / "rec"))
    settings.update(overrides)
    return GatewayConfig(**settings)


class Reports:
    """A gateway listener collecting what it is told."""

    def __init__(self) -> None:
        self.started: list[GatewayCall] = []
        self.ended: asyncio.Queue[CallReport] = asyncio.Queue()
        self.failed: list[tuple[int, str]] = []

    def call_started(self, call: GatewayCall) -> None:
        self.started.append(call)

    def call_ended(self, call: GatewayCall, report: CallReport) -> None:
        self.ended.put_nowait(report)

    def call_failed(self, call: GatewayCall, status_code: int, reason: str) -> None:
        self.failed.append((status_code, reason))


async def test_in_process_agent_end_to_end(tmp_path: Path) -> None:
    """Audio both ways, DTMF by RFC 4733 and SIP INFO, hang-up by the agent,
    the report and the stereo recording."""
    got: dict[str, Any] = {"frames": 0, "dtmf": []}
    greeting = tone(600, 16000)

    async def agent(call: Call) -> None:
        got["call"] = (call.from_number, call.to_number, call.sample_rate, call.direction)
        call.play(greeting)
        call.mark("greeting")

        async def listen() -> None:
            async for frame in call.audio:
                got["frames"] += 1
                got.setdefault("loud", 0)
                got["loud"] += rms(frame.pcm) > 1000

        listener = asyncio.create_task(listen())
        async for event in call.events:
            got.setdefault("events", []).append(event)
            if getattr(event, "digit", None):
                got["dtmf"].append((event.digit, event.source))
                if len(got["dtmf"]) == 2:
                    break
        listener.cancel()
        call.send_dtmf("1#", duration_ms=100)  # RFC 4733 to the caller
        await asyncio.sleep(0.6)
        await call.hangup()

    reports = Reports()
    gw = Gateway(config(tmp_path), agent=agent)
    gw.add_listener(reports)
    async with running(gw):
        caller = await Caller.start(codecs=("G722",), srtp="required")
        try:
            await caller.dial(gw.address(), sample_rate=16000)
            assert len(gw.calls) == 1
            await caller.stream.write(tone(800, 16000, 300))
            await wait_until(lambda: got.get("loud", 0) > 20)
            caller.stream.send_dtmf("5", duration_ms=100)
            await asyncio.sleep(0.5)
            caller.endpoint.send_dtmf(caller.call, "9")  # SIP INFO
            ended = await caller.wait_ended()
            report = await asyncio.wait_for(reports.ended.get(), 5)
        finally:
            await caller.close()
    assert ended.reason == "remote hangup"
    assert got["call"] == ("+15550100", "agent", 16000, "inbound")
    assert got["dtmf"] == [("5", "rfc4733"), ("9", "info")]
    from rtpcore.media import DTMFReceived
    assert [e.digit for e in caller.media_events if isinstance(e, DTMFReceived)] == ["1", "#"]
    assert any(getattr(e, "name", None) == "greeting" and not e.cleared for e in got["events"])
    heard = caller.heard_pcm()
    assert rms(heard[:16000]) > 1000  # the greeting tone came through
    assert report.codec == "G722" and report.srtp
    assert report.direction == "inbound" and report.hangup_cause == "local hangup"
    assert report.packets_received > 30 and report.packets_sent > 30
    assert report.setup_time_ms is not None and 0 <= report.setup_time_ms < 1000
    assert report.loss_percent == 0.0 and report.duration_s > 0.5
    assert report.mos is None or 1.0 <= report.mos <= 4.5
    assert report.to_dict()["call_sid"].startswith("CA") and len(report.call_sid) == 34
    assert report.recording is not None
    with wave.open(report.recording) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 16000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert rms(stereo[:, 0]) > 100 and rms(stereo[:, 1]) > 100  # caller left, agent right
    assert not gw.calls


async def test_default_agent_over_sip(tmp_path: Path) -> None:
    """The demo's call: greeting heard, speech echoed back, keys read back,
    goodbye and hang-up on '#', over SRTP + G.722."""
    gw = Gateway(config(tmp_path))
    async with running(gw):
        speech = np.concatenate([tone(700, 16000, 250), tone(700, 16000, 500)])
        result = await place_demo_call(gw, speech, tmp_path)
    assert result.ended_by == "remote hangup"
    assert result.report.codec == "G722" and result.report.srtp
    answer = result.answer
    greeting = prompt("greeting", 16000)
    assert rms(answer[:len(greeting)]) > 500  # the greeting came first
    assert list(result.found) == ["greeting", "speech", "key 4", "key 2", "goodbye"]
    # All heard, in that order (similarity > 0.5: a loaded machine's jitter
    # buffer stretches time, which lowers the correlation of long pieces).
    assert result.complete, result.found
    assert result.echo_at_s >= len(greeting) / 16000 - 0.1  # after the greeting
    assert (tmp_path / "demo-answer.wav").exists()


# --- Twilio Media Streams ----------------------------------------------------------

class TwilioAgent:
    """A Media Streams server standing in for an agent framework."""

    def __init__(self, script: Any) -> None:
        self.received: list[dict[str, Any]] = []
        self.script = script
        self.closed = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        try:
            await self.script(self, ws)
        finally:
            self.closed.set()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["event"] == name]

    async def pump(self, ws: ServerConnection, until: Any = None) -> None:
        async for message in ws:
            self.received.append(json.loads(message))
            if until is not None and until(self.received[-1]):
                return


def media(stream_sid: str, pcm: np.ndarray) -> str:
    return json.dumps({"event": "media", "streamSid": stream_sid,
                       "media": {"payload": base64.b64encode(g711.ulaw_encode(pcm)).decode()}})


@pytest.mark.parametrize("codec", ["PCMU", "G722"])
async def test_twilio_agent_audio_marks_dtmf_stop(codec: str) -> None:
    """PCMU calls pass the caller's μ-law through to the agent and back
    (no decoding); other codecs go through PCM: the agent sees the same."""
    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        await agent.pump(ws, until=lambda m: m["event"] == "start")
        sid = agent.received[-1]["streamSid"]
        # 0.6 s of tone, mark a, 0.4 s more, mark b: echoed in order, after playing.
        await ws.send(media(sid, tone(600, 8000)))
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "a"}}))
        await ws.send(media(sid, tone(400, 8000, 600)))
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "b"}}))
        agent.sent_at = asyncio.get_running_loop().time()
        await agent.pump(ws)

    agent = TwilioAgent(script)
    async with serve(agent.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream"
        gw = Gateway(config(), agent=url)
        async with running(gw):
            caller = await Caller.start(codecs=(codec,))
            try:
                await caller.dial(gw.address())
                (call,) = gw.calls.values()
                assert call.stream is not None and call.stream.config is not None
                assert call.stream.config.passthrough == (codec == "PCMU")
                await caller.stream.write(tone(400, caller.stream.config.sample_rate, 300))
                await wait_until(lambda: len(agent.events("mark")) == 2)
                marks_at = asyncio.get_running_loop().time()
                caller.stream.send_dtmf("7", duration_ms=100)
                await wait_until(lambda: agent.events("dtmf"))
                caller.endpoint.hangup(caller.call)
                await caller.wait_ended()
                await asyncio.wait_for(agent.closed.wait(), 5)
            finally:
                await caller.close()
    events = [m["event"] for m in agent.received]
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    start = agent.received[1]
    assert start["start"]["customParameters"] == {"from_number": "+15550100",
                                                  "to_number": "agent"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                             "channels": 1}
    assert start["start"]["callSid"].startswith("CA") and start["streamSid"].startswith("MZ")
    assert [m["mark"]["name"] for m in agent.events("mark")] == ["a", "b"]
    assert marks_at - agent.sent_at >= 0.9  # not before the second of audio had played
    assert agent.events("dtmf")[0]["dtmf"] == {"track": "inbound_track", "digit": "7"}
    chunks = agent.events("media")
    assert all(len(base64.b64decode(c["media"]["payload"])) == 160 for c in chunks)
    caller_audio = g711.ulaw_decode(b"".join(base64.b64decode(c["media"]["payload"])
                                             for c in chunks))
    assert rms(caller_audio) > 500  # the caller's tone reached the agent
    heard = caller.heard_pcm()
    assert rms(heard) > 500  # and the agent's tone reached the caller
    sequence = [int(m["sequenceNumber"]) for m in agent.received[1:]]
    assert sequence == list(range(1, len(sequence) + 1))


def test_twilio_agent_end_to_end_on_uvloop() -> None:
    """The same call on uvloop, which ``rtpcore gateway`` runs on by default
    when it is installed (its transports are not asyncio's classes)."""
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(test_twilio_agent_audio_marks_dtmf_stop("PCMU"))


async def test_twilio_clear_drops_queued_audio_within_a_frame() -> None:
    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        await agent.pump(ws, until=lambda m: m["event"] == "start")
        sid = agent.received[-1]["streamSid"]
        await ws.send(media(sid, tone(10000, 8000)))  # 10 s queued
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "end"}}))
        await asyncio.sleep(1.0)
        agent.cleared_at = asyncio.get_running_loop().time()
        await ws.send(json.dumps({"event": "clear", "streamSid": sid}))
        await agent.pump(ws)

    agent = TwilioAgent(script)
    async with serve(agent.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        gw = Gateway(config(), agent=url)
        async with running(gw):
            caller = await Caller.start()
            try:
                await caller.dial(gw.address())
                await wait_until(lambda: agent.events("mark"), timeout=5)
                mark_at = asyncio.get_running_loop().time()
                await asyncio.sleep(0.5)
                caller.endpoint.hangup(caller.call)
                await caller.wait_ended()
            finally:
                await caller.close()
    # The mark for the dropped audio came back at once, not after 10 s.
    assert mark_at - agent.cleared_at < 0.5
    heard = caller.heard_pcm()
    frames = heard[:len(heard) // 160 * 160].reshape(-1, 160)
    loud = [rms(f) > 500 for f in frames]
    # Tone for about a second, then silence: at most one loud frame after the run.
    first = loud.index(True)
    run = loud[first:].index(False)
    assert 30 <= run <= 70
    assert sum(loud[first + run:]) <= 1


async def test_twilio_socket_close_hangs_up_and_other_calls_keep_flowing() -> None:
    """One agent closes its socket (that call is hung up); another never
    reads (its call keeps its media); a third behaves: its audio flows."""
    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        assert first["event"] == "connected"
        start = json.loads(await ws.recv())
        who = start["start"]["customParameters"]["from_number"]
        if who == "closer":
            await asyncio.sleep(0.3)
            await ws.close()
        elif who == "stuck":
            await ws.wait_closed()  # never reads again
        else:
            sid = start["streamSid"]
            for _ in range(100):
                await ws.send(media(sid, tone(20, 8000)))
                await asyncio.sleep(0.02)
            await ws.wait_closed()

    agent = TwilioAgent(script)
    async with serve(agent.handler, "127.0.0.1", 0, max_queue=1, close_timeout=0.5) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        gw = Gateway(config(), agent=url)
        async with running(gw):
            callers = {name: await Caller.start(ports=(44000 + 100 * i, 44099 + 100 * i))
                       for i, name in enumerate(("closer", "stuck", "good"))}
            try:
                for name, caller in callers.items():
                    await caller.dial(gw.address(), from_user=name)
                for caller in callers.values():
                    await caller.stream.write(tone(3000, 8000))
                ended = await callers["closer"].wait_ended()
                assert ended.reason == "remote hangup"
                await asyncio.sleep(1.5)
                good = callers["good"].heard_pcm()
                stuck = callers["stuck"]
                assert len(gw.calls) == 2
                assert stuck.stream.stats().packets_received > 80  # media flows (silence)
                assert rms(good) > 500
                for name in ("stuck", "good"):
                    callers[name].endpoint.hangup(callers[name].call)
                    await callers[name].wait_ended()
            finally:
                for caller in callers.values():
                    await caller.close()


async def test_fed_calls_frames_taken_once_a_tick_in_order() -> None:
    """The gateway takes its WebSocket calls' caller audio from the engine
    at most once a tick (``READ_TICK_S``): with four calls talking, the
    engine wakes the gateway's loop far fewer times than it hands over
    frames (untaken, a worker round signals whenever it finds the ready
    list empty: about once per frame), and every call's chunks still reach
    its agent in order, numbered without a hole."""
    calls = 4

    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        await agent.pump(ws)

    agent = TwilioAgent(script)
    async with serve(agent.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        gw = Gateway(config(), agent=url)
        async with running(gw):
            callers = [await Caller.start(ports=(44000 + 100 * i, 44099 + 100 * i))
                       for i in range(calls)]
            try:
                for caller in callers:
                    await caller.dial(gw.address())
                for caller in callers:
                    await caller.stream.write(tone(3000, 8000))
                await wait_until(lambda: len(agent.events("media")) >= calls * 25)
                assert gw.engine is not None
                woken = gw.engine.stats().app_wakeups
                received = len(agent.events("media"))
                await wait_until(lambda: len(agent.events("media")) >= received + calls * 50)
                woken = gw.engine.stats().app_wakeups - woken
                received = len(agent.events("media")) - received
                for caller in callers:
                    caller.endpoint.hangup(caller.call)
                    await caller.wait_ended()
            finally:
                for caller in callers:
                    await caller.close()
    assert 0 < woken < received / 2, (woken, received)
    by_stream: dict[str, list[int]] = {}
    for message in agent.events("media"):
        by_stream.setdefault(message["streamSid"], []).append(int(message["media"]["chunk"]))
    assert len(by_stream) == calls
    for chunks in by_stream.values():
        assert chunks == list(range(1, len(chunks) + 1))


async def test_ended_calls_die_by_reference_counting() -> None:
    """Once a call has ended, nothing of it is left for the cyclic garbage
    collector: the gateway's call, the agent's ``Call`` and the agent
    connection are freed by reference counting alone (``rtpcore gateway``
    keeps full collections rare, so whatever waited for one would pile up)."""
    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        await agent.pump(ws, until=lambda m: m["event"] == "start")
        sid = agent.received[-1]["streamSid"]
        await ws.send(media(sid, tone(200, 8000)))
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m"}}))
        await agent.pump(ws)

    agent = TwilioAgent(script)
    gc.collect()
    gc.disable()
    try:
        async with serve(agent.handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            gw = Gateway(config(), agent=url)
            async with running(gw):
                caller = await Caller.start()
                try:
                    await caller.dial(gw.address())
                    await caller.stream.write(tone(400, 8000))
                    await wait_until(lambda: agent.events("mark"))
                    (call,) = gw.calls.values()
                    assert call.agent_call is not None
                    gone = [weakref.ref(call), weakref.ref(call.agent_call)]
                    del call
                    caller.endpoint.hangup(caller.call)
                    await caller.wait_ended()
                    await asyncio.wait_for(agent.closed.wait(), 5)
                    await wait_until(lambda: not gw.calls)
                    await asyncio.sleep(0.1)  # the reader's next tick
                    assert [ref() for ref in gone] == [None, None]
                finally:
                    await caller.close()
    finally:
        gc.enable()


# --- raw PCM -------------------------------------------------------------------------

async def test_raw_pcm_agent_wideband_both_ways() -> None:
    received: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        start = json.loads(await ws.recv())
        received.append(start)
        await ws.send(tone(600, 16000).astype("<i2").tobytes())
        await ws.send('{"event":"mark","name":"m"}')
        async for message in ws:
            received.append(message if isinstance(message, bytes) else json.loads(message))

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        cfg = config(agent=AgentSettings(url=url, protocol="raw-pcm", sample_rate=16000))
        gw = Gateway(cfg)
        async with running(gw):
            caller = await Caller.start(codecs=("G722",))
            try:
                await caller.dial(gw.address(), sample_rate=16000)
                await caller.stream.write(tone(500, 16000, 1000))
                caller.stream.send_dtmf("3")
                await wait_until(lambda: any(isinstance(m, dict) and m.get("event") == "dtmf"
                                             for m in received))
                await wait_until(lambda: any(isinstance(m, dict) and m.get("event") == "mark"
                                             for m in received))
                caller.endpoint.hangup(caller.call)
                await caller.wait_ended()
            finally:
                await caller.close()
    assert received[0]["sampleRate"] == 16000 and received[0]["encoding"] == "pcm_s16le"
    audio = [m for m in received if isinstance(m, bytes)]
    assert {len(a) for a in audio} == {640}  # 20 ms at 16 kHz, int16
    pcm = np.frombuffer(b"".join(audio), "<i2")
    assert rms(pcm) > 500
    dtmf = next(m for m in received if isinstance(m, dict) and m["event"] == "dtmf")
    assert dtmf["digit"] == "3"
    assert next(m for m in received if isinstance(m, dict) and m["event"] == "mark") == {
        "event": "mark", "name": "m", "cleared": False}
    assert rms(caller.heard_pcm()) > 500
    assert received[-1] == {"event": "stop"}


# --- SIP side ------------------------------------------------------------------------

async def test_transfer_by_refer() -> None:
    async def agent(call: Call) -> None:
        await call.transfer("sip:desk@192.0.2.9")
        async for event in call.events:
            pass

    from rtpcore.sip.ua import TransferRequested

    gw = Gateway(config(), agent=agent)
    async with running(gw):
        caller = await Caller.start()
        try:
            await caller.dial(gw.address())
            while not isinstance(event := await asyncio.wait_for(caller.events.get(), 5),
                                 TransferRequested):
                pass
            assert event.target == "sip:desk@192.0.2.9"
            caller.endpoint.command("notify_transfer", caller.call, 200)
            ended = await caller.wait_ended()
        finally:
            await caller.close()
    assert ended.reason == "remote hangup"


async def test_allowlist_refuses_other_sources() -> None:
    cfg = config(sip=SIPSettings(host="127.0.0.1", udp_port=0, allow=("10.0.0.0/8",)))
    gw = Gateway(cfg, agent="default")
    async with running(gw):
        caller = await Caller.start()
        try:
            with pytest.raises(RuntimeError, match="403"):
                await caller.dial(gw.address())
        finally:
            await caller.close()


async def test_graceful_shutdown_drains_then_hangs_up() -> None:
    async def agent(call: Call) -> None:
        await call.ended.wait()

    reports = Reports()
    gw = Gateway(config(), agent=agent)
    gw.add_listener(reports)
    await gw.start()
    caller = await Caller.start()
    late = await Caller.start(ports=(45000, 45099))
    try:
        await caller.dial(gw.address())
        stopping = asyncio.create_task(gw.stop(drain_timeout=1.0))
        await asyncio.sleep(0.2)
        with pytest.raises(RuntimeError, match="503"):  # no new calls while draining
            await late.dial(gw.address())
        assert not stopping.done()  # the call is still up, within the drain timeout
        await asyncio.wait_for(stopping, 5)
        report = reports.ended.get_nowait()
        assert report.hangup_cause == "gateway shutdown"
        ended = await caller.wait_ended()
        assert ended.reason == "remote hangup"
    finally:
        await caller.close()
        await late.close()


async def test_dial_out_and_failures() -> None:
    """gw.dial: answered calls are bridged; a busy callee raises CallFailed."""
    from rtpcore.aio.sip import SIPEndpoint
    from rtpcore.media import Engine
    from rtpcore.sip.ua import CallEnded, IncomingCall, UserAgent

    heard: list[str] = []

    async def agent(call: Call) -> None:
        heard.append(call.direction)
        call.play(tone(400, 16000))
        await asyncio.sleep(0.6)
        await call.hangup()

    callee_ua = UserAgent("127.0.0.1", 0, "UDP", user="callee")
    events: asyncio.Queue[object] = asyncio.Queue()
    callee = await SIPEndpoint.start(callee_ua, on_event=events.put_nowait)
    engine = Engine(bind_host="127.0.0.1", port_range=(46000, 46099), workers=1)
    reports = Reports()
    gw = Gateway(config(), agent=agent)
    gw.add_listener(reports)
    try:
        async with running(gw):
            target = f"sip:+15550199@127.0.0.1:{callee_ua.port}"

            async def answer_next(busy: bool) -> None:
                while not isinstance(event := await events.get(), IncomingCall):
                    pass
                if busy:
                    callee.reject(event.call, 486)
                else:
                    stream = engine.allocate()
                    callee.answer(event.call, "127.0.0.1", stream.local_port)

            answering = asyncio.create_task(answer_next(busy=False))
            call = await gw.dial(target, from_uri="sip:+15550100@gateway.example")
            await answering
            assert call.direction == "outbound" and call.to_number == "+15550199"
            assert call.from_number == "+15550100"
            while not isinstance(await asyncio.wait_for(events.get(), 5), CallEnded):
                pass
            report = await asyncio.wait_for(reports.ended.get(), 5)
            assert report.direction == "outbound" and report.packets_sent > 10

            answering = asyncio.create_task(answer_next(busy=True))
            with pytest.raises(CallFailed) as info:
                await gw.dial(target)
            await answering
            assert info.value.status_code == 486
            assert reports.failed == [(486, "Busy Here")]

            # Ringing, never answered: CallFailed(487) after the timeout, and a CANCEL.
            while not events.empty():
                events.get_nowait()  # what the busy call left
            with pytest.raises(CallFailed) as info:
                await gw.dial(target, timeout=1.0)
            assert info.value.status_code == 487
            assert reports.failed[-1] == (487, "no answer")
            assert isinstance(await asyncio.wait_for(events.get(), 5), IncomingCall)
            while not isinstance(event := await asyncio.wait_for(events.get(), 5), CallEnded):
                pass
            assert event.status_code == 487  # the callee saw the CANCEL
            assert not gw.calls
    finally:
        await callee.close()
        engine.close()
    assert heard == ["outbound"]


async def test_registers_to_trunk_with_digest_auth() -> None:
    """A registrar that challenges: the gateway's trunk endpoint answers
    with the configured credentials and the binding is accepted."""
    server = DigestServer("carrier.example", {"acct": "s3cret"}.get)
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar.setblocking(False)
    port = registrar.getsockname()[1]
    seen: list[int] = []

    async def serve_register() -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, source = await loop.sock_recvfrom(registrar, 65536)
            request = parse_message(data)
            result = server.verify(request, loop.time())
            code = 200 if result.ok else result.status_code
            seen.append(code)
            response = Response(code)
            for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                for value in request.headers.get_all(name):
                    response.headers.add(name, value)
            for value in result.challenges:
                response.headers.add(server.challenge_header, value)
            if code == 200:
                response.headers.add("Contact", request.headers.get("Contact") or "")
            await loop.sock_sendto(registrar, response.encode(), source)

    task = asyncio.create_task(serve_register())
    trunk = TrunkSettings(name="carrier", registrar="sip:carrier.example", proxy=f"127.0.0.1:{port}",
                          username="acct", password="s3cret")
    gw = Gateway(config(trunks=(trunk,)), agent="default")
    try:
        async with running(gw):
            await wait_until(lambda: 200 in seen)
    finally:
        task.cancel()
        registrar.close()
    assert seen[:2] == [401, 200]


@pytest.mark.parametrize("transport", ["TCP", "TLS"])
async def test_stream_transports(transport: str, tmp_path: Path) -> None:
    from test_aio_sip import make_tls_contexts

    server_ctx, client_ctx = make_tls_contexts(tmp_path)
    sip = SIPSettings(host="127.0.0.1", udp_port=None, tcp_port=0 if transport == "TCP" else None,
                      tls_port=0 if transport == "TLS" else None,
                      tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"))

    async def agent(call: Call) -> None:
        call.play(tone(300, 16000))
        await asyncio.sleep(0.5)
        await call.hangup()

    gw = Gateway(config(sip=sip), agent=agent)
    async with running(gw):
        assert gw.transports == (transport,)
        caller = await Caller.start(transport=transport, ssl_context=server_ctx,
                                    client_ssl_context=client_ctx)
        try:
            await caller.dial(gw.address(transport))
            ended = await caller.wait_ended()
        finally:
            await caller.close()
    assert ended.reason == "remote hangup"
    assert rms(caller.heard_pcm()) > 500


async def test_srtp_required_refuses_plain_rtp() -> None:
    cfg = config(media=MediaSettings(host="127.0.0.1", port_min=43000, port_max=43999,
                                     srtp="required"))
    gw = Gateway(cfg, agent="default")
    async with running(gw):
        caller = await Caller.start(srtp="off")
        try:
            with pytest.raises(RuntimeError, match="488"):
                await caller.dial(gw.address())
        finally:
            await caller.close()
        assert not gw.calls


async def test_bursty_agent_is_bounded_and_clear_still_works() -> None:
    """An agent that sends 6 s of audio at once against a 2 s queue: the
    excess is dropped and counted, the call goes on, and clear empties it."""
    async def script(agent: TwilioAgent, ws: ServerConnection) -> None:
        await agent.pump(ws, until=lambda m: m["event"] == "start")
        sid = agent.received[-1]["streamSid"]
        for _ in range(60):
            await ws.send(media(sid, tone(100, 8000)))
        await ws.send("{not json")
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"event": "clear", "streamSid": sid}))
        await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "x"}}))
        await agent.pump(ws)

    agent = TwilioAgent(script)
    reports = Reports()
    async with serve(agent.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        gw = Gateway(config(agent=AgentSettings(url=url, queue_ms=2000)))
        gw.add_listener(reports)
        async with running(gw):
            caller = await Caller.start()
            try:
                await caller.dial(gw.address())
                await wait_until(lambda: agent.events("mark"), timeout=5)
                await asyncio.sleep(0.3)
                call = next(iter(gw.calls.values()))
                assert call.stream is not None and call.stream.queued_ms == 0
                caller.endpoint.hangup(caller.call)
                await caller.wait_ended()
            finally:
                await caller.close()
            report = await asyncio.wait_for(reports.ended.get(), 5)
    assert report.agent_errors["audio_overflow"] >= 30  # of the 60 chunks of 100 ms
    assert report.agent_errors["malformed_message"] == 1
    heard = caller.heard_pcm()
    frames = heard[:len(heard) // 160 * 160].reshape(-1, 160)
    loud_s = sum(rms(f) > 500 for f in frames) * 0.02
    assert 0.3 < loud_s < 1.5  # about the 0.5 s before the clear, not the 2 s queued


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_cli_runs_the_gateway_and_drains_on_sigterm(tmp_path: Path, loop: str) -> None:
    """`rtpcore gateway --config FILE`: JSON logs, calls answered by the default
    agent, SIGTERM drains the running call, then exits 0; on either event loop."""
    import signal
    import sys

    if loop == "uvloop":
        pytest.importorskip("uvloop")

    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent("""
        drain_timeout = 1
        [sip]
        udp_port = 0
        [media]
        port_min = 47000
        port_max = 47099
        [logging]
        format = "json"
    """))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtpcore.cli", "gateway", "--config", str(path), "--loop", loop,
        stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while "listening for SIP over UDP" not in (line := (await asyncio.wait_for(
                process.stderr.readline(), 20)).decode()):
            lines.append(line)
        port = int(line.rsplit(":", 1)[1])
        caller = await Caller.start()
        try:
            await caller.dial(("127.0.0.1", port))
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            ended = await caller.wait_ended(timeout=10)
        finally:
            await caller.close()
        _, rest = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert ended.reason == "remote hangup"
    assert rms(caller.heard_pcm()) > 500  # the greeting
    logs = [json.loads(line) for line in lines + (rest or b"").decode().splitlines()
            if line.startswith("{")]
    by_event = {entry.get("event"): entry for entry in logs}
    assert by_event["gateway_started"]["level"] == "info"
    connected = by_event["call_connected"]
    assert connected["call_sid"].startswith("CA") and connected["from"] == "+15550100"
    report = by_event["call_ended"]
    assert report["hangup_cause"] == "gateway shutdown" and report["codec"] == "PCMU"
    assert report["call_sid"] == connected["call_sid"]


async def test_reinvite_moves_the_media() -> None:
    """The caller's re-INVITEs (hold, resume, a new media port) reach the
    gateway's stream: it sends to the new port, and audio flows both ways."""
    from rtpcore.media import MediaConfig
    from rtpcore.sip.ua import CallUpdated

    heard: list[float] = []

    async def agent(call: Call) -> None:
        call.play(tone(10000, 16000))
        async for frame in call.audio:
            heard.append(rms(frame.pcm))

    async def updated(caller: Caller) -> None:
        while not isinstance(await asyncio.wait_for(caller.events.get(), 5), CallUpdated):
            pass

    gw = Gateway(config(), agent=agent)
    async with running(gw):
        caller = await Caller.start()
        try:
            await caller.dial(gw.address())
            for command in ("hold", "resume"):
                getattr(caller.endpoint, command)(caller.call)
                await updated(caller)
            assert caller.call.on_hold is False
            old = caller.stream
            caller.stream = caller.engine.allocate()
            caller.endpoint.command("update_media", caller.call, "127.0.0.1",
                                    caller.stream.local_port)
            await updated(caller)
            caller.stream.start(MediaConfig.from_negotiated(caller.call.media, sample_rate=8000))
            old.close()
            (gw_call,) = gw.calls.values()
            assert gw_call.stream is not None and gw_call.stream.config is not None
            assert gw_call.stream.config.remote == ("127.0.0.1", caller.stream.local_port)
            heard.clear()
            await caller.stream.write(tone(500, 8000))
            await wait_until(lambda: sum(level > 1000 for level in heard) > 15)
            levels = []
            while len(levels) < 25:  # the agent's tone, at the new port
                frame = await asyncio.wait_for(caller.stream.read(), 2)
                assert frame is not None
                levels.append(rms(frame.pcm))
            assert sum(level > 1000 for level in levels) > 10
            caller.endpoint.hangup(caller.call)
            await caller.wait_ended()
        finally:
            await caller.close()


def test_bad_agent_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="agent"):
        Gateway(config(), agent="http://agent.example/")
