"""rtpcore's SIP user agent against SIPp (Debian's sip-tester), on loopback."""

from __future__ import annotations

import asyncio

import pytest
from rtpcore.aio.sip import SIPEndpoint
from rtpcore.sip.ua import CallAnswered, CallEnded, IncomingCall, UserAgent
from sip_peers import free_port, run_sipp

pytestmark = pytest.mark.interop


async def answering_endpoint(transport: str = "UDP") -> SIPEndpoint:
    endpoint: SIPEndpoint

    def on_event(event: object) -> None:
        if isinstance(event, IncomingCall):
            endpoint.ring(event.call)
            endpoint.answer(event.call, "127.0.0.1", 40000)
        endpoint.events.put_nowait(event)

    endpoint = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, transport), on_event=on_event)
    return endpoint


@pytest.mark.parametrize(("transport", "sipp_flag"), [("UDP", "u1"), ("TCP", "t1")])
async def test_sipp_uac_calls_rtpcore_uas(transport: str, sipp_flag: str) -> None:
    uas = await answering_endpoint(transport)
    try:
        code, out = await run_sipp(
            "-sn", "uac", f"127.0.0.1:{uas.ua.port}", "-t", sipp_flag, "-i", "127.0.0.1",
            "-p", str(free_port()), "-m", "20", "-r", "20", "-l", "20", timeout=20)
        assert code == 0, out[-3000:]
        assert "Successful call        |        0                  |       20" in out
        ended = 0
        while not uas.events.empty():
            ended += isinstance(uas.events.get_nowait(), CallEnded)
        assert ended == 20 and not uas.ua.calls
    finally:
        await uas.close()


async def test_rtpcore_uac_calls_sipp_uas() -> None:
    port = free_port()
    sipp = asyncio.create_task(run_sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(port),
                                        "-m", "1", timeout=20))
    uac = await SIPEndpoint.start(UserAgent("127.0.0.1", 0))
    try:
        await asyncio.sleep(0.5)  # let SIPp bind
        call = uac.invite(f"sip:service@127.0.0.1:{port}", ("127.0.0.1", port), "127.0.0.1", 40000)
        while not isinstance(event := await asyncio.wait_for(uac.events.get(), 10), CallAnswered):
            assert not isinstance(event, CallEnded), event
        assert call.media is not None and call.media.codec.encoding == "PCMU"
        uac.hangup(call)
        while not isinstance(event := await asyncio.wait_for(uac.events.get(), 10), CallEnded):
            pass
        assert event.status_code == 200
        code, out = await sipp
        assert code == 0, out[-3000:]
    finally:
        sipp.cancel()
        await uac.close()
