"""The gateway's edges against peers nobody here wrote, over loopback:

- Pipecat's ``TwilioFrameSerializer`` as the agent of a call placed by
  rtpcore's own user agent + media engine: caller audio and DTMF reach it,
  its audio reaches the caller, marks come back after their audio played,
  ``clear`` drops queued audio and returns pending marks, and its REST
  hang-up ends the SIP call;
- SIPp's UAS receiving an outbound call (answered, and busy);
- Kamailio's dispatcher in front of two gateway processes: calls spread over
  both, and keep going to the other when one is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sip_peers import free_port, port_block, require, run_sipp

pytest.importorskip("rtpcore.media", reason="the media engine (engine-driver) has not landed")

from rtpcore.aio.sip import SIPEndpoint  # noqa: E402
from rtpcore.errors import CallFailed  # noqa: E402
from rtpcore.gateway import Gateway  # noqa: E402
from rtpcore.gateway.config import (  # noqa: E402
    AgentSettings,
    GatewayConfig,
    HTTPSettings,
    MediaSettings,
    SIPSettings,
    TrunkSettings,
)
from rtpcore.gateway.http import GatewayHTTP  # noqa: E402
from rtpcore.gateway.outbound import CallStatus  # noqa: E402
from rtpcore.media import Engine, MediaConfig  # noqa: E402
from rtpcore.sip.ua import CallAnswered, CallEnded, UserAgent  # noqa: E402

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent
TOKEN = "interop-token"
RATE = 8000
FRAME = RATE // 50  # 20 ms


def tone(seconds: float, freq: float = 440.0, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def _config(**sections: Any) -> GatewayConfig:
    low, high = port_block(200)
    defaults: dict[str, Any] = {
        "sip": SIPSettings(host="127.0.0.1", udp_port=0, rate=None),
        "media": MediaSettings(host="127.0.0.1", port_min=low, port_max=high, codecs=("PCMU",),
                               srtp="off", workers=1),
        "http": HTTPSettings(auth_token=TOKEN),
    }
    defaults.update(sections)
    return GatewayConfig(**defaults)


# --- Pipecat's TwilioFrameSerializer as the agent ---------------------------------------


class PipecatAgent:
    """A Media Streams server whose protocol side is Pipecat's serializer.

    It plays what Pipecat's pipeline would: turns the gateway's messages into
    Pipecat frames (``deserialize``) and sends Pipecat frames back
    (``serialize``); the script in ``run`` decides what to send when.
    """

    def __init__(self, http_base: str) -> None:
        self.http_base = http_base
        self.audio = bytearray()
        self.digits: list[str] = []
        self.marks: list[tuple[str, float]] = []
        self.events: list[str] = []
        self.start: dict[str, Any] = {}
        self.done = asyncio.Event()
        self.failure: BaseException | None = None
        self.cleared_at = 0.0

    async def handler(self, ws: Any) -> None:
        try:
            await self._run(ws)
        except BaseException as exc:  # reported to the test, which fails with it
            self.failure = exc
            raise
        finally:
            self.done.set()

    async def _run(self, ws: Any) -> None:
        from pipecat.frames.frames import (
            EndFrame,
            InputAudioRawFrame,
            InputDTMFFrame,
            InterruptionFrame,
            OutputAudioRawFrame,
            OutputTransportMessageUrgentFrame,
        )
        from pipecat.processors.frame_processor import FrameProcessorSetup
        from pipecat.serializers.twilio import TwilioFrameSerializer

        loop = asyncio.get_running_loop()
        connected = json.loads(await ws.recv())
        assert connected["event"] == "connected"
        start = json.loads(await ws.recv())
        assert start["event"] == "start"
        self.start = start["start"]
        serializer = TwilioFrameSerializer(
            self.start["streamSid"], self.start["callSid"], self.start["accountSid"], TOKEN,
            base_url=self.http_base)
        await serializer.setup(FrameProcessorSetup(  # only the rate is read
            clock=None, task_manager=None, pipeline_worker=None,  # type: ignore[arg-type]
            audio_in_sample_rate=RATE))

        async def send(frame: Any) -> None:
            message = await serializer.serialize(frame)
            if message is not None:
                await ws.send(message)

        def mark(name: str) -> Any:
            return OutputTransportMessageUrgentFrame(message={
                "event": "mark", "streamSid": self.start["streamSid"], "mark": {"name": name}})

        stage = "listen"
        async for raw in ws:
            message = json.loads(raw)
            self.events.append(message["event"])
            if message["event"] == "mark":
                self.marks.append((message["mark"]["name"], loop.time()))
            frame = await serializer.deserialize(raw)
            if isinstance(frame, InputAudioRawFrame):
                assert frame.sample_rate == RATE
                self.audio += frame.audio
            elif isinstance(frame, InputDTMFFrame):
                self.digits.append(frame.button.value)
            # The script: answer 1 s of tone once the caller spoke for 0.5 s;
            # then queue 10 s more and interrupt it; hang up after the '#'.
            if stage == "listen" and len(self.audio) >= RATE:  # 0.5 s of 16-bit samples
                stage = "answered"
                await send(OutputAudioRawFrame(tone(1.0, 660).tobytes(), RATE, 1))
                await send(mark("reply"))
            elif stage == "answered" and any(name == "reply" for name, _ in self.marks):
                stage = "interrupting"
                await send(OutputAudioRawFrame(tone(10.0, 880).tobytes(), RATE, 1))
                await send(mark("long"))
                await asyncio.sleep(0.3)
                self.cleared_at = loop.time()
                await send(InterruptionFrame())
            elif "#" in self.digits:
                await send(EndFrame())  # Pipecat hangs up over the REST API
                break


async def _wait(endpoint: SIPEndpoint, kind: type, timeout: float = 10.0) -> Any:
    while True:
        event = await asyncio.wait_for(endpoint.events.get(), timeout)
        if isinstance(event, kind):
            return event
        if isinstance(event, CallEnded) and kind is not CallEnded:
            raise AssertionError(f"call ended while waiting for {kind.__name__}: {event}")


async def test_pipecat_twilio_serializer_through_the_gateway() -> None:
    import websockets

    http_port = free_port(socket.SOCK_STREAM)
    agent_port = free_port(socket.SOCK_STREAM)
    pipecat = PipecatAgent(f"http://127.0.0.1:{http_port}")
    server = await websockets.serve(pipecat.handler, "127.0.0.1", agent_port)
    gateway = Gateway(_config(agent=AgentSettings(url=f"ws://127.0.0.1:{agent_port}")))
    await gateway.start()
    http = GatewayHTTP(gateway)
    await http.start("127.0.0.1", http_port)
    low, high = port_block(200)
    engine = Engine(port_range=(low, high), workers=1)
    caller = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, user="caller"))
    heard: list[tuple[float, np.ndarray]] = []
    try:
        stream = engine.allocate()
        host, port = gateway.address("UDP")
        sip_call = caller.invite("sip:+15550100@127.0.0.1", ("127.0.0.1", port), "127.0.0.1",
                                 stream.local_port, from_user="+15550199")
        await _wait(caller, CallAnswered)
        stream.start(MediaConfig.from_negotiated(sip_call.media, sample_rate=RATE))
        loop = asyncio.get_running_loop()

        async def listen() -> None:
            async for frame in stream:
                heard.append((loop.time(), frame.pcm.copy()))

        listening = loop.create_task(listen())
        async with asyncio.timeout(10):
            while not pipecat.start:  # speak once the agent listens (its stream has started)
                await asyncio.sleep(0.01)
        await stream.write(tone(1.5, 440))
        (call_sid,) = gateway.calls  # the REST view of the running call
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{http_port}/2010-04-01/Accounts/{gateway.account_sid}"
                f"/Calls/{call_sid}.json",
                headers={"Authorization": aiohttp.encode_basic_auth(gateway.account_sid,
                                                                    TOKEN)}) as response:
            resource = await response.json()
        assert resource["status"] == "in-progress" and resource["direction"] == "inbound"
        assert resource["from"] == "+15550199" and resource["to"] == "+15550100"
        # DTMF once the agent has interrupted itself, '#' last.
        async with asyncio.timeout(20):
            while not pipecat.cleared_at and not pipecat.done.is_set():
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        # the audio the gateway's jitter buffer synthesized, the tone long past
        (gateway_call,) = gateway.calls.values()
        assert gateway_call.stream is not None
        gateway_concealed_ms = gateway_call.stream.stats().concealed_ms
        stream.send_dtmf("7#", duration_ms=100)
        ended = await _wait(caller, CallEnded, timeout=15)
        await asyncio.wait_for(pipecat.done.wait(), 5)
        stream.close()
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
    finally:
        await caller.close()
        await http.stop()
        await gateway.stop(drain_timeout=0)
        engine.close()
        server.close()
    assert pipecat.failure is None, pipecat.failure
    # start: Twilio's shape, with the numbers as custom parameters.
    assert pipecat.start["callSid"].startswith("CA") and pipecat.start["streamSid"].startswith("MZ")
    assert pipecat.start["accountSid"] == gateway.account_sid
    assert pipecat.start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                            "channels": 1}
    assert pipecat.start["customParameters"]["from_number"] == "+15550199"
    # The caller's 1.5 s tone reached Pipecat as 8 kHz PCM, at its level:
    # 75 chunks, 76 if it straddles chunk boundaries. When the machine runs
    # the gateway's ticks late, its jitter buffer conceals a packet not there
    # yet (imitating the tone, so loudly) and, holding its position, plays
    # the packet when it comes: up to the audio it concealed, which it
    # counts, is added (seen: 40 ms concealed, 77 chunks).
    got = np.frombuffer(bytes(pipecat.audio), dtype="<i2")
    chunks = got[: len(got) // FRAME * FRAME].reshape(-1, FRAME)
    loud_chunks = sum(rms(chunk) > 0.7 * rms(tone(1.0)) for chunk in chunks)
    concealed_chunks = math.ceil(gateway_concealed_ms / 20)
    assert 65 <= loud_chunks <= 76 + concealed_chunks, (loud_chunks, gateway_concealed_ms)
    # DTMF, as Pipecat's own InputDTMFFrame keypad entries.
    assert pipecat.digits[:2] == ["7", "#"]
    # Marks came back: "reply" after its 1 s of audio, "long" as soon as it was cleared.
    names = [name for name, _ in pipecat.marks]
    assert names == ["reply", "long"]
    long_at = dict(pipecat.marks)["long"]
    assert long_at - pipecat.cleared_at < 0.5
    # The caller heard the 660 Hz reply, and the 880 Hz tone stopped soon after
    # the clear (it would have gone on for 10 s): what was already on its way
    # (the caller's jitter buffer, a frame in the gateway) on a shared machine.
    loud = [t for t, pcm in heard if rms(pcm) > 1000]
    assert loud, "the caller heard nothing from the agent"
    assert max(loud) - pipecat.cleared_at < 0.2
    # Pipecat's REST hang-up ended the call: the gateway sent BYE.
    assert ended.reason == "remote hangup"
    assert not gateway.calls


# --- an outbound call to SIPp's UAS -----------------------------------------------------


async def test_outbound_call_to_sipp_uas(tmp_path: Path) -> None:
    """POST /calls places a call through the trunk to SIPp's UAS; the agent
    hangs up after half a second; the status callback URL hears Twilio's
    in-progress then completed."""
    from aiohttp import web

    sipp_port = free_port()
    trunk = TrunkSettings(name="sipp", proxy=f"127.0.0.1:{sipp_port}", caller_id="+15550100")
    hung_up = asyncio.Event()

    async def agent(call: Any) -> None:
        call.play(tone(0.3).astype(np.int16))
        await asyncio.sleep(0.5)
        await call.hangup()
        hung_up.set()

    statuses: list[dict[str, str]] = []

    async def status_callback(request: web.Request) -> web.Response:
        statuses.append(dict(await request.post()))
        return web.Response()

    collector = web.Application()
    collector.router.add_post("/status", status_callback)
    collector_runner = web.AppRunner(collector)
    await collector_runner.setup()
    collector_port = free_port(socket.SOCK_STREAM)
    await web.TCPSite(collector_runner, "127.0.0.1", collector_port).start()
    gateway = Gateway(_config(trunks=(trunk,)), agent=agent)
    await gateway.start()
    http = GatewayHTTP(gateway)
    _, http_port = await http.start()
    try:
        sipp = asyncio.get_running_loop().create_task(run_sipp(
            "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port), "-m", "1",
            "-trace_msg", "-message_file", str(tmp_path / "messages.log"), timeout=20))
        await asyncio.sleep(0.5)  # SIPp listening
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{http_port}/calls",
                headers={"Authorization": aiohttp.encode_basic_auth(gateway.account_sid, TOKEN)},
                json={"to": "+1 555 123 4567", "caller_name": "Acme Support",
                      "status_callback": f"http://127.0.0.1:{collector_port}/status"}
        ) as response:
            status, resource = response.status, await response.json()
        await asyncio.wait_for(hung_up.wait(), 10)
        code, out = await sipp
        await http.outbound.drain()
    finally:
        await http.stop()
        await gateway.stop(drain_timeout=0)
        await collector_runner.cleanup()
    assert code == 0, out[-3000:]
    assert status == 201 and resource["status"] == "in-progress", resource
    assert resource["direction"] == "outbound-api" and resource["to"] == "+15551234567"
    messages = (tmp_path / "messages.log").read_text(errors="replace")
    assert re.search(rf"INVITE sip:\+15551234567@127\.0\.0\.1:{sipp_port};user=phone SIP/2\.0",
                     messages)
    assert (f'P-Asserted-Identity: "Acme Support" <sip:+15550100@127.0.0.1:{sipp_port};'
            "user=phone>") in messages
    assert re.search(r'From: "Acme Support" <sip:\+15550100@', messages)
    assert [(s["CallStatus"], s["SipResponseCode"]) for s in statuses] == [
        ("in-progress", "200"), ("completed", "200")]
    assert {s["CallSid"] for s in statuses} == {resource["sid"]}
    assert statuses[1]["To"] == "+15551234567" and statuses[1]["From"] == "+15550100"


@pytest.mark.parametrize(("scenario", "timeout", "code", "status"), [
    ("uas_busy.xml", 10.0, 486, "busy"),
    ("uas_no_answer.xml", 1.0, 487, "no-answer"),  # rings; our CANCEL after 1 s
])
async def test_outbound_call_not_answered_at_sipp(scenario: str, timeout: float, code: int,
                                                  status: str) -> None:
    """The SIP cause reaches the caller of place_call, its status callback
    (Twilio's status) and /metrics."""
    sipp_port = free_port()
    trunk = TrunkSettings(name="sipp", proxy=f"127.0.0.1:{sipp_port}", caller_id="+15550100")
    gateway = Gateway(_config(trunks=(trunk,)))
    await gateway.start()
    http = GatewayHTTP(gateway)
    _, http_port = await http.start()
    try:
        sipp = asyncio.get_running_loop().create_task(run_sipp(
            "-sf", str(HERE / "sipp" / scenario), "-i", "127.0.0.1", "-p", str(sipp_port),
            "-m", "1", timeout=20))
        await asyncio.sleep(0.5)
        statuses: list[CallStatus] = []
        with pytest.raises(CallFailed) as info:
            await http.outbound.place_call("+15551234567", status_callback=statuses.append,
                                           timeout=timeout)
        await http.outbound.drain()
        sipp_code, out = await sipp
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{http_port}/metrics") as response:
            text = await response.text()
    finally:
        await http.stop()
        await gateway.stop(drain_timeout=0)
    assert sipp_code == 0, out[-3000:]  # SIPp saw its scenario through (CANCEL included)
    assert info.value.status_code == code and info.value.call_sid
    assert [(s.status, s.sip_response_code) for s in statuses] == [(status, code)]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("rtpcore_gateway_calls_failed_total", (("code", str(code)),
                                                           ("status", status)))] == 1


