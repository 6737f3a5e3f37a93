"""SIP transactions (RFC 3261 section 17, with the RFC 6026 fixes), sans-IO.

The four state machines are the tables below: ``(state, event) -> (next
state, operations)``. One small engine runs them all. Time is an argument:
every entry point takes ``now`` (seconds, any monotonic origin) and returns
the actions to perform; ``next_deadline`` says when to call ``on_timer``.
Timers A-K (and L, M from RFC 6026) are events like any other. Nothing here
opens a socket or reads a clock.

Actions returned (``Action.kind``):

* ``"transmit"`` - put ``action.message`` on the wire, to the transaction's
  ``destination`` (a client transaction's next hop, or a server
  transaction's response address, RFC 3261 section 18.2.2);
* ``"deliver"`` - hand ``action.message`` to the transaction user (TU);
* ``"timeout"`` - timer B, F or H fired: the TU treats it as a 408;
* ``"transport_error"`` - the transport failed (section 17.1.4 / 17.2.4);
* ``"terminated"`` - the transaction is over and can be forgotten.

``TransactionLayer`` holds many transactions, matches incoming messages to
them (sections 17.1.3 and 17.2.3) and merges their deadlines with a heap.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from rtpcore.sip import Message, Request, Response

__all__ = [
    "Timers",
    "Action",
    "Transaction",
    "ClientTransaction",
    "ServerTransaction",
    "TransactionLayer",
    "TABLES",
    "client_key",
    "server_key",
    "make_ack_for",
    "make_cancel",
    "make_response",
]

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer base values (Table 4), in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def initial(self, timer: str, reliable: bool) -> float | None:
        """Duration of ``timer`` when started; None: not used on this transport."""
        if timer in "AEG":  # retransmission timers exist only over UDP
            return None if reliable else self.t1
        if timer in "BFHJLM":
            if timer == "J" and reliable:
                return 0.0
            return 64 * self.t1
        if timer == "D":
            return 0.0 if reliable else max(32.0, 64 * self.t1)
        if timer in "IK":
            return 0.0 if reliable else self.t4
        raise ValueError(f"timer: unknown timer {timer!r}")


# Events: "start" (creation), "1xx", "2xx", "3xx-6xx" (responses received by a
# client transaction or passed down by the TU to a server one), "request"
# (a retransmitted request), "ack", "timer_X", "transport_error".
# Operations: "transmit" the event's message (and remember it as the last
# one sent); "retransmit" the last one; "deliver" the event's message to the
# TU; "ack" build and transmit an ACK for the event's final response;
# "timeout"/"transport_error" report to the TU; "start:X" starts timer X,
# "backoff:X" restarts it with double the interval capped at T2 for E and G
# (A is uncapped), "t2:X" restarts it at T2, "stop:X" cancels it.
_Row = tuple[str, tuple[str, ...]]

TABLES: dict[str, dict[tuple[str, str], _Row]] = {
    # INVITE client transaction, section 17.1.1 (Figure 5) + RFC 6026 Accepted.
    "ict": {
        ("calling", "start"): ("calling", ("transmit", "start:A", "start:B")),
        ("calling", "timer_A"): ("calling", ("retransmit", "backoff:A")),
        ("calling", "timer_B"): ("terminated", ("timeout",)),
        ("calling", "1xx"): ("proceeding", ("deliver", "stop:A", "stop:B")),
        ("calling", "2xx"): ("accepted", ("deliver", "stop:A", "stop:B", "start:M")),
        ("calling", "3xx-6xx"): ("completed", ("deliver", "ack", "stop:A", "stop:B", "start:D")),
        ("calling", "transport_error"): ("terminated", ("transport_error",)),
        ("proceeding", "1xx"): ("proceeding", ("deliver",)),
        ("proceeding", "2xx"): ("accepted", ("deliver", "start:M")),
        ("proceeding", "3xx-6xx"): ("completed", ("deliver", "ack", "start:D")),
        ("completed", "3xx-6xx"): ("completed", ("ack",)),
        ("completed", "timer_D"): ("terminated", ()),
        ("completed", "transport_error"): ("terminated", ("transport_error",)),
        ("accepted", "2xx"): ("accepted", ("deliver",)),
        ("accepted", "timer_M"): ("terminated", ()),
    },
    # Non-INVITE client transaction, section 17.1.2 (Figure 6).
    "nict": {
        ("trying", "start"): ("trying", ("transmit", "start:E", "start:F")),
        ("trying", "timer_E"): ("trying", ("retransmit", "backoff:E")),
        ("trying", "timer_F"): ("terminated", ("timeout",)),
        ("trying", "1xx"): ("proceeding", ("deliver",)),
        ("trying", "2xx"): ("completed", ("deliver", "stop:E", "stop:F", "start:K")),
        ("trying", "3xx-6xx"): ("completed", ("deliver", "stop:E", "stop:F", "start:K")),
        ("trying", "transport_error"): ("terminated", ("transport_error",)),
        ("proceeding", "timer_E"): ("proceeding", ("retransmit", "t2:E")),
        ("proceeding", "timer_F"): ("terminated", ("timeout",)),
        ("proceeding", "1xx"): ("proceeding", ("deliver",)),
        ("proceeding", "2xx"): ("completed", ("deliver", "stop:E", "stop:F", "start:K")),
        ("proceeding", "3xx-6xx"): ("completed", ("deliver", "stop:E", "stop:F", "start:K")),
        ("proceeding", "transport_error"): ("terminated", ("transport_error",)),
        ("completed", "timer_K"): ("terminated", ()),
    },
    # INVITE server transaction, section 17.2.1 (Figure 7) + RFC 6026 Accepted.
    "ist": {
        ("proceeding", "start"): ("proceeding", ("deliver",)),
        ("proceeding", "request"): ("proceeding", ("retransmit",)),
        ("proceeding", "1xx"): ("proceeding", ("transmit",)),
        ("proceeding", "2xx"): ("accepted", ("transmit", "start:L")),
        ("proceeding", "3xx-6xx"): ("completed", ("transmit", "start:G", "start:H")),
        ("proceeding", "transport_error"): ("terminated", ("transport_error",)),
        ("completed", "request"): ("completed", ("retransmit",)),
        ("completed", "timer_G"): ("completed", ("retransmit", "backoff:G")),
        ("completed", "timer_H"): ("terminated", ("timeout",)),
        ("completed", "ack"): ("confirmed", ("stop:G", "stop:H", "start:I")),
        ("completed", "transport_error"): ("terminated", ("transport_error",)),
        ("confirmed", "timer_I"): ("terminated", ()),
        ("accepted", "ack"): ("accepted", ("deliver",)),
        ("accepted", "2xx"): ("accepted", ("transmit",)),
        ("accepted", "timer_L"): ("terminated", ()),
    },
    # Non-INVITE server transaction, section 17.2.2 (Figure 8).
    "nist": {
        ("trying", "start"): ("trying", ("deliver",)),
        ("trying", "1xx"): ("proceeding", ("transmit",)),
        ("trying", "2xx"): ("completed", ("transmit", "start:J")),
        ("trying", "3xx-6xx"): ("completed", ("transmit", "start:J")),
        ("proceeding", "request"): ("proceeding", ("retransmit",)),
        ("proceeding", "1xx"): ("proceeding", ("transmit",)),
        ("proceeding", "2xx"): ("completed", ("transmit", "start:J")),
        ("proceeding", "3xx-6xx"): ("completed", ("transmit", "start:J")),
        ("proceeding", "transport_error"): ("terminated", ("transport_error",)),
        ("completed", "request"): ("completed", ("retransmit",)),
        ("completed", "timer_J"): ("terminated", ()),
        ("completed", "transport_error"): ("terminated", ("transport_error",)),
    },
}
_INITIAL_STATE = {"ict": "calling", "nict": "trying", "ist": "proceeding", "nist": "trying"}
# The same tables with each operation split once into (verb, timer letter):
# "start:A" -> ("start", "A"), "deliver" -> ("deliver", ""). The engine runs
# these, so no event re-parses its operations.
_COMPILED: dict[str, dict[tuple[str, str], tuple[str, tuple[tuple[str, str], ...]]]] = {
    kind: {key: (next_state, tuple((op.partition(":")[0], op.partition(":")[2])
                                   for op in operations))
           for key, (next_state, operations) in table.items()}
    for kind, table in TABLES.items()
}
_TIMER_LETTERS = "ABDEFGHIJKLM"


@functools.lru_cache(maxsize=64)
def _durations(timers: Timers, reliable: bool) -> dict[str, float | None]:
    """``timers.initial`` for every timer letter, worked out once per transport."""
    return {letter: timers.initial(letter, reliable) for letter in _TIMER_LETTERS}


class Action:
    """Something the caller must do; see the module docstring for ``kind``.

    A plain slotted class rather than a frozen dataclass: several are made
    per message, and frozen dataclasses are slow to construct.
    """

    __slots__ = ("kind", "transaction", "message")

    def __init__(self, kind: str, transaction: Transaction, message: Message | None = None) -> None:
        self.kind = kind
        self.transaction = transaction
        self.message = message

    def __repr__(self) -> str:
        return f"Action({self.kind!r}, {self.transaction.kind}, {self.message!r})"


def _response_class(response: Response) -> str:
    code = response.status_code
    return "1xx" if code < 200 else "2xx" if code < 300 else "3xx-6xx"


class Transaction:
    """One state machine instance. Use the client or server subclass."""

    def __init__(self, kind: str, request: Request, reliable: bool, timers: Timers,
                 destination: Any) -> None:
        self.kind = kind
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.destination = destination
        self.state = _INITIAL_STATE[kind]
        self.last_sent: Message | None = None
        self.final_response: Response | None = None
        self.key: tuple[str, ...] = ()  # set by TransactionLayer when it files it
        self.scheduled: float | None = None  # the deadline the layer's heap holds
        self._durations = _durations(timers, reliable)
        # running timers: letter -> deadline
        self._timers: dict[str, float] = {}
        # last interval of each timer, which backoff doubles after it fired
        self._intervals: dict[str, float] = {}
        # timers just started with a zero duration (D, I, J, K over reliable
        # transports), to fire as soon as the event that started them is done
        self._due_now: list[str] = []

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"

    @property
    def next_deadline(self) -> float | None:
        """When ``on_timer`` must next be called, or None."""
        timers = self._timers
        return min(timers.values()) if timers else None

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now`` (earliest first)."""
        actions: list[Action] = []
        timers = self._timers
        while timers and not self.terminated:
            letter = min(timers, key=timers.__getitem__)
            if timers[letter] > now:
                break
            del self._timers[letter]
            self._handle("timer_" + letter, None, now, actions)
        return actions

    def transport_error(self, now: float) -> list[Action]:
        """The transport could not deliver our last message."""
        actions: list[Action] = []
        self._handle("transport_error", None, now, actions)
        return actions

    def _handle(self, event: str, message: Message | None, now: float,
                actions: list[Action]) -> None:
        row = _COMPILED[self.kind].get((self.state, event))
        if row is None:
            return  # absorbed: the RFC's figures have no arc for it
        next_state, operations = row
        self.state = next_state
        for verb, letter in operations:
            self._run(verb, letter, message, now, actions)
        if next_state == "terminated":
            self._timers.clear()
            self._due_now.clear()
            actions.append(Action("terminated", self))
            return
        # A zero-length timer (D, I, J, K on reliable transports) fires at once.
        due = self._due_now
        while due:
            letter = due.pop(0)
            if letter in self._timers:
                del self._timers[letter]
                due.clear()  # the timer's own event decides what runs next
                self._handle("timer_" + letter, None, now, actions)
                return

    def _run(self, op: str, letter: str, message: Message | None, now: float,
             actions: list[Action]) -> None:
        if op == "transmit":
            assert message is not None  # invariant: only message events transmit
            self.last_sent = message
            actions.append(Action("transmit", self, message))
        elif op == "retransmit":
            if self.last_sent is not None:
                actions.append(Action("transmit", self, self.last_sent))
        elif op == "deliver":
            actions.append(Action("deliver", self, message))
        elif op == "ack":
            assert isinstance(message, Response)  # invariant: ack follows a final response
            actions.append(Action("transmit", self, make_ack_for(self.request, message)))
        elif op in ("timeout", "transport_error"):
            actions.append(Action(op, self))
        elif op == "stop":
            self._timers.pop(letter, None)
        elif op == "start":
            duration = self._durations[letter]
            if duration is not None:
                self._timers[letter] = now + duration
                self._intervals[letter] = duration
                if duration == 0.0:
                    self._due_now.append(letter)
        else:  # backoff / t2: the timer has just fired
            interval = self._intervals[letter]
            if op == "t2":
                interval = self.timers.t2
            elif letter == "A":
                interval = interval * 2
            else:
                interval = min(interval * 2, self.timers.t2)
            self._timers[letter] = now + interval
            self._intervals[letter] = interval


