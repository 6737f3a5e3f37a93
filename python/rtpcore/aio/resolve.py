"""Locating SIP servers (RFC 3263) with dnspython: NAPTR, SRV, then A/AAAA.

``resolve_sip_targets(uri)`` returns the ordered list of ``(transport, host,
port)`` destinations to try for a SIP URI; a client moves to the next one
when a request times out, fails at the transport or gets a 503 (RFC 3263
section 4.3). SRV records are ordered by priority and, within a priority,
by the weighted random choice of RFC 2782.

The resolver is anything with dnspython's ``async resolve(name, rdtype)``;
tests pass a stub, applications the default ``dns.asyncresolver``.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from rtpcore.sip import URI, parse_uri

__all__ = ["resolve_sip_targets", "order_srv"]

# NAPTR service -> transport, and SRV prefix per transport (RFC 3263 section 4.1)
_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
_SRV_PREFIX = {"UDP": "_sip._udp.", "TCP": "_sip._tcp.", "TLS": "_sips._tcp."}
_DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "TLS": 5061}
_LOOKUP_ERRORS = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers,
                  dns.exception.Timeout)

Target = tuple[str, str, int]


def order_srv(records: Sequence[Any], rng: random.Random | None = None) -> list[Any]:
    """SRV records in the order to try them: priority, then RFC 2782 weights."""
    rng = rng or random.Random()
    ordered: list[Any] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        # zero-weight records first so that they keep a small chance (RFC 2782)
        group.sort(key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total) if total else 0
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


async def _query(resolver: Any, name: str, rdtype: str) -> list[Any]:
    try:
        return list(await resolver.resolve(name, rdtype))
    except _LOOKUP_ERRORS:
        return []


async def _addresses(resolver: Any, host: str) -> list[str]:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return [host.strip("[]")]
    except ValueError:
        pass
    found = [r.address for r in await _query(resolver, host, "A")]
    found += [r.address for r in await _query(resolver, host, "AAAA")]
    return found


async def resolve_sip_targets(uri: URI | str, resolver: Any = None,
                              transports: Sequence[str] = ("UDP", "TCP", "TLS"),
                              rng: random.Random | None = None) -> list[Target]:
    """The destinations for ``uri``, in the order RFC 3263 says to try them."""
    if isinstance(uri, str):
        uri = parse_uri(uri, "uri")
    resolver = resolver or dns.asyncresolver.Resolver()
    secure = uri.scheme == "sips"
    allowed = [t for t in transports if not secure or t == "TLS"]
    host = uri.params.get("maddr") or uri.host
    wanted = uri.transport.upper() if uri.transport else None
    if secure and wanted == "TCP":
        wanted = "TLS"
    numeric = True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        numeric = False
    if numeric or uri.port is not None:  # section 4.1/4.2: no NAPTR or SRV
        transport = wanted or ("TLS" if secure else "UDP")
        port = uri.port or _DEFAULT_PORT[transport]
        return [(transport, address, port) for address in await _addresses(resolver, host)]
    srv_names: list[tuple[str, str]] = []
    if wanted is None:
        naptrs = await _query(resolver, host, "NAPTR")
        naptrs.sort(key=lambda r: (r.order, r.preference))
        for record in naptrs:
            transport = _NAPTR_SERVICES.get(record.service.decode().upper())
            if transport in allowed and record.flags.decode().lower() == "s":
                srv_names.append((transport, str(record.replacement)))
        if not srv_names:  # no NAPTR: SRV for each transport we support
            srv_names = [(t, _SRV_PREFIX[t] + host) for t in allowed]
    else:
        srv_names = [(wanted, _SRV_PREFIX[wanted] + host)]
    targets: list[Target] = []
    for transport, name in srv_names:
        for record in order_srv(await _query(resolver, name, "SRV"), rng):
            target = str(record.target).rstrip(".")
            for address in await _addresses(resolver, target):
                targets.append((transport, address, record.port))
    if targets:
        return targets
    transport = wanted or ("TLS" if secure else "UDP")  # section 4.2: plain A lookup
    return [(transport, address, _DEFAULT_PORT[transport])
            for address in await _addresses(resolver, host)]
