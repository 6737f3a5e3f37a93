"""The gateway answering callers nobody here wrote: SIPp (sip-tester) and baresip."""

from __future__ import annotations

import asyncio
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_helpers import rms, running, wait_until
from sip_peers import free_port, port_block

from rtpcore.gateway import Call, Gateway
from rtpcore.gateway.config import GatewayConfig, MediaSettings, SIPSettings

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

# SIPp calls, sends RFC 2833 digit 0 from the pcap SIPp ships, and hangs up
# after three seconds.
SIPP_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gateway caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:agent@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "sipp" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:agent@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
ACK sip:agent@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "sipp" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:agent@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <nop>
    <action>
      <exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_0.pcap"/>
    </action>
  </nop>
  <pause milliseconds="3000"/>
  <send retrans="500">
    <![CDATA[
BYE sip:agent@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "sipp" <sip:+15550123@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:agent@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def gateway_config() -> GatewayConfig:
    low, high = port_block(100)
    return GatewayConfig(
        sip=SIPSettings(host="127.0.0.1", udp_port=0),
        media=MediaSettings(host="127.0.0.1", port_min=low, port_max=high, sample_rate=8000))


class RecordingAgent:
    """Plays a tone, keeps what it hears and the digits it gets."""

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []
        self.digits: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def __call__(self, call: Call) -> None:
        self.calls.append((call.from_number, call.to_number))
        t = np.arange(call.sample_rate * 2) / call.sample_rate
        call.play(np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))

        async def listen() -> None:
            async for frame in call.audio:
                self.heard.append(frame.pcm.copy())

        listening = asyncio.create_task(listen())
        async for dtmf in call.dtmf:
            self.digits.append(dtmf.digit)
        await listening
        self.done.set()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sip-tester (SIPp) not installed")
@pytest.mark.parametrize("mode", ["dtmf", "echo"])
async def test_sipp_calls(tmp_path: Path, mode: str) -> None:
    """SIPp calls and hangs up after three seconds; in one run it plays the
    RFC 2833 digit 0 from the pcap it ships, in the other it echoes our RTP
    back (-rtp_echo). One run each: the pcap's packets come from another
    source port than the echo, and the engine latches to the first source."""
    scenario = tmp_path / "uac.xml"
    scenario.write_text(SIPP_UAC if mode == "dtmf" else SIPP_UAC.replace(
        '<exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_0.pcap"/>',
        '<log message="echoing"/>'))
    agent = RecordingAgent()
    gw = Gateway(gateway_config(), agent=agent)
    async with running(gw):
        host, port = gw.address()
        sipp = await asyncio.create_subprocess_exec(
            "sipp", f"{host}:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1",
            "-p", "0", "-mi", "127.0.0.1", "-mp", str(free_port()), "-timeout", "20s", "-nostdin",
            *(["-rtp_echo"] if mode == "echo" else []),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        output, _ = await asyncio.wait_for(sipp.communicate(), 30)
        await asyncio.wait_for(agent.done.wait(), 5)
    assert sipp.returncode == 0, output.decode(errors="replace")[-2000:]
    assert agent.calls == [("+15550123", "agent")]
    heard = np.concatenate(agent.heard)
    if mode == "dtmf":
        assert agent.digits == ["0"]
    else:
        assert rms(heard) > 1000  # our tone, echoed back by SIPp


# Debian's baresip 1.0's aufile module is a source only: what baresip hears
# is not recorded, what it says comes from a WAV file.
BARESIP_CONFIG = """
poll_method		epoll
sip_listen		127.0.0.1:0
audio_source		aufile,{speech}
audio_alert		aufile,/dev/null
audio_srate		16000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			g722.so
module			aufile.so
module			srtp.so
module_app		account.so
module_app		menu.so
"""


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
@pytest.mark.parametrize("mediaenc", ["", ";mediaenc=srtp-mand"])
async def test_baresip_calls_with_audio(tmp_path: Path, mediaenc: str) -> None:
    """baresip dials the gateway (SRTP-mandatory in one run), sends a tone
    from a WAV file, and hangs up after a few seconds."""
    speech = tmp_path / "speech.wav"
    # The gateway prefers G.722, and baresip's aufile wants the codec's rate.
    t = np.arange(16000 * 4) / 16000
    tone = np.round(8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone.tobytes())
    conf = tmp_path / "baresip"
    conf.mkdir()
    (conf / "config").write_text(BARESIP_CONFIG.format(speech=speech))
    (conf / "accounts").write_text(f"<sip:baresip@127.0.0.1>;regint=0{mediaenc}\n")
    agent = RecordingAgent()
    gw = Gateway(gateway_config(), agent=agent)
    reports: list[Any] = []

    class Listener:
        def call_ended(self, call: Any, report: Any) -> None:
            reports.append(report)

    gw.add_listener(Listener())
    async with running(gw):
        host, port = gw.address()
        baresip = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(conf), "-e", f"/dial sip:agent@{host}:{port}", "-t", "4",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        output, _ = await asyncio.wait_for(baresip.communicate(), 30)
        await asyncio.wait_for(agent.done.wait(), 10)
        await wait_until(lambda: reports)
    report = reports[0]
    log = output.decode(errors="replace")
    assert agent.calls and agent.calls[0][1] == "agent", log[-2000:]
    heard = np.concatenate(agent.heard)
    assert rms(heard) > 1000, log[-2000:]  # baresip's tone reached the agent
    assert report.srtp == bool(mediaenc)
    assert report.packets_sent > 50 and report.packets_received > 50