class ClientTransaction(Transaction):
    """A client transaction: sends ``request``, receives responses.

    ``start(now)`` returns the first transmission; feed responses matched
    to it (``TransactionLayer`` does the matching) to ``receive_response``.
    """

    def __init__(self, request: Request, reliable: bool = False, timers: Timers | None = None,
                 destination: Any = None) -> None:
        kind = "ict" if request.method == "INVITE" else "nict"
        if request.method == "ACK":
            raise ValueError("request: ACK has no client transaction (section 17)")
        super().__init__(kind, request, reliable, timers or Timers(), destination)

    def start(self, now: float) -> list[Action]:
        actions: list[Action] = []
        self._handle("start", self.request, now, actions)
        return actions

    def receive_response(self, response: Response, now: float) -> list[Action]:
        actions: list[Action] = []
        if response.status_code >= 200 and self.final_response is None:
            self.final_response = response
        self._handle(_response_class(response), response, now, actions)
        return actions


class ServerTransaction(Transaction):
    """A server transaction: receives ``request``, sends the TU's responses.

    ``start(now)`` delivers the request to the TU (and, for INVITE with
    ``auto_trying``, sends 100 Trying at once, section 17.2.1).
    """

    def __init__(self, request: Request, reliable: bool = False, timers: Timers | None = None,
                 destination: Any = None, auto_trying: bool = True) -> None:
        kind = "ist" if request.method == "INVITE" else "nist"
        if request.method == "ACK":
            raise ValueError("request: ACK has no server transaction (section 17)")
        super().__init__(kind, request, reliable, timers or Timers(), destination)
        self.auto_trying = auto_trying and kind == "ist"

    def start(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.auto_trying:  # on the wire before anything the TU answers
            self._handle("1xx", make_response(self.request, 100), now, actions)
        self._handle("start", self.request, now, actions)
        return actions

    def send_response(self, response: Response, now: float) -> list[Action]:
        """Send the TU's response (any number of 1xx, then the final one).

        Once the final response is out the transaction forgets ``request``
        (it becomes None): absorbing retransmissions for up to 32 s needs only
        the response, and thousands of lingering parsed requests would make
        every garbage collection slower.
        """
        actions: list[Action] = []
        if response.status_code >= 200 and self.final_response is None:
            self.final_response = response
        self._handle(_response_class(response), response, now, actions)
        if self.state not in ("proceeding", "trying"):
            self.request = None
        return actions

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of our request, or the ACK for a final response."""
        actions: list[Action] = []
        self._handle("ack" if request.method == "ACK" else "request", request, now, actions)
        return actions


# -- matching (sections 17.1.3 and 17.2.3) ---------------------------------------


def client_key(message: Message) -> tuple[str, str]:
    """Key of the client transaction a response belongs to: branch and CSeq method."""
    method = message.cseq.method
    if method == "ACK":
        method = "INVITE"
    return (message.top_via.branch or "", method)


def server_key(request: Request) -> tuple[str, str, str]:
    """Key of the server transaction a request belongs to (RFC 3261 branches).

    ACK matches its INVITE's transaction; CANCEL has its own.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    return (via.branch or "", via.sent_by.lower(), method)


def make_response(request: Request, status_code: int, reason: str | None = None,
                  to_tag: str | None = None) -> Response:
    """A response to ``request`` (section 8.2.6): Via, From, To, Call-ID, CSeq copied."""
    response = Response(status_code, reason)
    headers = response.headers
    source = request.headers
    # The values come from a parsed (or built and checked) request, so they
    # skip add()'s validation.
    for value in source.get_all("Via"):
        headers._append("Via", value)
    headers._append("From", source.get("From"))
    to = source.get("To")
    if to_tag is not None and request.to.tag is None:
        to = to + ";tag=" + to_tag
    headers._append("To", to)
    headers._append("Call-ID", source.get("Call-ID"))
    headers._append("CSeq", source.get("CSeq"))
    return response


def make_ack_for(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 3xx-6xx (section 17.1.1.3).

    Like the INVITE except for the To, which is the response's (with its tag).
    """
    return _same_transaction_request(invite, "ACK", response.headers.get("To") or "")


def make_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (section 9.1)."""
    return _same_transaction_request(invite, "CANCEL", invite.headers.get("To") or "")


def _same_transaction_request(invite: Request, method: str, to: str) -> Request:
    # Same Request-URI, top Via (so the same branch), From, Call-ID, Route and
    # CSeq number as the INVITE: what ACK and CANCEL have in common.
    request = Request(method, invite.uri)
    headers = request.headers
    headers.add("Via", invite.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From"))
    headers.add("To", to)
    headers.add("Call-ID", invite.headers.get("Call-ID"))
    headers.add("CSeq", f"{invite.cseq.seq} {method}")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    return request


class TransactionLayer:
    """Many transactions: creation, matching, one merged deadline.

    ``send_request`` starts a client transaction; ``receive`` routes an
    incoming message to its transaction (returning ``None`` when none
    matches: a new request for the TU, or a stray response / 2xx ACK);
    ``on_timer(now)`` fires what is due across all of them.
    """

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self.servers: dict[tuple[str, str, str], ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)

    def send_request(self, request: Request, now: float, reliable: bool = False,
                     destination: Any = None) -> tuple[ClientTransaction, list[Action]]:
        txn = ClientTransaction(request, reliable, self.timers, destination)
        txn.key = client_key(request)
        self.clients[txn.key] = txn
        return txn, self._after(txn, txn.start(now))

    def create_server(self, request: Request, now: float, reliable: bool = False,
                      destination: Any = None, auto_trying: bool = True,
                      ) -> tuple[ServerTransaction, list[Action]]:
        txn = ServerTransaction(request, reliable, self.timers, destination, auto_trying)
        txn.key = server_key(request)
        self.servers[txn.key] = txn
        return txn, self._after(txn, txn.start(now))

    def receive(self, message: Message, now: float) -> tuple[Transaction | None, list[Action]]:
        """Route a received message; ``(None, [])`` if no transaction matches."""
        if isinstance(message, Response):
            client = self.clients.get(client_key(message))
            if client is None:
                return None, []
            return client, self._after(client, client.receive_response(message, now))
        assert isinstance(message, Request)  # invariant: messages are requests or responses
        server = self.servers.get(server_key(message))
        if server is None:
            return None, []
        if message.method == "ACK" and server.state not in ("completed", "confirmed", "accepted"):
            return None, []
        return server, self._after(server, server.receive_request(message, now))

    def send_response(self, server: ServerTransaction, response: Response,
                      now: float) -> list[Action]:
        return self._after(server, server.send_response(response, now))

    def transport_error(self, txn: Transaction, now: float) -> list[Action]:
        return self._after(txn, txn.transport_error(now))

    @property
    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, txn = heap[0]
            if txn.terminated or txn.next_deadline != deadline:
                heapq.heappop(heap)  # stale entry
                continue
            return deadline
        return None

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, txn = heapq.heappop(heap)
            if txn.scheduled == deadline:
                txn.scheduled = None  # this entry is spent; _after files the next
            if txn.terminated or txn.next_deadline != deadline:
                continue
            actions.extend(self._after(txn, txn.on_timer(now)))
        return actions

    def _after(self, txn: Transaction, actions: list[Action]) -> list[Action]:
        if txn.terminated:
            if isinstance(txn, ClientTransaction):
                self.clients.pop(txn.key, None)  # type: ignore[arg-type]
            else:
                self.servers.pop(txn.key, None)  # type: ignore[arg-type]
        else:
            deadline = txn.next_deadline
            if deadline is None:
                txn.scheduled = None
            elif deadline != txn.scheduled:
                txn.scheduled = deadline
                heapq.heappush(self._heap, (deadline, next(self._seq), txn))
        return actions
