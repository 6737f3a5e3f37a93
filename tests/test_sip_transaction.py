"""Transaction state machines (RFC 3261 section 17 + RFC 6026) on a simulated clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore.sip.transaction import (
    TABLES,
    ClientTransaction,
    ServerTransaction,
    Timers,
    TransactionLayer,
    make_response,
)

from rtpcore.sip import Request, parse_message


def request(method: str, branch: str = "z9hG4bKtest1") -> Request:
    return parse_message(
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\nCall-ID: call-1@192.0.2.1\r\n"
        f"CSeq: 7 {method}\r\nRoute: <sip:proxy.example.com;lr>\r\nContent-Length: 0\r\n\r\n".encode())


def response_to(req: Request, code: int, tag: str = "b1"):  # type: ignore[no-untyped-def]
    return make_response(req, code, to_tag=tag if code > 100 else None)


def run_until_idle(txn, start: float = 0.0, limit: float = 100.0):  # type: ignore[no-untyped-def]
    """Advance the clock deadline by deadline; return [(time, kinds)]."""
    log = []
    while not txn.terminated and txn.next_deadline is not None and txn.next_deadline <= limit:
        now = txn.next_deadline
        log.append((now, [a.kind for a in txn.on_timer(now)]))
    return log


def transmit_times(log) -> list[float]:  # type: ignore[no-untyped-def]
    return [t for t, kinds in log for k in kinds if k == "transmit"]


def test_timers_table_4_defaults() -> None:
    t = Timers()
    assert [t.initial(x, False) for x in "ABDEFGHIJK"] == [0.5, 32, 32, 0.5, 32, 0.5, 32, 5, 32, 5]
    assert [t.initial(x, True) for x in "ABDEFGHIJK"] == [None, 32, 0, None, 32, None, 32, 0, 0, 0]
    with pytest.raises(ValueError, match="timer"):
        t.initial("Z", True)


def test_every_table_row_is_reachable_state_and_event_names() -> None:
    events = {"start", "1xx", "2xx", "3xx-6xx", "request", "ack", "transport_error"}
    for kind, table in TABLES.items():
        for (state, event), (next_state, _) in table.items():
            assert event in events or event.startswith("timer_"), (kind, event)
            assert next_state == "terminated" or any(s == next_state for s, _ in table), (kind, next_state)


# --- INVITE client ---------------------------------------------------------------


def test_ict_udp_without_answer_retransmits_seven_times_then_times_out() -> None:
    txn = ClientTransaction(request("INVITE"))
    assert [a.kind for a in txn.start(0.0)] == ["transmit"]
    log = run_until_idle(txn)
    assert [0.0, *transmit_times(log)] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert log[-1] == (32.0, ["timeout", "terminated"])


def test_ict_reliable_does_not_retransmit() -> None:
    txn = ClientTransaction(request("INVITE"), reliable=True)
    txn.start(0.0)
    assert run_until_idle(txn) == [(32.0, ["timeout", "terminated"])]


@pytest.mark.parametrize("reliable", [False, True])
def test_ict_error_response_is_acked_and_absorbs_retransmissions(reliable: bool) -> None:
    invite = request("INVITE")
    txn = ClientTransaction(invite, reliable=reliable)
    txn.start(0.0)
    ringing = txn.receive_response(response_to(invite, 180), 0.2)
    assert [a.kind for a in ringing] == ["deliver"] and txn.state == "proceeding"
    assert txn.on_timer(10.0) == []  # no retransmission once a provisional arrived
    busy = response_to(invite, 486)
    actions = txn.receive_response(busy, 11.0)
    assert [a.kind for a in actions][:2] == ["deliver", "transmit"]
    ack = actions[1].message
    assert (ack.method, str(ack.uri), ack.cseq.seq, ack.cseq.method) == ("ACK", str(invite.uri), 7, "ACK")
    assert ack.top_via.branch == invite.top_via.branch and ack.to.tag == "b1"
    assert [r.uri.host for r in ack.routes] == ["proxy.example.com"]
    if reliable:
        assert txn.terminated and actions[-1].kind == "terminated"
        return
    again = txn.receive_response(busy, 12.0)
    assert [a.kind for a in again] == ["transmit"] and again[0].message.method == "ACK"
    assert run_until_idle(txn, 12.0) == [(43.0, ["terminated"])]  # Timer D: 32 s after 11


def test_ict_2xx_goes_to_accepted_and_passes_retransmissions_up() -> None:
    invite = request("INVITE")
    txn = ClientTransaction(invite)
    txn.start(0.0)
    ok = response_to(invite, 200)
    assert [a.kind for a in txn.receive_response(ok, 1.0)] == ["deliver"]
    assert txn.state == "accepted"
    assert [a.kind for a in txn.receive_response(ok, 2.0)] == ["deliver"]  # the TU re-ACKs
    assert run_until_idle(txn) == [(33.0, ["terminated"])]  # Timer M


def test_ict_transport_error() -> None:
    txn = ClientTransaction(request("INVITE"))
    txn.start(0.0)
    assert [a.kind for a in txn.transport_error(0.1)] == ["transport_error", "terminated"]
    assert txn.transport_error(0.2) == [] and txn.on_timer(99.0) == []


# --- non-INVITE client ----------------------------------------------------------


def test_nict_udp_without_answer_backs_off_to_t2() -> None:
    txn = ClientTransaction(request("OPTIONS"))
    txn.start(0.0)
    log = run_until_idle(txn)
    assert [0.0, *transmit_times(log)] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1] == (32.0, ["timeout", "terminated"])


def test_nict_provisional_then_t2_retransmissions_then_final() -> None:
    bye = request("BYE")
    txn = ClientTransaction(bye)
    txn.start(0.0)
    txn.on_timer(0.5)  # first retransmission, E now 1 s
    assert [a.kind for a in txn.receive_response(response_to(bye, 100), 0.6)] == ["deliver"]
    assert txn.next_deadline == 1.5
    txn.on_timer(1.5)
    assert txn.next_deadline == 5.5  # in Proceeding, E is reset to T2
    final = txn.receive_response(response_to(bye, 200), 2.0)
    assert [a.kind for a in final] == ["deliver"] and txn.state == "completed"
    assert txn.receive_response(response_to(bye, 200), 3.0) == []  # absorbed
    assert run_until_idle(txn) == [(7.0, ["terminated"])]  # Timer K = T4


def test_nict_reliable_final_terminates_at_once() -> None:
    txn = ClientTransaction(request("REGISTER"), reliable=True)
    txn.start(0.0)
    kinds = [a.kind for a in txn.receive_response(response_to(request("REGISTER"), 401), 0.1)]
    assert kinds == ["deliver", "terminated"]


def test_ack_has_no_transaction() -> None:
    with pytest.raises(ValueError, match="ACK"):
        ClientTransaction(request("ACK"))
    with pytest.raises(ValueError, match="ACK"):
        ServerTransaction(request("ACK"))


# --- INVITE server ---------------------------------------------------------------


def test_ist_sends_100_then_retransmits_final_until_ack() -> None:
    invite = request("INVITE")
    txn = ServerTransaction(invite)
    actions = txn.start(0.0)
    assert [a.kind for a in actions] == ["transmit", "deliver"]  # 100 Trying goes out first
    assert actions[0].message.status_code == 100
    again = txn.receive_request(invite, 0.3)
    assert [a.message.status_code for a in again] == [100]
    busy = response_to(invite, 486)
    assert [a.kind for a in txn.send_response(busy, 1.0)] == ["transmit"]
    log = run_until_idle(txn, limit=9.0)
    assert transmit_times(log) == [1.5, 2.5, 4.5, 8.5]  # Timer G: T1, doubling to T2
    assert [a.message.status_code for a in txn.receive_request(invite, 9.0)] == [486]
    ack = request("ACK")
    assert txn.receive_request(ack, 9.5) == [] and txn.state == "confirmed"
    assert txn.receive_request(ack, 9.6) == []  # absorbed in Confirmed
    assert run_until_idle(txn) == [(14.5, ["terminated"])]  # Timer I = T4


def test_ist_without_ack_times_out_with_timer_h() -> None:
    invite = request("INVITE")
    txn = ServerTransaction(invite, auto_trying=False)
    assert [a.kind for a in txn.start(0.0)] == ["deliver"]
    txn.send_response(response_to(invite, 603), 0.0)
    log = run_until_idle(txn)
    assert log[-1] == (32.0, ["timeout", "terminated"])
    assert transmit_times(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def test_ist_reliable_ack_terminates_at_once() -> None:
    invite = request("INVITE")
    txn = ServerTransaction(invite, reliable=True)
    txn.start(0.0)
    txn.send_response(response_to(invite, 486), 0.1)
    assert run_until_idle(txn, limit=31.0) == []  # no Timer G over TCP
    assert [a.kind for a in txn.receive_request(request("ACK"), 1.0)] == ["terminated"]


def test_ist_2xx_is_retransmitted_by_the_tu_and_ack_delivered() -> None:
    invite = request("INVITE")
    txn = ServerTransaction(invite)
    txn.start(0.0)
    ok = response_to(invite, 200)
    assert [a.kind for a in txn.send_response(ok, 0.1)] == ["transmit"]
    assert txn.state == "accepted"
    assert txn.receive_request(invite, 0.6) == []  # absorbed: 2xx retransmission is the TU's job
    assert [a.kind for a in txn.send_response(ok, 0.6)] == ["transmit"]
    assert [a.kind for a in txn.receive_request(request("ACK"), 0.7)] == ["deliver"]
    assert run_until_idle(txn) == [(32.1, ["terminated"])]  # Timer L


# --- non-INVITE server -----------------------------------------------------------


@pytest.mark.parametrize(("reliable", "end"), [(False, [(33.0, ["terminated"])]), (True, [])])
def test_nist(reliable: bool, end) -> None:  # type: ignore[no-untyped-def]
    bye = request("BYE")
    txn = ServerTransaction(bye, reliable=reliable)
    assert [a.kind for a in txn.start(0.0)] == ["deliver"]  # no automatic 100 for non-INVITE
    assert txn.receive_request(bye, 0.5) == []  # Trying: absorbed
    txn.send_response(response_to(bye, 100), 0.6)
    assert [a.message.status_code for a in txn.receive_request(bye, 0.7)] == [100]
    kinds = [a.kind for a in txn.send_response(response_to(bye, 200), 1.0)]
    if reliable:
        assert kinds == ["transmit", "terminated"]
        return
    assert [a.message.status_code for a in txn.receive_request(bye, 2.0)] == [200]
    assert run_until_idle(txn) == end


# --- the layer -------------------------------------------------------------------


def test_layer_matches_by_branch_and_method_and_merges_deadlines() -> None:
    layer = TransactionLayer()
    invite = request("INVITE", "z9hG4bKinv")
    cancel = request("CANCEL", "z9hG4bKinv")  # same branch, own transaction
    options = request("OPTIONS", "z9hG4bKopt")
    inv_txn, _ = layer.send_request(invite, 0.0)
    cancel_txn, _ = layer.send_request(cancel, 0.1)
    layer.send_request(options, 0.2)
    assert len(layer) == 3 and layer.next_deadline == 0.5
    txn, actions = layer.receive(response_to(cancel, 200), 0.3)
    assert txn is cancel_txn and actions[0].kind == "deliver"
    txn, _ = layer.receive(response_to(invite, 487), 0.4)
    assert txn is inv_txn and inv_txn.state == "completed"
    assert layer.receive(response_to(request("INVITE", "z9hG4bKother"), 200), 0.5) == (None, [])
    fired = layer.on_timer(0.7)
    assert [(a.transaction.request.method, a.kind) for a in fired] == [("OPTIONS", "transmit")]
    layer.on_timer(100.0)
    assert len(layer) == 0 and layer.next_deadline is None


def test_layer_server_side_routes_retransmissions_and_ack() -> None:
    layer = TransactionLayer()
    invite = request("INVITE", "z9hG4bKsrv")
    assert layer.receive(invite, 0.0) == (None, [])  # new: the TU creates the transaction
    server, actions = layer.create_server(invite, 0.0)
    assert [a.kind for a in actions] == ["transmit", "deliver"]
    txn, again = layer.receive(invite, 0.1)
    assert txn is server and again[0].message.status_code == 100
    layer.send_response(server, response_to(invite, 486), 0.2)
    ack = request("ACK", "z9hG4bKsrv")
    assert layer.receive(ack, 0.3)[0] is server and server.state == "confirmed"
    layer.on_timer(10.0)
    assert len(layer) == 0


# --- Hypothesis: random event sequences ----------------------------------------

EVENTS = st.lists(
    st.tuples(st.sampled_from(["100", "180", "200", "486", "request", "ack", "error", "tick"]),
              st.floats(0.0, 40.0)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["INVITE", "OPTIONS"]), server=st.booleans(),
       reliable=st.booleans(), events=EVENTS)
def test_any_event_sequence_respects_the_invariants(method, server, reliable, events) -> None:  # type: ignore[no-untyped-def]
    req = request(method)
    txn = (ServerTransaction(req, reliable) if server else ClientTransaction(req, reliable))
    now = 0.0
    actions = txn.start(now)
    delivered_finals = 0
    seen_terminated = False
    for name, dt in events:
        now += dt
        if seen_terminated:
            actions = []
        if name == "tick":
            actions = txn.on_timer(now)
        elif name == "error":
            actions = txn.transport_error(now)
        elif name in ("request", "ack"):
            if not server:
                continue
            actions = txn.receive_request(request("ACK") if name == "ack" else req, now)
        else:
            response = response_to(req, int(name))
            actions = (txn.send_response(response, now) if server
                       else txn.receive_response(response, now))
        kinds = [a.kind for a in actions]
        if seen_terminated:
            assert kinds == []  # terminated is absorbing
        if "terminated" in kinds:
            assert kinds[-1] == "terminated" and txn.terminated and txn.next_deadline is None
            seen_terminated = True
        for a in actions:
            if a.kind == "deliver" and not server and a.message.status_code >= 300:
                delivered_finals += 1
            if reliable and name == "tick":
                assert a.kind != "transmit"  # over TCP the transaction never retransmits
        if name == "tick":
            assert txn.next_deadline is None or txn.next_deadline > now  # all due timers fired
    assert delivered_finals <= 1  # an error response reaches the TU once
