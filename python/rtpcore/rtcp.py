"""RTCP (RFC 3550 section 6), RFC 4585 feedback and RFC 3611 extended reports.

``parse_compound(buf)`` returns the packets of a compound RTCP packet as typed,
immutable objects; ``bytes(packet)`` serializes one and
``build_compound(packets)`` a whole compound packet:

>>> sr = SenderReport(ssrc=0x1234, ntp_timestamp=0xE1A2_0000_8000_0000, rtp_timestamp=160,
...                   packet_count=50, octet_count=8000,
...                   reports=(ReportBlock(ssrc=0x5678, fraction_lost=25, cumulative_lost=3,
...                                        highest_sequence=1050, jitter=12),))
>>> bye = Bye(sources=(0x1234,), reason=b"hangup")
>>> parse_compound(build_compound([sr, bye])) == [sr, bye]
True

Packet types and feedback formats without a class here come back as
:class:`UnknownRTCP`, and XR blocks without one as :class:`XRBlock`, so that
any well-framed compound packet parses and writes back. Padding is removed on
parsing; writing adds RTCP padding only where a body (APP ``data``, a report
``extension``, an unknown packet's ``body``) is not whole 32-bit words.
Bad framing raises
:class:`rtpcore.errors.ParseError` with the layer, field and byte offset.

The wire format is implemented once, in the Rust core; these dataclasses are
the Python face of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from rtpcore._core import rtcp_build_compound, rtcp_parse_compound

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "App",
    "Bye",
    "DLRR",
    "DLRRItem",
    "ExtendedReport",
    "GenericNACK",
    "PLI",
    "RTCPPacket",
    "ReceiverReferenceTime",
    "ReceiverReport",
    "ReportBlock",
    "SDESChunk",
    "SDESItemType",
    "SenderReport",
    "SourceDescription",
    "UnknownRTCP",
    "VoIPMetrics",
    "XRBlock",
    "build_compound",
    "parse_compound",
]


class _Packet:
    """What every RTCP packet class shares: ``bytes(packet)`` serializes it."""

    __slots__ = ()

    def __bytes__(self) -> bytes:
        return rtcp_build_compound([_record(self)])


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 section 6.4.1) about ``ssrc``.

    ``fraction_lost`` is in 1/256; ``cumulative_lost`` is signed (24 bits);
    ``jitter`` is in timestamp units; ``last_sr`` is the middle 32 bits of the
    last SR's NTP timestamp and ``delay_since_last_sr`` is in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    last_sr: int = 0
    delay_since_last_sr: int = 0


@dataclass(frozen=True, slots=True)
class SenderReport(_Packet):
    """SR (packet type 200): what ``ssrc`` sent, plus its reception reports."""

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class ReceiverReport(_Packet):
    """RR (packet type 201): ``ssrc``'s reception reports."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


class SDESItemType:
    """SDES item types (RFC 3550 section 6.5)."""

    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


