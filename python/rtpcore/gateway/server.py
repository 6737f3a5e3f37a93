"""The gateway: SIP in (and out), media engine, one agent per call.

::

    from rtpcore.gateway import Gateway, load_config

    gw = Gateway(load_config("gateway.toml"))      # agent from the config
    gw = Gateway(config, agent=my_agent)            # or: async def my_agent(call)
    await gw.start()                                # SIP listening, trunks registered
    ...
    await gw.stop(drain_timeout=30)                 # new calls refused, running ones drain

``Gateway`` owns one ``SIPEndpoint`` per configured transport, one per trunk
that has credentials (its own registration and digest answers), and one
media ``Engine``. Each call is a ``GatewayCall`` (``rtpcore.gateway.bridge``)
in ``gw.calls``, by its call SID. Listeners (``add_listener``) hear about
calls starting, ending (with their report) and failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from rtpcore.aio.sip import SIPEndpoint
from rtpcore.errors import CallFailed
from rtpcore.gateway.agent import Agent
from rtpcore.gateway.bridge import CallReport, GatewayCall
from rtpcore.gateway.config import GatewayConfig
from rtpcore.gateway.default_agent import default_agent
from rtpcore.gateway.rawpcm import raw_pcm_agent
from rtpcore.gateway.twilio import SAMPLE_RATE as TWILIO_RATE
from rtpcore.gateway.twilio import twilio_agent
from rtpcore.media import Engine, MediaStream
from rtpcore.sdp import AudioPolicy, OfferAnswerError
from rtpcore.sip import parse_uri
from rtpcore.sip.auth import Credentials, DigestClient
from rtpcore.sip.ua import (
    CallAnswered,
    CallEnded,
    CallEstablished,
    CallProgress,
    CallUpdated,
    DTMFReceived,
    IncomingCall,
    Registered,
    RegistrationFailed,
    TransferProgress,
    TransferRequested,
    UserAgent,
)

__all__ = ["Gateway"]

log = logging.getLogger("rtpcore.gateway")


class Gateway:
    """See the module doc. ``agent``: None (the config's ``agent.url``
    decides), ``"default"``, a ``ws://``/``wss://`` URL (protocol from
    ``agent.protocol``) or an ``async def agent(call)``."""

    def __init__(self, config: GatewayConfig | None = None,
                 agent: Agent | str | None = None) -> None:
        self.config = config or GatewayConfig()
        self.account_sid = self.config.account_sid
        self.calls: dict[str, GatewayCall] = {}
        self.engine: Engine | None = None
        #: Calls whose frames the batched reader hands over, by stream.
        self._fed_calls: dict[MediaStream, GatewayCall] = {}
        self._frame_reader: asyncio.Task[None] | None = None
        self._agent = agent if agent is not None else self.config.agent.url
        self._resolve_agent(None)  # a bad agent fails here, not on the first call
        self._listeners: list[Any] = []
        self._endpoints: dict[str, SIPEndpoint] = {}
        self._trunk_endpoints: dict[str, SIPEndpoint] = {}
        # by id() of the user agent's Call object, which lives as long as the call
        self._by_sip_call: dict[int, GatewayCall] = {}
        self._dialing: dict[int, asyncio.Future[None]] = {}
        self._accepting = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    # --- public API ------------------------------------------------------------------

    def add_listener(self, listener: Any) -> None:
        """``listener`` gets ``call_started(call)``, ``call_ended(call, report)``
        and ``call_failed(call, status_code, reason)`` for the methods it has."""
        self._listeners.append(listener)

    def address(self, transport: str = "UDP") -> tuple[str, int]:
        """Where SIP listens on ``transport`` (the real port when 0 was asked for)."""
        ua = self._endpoints[transport.upper()].ua
        return ua.host, ua.port

    @property
    def transports(self) -> tuple[str, ...]:
        """The transports SIP listens on ("UDP", "TCP", "TLS")."""
        return tuple(self._endpoints)

    @property
    def media_host(self) -> str:
        return self.config.media.host

    async def start(self) -> None:
        """Open the media engine and the SIP listeners, register to trunks."""
        media = self.config.media
        self.engine = Engine(bind_host=media.host, port_range=(media.port_min, media.port_max),
                             workers=media.workers, max_queued_ms=self.config.agent.queue_ms)
        sip = self.config.sip
        allow = None
        if sip.allow is not None:
            allow = list(sip.allow) + [n for t in self.config.trunks for n in t.allow]
        try:
            for transport, port in (("UDP", sip.udp_port), ("TCP", sip.tcp_port),
                                    ("TLS", sip.tls_port)):
                if port is None:
                    continue
                ua = self._user_agent(transport, port, allow)
                self._endpoints[transport] = await SIPEndpoint.start(
                    ua, on_event=self._on_sip_event, ssl_context=self._tls_context()
                    if transport == "TLS" else None)
            for trunk in self.config.trunks:
                if trunk.username is None:
                    continue
                ua = self._user_agent(trunk.transport, 0, allow)
                ua.credentials = DigestClient([Credentials(trunk.username, trunk.password or "",
                                                           trunk.realm)])
                endpoint = await SIPEndpoint.start(
                    ua, on_event=self._on_sip_event, ssl_context=self._tls_context()
                    if trunk.transport == "TLS" else None)
                self._trunk_endpoints[trunk.name] = endpoint
                if trunk.registrar is not None:
                    destination = trunk.destination
                    assert destination is not None  # invariant: a registrar gives one
                    endpoint.command("register", trunk.registrar, [destination],
                                     expires=trunk.expires)
        except BaseException:
            await self._close_endpoints()
            self.engine.close()
            raise
        self._accepting = True
        self._frame_reader = asyncio.create_task(self._read_frames(self.engine))
        log.info("gateway started", extra={
            "event": "gateway_started",
            "sip": {t: f"{e.ua.host}:{e.ua.port}" for t, e in self._endpoints.items()},
            "agent": self._agent if isinstance(self._agent, str) else "in-process"})

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Refuse new calls (503), let running calls end by themselves for up
        to ``drain_timeout`` s (default: the config's), then hang up the rest."""
        timeout = self.config.drain_timeout if drain_timeout is None else drain_timeout
        self._accepting = False
        for endpoint in self._trunk_endpoints.values():
            with contextlib.suppress(ValueError):
                endpoint.command("unregister")
        if self.calls:
            log.info("draining calls", extra={"event": "draining", "calls": len(self.calls),
                                              "timeout_s": timeout})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        for call in list(self.calls.values()):
            await call.hangup(cause="gateway shutdown")
        if self._tasks:  # calls the far end ended meanwhile: let them finish their reports
            _, late = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in late:
                task.cancel()
        await self._close_endpoints()
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self._frame_reader is not None:
            await self._frame_reader  # it ends once the engine is closed
            self._frame_reader = None
        log.info("gateway stopped", extra={"event": "gateway_stopped"})

    async def hangup(self, call_sid: str) -> None:
        """Hang up the call with that SID (KeyError if there is none)."""
        await self.calls[call_sid].hangup()

    async def dial(self, target_uri: str, *, trunk: str | None = None,
                   from_uri: str | None = None, from_name: str | None = None,
                   headers: dict[str, str] | None = None,
                   agent: Agent | str | None = None, early_media: bool = True,
                   timeout: float = 60.0) -> GatewayCall:
        """Call ``target_uri`` (through ``trunk``, with its credentials, or
        straight to the URI's host) and bridge it to ``agent`` once answered.
        The From header carries ``from_uri``'s user and ``from_name`` as its
        display name.

        Raises ``CallFailed(status_code, reason)`` when the call is not
        answered: the callee's final status (486 busy, 480, 603 ...), or 487
        when nothing answered within ``timeout`` seconds (we sent CANCEL).
        """
        if not self._accepting or self.engine is None:
            raise RuntimeError("gateway: not started, or stopping")
        uri = parse_uri(target_uri, "target_uri")
        if trunk is not None:
            settings = self.config.trunk(trunk)
            endpoint = self._trunk_endpoints.get(trunk) or self._endpoints[settings.transport]
            destination = settings.destination or _uri_destination(uri, settings.transport)
        else:
            transport = (uri.params.get("transport") or "UDP").upper()
            endpoint = self._endpoints.get(transport) or next(iter(self._endpoints.values()))
            destination = _uri_destination(uri, endpoint.ua.transport)
        from_user = parse_uri(from_uri, "from_uri").user if from_uri else None
        run, rate, ulaw = self._resolve_agent(agent)  # a bad agent fails before anything is sent
        stream = self.engine.allocate(batch=ulaw is not None)
        try:
            sip_call = endpoint.invite(target_uri, destination, self.media_host,
                                       stream.local_port, from_user=from_user,
                                       from_name=from_name, headers=list((headers or {}).items()))
        except BaseException:
            stream.close()
            raise
        call = GatewayCall(self, endpoint, sip_call, direction="outbound",
                           from_number=from_user or endpoint.ua.user,
                           to_number=uri.user or str(uri), agent=run, sample_rate=rate,
                           ulaw_passthrough=bool(ulaw), fed=ulaw is not None)
        call.pending_stream = stream
        call.early_media = early_media
        self._register(call)
        key = id(sip_call)
        answered = asyncio.get_running_loop().create_future()
        self._dialing[key] = answered
        try:
            await asyncio.wait_for(asyncio.shield(answered), timeout)
        except TimeoutError:
            # Listeners hear about it now: the CANCEL's 487 comes after the call is gone.
            self._notify("call_failed", call, 487, "no answer")
            await call.hangup(cause="no answer")
            raise CallFailed(487, "no answer", call.call_sid) from None
        finally:
            self._dialing.pop(key, None)
        return call

    # --- internals ----------------------------------------------------------------------

    def _user_agent(self, transport: str, port: int, allow: list[str] | None) -> UserAgent:
        sip, media = self.config.sip, self.config.media
        policy = AudioPolicy(codecs=media.codecs, srtp=media.srtp, ptime=media.ptime)
        return UserAgent(sip.host, port, transport, user=sip.user, policy=policy, allow=allow,
                         rate=sip.rate, user_agent="rtpcore-gateway")

    def _tls_context(self) -> ssl.SSLContext:
        sip = self.config.sip
        assert sip.tls_cert is not None and sip.tls_key is not None  # invariant: config.check
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sip.tls_cert, sip.tls_key)
        return context

    def _resolve_agent(self, agent: Agent | str | None) -> tuple[Agent, int, bool | None]:
        """The agent coroutine for a call, the PCM rate it wants, and for
        the WebSocket protocols (``None`` for in-process agents), whose frames
        the gateway's batched reader feeds them, whether they take the
        caller's μ-law as it is on PCMU calls (Twilio's format: the engine
        then passes G.711 through instead of decoding it)."""
        chosen = self._agent if agent is None else agent
        settings = self.config.agent
        if callable(chosen):
            return chosen, self.config.media.sample_rate, None
        if chosen == "default":
            return default_agent, self.config.media.sample_rate, None
        if not chosen.startswith(("ws://", "wss://")):
            raise ValueError(f"agent: 'default', a ws:// or wss:// URL, or an async "
                             f"function, got {chosen!r}")
        if settings.protocol == "raw-pcm":
            return (raw_pcm_agent(chosen, connect_timeout=settings.connect_timeout),
                    settings.sample_rate, False)
        return twilio_agent(chosen, connect_timeout=settings.connect_timeout), TWILIO_RATE, True

    def _endpoint_of(self, sip_call: Any) -> SIPEndpoint | None:
        for endpoint in (*self._endpoints.values(), *self._trunk_endpoints.values()):
            if endpoint.ua.calls.get(sip_call.call_id) is sip_call:
                return endpoint
        return None

    def _call_for(self, sip_call: Any) -> GatewayCall | None:
        call = self._by_sip_call.get(id(sip_call))
        return call if call is not None and call.sip_call is sip_call else None

    def _on_sip_event(self, event: object) -> None:
        # Called from inside the SIP endpoint's input path: an exception here
        # would cut the endpoint's processing short for every call.
        try:
            self._dispatch(event)
        except Exception:
            log.exception("error handling a SIP event", extra={
                "event": "internal_error", "sip_event": type(event).__name__})

    def _dispatch(self, event: object) -> None:
        if isinstance(event, IncomingCall):
            self._on_incoming(event)
        elif isinstance(event, Registered):
            log.info("registered", extra={"event": "registered",
                                          "registrar": f"{event.destination[1]}:"
                                                       f"{event.destination[2]}",
                                          "expires": event.expires})
        elif isinstance(event, RegistrationFailed):
            log.error("registration failed", extra={
                "event": "registration_failed", "status_code": event.status_code,
                "reason": event.reason, "retry_in": event.retry_in})
        elif isinstance(event, (CallProgress, CallAnswered, CallEstablished, CallUpdated,
                                CallEnded, DTMFReceived, TransferProgress, TransferRequested)):
            call = self._call_for(event.call)
            if call is not None:
                self._on_call_event(call, event)

    def _on_incoming(self, event: IncomingCall) -> None:
        sip_call, request = event.call, event.request
        endpoint = self._endpoint_of(sip_call)
        assert endpoint is not None  # invariant: the call was just added to its agent
        if not self._accepting or self.engine is None:
            endpoint.reject(sip_call, 503)
            return
        run, rate, ulaw = self._resolve_agent(None)
        try:
            stream = self.engine.allocate(batch=ulaw is not None)
        except Exception:  # no free port, engine closing: the caller hears 503
            log.exception("no media stream", extra={"event": "allocate_failed"})
            endpoint.reject(sip_call, 503)
            return
        call = GatewayCall(self, endpoint, sip_call, direction="inbound",
                           from_number=request.from_.uri.user or str(request.from_.uri),
                           to_number=request.to.uri.user or str(request.to.uri),
                           agent=run, sample_rate=rate, ulaw_passthrough=bool(ulaw),
                           fed=ulaw is not None)
        self._register(call)
        try:
            endpoint.answer(sip_call, self.media_host, stream.local_port)
        except OfferAnswerError as exc:  # the agent has answered 488 already
            stream.close()
            log.info("no usable media in offer", extra={
                "event": "call_rejected", "call_sid": call.call_sid, "reason": str(exc)})
            return
        if self._started_media(call, lambda: call.start_media(stream)):
            call.connected()
        else:
            stream.close()

    def _on_call_event(self, call: GatewayCall, event: object) -> None:
        if isinstance(event, CallEnded):
            dialing = self._dialing.get(id(call.sip_call))
            if call.state == "dialing" and call.direction == "outbound":
                self._notify("call_failed", call, event.status_code, event.reason)
                if dialing is not None and not dialing.done():
                    dialing.set_exception(CallFailed(event.status_code, event.reason,
                                                     call.call_sid))
            cause = event.reason if event.status_code < 300 else \
                f"{event.status_code} {event.reason}"
            self._spawn(call.finish(cause))
        elif isinstance(event, DTMFReceived):
            call.on_sip_dtmf(event.digit, event.duration_ms)
        elif isinstance(event, CallUpdated):
            call.on_sip_updated()
        elif isinstance(event, TransferProgress):
            call.on_transfer_progress(event.status_code)
        elif isinstance(event, TransferRequested):
            # We bridge to agents, we do not place calls for the far end.
            call.endpoint.command("notify_transfer", call.sip_call, 603)
        elif isinstance(event, CallProgress) and call.direction == "outbound":
            if call.early_media and call.sip_call.media is not None and call.stream is None:
                self._started_media(call, call.start_pending_media)
        elif isinstance(event, CallAnswered):
            if call.stream is None and not self._started_media(call, call.start_pending_media):
                return
            call.connected()
            dialing = self._dialing.get(id(call.sip_call))
            if dialing is not None and not dialing.done():
                dialing.set_result(None)

    def _started_media(self, call: GatewayCall, start: Any) -> bool:
        """Run ``start``; if the engine refuses what was negotiated, hang up."""
        try:
            start()
        except ValueError as exc:  # negotiated, but not something the engine runs
            log.warning("media not started", extra={"event": "media_failed",
                                                    "call_sid": call.call_sid, "reason": str(exc)})
            self._spawn(call.hangup(cause=f"media failed: {exc}"))
            return False
        return True

    async def _read_frames(self, engine: Engine) -> None:
        """Caller audio of the WebSocket agents' calls: one wake-up and one
        call into the engine hand over the frames of every call that has
        some, instead of a task woken per call and frame; and at most one
        such wake-up per ``READ_TICK_S``."""
        while batch := await engine.read_frames(tick=READ_TICK_S):
            self._hand_over(batch)
            del batch  # nothing of an ended call kept while the reader waits

    def _hand_over(self, batch: list[tuple[MediaStream, Any]]) -> None:
        fed = self._fed_calls
        for stream, frame in batch:
            call = fed.get(stream)
            if call is None:  # the call has just ended
                continue
            try:
                call.feed(frame)
            except Exception:  # an agent adapter's bug must not stop other calls' audio
                log.exception("agent failed on caller audio", extra={
                    "event": "agent_failed", "call_sid": call.call_sid})
                fed.pop(stream, None)
                self._spawn(call.hangup(cause="agent failed"))

    def _register(self, call: GatewayCall) -> None:
        self._by_sip_call[id(call.sip_call)] = call
        self.calls[call.call_sid] = call
        self._idle.clear()

    def _call_finished(self, call: GatewayCall, report: CallReport) -> None:
        self._by_sip_call.pop(id(call.sip_call), None)
        self.calls.pop(call.call_sid, None)
        if not self.calls:
            self._idle.set()
        if call.setup_time_ms is not None:  # it was connected; failures were told apart
            self._notify("call_ended", call, report)

    def _notify(self, name: str, *args: Any) -> None:
        for listener in self._listeners:
            method = getattr(listener, name, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:  # a broken listener must not break calls
                log.exception("listener failed", extra={"event": "listener_failed",
                                                        "callback": name})

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_endpoints(self) -> None:
        endpoints: Iterable[SIPEndpoint] = (*self._endpoints.values(),
                                           *self._trunk_endpoints.values())
        for endpoint in endpoints:
            await endpoint.close()
        self._endpoints.clear()
        self._trunk_endpoints.clear()


#: How often the gateway takes the engine's frames and events at most: one
#: frame time. The engine's workers finish a round whenever packets come in
#: or a call's playout is due (calls' 20 ms ticks are spread over the 20 ms),
#: and each round that finds the application's list empty signals the
#: loop: about a thousand wake-ups a second at 300 calls, each an epoll
#: return, a take of a few frames and a task step. Taken once a tick, a
#: frame waits at most a tick longer on its way to the agent.
READ_TICK_S = 0.020


def _uri_destination(uri: Any, transport: str) -> tuple[str, str, int]:
    return (transport, uri.host.strip("[]"), uri.port or (5061 if transport == "TLS" else 5060))

