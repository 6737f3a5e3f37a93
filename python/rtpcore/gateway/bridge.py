"""One call through the gateway: its SIP dialog, its media stream, its agent.

``GatewayCall`` is created by ``Gateway`` for each call in or out. It
starts the media stream once the SIP side has negotiated it, runs the
agent (``async def agent(call)``) on a ``rtpcore.gateway.agent.Call``,
forwards DTMF (RFC 4733 from the engine, SIP INFO from the dialog) and
marks to the agent, carries out the agent's hang-up and transfer, and when
the call ends, stops everything and builds the ``CallReport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtpcore.gateway.agent import (
    DTMF,
    FRAME_QUEUE_SIZE,
    Agent,
    Call,
    MarkPlayed,
    TransferResult,
)
from rtpcore.media import MediaConfig, MediaStream
from rtpcore.media import DTMFReceived as MediaDTMF
from rtpcore.media import MarkPlayed as MediaMark
from rtpcore.media import PacketsDropped, StreamClosed
from rtpcore.sip.ua import Call as SIPCall

if TYPE_CHECKING:
    from rtpcore.aio.sip import SIPEndpoint
    from rtpcore.gateway.server import Gateway

__all__ = ["CallReport", "GatewayCall", "new_sid"]

log = logging.getLogger("rtpcore.gateway")

#: How long an agent gets to finish by itself once its call has ended.
AGENT_GRACE_S = 2.0


def new_sid(prefix: str) -> str:
    """A Twilio-style identifier: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass
