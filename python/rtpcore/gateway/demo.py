"""``rtpcore demo``: the whole path of a call in one command.

It starts the gateway with its embedded default agent on loopback, then
calls it with rtpcore's own SIP user agent and media engine as the caller
— SRTP (SDES) and G.722 required by the caller's offer — and plays a
speech sample into the call. The default agent greets the caller, repeats
the sample back after the pause, reads back the two keys the caller
presses (RFC 4733), and hangs up when it presses ``#``. The caller records
what it hears to ``out/demo-answer.wav``, the gateway records the call in
stereo to ``out/recordings/<CallSid>.wav``, and the gateway's call report
is printed, followed by how to call the gateway from a softphone.

The speech sample is ``audio/s01_en-us_m_16k.wav`` from the project's shared
data (``$RTPCORE_SHARED``, else ``../shared`` from the working directory);
without it, three of the gateway's bundled digit prompts stand in.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtpcore.aio.sip import SIPEndpoint
from rtpcore.gateway.bridge import CallReport, GatewayCall
from rtpcore.gateway.config import (
    GatewayConfig,
    MediaSettings,
    RecordingSettings,
    SIPSettings,
)
from rtpcore.gateway.default_agent import prompt
from rtpcore.gateway.server import Gateway
from rtpcore.media import AudioFrame, Engine, MediaConfig, MediaStats
from rtpcore.sdp import AudioPolicy
from rtpcore.sip.ua import CallAnswered, CallEnded, UserAgent

__all__ = ["DemoResult", "find_speech", "place_demo_call", "run_demo"]

RATE = 16000
SPEECH_SAMPLE = ("audio", "s01_en-us_m_16k.wav")
KEYS = "42"


@dataclass
class DemoResult:
    """What the demo call produced."""

    report: CallReport
    caller_stats: MediaStats
    answer: npt.NDArray[np.int16]  # what the caller heard, at RATE
    speech: npt.NDArray[np.int16]  # what the caller said
    #: What was found in ``answer``, in the order the agent should say it:
    #: label -> (where it starts in s, normalised cross-correlation there).
    found: dict[str, tuple[float, float]]
    ended_by: str  # how the call ended, seen from the caller

    @property
    def echo_at_s(self) -> float:
        return self.found["speech"][0]

    @property
    def complete(self) -> bool:
        """Everything heard, alike (> 0.5), in the expected order."""
        starts = [at for at, _ in self.found.values()]
        return all(sim > 0.5 for _, sim in self.found.values()) and starts == sorted(starts)


def find_speech(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, str]:
    """The caller's speech (int16 at 16 kHz) and where it came from."""
    candidates = [Path(path)] if path is not None else []
    if path is None:
        shared = os.environ.get("RTPCORE_SHARED")
        roots = [Path(shared)] if shared else []
        roots.append(Path.cwd().parent / "shared")
        candidates = [root.joinpath(*SPEECH_SAMPLE) for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            with wave.open(str(candidate)) as w:
                if w.getframerate() != RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
                    raise ValueError(f"speech: {candidate} is not 16-bit mono {RATE} Hz")
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
            return pcm, str(candidate)
    if path is not None:
        raise FileNotFoundError(path)
    # Words the agent itself never says in the demo (it reads back 4 and 2).
    words = np.concatenate([prompt(f"digit-{d}", RATE) for d in "731"])
    return words, "'seven three one' from the bundled prompts (no shared audio found)"


def _find(answer: np.ndarray, speech: np.ndarray) -> tuple[float, float]:
    """Where ``speech`` appears in ``answer`` and how alike it is there."""
    if len(answer) < len(speech) or not len(speech):
        return 0.0, 0.0
    a = answer.astype(np.float64)
    s = speech.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(a) + len(s))))
    correlation = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(s, n)), n)[:len(a) - len(s) + 1]
    power = np.concatenate([[0.0], np.cumsum(a * a)])
    energy = np.sqrt(np.maximum(power[len(s):] - power[:-len(s)], 0.0))  # sliding window
    score = correlation / (np.linalg.norm(s) * np.maximum(energy, 1e-9))
    best = int(np.argmax(score))
    return best / RATE, float(score[best])


