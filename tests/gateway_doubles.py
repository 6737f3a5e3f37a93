"""A stand-in for ``rtpcore.gateway.Gateway`` that keeps GATEWAY_API.md's
contract (``config``, ``account_sid``, ``calls``, ``add_listener``, ``dial``,
``hangup``; calls with ``call_sid``, ``state``, ``report()`` ...) without
SIP or media, for the tests of the edge modules (outbound, HTTP, metrics).

``dial`` answers from a script: each target URI maps to either a SIP final
status (>= 300: the call fails with it) or 200 (answered). Every dial is
recorded with its arguments.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from rtpcore.errors import CallFailed
from rtpcore.gateway.config import GatewayConfig


@dataclass
class Report:
    """The fields of ``CallReport`` the edge modules read."""

    duration_s: float = 0.0
    mos: float | None = None
    loss_percent: float = 0.0
    jitter_ms: float = 0.0
    hangup_cause: str = ""
    agent_errors: dict[str, int] = field(default_factory=dict)


class FakeCall:
    def __init__(self, gateway: FakeGateway, direction: str, from_number: str,
                 to_number: str) -> None:
        self.gateway = gateway
        self.call_sid = "CA" + secrets.token_hex(16)
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.account_sid = gateway.account_sid
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.state = "dialing" if direction == "outbound" else "ringing"
        self.setup_time_ms: float | None = None
        self.hangup_causes: list[str] = []
        self._report = Report()

    def report(self) -> Report:
        return self._report

    def answer(self, setup_time_ms: float = 42.0) -> None:
        self.state = "connected"
        self.setup_time_ms = setup_time_ms
        self.gateway.notify("call_started", self)

    async def hangup(self, cause: str = "local hangup") -> None:
        self.hangup_causes.append(cause)
        self.end(cause)

    def end(self, cause: str, report: Report | None = None) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        if report is not None:
            self._report = report
        self._report.hangup_cause = cause
        self.gateway.calls.pop(self.call_sid, None)
        self.gateway.notify("call_ended", self, self._report)


class FakeGateway:
    def __init__(self, config: GatewayConfig | None = None,
                 outcomes: dict[str, int] | None = None) -> None:
        self.config = config or GatewayConfig()
        self.account_sid = self.config.account_sid
        self.calls: dict[str, FakeCall] = {}
        self.listeners: list[Any] = []
        self.outcomes = outcomes or {}
        self.dialed: list[dict[str, Any]] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def notify(self, name: str, *args: Any) -> None:
        for listener in self.listeners:
            method = getattr(listener, name, None)
            if method is not None:
                method(*args)

    def inbound(self) -> FakeCall:
        """An inbound call, answered."""
        call = FakeCall(self, "inbound", "+15550199", "+15550100")
        self.calls[call.call_sid] = call
        call.answer()
        return call

    async def dial(self, target_uri: str, *, trunk: str | None = None,
                   from_uri: str | None = None, from_name: str | None = None,
                   headers: dict[str, str] | None = None,
                   agent: Any = None, early_media: bool = True,
                   timeout: float = 60.0) -> FakeCall:
        self.dialed.append({"target_uri": target_uri, "trunk": trunk, "from_uri": from_uri,
                            "from_name": from_name,
                            "headers": dict(headers or {}), "agent": agent,
                            "early_media": early_media, "timeout": timeout})
        await asyncio.sleep(0)
        call = FakeCall(self, "outbound", from_uri or "", target_uri)
        self.calls[call.call_sid] = call
        code = self.outcomes.get(target_uri, 200)
        if code >= 300:
            self.notify("call_failed", call, code, "scripted")
            self.calls.pop(call.call_sid)
            raise CallFailed(code, "scripted", call.call_sid)
        call.answer()
        return call

    async def hangup(self, call_sid: str) -> None:
        await self.calls[call_sid].hangup()
