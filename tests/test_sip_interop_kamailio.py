"""Kamailio (Debian) as a record-routing proxy in front of an rtpcore UA."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from rtpcore.aio.sip import SIPEndpoint
from rtpcore.sip.ua import CallAnswered, CallEnded, CallEstablished, IncomingCall, UserAgent
from sip_peers import free_port, require, run_sipp

pytestmark = pytest.mark.interop
CONFIG = Path(__file__).parent / "kamailio" / "proxy.cfg"


async def start_kamailio(uas_port: int, tmp_path: Path) -> tuple[asyncio.subprocess.Process, int]:
    require("kamailio")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        shutil.which("kamailio") or "kamailio", "-f", str(CONFIG), "-DD", "-E",
        "-l", f"udp:127.0.0.1:{port}", "-A", f'UAS_URI="sip:127.0.0.1:{uas_port}"',
        "-Y", str(tmp_path), "-m", "32", "-M", "8",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None  # invariant: stderr=PIPE
    while True:  # wait until it listens
        line = await asyncio.wait_for(process.stderr.readline(), 10)
        if not line:
            raise RuntimeError("kamailio exited during start-up")
        if b"processes (at least)" in line:
            break
    asyncio.get_running_loop().create_task(process.stderr.read())  # keep the pipe drained
    await asyncio.sleep(0.3)
    return process, port


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def answering(port: int = 0) -> SIPEndpoint:
    endpoint: SIPEndpoint

    def on_event(event: object) -> None:
        if isinstance(event, IncomingCall):
            endpoint.answer(event.call, "127.0.0.1", 40000)
        endpoint.events.put_nowait(event)

    endpoint = await SIPEndpoint.start(UserAgent("127.0.0.1", port), on_event=on_event)
    return endpoint


async def wait_for(endpoint: SIPEndpoint, kind: type) -> object:
    while True:
        event = await asyncio.wait_for(endpoint.events.get(), 10)
        if isinstance(event, kind):
            return event
        assert not isinstance(event, CallEnded) or kind is CallEnded, event


async def test_sipp_through_kamailio_to_rtpcore_uas(tmp_path: Path) -> None:
    uas = await answering()
    kamailio, proxy_port = await start_kamailio(uas.ua.port, tmp_path)
    try:
        code, out = await run_sipp("-sn", "uac", f"127.0.0.1:{proxy_port}", "-i", "127.0.0.1",
                                   "-p", str(free_port()), "-m", "10", "-r", "10", timeout=20)
        assert code == 0, out[-3000:]
        incoming = await wait_for(uas, IncomingCall)
        assert len(incoming.request.vias) == 2  # the proxy's and SIPp's
        assert incoming.request.headers.get("Record-Route")
    finally:
        await stop(kamailio)
        await uas.close()


async def test_rtpcore_uac_through_kamailio_hangs_up_along_the_route(tmp_path: Path) -> None:
    uas = await answering()
    kamailio, proxy_port = await start_kamailio(uas.ua.port, tmp_path)
    uac = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, user="alice"))
    try:
        call = uac.invite(f"sip:bob@127.0.0.1:{uas.ua.port}", ("127.0.0.1", proxy_port),
                          "127.0.0.1", 40002)
        await wait_for(uac, CallAnswered)
        established = await wait_for(uas, CallEstablished)
        assert call.dialog is not None and len(call.dialog.route_set) == 1
        assert f":{proxy_port}" in call.dialog.route_set[0]
        assert established.call.dialog.route_set == call.dialog.route_set
        uac.hangup(call)
        ended = await wait_for(uas, CallEnded)
        assert ended.reason == "remote hangup"
        assert (await wait_for(uac, CallEnded)).status_code == 200
    finally:
        await uac.close()
        await stop(kamailio)
        await uas.close()
