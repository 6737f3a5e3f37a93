"""Two user agents talking in memory, on a simulated clock, with loss."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore.sdp import AudioPolicy
from rtpcore.sip.auth import Credentials, DigestClient, DigestServer
from rtpcore.sip.ua import (
    CallAnswered,
    CallEnded,
    CallEstablished,
    CallProgress,
    CallUpdated,
    DTMFReceived,
    IncomingCall,
    OptionsResult,
    TransferProgress,
    TransferRequested,
    UserAgent,
)

from rtpcore.sip import BodyPart, Headers, encode_multipart, parse_message, parse_multipart

MPART01 = Path(__file__).parent / "data" / "rfc4475" / "mpart01.dat"


class Network:
    """Delivers what user agents send, by destination port; can drop packets."""

    def __init__(self, *agents: UserAgent) -> None:
        self.agents = {ua.port: ua for ua in agents}
        self.now = 0.0
        self.drop = lambda data, src, dst: False
        self.events: dict[int, list[object]] = {ua.port: [] for ua in agents}
        self.wire: list[bytes] = []

    def pump(self) -> None:
        """Deliver until nobody has anything to send."""
        busy = True
        while busy:
            busy = False
            for ua in self.agents.values():
                for out in ua.take_outgoing():
                    busy = True
                    self.wire.append(out.data)
                    target = self.agents.get(out.destination[2])
                    if target is None or self.drop(out.data, ua.port, out.destination[2]):
                        continue
                    target.receive(out.data, (ua.host, ua.port), self.now)
                self.events[ua.port].extend(ua.take_events())

    def advance(self, until: float) -> None:
        """Run the clock to ``until``, firing timers on the way."""
        while True:
            deadlines = [d for ua in self.agents.values() if (d := ua.next_deadline) is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            for ua in self.agents.values():
                ua.on_timer(self.now)
            self.pump()
        self.now = until

    def take(self, ua: UserAgent, kind: type) -> list:  # type: ignore[type-arg]
        found = [e for e in self.events[ua.port] if isinstance(e, kind)]
        self.events[ua.port] = [e for e in self.events[ua.port] if not isinstance(e, kind)]
        return found


def pair(**b_options):  # type: ignore[no-untyped-def]
    alice = UserAgent("127.0.0.1", 5061, user="alice")
    bob = UserAgent("127.0.0.1", 5062, user="bob", **b_options)
    return alice, bob, Network(alice, bob)


def establish(alice: UserAgent, bob: UserAgent, net: Network):  # type: ignore[no-untyped-def]
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, net.now)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    bob.ring(incoming.call, net.now)
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    return call, incoming.call


def test_basic_call_and_bye() -> None:
    alice, bob, net = pair()
    a_call, b_call = establish(alice, bob, net)
    assert [e.status_code for e in net.take(alice, CallProgress)] == [180]
    assert len(net.take(alice, CallAnswered)) == 1 and len(net.take(bob, CallEstablished)) == 1
    assert a_call.state == b_call.state == "established"
    assert (a_call.media.remote_port, b_call.media.remote_port) == (50000, 40000)
    assert a_call.media.codec == b_call.media.codec and a_call.media.codec.encoding == "PCMU"
    assert b"SIP/2.0 100 Trying" in b"".join(net.wire)
    alice.hangup(a_call, net.now)
    net.pump()
    (ended_b,) = net.take(bob, CallEnded)
    (ended_a,) = net.take(alice, CallEnded)
    assert ended_b.reason == "remote hangup" and ended_a.status_code == 200
    assert not alice.calls and not bob.calls
    net.advance(100.0)
    assert len(alice.layer) == len(bob.layer) == 0  # every transaction finished


def test_invite_carries_the_callers_display_name_quoted() -> None:
    alice, bob, net = pair()
    alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0,
                 from_user="+15550100", from_name='Acme "Support" \\ Desk')
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    caller = incoming.request.from_
    assert caller.display_name == 'Acme "Support" \\ Desk'
    assert str(caller.uri) == "sip:+15550100@127.0.0.1:5061" and caller.tag


@pytest.mark.parametrize("name", ["Acme\r\nX-Injected: 1", "tab\there", "del\x7f"])
def test_invite_refuses_a_display_name_with_control_characters(name: str) -> None:
    alice, _, net = pair()
    with pytest.raises(ValueError, match="from_name: control characters"):
        alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0,
                     from_name=name)
    net.pump()
    assert not alice.calls and not net.wire


def test_cancel_while_ringing() -> None:
    alice, bob, net = pair()
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    bob.ring(incoming.call, net.now)
    net.pump()
    alice.hangup(call, net.now)
    net.pump()
    assert [e.status_code for e in net.take(bob, CallEnded)] == [487]
    assert [e.status_code for e in net.take(alice, CallEnded)] == [487]
    assert b"ACK sip:bob@127.0.0.1:5062 SIP/2.0" in b"".join(net.wire)  # 487 was ACKed


def test_reject_busy() -> None:
    alice, bob, net = pair()
    alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    bob.reject(incoming.call, 486, net.now)
    net.pump()
    assert [(e.status_code, e.reason) for e in net.take(alice, CallEnded)] == [(486, "Busy Here")]
    with pytest.raises(ValueError, match="status_code"):
        bob.reject(incoming.call, 200, net.now)


def test_hold_resume_and_address_change() -> None:
    alice, bob, net = pair()
    a_call, b_call = establish(alice, bob, net)
    alice.hold(a_call, net.now)
    net.pump()
    assert len(net.take(bob, CallUpdated)) == 1 and len(net.take(alice, CallUpdated)) == 1
    assert (a_call.media.direction, b_call.media.direction) == ("sendonly", "recvonly")
    alice.resume(a_call, net.now)
    net.pump()
    assert (a_call.media.direction, b_call.media.direction) == ("sendrecv", "sendrecv")
    bob.update_media(b_call, "127.0.0.2", 50010, net.now)
    net.pump()
    assert (a_call.media.remote_address, a_call.media.remote_port) == ("127.0.0.2", 50010)
    versions = [a_call.local_sdp.origin.session_version, b_call.local_sdp.origin.session_version]
    assert versions[0] == a_call.local_sdp.origin.session_id + 3  # offer, hold, resume, answer
    assert versions[1] >= b_call.local_sdp.origin.session_id + 2


def test_dtmf_info_and_options() -> None:
    alice, bob, net = pair()
    a_call, _ = establish(alice, bob, net)
    for digit in "5#":
        alice.send_dtmf(a_call, digit, net.now)
    net.pump()
    assert [(e.digit, e.duration_ms) for e in net.take(bob, DTMFReceived)] == [("5", 160), ("#", 160)]
    with pytest.raises(ValueError, match="digit"):
        alice.send_dtmf(a_call, "55", net.now)
    alice.options(("127.0.0.1", 5062), net.now)
    net.pump()
    assert [e.status_code for e in net.take(alice, OptionsResult)] == [200]
    alice.options(("127.0.0.1", 5999), net.now)  # nobody there
    net.advance(40.0)
    assert [e.status_code for e in net.take(alice, OptionsResult)] == [408]


def test_lost_200_and_lost_ack_are_recovered_by_retransmission() -> None:
    alice, bob, net = pair()
    lost = {"200": 1, "ACK": 1}

    def drop(data: bytes, src: int, dst: int) -> bool:
        for key in lost:
            if lost[key] and (data.startswith(b"SIP/2.0 200") and key == "200" and b"INVITE" in data
                              or data.startswith(b"ACK") and key == "ACK"):
                lost[key] -= 1
                return True
        return False

    net.drop = drop
    a_call, b_call = establish(alice, bob, net)
    assert a_call.state != "established"
    net.advance(0.6)  # bob's 2xx retransmission (T1) gets through; the first ACK is lost
    assert a_call.state == "established" and b_call.state == "answered"
    net.advance(2.0)  # the next 2xx retransmission is ACKed again
    assert b_call.state == "established"
    assert lost == {"200": 0, "ACK": 0}


def test_no_ack_means_bye_after_64_t1() -> None:
    alice, bob, net = pair()
    net.drop = lambda data, src, dst: data.startswith(b"ACK")
    _a_call, _b_call = establish(alice, bob, net)
    net.advance(40.0)
    assert [e.status_code for e in net.take(bob, CallEnded)] == [408]
    assert [e.reason for e in net.take(alice, CallEnded)] == ["remote hangup"]


def test_offerless_invite_gets_offer_in_200_and_answer_in_ack() -> None:
    alice, bob, _net = pair()
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    invite = parse_message(alice.take_outgoing()[0].data)
    invite.body = b""
    invite.headers.remove("Content-Type")
    bob.receive(invite.encode(), ("127.0.0.1", 5061), 0.0)
    (incoming,) = bob.take_events()
    bob.answer(incoming.call, "127.0.0.1", 50000, 0.0)
    ok = [parse_message(o.data) for o in bob.take_outgoing()][-1]
    assert ok.status_code == 200 and b"m=audio 50000" in ok.body
    ack = f"ACK sip:bob@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKa1\r\n" \
          f"From: {ok.headers.get('From')}\r\nTo: {ok.headers.get('To')}\r\nCall-ID: {ok.call_id}\r\n" \
          f"CSeq: 1 ACK\r\nContent-Type: application/sdp\r\nContent-Length: {len(call.local_sdp.encode())}\r\n\r\n"
    bob.receive(ack.encode() + call.local_sdp.encode(), ("127.0.0.1", 5061), 0.1)
    assert [type(e) for e in bob.take_events()] == [CallEstablished]
    assert incoming.call.media.remote_port == 40000


@pytest.mark.parametrize("with_credentials", [True, False])
def test_digest_challenge_for_untrusted_callers(with_credentials: bool) -> None:
    server = DigestServer("bob.example", {"alice": "pw"}.get)
    alice, bob, net = pair(auth=server, allow=["10.0.0.0/8"])
    if with_credentials:
        alice.credentials = DigestClient([Credentials("alice", "pw", "bob.example")])
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    assert bob.stats["challenged"] == 1
    if not with_credentials:
        assert [e.status_code for e in net.take(alice, CallEnded)] == [401]
        assert not net.take(bob, IncomingCall)
        return
    (incoming,) = net.take(bob, IncomingCall)
    assert "Authorization" in incoming.request.headers and incoming.request.cseq.seq == 2
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert call.state == "established"


def test_forbidden_without_auth_and_rate_limit() -> None:
    alice, bob, net = pair(allow=["10.0.0.0/8"])
    alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    assert [e.status_code for e in net.take(alice, CallEnded)] == [403]
    alice, bob, net = pair(rate=10.0, burst=5)
    for _ in range(20):
        alice.options(("127.0.0.1", 5062), net.now)
    net.pump()
    assert bob.stats["rate_limited"] == 15
    assert len(net.take(alice, OptionsResult)) == 5


def test_malformed_request_gets_400_and_garbage_is_ignored() -> None:
    bob = UserAgent("127.0.0.1", 5062)
    bad = (b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKx\r\n"
           b"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
           b"Max-Forwards: 999\r\nContent-Length: 0\r\n\r\n")
    bob.receive(bad, ("127.0.0.1", 5061), 0.0)
    (out,) = bob.take_outgoing()
    response = parse_message(out.data)
    assert response.status_code == 400 and out.destination == ("UDP", "127.0.0.1", 5061)
    bob.receive(b"SIP/2.0 200 OK\r\n\r\n", ("127.0.0.1", 5061), 0.0)
    bob.receive(b"\x00\x01garbage", ("127.0.0.1", 5061), 0.0)
    assert bob.take_outgoing() == [] and bob.stats["malformed"] == 3


def test_unknown_dialog_and_methods() -> None:
    alice, bob, net = pair()
    a_call, _b_call = establish(alice, bob, net)
    bob.calls.clear()  # bob forgets the call: alice's BYE finds no dialog
    alice.hangup(a_call, net.now)
    net.pump()
    assert [e.status_code for e in net.take(alice, CallEnded)] == [481]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_user_agent_never_raises(data: bytes) -> None:
    bob = UserAgent("127.0.0.1", 5062, policy=AudioPolicy())
    bob.receive(data, ("192.0.2.9", 5060), 0.0)
    bob.on_timer(100.0)


# --- session timers (RFC 4028) and redirects -----------------------------------


def test_session_timer_refreshes_keep_the_call_up() -> None:
    alice, bob, net = pair()
    alice.session_expires = 120
    a_call, b_call = establish(alice, bob, net)
    ok = [parse_message(w) for w in net.wire if w.startswith(b"SIP/2.0 200") and b"INVITE" in w][0]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert (a_call.session_expires, a_call.refresher) == (120, "uac")
    net.advance(400.0)
    updates = [w for w in net.wire if w.startswith(b"UPDATE")]
    assert len(updates) == 6  # every 60 s
    assert a_call.state == b_call.state == "established"


def test_session_expires_without_refresh_ends_the_call() -> None:
    alice, bob, net = pair()
    alice.session_expires = 120
    net.drop = lambda data, src, dst: data.startswith(b"UPDATE")
    _a_call, _b_call = establish(alice, bob, net)
    net.advance(100.0)
    assert [(e.status_code, e.reason) for e in net.take(bob, CallEnded)] == [
        (408, "session timer expired")]  # BYE at 120 - 32 s
    assert [e.reason for e in net.take(alice, CallEnded)] == ["remote hangup"]


def test_session_interval_too_small_is_retried_with_min_se() -> None:
    alice, bob, net = pair()
    alice.session_expires = 60
    alice.min_se = 30
    a_call, _b_call = establish(alice, bob, net)
    assert [e.status_code for e in net.take(bob, CallEnded)] == [422]
    (incoming,) = net.take(bob, IncomingCall)
    assert incoming.request.headers.get("Session-Expires") == "90"
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert a_call.state == "established" and a_call.session_expires == 90


def test_redirect_to_another_user_agent() -> None:
    alice = UserAgent("127.0.0.1", 5061, user="alice")
    bob = UserAgent("127.0.0.1", 5062, user="bob")
    carol = UserAgent("127.0.0.1", 5063, user="carol")
    net = Network(alice, bob, carol)
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    # bob redirects with a 302 pointing at carol
    from rtpcore.sip.transaction import make_response
    txn = incoming.call.invite_txn
    moved = make_response(incoming.request, 302, to_tag="r1")
    moved.headers.add("Contact", "<sip:carol@127.0.0.1:5063>")
    bob._respond(txn, moved, net.now)
    bob.calls.clear()
    net.pump()
    (at_carol,) = net.take(carol, IncomingCall)
    assert str(at_carol.request.uri) == "sip:carol@127.0.0.1:5063"
    assert at_carol.request.cseq.seq == 2 and at_carol.request.call_id == call.call_id
    carol.answer(at_carol.call, "127.0.0.1", 50002, net.now)
    net.pump()
    assert call.state == "established" and call.media.remote_port == 50002


def test_reliable_provisional_is_pracked_once() -> None:
    alice, bob, net = pair()
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    assert "100rel" in incoming.request.headers.get_all("Supported")
    progress = bob._sdp_response(incoming.request, 183, incoming.call.local_tag, None)
    progress.headers.add("Require", "100rel")
    progress.headers.add("RSeq", "1")
    for _ in range(2):  # the UAS retransmits its reliable provisional
        bob._respond(incoming.call.invite_txn, progress, net.now)
        net.pump()
    pracks = [parse_message(w) for w in net.wire if w.startswith(b"PRACK")]
    assert len(pracks) == 1 and pracks[0].headers.get("RAck") == "1 1 INVITE"
    assert pracks[0].cseq.seq == 2 and call.state == "early"
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert call.state == "established"


def test_blind_transfer_with_refer_and_notify() -> None:
    alice, bob, net = pair()
    a_call, b_call = establish(alice, bob, net)
    alice.refer(a_call, "sip:carol@example.com", net.now)
    net.pump()
    (request,) = net.take(bob, TransferRequested)
    assert request.target == "sip:carol@example.com"
    bob.notify_transfer(b_call, 180, net.now)
    bob.notify_transfer(b_call, 200, net.now)
    net.pump()
    assert [e.status_code for e in net.take(alice, TransferProgress)] == [100, 180, 200]
    with pytest.raises(ValueError, match="transfer"):
        bob.notify_transfer(b_call, 200, net.now)
    notifies = [parse_message(w) for w in net.wire if w.startswith(b"NOTIFY")]
    assert notifies[-1].headers.get("Subscription-State") == "terminated;reason=noresource"
    assert notifies[-1].content_type == "message/sipfrag"


def test_rport_and_received_route_the_response_back_through_nat() -> None:
    bob = UserAgent("127.0.0.1", 5062)
    options = (b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
               b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport\r\n"
               b"From: <sip:a@10.0.0.5>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: nat1\r\n"
               b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    bob.receive(options, ("203.0.113.7", 40123), 0.0)  # seen from the NAT's public side
    (out,) = bob.take_outgoing()
    assert out.destination == ("UDP", "203.0.113.7", 40123)
    via = parse_message(out.data).top_via
    assert (via.received, via.rport) == ("203.0.113.7", 40123)
    # without rport (RFC 3261 section 18.2.2): received address, Via's port
    bob.receive(options.replace(b";rport", b"").replace(b"z9hG4bKnat", b"z9hG4bKnat2"),
                ("203.0.113.7", 40123), 0.0)
    (out,) = bob.take_outgoing()
    assert out.destination == ("UDP", "203.0.113.7", 5060)


def test_invite_fails_over_to_the_next_destination() -> None:
    alice, bob, net = pair()
    dead = ("UDP", "127.0.0.1", 5999)  # nobody listens: timer B, then bob
    call = alice.invite("sip:bob@example.com", [dead, ("UDP", "127.0.0.1", 5062)],
                        "127.0.0.1", 40000, 0.0)
    net.pump()
    net.advance(33.0)
    (incoming,) = net.take(bob, IncomingCall)
    assert incoming.request.cseq.seq == 2 and incoming.request.call_id == call.call_id
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert call.state == "established" and call.peer == ("UDP", "127.0.0.1", 5062)


def test_required_extension_we_lack_is_420() -> None:
    bob = UserAgent("127.0.0.1", 5062)
    invite = (b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKr1\r\n"
              b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: req1\r\n"
              b"CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5061>\r\nRequire: precondition, timer\r\n"
              b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    bob.receive(invite, ("127.0.0.1", 5061), 0.0)
    responses = [parse_message(o.data) for o in bob.take_outgoing()]
    assert [r.status_code for r in responses] == [100, 420]
    assert responses[1].headers.get("Unsupported") == "precondition"
    assert bob.take_events() == []


def test_rate_limit_memory_is_bounded_under_spoofed_sources() -> None:
    bob = UserAgent("127.0.0.1", 5062, rate=1.0, burst=1, max_sources=100)
    for n in range(1000):
        assert bob.admit(f"198.51.{n // 256}.{n % 256}", 0.0)
    assert len(bob._buckets) == 100
    assert bob.admit("198.51.3.231", 0.0) is False  # recently seen: its burst is spent


def test_early_media_183_carries_the_answer() -> None:
    alice, bob, net = pair()
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    with pytest.raises(ValueError, match="media address"):
        bob.ring(incoming.call, net.now, early_media=True)
    bob.set_media_address(incoming.call, "127.0.0.1", 50000)
    bob.ring(incoming.call, net.now, early_media=True)
    net.pump()
    assert [e.status_code for e in net.take(alice, CallProgress)] == [183]
    assert call.state == "early" and call.media.remote_port == 50000  # media before answer
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert call.state == "established"


def test_glare_is_491_and_dtmf_in_plain_application_dtmf() -> None:
    alice, bob, net = pair()
    a_call, b_call = establish(alice, bob, net)
    alice.hold(a_call, net.now)  # alice's re-INVITE is in flight ...
    bob.hold(b_call, net.now)  # ... when bob sends his
    net.pump()
    glare = [parse_message(w) for w in net.wire if w.startswith(b"SIP/2.0 491")]
    assert len(glare) == 2  # each side refuses the other's offer while its own is pending
    assert not a_call.pending_offer and not b_call.pending_offer
    # the refused offers changed nothing: the sessions agreed before still hold
    assert not a_call.on_hold and not b_call.on_hold
    assert a_call.local_sdp.origin.session_version == a_call.local_sdp.origin.session_id
    assert a_call.media.direction == "sendrecv"
    bob._send_in_dialog(b_call, "INFO", net.now, b"7", "application/dtmf")
    net.pump()
    assert [(e.digit, e.duration_ms) for e in net.take(alice, DTMFReceived)] == [("7", 0)]


def test_uas_sends_reliable_provisionals_until_pracked() -> None:
    alice, bob, net = pair()
    lost = [1]

    def drop_first_prack(data: bytes, src: int, dst: int) -> bool:
        if data.startswith(b"PRACK") and lost[0]:
            lost[0] = 0
            return True
        return False

    net.drop = drop_first_prack
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0,
                        headers=[("Require", "100rel")])
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    bob.ring(incoming.call, net.now)
    net.pump()
    assert incoming.call.unacked_provisional is not None  # the PRACK was lost
    net.advance(0.6)  # alice's PRACK transaction retransmits (Timer E)
    assert incoming.call.unacked_provisional is None
    ringing = [parse_message(w) for w in net.wire if w.startswith(b"SIP/2.0 180")]
    assert ringing[0].headers.get("Require") == "100rel" and ringing[0].headers.get("RSeq")
    assert len([w for w in net.wire if w.startswith(b"SIP/2.0 200") and b"PRACK" in w]) == 1
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    assert call.state == "established"


def test_uas_gives_up_without_prack() -> None:
    alice, bob, net = pair()
    net.drop = lambda data, src, dst: data.startswith(b"PRACK")
    call = alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0,
                        headers=[("Require", "100rel")])
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    bob.ring(incoming.call, net.now)
    net.pump()
    net.advance(40.0)
    retransmitted = [w for w in net.wire if w.startswith(b"SIP/2.0 180")]
    assert 5 <= len(retransmitted) <= 8  # T1, doubling, for 64*T1
    assert [e.status_code for e in net.take(bob, CallEnded)] == [500]
    assert [e.status_code for e in net.take(alice, CallEnded)] == [500]
    assert call.state == "terminated"


# --- offers in multipart bodies (RFC 5621) --------------------------------------


def invite_with_mpart01_parts(alice: UserAgent, handling: str) -> bytes:
    """Alice's INVITE with its offer between the two parts of RFC 4475's
    mpart01 (text and an S/MIME signature), marked ``handling``."""
    alice.invite("sip:bob@127.0.0.1:5062", ("127.0.0.1", 5062), "127.0.0.1", 40000, 0.0)
    (out,) = alice.take_outgoing()
    invite = parse_message(out.data)
    torture = parse_message(MPART01.read_bytes())
    text, signature = parse_multipart(torture.body, torture.headers.get("Content-Type"))
    for extra in (text, signature):
        extra.headers.add("Content-Disposition", "render;handling=" + handling)
    offer = BodyPart(Headers([("Content-Type", "application/sdp")]), invite.body)
    body, content_type = encode_multipart([text, offer, signature], "7a9cbec02ceef655")
    invite.headers.set("Content-Type", content_type)
    invite.body = body
    return invite.encode()


def test_offer_in_a_multipart_body_is_answered() -> None:
    alice, bob, net = pair()
    bob.receive(invite_with_mpart01_parts(alice, "optional"), (alice.host, alice.port), 0.0)
    net.pump()
    (incoming,) = net.take(bob, IncomingCall)
    assert incoming.call.remote_sdp is not None
    bob.answer(incoming.call, "127.0.0.1", 50000, net.now)
    net.pump()
    (answered,) = net.take(alice, CallAnswered)
    assert len(net.take(bob, CallEstablished)) == 1
    assert (answered.call.media.remote_port, incoming.call.media.remote_port) == (50000, 40000)


def test_required_part_we_cannot_use_is_415_with_accept() -> None:
    alice, bob, net = pair()
    bob.receive(invite_with_mpart01_parts(alice, "required"), (alice.host, alice.port), 0.0)
    net.pump()
    (response,) = [m for m in map(parse_message, net.wire) if getattr(m, "status_code", 0) == 415]
    assert "multipart/mixed" in response.headers.get("Accept")
    assert [e.status_code for e in net.take(alice, CallEnded)] == [415]
    assert not net.take(bob, IncomingCall)
