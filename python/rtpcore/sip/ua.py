"""A sans-IO SIP user agent: calls in and out, for one local address.

``UserAgent`` takes datagrams/stream messages with ``receive(data, source,
now)``, application commands (``invite``, ``answer``, ``hangup``, ``hold``
...) and clock ticks (``on_timer(now)``), and produces two queues: bytes to
send with their destination (``take_outgoing``) and events for the
application (``take_events``). ``rtpcore.aio`` drives it over real sockets;
tests drive two of them against each other in memory.

What it does: INVITE (100/180/183/200/ACK, 2xx retransmission until ACK,
RFC 3261 section 13.3.1.4), CANCEL, BYE, re-INVITE and UPDATE (hold, resume,
address or codec change), OPTIONS (answered; ``options()`` pings), INFO
with application/dtmf-relay, digest authentication (answering challenges
for calls we place, challenging callers outside the allowlist), rport
(RFC 3581), a per-source rate limit, and a 4xx for malformed requests.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rtpcore.errors import ParseError, SIPError, SIPParseError
from rtpcore.sdp import (
    AudioPolicy,
    NegotiatedAudio,
    OfferAnswerError,
    SessionDescription,
    create_answer,
    create_offer,
    negotiate,
)
from rtpcore.sip import (
    REASON_PHRASES,
    Address,
    Headers,
    Limits,
    Message,
    Request,
    Response,
    parse_address,
    parse_message,
    parse_uri,
    session_description,
)
from rtpcore.sip.auth import DigestClient, DigestServer
from rtpcore.sip.dialog import Dialog, new_branch, new_call_id, new_tag
from rtpcore.sip.transaction import (
    Action,
    ClientTransaction,
    ServerTransaction,
    Timers,
    Transaction,
    TransactionLayer,
    make_cancel,
    make_response,
)

__all__ = [
    "UserAgent",
    "Call",
    "Outgoing",
    "IncomingCall",
    "CallProgress",
    "CallAnswered",
    "CallEstablished",
    "CallUpdated",
    "CallEnded",
    "DTMFReceived",
    "OptionsResult",
    "TransferRequested",
    "TransferProgress",
    "Registered",
    "RegistrationFailed",
    "ALLOWED_METHODS",
    "SUPPORTED_EXTENSIONS",
]

# What we implement as UAS for Require: session timers (RFC 4028) and
# reliable provisional responses (RFC 3262).
SUPPORTED_EXTENSIONS = ("timer", "100rel")
ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "PRACK",
                   "REFER", "NOTIFY")
_ALLOW = ", ".join(ALLOWED_METHODS)  # the Allow header field value
# The bodies we take an offer or answer from (RFC 5621: SDP alone or as a
# part of a multipart body), as listed in Accept.
ACCEPTED_BODIES = "application/sdp, multipart/mixed, multipart/alternative"
# (transport, host, port); stream transports answer on the connection from that peer.
Destination = tuple[str, str, int]


@dataclass(frozen=True)
class Outgoing:
    """Bytes to send and where to."""

    data: bytes
    destination: Destination


@dataclass
class Call:
    """One call, inbound or outbound. Read-only for applications."""

    call_id: str
    outbound: bool
    # incoming, outgoing, early, answered (2xx sent, no ACK yet), established,
    # terminating, terminated
    state: str
    peer: Destination
    dialog: Dialog | None = None
    media: NegotiatedAudio | None = None
    local_sdp: SessionDescription | None = None
    remote_sdp: SessionDescription | None = None
    local_tag: str = ""
    media_address: str = ""
    media_port: int = 0
    on_hold: bool = False
    # protocol bookkeeping
    invite: Request | None = None
    invite_txn: Transaction | None = None
    ack: Request | None = None
    ok_response: Response | None = None
    ok_interval: float = 0.0
    ok_deadline: float | None = None
    ok_give_up: float = 0.0
    pending_offer: bool = False
    pending_sdp: SessionDescription | None = None  # our re-offer awaiting its answer
    auth_attempts: int = 0
    redirects: int = 0
    tried_targets: list[str] = field(default_factory=list)
    last_rseq: int = 0  # RFC 3262: highest reliable provisional we PRACKed
    rseq: int = 0  # RFC 3262: RSeq of our last reliable provisional
    unacked_provisional: Response | None = None  # ... until its PRACK comes
    provisional_token: int = 0
    fallbacks: list[Destination] = field(default_factory=list)  # next hops left to try
    transfer_pending: bool = False
    # RFC 4028 session timer: interval, and who refreshes ("uac"/"uas")
    session_expires: int | None = None
    refresher: str | None = None
    session_token: int = 0


@dataclass(frozen=True)
class IncomingCall:
    """A new INVITE: call ``ring``, ``answer`` or ``reject``."""

    call: Call
    request: Request


@dataclass(frozen=True)
class CallProgress:
    call: Call
    status_code: int


@dataclass(frozen=True)
class CallAnswered:
    """Our outbound call got its 2xx (the ACK is already sent)."""

    call: Call


@dataclass(frozen=True)
class CallEstablished:
    """The ACK for the 2xx we sent arrived: media may flow both ways."""

    call: Call


@dataclass(frozen=True)
class CallUpdated:
    """A re-INVITE or UPDATE (ours or theirs) changed ``call.media``."""

    call: Call


@dataclass(frozen=True)
class CallEnded:
    call: Call
    status_code: int
    reason: str


@dataclass(frozen=True)
class DTMFReceived:
    call: Call
    digit: str
    duration_ms: int


@dataclass(frozen=True)
class OptionsResult:
    """The answer to ``options()`` (408 when nothing came back)."""

    destination: Destination
    status_code: int


@dataclass(frozen=True)
class TransferRequested:
    """The peer asks us to call ``target`` (REFER, blind transfer; already
    answered 202). Report the outcome with ``UserAgent.notify_transfer``."""

    call: Call
    target: str


@dataclass(frozen=True)
class TransferProgress:
    """A NOTIFY about the transfer we asked for: the status the target gave."""

    call: Call
    status_code: int


@dataclass(frozen=True)
class Registered:
    """The registrar at ``destination`` accepted our Contact for ``expires`` s."""

    destination: Destination
    expires: int


@dataclass(frozen=True)
class RegistrationFailed:
    """Every registrar failed (or refused); ``register`` retries later by itself
    unless the refusal is final (4xx other than 408, 6xx)."""

    status_code: int
    reason: str
    retry_in: float | None


@dataclass
class _Registration:
    registrar: str
    destinations: list[Destination]
    expires: int
    call_id: str
    tag: str
    index: int = 0
    seq: int = 0
    auth_attempts: int = 0
    token: int = 0  # bumps on each (re)schedule so stale refresh jobs do nothing
    transaction: Transaction | None = None


_DTMF_RELAY_RE = re.compile(r"Signal\s*=\s*([0-9A-Da-d*#]|1[0-6])", re.IGNORECASE)
_DURATION_RE = re.compile(r"Duration\s*=\s*([0-9]+)", re.IGNORECASE)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class UserAgent:
    """A user agent core bound to ``host:port`` over ``transport``.

    ``allow`` lists trusted networks (e.g. the trunk's addresses): requests
    from elsewhere are challenged with ``auth`` when it is set, refused with
    403 otherwise. ``rate``/``burst`` bound requests per source address per
    second (excess is dropped, never answered: answering a flood feeds it).
    """

    host: str
    port: int
    transport: str = "UDP"
    user: str = "rtpcore"
    policy: AudioPolicy = field(default_factory=AudioPolicy)
    timers: Timers = field(default_factory=Timers)
    credentials: DigestClient | None = None
    auth: DigestServer | None = None
    allow: Iterable[str] | None = None
    rate: float | None = None
    burst: int = 50
    limits: Limits = field(default_factory=Limits)
    user_agent: str = "rtpcore"
    session_expires: int = 1800  # RFC 4028 interval we ask for and accept up to
    min_se: int = 90
    max_redirects: int = 5
    max_sources: int = 10000  # rate-limit buckets kept

    def __post_init__(self) -> None:
        self.transport = self.transport.upper()
        self.layer = TransactionLayer(self.timers)
        self.calls: dict[str, Call] = {}
        self.stats: dict[str, int] = {"received": 0, "malformed": 0, "rate_limited": 0,
                                      "forbidden": 0, "challenged": 0}
        self._networks = (None if self.allow is None
                          else [ipaddress.ip_network(n, strict=False) for n in self.allow])
        # per-source token buckets, least recently seen first
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._out: list[Outgoing] = []
        self._events: list[object] = []
        self._ok_heap: list[tuple[float, int, Call]] = []
        self._seq = itertools.count()
        self._pings: dict[int, Destination] = {}
        self._jobs: list[tuple[float, int, Any]] = []  # (deadline, seq, callable(now))
        self._registration: _Registration | None = None

    # --- queues ------------------------------------------------------------

    def take_outgoing(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[object]:
        events, self._events = self._events, []
        return events

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"

    @property
    def contact(self) -> str:
        params = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"<sip:{self.user}@{self._hostport}{params}>"

    @property
    def _hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/{self.transport} {self._hostport};branch={branch};rport"

    # --- time ------------------------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.layer.next_deadline, self._next_ok_deadline(),
                                 self._jobs[0][0] if self._jobs else None) if d is not None]
        return min(deadlines) if deadlines else None

    def _schedule(self, deadline: float, job: Any) -> None:
        heapq.heappush(self._jobs, (deadline, next(self._seq), job))

    def _next_ok_deadline(self) -> float | None:
        heap = self._ok_heap
        while heap and heap[0][2].ok_deadline != heap[0][0]:
            heapq.heappop(heap)  # the ACK came or the call moved on
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> None:
        self._perform(self.layer.on_timer(now), now)
        while self._jobs and self._jobs[0][0] <= now:
            heapq.heappop(self._jobs)[2](now)
        heap = self._ok_heap
        while heap and heap[0][0] <= now:
            deadline, _, call = heapq.heappop(heap)
            if call.ok_deadline != deadline or call.ok_response is None:
                continue
            if now >= call.ok_give_up:  # section 13.3.1.4: no ACK, end the call
                call.ok_deadline = None
                call.ok_response = None
                self._send_bye(call, now)
                self._end(call, 408, "no ACK for 2xx")
                continue
            self._emit(call.ok_response, call.peer)
            call.ok_interval = min(call.ok_interval * 2, self.timers.t2)
            self._schedule_ok(call, now + call.ok_interval)

    def _schedule_ok(self, call: Call, deadline: float) -> None:
        call.ok_deadline = deadline
        heapq.heappush(self._ok_heap, (deadline, next(self._seq), call))

    # --- input -----------------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], now: float) -> None:
        """A datagram (or one framed stream message) from ``source``."""
        self.stats["received"] += 1
        if not self.admit(source[0], now):
            return
        try:
            message = parse_message(data, self.limits)
        except SIPParseError as exc:
            self.stats["malformed"] += 1
            self._answer_malformed(data, exc, source)
            return
        self.receive_message(message, source, now)

    def receive_message(self, message: Message, source: tuple[str, int], now: float) -> None:
        """A parsed message (stream transports frame with ``StreamParser``)."""
        if isinstance(message, Response):
            _, actions = self.layer.receive(message, now)
            self._perform(actions, now)
            return
        assert isinstance(message, Request)  # invariant: a message is one or the other
        request = message
        self._stamp_via(request, source)
        txn, actions = self.layer.receive(request, now)
        if txn is not None:
            self._perform(actions, now)
            return
        if request.method == "ACK":
            self._on_ack(request, now)
            return
        if request.method == "CANCEL":
            self._on_cancel(request, source, now)
            return
        destination = self._response_destination(request, source)
        if not self._authorized(request, source, destination, now):
            return
        _, actions = self.layer.create_server(request, now, self.reliable, destination,
                                              auto_trying=True)
        self._perform(actions, now)

    def admit(self, ip: str, now: float) -> bool:
        """Rate limit per source: False if this message should be dropped.

        ``receive`` applies it itself; stream transports, which hand over
        framed messages to ``receive_message``, call it first.
        """
        if self.rate is None:
            return True
        buckets = self._buckets
        bucket = buckets.get(ip)
        if bucket is None:
            # Bounded memory under a spoofed-source flood: forget the sources
            # seen least recently (a forgotten source starts with a full burst).
            while len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
            bucket = buckets[ip] = _Bucket(float(self.burst), now)
        else:
            buckets.move_to_end(ip)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            self.stats["rate_limited"] += 1
            return False
        bucket.tokens -= 1.0
        return True

    def _trusted(self, ip: str) -> bool:
        if self._networks is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _authorized(self, request: Request, source: tuple[str, int], destination: Destination,
                    now: float) -> bool:
        if self._trusted(source[0]) or (request.to.tag is not None and self._call_for(request)):
            return True
        if self.auth is None:
            self.stats["forbidden"] += 1
            self._reply_stateless(request, 403, destination)
            return False
        result = self.auth.verify(request, now)
        if result.ok:
            return True
        self.stats["challenged"] += 1
        response = make_response(request, result.status_code, to_tag=new_tag())
        for value in result.challenges:
            response.headers.add(self.auth.challenge_header, value)
        server, actions = self.layer.create_server(request, now, self.reliable, destination,
                                                   auto_trying=False)
        self._perform(actions, now, deliver=False)
        self._perform(self.layer.send_response(server, response, now), now)
        return False

    def _stamp_via(self, request: Request, source: tuple[str, int]) -> None:
        """Section 18.2.1 and RFC 3581: note where the request really came from."""
        values = request.headers.get_all("Via")
        via = request.top_via
        changed = False
        if via.host.strip("[]") != source[0]:
            via.params["received"] = source[0]
            changed = True
        if "rport" in via.params and via.params["rport"] is None:
            via.params["rport"] = str(source[1])
            changed = True
        if changed:
            request.headers.remove("Via")
            request.headers.add("Via", str(via))
            for value in values[1:]:
                request.headers.add("Via", value)

    def _response_destination(self, request: Request, source: tuple[str, int]) -> Destination:
        via = request.top_via
        if self.reliable:
            return (self.transport, source[0], source[1])
        host = via.received or via.host.strip("[]")
        port = via.rport or via.port or 5060
        return ("UDP", host, port)

    def _answer_malformed(self, data: bytes, exc: SIPParseError, source: tuple[str, int]) -> None:
        """Best effort 4xx for a request we could not parse (never for responses)."""
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
        if not head or head[0].upper().startswith("SIP/"):
            return
        wanted = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
                  "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}
        found: dict[str, list[str]] = {}
        for line in head[1:]:
            name, colon, value = line.partition(":")
            key = wanted.get(name.strip().lower())
            if colon and key and "\r" not in value and "\n" not in value:
                found.setdefault(key, []).append(value.strip())
        if set(found) != {"Via", "From", "To", "Call-ID", "CSeq"}:
            return
        response = Response(exc.status_code, exc.reason)
        try:
            for key in ("Via", "From", "To", "Call-ID", "CSeq"):
                for value in found[key]:
                    response.headers.add(key, value)
            data_out = response.encode()
        except ValueError:
            return
        self._out.append(Outgoing(data_out, (self.transport, source[0], source[1])))

    # --- performing transaction actions ---------------------------------------

    def _emit(self, message: Message, destination: Destination) -> None:
        self._out.append(Outgoing(message.encode(), destination))

    def _perform(self, actions: list[Action], now: float, deliver: bool = True) -> None:
        for action in actions:
            txn = action.transaction
            if action.kind == "transmit":
                assert action.message is not None  # invariant of Action("transmit")
                self._emit(action.message, txn.destination)
            elif action.kind == "deliver" and deliver:
                if isinstance(txn, ServerTransaction):
                    self._on_request(txn, action.message, now)
                else:
                    self._on_response(txn, action.message, now)  # type: ignore[arg-type]
            elif action.kind in ("timeout", "transport_error") and isinstance(txn, ClientTransaction):
                code = 408 if action.kind == "timeout" else 503
                self._on_response(txn, Response(code, headers=Headers()), now)

    def _respond(self, txn: ServerTransaction, response: Response, now: float) -> None:
        self._perform(self.layer.send_response(txn, response, now), now)

    def _reply(self, txn: ServerTransaction, request: Request, code: int, now: float,
               to_tag: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> Response:
        response = make_response(request, code, to_tag=to_tag or new_tag())
        for name, value in headers:
            response.headers.add(name, value)
        response.headers.add("Server", self.user_agent)
        self._respond(txn, response, now)
        return response

    def _reply_stateless(self, request: Request, code: int, destination: Destination) -> None:
        if request.method != "ACK":
            self._emit(make_response(request, code, to_tag=new_tag()), destination)

    # --- requests we receive --------------------------------------------------

    def _call_for(self, message: Message) -> Call | None:
        call = self.calls.get(message.call_id)
        if call is None or call.dialog is None:
            return call
        tags = {message.from_.tag, message.to.tag}
        return call if {call.dialog.local_tag, call.dialog.remote_tag} == tags else None

    def _on_request(self, txn: ServerTransaction, request: Request, now: float) -> None:
        method = request.method
        # section 8.2.2.3: an extension the request requires and we lack is a 420
        unsupported = [option for option in request.headers.get_all("Require")
                       if option.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported and method not in ("CANCEL", "ACK"):
            self._reply(txn, request, 420, now, to_tag=request.to.tag,
                        headers=[("Unsupported", ", ".join(unsupported))])
            return
        if request.to.tag is not None:
            call = self._call_for(request)
            if call is None or call.dialog is None:
                self._reply(txn, request, 481, now, to_tag=request.to.tag)
                return
            try:
                call.dialog.check_request(request)
            except SIPError as exc:
                self._reply(txn, request, exc.status_code, now, to_tag=request.to.tag)
                return
            self._on_dialog_request(call, txn, request, now)
            return
        if method == "INVITE":
            self._on_invite(txn, request, now)
        elif method == "OPTIONS":
            self._reply(txn, request, 200, now, headers=self._capabilities())
        elif method in ("BYE", "INFO", "UPDATE"):
            self._reply(txn, request, 481, now)
        elif method in ("REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PRACK",
                        "PUBLISH"):
            self._reply(txn, request, 405, now, headers=[("Allow", _ALLOW)])
        else:
            self._reply(txn, request, 501, now)

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", _ALLOW), ("Accept", ACCEPTED_BODIES),
                ("Accept-Language", "en"), ("Supported", "")]

    def _on_invite(self, txn: ServerTransaction, request: Request, now: float) -> None:
        if request.call_id in self.calls:  # a merged request (section 8.2.2.2)
            self._reply(txn, request, 482, now)
            return
        try:
            offer = _remote_sdp(request)
        except ParseError:
            self._reply(txn, request, 400, now)
            return
        except SIPError as exc:  # a body we cannot use (415)
            self._reply(txn, request, exc.status_code, now, headers=[("Accept", ACCEPTED_BODIES)])
            return
        if not request.contacts:
            self._reply(txn, request, 400, now)
            return
        local_tag = new_tag()
        call = Call(request.call_id, outbound=False, state="incoming",
                    peer=txn.destination, remote_sdp=offer, local_tag=local_tag,
                    invite=request, invite_txn=txn)
        call.dialog = Dialog.from_uas(request, local_tag)
        self.calls[call.call_id] = call
        self._events.append(IncomingCall(call, request))

    def _on_dialog_request(self, call: Call, txn: ServerTransaction, request: Request,
                           now: float) -> None:
        method = request.method
        assert call.dialog is not None  # invariant: dialog requests are matched to a dialog
        tag = call.dialog.local_tag
        if method == "BYE":
            self._reply(txn, request, 200, now, to_tag=tag)
            self._end(call, 200, "remote hangup")
        elif method in ("INVITE", "UPDATE"):
            self._on_reoffer(call, txn, request, now)
        elif method == "INFO":
            digit = _dtmf_from_info(request)
            if digit is not None:
                self._events.append(DTMFReceived(call, digit[0], digit[1]))
            self._reply(txn, request, 200, now, to_tag=tag)
        elif method == "OPTIONS":
            self._reply(txn, request, 200, now, to_tag=tag, headers=self._capabilities())
        elif method == "PRACK":
            rack = request.headers.get("RAck", "").split()
            expected = [str(call.rseq), str(call.invite.cseq.seq) if call.invite else "", "INVITE"]
            if call.unacked_provisional is None or rack != expected:
                self._reply(txn, request, 481, now, to_tag=tag)
                return
            call.unacked_provisional = None  # stops the retransmissions
            self._reply(txn, request, 200, now, to_tag=tag)
        elif method == "REFER":
            target = request.headers.get("Refer-To")
            if target is None or request.headers.count("Refer-To") != 1:
                self._reply(txn, request, 400, now, to_tag=tag)
                return
            self._reply(txn, request, 202, now, to_tag=tag)
            call.transfer_pending = True
            self._events.append(TransferRequested(call, str(parse_address(target).uri)))
            self.notify_transfer(call, 100, now)
        elif method == "NOTIFY" and request.headers.get("Event", "").split(";")[0] == "refer":
            self._reply(txn, request, 200, now, to_tag=tag)
            status = _sipfrag_status(request.body)
            if status is not None:
                self._events.append(TransferProgress(call, status))
        else:
            self._reply(txn, request, 501, now, to_tag=tag,
                        headers=[("Allow", _ALLOW)])

    def refer(self, call: Call, target: str, now: float) -> None:
        """Ask the peer to call ``target`` (blind transfer, RFC 3515)."""
        parse_uri(target, "target")
        self._send_in_dialog(call, "REFER", now, headers=[
            ("Refer-To", f"<{target}>"), ("Referred-By", f"<sip:{self.user}@{self._hostport}>")])

    def notify_transfer(self, call: Call, status_code: int, now: float) -> None:
        """Tell the transferor how the call to the REFER target goes (a NOTIFY
        with a message/sipfrag status line; a final status ends it)."""
        if not call.transfer_pending:
            raise ValueError("call: no transfer to report on")
        final = status_code >= 200
        state = "terminated;reason=noresource" if final else "active;expires=60"
        reason = REASON_PHRASES.get(status_code, "")
        body = f"SIP/2.0 {status_code} {reason}\r\n".encode()
        self._send_in_dialog(call, "NOTIFY", now, body, "message/sipfrag;version=2.0", headers=[
            ("Event", "refer"), ("Subscription-State", state)])
        if final:
            call.transfer_pending = False

    def _on_reoffer(self, call: Call, txn: ServerTransaction, request: Request,
                    now: float) -> None:
        assert call.dialog is not None  # invariant: only called for dialog requests
        tag = call.dialog.local_tag
        if call.state != "established" or call.pending_offer:
            self._reply(txn, request, 491, now, to_tag=tag)  # glare (section 14.2)
            return
        try:
            offer = _remote_sdp(request)
        except ParseError:
            self._reply(txn, request, 400, now, to_tag=tag)
            return
        except SIPError as exc:  # a body we cannot use (415)
            self._reply(txn, request, exc.status_code, now, to_tag=tag,
                        headers=[("Accept", ACCEPTED_BODIES)])
            return
        if offer is None:  # a session refresh (RFC 4028) with no new offer
            sdp = call.local_sdp if request.method == "INVITE" else None
            response = self._sdp_response(request, 200, tag, sdp)
            self._negotiate_session_timer(call, request, response, now)
            self._respond(txn, response, now)
            if request.method == "INVITE":
                self._start_ok_retransmission(call, response, now)
            return
        try:
            direction = "sendonly" if call.on_hold else self.policy.direction
            policy = AudioPolicy(**{**self.policy.__dict__, "direction": direction})
            answer, negotiated = create_answer(offer, call.media_address, call.media_port, policy,
                                               previous=call.local_sdp)
        except OfferAnswerError:
            self._reply(txn, request, 488, now, to_tag=tag)
            return
        call.dialog.update_target(request)
        call.remote_sdp, call.local_sdp, call.media = offer, answer, negotiated
        response = self._sdp_response(request, 200, tag, answer)
        self._negotiate_session_timer(call, request, response, now)
        self._respond(txn, response, now)
        if request.method == "INVITE":
            self._start_ok_retransmission(call, response, now)
        self._events.append(CallUpdated(call))

    def _sdp_response(self, request: Request, code: int, tag: str,
                      sdp: SessionDescription | None) -> Response:
        response = make_response(request, code, to_tag=tag)
        # section 12.1.1: a dialog-establishing response mirrors Record-Route
        for route in request.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", route)
        response.headers.add("Contact", self.contact)
        response.headers.add("Allow", _ALLOW)
        response.headers.add("Server", self.user_agent)
        if sdp is not None:
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp.encode()
        return response

    def _start_ok_retransmission(self, call: Call, response: Response, now: float) -> None:
        call.ok_response = response
        call.ok_give_up = now + 64 * self.timers.t1
        if self.reliable:  # section 13.3.1.4: only the ACK wait over TCP
            call.ok_interval = 64 * self.timers.t1
        else:
            call.ok_interval = self.timers.t1
        self._schedule_ok(call, now + call.ok_interval)

    def _on_ack(self, ack: Request, now: float) -> None:
        call = self._call_for(ack)
        if call is None or call.ok_response is None:
            return  # a stray ACK is dropped (section 17.2.3 has no response for it)
        if call.ok_response.cseq.seq != ack.cseq.seq:
            return
        call.ok_response = None
        call.ok_deadline = None
        if call.pending_offer and ack.body:  # we offered in the 2xx (offer-less INVITE)
            call.pending_offer = False
            try:
                answer = _remote_sdp(ack)
                if answer is None:
                    raise OfferAnswerError("the ACK carries no session description")
                assert call.local_sdp is not None  # invariant: we sent the offer
                call.media = negotiate(call.local_sdp, answer)
                call.remote_sdp = answer
            except (SIPError, ParseError, OfferAnswerError):
                self._send_bye(call, now)
                self._end(call, 488, "unusable answer in ACK")
                return
        if call.state != "established":
            call.state = "established"
            self._events.append(CallEstablished(call))

    def _on_cancel(self, cancel: Request, source: tuple[str, int], now: float) -> None:
        destination = self._response_destination(cancel, source)
        server, _ = self.layer.create_server(cancel, now, self.reliable, destination,
                                             auto_trying=False)
        key = (cancel.top_via.branch or "", cancel.top_via.sent_by.lower(), "INVITE")
        invite_txn = self.layer.servers.get(key)
        if invite_txn is None or invite_txn.state != "proceeding":
            self._reply(server, cancel, 481, now)
            return
        self._reply(server, cancel, 200, now)
        call = self.calls.get(cancel.call_id)
        tag = call.local_tag if call is not None else new_tag()
        self._reply(invite_txn, invite_txn.request, 487, now, to_tag=tag)
        if call is not None:
            self._end(call, 487, "cancelled by caller")

    # --- application commands: inbound calls ---------------------------------

    def ring(self, call: Call, now: float, early_media: bool = False) -> None:
        """Send 180 Ringing (or 183 Session Progress with our answer)."""
        txn, request = self._pending_invite(call)
        if early_media and call.remote_sdp is not None and call.media is None:
            self._negotiate_inbound(call)
        sdp = call.local_sdp if early_media else None
        code = 183 if early_media else 180
        response = self._sdp_response(request, code, call.local_tag, sdp)
        required = [v.lower() for v in request.headers.get_all("Require")]
        if "100rel" in required:  # RFC 3262: the caller insists on reliability
            call.rseq = call.rseq + 1 if call.rseq else 1 + secrets.randbelow(2**16)
            response.headers.add("Require", "100rel")
            response.headers.add("RSeq", str(call.rseq))
            self._send_reliably(call, txn, response, now)
        else:
            self._respond(txn, response, now)
        call.state = "early"

    def _send_reliably(self, call: Call, txn: ServerTransaction, response: Response,
                       now: float) -> None:
        """Send a reliable provisional; repeat it (T1, doubling) until its
        PRACK; give up after 64*T1 by rejecting the call (RFC 3262 section 3)."""
        self._respond(txn, response, now)
        call.unacked_provisional = response
        call.provisional_token += 1
        token = call.provisional_token
        give_up = now + 64 * self.timers.t1

        def retransmit(t: float, interval: float) -> None:
            if call.provisional_token != token or call.unacked_provisional is None:
                return
            if t >= give_up or txn.state != "proceeding":
                call.unacked_provisional = None
                if txn.state == "proceeding":
                    self.reject(call, 500, t)
                return
            self._respond(txn, response, t)
            self._schedule(min(t + interval, give_up), lambda t2: retransmit(t2, interval * 2))

        first = 64 * self.timers.t1 if self.reliable else self.timers.t1
        self._schedule(now + first, lambda t: retransmit(t, first * 2))

    def answer(self, call: Call, media_address: str, media_port: int, now: float) -> None:
        """Answer with 200 OK and our SDP (an answer, or an offer if they sent none).

        Raises ``OfferAnswerError`` after rejecting the call with 488 if the
        offer has nothing we can use.
        """
        txn, request = self._pending_invite(call)
        call.media_address, call.media_port = media_address, media_port
        interval = _session_interval(request)
        if interval is not None and interval < self.min_se:  # RFC 4028 section 8.1
            self._reply(txn, request, 422, now, to_tag=call.local_tag,
                        headers=[("Min-SE", str(self.min_se))])
            self._end(call, 422, "session interval too small")
            return
        try:
            if call.remote_sdp is None:
                call.local_sdp = create_offer(media_address, media_port, self.policy)
                call.pending_offer = True
            elif call.media is None:
                self._negotiate_inbound(call)
        except OfferAnswerError:
            self.reject(call, 488, now)
            raise
        response = self._sdp_response(request, 200, call.local_tag, call.local_sdp)
        self._negotiate_session_timer(call, request, response, now)
        self._respond(txn, response, now)
        call.state = "answered"
        self._start_ok_retransmission(call, response, now)

    def _negotiate_inbound(self, call: Call) -> None:
        assert call.remote_sdp is not None  # invariant: only with an offer
        if not call.media_port:
            raise ValueError("call: answer() or ring(early_media) needs the media address first")
        call.local_sdp, call.media = create_answer(call.remote_sdp, call.media_address,
                                                   call.media_port, self.policy)

    def set_media_address(self, call: Call, media_address: str, media_port: int) -> None:
        call.media_address, call.media_port = media_address, media_port

    def reject(self, call: Call, status_code: int, now: float) -> None:
        """Refuse an unanswered inbound call (486 Busy Here, 603 Decline ...)."""
        if not 300 <= status_code <= 699:
            raise ValueError(f"status_code: a rejection is 3xx-6xx, got {status_code}")
        txn, request = self._pending_invite(call)
        self._reply(txn, request, status_code, now, to_tag=call.local_tag)
        self._end(call, status_code, "rejected")

    def _pending_invite(self, call: Call) -> tuple[ServerTransaction, Request]:
        txn = call.invite_txn
        if call.outbound or not isinstance(txn, ServerTransaction) or txn.state != "proceeding":
            raise ValueError("call: not an inbound call waiting for an answer")
        assert call.invite is not None  # invariant: set with invite_txn
        return txn, call.invite

    # --- application commands: outbound calls ----------------------------------

    def invite(self, target: str,
               destination: Destination | tuple[str, int] | list[Destination],
               media_address: str, media_port: int, now: float,
               from_user: str | None = None, headers: Iterable[tuple[str, str]] = (),
               from_name: str | None = None) -> Call:
        """Place a call to ``target`` (a SIP URI) through ``destination``.

        ``from_user`` sets the user part of the From header (this agent's user
        by default) and ``from_name`` its display name (none by default): the
        caller ID a callee's phone shows.

        A list of destinations (e.g. from ``resolve_sip_targets``) is tried in
        order: a timeout, transport error or 503 before any answer moves the
        INVITE to the next one (RFC 3263 section 4.3).
        """
        uri = parse_uri(target, "target")
        if from_name is not None and any(ord(c) < 0x20 or c == "\x7f" for c in from_name):
            # Quoting escapes '"' and '\\' only: a CR/LF would end the header.
            raise ValueError(f"from_name: control characters are not allowed: {from_name!r}")
        candidates = (destination if isinstance(destination, list) else [destination])
        if not candidates:
            raise ValueError("destination: at least one is needed")
        destination = _destination(candidates[0], self.transport)
        call_id = new_call_id(self.host)
        local_tag = new_tag()
        offer = create_offer(media_address, media_port, self.policy)
        request = Request("INVITE", uri)
        h = request.headers
        h.add("Via", self._via(new_branch()))
        h.add("Max-Forwards", "70")
        caller = parse_uri(f"sip:{from_user or self.user}@{self._hostport}", "from_user")
        h.add("From", str(Address(caller, from_name, {"tag": local_tag})))
        h.add("To", f"<{uri}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact)
        h.add("Allow", _ALLOW)
        h.add("Supported", "timer, 100rel")
        h.add("Session-Expires", str(self.session_expires))
        h.add("Min-SE", str(self.min_se))
        h.add("User-Agent", self.user_agent)
        for name, value in headers:
            h.add(name, value)
        h.add("Content-Type", "application/sdp")
        request.body = offer.encode()
        call = Call(call_id, outbound=True, state="outgoing", peer=destination,
                    local_sdp=offer, local_tag=local_tag, media_address=media_address,
                    media_port=media_port, invite=request,
                    fallbacks=[_destination(d, self.transport) for d in candidates[1:]])
        self.calls[call_id] = call
        call.invite_txn, actions = self.layer.send_request(request, now, self.reliable,
                                                           destination)
        self._perform(actions, now)
        return call

    def hangup(self, call: Call, now: float) -> None:
        """End a call: BYE once established, CANCEL while ringing, 603 if inbound."""
        if call.state in ("terminating", "terminated"):
            return
        if not call.outbound and call.state in ("incoming", "early"):
            self.reject(call, 603, now)
        elif call.outbound and call.state in ("outgoing", "early"):
            self._send_cancel(call, now)
        else:
            self._send_bye(call, now)
            call.state = "terminating"

    def _send_cancel(self, call: Call, now: float) -> None:
        assert call.invite is not None  # invariant: outbound calls keep their INVITE
        call.state = "terminating"
        _, actions = self.layer.send_request(make_cancel(call.invite), now, self.reliable,
                                             call.peer)
        self._perform(actions, now)

    def _send_in_dialog(self, call: Call, method: str, now: float, body: bytes = b"",
                        content_type: str | None = None,
                        headers: Iterable[tuple[str, str]] = ()) -> None:
        if call.dialog is None:
            raise ValueError("call: no dialog yet")
        request = call.dialog.create_request(method, self.contact, body, content_type)
        request.headers.add("Via", self._via(new_branch()))
        for name, value in headers:
            request.headers.add(name, value)
        _, actions = self.layer.send_request(request, now, self.reliable,
                                             self._next_hop(request, call))
        self._perform(actions, now)

    def _next_hop(self, request: Request, call: Call) -> Destination:
        """Where an in-dialog request goes (section 12.2.1.1 and RFC 3263 for
        literal addresses): the first Route, else the remote target. Stream
        transports reuse the dialog's connection (NAT-friendly); a host name
        falls back to the peer we talk to, as the core does no DNS."""
        if self.reliable:
            return call.peer
        routes = request.routes
        uri = routes[0].uri if routes else request.uri
        host = uri.host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return call.peer
        return (call.peer[0], host, uri.port or 5060)

    def _send_bye(self, call: Call, now: float) -> None:
        self._send_in_dialog(call, "BYE", now)

    def hold(self, call: Call, now: float) -> None:
        """Put the peer on hold: re-INVITE with a sendonly offer (``on_hold``
        turns true with the answer, ``CallUpdated``)."""
        self._reinvite(call, "sendonly", now)

    def resume(self, call: Call, now: float) -> None:
        self._reinvite(call, "sendrecv", now)

    def update_media(self, call: Call, media_address: str, media_port: int, now: float) -> None:
        """Move our media (new address or port): re-INVITE with a new offer."""
        call.media_address, call.media_port = media_address, media_port
        self._reinvite(call, "sendonly" if call.on_hold else "sendrecv", now)

    def _reinvite(self, call: Call, direction: str, now: float) -> None:
        if call.state != "established" or call.pending_offer:
            raise ValueError("call: re-INVITE needs an established call with no offer pending")
        policy = AudioPolicy(**{**self.policy.__dict__, "direction": direction})
        # The current session stays in force until the answer comes (14.1).
        call.pending_sdp = create_offer(call.media_address, call.media_port, policy,
                                        previous=call.local_sdp)
        call.pending_offer = True
        self._send_in_dialog(call, "INVITE", now, call.pending_sdp.encode(), "application/sdp")

    def send_dtmf(self, call: Call, digit: str, now: float, duration_ms: int = 160) -> None:
        """Send a DTMF digit as INFO application/dtmf-relay."""
        if len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
            raise ValueError(f"digit: one of 0-9 * # A-D, got {digit!r}")
        body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
        self._send_in_dialog(call, "INFO", now, body, "application/dtmf-relay")

    def options(self, destination: Destination | tuple[str, int], now: float,
                target: str | None = None) -> None:
        """Send OPTIONS (a keep-alive or capability ping); see ``OptionsResult``."""
        destination = _destination(destination, self.transport)
        uri = target or f"sip:{destination[1]}:{destination[2]}"
        request = Request("OPTIONS", uri)
        h = request.headers
        h.add("Via", self._via(new_branch()))
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{self.user}@{self._hostport}>;tag={new_tag()}")
        h.add("To", f"<{uri}>")
        h.add("Call-ID", new_call_id(self.host))
        h.add("CSeq", "1 OPTIONS")
        h.add("Accept", "application/sdp")
        txn, actions = self.layer.send_request(request, now, self.reliable, destination)
        self._pings[id(txn)] = destination
        self._perform(actions, now)

    # --- registration ------------------------------------------------------------

    def register(self, registrar: str, destinations: Iterable[Destination | tuple[str, int]],
                 now: float, expires: int = 3600) -> None:
        """Register our Contact at ``registrar`` (a SIP URI) and keep it fresh.

        ``destinations`` are tried in order (e.g. from ``resolve_sip_targets``):
        a timeout, transport error or 5xx moves to the next one. The binding is
        refreshed before it expires; see ``Registered``/``RegistrationFailed``.
        """
        targets = [_destination(d, self.transport) for d in destinations]
        if not targets:
            raise ValueError("destinations: at least one is needed")
        parse_uri(registrar, "registrar")
        self._registration = _Registration(registrar, targets, expires, new_call_id(self.host),
                                           new_tag())
        self._send_register(now)

    def unregister(self, now: float) -> None:
        """Remove our binding (REGISTER with expires=0) and stop refreshing."""
        reg = self._registration
        if reg is None:
            return
        reg.expires = 0
        reg.token += 1
        self._send_register(now)

    def _send_register(self, now: float, authorize: Response | None = None) -> None:
        reg = self._registration
        assert reg is not None  # invariant: only called while registering
        reg.seq += 1
        request = Request("REGISTER", reg.registrar)
        h = request.headers
        h.add("Via", self._via(new_branch()))
        h.add("Max-Forwards", "70")
        aor = f"<sip:{self.user}@{parse_uri(reg.registrar).host}>"
        h.add("From", f"{aor};tag={reg.tag}")
        h.add("To", aor)
        h.add("Call-ID", reg.call_id)
        h.add("CSeq", f"{reg.seq} REGISTER")
        h.add("Contact", f"{self.contact};expires={reg.expires}")
        h.add("Expires", str(reg.expires))
        h.add("User-Agent", self.user_agent)
        if authorize is not None and self.credentials is not None:
            self.credentials.authorize(request, authorize)
        reg.transaction, actions = self.layer.send_request(request, now, self.reliable,
                                                           reg.destinations[reg.index])
        self._perform(actions, now)

    def _on_register_response(self, txn: ClientTransaction, response: Response,
                              now: float) -> None:
        reg = self._registration
        if reg is None or txn is not reg.transaction or response.status_code < 200:
            return
        code = response.status_code
        if code < 300:
            reg.auth_attempts = 0
            if reg.expires == 0:
                self._registration = None
                return
            granted = _granted_expires(response, self.contact, reg.expires)
            self._events.append(Registered(reg.destinations[reg.index], granted))
            reg.token += 1
            token = reg.token
            refresh_in = max(1.0, granted - min(32.0, granted / 2))
            self._schedule(now + refresh_in, lambda t: self._refresh(token, t))
            return
        if code in (401, 407) and self.credentials is not None and reg.auth_attempts < 2:
            reg.auth_attempts += 1
            self._send_register(now, authorize=response)
            return
        if code == 423:  # Interval Too Brief: ask for what the registrar wants
            minimum = response.headers.get("Min-Expires")
            if minimum is not None and minimum.isdigit() and int(minimum) > reg.expires:
                reg.expires = int(minimum)
                self._send_register(now)
                return
        if (code in (408, 503) or code >= 500) and reg.index + 1 < len(reg.destinations):
            reg.index += 1  # RFC 3263 section 4.3: next server
            reg.auth_attempts = 0
            self._send_register(now)
            return
        retry_in: float | None = None
        if code in (408, 503) or 500 <= code < 600:
            retry_after = response.headers.get("Retry-After", "")
            retry_in = float(retry_after.split(";")[0]) if retry_after[:1].isdigit() else 60.0
            reg.index = 0
            reg.token += 1
            token = reg.token
            self._schedule(now + retry_in, lambda t: self._refresh(token, t))
        self._events.append(RegistrationFailed(code, response.reason, retry_in))

    def _refresh(self, token: int, now: float) -> None:
        reg = self._registration
        if reg is not None and reg.token == token:
            reg.auth_attempts = 0
            self._send_register(now)

    # --- responses to our requests -------------------------------------------

    def _on_response(self, txn: ClientTransaction, response: Response, now: float) -> None:
        method = txn.request.method
        if method == "REGISTER":
            self._on_register_response(txn, response, now)
            return
        if method == "OPTIONS" and id(txn) in self._pings:
            if response.status_code >= 200:
                self._events.append(OptionsResult(self._pings.pop(id(txn)), response.status_code))
            return
        call = self.calls.get(txn.request.call_id)
        if call is None:
            return
        code = response.status_code
        if method == "INVITE":
            if txn is call.invite_txn:
                self._on_invite_response(call, txn, response, now)
            else:
                self._on_reinvite_response(call, txn, response, now)
        elif method == "BYE" and code >= 200:
            self._end(call, 200 if code < 300 else code, "local hangup")
        elif method == "UPDATE" and 200 <= code < 300:
            self._adopt_session_timer(call, response, "uac", now)
        elif method == "UPDATE" and code in (408, 481):
            self._send_bye(call, now)
            self._end(call, code, "session refresh failed")
        elif method == "CANCEL" and code >= 300 and call.state == "terminating":
            call.state = "early"  # the CANCEL failed; the INVITE still runs

    def _on_invite_response(self, call: Call, txn: ClientTransaction, response: Response,
                            now: float) -> None:
        code = response.status_code
        if code < 200:
            if code > 100:
                if response.to.tag and call.dialog is None:
                    call.dialog = Dialog.from_uac(txn.request, response)
                if self._prack(call, txn.request, response, now) is False:
                    return  # a retransmission of a reliable provisional we acknowledged
                if response.body and call.media is None:
                    self._read_answer(call, response, now)
                if call.state == "outgoing":
                    call.state = "early"
                self._events.append(CallProgress(call, code))
            return
        if code < 300:
            if call.ack is not None:  # a retransmitted 2xx: ACK it again
                self._emit(call.ack, self._next_hop(call.ack, call))
                return
            if call.dialog is None or call.dialog.remote_tag != (response.to.tag or ""):
                call.dialog = Dialog.from_uac(txn.request, response)
            call.dialog.update_target(response)
            self._send_ack(call, txn.request, b"", now)
            if call.state == "terminating":  # CANCEL lost the race: hang up now
                self._send_bye(call, now)
                return
            if not self._read_answer(call, response, now):
                return
            call.state = "established"
            self._adopt_session_timer(call, response, "uac", now)
            self._events.append(CallAnswered(call))
            return
        if 300 <= code < 400 and self._follow_redirect(call, txn.request, response, now):
            return
        if code == 422 and call.auth_attempts < 2:
            minimum = response.headers.get("Min-SE", "").split(";")[0].strip()
            if minimum.isdigit():
                call.auth_attempts += 1
                retry = _with_new_transaction(txn.request, self._via(new_branch()))
                retry.headers.set("Session-Expires", minimum)
                retry.headers.set("Min-SE", minimum)
                self._resend_invite(call, retry, now)
                return
        if code in (401, 407) and self.credentials is not None and call.auth_attempts < 2:
            call.auth_attempts += 1
            retry = _with_new_transaction(txn.request, self._via(new_branch()))
            if self.credentials.authorize(retry, response):
                self._resend_invite(call, retry, now)
                return
        if code in (408, 503) and call.fallbacks and call.dialog is None:
            call.peer = call.fallbacks.pop(0)  # RFC 3263 section 4.3: next server
            self._resend_invite(call, _with_new_transaction(txn.request,
                                                            self._via(new_branch())), now)
            return
        self._end(call, code, response.reason or "failed")

    def _prack(self, call: Call, invite: Request, response: Response, now: float) -> bool | None:
        """RFC 3262: acknowledge a reliable provisional response with PRACK.

        None: not a reliable one; True: PRACKed now; False: a repeat.
        """
        requires = [v.lower() for v in response.headers.get_all("Require")]
        rseq = response.headers.get("RSeq", "")
        if "100rel" not in requires or not rseq.isdigit() or call.dialog is None:
            return None
        if int(rseq) <= call.last_rseq:
            return False
        call.last_rseq = int(rseq)
        self._send_in_dialog(call, "PRACK", now, headers=[
            ("RAck", f"{rseq} {invite.cseq.seq} INVITE")])
        return True

    def _resend_invite(self, call: Call, invite: Request, now: float) -> None:
        call.invite = invite
        call.invite_txn, actions = self.layer.send_request(invite, now, self.reliable, call.peer)
        self._perform(actions, now)

    def _follow_redirect(self, call: Call, invite: Request, response: Response,
                         now: float) -> bool:
        """Section 8.1.3.4: retry at the first Contact not tried yet."""
        if call.redirects >= self.max_redirects:
            return False
        call.tried_targets.append(str(invite.uri))
        ranked = sorted(response.contacts, key=lambda c: -float(c.params.get("q") or 1.0))
        for contact in ranked:
            target = contact.uri
            if target.scheme not in ("sip", "sips") or str(target) in call.tried_targets:
                continue
            call.redirects += 1
            retry = _with_new_transaction(invite, self._via(new_branch()))
            retry.uri = target
            try:
                ipaddress.ip_address(target.host.strip("[]"))
                call.peer = (call.peer[0], target.host.strip("[]"), target.port or 5060)
            except ValueError:
                pass  # a name: keep sending through the same next hop
            call.dialog = None
            self._resend_invite(call, retry, now)
            return True
        return False

    # --- session timers (RFC 4028) ------------------------------------------------

    def _negotiate_session_timer(self, call: Call, request: Request, response: Response,
                                 now: float) -> None:
        """UAS side: answer Session-Expires and watch (or do) the refreshes."""
        interval = _session_interval(request)
        if interval is None:
            return
        interval = min(interval, self.session_expires) if interval >= self.min_se else self.min_se
        value = request.headers.get("Session-Expires", "")
        asked = re.search(r"refresher\s*=\s*(uac|uas)", value, re.IGNORECASE)
        uac_supports = "timer" in [v.lower() for v in request.headers.get_all("Supported")]
        refresher = asked.group(1).lower() if asked else ("uac" if uac_supports else "uas")
        if refresher == "uac" and not uac_supports:
            refresher = "uas"
        response.headers.add("Session-Expires", f"{interval};refresher={refresher}")
        if refresher == "uac":
            response.headers.add("Require", "timer")
        call.session_expires = interval
        call.refresher = refresher
        self._arm_session_timer(call, "uas", now)

    def _adopt_session_timer(self, call: Call, response: Response, role: str, now: float) -> None:
        """UAC side: the 2xx says the interval and who refreshes."""
        value = response.headers.get("Session-Expires")
        if value is None:
            return
        number = value.split(";")[0].strip()
        if not number.isdigit():
            return
        asked = re.search(r"refresher\s*=\s*(uac|uas)", value, re.IGNORECASE)
        call.session_expires = int(number)
        call.refresher = asked.group(1).lower() if asked else "uac"
        self._arm_session_timer(call, role, now)

    def _arm_session_timer(self, call: Call, role: str, now: float) -> None:
        assert call.session_expires is not None  # invariant: set by the callers
        call.session_token += 1
        token = call.session_token
        interval = float(call.session_expires)
        if call.refresher == role:  # we refresh at half the interval
            self._schedule(now + interval / 2, lambda t: self._refresh_session(call, token, t))
        else:  # section 10: BYE if no refresh came in time
            deadline = now + interval - min(32.0, interval / 3)
            self._schedule(deadline, lambda t: self._session_expired(call, token, t))

    def _refresh_session(self, call: Call, token: int, now: float) -> None:
        # An UPDATE without a body (RFC 4028 section 7.4); its 2xx re-arms us.
        if call.session_token != token or call.state != "established" or call.pending_offer:
            return
        self._send_in_dialog(call, "UPDATE", now, headers=[
            ("Session-Expires", f"{call.session_expires};refresher=uac"),
            ("Supported", "timer")])

    def _session_expired(self, call: Call, token: int, now: float) -> None:
        if call.session_token != token or call.state != "established":
            return
        self._send_bye(call, now)
        self._end(call, 408, "session timer expired")

    def _read_answer(self, call: Call, response: Response, now: float) -> bool:
        assert call.local_sdp is not None  # invariant: we offered in the INVITE
        try:
            answer = _remote_sdp(response)
            if answer is None:
                raise OfferAnswerError("the response carries no session description")
            call.media = negotiate(call.local_sdp, answer)
            call.remote_sdp = answer
        except (SIPError, ParseError, OfferAnswerError):
            if response.status_code >= 200:
                self._send_bye(call, now)
                self._end(call, 488, "unusable answer")
            return False
        return True

    def _send_ack(self, call: Call, invite: Request, body: bytes, now: float) -> None:
        assert call.dialog is not None  # invariant: 2xx created the dialog
        ack = call.dialog.create_request("ACK", self.contact, body, seq=invite.cseq.seq)
        ack.headers.add("Via", self._via(new_branch()))
        call.ack = ack
        self._emit(ack, self._next_hop(ack, call))

    def _on_reinvite_response(self, call: Call, txn: ClientTransaction, response: Response,
                              now: float) -> None:
        code = response.status_code
        if code < 200:
            return
        if code < 300:
            if call.ack is not None and call.ack.cseq.seq == txn.request.cseq.seq:
                self._emit(call.ack, self._next_hop(call.ack, call))  # retransmitted 2xx
                return
            self._send_ack(call, txn.request, b"", now)
            call.pending_offer = False
            if call.pending_sdp is not None:
                call.local_sdp, call.pending_sdp = call.pending_sdp, None
                call.on_hold = call.local_sdp.direction_for(call.local_sdp.media[0]) in (
                    "sendonly", "inactive")
            if self._read_answer(call, response, now):
                self._events.append(CallUpdated(call))
            return
        call.pending_offer = False  # the old session stays (section 14.1)
        call.pending_sdp = None
        if code in (408, 481):
            self._send_bye(call, now)
            self._end(call, code, "re-INVITE failed")

    # --- ending ---------------------------------------------------------------

    def _end(self, call: Call, status_code: int, reason: str) -> None:
        if call.state == "terminated":
            return
        call.state = "terminated"
        call.ok_response = None
        call.ok_deadline = None
        self.calls.pop(call.call_id, None)
        self._events.append(CallEnded(call, status_code, reason))


def _remote_sdp(message: Message) -> SessionDescription | None:
    """The peer's offer or answer in ``message``: its SDP body, or the session
    part of a multipart one (RFC 5621); None when it carries none.

    Raises ``ParseError`` for malformed SDP or multipart framing and
    ``SIPError`` (415) for a required body part we cannot use."""
    sdp = session_description(message)
    return None if sdp is None else SessionDescription.parse(sdp)


def _sipfrag_status(body: bytes) -> int | None:
    first = body.split(b"\r\n", 1)[0].split(b" ")
    if len(first) >= 2 and first[0].upper() == b"SIP/2.0" and first[1].isdigit():
        return int(first[1])
    return None


def _session_interval(request: Request) -> int | None:
    value = request.headers.get("Session-Expires")
    if value is None:
        return None
    number = value.split(";")[0].strip()
    return int(number) if number.isdigit() else None


def _granted_expires(response: Response, contact: str, asked: int) -> int:
    """The expiry the registrar granted our Contact (section 10.2.4)."""
    ours = parse_uri(contact[1:-1]) if contact.startswith("<") else parse_uri(contact)
    for binding in response.contacts:
        if binding.uri.host == ours.host and binding.uri.port == ours.port:
            value = binding.params.get("expires")
            if value is not None and value.isdigit():
                return int(value)
    header = response.headers.get("Expires")
    return int(header) if header is not None and header.isdigit() else asked


def _destination(destination: Destination | tuple[str, int], transport: str) -> Destination:
    if len(destination) == 3:
        return destination
    return (transport, destination[0], destination[1])


def _with_new_transaction(request: Request, via: str) -> Request:
    """A copy of ``request`` for a new transaction: new Via branch, CSeq + 1."""
    retry = Request(request.method, request.uri, request.headers.copy(), request.body)
    retry.headers.set("Via", via)
    retry.headers.set("CSeq", f"{request.cseq.seq + 1} {request.method}")
    return retry


def _dtmf_from_info(request: Request) -> tuple[str, int] | None:
    content_type = request.content_type
    text = request.body.decode("utf-8", "replace")
    if content_type == "application/dtmf-relay":
        m = _DTMF_RELAY_RE.search(text)
        if m is None:
            return None
        signal = m.group(1).upper()
        signal = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D",
                  "16": "!"}.get(signal, signal)
        d = _DURATION_RE.search(text)
        return signal, int(d.group(1)) if d else 0
    if content_type == "application/dtmf" and text.strip():
        return text.strip()[:1].upper(), 0
    return None