# --- Kamailio's dispatcher in front of two gateway processes ----------------------------


class GatewayProcess:
    """``rtpcore gateway`` in its own process with the default agent."""

    def __init__(self, directory: Path, name: str) -> None:
        self.sip_port = free_port()
        self.http_port = free_port(socket.SOCK_STREAM)
        low, high = port_block(200)
        self.config = directory / f"{name}.toml"
        self.config.write_text(textwrap.dedent(f"""
            [sip]
            host = "127.0.0.1"
            udp_port = {self.sip_port}
            rate = "off"
            [media]
            host = "127.0.0.1"
            port_min = {low}
            port_max = {high}
            codecs = ["PCMU"]
            srtp = "off"
            workers = 1
            [http]
            listen = "127.0.0.1:{self.http_port}"
            [logging]
            level = "warning"
        """))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtpcore.cli", "gateway", "--config", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "RTPCORE_DRAIN_TIMEOUT": "2"})
        assert self.process.stderr is not None  # invariant: stderr=PIPE
        lines = []
        while True:
            line = await asyncio.wait_for(self.process.stderr.readline(), 30)
            if not line:
                raise RuntimeError("gateway exited during start-up:\n" + b"".join(lines).decode())
            lines.append(line)
            if b"HTTP (REST subset, /metrics)" in line:
                break
        asyncio.get_running_loop().create_task(self.process.stderr.read())

    async def calls_total(self) -> float:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.http_port}/metrics") as response:
            text = await response.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "rtpcore_gateway_calls_total" and \
                        sample.labels == {"direction": "inbound"}:
                    return sample.value
        raise AssertionError("no rtpcore_gateway_calls_total in /metrics")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def kamailio_dispatcher(gateways: list[GatewayProcess],
                              directory: Path) -> AsyncIterator[int]:
    require("kamailio")
    listing = directory / "dispatcher.list"
    listing.write_text("".join(f"1 sip:127.0.0.1:{g.sip_port}\n" for g in gateways))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        shutil.which("kamailio") or "kamailio", "-f", str(HERE / "kamailio" / "dispatcher.cfg"),
        "-DD", "-E", "-l", f"udp:127.0.0.1:{port}", "-A", f'DS_LIST="{listing}"',
        "-Y", str(directory), "-m", "32", "-M", "8",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None  # invariant: stderr=PIPE
    try:
        while True:
            line = await asyncio.wait_for(process.stderr.readline(), 10)
            if not line:
                raise RuntimeError("kamailio exited during start-up")
            if b"processes (at least)" in line:
                break
        asyncio.get_running_loop().create_task(process.stderr.read())
        await asyncio.sleep(1.5)  # the first OPTIONS round marks both gateways up
        yield port
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _sipp_calls(proxy_port: int, calls: int) -> tuple[int, str]:
    # SIPp's built-in caller: INVITE (with an SDP offer), ACK, 300 ms, BYE.
    return await run_sipp("-sn", "uac", f"127.0.0.1:{proxy_port}", "-i", "127.0.0.1",
                          "-p", str(free_port()), "-m", str(calls), "-r", "10", "-d", "300",
                          "-s", "+15550100", timeout=40)


