"""REGISTER: digest, refresh before expiry, failover between registrars."""

from __future__ import annotations

from rtpcore.sip.auth import Credentials, DigestClient, DigestServer
from rtpcore.sip.transaction import make_response
from rtpcore.sip.ua import Registered, RegistrationFailed, UserAgent

from rtpcore.sip import Response, parse_message

PRIMARY = ("UDP", "192.0.2.1", 5060)
BACKUP = ("UDP", "192.0.2.2", 5060)


def sent(ua: UserAgent):  # type: ignore[no-untyped-def]
    return [(parse_message(o.data), o.destination) for o in ua.take_outgoing()]


def reply(ua: UserAgent, request, code: int, now: float, **headers: str) -> None:  # type: ignore[no-untyped-def]
    response = make_response(request, code, to_tag="reg1")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    ua.receive(response.encode(), ("192.0.2.1", 5060), now)


def test_register_with_digest_then_refresh() -> None:
    server = DigestServer("trunk.example", {"alice": "pw"}.get)
    ua = UserAgent("198.51.100.5", 5070, user="alice",
                   credentials=DigestClient([Credentials("alice", "pw")]))
    ua.register("sip:trunk.example", [PRIMARY], 0.0, expires=600)
    ((first, where),) = sent(ua)
    assert where == PRIMARY and first.method == "REGISTER"
    assert first.contacts[0].params["expires"] == "600" and first.headers.get("Expires") == "600"
    challenge = make_response(first, 401, to_tag="reg1")
    for value in server.challenges(0.1):
        challenge.headers.add("WWW-Authenticate", value)
    ua.receive(challenge.encode(), ("192.0.2.1", 5060), 0.1)
    ((second, _),) = sent(ua)
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert server.verify(second, 0.2).ok
    reply(ua, second, 200, 0.2, Contact=f"{ua.contact};expires=120")
    assert ua.take_events() == [Registered(PRIMARY, 120)]
    ua.on_timer(88.0)
    assert sent(ua) == []
    assert ua.next_deadline == 0.2 + 120 - 32
    ua.on_timer(ua.next_deadline)
    ((refresh, _),) = sent(ua)
    assert refresh.method == "REGISTER" and refresh.cseq.seq == second.cseq.seq + 1
    assert refresh.call_id == first.call_id


def test_failover_on_timeout_and_on_503() -> None:
    ua = UserAgent("198.51.100.5", 5070)
    ua.register("sip:trunk.example", [PRIMARY, BACKUP], 0.0)
    ((first, where),) = sent(ua)
    while where == PRIMARY:  # nobody answers: retransmissions, then timer F
        ua.on_timer(ua.next_deadline)
        ((request, where),) = sent(ua) or [(first, PRIMARY)]
    assert where == BACKUP
    reply(ua, request, 200, 40.0)
    assert ua.take_events() == [Registered(BACKUP, 3600)]

    ua = UserAgent("198.51.100.5", 5070)
    ua.register("sip:trunk.example", [PRIMARY, BACKUP], 0.0)
    ((first, _),) = sent(ua)
    reply(ua, first, 503, 0.1)
    ((second, where),) = sent(ua)
    assert where == BACKUP
    reply(ua, second, 503, 0.2, Retry_After="30")
    assert ua.take_events() == [RegistrationFailed(503, "Service Unavailable", 30.0)]
    ua.on_timer(30.2)
    ((again, where),) = sent(ua)
    assert where == PRIMARY and again.method == "REGISTER"


def test_interval_too_brief_and_final_refusal_and_unregister() -> None:
    ua = UserAgent("198.51.100.5", 5070)
    ua.register("sip:trunk.example", [PRIMARY], 0.0, expires=60)
    ((first, _),) = sent(ua)
    reply(ua, first, 423, 0.1, Min_Expires="300")
    ((second, _),) = sent(ua)
    assert second.headers.get("Expires") == "300"
    reply(ua, second, 403, 0.2)
    assert ua.take_events() == [RegistrationFailed(403, "Forbidden", None)]
    ua.on_timer(500.0)
    assert sent(ua) == []  # a final refusal is not retried
    ua.unregister(1.0)
    ((bye, _),) = sent(ua)
    assert bye.headers.get("Expires") == "0"
    reply(ua, bye, 200, 1.1)
    assert ua.take_events() == []


def test_granted_expiry_from_expires_header() -> None:
    ua = UserAgent("198.51.100.5", 5070)
    ua.register("sip:trunk.example", [PRIMARY], 0.0)
    ((first, _),) = sent(ua)
    response: Response = make_response(first, 200, to_tag="x")
    response.headers.add("Contact", "<sip:someone-else@203.0.113.1>;expires=10")
    response.headers.add("Expires", "900")
    ua.receive(response.encode(), ("192.0.2.1", 5060), 0.1)
    assert ua.take_events() == [Registered(PRIMARY, 900)]