async def place_demo_call(gateway: Gateway, speech: np.ndarray, out: Path) -> DemoResult:
    """Call ``gateway`` as a G.722 + SRTP caller, say ``speech``, press
    ``KEYS`` then ``#``, and return what happened."""
    reports: asyncio.Queue[CallReport] = asyncio.Queue()

    class Listener:
        def call_ended(self, call: GatewayCall, report: CallReport) -> None:
            reports.put_nowait(report)

    gateway.add_listener(Listener())
    host, port = gateway.address("UDP")
    ua = UserAgent("127.0.0.1", 0, "UDP", user="demo-caller",
                   policy=AudioPolicy(codecs=("G722",), srtp="required"))
    events: asyncio.Queue[object] = asyncio.Queue()
    caller = await SIPEndpoint.start(ua, on_event=events.put_nowait)
    engine = Engine(bind_host="127.0.0.1", port_range=(41000, 41999), workers=1)
    try:
        stream = engine.allocate()
        call = caller.invite(f"sip:agent@{host}:{port}", (host, port), "127.0.0.1",
                             stream.local_port, from_user="+15550100")
        while not isinstance(event := await asyncio.wait_for(events.get(), 10), CallAnswered):
            if isinstance(event, CallEnded):
                raise RuntimeError(f"demo call failed: {event.status_code} {event.reason}")
        assert call.media is not None  # invariant: CallAnswered comes with negotiated media
        stream.start(MediaConfig.from_negotiated(call.media, sample_rate=RATE))
        heard: list[np.ndarray] = []

        async def listen() -> None:
            while (frame := await stream.read()) is not None:
                assert isinstance(frame, AudioFrame)  # invariant: not a passthrough stream
                heard.append(frame.pcm.copy())

        listening = asyncio.create_task(listen())
        started = time.monotonic()
        await stream.write(speech.data)
        greeting = len(prompt("greeting", RATE)) / RATE
        # Keys once the agent has taken the speech in (its VAD waits for 0.7 s
        # of silence); '#' once greeting, echo and readback have played.
        await asyncio.sleep(len(speech) / RATE + 1.2)
        stream.send_dtmf(KEYS, duration_ms=120)
        readback = sum(len(prompt(f"digit-{k}", RATE)) for k in KEYS) / RATE
        done_at = greeting + len(speech) / RATE + 0.8 + readback + 1.0
        await asyncio.sleep(max(0.0, done_at - (time.monotonic() - started)))
        stream.send_dtmf("#", duration_ms=120)
        ended_by = "timeout"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                event = await asyncio.wait_for(events.get(), deadline - time.monotonic())
            except TimeoutError:
                break
            if isinstance(event, CallEnded):
                ended_by = event.reason
                break
        caller_stats = stream.stats()
        stream.close()
        await listening
        report = await asyncio.wait_for(reports.get(), 5)
    finally:
        await caller.close()
        engine.close()
    answer = np.concatenate(heard) if heard else np.zeros(0, dtype=np.int16)
    out.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out / "demo-answer.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(answer.astype("<i2").tobytes())
    expected = {"greeting": prompt("greeting", RATE), "speech": speech,
                **{f"key {k}": prompt(f"digit-{k}", RATE) for k in KEYS},
                "goodbye": prompt("goodbye", RATE)}
    found = {label: _find(answer, pcm) for label, pcm in expected.items()}
    return DemoResult(report, caller_stats, answer, speech, found, ended_by)


def demo_config(out: Path) -> GatewayConfig:
    """Loopback only, any free port, SRTP when offered, G.722 first."""
    return GatewayConfig(
        sip=SIPSettings(host="127.0.0.1", udp_port=0),
        media=MediaSettings(host="127.0.0.1", port_min=40000, port_max=40999,
                            codecs=("G722", "PCMU", "PCMA"), srtp="optional", sample_rate=RATE),
        recording=RecordingSettings(dir=str(out / "recordings")))


async def run_demo(out: Path = Path("out"), speech: str | None = None) -> int:
    """The ``rtpcore demo`` command."""
    pcm, source = find_speech(speech)
    gateway = Gateway(demo_config(out))
    await gateway.start()
    host, port = gateway.address("UDP")
    print(f"gateway listening on sip:{host}:{port} (UDP), default agent answering")
    print(f"calling it with rtpcore's own user agent: G.722 + SRTP, saying {source}")
    try:
        result = await place_demo_call(gateway, pcm, out)
    finally:
        await gateway.stop(drain_timeout=2)
    _print_result(result, out)
    return 0 if result.complete else 1


def _print_result(result: DemoResult, out: Path) -> None:
    report = result.report
    print()
    print("call report (gateway side):")
    print(report.format())
    stats = result.caller_stats
    mos = f"{stats.mos:.2f}" if stats.mos is not None else "n/a"
    print(f"caller side: {stats.packets_received} packets received, jitter "
          f"{stats.jitter_ms:.1f} ms, concealed {stats.concealed_ms:.0f} ms, MOS {mos}; "
          f"call ended: {result.ended_by}")
    print(f"the caller heard {len(result.answer) / RATE:.1f} s; found in it "
          "(start, similarity to what was sent):")
    for label, (at, similarity) in result.found.items():
        what = "its own speech, repeated" if label == "speech" else label
        print(f"  {at:6.2f} s  {similarity:.3f}  {what}")
    if not result.complete:
        print("  NOT all there, or not in that order: see the recordings")
    print(f"what the caller heard: {out / 'demo-answer.wav'}")
    if report.recording:
        print(f"the gateway's stereo recording (left caller, right agent): {report.recording}")
    print()
    print("Call it from a softphone or a trunk:")
    print("  rtpcore gateway                        # SIP on 127.0.0.1:5060 UDP, default agent")
    print("  RTPCORE_SIP_HOST=<this machine's IP> RTPCORE_MEDIA_HOST=<same IP> rtpcore gateway")
    print("  then dial sip:agent@<this machine's IP>:5060 from the softphone, or point the")
    print("  trunk's origination URI there; see README \"Gateway\" for TOML, TLS, trunks and")
    print("  WebSocket agents (RTPCORE_AGENT_URL=ws://... for a Twilio Media Streams agent).")