async def test_kamailio_dispatcher_spreads_calls_and_survives_a_stopped_gateway(
        tmp_path: Path) -> None:
    require("sipp")
    gateways = [GatewayProcess(tmp_path, "a"), GatewayProcess(tmp_path, "b")]
    try:
        for gateway in gateways:
            await gateway.start()
        async with kamailio_dispatcher(gateways, tmp_path) as proxy_port:
            code, out = await _sipp_calls(proxy_port, 10)
            assert code == 0, out[-3000:]
            assert [await g.calls_total() for g in gateways] == [5, 5]  # round-robin

            await gateways[0].stop()
            code, out = await _sipp_calls(proxy_port, 10)
            assert code == 0, out[-3000:]  # no call failed: the dispatcher moved on
            assert await gateways[1].calls_total() == 15
    finally:
        for gateway in gateways:
            await gateway.stop()


# --- rtpcore call ---------------------------------------------------------------------------


async def _rtpcore_call(directory: Path, sipp_port: int, *args: str) -> tuple[int, str, str]:
    low, high = port_block(200)
    config = directory / "call.toml"
    config.write_text(textwrap.dedent(f"""
        [sip]
        host = "127.0.0.1"
        udp_port = 0
        [[trunks]]
        name = "sipp"
        proxy = "127.0.0.1:{sipp_port}"
        caller_id = "+15550100"
        [media]
        port_min = {low}
        port_max = {high}
        codecs = ["PCMU"]
        srtp = "off"
        [logging]
        level = "warning"
    """))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtpcore.cli", "call", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None  # invariant: communicate() waited for the exit
    return process.returncode, out.decode(), err.decode()


