"""Running real SIP peers from Debian (SIPp) next to an rtpcore endpoint."""

from __future__ import annotations

import asyncio
import shutil
import socket

import pytest


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_block(size: int) -> tuple[int, int]:
    """``size`` UDP ports for a test's media, from an even port the system
    just handed out: a fixed range is what other test runs on this machine
    use at the same moment (a peer bound there fails; a port an earlier
    call's peer still sends to gets reused)."""
    low = min(max(free_port() & ~1, 20000), 65535 - size)
    return low, low + size - 1


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (scripts/setup installs it from Debian)")
    return path


async def run_sipp(*args: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run SIPp in the foreground until it exits (or kill it at ``timeout``)."""
    process = await asyncio.create_subprocess_exec(
        require("sipp"), *args, "-nostdin", "-timeout", str(int(timeout)), "-timeout_error",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout + 10)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    assert process.returncode is not None  # invariant: communicate() waited for the exit
    return process.returncode, out.decode(errors="replace")
