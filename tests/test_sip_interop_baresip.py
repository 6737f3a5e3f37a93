"""baresip (Debian) calls an rtpcore UAS: signalling, and its RTP reaches us."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from pathlib import Path

import pytest
from rtpcore.aio.sip import SIPEndpoint
from rtpcore.sip.ua import CallEnded, CallEstablished, IncomingCall, UserAgent
from sip_peers import free_port, require

pytestmark = pytest.mark.interop


def write_config(directory: Path, sip_port: int, rtp_port: int) -> None:
    tone = directory / "tone.wav"
    with wave.open(str(tone), "wb") as w:  # 1 s of 440 Hz, 8 kHz mono
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / 8000)))
                               for n in range(8000)))
    (directory / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\n"
        "module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n"
        "module_app account.so\nmodule_app menu.so\n"
        f"audio_player aufile,{directory / 'heard.wav'}\naudio_source aufile,{tone}\n"
        f"audio_alert aufile,{tone}\nrtp_ports {rtp_port}-{rtp_port + 10}\n")
    (directory / "accounts").write_text("<sip:baresip@127.0.0.1>;regint=0\n")


async def test_baresip_calls_rtpcore_uas(tmp_path: Path) -> None:
    baresip = require("baresip")
    rtp_packets: list[bytes] = []

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            rtp_packets.append(data)

    media = await asyncio.get_running_loop().create_datagram_endpoint(
        Collect, local_addr=("127.0.0.1", 0))
    media_port = media[0].get_extra_info("sockname")[1]
    endpoint: SIPEndpoint

    def on_event(event: object) -> None:
        if isinstance(event, IncomingCall):
            endpoint.ring(event.call)
            endpoint.answer(event.call, "127.0.0.1", media_port)
        endpoint.events.put_nowait(event)

    endpoint = await SIPEndpoint.start(UserAgent("127.0.0.1", 0), on_event=on_event)
    write_config(tmp_path, free_port(), free_port())
    process = await asyncio.create_subprocess_exec(
        baresip, "-f", str(tmp_path), "-t", "3",
        "-e", f"/dial sip:service@127.0.0.1:{endpoint.ua.port}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        kinds = []
        while CallEnded not in kinds:
            event = await asyncio.wait_for(endpoint.events.get(), 15)
            kinds.append(type(event))
            if isinstance(event, CallEstablished):
                assert event.call.media.codec.encoding in ("PCMU", "PCMA")
            if isinstance(event, CallEnded):
                assert event.reason == "remote hangup"
        assert kinds[:2] == [IncomingCall, CallEstablished]
        out, _ = await asyncio.wait_for(process.communicate(), 15)
        assert b"Set audio encoder: PCM" in out, out.decode(errors="replace")[-2000:]
        # baresip sent its audio as RTP to the address and port we answered with
        assert len(rtp_packets) > 20 and all(p[0] >> 6 == 2 for p in rtp_packets)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        media[0].close()
        await endpoint.close()