async def test_rtpcore_call_command(tmp_path: Path) -> None:
    """``rtpcore call`` to SIPp's UAS with a WebSocket agent that hangs up by
    closing its socket after half a second: exit 0 and the call report;
    busy: exit 1 with the SIP cause; a bad number: exit 2, nothing sent."""
    import websockets

    async def brief_agent(ws: Any) -> None:
        await ws.recv()  # connected
        await ws.recv()  # start
        await asyncio.sleep(0.5)

    agent_port = free_port(socket.SOCK_STREAM)
    server = await websockets.serve(brief_agent, "127.0.0.1", agent_port)
    try:
        sipp_port = free_port()
        sipp = asyncio.get_running_loop().create_task(run_sipp(
            "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port), "-m", "1", timeout=20))
        await asyncio.sleep(0.5)
        code, out, err = await _rtpcore_call(tmp_path, sipp_port, "+15551234567", "--agent",
                                             f"ws://127.0.0.1:{agent_port}", "--json")
        sipp_code, sipp_out = await sipp
        assert (code, sipp_code) == (0, 0), err + sipp_out[-2000:]
        report = json.loads(out)
        assert report["direction"] == "outbound" and report["to_number"] == "+15551234567"
        assert report["codec"] == "PCMU" and report["duration_s"] >= 0.4

        busy_port = free_port()
        sipp = asyncio.get_running_loop().create_task(run_sipp(
            "-sf", str(HERE / "sipp" / "uas_busy.xml"), "-i", "127.0.0.1", "-p",
            str(busy_port), "-m", "1", timeout=20))
        await asyncio.sleep(0.5)
        code, out, err = await _rtpcore_call(tmp_path, busy_port, "+15551234567")
        assert code == 1 and "busy: SIP 486 Busy Here" in err, err
        assert (await sipp)[0] == 0

        code, out, err = await _rtpcore_call(tmp_path, busy_port, "12")
        assert code == 2 and "rtpcore call: to: '12'" in err, err
    finally:
        server.close()
