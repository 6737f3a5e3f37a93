"""What the media interop tests share: the speech they send, how they score
what came back (alignment, correlation, PESQ), a capture of rtpcore's
outbound stream analysed by tshark, and a baresip configured in a temp dir."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pesq import pesq
from shared_data import shared_path
from sip_peers import require

Samples = npt.NDArray[np.int16]
_ENGINE_PORT_BLOCKS = itertools.count()
SPEECH = "s01_en-us_m"
SPEECH_BACK = "s02_en-gb_f3"  # what the peer sends us, so the directions cannot be confused


def engine_ports() -> tuple[int, int]:
    """A port range of its own for a test engine: 100 ports from 38000-39999
    (other areas' tests use other ranges), a different block each time, so
    no stream starts on a port where an earlier test's peer may still send."""
    low = 38000 + next(_ENGINE_PORT_BLOCKS) % 20 * 100
    return (low, low + 99)


def speech(item: str, rate: int) -> Samples:
    """A shared speech file (mono int16) at ``rate`` (8000 or 16000)."""
    with wave.open(str(shared_path("audio", f"{item}_{rate // 1000}k.wav")), "rb") as w:
        assert w.getframerate() == rate and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def read_wav(path: Path) -> tuple[Samples, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16), w.getframerate()


def align(reference: Samples, received: Samples) -> Samples:
    """The stretch of ``received`` that lines up with ``reference`` (same
    length, zeros where ``received`` ran out), found by cross-correlation."""
    ref = reference.astype(np.float64)
    got = received.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(ref) + len(got))))
    spectrum = np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size))
    lags = np.fft.irfft(spectrum, size)
    lag = int(np.argmax(lags[: len(got)]))  # received is the reference delayed by lag
    out = np.zeros(len(reference), dtype=np.int16)
    piece = received[lag: lag + len(reference)]
    out[: len(piece)] = piece
    return out


def correlation(reference: Samples, aligned: Samples) -> float:
    a, b = reference.astype(np.float64), aligned.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def score(reference: Samples, received: Samples, rate: int) -> tuple[float, float]:
    """(correlation, PESQ) of ``received`` against ``reference``: P.862 with
    P.862.1 mapping at 8 kHz, P.862.2 at 16 kHz."""
    aligned = align(reference, received)
    quality = pesq(rate, reference, aligned, "nb" if rate == 8000 else "wb")
    return correlation(reference, aligned), float(quality)


# --- tshark's view of our outbound stream ----------------------------------------------


@dataclass(frozen=True)
class RTPStream:
    """One line of ``tshark -z rtp,streams``."""

    source_port: int
    ssrc: int
    payload: str
    packets: int
    lost: int
    max_delta_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float
    problems: bool


_STREAM = re.compile(
    r"^\s*[\d.]+\s+[\d.]+\s+\S+\s+(?P<source_port>\d+)\s+\S+\s+\d+\s+0x(?P<ssrc>[0-9A-Fa-f]+)\s+(?P<payload>.+?)\s+"
    r"(?P<packets>\d+)\s+(?P<lost>-?\d+)\s+\([-\d.]+%\)\s+[\d.]+\s+[\d.]+\s+(?P<max_delta>[\d.]+)\s+"
    r"[\d.]+\s+(?P<mean_jitter>[\d.]+)\s+(?P<max_jitter>[\d.]+)\s*(?P<problems>X?)\s*$")


def rtp_streams(pcap: Path, port: int) -> list[RTPStream]:
    """tshark's RTP stream analysis of the UDP traffic from or to ``port`` in ``pcap``."""
    import subprocess

    out = subprocess.run(
        [require("tshark"), "-r", str(pcap), "-q", "-d", f"udp.port=={port},rtp",
         "-z", "rtp,streams"], capture_output=True, text=True, timeout=60, check=True).stdout
    return [RTPStream(int(m["source_port"]), int(m["ssrc"], 16), m["payload"], int(m["packets"]),
                      int(m["lost"]), float(m["max_delta"]), float(m["mean_jitter"]),
                      float(m["max_jitter"]), m["problems"] == "X")
            for m in map(_STREAM.match, out.splitlines()) if m]


_NOT_RTCP = "not (udp[9] >= 192 and udp[9] <= 223)"  # RTCP's packet types (RFC 5761)


def rtp_only(port: int) -> str:
    """A capture filter for RTP (not RTCP) sent from ``port``."""
    return f"udp src port {port} and {_NOT_RTCP}"


def rtp_both_ways(port: int) -> str:
    """A capture filter for RTP (not RTCP) sent from or to ``port``."""
    return f"udp port {port} and {_NOT_RTCP}"


@asynccontextmanager
async def capture(path: Path, udp_filter: str) -> AsyncIterator[Path]:
    """Capture loopback traffic matching ``udp_filter`` (pcap filter syntax)
    into ``path`` with dumpcap while the body runs."""
    process = await asyncio.create_subprocess_exec(
        require("dumpcap"), "-q", "-i", "lo", "-f", udp_filter, "-P", "-w", str(path),
        "-a", "duration:120", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None  # invariant: stderr=PIPE
    try:
        # dumpcap says "File: ..." once the interface is open and the file
        # written: from then on it sees every packet. A fixed sleep was not
        # enough on a loaded machine.
        said = b""
        async with asyncio.timeout(30):
            while not said.startswith(b"File:"):
                said = await process.stderr.readline()
                if not said:
                    await process.wait()
                    raise RuntimeError(f"dumpcap failed (exit {process.returncode})")
        yield path
        await asyncio.sleep(0.3)  # the last packets reach the capture
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # flushes and closes the file
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- baresip ----------------------------------------------------------------------------


BARESIP_RTP_PORTS = 10  # the ports from rtp_port on that baresip may use


def write_baresip_config(directory: Path, *, sip_port: int, rtp_port: int, codec: str,
                         srtp: bool, source: Path) -> None:
    """A baresip that plays ``source`` into the call and records what it
    decodes (the sndfile filter writes ``dump-*-dec.wav`` in ``directory``),
    offering only ``codec``, with SDES SRTP mandatory when ``srtp``, its RTP
    on ports ``rtp_port`` to ``rtp_port + BARESIP_RTP_PORTS``."""
    encryption = ";mediaenc=srtp-mand" if srtp else ""
    (directory / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\n"
        "module_path /usr/lib/baresip/modules\n"
        "module g711.so\nmodule g722.so\nmodule srtp.so\nmodule aufile.so\nmodule sndfile.so\n"
        "module_app account.so\nmodule_app menu.so\n"
        f"snd_path {directory}\naudio_source aufile,{source}\n"
        f"audio_alert aufile,{source}\nrtp_ports {rtp_port}-{rtp_port + BARESIP_RTP_PORTS}\n"
        "net_interface 127.0.0.1\njitter_buffer_delay 1-20\n")
    (directory / "accounts").write_text(
        f"<sip:baresip@127.0.0.1>;regint=0;audio_codecs={codec}{encryption}\n")


def baresip_decoded(directory: Path) -> tuple[Samples, int]:
    """What the baresip of ``write_baresip_config(directory, ...)`` decoded."""
    (dump,) = directory.glob("dump-*-dec.wav")
    return read_wav(dump)


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