class CallReport:
    """What a call was like, built when it ends (and on demand while it runs)."""

    call_sid: str
    direction: str
    from_number: str
    to_number: str
    duration_s: float
    codec: str
    srtp: bool
    jitter_ms: float
    loss_percent: float
    concealed_ms: float
    mos: float | None
    setup_time_ms: float | None
    hangup_cause: str
    packets_sent: int
    packets_received: int
    frames_unread: int = 0  # caller audio frames the agent did not read in time
    dropped: dict[str, int] = field(default_factory=dict)  # datagrams dropped, by reason
    agent_errors: dict[str, int] = field(default_factory=dict)
    recording: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """The report as a few human-readable lines."""
        mos = f"{self.mos:.2f}" if self.mos is not None else "n/a"
        setup = f"{self.setup_time_ms:.0f} ms" if self.setup_time_ms is not None else "n/a"
        lines = [
            f"call {self.call_sid} ({self.direction}) {self.from_number} -> {self.to_number}",
            f"  duration {self.duration_s:.2f} s, setup {setup}, ended: {self.hangup_cause}",
            f"  codec {self.codec}{' + SRTP' if self.srtp else ''}, packets sent "
            f"{self.packets_sent}, received {self.packets_received}",
            f"  jitter {self.jitter_ms:.1f} ms, loss {self.loss_percent:.1f} %, concealed "
            f"{self.concealed_ms:.0f} ms, MOS {mos}",
        ]
        if self.dropped:
            lines.append("  datagrams dropped: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(self.dropped.items())))
        if self.frames_unread:
            lines.append(f"  {self.frames_unread} frames of caller audio not read by the agent")
        if self.agent_errors:
            lines.append("  agent problems: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(self.agent_errors.items())))
        if self.recording:
            lines.append(f"  recording {self.recording}")
        return "\n".join(lines)


class GatewayCall:
    """A call bridged between SIP and an agent (see the module doc)."""

    def __init__(self, gateway: Gateway, endpoint: SIPEndpoint, sip_call: SIPCall, *,
                 direction: str, from_number: str, to_number: str, agent: Agent,
                 sample_rate: int, ulaw_passthrough: bool = False, fed: bool = False) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.sip_call = sip_call
        self.call_sid = new_sid("CA")
        self.stream_sid = new_sid("MZ")
        self.account_sid = gateway.account_sid
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.state = "ringing" if direction == "inbound" else "dialing"
        self.setup_time_ms: float | None = None
        self.stream: MediaStream | None = None
        self.agent_call: Call | None = None
        self.ended = asyncio.Event()
        self.hangup_cause = ""
        self.recording: str | None = None
        #: Outbound calls: the stream reserved for the call before the answer,
        #: and whether to start it on a 183 with SDP (early media).
        self.pending_stream: MediaStream | None = None
        self.early_media = True
        self._agent = agent
        self._sample_rate = sample_rate
        #: The agent takes μ-law as it is: on a PCMU call the stream passes
        #: the payload through (see ``Call.ulaw_passthrough``).
        self._ulaw = ulaw_passthrough
        #: The stream is read by the gateway's batched reader, which hands
        #: its frames to ``feed`` (kept here until the agent starts).
        self._fed = fed
        self._early_frames: deque[Any] = deque(maxlen=FRAME_QUEUE_SIZE)
        self._created = time.monotonic()
        self._answered: float | None = None
        self._finished: float | None = None
        self._final_report: CallReport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._agent_task: asyncio.Task[None] | None = None
        self._transfer_target: str | None = None
        self._drop_reasons: set[str] = set()

    # --- set-up --------------------------------------------------------------------

    def start_media(self, stream: MediaStream) -> None:
        """The SIP side agreed on media (``sip_call.media``): start the stream."""
        assert self.sip_call.media is not None  # invariant: called after negotiation
        record = self.gateway.config.recording.dir
        if record is not None:
            Path(record).mkdir(parents=True, exist_ok=True)
            self.recording = str(Path(record) / f"{self.call_sid}.wav")
        stream.start(self._media_config())
        self.stream = stream
        if self._fed:
            self.gateway._fed_calls[stream] = self
        self._spawn(self._pump_media_events(stream))

    def start_pending_media(self) -> None:
        """Outbound: start the stream reserved when dialing (on early media
        or the answer, whichever has the SDP first)."""
        if self.pending_stream is None:
            raise RuntimeError("call: no media stream reserved")
        self.start_media(self.pending_stream)  # if it raises, finish() closes the stream
        self.pending_stream = None

    def connected(self) -> None:
        """The call is answered (2xx sent or received): run the agent."""
        if self.state in ("connected", "ended"):
            return
        assert self.stream is not None  # invariant: media starts before the answer completes
        self._answered = time.monotonic()
        self.setup_time_ms = (self._answered - self._created) * 1000
        self.state = "connected"
        self.agent_call = Call(
            call_sid=self.call_sid, stream_sid=self.stream_sid, account_sid=self.account_sid,
            direction=self.direction, from_number=self.from_number, to_number=self.to_number,
            sample_rate=self._sample_rate, media=self.stream, control=self,
            ulaw_passthrough=self.stream.config is not None and self.stream.config.passthrough,
            fed=self._fed)
        while self._early_frames:
            self.agent_call.feed(self._early_frames.popleft())
        self._agent_task = asyncio.create_task(self._run_agent(self.agent_call))
        log.info("call connected", extra={
            "event": "call_connected", "call_sid": self.call_sid, "direction": self.direction,
            "from": self.from_number, "to": self.to_number,
            "codec": self.sip_call.media.codec.encoding if self.sip_call.media else None,
            "setup_time_ms": round(self.setup_time_ms, 1)})
        self.gateway._notify("call_started", self)

    async def _run_agent(self, call: Call) -> None:
        try:
            await self._agent(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent failed", extra={"event": "agent_failed",
                                                 "call_sid": self.call_sid})
            call.note_agent_error("agent_exception")
        # An agent that returns is done with the call.
        if not self.ended.is_set():
            await self.hangup()

    async def _pump_media_events(self, stream: MediaStream) -> None:
        while True:
            event = await stream.next_event()
            if isinstance(event, StreamClosed):
                return
            call = self.agent_call
            if isinstance(event, MediaDTMF):
                log.info("dtmf", extra={"event": "dtmf", "call_sid": self.call_sid,
                                        "digit": event.digit, "source": "rfc4733"})
                if call is not None:
                    call.deliver(DTMF(event.digit, event.duration_ms, "rfc4733"))
            elif isinstance(event, MediaMark):
                if call is not None:
                    call.deliver(MarkPlayed(event.name, event.cleared))
            elif isinstance(event, PacketsDropped) and event.reason not in self._drop_reasons:
                # Once per reason: the engine reports drops every tick while
                # they last; the totals are in the report.
                self._drop_reasons.add(event.reason)
                log.info("packets dropped", extra={
                    "event": "packets_dropped", "call_sid": self.call_sid,
                    "reason": event.reason, "count": event.count})

    def feed(self, frame: Any) -> None:
        """A frame of the caller's audio from the gateway's batched reader."""
        if self.agent_call is not None:
            self.agent_call.feed(frame)
        else:  # early media before the answer, as the engine would keep it
            self._early_frames.append(frame)

    # --- SIP events ---------------------------------------------------------------

    def on_sip_dtmf(self, digit: str, duration_ms: int) -> None:
        log.info("dtmf", extra={"event": "dtmf", "call_sid": self.call_sid, "digit": digit,
                                "source": "info"})
        if self.agent_call is not None:
            self.agent_call.deliver(DTMF(digit, duration_ms, "info"))

    def on_sip_updated(self) -> None:
        """A re-INVITE changed the media (hold, new address, new codec)."""
        if self.stream is not None and self.sip_call.media is not None:
            self.stream.update(self._media_config())

    def _media_config(self) -> MediaConfig:
        media = self.sip_call.media
        assert media is not None  # invariant: called once SDP was negotiated
        passthrough = self._ulaw and media.codec.encoding.upper() == "PCMU"
        if self.agent_call is not None:  # a re-INVITE may change the codec
            self.agent_call.ulaw_passthrough = passthrough
        return MediaConfig.from_negotiated(media, sample_rate=self._sample_rate,
                                           passthrough=passthrough, record_path=self.recording)

    def on_transfer_progress(self, status_code: int) -> None:
        if status_code < 200 or self._transfer_target is None:
            return
        target, self._transfer_target = self._transfer_target, None
        log.info("transfer result", extra={"event": "transfer_result", "call_sid": self.call_sid,
                                           "target": target, "status_code": status_code})
        if self.agent_call is not None:
            self.agent_call.deliver(TransferResult(target, status_code))
        if 200 <= status_code < 300:
            self._spawn(self.hangup(cause="transferred"))

    # --- CallControl: what the agent asks for ---------------------------------------

    async def hangup(self, cause: str = "local hangup") -> None:
        """End the call: BYE (or CANCEL / 603 before the answer), then the
        media and the agent stop at once and the report is built."""
        if self.ended.is_set():
            return
        with contextlib.suppress(ValueError):
            self.endpoint.hangup(self.sip_call)
        await self.finish(cause)

    async def transfer(self, target: str) -> None:
        if self.state != "connected":
            raise ValueError("call: only a connected call can be transferred")
        self._transfer_target = target
        self.endpoint.command("refer", self.sip_call, target)
        log.info("transfer requested", extra={"event": "transfer", "call_sid": self.call_sid,
                                              "target": target})

    # --- the end -------------------------------------------------------------------

    async def finish(self, cause: str) -> None:
        """The call has ended (either side): stop media and agent, report."""
        if self.ended.is_set():
            return
        self.ended.set()
        self.state = "ended"
        self.hangup_cause = cause
        self._finished = time.monotonic()
        self._final_report = self._build_report()
        if self.stream is not None:
            self.gateway._fed_calls.pop(self.stream, None)
            await self.stream.aclose()
        if self.pending_stream is not None:  # an outbound call that never got media
            self.pending_stream.close()
            self.pending_stream = None
        if self.agent_call is not None:
            self.agent_call.close()
        if self._agent_task is not None and self._agent_task is not asyncio.current_task():
            done, _ = await asyncio.wait({self._agent_task}, timeout=AGENT_GRACE_S)
            if not done:
                self._agent_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._agent_task
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        report = self._final_report
        # Errors the agent made while winding down still count.
        if self.agent_call is not None:
            report.agent_errors = dict(self.agent_call.agent_errors)
        log.info("call ended", extra={"event": "call_ended", **report.to_dict()})
        # The agent's Call and this one refer to each other (it controls
        # the call through us): undone now that the agent is done, so that
        # both die by reference counting and not in a full garbage
        # collection, which the gateway keeps rare (see rtpcore.cli).
        self.agent_call = None
        self.gateway._call_finished(self, report)

    def report(self) -> CallReport:
        """The call's report: final once it has ended, a snapshot before."""
        return self._final_report if self._final_report is not None else self._build_report()

    def _build_report(self) -> CallReport:
        media = self.sip_call.media
        stats = self.stream.stats() if self.stream is not None else None
        end = self._finished if self._finished is not None else time.monotonic()
        expected = stats.packets_expected if stats is not None else 0
        lost = max(0, stats.packets_lost) if stats is not None else 0
        return CallReport(
            call_sid=self.call_sid, direction=self.direction, from_number=self.from_number,
            to_number=self.to_number,
            duration_s=round(end - self._answered, 3) if self._answered is not None else 0.0,
            codec=media.codec.encoding if media is not None else "",
            srtp=media is not None and media.local_crypto is not None,
            jitter_ms=round(stats.jitter_ms, 2) if stats is not None else 0.0,
            loss_percent=round(100.0 * lost / expected, 2) if expected else 0.0,
            concealed_ms=stats.concealed_ms if stats is not None else 0.0,
            mos=round(stats.mos, 2) if stats is not None and stats.mos is not None else None,
            setup_time_ms=round(self.setup_time_ms, 1) if self.setup_time_ms is not None
            else None,
            hangup_cause=self.hangup_cause or "in progress",
            packets_sent=stats.packets_sent if stats is not None else 0,
            packets_received=stats.packets_received if stats is not None else 0,
            frames_unread=(stats.frames_overrun if stats is not None else 0)
            + (self.agent_call.frames_dropped if self.agent_call is not None else 0),
            dropped=dict(stats.dropped) if stats is not None else {},
            agent_errors=dict(self.agent_call.agent_errors) if self.agent_call else {},
            recording=self.recording)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
