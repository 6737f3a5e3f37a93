"""RFC 3263 server location against a stub DNS (dnspython record types)."""

from __future__ import annotations

import random
from collections import Counter

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest
from rtpcore.aio.resolve import order_srv, resolve_sip_targets


class StubResolver:
    """Answers from a table of (name, type) -> record texts; NXDOMAIN otherwise."""

    def __init__(self, zone: dict[tuple[str, str], list[str]]) -> None:
        self.zone = zone
        self.queries: list[tuple[str, str]] = []

    async def resolve(self, name: str, rdtype: str):  # type: ignore[no-untyped-def]
        self.queries.append((name, rdtype))
        texts = self.zone.get((name.rstrip("."), rdtype))
        if texts is None:
            raise dns.resolver.NXDOMAIN()
        return [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), t)
                for t in texts]


ZONE = {
    ("example.com", "NAPTR"): [
        '20 50 "s" "SIP+D2U" "" _sip._udp.example.com.',
        '10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com.',
        '15 50 "s" "SIP+D2T" "" _sip._tcp.example.com.',
    ],
    ("_sips._tcp.example.com", "SRV"): ["0 0 5061 tls1.example.com."],
    ("_sip._tcp.example.com", "SRV"): ["0 0 5060 tcp1.example.com."],
    ("_sip._udp.example.com", "SRV"): ["10 0 5060 udp2.example.com.", "5 0 5070 udp1.example.com."],
    ("tls1.example.com", "A"): ["192.0.2.1"],
    ("tcp1.example.com", "A"): ["192.0.2.2"],
    ("udp1.example.com", "A"): ["192.0.2.3"],
    ("udp1.example.com", "AAAA"): ["2001:db8::3"],
    ("udp2.example.com", "A"): ["192.0.2.4"],
    ("plain.example.org", "A"): ["198.51.100.7"],
    ("_sip._udp.srvonly.example.net", "SRV"): ["0 0 5080 h.srvonly.example.net."],
    ("h.srvonly.example.net", "A"): ["203.0.113.9"],
}


async def test_naptr_then_srv_then_addresses_in_order() -> None:
    targets = await resolve_sip_targets("sip:alice@example.com", StubResolver(ZONE))
    assert targets == [("TLS", "192.0.2.1", 5061), ("TCP", "192.0.2.2", 5060),
                       ("UDP", "192.0.2.3", 5070), ("UDP", "2001:db8::3", 5070),
                       ("UDP", "192.0.2.4", 5060)]


async def test_transports_we_do_not_offer_are_skipped_and_sips_needs_tls() -> None:
    udp_only = await resolve_sip_targets("sip:alice@example.com", StubResolver(ZONE), ("UDP",))
    assert {t for t, _, _ in udp_only} == {"UDP"}
    secure = await resolve_sip_targets("sips:alice@example.com", StubResolver(ZONE))
    assert secure == [("TLS", "192.0.2.1", 5061)]


async def test_no_naptr_falls_back_to_srv_then_a() -> None:
    assert await resolve_sip_targets("sip:srvonly.example.net", StubResolver(ZONE)) == [
        ("UDP", "203.0.113.9", 5080)]
    resolver = StubResolver(ZONE)
    assert await resolve_sip_targets("sip:plain.example.org", resolver) == [
        ("UDP", "198.51.100.7", 5060)]
    assert ("_sip._tcp.plain.example.org", "SRV") in resolver.queries


async def test_explicit_port_numeric_host_and_transport_param() -> None:
    resolver = StubResolver(ZONE)
    assert await resolve_sip_targets("sip:plain.example.org:5099;transport=tcp", resolver) == [
        ("TCP", "198.51.100.7", 5099)]
    assert all(rdtype in ("A", "AAAA") for _, rdtype in resolver.queries)
    assert await resolve_sip_targets("sip:[2001:db8::1]", resolver) == [("UDP", "2001:db8::1", 5060)]
    assert await resolve_sip_targets("sip:example.com;transport=tcp", StubResolver(ZONE)) == [
        ("TCP", "192.0.2.2", 5060)]
    assert await resolve_sip_targets("sip:nowhere.invalid", StubResolver(ZONE)) == []


def test_srv_weights_follow_rfc_2782() -> None:
    records = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, t)
               for t in ("1 90 5060 heavy.", "1 10 5060 light.", "0 0 5060 first.", "2 0 5060 last.")]
    rng = random.Random(7)
    firsts = Counter()
    for _ in range(2000):
        order = [str(r.target) for r in order_srv(records, rng)]
        assert order[0] == "first." and order[-1] == "last."
        firsts[order[1]] += 1
    assert firsts["heavy."] / 2000 == pytest.approx(0.9, abs=0.03)