@dataclass(frozen=True, slots=True)
class SDESChunk:
    """The SDES items of one source: ``(item type, value)`` pairs in order."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    def get(self, kind: int) -> bytes | None:
        """The value of the first item of type ``kind``, e.g. ``SDESItemType.CNAME``."""
        return next((value for item_kind, value in self.items if item_kind == kind), None)


@dataclass(frozen=True, slots=True)
class SourceDescription(_Packet):
    """SDES (packet type 202)."""

    chunks: tuple[SDESChunk, ...] = ()


@dataclass(frozen=True, slots=True)
class Bye(_Packet):
    """BYE (packet type 203): ``sources`` leave, optionally saying why."""

    sources: tuple[int, ...] = ()
    reason: bytes | None = None


@dataclass(frozen=True, slots=True)
class App(_Packet):
    """APP (packet type 204): application data named by 4 ASCII bytes."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class GenericNACK(_Packet):
    """Generic NACK (RTPFB, FMT 1, RFC 4585 section 6.2.1).

    ``lost`` lists the sequence numbers asked for again, in sending order; on
    the wire they are packed into PID + bitmask entries.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PLI(_Packet):
    """Picture loss indication (PSFB, FMT 1, RFC 4585 section 6.3.1)."""

    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class VoIPMetrics:
    """The XR VoIP metrics block (RFC 3611 section 4.7), in the RFC's units:
    rates and densities in 1/256, durations and delays in ms, levels in dBm
    (signed), R factors 0..100, MOS x10 (127: unavailable)."""

    ssrc: int
    loss_rate: int = 0
    discard_rate: int = 0
    burst_density: int = 0
    gap_density: int = 0
    burst_duration: int = 0
    gap_duration: int = 0
    round_trip_delay: int = 0
    end_system_delay: int = 0
    signal_level: int = 127
    noise_level: int = 127
    rerl: int = 127
    gmin: int = 16
    r_factor: int = 127
    ext_r_factor: int = 127
    mos_lq: int = 127
    mos_cq: int = 127
    rx_config: int = 0
    jb_nominal: int = 0
    jb_maximum: int = 0
    jb_abs_max: int = 0


@dataclass(frozen=True, slots=True)
class ReceiverReferenceTime:
    """XR receiver reference time (RFC 3611 section 4.4): a receiver's NTP
    time, answered with a :class:`DLRR` so that it gets a round-trip time."""

    ntp_timestamp: int


@dataclass(frozen=True, slots=True)
class DLRRItem:
    """One answer in a :class:`DLRR`: ``last_rr`` is the middle 32 bits of
    ``ssrc``'s reference time, ``delay_since_last_rr`` in 1/65536 s."""

    ssrc: int
    last_rr: int = 0
    delay_since_last_rr: int = 0


@dataclass(frozen=True, slots=True)
class DLRR:
    """XR DLRR report (RFC 3611 section 4.5)."""

    items: tuple[DLRRItem, ...] = ()


@dataclass(frozen=True, slots=True)
class XRBlock:
    """An XR report block of a type without its own class, kept raw."""

    block_type: int
    type_specific: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ExtendedReport(_Packet):
    """XR (packet type 207, RFC 3611): report blocks from ``ssrc``."""

    ssrc: int
    blocks: tuple[ReceiverReferenceTime | DLRR | VoIPMetrics | XRBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownRTCP(_Packet):
    """A packet type (or feedback format) without a class here, kept raw:
    ``count`` is the 5-bit count/FMT field, ``body`` what follows the header."""

    packet_type: int
    count: int = 0
    body: bytes = b""


RTCPPacket = Union[
    SenderReport,
    ReceiverReport,
    SourceDescription,
    Bye,
    App,
    GenericNACK,
    PLI,
    ExtendedReport,
    UnknownRTCP,
]

_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ReportBlock,
        SenderReport,
        ReceiverReport,
        SDESChunk,
        SourceDescription,
        Bye,
        App,
        GenericNACK,
        PLI,
        ReceiverReferenceTime,
        DLRRItem,
        DLRR,
        VoIPMetrics,
        XRBlock,
        ExtendedReport,
        UnknownRTCP,
    )
}


def _record(value: Any) -> Any:
    """A dataclass as the core's record: ``(class name, *fields)``, nested."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (_record(getattr(value, f.name)) for f in dataclasses.fields(value))
        return (type(value).__name__, *fields)
    if isinstance(value, (list, tuple)):
        return [_record(v) for v in value]
    return value


def _from_record(value: Any) -> Any:
    """The inverse of :func:`_record`."""
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return _CLASSES[value[0]](*(_from_record(v) for v in value[1:]))
    if isinstance(value, list):
        return tuple(_from_record(v) for v in value)
    return value


def parse_compound(data: Buffer) -> list[RTCPPacket]:
    """The packets of a compound (or single) RTCP packet, in order.

    Raises :class:`~rtpcore.errors.ParseError` naming the field and offset
    when the framing or a packet's body is broken.
    """
    return [_from_record(r) for r in rtcp_parse_compound(data)]


def build_compound(packets: Iterable[RTCPPacket]) -> bytes:
    """One compound RTCP packet made of ``packets``, in order.

    Raises ``ValueError`` naming the field when a value does not fit the wire
    format (more than 31 report blocks, a 300-byte CNAME, ...).
    """
    return rtcp_build_compound([_record(p) for p in packets])
